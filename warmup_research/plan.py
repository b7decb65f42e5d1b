"""Designs from pilots, and verdicts re-derived from committed tables.

- `plan(experiment, pilot)`: per claim of an experiment file, the paired sd
  over seeds that a pilot grid (a workdir with runs.csv) shows, and the
  seeds needed at 80% power to detect the claim's declared `effect` (an
  equivalence or non-inferiority claim: to establish its `margin` at a
  true difference of 0), at 0.05 / m with m the experiment's claims times
  the levels a claim tests separately (Holm's first step over both). The
  paired t's power is the noncentral t's; a sign-based or boundary claim's
  is the exact binomial's (each seed on the predicted side with
  probability Phi(effect / sd)), with its floor (2 x 2^-n < 0.05 / m) and a
  warning where the claim's min_seeds or planned_seeds cannot pass it.
  `warmup-research plan EXPERIMENT --pilot WORKDIR`.
- `rederive(results_dir)`: every `results_dir/NAME/summary.json`'s claims
  re-evaluated from its committed runs.csv (and analysis.csv) with the
  claims of today's `experiments/NAME.py`, written back to summary.json and
  summary.md's claims table. A claim whose metric needs files that are not
  committed (steps_to's eval curves) keeps its old verdict, flagged `old
  rule (its data is not committed)`, its seeds shown as n/a (the old count
  may be cells). A claim that differs from the one recorded with the runs,
  or that the marker names in `relabelled_claims`, is flagged `relabelled
  after the run`. The marker's record hash moves to the new claims only
  when the old claims reproduce the recorded hash (the runs are the grid's;
  only the reading changed), keeping the old one as `relabelled_from` and
  the claims as `relabelled_claims` (a re-run keeps both). A claim whose
  runs are bit-identical to another committed experiment's is `not
  independent` or flagged (`independence`).
  `warmup-research report --claims results --rederive`.
"""
from __future__ import annotations

import csv
import json
import math
import pathlib

from warmup_research import claims as claims_lib
from warmup_research import config as config_lib
from warmup_research import metrics_io, stats

DEFINITION = ("claim", "paper", "a", "b", "where", "metric", "direction", "at_best", "method",
              "comment", *claims_lib.OPTIONS)
NUMBERS = ("diverged_step", "pruned_step", "final_train_loss", "final_eval_loss",
           "best_eval_loss", "initial_eval_loss", "tokens_seen", "step_seconds",
           "compile_seconds", "final_eval_bpb", "best_eval_bpb", "updates_to_target",
           "seconds_to_target", "updates_budget", "seconds_budget", "non_embedding_params",
           "tokens_per_param")
TEXT = ("run_id", "status", "outcome", "group",
        *(f"outcome@{m}" for m in metrics_io.STALL_MARGINS))


def read_runs(workdir) -> tuple[list[str], list[dict]]:
  """(swept fields, rows) of a workdir's runs.csv: the columns between
  run_id and the run columns are the swept fields, their values read as
  Python literals ('post' stays text), empty cells None."""
  path = pathlib.Path(workdir) / "runs.csv"
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    rows = list(reader)
    columns = reader.fieldnames or []
  swept = [c for c in columns if c not in (*NUMBERS, *TEXT)]
  parse = {**{c: config_lib.parse_value for c in swept}, **{c: _number for c in NUMBERS}}
  out = [{k: None if v == "" else parse.get(k, str)(v) for k, v in r.items()} for r in rows]
  return swept, out


def _number(text: str):
  x = float(text)
  return int(x) if x.is_integer() and "." not in text and "e" not in text.lower() else x


def _tested_levels(v: dict) -> int:
  """How many levels a claim's verdict tests separately (Holm within it; a
  trend's rungs make one test, of the slope)."""
  if v.get("pool") == "mean" or not v.get("per_level") or v.get("kind") == "trend":
    return 1
  return sum(p["p"] is not None for p in v["per_level"]) or 1


def _exact_claim(c: dict, v: dict) -> bool:
  """Whether a claim is decided by the exact sign test's floor (sign-based
  metrics, boundaries, or differences without spread)."""
  if claims_lib.option(c, "kind") == "trend":   # a t (or bootstrap) over per-seed slopes
    return "sign" in str(v.get("method", ""))
  return (c["metric"] in claims_lib.RATES or c["metric"] == "max_trained_lr"
          or bool(claims_lib._argmin(c["metric"])) or "sign" in str(v.get("method", "")))


