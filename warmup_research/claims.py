"""Claims as data, and their verdicts computed from a grid's runs.

An experiment file declares, beside its grid, what the paper predicts
(`get_claims(arg=None)` returns a list of `claim(...)` / `equivalent(...)`
/ `noninferior(...)` dicts); the sweep records them with the grid before it runs, so the rule is
fixed before any number exists. `evaluate` then pairs the runs of the two
conditions and applies `stats`:

    claim("post-LN needs warmup where pre-LN does not", paper="Xiong et al. 2020",
          a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 100},
          where={"model.norm": "post"}, metric="final_eval_loss", direction="lower")

- `a`, `b`: the two conditions (swept values; a list means any of them);
  `where`: the runs the claim is about.
- **The seed is the unit.** The swept fields named `seed` (`seed`,
  `data.seed`) make a run's seed; every other swept field the claim does not
  fix (by `a`, `b`, `at_best` or its metric), and that the sides do not
  each hold at one value over the grid (a field zipped with one a side
  names, e.g. the vocab size with the tokenizer: the side's, flagged `sides
  differ in FIELD` where their values differ), is an axis, and each setting
  of the axes is a *level* (e.g. one peak LR). At each level a seed gives
  one paired difference b - a (the same init and data on both sides), and
  the test runs over seeds: `n` is always a number of seeds.
- `pool`: how a claim over axes treats them. None (the default): each level
  is tested on its own, Holm-corrected within the claim; the claim is
  `reproduced` when at least one level is reproduced after that correction
  and none is contradicted, `contradicted` in the mirror case, and
  `inconclusive` when neither, or when levels go both ways (its p then
  None, with the reason). A level that is `premise failed` or
  `insufficient` is shown in per_level and blocks the good verdict
  (reproduced, equivalent, non-inferior): the claim takes that level's
  verdict, named ('premise failed (...) at peak_lr=0.1'), unless another
  level is bad (contradicted, not equivalent, inferior), which stands.
  'mean': one test of each seed's mean difference over the levels (a seed
  enters only with a pair at every level, and only those seeds count
  towards `min_seeds`); the per-level effects are still reported beside it.
  A pooled `equivalent` / `non-inferior` stands only where every level's
  own test agrees: a bad level makes the claim bad, an inconclusive or
  untested one makes it inconclusive (no p; the reason shown). Whatever
  the kind, two levels whose own 95% CIs exclude 0 on opposite sides flag
  `mixed signs`.
- `at_best`: a swept field (e.g. 'optimizer.peak_lr') at which each
  condition is compared at its own best value, per level, chosen
  leave-one-seed-out: seed i's run is the one at the value with the lowest
  mean over the *other* seeds, among the values scored at every one of
  them (a value one seed alone reached is never best; a loss metric is
  scored as `capped_loss`, so a diverged value is never best); the
  in-sample choice (all seeds) is shown
  beside it. A choice at an end of the field's values for more than half
  the seeds of either side flags `optimum at grid edge`.
- `metric`: 'final_eval_loss' or 'best_eval_loss' (per run, nats per
  token); 'final_eval_bpb' or 'best_eval_bpb' (the same in bits per byte
  of the validation text, so sides under different tokenizers compare;
  `at_best` still picks by the loss, the same order within one tokenizer;
  failures 'drop' only); 'max_trained_lr'
  (the trainable-LR boundary: per side and seed, the midpoint in log10 of
  the gap above the largest LR that trained, `stats.gap_boundary`. Chosen
  over a logistic fit because it is monotone in the outcomes by
  construction: a failed run turned trained can only raise the largest
  trained LR, so it never lowers the boundary, where a fit's 50% point
  moves down when a run below a hole trains. A side that never trained is
  censored half a grid step below the lowest LR, one that trained at
  every LR (and only that) half a step above the highest, never dropped; a
  failure below the largest trained LR, other than a stall below the
  lowest trained one (too slow), flags `non-monotone outcomes`; compared
  by `stats.boundary_difference`);
  'steps_to:X' (updates until the eval loss first reached X; never: no
  value; needs the eval curves, which a checkout does not hold);
  'updates_to_target' / 'seconds_to_target' (runs.csv's time to the grid's
  `train.target_eval_loss`, AlgoPerf's score; never reached: no value,
  counted, or with failures='cap' its budget: all its updates, a lower
  bound on its time, so a pair keeps its sign and never grows; at_best
  scores a never-reached run as its budget); 'argmin:FIELD' (the value of
  a swept FIELD, e.g. the warmup length, whose run has the lowest
  `capped_loss`, chosen over FIELD and, where swept, the peak LR, per
  seed; a seed whose runs all failed, or whose lowest loss is shared by
  two values of FIELD (a tie), has no value; a choice at an end of
  FIELD's values for more than half the seeds flags `optimum at grid
  edge`);
  'peak:COLUMN:T' (log10 of the largest value of an `analyze` column, e.g.
  stability_ratio, over the checkpoints at updates 1..T; before `analyze`
  has run the verdict is 'not measured'); 'lr_sensitivity' (Wortsman et
  al.'s, over the peak-LR axis, per seed; a seed whose runs all failed has
  no value, not a sensitivity of 0); or a rate, 'stalled', 'diverged'
  or 'failed' (either): per seed, 1 for a run that failed so, else 0
  (pooled: the seed's share of failed runs over the levels).
- Tests: continuous metrics take `method`, 'paired t' (default) or 'paired
  bootstrap' (BCa), and the exact sign test where the differences have no
  spread; discrete ones (argmin, rates) the exact sign test; max_trained_lr
  the seed bootstrap with the sign test's floor. One convention (stats):
  every directional p is two-sided, 2.5% in the predicted direction
  decides `reproduced` and 2.5% in the other `contradicted`, so p < 0.05
  on the predicted side is `reproduced`, on the other `contradicted`,
  else `inconclusive`; the sign test's floor is 2 x 2^-n (6 seeds).
- `equivalent(...)` claims (`kind='equivalence'`) declare a `margin` in the
  metric's units before the run and are decided by two one-sided tests:
  `equivalent` when the 90% CI of b - a lies inside (-margin, margin), `not
  equivalent` when it lies outside, else `inconclusive`. Over levels
  (pool None): `equivalent` only when every level is (an intersection-union
  test: its p is the largest level's), `not equivalent` when any level is
  after Holm.
- `noninferior(...)` claims (`kind='noninferiority'`) are one-sided: b is
  no worse than a by more than `margin`, `direction` saying which way is
  better ('lower' for a loss). `non-inferior` when the 95% interval's upper
  end of b - a lies below +margin ('higher': its lower end above -margin),
  `inferior` when its other end lies beyond the margin, else
  `inconclusive` with the MDE. For "no worse / at least as good / does not
  hurt" claims, where a better b must not read as a failure; equivalence
  stays for claims of no difference.
- **Failures never vanish.** `failures` says what a loss claim does with a
  diverged run: 'drop' (the default; the pair has no value) or 'cap' (it
  counts as its initial eval loss, `capped_loss`; a time to target that
  was never reached counts as the run's budget). Either way each side's
  k/n failed runs (stalled or diverged) are reported, and a test left with
  fewer than `min_seeds` (default 3, never less) seeds is `premise failed`
  when runs of the grid's seeds failed or had no value, else
  `insufficient`: no other verdict is drawn from fewer than 3 seeds.
  Pruned runs (successive halving) are unknown, never failures: they have
  no value; max_trained_lr and lr_sensitivity drop a seed with a pruned LR.
- Every `inconclusive` verdict carries `mde` at the alpha it was tested at:
  the smallest |b - a| the paired t would detect at 80% power from the
  observed paired sd (per level: at 0.05 / levels; equivalence and
  non-inferiority: the smallest margin it could establish; after Holm or
  BH: `mde_adjusted`, at 0.05 x p / p_adjusted). An exact test has none:
  `mde_note` says how many seeds its floor needs ('needs >= 6 seeds').
- Any non-finite value (a NaN loss on a run marked trained) is no value: a
  failure, counted, never dropped silently.
- `planned_seeds`: the seeds the design planned; a grid with more (grown
  after the fact) flags `exploratory`. `effect`: the effect the design
  should detect, for `warmup-research plan`.
- `looks`: a group-sequential plan, declared before the first run: the
  numbers of seeds at which verdicts will be read (e.g. [3, 6]; the last
  is the planned total). At each look the test spends an O'Brien-Fleming
  share of the 0.05 (`stats.look_alphas`), so looking early and growing
  the grid keeps the false-positive rate at 0.05 (each level's test too);
  a grid at any other seed count (or past the last look) is `exploratory`.
- Multiplicity: `adjust` gives each verdict a Holm-adjusted p within its
  experiment (`p_adjusted`, `verdict_adjusted`: the raw verdict where the
  adjusted p < 0.05, else `inconclusive`); the results table adds
  Benjamini-Hochberg across every experiment (`write_claims`).
- `trend` (kind 'trend', option `x`): how an effect changes along a size or
  horizon ladder; each rung is a level, each seed's OLS slope of its rung
  effects on log10 x is its value, and the slopes are tested for the
  predicted sign (`_trend`; x: a swept field or a `LADDER` column).
- `direction`: what the paper predicts for b - a: 'lower' or 'higher'.
- `comment`: prose shown beside the verdict; it may not overrule it.
"""
from __future__ import annotations

