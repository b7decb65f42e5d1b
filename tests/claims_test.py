"""Claims: checked against the grid, one paired difference per seed (per level or
pooled), failures kept, equivalence by TOST, Holm and BH adjustments;
the results page's table generated from summary.json files."""
import itertools
import json
import math
import pathlib
import re
import statistics

import numpy as np
import pytest
from helpers import tiny_config

from warmup_research import claims, plan, plots, results, stats, sweep, workdir
from warmup_research.errors import ConfigError
from warmup_research.sweep import axis, product

SWEPT = ["schedule.warmup_steps", "optimizer.peak_lr", "seed"]


def _row(w, lr, seed, loss, outcome="trained"):
  return {"run_id": f"{w}-{lr}-{seed}", "schedule.warmup_steps": w, "optimizer.peak_lr": lr,
          "seed": seed, "final_eval_loss": loss, "best_eval_loss": loss, "outcome": outcome}


def _claim(**kw):
  base = dict(paper="P", a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 10},
              metric="final_eval_loss", direction="lower")
  return claims.validate([claims.claim("x", **dict(base, **kw))], SWEPT)[0]


def _pairs(diffs_SxL, lrs=(1e-3, 1e-2, 1e-1, 1.0), base=3.0):
  """Rows whose b - a at seed s and lr lrs[l] is diffs_SxL[s][l]."""
  rows = []
  for s, diffs in enumerate(diffs_SxL):
    for lr, d in zip(lrs, diffs):
      rows += [_row(0, lr, s, base + 0.01 * s), _row(10, lr, s, base + 0.01 * s + d)]
  return rows


def test_a_claim_pairs_runs_by_seed_and_computes_its_verdict():
  # warmup lowers the loss by 0.1 +- 0.01 in each of 5 seeds at lr 1e-2; nothing at 1e-3
  rows = [_row(0, 1e-2, s, 3.0 + 0.1 * s) for s in range(5)]
  rows += [_row(10, 1e-2, s, 2.9 + 0.1 * s + 0.01 * (s % 2)) for s in range(5)]
  rows += [_row(w, 1e-3, s, 3.5) for w in (0, 10) for s in range(5)]
  c = _claim(where={"optimizer.peak_lr": 1e-2})
  v = claims.evaluate(c, SWEPT, rows)
  assert v["n_seeds"] == 5 and v["method"] == "paired t" and v["per_level"] == []
  assert v["effect"] == pytest.approx(-0.1 + 0.01 * 2 / 5)
  assert v["ci95"][1] < 0 and v["verdict"] == "reproduced" and v["sign"] == "5 of 5 seeds lower"
  assert 0 < v["p"] < 0.05
  flat = dict(c, where={"optimizer.peak_lr": 1e-3})   # no spread, no difference: p = 1
  assert claims.evaluate(flat, SWEPT, rows)["verdict"] == "inconclusive"
  opposite = dict(c, direction="higher")
  assert claims.evaluate(opposite, SWEPT, rows)["verdict"] == "contradicted"


def test_a_claim_names_its_sides_as_sweep_json_stores_them():
  # sweep.json is written with sorted keys; a claim read back from it and one read from the
  # experiment file must label (and record) their sides identically
  c = claims.claim("x", paper="p", a={"z": 0, "b": 1}, b={"z": 1, "b": 1},
                   where={"y": 2, "a": 3}, metric="final_eval_loss")
  assert [list(c[k]) for k in ("a", "b", "where")] == [["b", "z"], ["b", "z"], ["a", "y"]]


def test_the_seed_is_the_unit_not_the_lr_x_seed_cell():
  # 4 LRs x 5 seeds = 20 cells, but the differences move with the seed: its mean over the
  # LRs is all a seed says. Counted as 20 pairs the t interval excludes 0; over 5 seeds not.
  seed_means = [-0.30, -0.20, 0.10, -0.25, 0.05]
  diffs_SxL = [[m + 0.01 * (lr % 2) for lr in range(4)] for m in seed_means]
  rows = _pairs(diffs_SxL)
  cells = [d for row in diffs_SxL for d in row]
  old = stats.paired_difference([0.0] * 20, cells)
  assert old.n_pairs == 20 and stats.verdict(old.ci95, "lower") == "reproduced"
  v = claims.evaluate(_claim(pool="mean"), SWEPT, rows)
  assert v["n_seeds"] == 5 and v["verdict"] == "inconclusive"
  assert v["effect"] == pytest.approx(sum(seed_means) / 5 + 0.005)
  assert [p["n_seeds"] for p in v["per_level"]] == [5, 5, 5, 5]
  assert v["mde"] is not None and v["mde"] > abs(v["effect"])   # "could not detect less than"


def test_each_level_by_default_holm_within_the_claim_and_mixed_signs():
  rng = [0.004, -0.003, 0.002, -0.001, 0.0]
  # lr 1e-3: -0.2 at every seed (p ~ 1e-6); lr 1e-2: nothing
  rows = _pairs([[-0.2 + e, e] for e in rng], lrs=(1e-3, 1e-2))
  v = claims.evaluate(_claim(), SWEPT, rows)
  assert [p["verdict_within"] for p in v["per_level"]] == ["reproduced", "inconclusive"]
  assert v["verdict"] == "reproduced" and v["effect"] is None and v["n_seeds"] == 5
  # a level that alone passes at p ~ 0.03 fails after Holm over two levels
  weak = [-0.05, -0.12, 0.01, -0.09, -0.06]
  p_alone = stats.superiority(weak, "lower").p
  assert 0.025 < p_alone < 0.05
  v = claims.evaluate(_claim(), SWEPT, _pairs([[w, e] for w, e in zip(weak, rng)],
                                             lrs=(1e-3, 1e-2)))
  assert v["per_level"][0]["verdict"] == "reproduced"
  assert v["per_level"][0]["p_within"] == pytest.approx(min(1, 2 * p_alone))
  assert v["verdict"] == "inconclusive"
  # one level reproduces and another contradicts: inconclusive, flagged
  rows = _pairs([[-0.2 + e, 0.2 + e] for e in rng], lrs=(1e-3, 1e-2))
  v = claims.evaluate(_claim(), SWEPT, rows)
  assert v["verdict"] == "inconclusive" and "mixed signs" in v["flags"]
  pooled = claims.evaluate(_claim(pool="mean"), SWEPT, rows)   # the mean hides the flip...
  assert abs(pooled["effect"]) < 0.01 and "mixed signs" in pooled["flags"]   # ...the flag not
  assert "peak_lr=0.001: -0.1996" in claims.levels(pooled)


