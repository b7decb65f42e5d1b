"""Loss-curve laws on curves the laws themselves made: fitted on two
schedules, they must predict held-out ones; and their inputs are checked."""
import json

import numpy as np
import pytest
from helpers import run_cli, tiny_config

from warmup_research import laws, metrics_io, plots, results, schedules, sweep, train, workdir
from warmup_research.errors import ConfigError

TOTAL, WARMUP, EVERY = 400, 20, 10
TRUE = {"multi_power": dict(L0=2.0, A=0.4, alpha=0.5, B=40.0, C=2.0, beta=0.6, gamma=0.4),
        "momentum": dict(L0=2.0, A=0.4, alpha=0.5, C=0.25)}


def _lrs(decay, **kw):
  hp = schedules.make_hparams(peak_lr=1e-2, total_steps=TOTAL, warmup_steps=WARMUP,
                              decay_shape=decay, final_frac=kw.pop("final_frac", 0.1), **kw)
  return np.asarray(schedules.curve(TOTAL, hp), np.float64)


SCHEDULES = {"constant": _lrs("constant"), "cosine": _lrs("cosine"),
             "wsd": _lrs("wsd", cooldown_steps=80), "linear to zero": _lrs("linear", final_frac=0.0),
             "wsd 1-sqrt": _lrs("wsd", cooldown_steps=120, cooldown_shape="1-sqrt")}


def _curve(name, law, noise=0.0, seed=0):
  steps = np.arange(0, TOTAL + 1, EVERY)
  truth = laws.Fit(law, TRUE[law], 0.0, 0, {})
  lrs = SCHEDULES[name]
  loss = np.full(steps.shape, 5.0)   # before the warmup ends: not the law's, not fitted
  after = steps > WARMUP
  loss[after] = truth.predict(lrs, steps[after], WARMUP)
  loss *= np.exp(noise * np.random.default_rng(seed).standard_normal(steps.shape))
  return laws.Curve(lrs, steps, loss, WARMUP, name)


@pytest.mark.parametrize("law", ["multi_power", "momentum"])
def test_fitted_on_constant_and_cosine_the_law_predicts_held_out_schedules(law):
  fit = laws.fit([_curve("constant", law), _curve("cosine", law)], law)
  assert fit.n_points == 2 * len([s for s in range(0, TOTAL + 1, EVERY) if s > WARMUP])
  held = [_curve(n, law) for n in ("wsd", "linear to zero", "wsd 1-sqrt")]
  for name, e in laws.errors(fit, held).items():
    assert e["max_abs"] < 5e-3, (name, e, fit.params)
  # the decay terms matter: without them (a pure power law in S1) WSD's drop is missed
  flat = laws.Fit(law, {**fit.params, ("B" if law == "multi_power" else "C"): 0.0}, 0, 0, {})
  assert laws.errors(flat, held[:1])["wsd"]["max_abs"] > 0.05
  assert max(abs(r).max() for r in fit.residuals.values()) < 1e-3
  assert set(fit.to_json()["params"]) == set(TRUE[law])


def test_a_constant_lr_after_warmup_is_a_power_law_in_the_lr_area():
  lrs, steps = SCHEDULES["constant"], np.arange(WARMUP + 10, TOTAL + 1, EVERY)
  fit = laws.Fit("multi_power", TRUE["multi_power"], 0, 0, {})
  s1 = np.cumsum(lrs)[steps - 1]
  p = TRUE["multi_power"]
  np.testing.assert_allclose(fit.predict(lrs, steps, WARMUP), p["L0"] + p["A"] * s1 ** -p["alpha"],
                             rtol=1e-12)


def test_noisy_curves_still_predict_within_the_noise():
  law = "multi_power"
  fit = laws.fit([_curve("constant", law, 0.003, 1), _curve("cosine", law, 0.003, 2)], law)
  e = laws.errors(fit, [_curve("wsd", law)])["wsd"]
  assert abs(e["final"]) < 0.03, (e, fit.params)