import json
import math
import statistics

from warmup_research import stats
from warmup_research.errors import ConfigError
from warmup_research.metrics_io import FAILED, STALL_MARGINS

PER_RUN = ("final_eval_loss", "best_eval_loss", "final_eval_bpb", "best_eval_bpb")
CAPPABLE = PER_RUN[:2]   # nats per token: a diverged run's cap is its initial eval loss
RATES = ("stalled", "diverged", "failed")
TIMES = ("updates_to_target", "seconds_to_target")
LAWS = ("multi_power", "momentum")   # laws.py's; its fit is passed in (`fit_law`)
LR = "optimizer.peak_lr"
OVER_LR = ("max_trained_lr", "lr_sensitivity")
KINDS = ("superiority", "equivalence", "noninferiority", "law", "trend")
# What a trend claim's x may be besides a swept numeric field: runs.csv's ladder columns.
LADDER = ("non_embedding_params", "tokens_per_param")
POOLS = (None, "mean")
FAILURES = ("drop", "cap")
MIN_SEEDS = 3
DECISIVE = ("reproduced", "contradicted", "equivalent", "not equivalent", "non-inferior",
            "inferior")
# The fields added after the first claims were recorded, at their defaults: left out of a
# claim's dict, so a claim written before them records (and hashes) as it did.
OPTIONS = dict(kind="superiority", margin=None, pool=None, failures="drop", min_seeds=MIN_SEEDS,
               planned_seeds=None, effect=None, looks=None, x=None)


def _argmin(metric: str):
  """FIELD of an 'argmin:FIELD' metric, else None."""
  kind, _, field = metric.partition(":")
  return field if kind == "argmin" and field else None


def claim(text: str, *, paper: str, a: dict, b: dict, metric: str, direction: str | None = None,
          where: dict | None = None, at_best: str | None = None, method: str = "paired t",
          comment: str = "", **options) -> dict:
  """A claim (see the module docstring); `options`: kind, margin, pool,
  failures, min_seeds, planned_seeds, effect, looks."""
  unknown = set(options) - set(OPTIONS)
  if unknown:
    raise ConfigError("claim", f"unknown option(s) {sorted(unknown)}; allowed: "
                      f"{', '.join(OPTIONS)}")
  # Sides in field order: sweep.json stores them sorted, so a report from a workdir and a
  # re-derivation from the experiment file must name them the same way.
  a, b, where = (dict(sorted(d.items())) for d in (a, b, where or {}))
  out = dict(claim=text, paper=paper, a=a, b=b, where=where, metric=metric,
             direction=direction, at_best=at_best, method=method, comment=comment)
  out.update({k: v for k, v in options.items() if v != OPTIONS[k]})
  return out


def predicts(text: str, *, paper: str, fit_on: dict, held_out: dict, margin: float,
             law: str = "multi_power", where: dict | None = None, comment: str = "",
             **options) -> dict:
  """A claim that the loss-curve law `law` (laws.py), fitted per seed on
  that seed's runs `fit_on` selects, predicts the final eval loss of each
  held-out schedule (`held_out`: each setting of the swept fields among its
  runs is one) within `margin` (nats, declared before the run; each
  schedule's seed sd is shown beside it): `_evaluate_law`."""
  return claim(text, paper=paper, a=fit_on, b=held_out, where=where, metric=f"law:{law}",
               kind="law", margin=margin, comment=comment, **options)


def trend(text: str, *, x: str, direction: str, method: str = "paired t", **kw) -> dict:
  """A claim about how the effect b - a changes along a ladder (Wortsman et
  al. 2023's small-scale proxies: the trend with size is what transfers).
  Each rung is a level (one setting of the swept fields besides the seed,
  e.g. a zipped width and depth), with its paired effect over seeds as any
  claim's; per seed, the OLS slope of its rung effects on log10 of `x`
  (runs.csv's `non_embedding_params` or `tokens_per_param`, or a swept
  numeric field such as 'train.total_steps') is one value, and the slopes
  are tested over seeds (the paired t; 'paired bootstrap' is BCa, which at
  3-8 seeds decides 12-25% of null trends, against 5%) for the sign
  `direction` predicts: 'higher', the effect grows along the ladder, or
  'lower'. A seed needs a value at every rung; the rungs' x must differ
  by more than 5% (a slope over rounding is no trend)."""
  return claim(text, kind="trend", x=x, direction=direction, method=method, **kw)


def equivalent(text: str, *, margin: float, **kw) -> dict:
  """A claim that b and a differ by less than `margin` (the metric's units),
  decided by two one-sided tests."""
  return claim(text, kind="equivalence", margin=margin, **kw)


def noninferior(text: str, *, margin: float, direction: str = "lower", **kw) -> dict:
  """A one-sided claim that b is no worse than a by more than `margin` (the
  metric's units); `direction`: which way is better ('lower' for a loss)."""
  return claim(text, kind="noninferiority", margin=margin, direction=direction, **kw)


def option(c: dict, key: str):
  return c.get(key, OPTIONS[key])