def test_a_side_that_failed_is_premise_failed_not_a_verdict_from_one_pair():
  # large_batch's case: 4 of 5 large-batch runs diverged and the fifth stalled
  rows = [_row(0, 1e-2, s, 3.0) for s in range(5)]
  rows += [_row(10, 1e-2, s, None, "diverged") for s in range(4)]
  rows += [_row(10, 1e-2, 4, 3.2, "stalled")]
  v = claims.evaluate(_claim(), SWEPT, rows)
  assert v["n_seeds"] == 1 and v["verdict"].startswith("premise failed")
  assert "failed: a 0/5, b 5/5" in v["verdict"] and v["failed"] == {"a": [0, 5], "b": [5, 5]}
  # declared in the claim, a diverged run counts as its initial loss (5.0): 5 pairs, all worse
  rows = [dict(r, initial_eval_loss=5.0) for r in rows]
  capped = claims.evaluate(_claim(failures="cap", direction="higher"), SWEPT, rows)
  assert capped["n_seeds"] == 5 and capped["verdict"] == "reproduced"
  assert capped["effect"] == pytest.approx((4 * 2.0 + 0.2) / 5)


def test_bits_per_byte_compares_sides_under_different_tokenizers():
  # A BPE side's loss per token is higher (a token holds ~3 bytes) but its bits per byte
  # lower: the claim reads the metric it names, and a BPE run that diverged is a failure.
  tpb = {"bytes": 1.0, "bpe": 0.3}
  rows = [{"run_id": f"{t}-{s}", "data.tokenizer": t, "seed": s, "outcome": "trained",
           "final_eval_loss": loss, "best_eval_loss": loss,
           "final_eval_bpb": loss * tpb[t] / 0.6931471805599453,
           "best_eval_bpb": loss * tpb[t] / 0.6931471805599453}
          for s in range(5) for t, loss in (("bytes", 1.60 + 0.01 * s), ("bpe", 4.0 + 0.02 * s))]
  swept = ["data.tokenizer", "seed"]
  mk = lambda **kw: claims.validate([claims.claim(  # noqa: E731
      "x", paper="P", a={"data.tokenizer": "bytes"}, b={"data.tokenizer": "bpe"},
      direction="lower", **kw)], swept)[0]
  bpb = claims.evaluate(mk(metric="final_eval_bpb"), swept, rows)
  assert bpb["verdict"] == "reproduced" and bpb["n_seeds"] == 5
  assert bpb["effect"] == pytest.approx(statistics.fmean(
      [(4.0 + 0.02 * s) * 0.3 / 0.6931471805599453 - (1.60 + 0.01 * s) / 0.6931471805599453
       for s in range(5)]))
  assert claims.evaluate(mk(metric="final_eval_loss"), swept, rows)["verdict"] == "contradicted"
  # the vocabulary size, zipped with the tokenizer, belongs to each side: not an axis whose
  # levels (256 on one side, 4096 on the other) would never pair
  zipped = [dict(r, **{"model.vocab_size": 256 if r["data.tokenizer"] == "bytes" else 4096})
            for r in rows]
  v = claims.evaluate(mk(metric="final_eval_bpb"), [*swept, "model.vocab_size"], zipped)
  assert v["n_seeds"] == 5 and v["verdict"] == "reproduced" and v["per_level"] == []
  assert "sides differ in model.vocab_size (256 vs 4096)" in v["flags"]
  rows[1] = dict(rows[1], outcome="diverged", final_eval_bpb=None)
  assert claims.evaluate(mk(metric="final_eval_bpb"), swept, rows)["failed"]["b"] == [1, 5]
  with pytest.raises(ConfigError, match="failures must be 'drop' or"):
    mk(metric="final_eval_bpb", failures="cap")
  with pytest.raises(ConfigError, match="does not compare across tokenizers"):
    mk(metric="final_eval_bpb", at_best="data.tokenizer")


def test_a_real_axis_with_missing_runs_is_never_taken_for_a_sides_field():
  # width x depth, but only (32, 2) and (64, 4) finished: depth is an axis of the grid,
  # not a property of the sides, so width's claim has no pairs (never a depth effect)
  swept = ["model.d_model", "model.num_layers", "seed"]
  rows = [{"run_id": f"{w}-{d}-{s}", "model.d_model": w, "model.num_layers": d, "seed": s,
           "outcome": "trained" if (w, d) in ((32, 2), (64, 4)) else None,
           "final_eval_loss": 3.0 - 0.1 * (d == 4) + 0.01 * s, "best_eval_loss": 3.0}
          for w in (32, 64) for d in (2, 4) for s in range(5)]
  c = claims.validate([claims.claim("x", paper="P", a={"model.d_model": 32},
                                    b={"model.d_model": 64}, metric="final_eval_loss",
                                    direction="lower")], swept)[0]
  v = claims.evaluate(c, swept, rows)
  assert v["n_seeds"] == 0 and v["verdict"].startswith("insufficient")
  assert not any(f.startswith("sides differ") for f in v["flags"])


def test_fewer_than_three_seeds_never_get_a_verdict():
  rows = [_row(w, 1e-2, s, 3.0 - 0.5 * (w == 10) + 0.01 * s * (1 + w)) for w in (0, 10)
          for s in range(2)]
  assert stats.superiority([-0.5, -0.4], "lower").p < 0.5   # a t on 2 pairs would go on
  v = claims.evaluate(_claim(), SWEPT, rows)
  assert v["n_seeds"] == 2 and v["verdict"] == "insufficient"
  with pytest.raises(ConfigError, match="min_seeds must be a whole number >= 3"):
    _claim(min_seeds=2)


def test_equivalence_is_two_one_sided_tests_against_the_declared_margin():
  def rows_for(diffs):
    return _pairs([[d] for d in diffs], lrs=(1e-2,))
  c = claims.validate([claims.equivalent("b matches a", paper="P", margin=0.05,
                                         a={"schedule.warmup_steps": 0},
                                         b={"schedule.warmup_steps": 10},
                                         metric="final_eval_loss")], SWEPT)[0]
  same = claims.evaluate(c, SWEPT, rows_for([0.01, -0.01, 0.005, 0.0, -0.004]))
  assert same["verdict"] == "equivalent" and same["margin"] == 0.05
  assert -0.05 < same["ci90"][0] and same["ci90"][1] < 0.05
  worse = claims.evaluate(c, SWEPT, rows_for([0.30, 0.25, 0.28, 0.32, 0.27]))
  assert worse["verdict"] == "not equivalent"
  # a superiority test of the same noisy data is inconclusive, which is not equivalence
  noisy = [0.10, -0.12, 0.05, -0.02, 0.09]
  v = claims.evaluate(c, SWEPT, rows_for(noisy))
  assert v["verdict"] == "inconclusive" and v["mde"] > 0.05
  assert "could not establish a margin below" in claims.notes(v)
  sup = claims.evaluate(_claim(), SWEPT, rows_for(noisy))
  assert sup["verdict"] == "inconclusive" and "could not detect a |effect| below" in (
      claims.notes(sup))
  with pytest.raises(ConfigError, match="needs a margin > 0"):
    claims.validate([dict(c, margin=0)], SWEPT)


