"""Claims as data, and their verdicts computed from a grid's runs.

An experiment file declares, beside its grid, what the paper predicts
(`get_claims(arg=None)` returns a list of `claim(...)` dicts); the sweep
records them with the grid before it runs, so the rule is fixed before any
number exists. `evaluate` then pairs the runs of the two conditions and
applies `stats`:

    claim("post-LN needs warmup where pre-LN does not", paper="Xiong et al. 2020",
          a={"schedule.warmup_steps": 0}, b={"schedule.warmup_steps": 100},
          where={"model.norm": "post"}, metric="final_eval_loss", direction="lower")

- `a`, `b`: the two conditions (swept values; a list means any of them);
  `where`: the runs the claim is about. A run of `b` is paired with the run
  of `a` that has the same value of every other swept field (seed included:
  the same init and data).
- `at_best`: a swept field (e.g. 'optimizer.peak_lr') at which each
  condition is compared at its own best value: the one with the lowest mean
  metric over seeds (chosen on the same runs, which favours neither side).
- `metric`: 'final_eval_loss' or 'best_eval_loss' (per run); 'max_trained_lr'
  (log10 of the largest peak LR whose run trained, per setting of the other
  fields: a pair of settings where one side never trained is dropped);
  'steps_to:X' (updates until the eval loss first reached X; never: dropped);
  'argmin:FIELD' (the value of a swept FIELD, e.g. the warmup length, whose
  run has the lowest min(final eval loss, initial eval loss), a diverged run
  counting as the initial loss; chosen over FIELD and, where swept, the peak
  LR, per setting of the other fields, e.g. per seed);
  'peak:COLUMN:T' (log10 of the largest value of an `analyze` column, e.g.
  stability_ratio, over the checkpoints at updates 1..T; log because
  sharpness spans decades; before `analyze` has run the verdict is 'not
  measured');
  'lr_sensitivity' (Wortsman et al.'s, over the peak-LR axis, per setting of
  the other fields, e.g. per seed);
  or a rate, 'stalled', 'diverged' or 'failed' (either), compared over all
  runs of each side with Fisher's exact test.
- Pruned runs (successive halving, `train.prune_steps`) never count as
  diverged or stalled: rates leave them out of both counts; per-run losses
  and at_best skip them (their loss is their rung's); max_trained_lr and
  lr_sensitivity drop any setting with a pruned run (its pruned LRs' fates
  are unknown); argmin counts them as the initial loss (never the best).
- `direction`: what the paper predicts for b - a: 'lower' or 'higher'.
- `method`: 'paired t' (default) or 'paired bootstrap'.
- `comment`: prose shown beside the verdict; it may not overrule it.
"""
from __future__ import annotations

import json
import math

from warmup_research import stats
from warmup_research.errors import ConfigError

PER_RUN = ("final_eval_loss", "best_eval_loss")
RATES = ("stalled", "diverged", "failed")
LR = "optimizer.peak_lr"


OVER_LR = ("max_trained_lr", "lr_sensitivity")


def _argmin(metric: str):
  """FIELD of an 'argmin:FIELD' metric, else None."""
  kind, _, field = metric.partition(":")
  return field if kind == "argmin" and field else None


def claim(text: str, *, paper: str, a: dict, b: dict, metric: str, direction: str,
          where: dict | None = None, at_best: str | None = None, method: str = "paired t",
          comment: str = "") -> dict:
  return dict(claim=text, paper=paper, a=a, b=b, where=where or {}, metric=metric,
              direction=direction, at_best=at_best, method=method, comment=comment)