def validate(claims, swept) -> list[dict]:
  """The claims of an experiment file, checked against its grid's fields."""
  if not isinstance(claims, (list, tuple)):
    raise ConfigError("get_claims", f"must return a list of claim(...) dicts, got "
                      f"{type(claims).__name__}")
  out = []
  for i, c in enumerate(claims):
    field = f"get_claims()[{i}]"
    if not isinstance(c, dict) or not {"claim", "a", "b", "metric"} <= set(c):
      raise ConfigError(field, "must be a dict made by claims.claim(...)")
    c = claim(c["claim"], **{k: v for k, v in c.items() if k != "claim"})
    for part in ("a", "b", "where"):
      unknown = [f for f in c[part] if f not in swept]
      if unknown:
        raise ConfigError(field, f"{part} names {unknown}, which the grid does not sweep; "
                          f"swept: {', '.join(swept)}")
    metric, kind = c["metric"], option(c, "kind")
    if (kind == "law") != metric.startswith("law:"):
      raise ConfigError(field, "a law claim (claims.predicts) has metric 'law:NAME' and kind "
                        f"'law'; got metric {metric!r}, kind {kind!r}")
    if kind == "law":
      _validate_law(c, field)
    elif not (metric in PER_RUN + RATES + OVER_LR + TIMES or metric.startswith("steps_to:")
            or _peak(metric) or _argmin(metric)):
      raise ConfigError(field, f"unknown metric {metric!r}; allowed: "
                        f"{', '.join(PER_RUN + RATES + OVER_LR + TIMES)}, steps_to:LOSS, "
                        "peak:COLUMN:UPDATES, argmin:FIELD")
    if _argmin(metric) and _argmin(metric) not in swept:
      raise ConfigError(field, f"{metric} names a field the grid does not sweep; "
                        f"swept: {', '.join(swept)}")
    if metric in OVER_LR and LR not in swept:
      raise ConfigError(field, f"{metric} needs {LR} swept")
    if c["at_best"] is not None and c["at_best"] not in swept:
      raise ConfigError(field, f"at_best names {c['at_best']!r}, which the grid does not sweep")
    if metric in PER_RUN[2:] and c["at_best"] in ("data.tokenizer", "model.vocab_size"):
      # at_best picks by the loss per token, which does not compare across tokenizers
      raise ConfigError(field, f"at_best={c['at_best']!r} with {metric}: the best run is "
                        "picked by the loss per token, which does not compare across "
                        "tokenizers; name the tokenizer in a and b instead")
    if kind not in KINDS:
      raise ConfigError(field, f"kind must be one of {', '.join(KINDS)}")
    if (kind == "trend") != (option(c, "x") is not None) or (
        kind == "trend" and option(c, "x") not in (*LADDER, *swept)):
      raise ConfigError(field, f"a trend claim (claims.trend) names its x, one of "
                        f"{', '.join(LADDER)} or a swept field, and only it does; got kind "
                        f"{kind!r}, x {option(c, 'x')!r}")
    if kind == "trend" and (option(c, "pool") or option(c, "looks")):
      raise ConfigError(field, "a trend claim takes no pool or looks: its rungs are its levels")
    if kind not in ("superiority", "trend"):
      margin = option(c, "margin")
      if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not margin > 0:
        raise ConfigError(field, f"an {kind} claim needs a margin > 0, got {margin!r}")
      if metric in RATES or metric == "max_trained_lr" or _argmin(metric):
        raise ConfigError(field, f"{kind} is for continuous metrics, not {metric}")
      if c["method"] != "paired t":
        raise ConfigError(field, f"{kind} uses the paired t's one-sided tests; "
                          "leave method at 'paired t'")
    if kind not in ("equivalence", "law") and c["direction"] not in ("lower", "higher"):
      raise ConfigError(field, f"direction must be 'lower' or 'higher', got {c['direction']!r}")
    if c["method"] not in stats.METHODS:
      raise ConfigError(field, f"method must be one of {', '.join(stats.METHODS)}")
    if option(c, "pool") not in POOLS:
      raise ConfigError(field, "pool must be None (each level) or 'mean'")
    if option(c, "failures") not in FAILURES or (option(c, "failures") == "cap"
                                                  and metric not in CAPPABLE + TIMES):
      raise ConfigError(field, "failures must be 'drop' or (for "
                        f"{', '.join(CAPPABLE + TIMES)}) 'cap'")
    for name, least in (("min_seeds", MIN_SEEDS), ("planned_seeds", option(c, "min_seeds"))):
      n = option(c, name)
      if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < least):
        raise ConfigError(field, f"{name} must be a whole number >= {least}, got {n!r}")
    effect = option(c, "effect")
    if effect is not None and (not isinstance(effect, (int, float)) or not effect > 0):
      raise ConfigError(field, f"effect must be a number > 0 (its size), got {effect!r}")
    looks = option(c, "looks")
    if looks is not None and not (
        isinstance(looks, (list, tuple)) and looks and all(
            isinstance(n, int) and not isinstance(n, bool) for n in looks)
        and list(looks) == sorted(set(looks)) and looks[0] >= option(c, "min_seeds")
        and option(c, "planned_seeds") in (None, looks[-1])):
      raise ConfigError(field, f"looks must be increasing whole numbers of seeds, the first >= "
                        f"min_seeds ({option(c, 'min_seeds')}) and the last = planned_seeds "
                        f"if given, got {looks!r}")
    out.append(c)
  return out


def _validate_law(c: dict, field: str) -> None:
  name = c["metric"].partition(":")[2]
  if name not in LAWS:
    raise ConfigError(field, f"unknown law {name!r}; allowed: {', '.join(LAWS)}")
  if not c["a"] or not c["b"]:
    raise ConfigError(field, "a law claim needs fit_on and held_out, each selecting runs")
  if c["at_best"] is not None or option(c, "pool") or option(c, "looks") or option(
      c, "effect") is not None:
    raise ConfigError(field, "a law claim takes no at_best, pool, looks or effect")


def matches(row, values: dict) -> bool:
  return all(any(_same(row.get(f), x) for x in v) if isinstance(v, list)
             else _same(row.get(f), v) for f, v in values.items())


def _same(x, y) -> bool:
  if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0)
  return x == y


def _peak(metric: str):
  """(column, last update) of a 'peak:COLUMN:T' metric, else None."""
  parts = metric.split(":")
  if len(parts) == 3 and parts[0] == "peak" and parts[1] and parts[2].isdigit():
    return parts[1], int(parts[2])
  return None


def _steps_to(curve, target: float):
  return next((s for s, loss in curve if loss <= target), None)


def _is_seed(field: str) -> bool:
  return field.split(".")[-1] == "seed"


def _key(row, fields) -> str:
  return json.dumps([row[f] for f in fields])


