"""Figures of a sweep drawn from synthetic workdirs (no training): what
`plot_sweep` draws, read back from the figures it saves."""
import json

import matplotlib.container
import numpy as np
import pytest
from results_test import fake_workdir

from warmup_research import plots, results


def _drawn(monkeypatch, wd):
  """plot_sweep on workdir `wd`: (the paths it returns, its figures by file name)."""
  figures, save = {}, plots._save

  def keep(fig, path, *args, **kw):
    figures[path.name] = fig
    return save(fig, path, *args, **kw)

  monkeypatch.setattr(plots, "_save", keep)
  loaded = results.load(wd)
  swept, rows = results.run_rows(loaded)
  return plots.plot_sweep(wd, loaded, swept, rows, results.aggregate(swept, rows)), figures


def _train_losses(wd, run_id):
  return [r["loss"] for r in results.load(wd)["metrics"][run_id] if "loss" in r]


def test_ema_is_debiased_so_the_first_rows_do_not_drag_it_to_the_initial_loss():
  raw = [5.4, 3.3, 3.1, 3.0]
  ema = plots._ema(raw, alpha=0.3)
  # Adam's debiasing: weights 0.3 * 0.7 ** k over the rows seen, renormalised to sum to 1
  assert ema[0] == pytest.approx(5.4)
  assert ema[1] == pytest.approx((0.3 * 3.3 + 0.21 * 5.4) / (1 - 0.7 ** 2))   # 4.165, not 4.77
  assert ema[3] == pytest.approx(np.dot([0.3, 0.21, 0.147, 0.1029], raw[::-1]) / (1 - 0.7 ** 4))
  assert np.allclose(plots._ema([2.0] * 5), 2.0)


def test_loss_curves_draw_the_raw_train_loss_visibly_beside_its_ema(monkeypatch, tmp_path):
  grid = [{"optimizer.peak_lr": lr} for lr in (1e-3, 1e-2)]
  wd = fake_workdir(tmp_path / "w", grid, [3.0, 2.5])
  _, figures = _drawn(monkeypatch, wd)
  raw = _train_losses(wd, "peak_lr=0.001")
  train_panel = figures["loss_curves.png"].axes[0]
  (line,) = [l for l in train_panel.get_lines() if np.allclose(l.get_ydata(), raw)]
  (smooth,) = [l for l in train_panel.get_lines()
               if np.allclose(l.get_ydata(), plots._ema(raw))]
  assert (line.get_alpha() or 1.0) >= 0.4 and line.get_linewidth() >= 0.7   # not a ghost
  assert line.get_color() == smooth.get_color()


def test_plot_sweep_draws_gradient_and_update_norms(monkeypatch, tmp_path):
  grid = [{"optimizer.peak_lr": lr, "seed": s} for lr in (1e-3, 1e-2) for s in (0, 1)]
  wd = fake_workdir(tmp_path / "w", grid, [3.0, 3.2, 2.0, 2.4])
  paths, figures = _drawn(monkeypatch, wd)
  assert wd / "plots" / "norms.png" in paths and (wd / "plots" / "norms.png").is_file()
  axes = figures["norms.png"].axes
  titles = [ax.get_title() for ax in axes]
  assert len(axes) == 3 and [t.split(" (")[0] for t in titles] == [
      "gradient norm", "update norm", "update norm / parameter norm"], titles
  rows = [r for r in results.load(wd)["metrics"]["peak_lr=0.01,seed=1"] if "loss" in r]
  for ax, norm in zip(axes, ([r["grad_norm"] for r in rows], [r["update_norm"] for r in rows],
                             [r["update_norm"] / r["param_norm"] for r in rows])):
    assert any(np.allclose(l.get_ydata(), norm) for l in ax.get_lines()), ax.get_title()


def test_update_sizes_are_drawn_per_run_over_the_first_updates(monkeypatch, tmp_path):
  grid = [{"optimizer.peak_lr": lr, "seed": s} for lr in (1e-3, 1e-2) for s in (0, 1)]
  wd = fake_workdir(tmp_path / "w", grid, [3.0, 3.2, 2.0, 2.4],
                    overrides={"train.total_steps": 40})
  paths, figures = _drawn(monkeypatch, wd)
  assert wd / "plots" / "update_sizes.png" in paths
  axes = figures["update_sizes.png"].axes
  assert [ax.get_title().split(" (")[0] for ax in axes] == ["relative update ||dW|| / ||W||",
                                                           "angular update of the weight matrices"]
  rows = [r for r in results.load(wd)["metrics"]["peak_lr=0.01,seed=1"] if "loss" in r]
  window = max(4 * 5, 40 // 5)   # the warmup (5 updates) x 4
  for ax, m in zip(axes, ("update_ratio", "angle")):
    mean = [(r[f"{m}/blocks.0"] + r[f"{m}/embed_VxD"]) / 2 for r in rows if r["step"] < window]
    assert any(np.allclose(l.get_ydata(), mean) for l in ax.get_lines()), m
    assert max(max(l.get_xdata()) for l in ax.get_lines()) == window - 1
  # metrics files from before update sizes were logged: no figure, the others as before
  for f in (wd / "metrics").iterdir():
    f.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if "/" not in k})
                         + "\n" for line in f.read_text().splitlines()))
  paths, _ = _drawn(monkeypatch, wd)
  assert wd / "plots" / "update_sizes.png" not in paths and wd / "plots" / "norms.png" in paths


def _error_bars(ax):
  """(lo, hi) of every error bar drawn on `ax`."""
  return sorted((round(min(s[:, 1]), 4), round(max(s[:, 1]), 4))
                for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)
                for bars in c.lines[2] for s in bars.get_segments())