def validate(claims, swept) -> list[dict]:
  """The claims of an experiment file, checked against its grid's fields."""
  if not isinstance(claims, (list, tuple)):
    raise ConfigError("get_claims", f"must return a list of claim(...) dicts, got "
                      f"{type(claims).__name__}")
  out = []
  for i, c in enumerate(claims):
    field = f"get_claims()[{i}]"
    if not isinstance(c, dict) or not {"claim", "a", "b", "metric", "direction"} <= set(c):
      raise ConfigError(field, "must be a dict made by claims.claim(...)")
    c = claim(c["claim"], **{k: v for k, v in c.items() if k != "claim"})
    for part in ("a", "b", "where"):
      unknown = [f for f in c[part] if f not in swept]
      if unknown:
        raise ConfigError(field, f"{part} names {unknown}, which the grid does not sweep; "
                          f"swept: {', '.join(swept)}")
    if not (c["metric"] in PER_RUN + RATES + OVER_LR or c["metric"].startswith("steps_to:")
            or _peak(c["metric"]) or _argmin(c["metric"])):
      raise ConfigError(field, f"unknown metric {c['metric']!r}; allowed: "
                        f"{', '.join(PER_RUN + RATES + OVER_LR)}, steps_to:LOSS, "
                        "peak:COLUMN:UPDATES, argmin:FIELD")
    if _argmin(c["metric"]) and _argmin(c["metric"]) not in swept:
      raise ConfigError(field, f"{c['metric']} names a field the grid does not sweep; "
                        f"swept: {', '.join(swept)}")
    if c["metric"] in OVER_LR and LR not in swept:
      raise ConfigError(field, f"{c['metric']} needs {LR} swept")
    if c["at_best"] is not None and c["at_best"] not in swept:
      raise ConfigError(field, f"at_best names {c['at_best']!r}, which the grid does not sweep")
    if c["direction"] not in ("lower", "higher"):
      raise ConfigError(field, f"direction must be 'lower' or 'higher', got {c['direction']!r}")
    if c["method"] not in stats.METHODS:
      raise ConfigError(field, f"method must be one of {', '.join(stats.METHODS)}")
    out.append(c)
  return out


def _matches(row, values: dict) -> bool:
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


def evaluate(c: dict, swept: list[str], rows: list[dict], curves: dict | None = None,
             measured: dict | None = None) -> dict:
  """One claim's effect, 95% CI, pairs, method and verdict.

  `rows`: runs.csv's rows (swept values, outcome, losses); `curves`: run_id ->
  [(step, eval_loss)] (for steps_to); `measured`: run_id -> analysis.csv's
  rows of that run (for peak)."""
  finished = [r for r in rows if r.get("outcome") is not None]
  side = {k: [r for r in finished if _matches(r, c["where"]) and _matches(r, c[k])]
          for k in ("a", "b")}
  out = dict(claim=c["claim"], paper=c["paper"], metric=c["metric"], direction=c["direction"],
             a=c["a"], b=c["b"], where=c["where"], at_best=c.get("at_best"),
             comment=c["comment"])
  metric = c["metric"]
  if metric in RATES:   # a pruned run's fate is unknown: in neither count
    side = {k: [r for r in runs if r["outcome"] != "pruned"] for k, runs in side.items()}
    bad = (lambda r: r["outcome"] in ("stalled", "diverged")) if metric == "failed" else (
        lambda r: r["outcome"] == metric)
    t = stats.rate_test(sum(map(bad, side["a"])), len(side["a"]),
                        sum(map(bad, side["b"])), len(side["b"]))
    effect = (t.k_b / t.n_b - t.k_a / t.n_a) if t.n_a and t.n_b else None
    return dict(out, effect=effect, ci95=None, n_pairs=min(t.n_a, t.n_b),
                method="Fisher exact", p_value=t.p_value,
                counts=dict(a=[t.k_a, t.n_a], b=[t.k_b, t.n_b]),
                verdict=stats.rate_verdict(t, c["direction"]))
  if c.get("at_best"):
    side = {k: _at_best(runs, c["at_best"], metric, curves, measured)
            for k, runs in side.items()}
  over = {LR} if metric in OVER_LR else {LR, _argmin(metric)} if _argmin(metric) else set()
  fixed = set(c["a"]) | set(c["b"]) | over | ({c["at_best"]} if c.get("at_best") else set())
  key_fields = [f for f in swept if f not in fixed]
  values = {}
  for k, runs in side.items():
    by_key: dict[str, list] = {}
    for r in runs:
      by_key.setdefault(json.dumps([r[f] for f in key_fields]), []).append(r)
    values[k] = {key: _value(metric, group, curves, measured) for key, group in by_key.items()
                 if over or len(group) == 1}
  if _peak(metric) and not measured:
    return dict(out, effect=None, ci95=None, n_pairs=0, method=c["method"], sign="",
                verdict="not measured (run `analyze`)")
  keys = [k for k in values["a"] if k in values["b"]]
  d = stats.paired_difference([values["a"][k] for k in keys], [values["b"][k] for k in keys],
                              method=c["method"])
  return dict(out, effect=None if math.isnan(d.effect) else d.effect,
              ci95=None if d.ci95 is None else list(d.ci95), n_pairs=d.n_pairs,
              method=d.method, sign=f"{d.n_negative if c['direction'] == 'lower' else d.n_positive}"
              f" of {d.n_pairs} pairs {c['direction']}",
              verdict=stats.verdict(d.ci95, c["direction"]))