def evaluate(c: dict, swept: list[str], rows: list[dict], curves: dict | None = None,
             measured: dict | None = None, *, at_margins: bool = True,
             law_curves: dict | None = None, fit_law=None) -> dict:
  """One claim's test over seeds: effect, CIs, p, verdict, per-level
  results, failures, MDE and flags (the module docstring has the rules).

  `rows`: runs.csv's rows (swept values, outcome, losses); `curves`: run_id ->
  [(step, eval_loss)] (for steps_to); `measured`: run_id -> analysis.csv's
  rows of that run (for peak); `law_curves`: run_id -> laws.Curve (for a
  law claim). A rate or boundary claim is also decided at
  each stall margin of `STALL_MARGINS` (`at_margins`), from the rows'
  `outcome@M` columns: `verdict_by_margin`, flagged `stable` when the raw
  verdict is the same at all of them, else `margin-sensitive`."""
  metric, kind = c["metric"], option(c, "kind")
  out = dict(claim=c["claim"], paper=c["paper"], metric=metric, kind=kind,
             direction=c["direction"], margin=option(c, "margin"), a=c["a"], b=c["b"],
             where=c["where"], at_best=c.get("at_best"), pool=option(c, "pool"),
             failures=option(c, "failures"), min_seeds=option(c, "min_seeds"),
             planned_seeds=option(c, "planned_seeds"), declared_effect=option(c, "effect"),
             comment=c["comment"])
  empty = dict(n_seeds=0, effect=None, ci95=None, ci90=None, p=None, sd=None, per_level=[],
               mde=None, mde_note=None, p_note=None, flags=[], method=c["method"], sign="",
               failed=None, best=None)
  if _peak(metric) and not measured:
    return dict(out, **empty, verdict="not measured (run `analyze`)")
  no_law = kind == "law" and not (law_curves and fit_law)
  if (metric.startswith("steps_to:") and curves is None) or no_law:
    return dict(out, **empty, verdict="not measured (no eval curves)")
  if kind == "law":
    return _evaluate_law(c, out, empty, swept, rows, law_curves, fit_law)
  finished = [r for r in rows if r.get("outcome") is not None]
  if metric in RATES:   # a pruned run's fate is unknown: in neither count
    finished = [r for r in finished if r["outcome"] != "pruned"]
  side = {k: [r for r in finished if matches(r, c["where"]) and matches(r, c[k])]
          for k in ("a", "b")}
  seeds = [f for f in swept if _is_seed(f)]
  over = {LR} if metric in OVER_LR else {LR, _argmin(metric)} if _argmin(metric) else set()
  fixed = set(c["a"]) | set(c["b"]) | over | ({c["at_best"]} if c.get("at_best") else set())
  fixed |= {f for f, v in c["where"].items() if not isinstance(v, list)}   # one value: no axis
  held = _held(c, rows, swept, fixed | set(seeds))
  fixed |= set(held)
  levels = [f for f in swept if f not in fixed and f not in seeds]
  flags: list[str] = [f"sides differ in {f} ({held[f][0]} vs {held[f][1]})" for f in held
                      if held[f][0] != held[f][1]]
  looks = option(c, "looks")
  planned = looks[-1] if looks else option(c, "planned_seeds")
  grid_seeds = {_key(r, seeds) for runs in side.values() for r in runs}
  if (planned is not None and len(grid_seeds) > planned) or (
      looks and len(grid_seeds) not in looks):
    flags.append("exploratory")
  cells = {k: _cells(runs, levels, seeds) for k, runs in side.items()}
  level_keys = list(dict.fromkeys([*cells["a"], *cells["b"]]))
  per_level, best, edge, censored = [], [], False, {"a": [0, 0], "b": [0, 0]}
  holes = False
  diffs = {}
  for lk in level_keys:
    vals, chosen, read = {}, {}, {}
    for k in ("a", "b"):
      by_seed = cells[k].get(lk, {})
      if c.get("at_best"):
        by_seed, chosen[k], at_edge = _at_best(by_seed, c["at_best"], metric, curves, measured)
        edge |= at_edge
      read[k] = by_seed
      vals[k] = {s: _seed_value(c, runs, curves, measured) for s, runs in by_seed.items()}
      if metric == "max_trained_lr":
        done = [v for v in vals[k].values() if v[0] is not None]
        censored[k][0] += sum(v[1] in ("below", "above") for v in done)
        censored[k][1] += len(done)
        holes |= any(v[1] == "hole" for v in done)
      if _argmin(metric):
        edge |= _argmin_at_edge(by_seed, _argmin(metric), [v[0] for v in vals[k].values()])
    if chosen:
      best.append(dict(level=_level(levels, lk), **chosen))
    d = {s: vals["b"][s][0] - vals["a"][s][0] for s in vals["a"]
         if s in vals["b"] and vals["a"][s][0] is not None and vals["b"][s][0] is not None}
    diffs[lk] = d
    failed = ({k: _failed(read[k], vals[k], metric) for k in ("a", "b")}
              if _loses_runs(metric) else None)
    n_grid = len(_grid_seeds(cells, [lk]))
    # a trend's rungs show their effects; its test is of the slope (`_trend`)
    per_level.append(dict(level=_level(levels, lk), n_grid=n_grid, failed=failed,
                          **_test(dict(c, kind="superiority") if kind == "trend" else c,
                                  list(d.values()), n_grid, failed)))
  if kind == "trend":
    return _trend(c, dict(out, x=c["x"], flags=flags, best=best or None), empty, per_level,
                  diffs, cells, level_keys, edge)
  alpha = _look(looks, len(grid_seeds))[1] if looks else stats.ALPHA
  _holm_within(per_level, c, alpha)
  combined = False
  if not level_keys:   # no run on either side
    head = dict(_test(c, [], 0, None), failed=None)
  elif len(level_keys) > 1 and option(c, "pool") == "mean":
    complete = [s for s in diffs[level_keys[0]] if all(s in diffs[lk] for lk in level_keys)]
    pooled = [sum(diffs[lk][s] for lk in level_keys) / len(level_keys) for s in complete]
    n_grid = len(_grid_seeds(cells, level_keys))   # a seed pools only with every level
    failed = _sum_failed([p["failed"] for p in per_level])
    head = dict(_test(c, pooled, n_grid, failed), failed=failed)
    if kind != "superiority":   # a pooled equivalence needs every level to agree
      head = _pooled_needs_every_level(c, head, per_level, alpha)
    combined = head.pop("scaled", False)
  elif len(level_keys) == 1:
    head = {k: v for k, v in per_level[0].items() if k not in ("level", "n_grid")}
  else:
    head, combined = _combine(c, per_level, alpha), True
  if _mixed(per_level):
    flags.append("mixed signs")
  if holes:
    flags.append("non-monotone outcomes")
  if edge:
    flags.append("optimum at grid edge")
  result = dict(out, **head, per_level=per_level if len(level_keys) > 1 else [],
                flags=flags, best=best or None)
  result.pop("p_within", None)
  result.pop("verdict_within", None)
  result.setdefault("p_note", None)
  if metric == "max_trained_lr":
    result["censored"] = censored
  if looks:
    _at_look(result, c, looks, len(grid_seeds), scaled=combined)
  if at_margins and (metric in RATES or metric == "max_trained_lr"):
    _at_each_margin(result, c, swept, rows, curves, measured)
  return result


def _trend(c, out, empty, per_level, diffs, cells, level_keys, edge) -> dict:
  """A trend claim's verdict: each seed's OLS slope of its rung effects on
  log10 x (a seed with a rung missing has none), tested over seeds for the
  predicted sign. Each rung's x is read from its runs (they must agree)."""
  name = c["x"]
  xs = []
  for p, lk in zip(per_level, level_keys):
    runs = [r for k in ("a", "b") for rs in cells[k].get(lk, {}).values() for r in rs]
    try:
      values = {float(r[name]) for r in runs if r.get(name) not in (None, "")}
    except (TypeError, ValueError):
      values = set()   # not a number: no x
    p["x"] = values.pop() if len(values) == 1 else None
    # a rung is either side; its effect is two-sided, the claim's test is of the slope
    p["verdict_within"] = ("inconclusive" if p["p"] is None or p["p"] >= stats.ALPHA else
                           f"b {p['side']}")
    xs.append(p["x"])
  flags = list(out["flags"]) + (["optimum at grid edge"] if edge else [])
  ordered = sorted(x for x in xs if x is not None)
  if (None in xs or not ordered or ordered[0] <= 0 or len(ordered) < 2
      or any(hi < 1.05 * lo for lo, hi in zip(ordered, ordered[1:]))):
    return dict(out, **dict(empty, per_level=per_level, flags=flags, method=c["method"]),
                verdict=f"insufficient (the rungs need one positive number each of {name}, "
                "each more than 5% from the next)")
  logx = [math.log10(x) for x in xs]
  seeds = set.intersection(*(set(d) for d in diffs.values()))
  slopes = [_ols_slope(logx, [d[s] for d in diffs.values()]) for s in sorted(seeds)]
  t = stats.superiority(slopes, c["direction"], c["method"])
  verdict = stats.decide(t.p, t.side, c["direction"])
  n_grid = len(_grid_seeds(cells, level_keys))
  failed = _sum_failed([p["failed"] for p in per_level])
  if t.n < option(c, "min_seeds"):
    lost = failed and any(failed[k][0] for k in ("a", "b"))
    verdict = (f"premise failed ({t.n} of {n_grid} seeds with every rung paired; failed: a "
               f"{failed['a'][0]}/{failed['a'][1]}, b {failed['b'][0]}/{failed['b'][1]})"
               if lost and n_grid >= option(c, "min_seeds") else "insufficient")
  mde, note = _mde(t.method, t.sd, t.n, "superiority", verdict, stats.ALPHA)
  head = dict(empty, n_seeds=t.n, effect=t.effect, ci95=None if t.ci95 is None else list(t.ci95),
              p=t.p, sd=t.sd, per_level=per_level, flags=flags, failed=failed,
              method=f"{t.method} of per-seed slopes (b - a per decade of {name})", mde=mde,
              mde_note=note, sign=f"{t.n_negative if c['direction'] == 'lower' else t.n_positive}"
              f" of {t.n} seeds' slopes {c['direction']}")
  return dict(out, **head, verdict=verdict)


def _ols_slope(x: list[float], y: list[float]) -> float:
  """The least-squares slope of y on x, in closed form with exactly rounded
  sums: np.polyfit's LAPACK solve rounds its last bits by the CPU's BLAS
  kernels, and a committed table must re-make byte for byte on any CPU."""
  mx, my = math.fsum(x) / len(x), math.fsum(y) / len(y)
  return (math.fsum((a - mx) * (b - my) for a, b in zip(x, y))
          / math.fsum((a - mx) ** 2 for a in x))


def _look(looks, n: int) -> tuple[int, float]:
  """(index, alpha) of the look a claim with `n` seeds is tested at: a
  declared look's; between looks or past the last, the latest look's at or
  below n (the first's below it), never the full 0.05."""
  k = max([i for i, m in enumerate(looks) if m <= n], default=0)
  return k, stats.look_alphas(looks)[k]


