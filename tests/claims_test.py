"""Claims: checked against the grid, paired by every other swept value (seed
included), their verdicts computed by the rule; rates by Fisher's test;
the results page's table generated from summary.json files."""
import json
import pathlib

import pytest
from conftest import tiny_config

from warmup_research import claims, results, sweep, workdir
from warmup_research.errors import ConfigError
from warmup_research.sweep import axis, product

SWEPT = ["schedule.warmup_steps", "optimizer.peak_lr", "seed"]


def _row(w, lr, seed, loss, outcome="trained"):
  return {"run_id": f"{w}-{lr}-{seed}", "schedule.warmup_steps": w, "optimizer.peak_lr": lr,
          "seed": seed, "final_eval_loss": loss, "best_eval_loss": loss, "outcome": outcome}


def test_a_claim_pairs_runs_by_seed_and_computes_its_verdict():
  # warmup lowers the loss by 0.1 +- 0.01 in each of 5 seeds at lr 1e-2; nothing at 1e-3
  rows = [_row(0, 1e-2, s, 3.0 + 0.1 * s) for s in range(5)]
  rows += [_row(10, 1e-2, s, 2.9 + 0.1 * s + 0.01 * (s % 2)) for s in range(5)]
  rows += [_row(w, 1e-3, s, 3.5) for w in (0, 10) for s in range(5)]
  c = claims.validate([claims.claim("warmup helps", paper="P", a={"schedule.warmup_steps": 0},
                                    b={"schedule.warmup_steps": 10}, where={
                                        "optimizer.peak_lr": 1e-2},
                                    metric="final_eval_loss", direction="lower")], SWEPT)[0]
  v = claims.evaluate(c, SWEPT, rows)
  assert v["n_pairs"] == 5 and v["method"] == "paired t"
  assert v["effect"] == pytest.approx(-0.1 + 0.01 * 2 / 5)
  assert v["ci95"][1] < 0 and v["verdict"] == "reproduced" and v["sign"] == "5 of 5 pairs lower"
  flat = dict(c, where={"optimizer.peak_lr": 1e-3})
  assert claims.evaluate(flat, SWEPT, rows)["verdict"] == "inconclusive"
  opposite = dict(c, direction="higher")
  assert claims.evaluate(opposite, SWEPT, rows)["verdict"] == "contradicted"


def test_diverged_runs_drop_out_of_loss_pairs_and_count_in_rates():
  rows = [_row(0, 1e-2, s, None, "diverged") for s in range(5)]
  rows += [_row(10, 1e-2, s, 3.0) for s in range(5)]
  loss = claims.claim("x", paper="P", a={"schedule.warmup_steps": 0},
                      b={"schedule.warmup_steps": 10}, metric="final_eval_loss",
                      direction="lower")
  assert claims.evaluate(loss, SWEPT, rows)["n_pairs"] == 0
  rate = dict(loss, metric="diverged")
  v = claims.evaluate(rate, SWEPT, rows)
  assert v["method"] == "Fisher exact" and v["counts"] == {"a": [5, 5], "b": [0, 5]}
  assert v["p_value"] == pytest.approx(2 / 252) and v["verdict"] == "reproduced"


def test_max_trained_lr_is_taken_per_seed_over_the_lr_axis():
  rows = []
  for s in range(4):
    for lr in (1e-3, 1e-2, 1e-1):
      rows.append(_row(0, lr, s, 3.0, "trained" if lr < 1e-2 else "stalled"))
      rows.append(_row(10, lr, s, 3.0, "trained" if lr < 1e-1 or s == 0 else "diverged"))
  c = claims.claim("warmup raises the largest LR that trains", paper="P",
                   a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 10},
                   metric="max_trained_lr", direction="higher")
  v = claims.evaluate(c, SWEPT, rows)
  # log10 max LR: a = -3 in every seed; b = -1 (seed 0), -2 (seeds 1-3)
  assert v["n_pairs"] == 4 and v["effect"] == pytest.approx((2 + 1 + 1 + 1) / 4)
  assert v["verdict"] == "reproduced"


