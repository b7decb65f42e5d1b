"""Result tables from synthetic sweep records (no training): seeds merged as
mean ± std, diverged runs counted and left out of the means, LR sensitivity
with diverged runs at the initial loss, the best row starred, and the
command / code / hardware lines."""
import math

import pytest

from warmup_research import results

SWEPT = ["optimizer.peak_lr", "seed"]


def _row(lr, seed, final, status="finished", initial=5.0):
  return {"optimizer.peak_lr": lr, "seed": seed, "status": status, "final_eval_loss": final,
          "best_eval_loss": None if final is None else final - 0.1, "initial_eval_loss": initial}


ROWS = [_row(1e-3, 0, 3.0), _row(1e-3, 1, 3.2), _row(1e-2, 0, 2.0), _row(1e-2, 1, 2.4),
        _row(1e-1, 0, float("nan"), "diverged"), _row(1e-1, 1, 4.0)]


def test_aggregate_merges_seeds_and_counts_divergence():
  agg = {a["optimizer.peak_lr"]: a for a in results.aggregate(SWEPT, ROWS)}
  assert list(agg) == [1e-3, 1e-2, 1e-1]   # grid order, seed merged away
  assert agg[1e-3]["n"] == 2 and agg[1e-3]["final_eval_mean"] == pytest.approx(3.1)
  assert agg[1e-3]["final_eval_std"] == pytest.approx(math.sqrt(0.02))
  assert agg[1e-2]["best_eval_mean"] == pytest.approx(2.1)
  # the diverged seed counts as diverged and is left out of the mean
  assert agg[1e-1]["diverged"] == 1 and agg[1e-1]["final_eval_mean"] == 4.0
  assert agg[1e-1]["final_eval_std"] == 0.0
  assert agg[1e-1]["final_eval_ci95"] is None   # one finite value: no interval
  assert agg[1e-3]["stalled"] == 0


def test_lr_sensitivity_counts_partly_diverged_lrs_by_their_finite_seeds():
  agg = results.aggregate(SWEPT, ROWS)
  (sens,) = results.lr_sensitivities(SWEPT, ROWS, agg)
  # means 3.1, 2.2, 4.0 (one of two seeds diverged: the other counts); best 2.2
  assert sens["n_lrs"] == 3
  assert sens["lr_sensitivity"] == pytest.approx((3.1 + 2.2 + 4.0) / 3 - 2.2)
  all_diverged = ROWS[:4] + [_row(1e-1, s, float("nan"), "diverged") for s in (0, 1)]
  (sens,) = results.lr_sensitivities(SWEPT, all_diverged,
                                     results.aggregate(SWEPT, all_diverged))
  assert sens["lr_sensitivity"] == pytest.approx((3.1 + 2.2 + 5.0) / 3 - 2.2)   # initial loss


def test_markdown_stars_the_best_and_names_command_code_and_hardware():
  group = dict(command="python -m warmup_research sweep experiments/x.py", code="abc1234",
               finished_at="2026-12-02 12:00:00 UTC", train_step_compiles=1,
               device=dict(platform="cpu", device_kind="cpu", n_devices=2, n_processes=1,
                           mesh={"variant": 1, "data": 2}, host="Some CPU (AVX-512)"))
  loaded = dict(record=dict(experiment="experiments/x.py"), groups=[group])
  agg = results.aggregate(SWEPT, ROWS)
  md = results.markdown(loaded, SWEPT, ROWS, agg, results.lr_sensitivities(SWEPT, ROWS, agg))
  lines = md.splitlines()
  assert "- command: `python -m warmup_research sweep experiments/x.py` at code abc1234" in lines
  assert ("- hardware: 2 x cpu (cpu) on Some CPU (AVX-512), 1 process(es), "
          "mesh {'variant': 1, 'data': 2}") in lines
  starred = [l for l in lines if l.endswith("★ |")]
  # 2.0 and 2.4: mean 2.2, t interval 2.2 ± 12.7062 * 0.2 (t with 1 degree of freedom)
  assert starred == ["| 0.01 | 2 | 0/2 | 0/2 | 2.2000 [-0.3412, 4.7412] | 2.1000 ± 0.2828 | ★ |"]
  assert "| 0.1 | 2 | 0/2 | 1/2 | 4.0000 | 3.9000 ± 0.0000 |  |" in lines
  assert "| 3 | 0.9000 |" in lines   # LRs, sensitivity: (3.1 + 2.2 + 4.0) / 3 - 2.2


def test_csv_writes_missing_values_as_empty_cells():
  text = results.to_csv(["run_id", "diverged_step"], [{"run_id": "a", "diverged_step": None},
                                                      {"run_id": "b", "diverged_step": 7}])
  assert text == "run_id,diverged_step\na,\nb,7\n"