def plan(experiment: str, pilot) -> str:
  """The plan table (markdown) of an experiment's claims from a pilot."""
  from warmup_research import results  # reads analysis.csv; imports the plotting stack
  swept, rows = read_runs(pilot)
  found = claims_lib.validate(config_lib.load_claims(experiment), swept)
  measured = results.read_analysis(pilot)
  m_exp = len(found)
  lines = [f"Plan for {experiment} from the pilot {pilot}: the paired sd over the pilot's "
           f"seeds, and the seeds each claim needs at 80% power at 0.05 / m, m = "
           f"{m_exp} (this experiment's claims, Holm's first step) x the levels a claim tests "
           "separately. Paired t claims: the noncentral t (two-sided; equivalence: its margin "
           "at a true difference of 0). Sign-test and boundary claims: the exact binomial "
           "power, each seed on the predicted side with probability Phi(effect / sd) (its "
           "floor: 2 x 2^-n must be below 0.05 / m).",
           "", "| claim | metric | pilot seeds | paired sd | effect to detect | alpha | "
           "seeds needed | warnings |", "|---|---|---|---|---|---|---|---|"]
  for c, v in zip(found, claims_lib.evaluate_all(found, swept, rows, None, measured)):
    kind = claims_lib.option(c, "kind")
    target = claims_lib.option(c, "effect" if kind in ("superiority", "trend") else "margin")
    m = _tested_levels(v)
    looks = claims_lib.option(c, "looks")
    # a group-sequential claim's last look tests at what the earlier looks left of 0.05
    alpha = (stats.look_alphas(looks)[-1] if looks else stats.ALPHA) / (m_exp * m)
    sds = [v["sd"]] if m == 1 else [p["sd"] for p in v["per_level"] if p["p"] is not None]
    sds = [s for s in sds if s is not None]
    sd = max(sds) if sds else None   # the noisiest level sets the design
    warn = []
    if _exact_claim(c, v):
      floor = stats.sign_floor_seeds(alpha)
      for name in ("min_seeds", "planned_seeds"):
        n = claims_lib.option(c, name)
        if n is not None and n < floor:
          warn.append(f"{name} {n} cannot reach significance (the floor needs {floor})")
      if target is None:
        need = f"n/a (no effect declared; the floor needs >= {floor})"
      else:
        q = 1.0 if sd == 0 else None if sd is None else float(stats.sps.norm.cdf(target / sd))
        got = None if q is None else stats.sign_seeds_needed(q, alpha)
        need = ("n/a (no paired sd)" if q is None else str(got) if got is not None
                else f"none <= 50 (the floor needs >= {floor})")
    else:
      got = None if target is None else stats.seeds_needed(sd, target, alpha,
                                                           equivalence=kind == "equivalence")
      need = ("n/a (no effect declared)" if target is None else "n/a (no paired sd)"
              if got is None else str(got))
    what = "—" if target is None else f"{'margin ' if kind != 'superiority' else ''}{target:g}"
    lines.append("| " + " | ".join([
        c["claim"], c["metric"], str(v["n_seeds"]), "n/a" if sd is None else f"{sd:.4g}", what,
        f"{alpha:.3g}", need, "; ".join(warn)]) + " |")
  return "\n".join(lines) + "\n"


def _definition(c: dict) -> dict:
  """A claim as declared, from an evaluated claim of an older summary.json
  (whose `method` may name the fallback it took)."""
  d = {k: c[k] for k in DEFINITION if k in c and k not in claims_lib.OPTIONS}
  d["method"] = "paired bootstrap" if str(c.get("method", "")).startswith(
      "paired bootstrap") else "paired t"
  for k in claims_lib.OPTIONS:   # an evaluated claim's `effect` is the measured one
    if k != "effect" and k in c:
      d[k] = c[k]
  d["effect"] = c.get("declared_effect")
  if d.get("kind") == "superiority":
    d.pop("margin", None)
  return claims_lib.claim(d.pop("claim"), **d)


def _differs(a: dict, b: dict) -> bool:
  """Whether two claims differ in what decides the verdict (comments are prose)."""
  return {k: v for k, v in a.items() if k != "comment"} != {
      k: v for k, v in b.items() if k != "comment"}