def test_a_law_is_never_fitted_on_fewer_evals_than_it_has_parameters():
  short = laws.Curve(SCHEDULES["constant"], np.array([0, 10, 30, 40]), np.array([5., 4, 3, 2.9]),
                     WARMUP, "short")
  with pytest.raises(ConfigError, match="has 7 parameters but the runs given hold 2 evals"):
    laws.fit([short], "multi_power")
  with pytest.raises(ConfigError, match="unknown law 'chinchilla'; allowed: multi_power, "):
    laws.fit([short], "chinchilla")
  bad = laws.Curve(SCHEDULES["constant"], np.arange(30, 200, 10), np.zeros(17), WARMUP, "zero")
  with pytest.raises(ConfigError, match="non-positive eval loss"):
    laws.fit([bad], "momentum")


@pytest.mark.parametrize("law", ["multi_power", "momentum"])
def test_the_fits_gradient_is_the_laws_derivative(law):
  prep = laws._prepare(SCHEDULES["wsd"], np.arange(WARMUP + 10, TOTAL + 1, EVERY), WARMUP)
  p = np.array(list(TRUE[law].values()))
  fn = laws.LAWS[law].fn
  _, d = fn(p, prep, grad=True)
  for i in range(len(p)):
    h = 1e-6 * p[i]
    up, down = p.copy(), p.copy()
    up[i] += h
    down[i] -= h
    np.testing.assert_allclose(d[:, i], (fn(up, prep) - fn(down, prep)) / (2 * h),
                               rtol=1e-5, atol=1e-9, err_msg=laws.LAWS[law].params[i])


def test_a_workdirs_runs_become_curves_of_their_own_schedules(tmp_path):

  variants = sweep.expand(tiny_config(**{"train.total_steps": 10, "train.eval_every": 5}),
                          sweep.axis("schedule.decay_shape", ["constant", "cosine"]))
  wd = tmp_path / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, wd, progress=False)
  curves = laws.workdir_curves(wd, results.load(wd), [v.run_id for v in variants])
  for v, cv in zip(variants, curves):
    assert cv.name == v.run_id and cv.warmup == 5 and len(cv.lrs) == 10
    np.testing.assert_array_equal(cv.lrs, np.asarray(
        schedules.curve(10, train.hparams(v.cfg).schedule), np.float64))
    evals = [r for r in metrics_io.read(wd / "metrics" / f"{v.run_id}.jsonl") if "eval_loss" in r]
    assert list(cv.steps) == [0, 5, 10] == [r["step"] for r in evals]
    assert list(cv.losses) == [r["eval_loss"] for r in evals]
  assert not np.array_equal(curves[0].lrs, curves[1].lrs)
  with pytest.raises(ConfigError, match="--fit-on: no run 'nope' in"):
    laws.workdir_curves(wd, results.load(wd), ["nope"])


def test_the_predict_command_fits_runs_and_predicts_held_out_ones_and_schedules(tmp_path):


  variants = sweep.expand(
      tiny_config(**{"train.total_steps": 40, "train.eval_every": 2, "train.checkpoint_every": 40,
                     "optimizer.peak_lr": 1e-2}),
      sweep.axis("schedule.decay_shape", ["constant", "cosine", "wsd"]))
  wd = tmp_path / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, wd, progress=False)
  ids = [v.run_id for v in variants]
  args = ["predict", wd, "--fit-on", ids[0], "--fit-on", ids[1], "--held-out", ids[2]]
  r = run_cli(*args, "--schedule", "decay_shape=linear,final_frac=0.0",
              "--schedule", "decay_shape=wsd,cooldown_ratio=0.2|0.5")
  assert r.returncode == 0, r.stderr
  out = json.loads((wd / "laws.json").read_text())
  assert list(out["schedules"]) == ["decay_shape=linear,final_frac=0.0",
                                    "decay_shape=wsd,cooldown_ratio=0.2",
                                    "decay_shape=wsd,cooldown_ratio=0.5"]
  lowest = min(out["schedules"], key=lambda k: out["schedules"][k]["predicted"][-1])
  assert [line for line in r.stdout.splitlines() if "★ lowest" in line] == [
      next(line for line in r.stdout.splitlines() if line.startswith(f"| {lowest} |"))]
  assert out["fit"]["n_points"] == 2 * 18 and set(out["fit"]["params"]) == {
      "L0", "A", "alpha", "B", "C", "beta", "gamma"}
  held = out["held_out"][ids[2]]
  assert held["steps"] == list(range(6, 41, 2)) and len(held["predicted"]) == 18
  assert held["final"] == pytest.approx(held["predicted"][-1] - held["observed"][-1])
  assert f"| {ids[2]} | {held['observed'][-1]:.4f} |" in r.stdout
  assert "| decay_shape=linear,final_frac=0.0 | 40 |" in r.stdout
  before = (wd / "laws.json").read_bytes()
  for extra, message in (
      (["--schedule", "decay_shape=zigzag"], "error: --schedule: "),
      (["--schedule", "nonsense"], "error: --schedule: 'nonsense' is not FIELD=VALUE"),
      (["--law", "chinchilla"], "error: --law: unknown law 'chinchilla'"),
      (["--held-out", "nope"], "error: --held-out: no run 'nope' in")):
    bad = run_cli(*args, *extra)
    assert bad.returncode == 2 and message in bad.stderr, (extra, bad.stderr)
    assert len(bad.stderr.strip().splitlines()) == 1
  assert (wd / "laws.json").read_bytes() == before   # a refused command writes nothing