def _at_best(runs: list[dict], field: str, metric: str, curves, measured=None) -> list[dict]:
  """The runs at the value of `field` whose mean metric (over its runs) is lowest."""
  by_value: dict[str, list] = {}
  for r in runs:
    by_value.setdefault(json.dumps(r[field]), []).append(r)
  means = {}
  for value, group in by_value.items():
    vals = [_value(metric, [r], curves, measured) for r in group]
    vals = [v for v in vals if v is not None]
    if vals:
      means[value] = sum(vals) / len(vals)
  return by_value[min(means, key=means.get)] if means else []


def _value(metric: str, runs: list[dict], curves, measured=None):
  if metric in PER_RUN:   # a pruned run's loss is its rung's, not a final one
    return runs[0][metric] if runs[0]["outcome"] not in ("diverged", "pruned") else None
  if metric in OVER_LR and any(r["outcome"] == "pruned" for r in runs):
    return None   # the pruned LRs' outcomes are unknown: no largest LR, no sensitivity
  if metric == "max_trained_lr":
    trained = [r[LR] for r in runs if r["outcome"] == "trained"]
    return math.log10(max(trained)) if trained else None
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
    return min(runs, key=lambda r: capped_loss(r, initial))[_argmin(metric)]
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


def evaluate_all(claims, swept, rows, curves=None, measured=None) -> list[dict]:
  return [evaluate(c, swept, rows, curves, measured) for c in claims]


def markdown(results: list[dict]) -> list[str]:
  """The claims table of a summary.md."""
  if not results:
    return []
  lines = ["", "Claims (fixed in the experiment file before the run; verdict: the 95% CI of "
           "the paired difference b - a against the paper's direction, or Fisher's exact "
           "test for rates):", "",
           "| claim | paper | metric | b vs a | effect (b - a) | 95% CI | n | method | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    lines.append("| " + " | ".join([
        r["claim"], r["paper"], r["metric"], conditions(r), fmt(r["effect"]),
        interval(r), str(r["n_pairs"]), r["method"], f"**{r['verdict']}**"]) + " |")
  return lines


def conditions(r: dict) -> str:
  show = lambda d: ", ".join(f"{k.split('.')[-1]}={v}" for k, v in d.items())
  where = f" ({show(r['where'])})" if r["where"] else ""
  best = f", each at its best {r['at_best'].split('.')[-1]}" if r.get("at_best") else ""
  return f"{show(r['b'])} vs {show(r['a'])}{where}{best}"


def fmt(x) -> str:
  return "n/a" if x is None else f"{x:+.4f}"


def interval(r: dict) -> str:
  if r.get("ci95"):
    return f"[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]"
  if "p_value" in r:
    (ka, na), (kb, nb) = r["counts"]["a"], r["counts"]["b"]
    return f"{kb}/{nb} vs {ka}/{na}, p = {r['p_value']:.3g}"
  return "n/a"