def _at_look(result, c, looks, n: int, scaled: bool = False) -> None:
  """A group-sequential claim, tested at the alpha its look spends
  (`stats.look_alphas`, `_look`; between looks flagged `exploratory`). As
  a p scaled to the 0.05 scale (`p` = min(1, p_nominal x 0.05 /
  alpha_look)), so Holm and BH read it like any other; the CIs stay
  nominal 95%, and an inconclusive verdict's MDE is at the look's alpha.
  The per-level p's are on that scale already (`_holm_within`), so a
  verdict combined from them (`scaled`) is not scaled again."""
  k, alpha = _look(looks, n)
  result["look"] = dict(number=k + 1, of=len(looks), seeds=n, alpha=alpha)
  result["flags"].append(f"look {k + 1} of {len(looks)} at {looks[k]} seeds "
                         f"(alpha {alpha:.3g})")
  if result.get("p") is None or scaled:
    return
  result["p_nominal"] = result["p"]
  result["p"] = min(1.0, result["p"] * stats.ALPHA / alpha) if alpha > 0 else 1.0
  if result["verdict"] in DECISIVE or result["verdict"] == "inconclusive":
    result["verdict"] = _decide(c, result["p"], result.get("side"))
    result["mde"], result["mde_note"] = _mde(result["method"], result.get("sd"),
                                             result["n_seeds"], option(c, "kind"),
                                             result["verdict"], alpha)


def _at_each_margin(result, c, swept, rows, curves, measured) -> None:
  """`verdict_by_margin` and its flag; runs without an outcome at every
  margin (results made before trajectories decided stalls) get a note."""
  cols = [f"outcome@{m}" for m in STALL_MARGINS]
  done = [r for r in rows if r.get("outcome") is not None]
  if not done or not all(r.get(col) not in (None, "") for r in done for col in cols):
    result["flags"].append("stall margins not re-read (runs made before trajectories)")
    return
  by = {}
  for m, col in zip(STALL_MARGINS, cols):
    moved = [dict(r, outcome=r[col]) if r.get("outcome") is not None else r for r in rows]
    by[str(m)] = evaluate(c, swept, moved, curves, measured, at_margins=False)["verdict"]
  result["verdict_by_margin"] = by
  if len(set(by.values())) == 1:
    result["flags"].append("stable")
  else:
    result["flags"].append("margin-sensitive (" + "; ".join(
        f"{m}: {v}" for m, v in by.items()) + ")")


def _held(c, rows, swept, fixed) -> dict:
  """{field: (a's value, b's value)} of the swept fields each side holds at
  one value over all its grid's runs (finished or not): fields zipped with
  one the side names, e.g. the vocab size with the tokenizer. They belong
  to the side; as an axis their levels would never pair. Decided on the
  whole grid, so a missing, unfinished or pruned run never makes a real
  axis look held."""
  side = {k: [r for r in rows if matches(r, c["where"]) and matches(r, c[k])] for k in "ab"}
  if not side["a"] or not side["b"]:
    return {}
  out = {}
  for f in swept:
    values = [{json.dumps(r.get(f)) for r in side[k]} for k in "ab"]
    if f not in fixed and all(len(v) == 1 for v in values):
      out[f] = tuple(json.loads(v.pop()) for v in values)
  return out


def _cells(runs, levels, seeds) -> dict:
  """level key -> seed key -> that seed's runs at that level."""
  out: dict[str, dict] = {}
  for r in runs:
    out.setdefault(_key(r, levels), {}).setdefault(_key(r, seeds), []).append(r)
  return out


def _level(levels, lk: str) -> dict:
  return dict(zip(levels, json.loads(lk)))


def _seed_value(c, runs, curves, measured):
  """(value, note) of one side at one seed and level: note is 'below' /
  'above' for a max_trained_lr boundary outside the grid, 'hole' for one
  with a failure below its largest trained LR, else None. A non-finite
  value is no value (a failure, counted), never a number that drops out."""
  metric = c["metric"]
  if metric == "max_trained_lr":
    return _boundary(runs)
  if not (metric in OVER_LR or _argmin(metric)) and len(runs) != 1:
    return None, None   # several runs where one was meant: no value (a list without at_best)
  if metric in CAPPABLE and option(c, "failures") == "cap" and runs[0]["outcome"] == "diverged":
    init = runs[0].get("initial_eval_loss")
    return (None if init is None else capped_loss(runs[0], init)), None
  if metric in TIMES and option(c, "failures") == "cap":
    return _time_or_budget(metric, runs[0]), None
  x = _value(metric, runs, curves, measured)
  return (x if x is None or math.isfinite(x) else None), None


def _time_or_budget(metric: str, row: dict):
  """A run's time to target; one that never reached it counts as its budget
  (all its updates; seconds: those at its group's rate), a lower bound on its
  time, so a pair's difference keeps its sign and never grows."""
  x = row.get(metric)
  if row.get("outcome") == "pruned":   # stopped early: its time is unknown, not the budget
    return None
  if x is not None:
    return x
  return row.get("updates_budget" if metric == "updates_to_target" else "seconds_budget")


def _boundary(runs):
  """A side's trainable-LR boundary at one seed (log10 LR) and a note: the
  midpoint in log10 of the gap above the largest LR that trained (half a
  grid step above the grid's top when that is it), half a step below the
  grid when none trained ('below'); 'above' only when every LR trained;
  'hole' when a run failed below the largest trained LR (other than a
  stall below the lowest one, a too-slow run)."""
  if any(r["outcome"] == "pruned" for r in runs) or not runs:
    return None, None
  runs = sorted(runs, key=lambda r: r[LR])
  x = [math.log10(r[LR]) for r in runs]
  ok = [r["outcome"] not in FAILED for r in runs]   # a slow run trained, short of updates
  if not any(ok):
    return stats.censored_bounds(x)[0], "below"
  top = max(i for i, t in enumerate(ok) if t)
  first = ok.index(True)
  hole = any(not t and (i > first or runs[i]["outcome"] != "stalled")
             for i, t in enumerate(ok[:top]))
  note = "above" if all(ok) else "hole" if hole else None
  return stats.gap_boundary(x, top), note


def _failed(by_seed: dict, vals: dict, metric: str) -> list[int]:
  """[runs that failed (stalled or diverged) or had no value, runs] of one
  side at one level, over the runs its test read. Where failures are the
  data (argmin, lr_sensitivity) a failed run counts only when its seed has
  no value (every run failed, or a tied optimum)."""
  runs = [r for s, rs in by_seed.items() for r in rs]
  no_value = {s for s, v in vals.items() if v[0] is None}
  data = metric in OVER_LR or bool(_argmin(metric))
  bad = [r for s, rs in by_seed.items() for r in rs   # a time that never reached: counted
         if s in no_value or (not data and r["outcome"] in FAILED)
         or (metric in TIMES and r.get(metric) is None)]
  return [len(bad), len(runs)]


def _loses_runs(metric: str) -> bool:
  """Whether a claim counts failures (premise failed below min_seeds): every
  metric but the rates and the boundary, whose failures are the outcome
  itself (the boundary censors a side that never trained)."""
  return metric not in RATES and metric != "max_trained_lr"


def _grid_seeds(cells: dict, level_keys) -> set:
  """Seeds with runs on both sides at every one of `level_keys`."""
  got = [set(cells[k].get(lk, {})) for lk in level_keys for k in ("a", "b")]
  return set.intersection(*got) if got else set()


def _sum_failed(parts):
  if any(p is None for p in parts):
    return None
  return {k: [sum(p[k][0] for p in parts), sum(p[k][1] for p in parts)] for k in ("a", "b")}


GOOD = {"superiority": "reproduced", "equivalence": "equivalent",
        "noninferiority": "non-inferior"}
BAD = {"superiority": "contradicted", "equivalence": "not equivalent",
       "noninferiority": "inferior"}


def _decide(c, p, side, alpha: float = stats.ALPHA) -> str:
  """A verdict of claim `c`'s kind from a p and the side its test points to."""
  kind = option(c, "kind")
  if kind == "superiority":
    return stats.decide(p, side, c["direction"], alpha)
  if p is None or p >= alpha:
    return "inconclusive"
  return GOOD[kind] if side == "inside" else BAD[kind]