def test_max_trained_lr_is_a_censored_boundary_never_a_dropped_seed():
  rows = []
  lrs = (1e-3, 1e-2, 1e-1)
  for s in range(5):
    for lr in lrs:
      # a trains up to 1e-2 (seed 0: at no LR); b trains at every LR in seeds 0-3, to 1e-2 in 4
      ok_a = lr <= 1e-2 and s != 0
      ok_b = lr <= 1e-2 or s < 4
      rows.append(_row(0, lr, s, 3.0, "trained" if ok_a else "stalled"))
      rows.append(_row(10, lr, s, 3.0, "trained" if ok_b else "diverged"))
  c = _claim(metric="max_trained_lr", direction="higher")
  v = claims.evaluate(c, SWEPT, rows)
  assert v["n_seeds"] == 5 and v["censored"] == {"a": [1, 5], "b": [4, 5]}
  low, high = stats.censored_bounds([-3, -2, -1])   # -3.5 and -0.5
  mid = stats.gap_boundary([-3, -2, -1], 1)   # the middle of the gap above 1e-2: -1.5
  assert mid == pytest.approx(-1.5)
  expected = [high - low] + [high - mid] * 3 + [0.0]
  assert v["effect"] == pytest.approx(sum(expected) / 5, abs=1e-6)
  assert v["method"] == "seed bootstrap of the boundary, exact sign floor"
  # one tie leaves 4 of 4 seeds: the exact floor 2/16 keeps it inconclusive, and the
  # interval shown is the one that p inverts to: none exists at 4 seeds
  assert v["verdict"] == "inconclusive" and v["p"] == pytest.approx(2 / 16)
  assert v["ci95"] is None and "needs >= 6 seeds" in claims.notes(v)


def test_rates_are_paired_per_seed_with_the_exact_sign_test():
  rows = [_row(0, 1e-2, s, None, "diverged") for s in range(6)]
  rows += [_row(10, 1e-2, s, 3.0) for s in range(6)]
  rate = _claim(metric="diverged")
  v = claims.evaluate(rate, SWEPT, rows)
  assert v["n_seeds"] == 6 and v["effect"] == -1.0 and v["method"].startswith("exact sign")
  # two-sided 5% (2.5% each way): 6 of 6 seeds, p = 2 / 64
  assert v["p"] == pytest.approx(2 / 64) and v["verdict"] == "reproduced"
  assert claims.evaluate(_claim(), SWEPT, rows)["verdict"].startswith("premise failed")
  # 5 of 5 is 2 / 32 = 0.0625: the floor cannot pass, and the verdict says how many it needs
  five = claims.evaluate(rate, SWEPT, [r for r in rows if r["seed"] < 5])
  assert five["verdict"] == "inconclusive" and five["p"] == pytest.approx(2 / 32)
  assert five["mde"] is None and five["mde_note"].startswith("needs >= 6 seeds")


def test_peak_is_the_log10_of_an_analysis_column_max_over_the_early_window():
  rows = [_row(w, 1e-2, s, 3.0) for w in (0, 10) for s in range(4)]
  # ratio rises to 10^(1 + s/10) by step 10 without warmup, 10^(0.5 + s/10) with; a huge
  # value after the window (step 20) must not count
  measured = {f"{w}-0.01-{s}": [
      dict(step=5, stability_ratio=1.0), dict(step=10, stability_ratio=10 ** (
          (1.0 if w == 0 else 0.5) + s / 10 + (0.01 * s if w else 0))),
      dict(step=20, stability_ratio=1e6)] for w in (0, 10) for s in range(4)}
  c = _claim(metric="peak:stability_ratio:10")
  v = claims.evaluate(c, SWEPT, rows, measured=measured)
  assert v["n_seeds"] == 4 and v["effect"] == pytest.approx(-0.5 + 0.01 * 1.5)
  assert v["verdict"] == "reproduced"
  assert math.isclose(claims._value(c["metric"], [rows[0]], None, measured), 1.0)
  pending = claims.evaluate(c, SWEPT, rows)
  assert pending["n_seeds"] == 0 and pending["verdict"].startswith("not measured")


def test_at_best_is_chosen_leave_one_seed_out_with_the_in_sample_choice_beside():
  rows = []
  for s in range(4):
    rows += [_row(0, 1e-3, s, 3.0 + 0.01 * s), _row(0, 1e-2, s, 3.2)]       # a's best: 1e-3
    rows += [_row(10, 1e-3, s, 3.1), _row(10, 1e-2, s, 2.8 + 0.02 * s)]     # b's best: 1e-2
  c = claims.claim("x", paper="P", a={"schedule.warmup_steps": 0},
                   b={"schedule.warmup_steps": [10, 20]}, at_best="optimizer.peak_lr",
                   metric="final_eval_loss", direction="lower")
  v = claims.evaluate(claims.validate([c], SWEPT)[0], SWEPT, rows)
  assert v["n_seeds"] == 4 and v["effect"] == pytest.approx(-0.2 + 0.01 * 1.5)
  assert v["best"] == [dict(level={}, a=dict(in_sample=1e-3, loso=[1e-3] * 4),
                            b=dict(in_sample=1e-2, loso=[1e-2] * 4))]
  assert "each at its best peak_lr (leave-one-seed-out" in claims.conditions(v)
  # seed 0 alone makes b's 1e-3 look best in-sample; chosen on the other seeds, seed 0's
  # own run is read at 1e-2, so its luck does not pick its own level
  lucky = [dict(r, final_eval_loss=1.0) if r["run_id"] == "10-0.001-0" else r for r in rows]
  v = claims.evaluate(claims.validate([c], SWEPT)[0], SWEPT, lucky)
  assert v["best"][0]["b"]["in_sample"] == 1e-3
  assert v["best"][0]["b"]["loso"] == [1e-2, 1e-3, 1e-3, 1e-3]
  assert v["effect"] == pytest.approx(((2.8 - 3.0) + 3 * 0.1 - 0.06) / 4)
  assert "optimum at grid edge" in v["flags"]   # two LRs: every choice is an end