def test_a_schedule_family_is_every_combination_of_its_alternatives_once():
  assert laws.expand_specs(["decay_shape=wsd,cooldown_ratio=0.1|0.2,cooldown_shape=linear|1-sqrt",
                            "decay_shape=wsd,cooldown_ratio=0.1,cooldown_shape=linear", ""]) == [
      "decay_shape=wsd,cooldown_ratio=0.1,cooldown_shape=linear",
      "decay_shape=wsd,cooldown_ratio=0.1,cooldown_shape=1-sqrt",
      "decay_shape=wsd,cooldown_ratio=0.2,cooldown_shape=linear",
      "decay_shape=wsd,cooldown_ratio=0.2,cooldown_shape=1-sqrt", ""]
  assert laws.expand_specs(["nonsense"]) == ["nonsense"]   # schedule_curve names it


def test_one_lr_step_has_both_laws_closed_forms():
  # LR a for updates < k, then b: one drop of a - b at update k, after which
  # S1(t) = a k + b (t - k), the multi-power term is B (a - b) G(b^-gamma b (t - k)),
  # and the momentum sum is S2(t) = (a - b)(1 - lam^(t - k)) / (1 - lam)
  a, b, k, total = 1e-2, 2e-3, 100, 300
  lrs = np.where(np.arange(total) < k, a, b)
  steps = np.arange(k + 1, total + 1, 7)
  p, lam = TRUE["multi_power"], laws.MOMENTUM_DECAY
  s1, since = a * k + b * (steps - k), steps - k
  g = 1 - (p["C"] * b ** -p["gamma"] * b * since + 1) ** -p["beta"]
  np.testing.assert_allclose(
      laws.Fit("multi_power", p, 0, 0, {}).predict(lrs, steps, 0),
      p["L0"] + p["A"] * s1 ** -p["alpha"] - p["B"] * (a - b) * g, rtol=1e-12)
  q = TRUE["momentum"]
  s2 = (a - b) * (1 - lam ** since) / (1 - lam)
  np.testing.assert_allclose(
      laws.Fit("momentum", q, 0, 0, {}).predict(lrs, steps, 0),
      q["L0"] + q["A"] * s1 ** -q["alpha"] - q["C"] * s2, rtol=1e-12)
  # before the drop, and for a drop inside the warmup, neither law sees it
  np.testing.assert_allclose(laws._prepare(lrs, np.array([k]), 0)["s2_E"], 0.0)
  assert laws._prepare(lrs, steps, k)["gap_ExK"].size == 0


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
  from warmup_research import claims  # the claim kind that uses this module
  c = claims.predicts("the law predicts held-out schedules", paper="Tissue et al. 2024",
                      fit_on={"schedule": ["constant", "cosine"]},
                      held_out={"schedule": ["wsd", "linear to zero", "wsd 1-sqrt"]},
                      law="momentum", margin=0.05, **kw)
  return claims.validate([c], ["schedule", "seed"])[0]