def _test(c, d: list, n_grid: int, failed) -> dict:
  """The test of one level (or of the pooled per-seed means)."""
  metric, kind = c["metric"], option(c, "kind")
  if kind == "equivalence":
    t = stats.equivalence(d, option(c, "margin"))
  elif kind == "noninferiority":
    t = stats.noninferiority(d, option(c, "margin"), c["direction"])
  elif metric == "max_trained_lr":
    t = stats.boundary_difference(d, c["direction"])
  else:
    t = stats.superiority(d, c["direction"], c["method"],
                          discrete=metric in RATES or bool(_argmin(metric)))
  verdict = _decide(c, t.p, t.side)
  if t.n < option(c, "min_seeds"):
    lost = failed and any(failed[k][0] for k in ("a", "b"))
    verdict = "premise failed" if lost and n_grid >= option(c, "min_seeds") else "insufficient"
    if verdict == "premise failed":
      verdict += f" ({t.n} of {n_grid} seeds paired; failed: a {failed['a'][0]}/" \
                 f"{failed['a'][1]}, b {failed['b'][0]}/{failed['b'][1]})"
  direction = c["direction"] if kind == "superiority" else None
  sign = "" if direction is None else (
      f"{t.n_negative if direction == 'lower' else t.n_positive} of {t.n} seeds {direction}")
  mde, note = _mde(t.method, t.sd, t.n, kind, verdict, stats.ALPHA)
  return dict(n_seeds=t.n, effect=t.effect, ci95=None if t.ci95 is None else list(t.ci95),
              ci90=None if t.ci90 is None else list(t.ci90), p=t.p, side=t.side, sd=t.sd,
              method=t.method, sign=sign, verdict=verdict, mde=mde, mde_note=note)


def _exact(method: str) -> bool:
  """Whether a test's power is the exact sign test's (its floor 2 * 2^-n)."""
  return "sign" in method


def _mde(method: str, sd, n: int, kind: str, verdict: str, alpha: float):
  """(mde, note) of an inconclusive verdict tested at `alpha`: the smallest
  |b - a| the paired t detects at 80% power (equivalence and
  non-inferiority: the smallest margin they establish at a true difference
  of 0); for an exact test, None and the seeds its floor needs."""
  if verdict != "inconclusive":
    return None, None
  if _exact(method):
    return None, f"needs >= {stats.sign_floor_seeds(alpha)} seeds to pass at {alpha:.3g}"
  got = stats.mde(sd, n, alpha, equivalence=kind in ("equivalence", "law"))
  return got, None if got is not None else f"{n} seeds cannot reach 80% power at {alpha:.3g}"


def _holm_within(per_level: list[dict], c, alpha: float = stats.ALPHA) -> None:
  """Each level's p Holm-adjusted over the claim's testable levels, its
  verdict at that p and, inconclusive, its MDE at alpha / levels. A
  group-sequential claim's look tests at its own `alpha`: the adjusted p
  is put on the 0.05 scale (x 0.05 / alpha), as `_at_look` puts the claim's."""
  testable = [p for p in per_level if p["n_seeds"] >= option(c, "min_seeds")
              and p["p"] is not None]
  for p, adj in zip(testable, stats.holm([p["p"] for p in testable])):
    # the ratio first: at 0.05 the adjusted p stays bit for bit what it was
    p["p_within"] = min(1.0, adj * (stats.ALPHA / alpha)) if alpha > 0 else 1.0
    p["verdict_within"] = _decide(c, p["p_within"], p["side"])
    p["mde"], p["mde_note"] = _mde(p["method"], p["sd"], p["n_seeds"], option(c, "kind"),
                                   p["verdict_within"], alpha / len(testable))
  for p in per_level:
    p.setdefault("p_within", None)
    p.setdefault("verdict_within", p["verdict"])


def _blocked(p: dict) -> bool:
  return p["verdict"].startswith(("premise failed", "insufficient"))


def _combine(c, per_level: list[dict], alpha: float = stats.ALPHA) -> dict:
  """One verdict from per-level tests (pool None; the rule in the docstring):
  a bad level after Holm decides; superiority is `reproduced` when a level
  reproduces and none contradicts, equivalence and non-inferiority when
  every level passes (an intersection-union test, its p the largest
  level's); a premise-failed or insufficient level blocks the good verdict
  (the claim takes that level's verdict, named). Every p it returns is on
  the 0.05 scale of a look testing at `alpha` (`_holm_within`)."""
  kind = option(c, "kind")
  good, bad = GOOD[kind], BAD[kind]
  testable = [p for p in per_level if p["p_within"] is not None]
  failed = _sum_failed([p["failed"] for p in per_level])
  n = min((p["n_seeds"] for p in testable), default=0)
  head = dict(n_seeds=n, effect=None, ci95=None, ci90=None, sd=None, failed=failed,
              method=f"{per_level[0]['method']} per level, Holm within the claim", sign="",
              mde=None, mde_note=None, p_note=None)
  blocked = [p for p in per_level if _blocked(p)]
  named = lambda p: f"{p['verdict']} at {_show_level(p['level'])}"   # noqa: E731
  got = [p["verdict_within"] for p in testable]
  if bad in got:
    worst = [p for p in testable if p["verdict_within"] == bad]
    if kind == "superiority" and good in got:
      return dict(head, p=None, side=None, verdict="inconclusive",
                  p_note="no single p: levels go both ways (mixed signs)")
    return dict(head, p=min(p["p_within"] for p in worst), side=worst[0]["side"],
                verdict=bad)
  if blocked:
    first = next((p for p in blocked if p["verdict"].startswith("premise")), blocked[0])
    return dict(head, p=None, side=None, verdict=named(first),
                p_note="a level without a test blocks the claim's verdict")
  if kind == "superiority":
    if good in got:
      ps = [p["p_within"] for p in testable if p["verdict_within"] == good]
      return dict(head, p=min(ps), side=c["direction"], verdict=good)
    verdict, p_all = "inconclusive", min((p["p_within"] for p in testable), default=None)
    mdes = [p["mde"] for p in testable if p["mde"] is not None]
    pick = min
  else:
    every = all(p["verdict_within"] == good for p in testable) and len(testable) == len(
        per_level)
    # an intersection-union test: the largest level's own p, on the 0.05 scale at a look
    p_all = max((min(1.0, p["p"] * (stats.ALPHA / alpha)) for p in testable),
                default=None) if every else max(
        (p["p_within"] for p in testable if p["verdict_within"] != good), default=None)
    verdict = good if every and p_all is not None and p_all < stats.ALPHA else "inconclusive"
    if verdict == good:
      return dict(head, p=p_all, side="inside", verdict=good)
    mdes = [p["mde"] for p in testable if p["mde"] is not None]
    pick = max   # every level must pass: the worst level's MDE
  notes = [p["mde_note"] for p in testable if p.get("mde_note")]
  return dict(head, p=p_all, side=None, verdict=verdict, mde=pick(mdes) if mdes else None,
              mde_note=None if mdes or not notes else notes[0])


def _pooled_needs_every_level(c, head: dict, per_level: list[dict],
                              alpha: float = stats.ALPHA) -> dict:
  """A pooled equivalence or non-inferiority verdict stands only where every
  level's own test agrees: a level outside the margin makes the claim bad
  (that level's p), a level that is inconclusive or untested makes it
  inconclusive (no p), the pooled effect and CI kept beside."""
  kind = option(c, "kind")
  if head["verdict"] != GOOD[kind]:
    return head
  comb = _combine(c, per_level, alpha)
  if comb["verdict"] == GOOD[kind]:
    return head
  others = [f"{p['verdict_within']} at {_show_level(p['level'])}" for p in per_level
            if p["verdict_within"] != GOOD[kind]]
  why = f"pooled {GOOD[kind]}, but {'; '.join(others)}"
  if comb["verdict"] == BAD[kind]:
    # that level's p is on a look's scale already (`_at_look` does not scale it again)
    return dict(head, verdict=BAD[kind], p=comb["p"], side="outside", p_note=why, scaled=True)
  return dict(head, verdict="inconclusive", p=None, side=None, p_note=why,
              mde=comb["mde"], mde_note=comb["mde_note"])


def _show_level(level: dict) -> str:
  return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in level.items())


def _level_sign(p: dict) -> int:
  """+1 / -1 where a level's 95% CI lies above / below 0 (a test without one:
  its p < 0.05 and the side it points to), else 0."""
  if p["n_seeds"] < MIN_SEEDS:
    return 0
  if p.get("ci95"):
    return 1 if p["ci95"][0] > 0 else -1 if p["ci95"][1] < 0 else 0
  if p["p"] is not None and p["p"] < stats.ALPHA and p["side"] in ("lower", "higher"):
    return 1 if p["side"] == "higher" else -1
  return 0