def test_an_optimum_at_the_grid_edge_and_a_grid_grown_past_its_plan_are_flagged():
  rows = []
  for s in range(5):
    for lr, a_loss, b_loss in ((1e-3, 3.0, 3.0), (1e-2, 2.5, 2.6), (1e-1, 2.9, 2.4)):
      rows += [dict(_row(0, lr, s, a_loss + 0.01 * s), initial_eval_loss=5.0),
               dict(_row(10, lr, s, b_loss - 0.02 * s), initial_eval_loss=5.0)]
  c = _claim(at_best="optimizer.peak_lr")
  v = claims.evaluate(c, SWEPT, rows)
  assert v["best"][0]["b"]["loso"] == [1e-1] * 5 and "optimum at grid edge" in v["flags"]
  higher = [dict(_row(w, 1.0, s, 4.0), initial_eval_loss=5.0) for w in (0, 10) for s in range(5)]
  inside = claims.evaluate(c, SWEPT, rows + higher)   # 1e-1 is no longer the grid's end
  assert "optimum at grid edge" not in inside["flags"]
  assert "exploratory" in claims.evaluate(_claim(at_best="optimizer.peak_lr", planned_seeds=3),
                                          SWEPT, rows)["flags"]
  assert "exploratory" not in claims.evaluate(_claim(at_best="optimizer.peak_lr",
                                                     planned_seeds=5), SWEPT, rows)["flags"]


def test_holm_within_an_experiment_and_benjamini_hochberg_across_the_table():
  made = [dict(claim=str(i), verdict=v, p=p) for i, (v, p) in enumerate(
      [("reproduced", 0.01), ("contradicted", 0.02), ("reproduced", 0.04),
       ("premise failed (1 of 5 seeds paired)", None), ("inconclusive", 0.5)])]
  holm = claims.adjust(made)
  # 4 tested: 0.01 x 4, max(0.04, 0.02 x 3), max(0.06, 0.04 x 2), 0.5
  assert [r["p_adjusted"] for r in holm] == pytest.approx([0.04, 0.06, 0.08, None, 0.5])
  assert [r["verdict_adjusted"] for r in holm] == [
      "reproduced", "inconclusive", "inconclusive", made[3]["verdict"], "inconclusive"]
  bh = claims.adjust(made, "bh", "bh")
  assert [r["p_bh"] for r in bh] == pytest.approx([0.04, 0.04, 0.16 / 3, None, 0.5])
  assert [r["verdict_bh"] for r in bh][:3] == ["reproduced", "contradicted", "inconclusive"]


def test_claims_written_before_the_new_options_record_as_they_did():
  # sweep.json (and the committed results' record hashes) hold the claim dicts: an option
  # at its default is left out, so a claim that sets none keeps its old dict
  c = claims.claim("x", paper="P", a={}, b={}, metric="final_eval_loss", direction="lower")
  assert set(c) == {"claim", "paper", "a", "b", "where", "metric", "direction", "at_best",
                    "method", "comment"}
  assert claims.claim("x", paper="P", a={}, b={}, metric="final_eval_loss", direction="lower",
                      pool="mean")["pool"] == "mean"


def test_lr_sensitivity_is_paired_per_seed():
  rows = []
  for s in range(3):
    for lr, a_loss, b_loss in ((1e-3, 3.0, 3.0), (1e-2, 2.5, 2.5), (1e-1, 5.5, 2.9)):
      rows += [dict(_row(0, lr, s, a_loss + 0.01 * s), initial_eval_loss=5.0),
               dict(_row(10, lr, s, b_loss + 0.01 * s), initial_eval_loss=5.0)]
  v = claims.evaluate(_claim(metric="lr_sensitivity"), SWEPT, rows)
  # seed s: a = mean(3, 2.5, 5 (capped at the initial loss)) - 2.5 - s / 300 = 1 - s / 300
  # (the capped LR keeps 5.0 while the others move by 0.01 s); b = 0.3
  assert v["n_seeds"] == 3 and v["effect"] == pytest.approx(-0.7 + 0.01 / 3)


def test_argmin_is_the_best_value_of_a_field_per_seed_over_it_and_the_lr():
  # batch 8: best warmup 0 at every seed (at lr 1e-2); batch 32: best warmup
  # 10 or 20 by seed (seed 1's at lr 1e-3)
  swept = ["data.batch_size", *SWEPT]
  best32 = {0: (10, 1e-2), 1: (20, 1e-3), 2: (20, 1e-2), 3: (10, 1e-2), 4: (10, 1e-2)}
  rows = []
  best32[5] = (20, 1e-2)
  for s in range(6):
    for w in (0, 10, 20):
      for lr in (1e-3, 1e-2):
        for b, best in ((8, (0, 1e-2)), (32, best32[s])):
          rows.append(dict(_row(w, lr, s, 2.0 if (w, lr) == best else 3.0),
                           **{"data.batch_size": b, "initial_eval_loss": 5.0}))
  c = claims.validate([claims.claim(
      "larger batches want longer warmup", paper="P", a={"data.batch_size": 8},
      b={"data.batch_size": 32}, metric="argmin:schedule.warmup_steps",
      direction="higher")], swept)[0]
  v = claims.evaluate(c, swept, rows)
  assert v["n_seeds"] == 6 and v["effect"] == 15 and v["verdict"] == "reproduced"
  assert v["method"].startswith("exact sign") and v["p"] == pytest.approx(2 / 64)
  assert "optimum at grid edge" in v["flags"]   # batch 8's best, 0, is the shortest warmup
  # a diverged run counts as the initial loss, so it is never the best
  rows = [dict(r, outcome="diverged", final_eval_loss=1.0) if r["data.batch_size"] == 32
          and r["schedule.warmup_steps"] == 0 else r for r in rows]
  assert claims.evaluate(c, swept, rows)["effect"] == 15
  with pytest.raises(ConfigError, match="argmin:model.d_model names a field the grid does"):
    claims.validate([dict(c, metric="argmin:model.d_model")], swept)
@pytest.mark.parametrize("bad,message", [
    ("not a list", "get_claims: must return a list"),
    ([{"claim": "x"}], r"get_claims\(\)\[0\]: must be a dict"),
    ([claims.claim("x", paper="P", a={"model.norm": "post"}, b={}, metric="final_eval_loss",
                   direction="lower")], "which the grid does not sweep"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="accuracy", direction="lower")],
     "unknown metric 'accuracy'"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="peak:sharpness", direction="lower")],
     "unknown metric 'peak:sharpness'.*peak:COLUMN:UPDATES"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="stalled", direction="down")],
     "direction must be"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="stalled", direction="lower",
                   pool="sum")], "pool must be None"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="stalled", direction="lower",
                   failures="cap")], "failures must be 'drop' or"),
    ([claims.equivalent("x", paper="P", a={}, b={}, metric="max_trained_lr", margin=0.1)],
     "equivalence is for continuous metrics"),
    ([claims.claim("x", paper="P", a={}, b={}, metric="stalled", direction="lower",
                   planned_seeds=2)], "planned_seeds must be a whole number >= 3"),
])
def test_bad_claims_name_the_claim_and_what_is_allowed(bad, message):
  with pytest.raises(ConfigError, match=message):
    claims.validate(bad, SWEPT)