def _losses(rows) -> dict:
  """(final, best eval loss) of each run with finite ones -> its run_id: what a
  bit-identical re-use of another experiment's run shares."""
  out = {}
  for r in rows:
    key = (r.get("final_eval_loss"), r.get("best_eval_loss"))
    if all(isinstance(x, float) and math.isfinite(x) for x in key):
      out[key] = r["run_id"]
  return out


def independence(c: dict, rows, others: dict) -> tuple[str | None, str | None]:
  """(verdict, flag) for a claim whose runs are another experiment's: the
  rule is that a claim both of whose sides are read from runs bit-identical
  (final and best eval loss) to another experiment's tests nothing that
  experiment did not, and is `not independent (reuses X's runs)`; one side
  reused is flagged `reuses X's runs (a k/n, b k/n)` and keeps its verdict."""
  sides = {k: [r for r in rows if claims_lib.matches(r, c["where"]) and claims_lib.matches(
      r, c[k])] for k in ("a", "b")}
  mine = {k: _losses(rs) for k, rs in sides.items()}
  for name, theirs in sorted(others.items()):
    shared = {k: sum(key in theirs for key in got) for k, got in mine.items()}
    if not any(shared.values()):
      continue
    counts = ", ".join(f"{k} {shared[k]}/{len(sides[k])}" for k in ("a", "b"))
    if all(sides[k] and shared[k] == len(sides[k]) for k in ("a", "b")):
      return f"not independent (reuses {name}'s runs: {counts})", None
    return None, f"reuses {name}'s runs ({counts})"
  return None, None


def _first_finished(d: pathlib.Path):
  """When an experiment's first group of runs finished (summary.json), or None."""
  try:
    groups = json.loads((d / "summary.json").read_text()).get("groups") or []
  except (OSError, json.JSONDecodeError):
    return None
  times = [g["finished_at"] for g in groups if g.get("finished_at")]
  return min(times) if times else None


def _margins_on_final_losses(rows, summary) -> bool:
  """Fills the `outcome@M` columns of runs made before trajectories decided
  stalls (their eval curves are not committed) by the rule of their time:
  stalled when the final eval loss is above the entropy minus M. Returns
  whether it did (their flags then say so); runs that have the columns,
  or whose entropy is unknown, are left as they are."""
  cols = [f"outcome@{m}" for m in metrics_io.STALL_MARGINS]
  if not rows or all(r.get(c) is not None for r in rows for c in cols):
    return False
  entropy = {rid: g.get("unigram_entropy") for g in summary.get("groups", [])
             for rid in g.get("run_ids", [])}
  if any(entropy.get(r["run_id"]) is None for r in rows):
    return False
  for r in rows:
    for m, col in zip(metrics_io.STALL_MARGINS, cols):
      final = r.get("final_eval_loss")
      r[col] = (r["outcome"] if r["outcome"] in ("diverged", "pruned", None) or final is None
                else "stalled" if not final <= entropy[r["run_id"]] - m else "trained")
  return True