def _mixed(per_level: list[dict]) -> bool:
  """Two levels whose own effects are significant on opposite sides of 0,
  whatever the claim's kind."""
  return {_level_sign(p) for p in per_level} >= {1, -1}


def _at_best(by_seed: dict, field: str, metric: str, curves, measured):
  """Each seed's runs at the `field` value chosen on the other seeds (the
  lowest mean score), the choices, and whether they sit at an end of the
  field's values for more than half the seeds."""
  score: dict[str, dict] = {}   # value -> seed -> score
  runs_at: dict[tuple, list] = {}
  for s, runs in by_seed.items():
    for r in runs:
      v = json.dumps(r[field])
      runs_at.setdefault((v, s), []).append(r)
  for (v, s), runs in runs_at.items():
    x = _score(metric, runs, curves, measured)
    if x is not None:
      score.setdefault(v, {})[s] = x
  values = sorted({v for v, _ in runs_at}, key=json.loads)

  def pick(leave_out=None):
    # only values scored at every seed it averages over: a value one lucky seed alone
    # reached (steps_to) is not the best on a mean of one
    want = {s for s in by_seed if s != leave_out}
    means = {v: [x for s, x in got.items() if s in want] for v, got in score.items()}
    means = {v: sum(xs) / len(xs) for v, xs in means.items() if xs and len(xs) == len(want)}
    return min(means, key=means.get) if means else None

  in_sample = pick()
  chosen = {s: pick(s) if len(by_seed) > 1 else in_sample for s in by_seed}
  picked = {s: runs_at.get((v, s), []) for s, v in chosen.items() if v is not None}
  ends = {values[0], values[-1]} if len(values) > 1 else set()
  at_edge = sum(v in ends for v in chosen.values()) > len(chosen) / 2
  show = lambda v: None if v is None else json.loads(v)   # noqa: E731
  return picked, dict(in_sample=show(in_sample),
                      loso=[show(chosen[s]) for s in sorted(chosen)]), at_edge


def _score(metric: str, runs: list[dict], curves, measured):
  """What at_best minimises: a loss as `capped_loss` (a diverged run is never
  the best), any other metric as its value."""
  if metric in PER_RUN and len(runs) == 1 and runs[0].get("initial_eval_loss") is not None:
    if runs[0]["outcome"] == "pruned":
      return None
    return capped_loss(runs[0], runs[0]["initial_eval_loss"])
  if metric in TIMES and len(runs) == 1:   # a value that never reached scores as its budget
    return None if runs[0]["outcome"] == "pruned" else _time_or_budget(metric, runs[0])
  return _value(metric, runs, curves, measured)


def _argmin_at_edge(by_seed: dict, field: str, chosen) -> bool:
  values = sorted({r[field] for runs in by_seed.values() for r in runs})
  got = [v for v in chosen if v is not None]
  return len(values) > 1 and sum(v in (values[0], values[-1]) for v in got) > len(got) / 2


def _value(metric: str, runs: list[dict], curves, measured=None):
  if metric in PER_RUN:   # a pruned run's loss is its rung's, not a final one
    return runs[0][metric] if runs[0]["outcome"] not in ("diverged", "pruned") else None
  if metric in TIMES:   # reached before it diverged still counts (AlgoPerf); pruned: unknown
    return runs[0].get(metric) if runs[0]["outcome"] != "pruned" else None
  if metric in RATES:
    bad = FAILED if metric == "failed" else (metric,)
    return None if runs[0]["outcome"] == "pruned" else float(runs[0]["outcome"] in bad)
  if metric in OVER_LR and any(r["outcome"] == "pruned" for r in runs):
    return None   # the pruned LRs' outcomes are unknown: no boundary, no sensitivity
  if metric == "max_trained_lr":
    return _boundary(runs)[0]
  if (metric == "lr_sensitivity" or _argmin(metric)) and all(
      r["outcome"] in FAILED for r in runs):
    return None   # nothing trained: no sensitivity, no best value (a failure, counted)
  if metric == "lr_sensitivity":
    runs = sorted(runs, key=lambda r: r[LR])
    inits = [r["initial_eval_loss"] for r in runs if r.get("initial_eval_loss") is not None]
    if len(runs) < 2 or not inits:
      return None
    finals = [math.nan if r["outcome"] == "diverged" or r["final_eval_loss"] is None
              else r["final_eval_loss"] for r in runs]
    return stats.lr_sensitivity([r[LR] for r in runs], finals, sum(inits) / len(inits))
  if _argmin(metric):
    inits = [r["initial_eval_loss"] for r in runs if r.get("initial_eval_loss") is not None]
    if not inits:
      return None
    initial = sum(inits) / len(inits)
    lowest = min(capped_loss(r, initial) for r in runs)
    tied = {json.dumps(r[_argmin(metric)]) for r in runs if capped_loss(r, initial) == lowest}
    # a tie between values has no best value: never the first row's by accident
    return json.loads(tied.pop()) if len(tied) == 1 else None
  if _peak(metric):
    column, last = _peak(metric)
    vals = [m[column] for m in (measured or {}).get(runs[0]["run_id"], [])
            if 0 < m["step"] <= last and m.get(column) is not None and math.isfinite(m[column])]
    return math.log10(max(vals)) if vals and max(vals) > 0 else None
  target = float(metric.split(":", 1)[1])
  return _steps_to((curves or {}).get(runs[0]["run_id"], []), target)


def capped_loss(row: dict, initial: float) -> float:
  """A run's final eval loss for choosing a best run: min(final, initial);
  a diverged or pruned run (or one with no finite final loss) counts as the
  initial loss, so it is never the best."""
  loss = row["final_eval_loss"]
  if row["outcome"] in ("diverged", "pruned") or loss is None or not math.isfinite(loss):
    return initial
  return min(loss, initial)


def adjust(results: list[dict], method: str = "holm", key: str = "adjusted") -> list[dict]:
  """Each result with `p_{key}` and `verdict_{key}`: its p adjusted over the
  family `results` (Holm, or 'bh': Benjamini-Hochberg) and the raw verdict
  kept where that p < 0.05, else `inconclusive` (premise failed,
  insufficient and not measured stay as they are). An adjusted
  `inconclusive` carries `mde_{key}` (or `mde_note_{key}`) at the level
  its raw p was in effect tested at, 0.05 x p / p_{key}."""
  fn = stats.holm if method == "holm" else stats.benjamini_hochberg
  family = [r.get("p") if str(r.get("verdict")) in DECISIVE + ("inconclusive",) else None
            for r in results]
  out = []
  for r, p in zip(results, fn(family)):
    v = r["verdict"]
    if v in DECISIVE:
      v = v if p is not None and p < stats.ALPHA else "inconclusive"
    extra = {f"mde_{key}": r.get("mde"), f"mde_note_{key}": r.get("mde_note")}
    if v == "inconclusive" and p and r.get("p"):
      # a look's p is scaled to 0.05: its own alpha is the base the adjustment scales
      alpha = (r["look"]["alpha"] if r.get("look") else stats.ALPHA) * r["p"] / p
      extra = dict(zip(extra, _mde(str(r.get("method", "")), r.get("sd"),
                                   r.get("n_seeds") or 0, r.get("kind"), v, alpha)))
      if extra[f"mde_{key}"] is None and extra[f"mde_note_{key}"] is None:
        extra = {f"mde_{key}": r.get("mde"), f"mde_note_{key}": r.get("mde_note")}
    out.append(dict(r, **{f"p_{key}": p, f"verdict_{key}": v}, **extra))
  return out


def flag_relabelled(results: list[dict], names) -> list[dict]:
  """Each result whose claim is in `names` (a marker's `relabelled_claims`:
  rewritten after its runs existed) flagged `relabelled after the run`."""
  flag = "relabelled after the run"
  return [dict(r, flags=[*r["flags"], flag]) if r["claim"] in names and flag not in r["flags"]
          else r for r in results]


def evaluate_all(claims, swept, rows, curves=None, measured=None, law_curves=None,
                 fit_law=None) -> list[dict]:
  """Every claim of an experiment, Holm-adjusted within it."""
  return adjust([evaluate(c, swept, rows, curves, measured, law_curves=law_curves,
                          fit_law=fit_law) for c in claims])


