"""Every figure: a sweep's curves, schedules and loss vs peak LR; sharpness
over checkpoints; every schedule shape.

Figures are drawn with matplotlib's object API (`Figure`, no pyplot), so
importing this module never changes a notebook's backend.
"""
from __future__ import annotations

import pathlib

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from warmup_research import config as config_lib
from warmup_research import schedules, train


def _subplots(figsize, nrows: int = 1, ncols: int = 1, **kw):
  fig = Figure(figsize=figsize)
  return fig, fig.subplots(nrows, ncols, **kw)


def _save(fig, path: pathlib.Path, dpi: int = 100, rect=(0, 0, 1, 1)) -> pathlib.Path:
  """Lays out (inside `rect`, leaving room for a figure legend), writes."""
  fig.tight_layout(rect=rect)
  fig.savefig(path, dpi=dpi)
  return path


def plot_sweep(workdir: pathlib.Path, loaded, swept, rows, agg) -> list[pathlib.Path]:
  out = workdir / "plots"
  out.mkdir(exist_ok=True)
  written = []
  runs = loaded["record"]["runs"]
  fig, (a1, a2) = _subplots((13, 4.5), 1, 2)
  for r in runs:
    m = loaded["metrics"][r["run_id"]]
    tr = [(x["step"], x["loss"]) for x in m if "loss" in x]
    ev = [(x["step"], x["eval_loss"]) for x in m if "eval_loss" in x]
    if tr:
      a1.plot(*zip(*tr), lw=0.8, label=r["run_id"])
    if ev:
      a2.plot(*zip(*ev), marker="o", ms=3, lw=0.8, label=r["run_id"])
  a1.set(title="train loss", xlabel="step", ylabel="loss", yscale="log")
  a2.set(title="eval loss", xlabel="updates", ylabel="loss", yscale="log")
  if len(runs) <= 16:
    a2.legend(fontsize=6)
  written.append(_save(fig, out / "loss_curves.png"))

  fig, ax = _subplots((7, 4.5))
  for r in runs:
    cfg = config_lib.from_saved(r["config"])
    steps = np.arange(cfg.train.total_steps + 1)
    ax.plot(steps, np.asarray(schedules.schedule(steps, train.hparams(cfg).schedule)),
            lw=0.8, label=r["run_id"])
  ax.set(title="learning-rate schedules of the grid", xlabel="step (0 = first update)",
         ylabel="lr")
  if len(runs) <= 16:
    ax.legend(fontsize=6)
  written.append(_save(fig, out / "lr_schedules.png"))

  if "optimizer.peak_lr" in swept:
    others = [f for f in swept if f not in ("optimizer.peak_lr",) and f.split(".")[-1] != "seed"]
    lines: dict[str, list] = {}
    for a in agg:
      label = ", ".join(f"{f.split('.')[-1]}={a[f]}" for f in others) or "all"
      y = a["final_eval_mean"] if a["diverged"] < a["n"] else None
      lines.setdefault(label, []).append((a["optimizer.peak_lr"], y, a["final_eval_std"]))
    fig, ax = _subplots((7, 4.5))
    for label, pts in lines.items():
      pts.sort()
      xs = [p[0] for p in pts]
      ys = [np.nan if p[1] is None else p[1] for p in pts]
      es = [0 if p[2] is None else p[2] for p in pts]
      ax.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=label)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="final eval loss",
           title="LR sensitivity (gaps: every seed diverged)")
    ax.legend(fontsize=7)
    written.append(_save(fig, out / "loss_vs_peak_lr.png"))
  return written


def plot_analysis(workdir: pathlib.Path, rows: list[dict]) -> pathlib.Path:
  """Sharpness, preconditioned sharpness and its ratio to Adam's stability
  threshold vs step, one line per run, log scale."""
  titles = {"sharpness": "sharpness (top eigenvalue of H)",
            "preconditioned_sharpness": "preconditioned sharpness (top eig. of P^-1 H)",
            "stability_ratio": "P^-1 H sharpness x lr / (2 (1 + b1) / (1 - b1))"}
  keys = [k for k in titles if any(k in r for r in rows)]
  run_ids = list(dict.fromkeys(r["run_id"] for r in rows))
  colors = matplotlib.colormaps["tab20" if len(run_ids) > 10 else "tab10"]
  fig, axes = _subplots((5.5 * len(keys), 4.8), 1, len(keys), squeeze=False)
  for ax, key in zip(axes[0], keys):
    for i, run_id in enumerate(run_ids):
      pts = [(r["step"], r[key]) for r in rows if r["run_id"] == run_id and key in r]
      if pts:
        ax.plot(*zip(*pts), marker="o", ms=3, color=colors(i % colors.N), label=run_id)
    if all(r[key] > 0 for r in rows if key in r):
      ax.set_yscale("log")
    if key == "stability_ratio":
      ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set(title=titles[key], xlabel="step (updates done)")
    ax.title.set_fontsize(9)
  fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center",
             ncol=min(3, len(run_ids)), fontsize=6, frameon=False)
  (workdir / "plots").mkdir(exist_ok=True)
  return _save(fig, workdir / "plots" / "sharpness_vs_step.png",
               rect=(0, 0.04 * (1 + (len(run_ids) - 1) // 3), 1, 1))


def plot_schedules(out_path, *, total_steps: int = 1000, warmup_steps: int = 200) -> None:
  """Every warmup shape, decay shape and WSD cooldown shape, one panel each."""

  steps = np.arange(total_steps + 1)
  base = dict(peak_lr=1.0, total_steps=total_steps, warmup_steps=warmup_steps,
              final_frac=0.1, cooldown_steps=total_steps // 5)
  panels = [
      ("warmup shapes (decay: constant)", "warmup_shape", schedules.WARMUP_SHAPES,
       dict(decay_shape="constant")),
      ("decay shapes (warmup: linear)", "decay_shape", schedules.DECAY_SHAPES, {}),
      ("WSD cooldown shapes (last 20%)", "cooldown_shape", schedules.COOLDOWN_SHAPES,
       dict(decay_shape="wsd")),
  ]
  fig, axes = _subplots((15, 4), 1, 3)
  for ax, (title, field, names, extra) in zip(axes, panels):
    for name in names:
      hp = schedules.make_hparams(**{**base, **extra, field: name})
      ax.plot(steps, np.asarray(schedules.schedule(steps, hp)), label=name)
    ax.axvline(warmup_steps, color="gray", lw=0.5, ls=":")
    ax.set(title=title, xlabel="step (0 = first update)", ylabel="lr / peak_lr")
    ax.legend(fontsize=8)
  fig.suptitle(f"warmup_research.schedules: total_steps={total_steps}, "
               f"warmup_steps={warmup_steps}, final_frac=0.1")
  pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
  _save(fig, pathlib.Path(out_path), dpi=110)