def test_loss_vs_lr_draws_a_ci_only_where_a_condition_has_two_seeds(monkeypatch, tmp_path):
  # warmup 0: two seeds per LR (a t interval each); warmup 5: one seed, no interval
  grid = [{"schedule.warmup_steps": w, "optimizer.peak_lr": lr, "seed": s}
          for w, seeds in ((0, (0, 1)), (5, (0,))) for lr in (1e-3, 1e-2) for s in seeds]
  wd = fake_workdir(tmp_path / "w", grid, [3.0, 3.2, 2.0, 2.4, 2.9, 2.1])
  _, figures = _drawn(monkeypatch, wd)
  (ax,) = figures["loss_vs_peak_lr.png"].axes
  # 3.1 and 2.2, each +- 12.7062 * 0.1 or * 0.2
  assert _error_bars(ax) == [(-0.3412, 4.7412), (1.8294, 4.3706)]
  labels = ax.get_legend_handles_labels()[1]
  assert labels == ["warmup_steps=0 (n = 2: mean and 95% CI)", "warmup_steps=5 (n = 1: no CI)"]
  # one seed everywhere (as in results/quickstart): no bar, and the axis promises none
  one = [{"schedule.warmup_steps": w, "optimizer.peak_lr": lr} for w in (0, 5)
         for lr in (1e-3, 1e-2)]
  _, figures = _drawn(monkeypatch, fake_workdir(tmp_path / "one", one, [3.0, 2.0, 2.9, 2.1]))
  (ax,) = figures["loss_vs_peak_lr.png"].axes
  assert _error_bars(ax) == [] and "95% CI" not in ax.get_ylabel()
  assert "n = 1" in ax.get_ylabel() and "no CI" in ax.get_ylabel()


def test_eval_losses_get_a_bits_per_byte_axis_where_the_data_knows_it(monkeypatch, tmp_path):
  import json  # only here
  import math  # as above
  grid = [{"optimizer.peak_lr": lr} for lr in (1e-3, 1e-2)]
  wd = fake_workdir(tmp_path / "w", grid, [3.0, 2.5])
  _, figures = _drawn(monkeypatch, wd)
  labels = lambda fig: [a.get_ylabel() for ax in fig.axes for a in (ax, *ax.child_axes)]
  assert "bits per byte (validation text)" not in labels(figures["loss_curves.png"])
  record = wd / "groups" / "g000.json"
  record.write_text(json.dumps(dict(json.loads(record.read_text()), tokens_per_byte=0.25)))
  assert plots.bits_per_nat(results.load(wd)) == pytest.approx(0.25 / math.log(2))
  _, figures = _drawn(monkeypatch, wd)
  for name in ("loss_curves.png", "loss_vs_peak_lr.png"):
    assert "bits per byte (validation text)" in labels(figures[name]), name


def test_a_swept_list_field_is_one_setting_in_every_figure(monkeypatch, tmp_path):
  # a branch grid sweeps train.checkpoint_steps (lists); each list is one condition
  grid = [{"train.checkpoint_steps": c, "optimizer.peak_lr": lr} for c in ([], [10])
          for lr in (1e-3, 1e-2)]
  _, figures = _drawn(monkeypatch, fake_workdir(tmp_path / "w", grid, [3.0, 2.0, 2.9, 2.1]))
  labels = figures["loss_vs_peak_lr.png"].axes[0].get_legend_handles_labels()[1]
  assert labels == ["checkpoint_steps=() (n = 1: no CI)", "checkpoint_steps=(10,) (n = 1: no CI)"]


def test_a_fine_lr_grid_gets_short_ticks_and_a_single_valued_field_no_label(monkeypatch, tmp_path):
  # 2 LRs per octave over 4 octaves (scale_horizon's); model.d_model set to one value
  lrs = [round(2e-3 * 2 ** (k / 2), 6) for k in range(8)]
  grid = [{"model.d_model": 48, "schedule.warmup_steps": w, "optimizer.peak_lr": lr}
          for w in (0, 5) for lr in lrs]
  wd = fake_workdir(tmp_path / "w", grid, [3.0 + 0.01 * i for i in range(len(grid))])
  _, figures = _drawn(monkeypatch, wd)
  (ax,) = figures["loss_vs_peak_lr.png"].axes
  ticks = [t.get_text() for t in ax.get_xticklabels()]
  assert ticks[:3] == ["0.002", "0.0028", "0.004"] and len(ticks) == 8
  assert {t.get_rotation() for t in ax.get_xticklabels()} == {45.0}
  labels = ax.get_legend_handles_labels()[1]
  assert labels == ["warmup_steps=0 (n = 1: no CI)", "warmup_steps=5 (n = 1: no CI)"]


def test_a_trend_within_one_decade_labels_its_rungs(monkeypatch, tmp_path):
  figures = {}
  monkeypatch.setattr(plots, "_save", lambda fig, path, **kw: figures.setdefault("f", fig))
  rung = lambda x, e: dict(x=x, effect=e, ci95=[e - 0.01, e + 0.01])   # noqa: E731
  verdict = dict(kind="trend", claim="grows", x="tokens_per_param", metric="final_eval_loss",
                 effect=0.07, ci95=[0.02, 0.12], n_seeds=6, verdict="contradicted",
                 per_level=[rung(2.0042, -0.008), rung(8.0046, 0.034)])
  plots.plot_trends([verdict], tmp_path / "trends.png")
  (ax,) = figures["f"].axes
  assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8"]