def _evaluate_law(c, out, empty, swept, rows, law_curves, fit_law) -> dict:
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
  name, margin = c["metric"].partition(":")[2], option(c, "margin")
  seeds = [f for f in swept if _is_seed(f)]
  mine = [r for r in rows if r.get("outcome") is not None and matches(r, c["where"])
          and r["run_id"] in law_curves]
  side = {k: [r for r in mine if matches(r, c[k])] for k in ("a", "b")}
  bad = lambda r: r["outcome"] in ("diverged", "pruned")   # noqa: E731
  failed = {k: [sum(bad(r) for r in runs), len(runs)] for k, runs in side.items()}
  by = [f for f in swept if f not in seeds and len({json.dumps(r[f]) for r in side["b"]}) > 1]
  levels = {_key(r, by): dict(zip(by, (r[f] for f in by))) for r in side["b"]}
  errors: dict[str, dict] = {lk: {} for lk in levels}   # level -> seed -> (error, observed)
  curves = []   # per held-out run with a prediction: its observed and predicted evals (a plot)
  for s in sorted({_key(r, seeds) for r in side["b"]}):
    fitting = [law_curves[r["run_id"]] for r in side["a"] if _key(r, seeds) == s and not bad(r)]
    try:
      fitted = fit_law(fitting, name) if fitting else None
    except ConfigError:
      fitted = None   # too few evals to fit: this seed has no value
    for r in (r for r in side["b"] if _key(r, seeds) == s):
      cv = law_curves[r["run_id"]]
      keep = cv.fitted()
      predicted = None if fitted is None or bad(r) or not keep.any() else fitted.predict(
          cv.lrs, cv.steps[keep], cv.warmup)
      e = math.nan if predicted is None else float(predicted[-1] - cv.losses[keep][-1])
      if math.isfinite(e):
        curves.append(dict(level=levels[_key(r, by)], run_id=r["run_id"],
                           steps=[int(t) for t in cv.steps[keep]],
                           observed=[float(x) for x in cv.losses[keep]],
                           predicted=[float(x) for x in predicted]))
        errors[_key(r, by)][s] = (e, float(cv.losses[cv.fitted()][-1]))
      elif not bad(r):
        failed["b"][0] += 1   # no value: counted as the failures are
  per_level = []
  for lk, got in errors.items():
    d = [e for e, _ in got.values()]
    spread = statistics.stdev([o for _, o in got.values()]) if len(got) > 1 else None
    if len(d) < option(c, "min_seeds"):
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
                            method=method, curves=curves), verdict=verdict)
  else:
    worst = max(tested, key=lambda p: p["p"])
    p_head = worst["p"]
    verdict = "reproduced" if p_head < stats.ALPHA else "inconclusive"
  head = dict(empty, n_seeds=min(p["n_seeds"] for p in per_level), effect=worst["effect"],
              ci95=worst["ci95"], ci90=worst["ci90"], p=p_head, sd=worst["sd"],
              per_level=per_level, failed=failed, method=method, curves=curves)
  head["mde"], head["mde_note"] = _mde(method, worst["sd"], worst["n_seeds"], "law", verdict,
                                       stats.ALPHA)
  return dict(out, **head, verdict=verdict)


def markdown(results: list[dict]) -> list[str]:
  """The claims table of a summary.md."""
  if not results:
    return []
  lines = ["", "Claims (fixed in the experiment file before the run; the seed is the unit: one "
           "paired difference b - a per seed; verdicts by the rules in "
           "warmup_research/claims.py; Holm: adjusted over this experiment's claims):", "",
           "| claim | paper | metric | b vs a | effect (b - a) | 95% CI | seeds | method | p "
           "| verdict | Holm p | verdict (Holm) | flags | per level |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    lines.append("| " + " | ".join([
        r["claim"], r["paper"], r["metric"], conditions(r), fmt(r.get("effect")), interval(r),
        seeds(r), r["method"], fmt_p(r.get("p")), r["verdict"],
        fmt_p(r.get("p_adjusted")), f"**{r.get('verdict_adjusted', r['verdict'])}**",
        notes(r), levels(r)]) + " |")
  return lines


def seeds(r: dict) -> str:
  """The seeds column: a number of seeds, or for a verdict kept from the old
  rule its old count, marked (it may count cells, not seeds)."""
  if r.get("n_seeds") is None:
    old = r.get("old_count")
    return "n/a (old rule" + (f"; it counted {old} pairs)" if old is not None else ")")
  return str(r["n_seeds"])


def conditions(r: dict) -> str:
  show = lambda d: ", ".join(f"{k.split('.')[-1]}={v}" for k, v in d.items())   # noqa: E731
  where = f" ({show(r['where'])})" if r["where"] else ""
  best = ""
  if r.get("at_best"):
    best = f", each at its best {r['at_best'].split('.')[-1]} (leave-one-seed-out"
    for b in r.get("best") or []:
      lvl = f" at {show(b['level'])}" if b["level"] else ""
      best += "; " + ", ".join(f"{k}: in-sample {b[k]['in_sample']}, LOSO {_counts(b[k]['loso'])}"
                               for k in ("b", "a") if k in b) + lvl
    best += ")"
  pool = ", mean over levels per seed" if r.get("pool") == "mean" else ""
  if r.get("kind") == "law":
    return f"fitted on {show(r['a'])}, predicting {show(r['b'])}{where}"
  return f"{show(r['b'])} vs {show(r['a'])}{where}{best}{pool}"


def _counts(values) -> str:
  seen = {}
  for v in values:
    seen[json.dumps(v)] = seen.get(json.dumps(v), 0) + 1
  return ", ".join(f"{v} x{k}" for v, k in seen.items())


def fmt(x) -> str:
  return "n/a" if x is None else f"{x:+.4f}"


def fmt_p(p) -> str:
  return "n/a" if p is None else f"{p:.3g}"


def interval(r: dict) -> str:
  if r.get("kind") in ("equivalence", "law") and r.get("ci90"):
    return f"90%: [{r['ci90'][0]:+.4f}, {r['ci90'][1]:+.4f}] vs ±{r['margin']}"
  if r.get("kind") == "noninferiority" and r.get("ci95"):
    bound = f"+{r['margin']}" if r.get("direction") == "lower" else f"-{r['margin']}"
    return f"[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] vs {bound}"
  if r.get("ci95"):
    return f"[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]"
  if r.get("sign"):
    return r["sign"]
  return "n/a"


def notes(r: dict, key: str = "adjusted") -> str:
  """Flags, why a verdict has no p, the MDE of an inconclusive verdict (the
  adjusted one's where the adjustment made it so), failures and censoring."""
  parts = list(r.get("flags") or [])
  if r.get("p_note"):
    parts.append(r["p_note"])
  mde, note = r.get("mde"), r.get("mde_note")
  if r.get(f"verdict_{key}") == "inconclusive" and (r.get(f"mde_{key}") is not None
                                                    or r.get(f"mde_note_{key}")):
    mde, note = r.get(f"mde_{key}"), r.get(f"mde_note_{key}")
  if mde is not None:
    parts.append(f"could not establish a margin below {mde:.3g}" if r.get("kind") in (
        "equivalence", "noninferiority", "law") else f"could not detect a |effect| below {mde:.3g}")
  elif note:
    parts.append(f"exact test: {note}" if "needs" in note else note)
  failed = r.get("failed")
  if failed and any(failed[k][0] for k in ("a", "b")):
    parts.append(f"failed or no value: a {failed['a'][0]}/{failed['a'][1]}, "
                 f"b {failed['b'][0]}/{failed['b'][1]}")
  cens = r.get("censored")
  if cens and any(cens[k][0] for k in ("a", "b")):
    parts.append(f"boundary censored: a {cens['a'][0]}/{cens['a'][1]}, "
                 f"b {cens['b'][0]}/{cens['b'][1]}")
  return "; ".join(parts)


def levels(r: dict) -> str:
  """Each level's effect, CI, seeds and verdict (Holm within the claim)."""
  out = []
  for p in r.get("per_level") or []:
    name = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p["level"].items())
    ci = f" [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]" if p.get("ci95") else ""
    out.append(f"{name}: {fmt(p['effect'])}{ci} ({p['n_seeds']}; {p['verdict_within']})")
  return "; ".join(out)