def rederive(results_dir, experiments_dir="experiments") -> list[str]:
  """Re-derives every results_dir/NAME/summary.json's claims (module
  docstring); returns the experiments it re-derived."""
  from warmup_research import plots, results, workdir  # the plotting stack
  done = []
  tables = {p.parent.name: read_runs(p.parent)
            for p in sorted(pathlib.Path(results_dir).glob("*/runs.csv"))}
  made = {n: _first_finished(pathlib.Path(results_dir) / n) for n in tables}
  for path in sorted(pathlib.Path(results_dir).glob("*/summary.json")):
    d, summary = path.parent, json.loads(path.read_text())
    spec = pathlib.Path(experiments_dir) / f"{d.name}.py"
    if not summary.get("claims") or not spec.exists():
      continue
    swept, rows = tables[d.name] if d.name in tables else read_runs(d)
    found = claims_lib.validate(config_lib.load_claims(str(spec)), swept)
    old = {c["claim"]: c for c in summary["claims"]}
    marker = workdir.read_marker(d) or {}
    on_finals = _margins_on_final_losses(rows, summary)
    new = claims_lib.evaluate_all(found, swept, rows, None, results.read_analysis(d))
    if on_finals:
      for v in new:
        v["flags"] = [f.replace("stable", "stable on final losses", 1) if f == "stable" else
                      f.replace("margin-sensitive (", "margin-sensitive on final losses (", 1)
                      for f in v["flags"]]
    # runs shared with an experiment made earlier are its runs, re-read here (not the
    # other way round: the earlier experiment did not reuse anything)
    others = {n: _losses(t) for n, (_, t) in tables.items() if n != d.name and (
        made[n] is None or made[d.name] is None or made[n] < made[d.name])}
    relabelled = []
    for i, (c, v) in enumerate(zip(found, new)):
      before = old.get(c["claim"])
      if (v["verdict"].startswith("not measured (no eval curves)") and before
          and claims_lib.option(c, "kind") == "law"):
        new[i] = v = dict(before)   # its run computed it from the curves, by today's rules
      if v["verdict"].startswith("not measured (no eval curves)") and before:
        # its old count may be cells, not seeds: never shown as a number of seeds
        new[i] = dict(before, n_seeds=None, p=None, old_count=before.get(
            "n_seeds", before.get("n_pairs")), flags=["old rule (its data is not committed)"])
        continue
      if (before is None or _differs(_definition(before), c)
          or "relabelled after the run" in (before.get("flags") or [])
          or c["claim"] in marker.get("relabelled_claims", [])):
        relabelled.append(c["claim"])
      verdict, flag = independence(c, rows, others)
      if verdict:
        v.update(verdict=verdict, mde=None, mde_note=None)
      if flag and flag not in v["flags"]:   # a kept verdict may hold it already
        v["flags"] = [*v["flags"], flag]
    new = claims_lib.flag_relabelled(new, relabelled)
    new = claims_lib.adjust(new)   # a kept old verdict has no p: it is not kept by Holm
    _relabel_marker(d, f"experiments/{d.name}.py", spec, summary["claims"], found, relabelled)
    summary["claims"] = new
    workdir.write_atomic(path, workdir.strict_json(summary, indent=1))
    md = d / "summary.md"
    if md.exists():
      text = md.read_text()
      head = text.split("\nClaims (", 1)[0].rstrip("\n")
      workdir.write_atomic(md, "\n".join([head, *claims_lib.markdown(new)]) + "\n")
    if (d / "plots").is_dir():   # the figures drawn from the verdicts alone
      plots.plot_claims(new, d / "plots" / "claims.png", title=summary.get("experiment", ""))
      plots.plot_law_predictions(new, d / "plots" / "law_predictions.png")
      plots.plot_trends(new, d / "plots" / "trends.png")
    done.append(d.name)
  return done


def _relabel_marker(d: pathlib.Path, name: str, spec: pathlib.Path, old_claims, found,
                    relabelled=()) -> None:
  """Moves the marker's record hash to the grid with the new claims, when the
  grid with the old claims is the one it recorded, and records which claims
  were relabelled (`relabelled_claims`), so that a re-run of the grid, which
  rewrites the marker, and its report keep saying so."""
  from warmup_research import results, sweep, workdir  # the grid's expansion: jax
  marker = workdir.read_marker(d)
  if marker is None:
    return
  variants = sweep.expand(config_lib.load(str(spec)), config_lib.load_sweep(str(spec)))
  maps = results.validate_heatmaps(config_lib.load_heatmaps(str(spec)),
                                   sweep.swept_values(variants))
  record = lambda cs: sweep.sweep_record(name, variants, cs, heatmaps=maps)   # noqa: E731
  old_hash = workdir.record_hash(record([_definition(c) for c in old_claims]))
  new_hash = workdir.record_hash(record(found))
  if marker["record_sha256"] not in (old_hash, new_hash):
    raise ValueError(f"{d}: its runs are not this experiment's grid (the recorded hash "
                     "matches neither the old nor the new claims): re-run it")
  if marker["record_sha256"] == old_hash != new_hash:
    # the hash the runs were made under stays: a second relabelling must not replace it
    marker = dict(marker, record_sha256=new_hash,
                  relabelled_from=marker.get("relabelled_from", old_hash))
  if relabelled and marker["record_sha256"] == new_hash:
    marker = dict(marker, relabelled_claims=sorted(set(marker.get("relabelled_claims", []))
                                                   | set(relabelled)))
  workdir.write_atomic(d / workdir.MARKER, json.dumps(marker, indent=1))