def test_a_law_claim_fits_per_seed_and_tests_each_held_out_schedule_against_its_margin(
    tmp_path):
  from warmup_research import claims  # the claim kind that uses this module
  c = _law_claim()
  rows, curves = _law_grid()
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves, fit_law=laws.fit)
  assert v["verdict"] == "reproduced" and v["n_seeds"] == 5, v
  assert [p["level"]["schedule"] for p in v["per_level"]] == ["wsd", "linear to zero",
                                                             "wsd 1-sqrt"]
  for p in v["per_level"]:   # the seeds' L0 lie 0.03 apart: the seed sd shown beside
    assert p["seed_sd"] == pytest.approx(0.03 * np.std(range(5), ddof=1), rel=1e-3)
    assert abs(p["effect"]) < 1e-3 and p["verdict_within"] == "within the margin"
  assert v["failed"] == {"a": [0, 10], "b": [0, 15]}
  # every held-out run's observed and predicted evals, for the plot; its error is the last gap
  assert sorted(c["run_id"] for c in v["curves"]) == sorted(
      r["run_id"] for r in rows if r["schedule"] not in ("constant", "cosine"))
  for cv in v["curves"]:
    np.testing.assert_allclose(cv["observed"],
                               curves[cv["run_id"]].losses[cv["steps"][0] // EVERY:])
    assert cv["steps"][0] > WARMUP and abs(cv["predicted"][-1] - cv["observed"][-1]) < 1e-3
  png = plots.plot_law_predictions([{**c, **v}], tmp_path / "law_predictions.png")
  assert png.stat().st_size > 0 and plots.plot_law_predictions([], tmp_path / "none.png") is None
  rows, curves = _law_grid(shift_held=0.2)   # observed 0.2 above what the law predicts
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves, fit_law=laws.fit)
  assert v["verdict"] == "contradicted" and v["effect"] == pytest.approx(-0.2, abs=1e-3), v
  # a checkout has no eval curves: not measured, never a verdict from nothing
  assert claims.evaluate(c, ["schedule", "seed"], rows)["verdict"].startswith("not measured")
  few = [r for r in rows if r["seed"] < 2]   # two seeds: fewer than min_seeds
  assert claims.evaluate(c, ["schedule", "seed"], few, law_curves=curves, fit_law=laws.fit)["verdict"] == (
      "insufficient")


def test_a_law_claims_failed_runs_and_fits_are_counted_never_dropped():
  from warmup_research import claims  # the claim kind that uses this module
  c = _law_claim()
  rows, curves = _law_grid()
  # seeds 0-2: a fitted run diverged (seed 0: its other fit run remains), and the fits of
  # seeds 1 and 2 have too few evals; only seeds 0, 3, 4 predict: 3 seeds, counted
  rows = [dict(r, outcome="diverged") if r["run_id"] == "cosine-0" else r for r in rows]
  for s in (1, 2):
    for name in ("constant", "cosine"):
      cv = curves[f"{name}-{s}"]
      curves[f"{name}-{s}"] = laws.Curve(cv.lrs, cv.steps[:3], cv.losses[:3], cv.warmup, cv.name)
  v = claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves, fit_law=laws.fit)
  assert v["n_seeds"] == 3 and v["failed"] == {"a": [1, 10], "b": [6, 15]}, v
  assert "failed or no value: a 1/10, b 6/15" in claims.notes(v)
  # one more seed lost: 2 seeds left, runs failed: premise failed, not a verdict
  rows = [dict(r, outcome="diverged") if r["run_id"].endswith("-4") and not r[
      "run_id"].startswith(("constant", "cosine")) else r for r in rows]
  assert claims.evaluate(c, ["schedule", "seed"], rows, law_curves=curves, fit_law=laws.fit)["verdict"] == (
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
  from warmup_research import claims  # the claim kind that uses this module
  args = {**dict(paper="p", fit_on={"schedule": ["constant"]}, held_out={"schedule": ["wsd"]},
                 margin=0.05), **kw}
  with pytest.raises(ConfigError, match=message):
    claims.validate([claims.predicts("x", **args)], ["schedule", "seed"])