def test_a_sweep_records_its_claims_and_reports_their_verdicts(tmp_path):
  points = product(axis("schedule.warmup_steps", [0, 5]), axis("seed", [0, 1, 2]))
  variants = sweep.expand(tiny_config(**{"train.total_steps": 10, "train.eval_every": 5}),
                          points)
  c = claims.validate([claims.claim("warmup lowers the loss", paper="P",
                                    a={"schedule.warmup_steps": 0},
                                    b={"schedule.warmup_steps": 5},
                                    metric="final_eval_loss", direction="lower")],
                      sweep.swept_fields(variants))
  wd = tmp_path / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants, c), kind="sweep")
  sweep.run(variants, pathlib.Path(wd), progress=False)
  summary = results.write(wd, tensorboard=False)
  (v,) = summary["claims"]
  finals = {(r["schedule.warmup_steps"], r["seed"]): r["final_eval_loss"]
            for r in summary["runs"]}
  diffs = [finals[5, s] - finals[0, s] for s in range(3)]
  assert v["n_seeds"] == 3 and v["effect"] == pytest.approx(sum(diffs) / 3)
  assert v["verdict"] in ("reproduced", "contradicted", "inconclusive")
  assert "| warmup lowers the loss | P | final_eval_loss |" in (wd / "summary.md").read_text()
  assert (wd / "plots" / "claims.png").exists() == (v["ci95"] is not None)
  assert all(r["outcome"] in ("trained", "stalled", "diverged") for r in summary["runs"])
  # the results page's table, generated from summary.json files
  page = tmp_path / "results"
  (page / "exp").mkdir(parents=True)
  (page / "exp" / "summary.json").write_text(json.dumps(summary))
  (page / "README.md").write_text("# Results\n\nprose\n")
  results.write_claims(page)
  text = (page / "README.md").read_text()
  assert text.startswith("# Results\n\nprose\n") and "| [exp](exp/summary.md) |" in text
  again = results.write_claims(page)   # replaced between its markers, not appended twice
  assert (page / "README.md").read_text() == text and len(again) == 1




def _boundary_rows(patterns_a, patterns_b, lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2)):
  """Rows of a max_trained_lr claim: seed s's outcome at lrs[i] is patterns_X[s][i]
  (1 trained, 0 diverged)."""
  rows = []
  for w, patterns in ((0, patterns_a), (10, patterns_b)):
    for s, pattern in enumerate(patterns):
      rows += [_row(w, lr, s, 3.0, "trained" if ok else "diverged")
               for lr, ok in zip(lrs, pattern)]
  return rows


def test_the_boundary_never_goes_down_when_a_failed_run_trains():
  # every outcome pattern on a 5-LR grid, one failed run flipped to trained: the boundary
  # never goes down, and a claim's verdict (b at that pattern in every seed) never weakens
  lrs = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
  runs = lambda p: [dict(_row(0, lr, 0, 3.0), outcome="trained" if ok else "diverged")   # noqa: E731
                    for lr, ok in zip(lrs, p)]
  patterns = list(itertools.product([0, 1], repeat=5))
  bound = {p: claims._boundary(runs(p))[0] for p in patterns}
  c = _claim(metric="max_trained_lr", direction="higher")
  a = [(1, 1, 0, 0, 0)] * 6
  rank = {"contradicted": 0, "inconclusive": 1, "reproduced": 2}
  verdict = {p: rank[claims.evaluate(c, SWEPT, _boundary_rows(a, [p] * 6))["verdict"]]
             for p in patterns}
  moves = set()
  for p in patterns:
    for i in range(5):
      if not p[i]:
        q = p[:i] + (1,) + p[i + 1:]
        assert bound[q] >= bound[p], (p, q)
        one = [q] + [p] * 5   # one seed's run flipped
        got = rank[claims.evaluate(c, SWEPT, _boundary_rows(a, one))["verdict"]]
        assert got >= verdict[p], (p, q)
        moves.add((verdict[p], verdict[q]))
  assert (1, 2) in moves and (0, 1) in moves   # not vacuous
  # the review's pattern: training one more LR raised no boundary before; now it cannot lower it
  assert bound[(1, 0, 1, 1, 1)] >= bound[(1, 0, 1, 1, 0)]
  # a hole is flagged; trained at the top only is not 'trained everywhere'
  assert claims._boundary(runs((1, 0, 1, 1, 0)))[1] == "hole"
  assert claims._boundary(runs((0, 0, 0, 0, 1)))[1] == "hole"   # diverged below: a hole
  assert claims._boundary(runs((1, 1, 1, 1, 1)))[1] == "above"
  v = claims.evaluate(c, SWEPT, _boundary_rows(a, [(1, 0, 1, 1, 0)] * 6))
  assert "non-monotone outcomes" in v["flags"] and v["censored"]["b"] == [0, 6]


def test_a_seed_whose_runs_all_failed_is_no_evidence_for_argmin_or_sensitivity():
  swept = ["data.batch_size", *SWEPT]
  rows = []
  for s in range(5):
    for w in (0, 10, 20):
      for lr in (1e-3, 1e-2):
        rows.append(dict(_row(w, lr, s, 2.0 if (w, lr) == (10, 1e-2) else 3.0),
                         **{"data.batch_size": 8, "initial_eval_loss": 5.0}))
        rows.append(dict(_row(w, lr, s, None, "diverged"),
                         **{"data.batch_size": 32, "initial_eval_loss": 5.0}))
  c = claims.validate([claims.claim(
      "x", paper="P", a={"data.batch_size": 8}, b={"data.batch_size": 32},
      metric="argmin:schedule.warmup_steps", direction="higher")], swept)[0]
  v = claims.evaluate(c, swept, rows)   # was: contradicted, the first row's warmup each seed
  assert v["verdict"].startswith("premise failed") and v["failed"]["b"] == [30, 30]
  # a tie between warmups has no best value, not the first row's
  tied = [dict(r, final_eval_loss=2.0, outcome="trained") if r["data.batch_size"] == 32
          and r["optimizer.peak_lr"] == 1e-2 else r for r in rows]
  assert claims.evaluate(c, swept, tied)["verdict"].startswith("premise failed")
  # lr_sensitivity: an arm diverged at every LR had sensitivity 0, "reproduced"
  rows = []
  for s in range(5):
    for lr, loss in ((1e-3, 3.0), (1e-2, 2.5 + 0.01 * s), (1e-1, 2.9)):
      rows += [dict(_row(0, lr, s, loss), initial_eval_loss=5.0),
               dict(_row(10, lr, s, None, "diverged"), initial_eval_loss=5.0)]
  v = claims.evaluate(_claim(metric="lr_sensitivity"), SWEPT, rows)
  assert v["verdict"].startswith("premise failed") and v["failed"]["b"] == [15, 15]


def test_a_nan_loss_on_a_trained_run_is_a_failure_counted():
  rows = [_row(0, 1e-2, s, 3.0 + 0.01 * s) for s in range(5)]
  rows += [_row(10, 1e-2, s, float("nan") if s < 3 else 2.9 + 0.01 * s) for s in range(5)]
  v = claims.evaluate(_claim(), SWEPT, rows)
  assert v["verdict"].startswith("premise failed") and v["failed"]["b"] == [3, 5]


