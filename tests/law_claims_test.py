"""Law claims on curves the momentum law itself made, with a per-seed
offset as the seed spread: fitted per seed, the law must predict held-out
schedules within the margin, a shifted truth must contradict it, and
failed runs and fits are counted."""
import numpy as np
import pytest
from laws_test import EVERY, SCHEDULES, TOTAL, TRUE, WARMUP

from warmup_research import claims, laws
from warmup_research.errors import ConfigError


def _law_grid(shift_held=0.0):
  """runs.csv rows and law curves of 5 schedules x 5 seeds, made by the
  momentum law with a per-seed L0 (the seed spread); `shift_held` moves the
  held-out schedules' observed losses off the law."""
  rows, curves = [], {}
  truth = laws.Fit("momentum", TRUE["momentum"], 0.0, 0, {})
  steps = np.arange(0, TOTAL + 1, EVERY)
  for seed in range(5):
    for name, lrs in SCHEDULES.items():
      rid = f"{name}-{seed}"
      loss = np.full(steps.shape, 5.0)
      after = steps > WARMUP
      loss[after] = truth.predict(lrs, steps[after], WARMUP) + 0.03 * seed
      if name not in ("constant", "cosine"):
        loss[after] += shift_held
      rows.append({"run_id": rid, "schedule": name, "seed": seed, "outcome": "trained"})
      curves[rid] = laws.Curve(lrs, steps, loss, WARMUP, rid)
  return rows, curves


def _law_claim(**kw):
  c = claims.predicts("the law predicts held-out schedules", paper="Tissue et al. 2024",
                      fit_on={"schedule": ["constant", "cosine"]},
                      held_out={"schedule": ["wsd", "linear to zero", "wsd 1-sqrt"]},
                      law="momentum", margin=0.05, **kw)
  return claims.validate([c], ["schedule", "seed"])[0]


def test_a_law_claim_fits_per_seed_and_tests_each_held_out_schedule_against_its_margin():
  c = _law_claim()
  rows, curves = _law_grid()
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves)
  assert v["verdict"] == "reproduced" and v["n_seeds"] == 5, v
  assert [p["level"]["schedule"] for p in v["per_level"]] == ["wsd", "linear to zero",
                                                             "wsd 1-sqrt"]
  for p in v["per_level"]:   # the seeds' L0 lie 0.03 apart: the seed sd shown beside
    assert p["seed_sd"] == pytest.approx(0.03 * np.std(range(5), ddof=1), rel=1e-3)
    assert abs(p["effect"]) < 1e-3 and p["verdict_within"] == "within the margin"
  assert v["failed"] == {"a": [0, 10], "b": [0, 15]}
  rows, curves = _law_grid(shift_held=0.2)   # observed 0.2 above what the law predicts
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves)
  assert v["verdict"] == "contradicted" and v["effect"] == pytest.approx(-0.2, abs=1e-3), v
  # a checkout has no eval curves: not measured, never a verdict from nothing
  assert claims.evaluate(c, ["schedule", "seed"], rows)["verdict"].startswith("not measured")
  few = [r for r in rows if r["seed"] < 2]   # two seeds: fewer than min_seeds
  assert claims.evaluate(c, ["schedule", "seed"], few, law_curves=curves)["verdict"] == (
      "insufficient")


def test_a_law_claims_failed_runs_and_fits_are_counted_never_dropped():
  c = _law_claim()
  rows, curves = _law_grid()
  # seeds 0-2: a fitted run diverged (seed 0: its other fit run remains), and the fits of
  # seeds 1 and 2 have too few evals; only seeds 0, 3, 4 predict: 3 seeds, counted
  rows = [dict(r, outcome="diverged") if r["run_id"] == "cosine-0" else r for r in rows]
  for s in (1, 2):
    for name in ("constant", "cosine"):
      cv = curves[f"{name}-{s}"]
      curves[f"{name}-{s}"] = laws.Curve(cv.lrs, cv.steps[:3], cv.losses[:3], cv.warmup, cv.name)
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves)
  assert v["n_seeds"] == 3 and v["failed"] == {"a": [1, 10], "b": [6, 15]}, v
  assert "failed or no value: a 1/10, b 6/15" in claims.notes(v)
  # one more seed lost: 2 seeds left, runs failed: premise failed, not a verdict
  rows = [dict(r, outcome="diverged") if r["run_id"].endswith("-4") and not r[
      "run_id"].startswith(("constant", "cosine")) else r for r in rows]
  assert claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves)["verdict"] == (
      "premise failed")


@pytest.mark.parametrize("kw,message", [
    (dict(law="power"), "unknown law"),
    (dict(at_best="seed"), "takes no at_best, pool, looks or effect"),
    (dict(looks=[3, 5]), "takes no at_best, pool, looks or effect"),
    (dict(held_out={}), "needs fit_on and held_out"),
    (dict(margin=0.0), "needs a margin > 0"),
    (dict(failures="cap"), "failures must be"),
    (dict(min_seeds=1), "min_seeds must be a whole number >= 3")])
def test_a_bad_law_claim_names_what_is_wrong(kw, message):
  args = {**dict(paper="p", fit_on={"schedule": ["constant"]}, held_out={"schedule": ["wsd"]},
                 margin=0.05), **kw}
  with pytest.raises(ConfigError, match=message):
    claims.validate([claims.predicts("x", **args)], ["schedule", "seed"])