def test_peak_is_the_log10_of_an_analysis_column_max_over_the_early_window():
  import math
  rows = [_row(w, 1e-2, s, 3.0) for w in (0, 10) for s in range(4)]
  # ratio rises to 10^(1 + s/10) by step 10 without warmup, 10^(0.5 + s/10) with; a huge
  # value after the window (step 20) must not count
  measured = {f"{w}-0.01-{s}": [
      dict(step=5, stability_ratio=1.0), dict(step=10, stability_ratio=10 ** (
          (1.0 if w == 0 else 0.5) + s / 10 + (0.01 * s if w else 0))),
      dict(step=20, stability_ratio=1e6)] for w in (0, 10) for s in range(4)}
  c = claims.validate([claims.claim("warmup lowers the early peak", paper="P",
                                    a={"schedule.warmup_steps": 0},
                                    b={"schedule.warmup_steps": 10},
                                    metric="peak:stability_ratio:10", direction="lower")],
                      SWEPT)[0]
  v = claims.evaluate(c, SWEPT, rows, measured=measured)
  assert v["n_pairs"] == 4 and v["effect"] == pytest.approx(-0.5 + 0.01 * 1.5)
  assert v["verdict"] == "reproduced"
  assert math.isclose(claims._value(c["metric"], [rows[0]], None, measured), 1.0)
  pending = claims.evaluate(c, SWEPT, rows)
  assert pending["n_pairs"] == 0 and pending["verdict"].startswith("not measured")


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
  assert v["n_pairs"] == 3 and v["effect"] == pytest.approx(sum(diffs) / 3)
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


def test_at_best_compares_each_condition_at_its_own_best_lr_and_lists_mean_any_of():
  rows = []
  for s in range(4):
    rows += [_row(0, 1e-3, s, 3.0 + 0.01 * s), _row(0, 1e-2, s, 3.2)]       # a's best: 1e-3
    rows += [_row(10, 1e-3, s, 3.1), _row(10, 1e-2, s, 2.8 + 0.02 * s)]     # b's best: 1e-2
  c = claims.claim("x", paper="P", a={"schedule.warmup_steps": 0},
                   b={"schedule.warmup_steps": [10, 20]}, at_best="optimizer.peak_lr",
                   metric="final_eval_loss", direction="lower")
  v = claims.evaluate(claims.validate([c], SWEPT)[0], SWEPT, rows)
  assert v["n_pairs"] == 4 and v["effect"] == pytest.approx(-0.2 + 0.01 * 1.5)
  assert "each at its best peak_lr" in claims.conditions(v)


def test_lr_sensitivity_is_paired_per_seed():
  rows = []
  for s in range(3):
    for lr, a_loss, b_loss in ((1e-3, 3.0, 3.0), (1e-2, 2.5, 2.5), (1e-1, 5.5, 2.9)):
      rows += [dict(_row(0, lr, s, a_loss + 0.01 * s), initial_eval_loss=5.0),
               dict(_row(10, lr, s, b_loss + 0.01 * s), initial_eval_loss=5.0)]
  c = claims.claim("x", paper="P", a={"schedule.warmup_steps": 0},
                   b={"schedule.warmup_steps": 10}, metric="lr_sensitivity", direction="lower")
  v = claims.evaluate(c, SWEPT, rows)
  # seed s: a = mean(3, 2.5, 5 (capped at the initial loss)) - 2.5 - s / 300 = 1 - s / 300
  # (the capped LR keeps 5.0 while the others move by 0.01 s); b = 0.3
  assert v["n_pairs"] == 3 and v["effect"] == pytest.approx(-0.7 + 0.01 / 3)


def test_argmin_is_the_best_value_of_a_field_per_seed_over_it_and_the_lr():
  # batch 8: best warmup 0 at every seed (at lr 1e-2); batch 32: best warmup
  # 10, 20, 20, 10 by seed (seed 1's at lr 1e-3)
  swept = ["data.batch_size", *SWEPT]
  best32 = {0: (10, 1e-2), 1: (20, 1e-3), 2: (20, 1e-2), 3: (10, 1e-2)}
  rows = []
  for s in range(4):
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
  assert v["n_pairs"] == 4 and v["effect"] == 15 and v["verdict"] == "reproduced"
  # a diverged run counts as the initial loss, so it is never the best
  rows = [dict(r, outcome="diverged", final_eval_loss=1.0) if r["data.batch_size"] == 32
          and r["schedule.warmup_steps"] == 0 else r for r in rows]
  assert claims.evaluate(c, swept, rows)["effect"] == 15
  with pytest.raises(ConfigError, match="argmin:model.d_model names a field the grid does"):
    claims.validate([dict(c, metric="argmin:model.d_model")], swept)