def test_equivalence_over_levels_that_flip_sign_is_neither_equivalent_nor_unflagged():
  e = [0.004, -0.003, 0.002, -0.001, 0.0]
  rows = _pairs([[-0.2 + x, 0.2 + x] for x in e], lrs=(1e-3, 1e-2))
  for pool in ("mean", None):
    c = claims.validate([claims.equivalent("x", paper="P", margin=0.05,
                                           a={"schedule.warmup_steps": 0},
                                           b={"schedule.warmup_steps": 10},
                                           metric="final_eval_loss", pool=pool)], SWEPT)[0]
    v = claims.evaluate(c, SWEPT, rows)
    assert v["verdict"] == "not equivalent" and "mixed signs" in v["flags"], pool
  # pooled inside the margin, one level inconclusive: inconclusive, and it says why
  rows = _pairs([[0.01 + x, 0.03 + 10 * x] for x in e], lrs=(1e-3, 1e-2))
  c = claims.validate([claims.equivalent("x", paper="P", margin=0.05,
                                         a={"schedule.warmup_steps": 0},
                                         b={"schedule.warmup_steps": 10},
                                         metric="final_eval_loss", pool="mean")], SWEPT)[0]
  v = claims.evaluate(c, SWEPT, rows)
  assert v["verdict"] == "inconclusive" and v["p"] is None
  assert "pooled equivalent, but inconclusive at peak_lr=0.01" in claims.notes(v)


def test_noninferiority_is_one_sided_so_a_better_result_is_not_a_failure():
  c = claims.validate([claims.noninferior("b is no worse than a", paper="P", margin=0.05,
                                          a={"schedule.warmup_steps": 0},
                                          b={"schedule.warmup_steps": 10},
                                          metric="final_eval_loss")], SWEPT)[0]
  rows_for = lambda d: _pairs([[x] for x in d], lrs=(1e-2,))   # noqa: E731
  better = claims.evaluate(c, SWEPT, rows_for([-0.30, -0.25, -0.28, -0.32, -0.27]))
  assert better["verdict"] == "non-inferior"   # two-sided equivalence said "not equivalent"
  eq = claims.validate([dict(c, kind="equivalence", direction=None)], SWEPT)[0]
  assert claims.evaluate(eq, SWEPT, rows_for([-0.30, -0.25, -0.28, -0.32, -0.27]))[
      "verdict"] == "not equivalent"
  worse = claims.evaluate(c, SWEPT, rows_for([0.30, 0.25, 0.28, 0.32, 0.27]))
  assert worse["verdict"] == "inferior" and worse["ci95"][0] > 0.05
  noisy = claims.evaluate(c, SWEPT, rows_for([0.10, -0.12, 0.05, -0.02, 0.09]))
  assert noisy["verdict"] == "inconclusive" and noisy["mde"] > 0.05
  assert "vs +0.05" in claims.interval(noisy)
  with pytest.raises(ConfigError, match="needs a margin > 0"):
    claims.validate([dict(c, margin=None)], SWEPT)


def test_a_level_without_a_test_blocks_the_claims_verdict():
  # lr 1e-3 reproduces at every seed; at lr 1e-1 every b run diverged
  rows = []
  for s in range(5):
    rows += [_row(0, 1e-3, s, 3.0 + 0.01 * s), _row(10, 1e-3, s, 2.8 + 0.011 * s)]
    rows += [_row(0, 1e-1, s, 3.0), _row(10, 1e-1, s, None, "diverged")]
  v = claims.evaluate(_claim(), SWEPT, rows)   # was: reproduced
  assert v["verdict"].startswith("premise failed") and v["verdict"].endswith("at peak_lr=0.1")
  assert [p["verdict"][:14] for p in v["per_level"]] == ["reproduced", "premise failed"]
  # a contradiction at another level still stands
  rows = [dict(r, final_eval_loss=3.5 + 0.013 * r["seed"]) if r["run_id"].startswith("10-0.001")
          else r for r in rows]
  assert claims.evaluate(_claim(), SWEPT, rows)["verdict"] == "contradicted"


def test_every_inconclusive_verdict_carries_an_mde_at_the_alpha_it_was_tested_at():
  noisy = [0.10, -0.12, 0.05, -0.02, 0.09]
  v = claims.evaluate(_claim(), SWEPT, _pairs([[x] for x in noisy], lrs=(1e-2,)))
  assert v["mde"] == pytest.approx(stats.mde(v["sd"], 5, 0.05))
  # reproduced raw, inconclusive after Holm: the MDE at the level Holm tested it at
  made = claims.adjust([dict(v, verdict="reproduced", p=0.03), dict(v, verdict="reproduced",
                                                                   p=0.04)])
  assert made[1]["verdict_adjusted"] == "inconclusive"
  alpha = 0.05 * 0.04 / made[1]["p_adjusted"]
  assert made[1]["mde_adjusted"] == pytest.approx(stats.mde(v["sd"], 5, alpha))
  assert f"below {made[1]['mde_adjusted']:.3g}" in claims.notes(made[1])
  # a mixed per-level verdict has no p and says why, instead of a tiny one
  e = [0.004, -0.003, 0.002, -0.001, 0.0]
  mixed = claims.evaluate(_claim(), SWEPT, _pairs([[-0.2 + x, 0.2 + x] for x in e],
                                                  lrs=(1e-3, 1e-2)))
  assert mixed["verdict"] == "inconclusive" and mixed["p"] is None
  assert "levels go both ways" in claims.notes(mixed)


def test_at_best_never_picks_a_value_that_only_some_seeds_reached():
  curves, rows = {}, []
  for s in range(5):
    for lr in (1e-3, 1e-2):
      for w in (0, 10):
        r = _row(w, lr, s, 3.0)
        rows.append(r)
        lucky = lr == 1e-2 and w == 10
        curves[r["run_id"]] = ([(10, 2.5)] if s == 0 else [(10, 3.5)]) if lucky else [(50, 2.5)]
  v = claims.evaluate(_claim(metric="steps_to:2.6", at_best="optimizer.peak_lr"), SWEPT, rows,
                      curves=curves)
  assert v["best"][0]["b"]["in_sample"] == 1e-3 and v["n_seeds"] == 5


