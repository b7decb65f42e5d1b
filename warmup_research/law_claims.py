"""Law claims (`claims.predicts`): does a loss-curve law, fitted per seed on
some schedules' runs, predict the held-out schedules' final losses within a
declared margin? `claims.validate` and `claims.evaluate` hand a claim of
kind 'law' to `validate` and `evaluate` here; the rest of a claim's life
(Holm, tables, re-derivation) is claims.py's.
"""
from __future__ import annotations

import json
import math
import statistics

from warmup_research import claims, laws, stats
from warmup_research.errors import ConfigError


def validate(c: dict, field: str) -> None:
  """A law claim's own checks (claims.validate runs the common ones)."""
  name = c["metric"].partition(":")[2]
  try:
    laws.law(name)
  except ConfigError as e:
    raise ConfigError(field, str(e)) from None
  if not c["a"] or not c["b"]:
    raise ConfigError(field, "a law claim needs fit_on and held_out, each selecting runs")
  option = claims.option
  if c["at_best"] is not None or option(c, "pool") or option(c, "looks") or option(
      c, "effect") is not None:
    raise ConfigError(field, "a law claim takes no at_best, pool, looks or effect")


def evaluate(c, out, empty, swept, rows, law_curves) -> dict:
  """A law claim's verdict. Per seed, the law is fitted on that seed's
  finished `a` runs and predicts each held-out run's final eval loss:
  error = predicted - observed. Each held-out schedule (a level: one setting
  of the swept fields among the `b` runs) is tested by two one-sided tests
  of its errors over seeds against the claim's declared `margin` (nats):
  `reproduced` when every level's 90% CI lies inside +-margin (an
  intersection-union test: p is the largest level's), `contradicted` when
  any level's lies outside after Holm over the levels, else `inconclusive`.
  Each level shows its seed sd (the sd over seeds of its observed final
  losses) beside its error, as the scale the margin is read against.
  Failures never vanish: a diverged or pruned run, a seed whose fit failed
  (too few evals) and a non-finite prediction are counted per side (a: the
  fitted runs, b: the held-out ones); a level left with fewer than
  `min_seeds` seeds is `premise failed` where runs failed, else
  `insufficient`, and blocks `reproduced` (a level outside still
  contradicts)."""
  name, margin = c["metric"].partition(":")[2], claims.option(c, "margin")
  seeds = [f for f in swept if claims._is_seed(f)]
  mine = [r for r in rows if r.get("outcome") is not None and claims.matches(r, c["where"])
          and r["run_id"] in law_curves]
  side = {k: [r for r in mine if claims.matches(r, c[k])] for k in ("a", "b")}
  bad = lambda r: r["outcome"] in ("diverged", "pruned")   # noqa: E731
  failed = {k: [sum(bad(r) for r in runs), len(runs)] for k, runs in side.items()}
  by = [f for f in swept if f not in seeds and len({json.dumps(r[f]) for r in side["b"]}) > 1]
  levels = {claims._key(r, by): dict(zip(by, (r[f] for f in by))) for r in side["b"]}
  errors: dict[str, dict] = {lk: {} for lk in levels}   # level -> seed -> (error, observed)
  for s in sorted({claims._key(r, seeds) for r in side["b"]}):
    fitting = [law_curves[r["run_id"]] for r in side["a"]
               if claims._key(r, seeds) == s and not bad(r)]
    try:
      fitted = laws.fit(fitting, name) if fitting else None
    except ConfigError:
      fitted = None   # too few evals to fit: this seed has no value
    for r in (r for r in side["b"] if claims._key(r, seeds) == s):
      cv = law_curves[r["run_id"]]
      e = math.nan if fitted is None or bad(r) else laws.errors(fitted, [cv])[cv.name]["final"]
      if math.isfinite(e):
        errors[claims._key(r, by)][s] = (e, float(cv.losses[cv.fitted()][-1]))
      elif not bad(r):
        failed["b"][0] += 1   # no value: counted as the failures are
  per_level = []
  for lk, got in errors.items():
    d = [e for e, _ in got.values()]
    spread = statistics.stdev([o for _, o in got.values()]) if len(got) > 1 else None
    if len(d) < claims.option(c, "min_seeds"):
      lost = failed["a"][0] + failed["b"][0]
      per_level.append(dict(level=levels[lk], n_seeds=len(d), effect=None, ci95=None,
                            ci90=None, p=None, side=None, sd=None, seed_sd=spread,
                            verdict_within="premise failed" if lost else "insufficient"))
      continue
    t = stats.equivalence(d, margin)
    per_level.append(dict(level=levels[lk], n_seeds=t.n, effect=t.effect, ci95=t.ci95,
                          ci90=t.ci90, p=t.p, side=t.side, sd=t.sd, seed_sd=spread))
  tested = [p for p in per_level if p["p"] is not None]
  for p in tested:   # 'outside' is tested at each level: Holm over them; 'inside' needs all
    p["p_within"] = min(1.0, p["p"] * len(tested)) if p["side"] == "outside" else p["p"]
    p["verdict_within"] = ("inconclusive" if p["p_within"] >= stats.ALPHA else
                           "within the margin" if p["side"] == "inside" else "outside the margin")
  method = f"{name} law, TOST per held-out schedule"
  outside = [p for p in tested if p["side"] == "outside"]
  untested = [p for p in per_level if p["p"] is None]
  if outside:
    worst = min(outside, key=lambda p: p["p"])
    p_head = worst["p_within"]
    verdict = "contradicted" if p_head < stats.ALPHA else "inconclusive"
  elif untested or not tested:
    worst = untested[0] if untested else None
    n = min((p["n_seeds"] for p in per_level), default=0)
    verdict = worst["verdict_within"] if worst else "insufficient"
    return dict(out, **dict(empty, n_seeds=n, per_level=per_level, failed=failed,
                            method=method), verdict=verdict)
  else:
    worst = max(tested, key=lambda p: p["p"])
    p_head = worst["p"]
    verdict = "reproduced" if p_head < stats.ALPHA else "inconclusive"
  head = dict(empty, n_seeds=min(p["n_seeds"] for p in per_level), effect=worst["effect"],
              ci95=worst["ci95"], ci90=worst["ci90"], p=p_head, sd=worst["sd"],
              per_level=per_level, failed=failed, method=method)
  head["mde"], head["mde_note"] = claims._mde(method, worst["sd"], worst["n_seeds"], "law", verdict,
                                       stats.ALPHA)
  return dict(out, **head, verdict=verdict)