def test_pooled_seeds_are_those_at_every_level():
  # lr 1e-3 has seeds 0-4, lr 1e-2 seeds 0, 1 and 5-7 (b diverged at 5-7): only seeds 0 and 1
  # can pool, so the grid never had 3 poolable seeds (insufficient), not "2 of 5 seeds
  # paired" (premise failed, from the smallest level's 5 seeds)
  rows = [_row(w, 1e-3, s, 3.0 - 0.2 * (w == 10) + 0.01 * s) for w in (0, 10) for s in range(5)]
  rows += [_row(w, 1e-2, s, 3.0 - 0.2 * (w == 10) + 0.01 * s) for w in (0, 10) for s in (0, 1)]
  rows += [_row(0, 1e-2, s, 3.0) for s in (5, 6, 7)]
  rows += [_row(10, 1e-2, s, None, "diverged") for s in (5, 6, 7)]
  v = claims.evaluate(_claim(pool="mean"), SWEPT, rows)
  assert v["n_seeds"] == 2 and v["verdict"] == "insufficient"


def test_rate_and_boundary_verdicts_are_reread_at_every_stall_margin():
  # 6 seeds: without warmup (a) every run stalls at margin 0.1 and 0.25 but trains at 0.5
  rows = []
  for s in range(6):
    for w, at in ((0, ("stalled", "stalled", "trained")), (10, ("trained",) * 3)):
      r = _row(w, 1e-2, s, 3.0, at[1])
      r.update({f"outcome@{m}": o for m, o in zip((0.1, 0.25, 0.5), at)})
      rows.append(r)
  rate = _claim(metric="stalled", direction="lower", where={"optimizer.peak_lr": 1e-2})
  v = claims.evaluate(rate, SWEPT, rows)
  assert v["verdict"] == "reproduced"
  assert v["verdict_by_margin"] == {"0.1": "reproduced", "0.25": "reproduced",
                                    "0.5": "inconclusive"}
  assert any(f.startswith("margin-sensitive") for f in v["flags"])
  # the same outcome at every margin: stable
  for r in rows:
    r["outcome@0.5"] = r["outcome@0.25"]
  assert "stable" in claims.evaluate(rate, SWEPT, rows)["flags"]
  # runs made before trajectories decided stalls (no outcome@ columns) say so
  old = [{k: v for k, v in r.items() if not k.startswith("outcome@")} for r in rows]
  flags = claims.evaluate(rate, SWEPT, old)["flags"]
  assert any(f.startswith("stall margins not re-read") for f in flags)
  # a loss claim is not about the stall rule: no margins
  assert "verdict_by_margin" not in claims.evaluate(
      _claim(where={"optimizer.peak_lr": 1e-2}), SWEPT, rows)


def test_a_slow_run_counts_as_trained_for_the_boundary():
  lrs = (1e-3, 1e-2, 1e-1)
  rows = [_row(w, lr, s, 3.0, "slow" if lr == 1e-3 else "trained" if lr == 1e-2 else
               "diverged") for w in (0, 10) for lr in lrs for s in range(3)]
  v = claims.evaluate(_claim(metric="max_trained_lr", direction="higher"), SWEPT, rows)
  assert v["censored"] == {"a": [0, 3], "b": [0, 3]} and "non-monotone outcomes" not in v["flags"]
  rate = claims.evaluate(_claim(metric="failed", direction="lower"), SWEPT, rows)
  assert rate["failed"] is None and rate["per_level"][0]["effect"] == 0.0


def test_a_group_sequential_plan_tests_each_look_at_the_alpha_it_spends():
  # 0.1 +- small lower with warmup at every seed: a clear effect, at 3, 4 and 6 seeds
  rows = [r for s in range(6) for r in (_row(0, 1e-2, s, 3.0 + 0.1 * s),
                                        _row(10, 1e-2, s, 2.9 + 0.1 * s + 0.003 * (s % 3)))]
  plan = _claim(looks=[3, 6], planned_seeds=6)
  at = lambda n: claims.evaluate(plan, SWEPT, [r for r in rows if r["seed"] < n])
  plain = claims.evaluate(_claim(), SWEPT, [r for r in rows if r["seed"] < 3])
  first_alpha, last_alpha = stats.look_alphas([3, 6])
  first = at(3)
  assert first["look"] == dict(number=1, of=2, seeds=3, alpha=first_alpha)
  assert first["p_nominal"] == pytest.approx(plain["p"])
  assert first["p"] == pytest.approx(min(1, plain["p"] * 0.05 / first_alpha))
  assert (first["verdict"] == "reproduced") == (plain["p"] < first_alpha)
  assert "exploratory" not in first["flags"]
  # between looks: exploratory, and tested at the latest look's alpha, never at the full 0.05
  between = at(4)
  assert "exploratory" in between["flags"] and between["look"]["alpha"] == first_alpha
  assert between["p"] == pytest.approx(min(1, between["p_nominal"] * 0.05 / first_alpha))
  final = at(6)
  assert final["look"]["number"] == 2 and final["verdict"] == "reproduced"
  assert final["p"] == pytest.approx(final["p_nominal"] * 0.05 / last_alpha)
  with pytest.raises(ConfigError, match="looks must be increasing"):
    _claim(looks=[6, 3])
  with pytest.raises(ConfigError, match="looks must be increasing"):
    _claim(looks=[3, 6], planned_seeds=5)


def test_a_looks_levels_are_decided_at_its_alpha_not_at_005():
  # two LRs, each with a clear effect at 3 seeds: p about 0.004 each, under 0.05 / 2
  # (Holm at 0.05 passes both levels) but above the first look's alpha x 1/2
  rows = _pairs([[-0.10, -0.10], [-0.11, -0.12], [-0.09, -0.095]], lrs=(1e-3, 1e-2))
  plain = claims.evaluate(_claim(), SWEPT, rows)
  looked = claims.evaluate(_claim(looks=[3, 6], planned_seeds=6), SWEPT, rows)
  first_alpha = stats.look_alphas([3, 6])[0]
  assert [p["verdict_within"] for p in plain["per_level"]] == ["reproduced"] * 2
  assert plain["verdict"] == "reproduced"
  for lp, lq in zip(plain["per_level"], looked["per_level"]):
    assert lq["p_within"] == pytest.approx(min(1, lp["p_within"] * 0.05 / first_alpha))
    assert lq["verdict_within"] == ("reproduced" if lp["p_within"] < first_alpha
                                    else "inconclusive")
  assert all(lp["p_within"] > first_alpha for lp in plain["per_level"])
  assert looked["verdict"] == "inconclusive"
  # the combined p comes from the levels' (already on the 0.05 scale): not scaled twice
  assert looked["p"] in (None, *[lq["p_within"] for lq in looked["per_level"]])


def test_a_looks_equivalence_over_levels_reports_its_p_on_the_looks_scale():
  rows = _pairs([[0.001, -0.002], [0.002, 0.001], [-0.001, 0.0]], lrs=(1e-3, 1e-2))
  eq = dict(kind="equivalence", margin=0.1)
  plain = claims.evaluate(_claim(**eq), SWEPT, rows)
  looked = claims.evaluate(_claim(**eq, looks=[3, 6], planned_seeds=6), SWEPT, rows)
  first_alpha = stats.look_alphas([3, 6])[0]
  assert plain["verdict"] == "equivalent" and plain["p"] < first_alpha
  assert looked["verdict"] == "equivalent"
  assert looked["p"] == pytest.approx(plain["p"] * 0.05 / first_alpha)
  # pooled, a level outside the margin decides, with that level's p, scaled once
  far = _pairs([[0.001, 0.30], [0.002, 0.31], [-0.001, 0.29]], lrs=(1e-3, 1e-2))
  pooled = dict(eq, margin=0.2, pool="mean")
  p_level = claims.evaluate(_claim(**pooled), SWEPT, far)
  l_level = claims.evaluate(_claim(**pooled, looks=[3, 6], planned_seeds=6), SWEPT, far)
  if p_level["verdict"] == "not equivalent":
    bad = [lv for lv in l_level["per_level"] if lv["verdict_within"] == "not equivalent"]
    assert l_level["p"] == pytest.approx(min(lv["p_within"] for lv in bad))


def _ladder_rows(effect_of, widths=(32, 64, 128), seeds=range(5)):
  """Rows of a size ladder (zipped width and depth: the rungs) x warmup {0, 10} x seeds, whose
  b - a at rung r and seed s is effect_of(r, s); each run records its rung's parameters."""
  rows = []
  for r, w in enumerate(widths):
    n = 12 * w * w * (r + 1)
    for s in seeds:
      for warm, d in ((0, 0.0), (10, effect_of(r, s))):
        rows.append({"run_id": f"{w}-{warm}-{s}", "model.d_model": w, "model.num_layers": r + 1,
                     "schedule.warmup_steps": warm, "seed": s, "outcome": "trained",
                     "final_eval_loss": 3.0 + 0.01 * s + d, "best_eval_loss": 3.0,
                     "non_embedding_params": n, "tokens_per_param": 1e6 / n})
  return rows


def _trend(**kw):
  c = claims.trend("the warmup's gain grows with size", paper="P",
                   a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 10},
                   metric="final_eval_loss",
                   **{"direction": "lower", "x": "non_embedding_params", **kw})
  return claims.validate([c], ["model.d_model", "model.num_layers", "schedule.warmup_steps",
                               "seed"])[0]


def test_a_trend_claim_tests_each_seeds_slope_along_the_ladder(tmp_path):
  swept = ["model.d_model", "model.num_layers", "schedule.warmup_steps", "seed"]
  # the effect falls by 0.1 per rung (about 0.78 decades of parameters), seed noise 0.01
  rows = _ladder_rows(lambda r, s: -0.1 * r + 0.01 * ((s * 7 + r * 3) % 5 - 2))
  v = claims.evaluate(_trend(), swept, rows)
  assert v["verdict"] == "reproduced" and v["n_seeds"] == 5, v
  xs = [p["x"] for p in v["per_level"]]
  assert xs == sorted(xs) and len(set(xs)) == 3 and all(p["verdict_within"] == "b lower"
                                                      for p in v["per_level"][1:])
  by_seed = {}
  for r in rows:
    by_seed.setdefault(r["seed"], {}).setdefault(r["non_embedding_params"], {})[
        r["schedule.warmup_steps"]] = r["final_eval_loss"]
  expect = statistics.mean(float(np.polyfit(np.log10(xs), [d[x][10] - d[x][0] for x in xs], 1)[0])
                           for d in by_seed.values())   # the mean of the seeds' OLS slopes
  assert v["effect"] == pytest.approx(expect, rel=1e-9) and v["ci95"][1] < 0
  assert v["x"] == "non_embedding_params" and v["method"].startswith("paired t")
  assert claims.evaluate(_trend(direction="higher"), swept, rows)["verdict"] == "contradicted"
  # a checkout's rows come back from runs.csv as text, and its claim from the verdict
  as_text = [{k: str(x) if k in claims.LADDER else x for k, x in r.items()} for r in rows]
  assert claims.evaluate(_trend(), swept, as_text)["effect"] == v["effect"]
  assert not plan._differs(plan._definition(v), _trend())
  (drawn,) = claims.evaluate_all([_trend()], swept, rows)
  png = plots.plot_trends([drawn], tmp_path / "trends.png")
  assert png.stat().st_size > 0 and plots.plot_trends([], tmp_path / "none.png") is None
  flat = _ladder_rows(lambda r, s: -0.2 + 0.02 * ((s * 7 + r * 3) % 5 - 2))
  assert claims.evaluate(_trend(), swept, flat)["verdict"] == "inconclusive"
  # a seed that lost a rung's run has no slope: counted, and below 3 seeds no verdict
  lost = [dict(r, outcome="diverged", final_eval_loss=None) if r["seed"] < 3
          and r["model.d_model"] == 64 and r["schedule.warmup_steps"] == 10 else r for r in rows]
  v = claims.evaluate(_trend(), swept, lost)
  assert v["n_seeds"] == 2 and v["verdict"].startswith("premise failed"), v
  assert v["failed"]["b"] == [3, 15]
  # a seed whose b runs failed at every rung still counts towards the grid's seeds
  gone = [dict(r, outcome="diverged", final_eval_loss=None) if r["seed"] < 3
          and r["schedule.warmup_steps"] == 10 else r for r in rows]
  assert claims.evaluate(_trend(), swept, gone)["verdict"] == (
      "premise failed (2 of 5 seeds with every rung paired; failed: a 0/15, b 9/15)")
  one_rung = [r for r in rows if r["model.d_model"] == 32]
  assert claims.evaluate(_trend(), swept, one_rung)["verdict"].startswith("insufficient")
  # x that differ only by rounding (one horizon in tokens per parameter) are no ladder
  rounding = [dict(r, tokens_per_param=2.0 + 0.01 * (r["model.d_model"] == 64)) for r in rows]
  assert claims.evaluate(_trend(x="tokens_per_param"), swept, rounding)["verdict"].startswith(
      "insufficient (the rungs need one positive number each of tokens_per_param")


@pytest.mark.parametrize("kw, message", [
    (dict(x="model.width"), "a trend claim (claims.trend) names its x"),
    (dict(pool="mean"), "a trend claim takes no pool or looks"),
])
def test_a_bad_trend_claim_is_named(kw, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    _trend(**kw)


def test_a_trend_slope_is_least_squares_in_closed_form():
  # np.polyfit's LAPACK solve rounded the last bits by the CPU's BLAS, so a committed
  # trend verdict did not re-make byte for byte on another CPU; the closed form agrees
  # with it to rounding and is exact where the data are.
  rng = np.random.default_rng(0)
  for n in (2, 3, 5):
    x, y = rng.uniform(4, 6, n).tolist(), rng.normal(size=n).tolist()
    assert claims._ols_slope(x, y) == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
  assert claims._ols_slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == 2.0
