"""Designs from pilots, and verdicts re-derived from committed tables.

- `plan(experiment, pilot)`: per claim of an experiment file, the paired sd
  over seeds that a pilot grid (a workdir with runs.csv) shows, and the
  seeds the paired t needs to detect the claim's declared `effect` (an
  equivalence claim: to establish its `margin` at a true difference of 0)
  at 80% power; a claim tested at each of m levels is planned at 0.05 / m
  (Holm's first step). `warmup-research plan EXPERIMENT --pilot WORKDIR`.
- `rederive(results_dir)`: every `results_dir/NAME/summary.json`'s claims
  re-evaluated from its committed runs.csv (and analysis.csv) with the
  claims of today's `experiments/NAME.py`, written back to summary.json and
  summary.md's claims table. A claim whose metric needs files that are not
  committed (steps_to's eval curves) keeps its old verdict, flagged `old
  rule (its data is not committed)`; a claim that differs from the one
  recorded with the runs is flagged `relabelled after the run`. The
  marker's record hash moves to the new claims only when the old claims
  reproduce the recorded hash (the runs are the grid's; only the reading
  changed), keeping the old one as `relabelled_from`.
  `warmup-research report --claims results --rederive`.
"""
from __future__ import annotations

import csv
import json
import pathlib

from warmup_research import claims as claims_lib
from warmup_research import config as config_lib
from warmup_research import stats

DEFINITION = ("claim", "paper", "a", "b", "where", "metric", "direction", "at_best", "method",
              "comment", *claims_lib.OPTIONS)
NUMBERS = ("diverged_step", "pruned_step", "final_train_loss", "final_eval_loss",
           "best_eval_loss", "initial_eval_loss", "tokens_seen", "step_seconds",
           "compile_seconds")
TEXT = ("run_id", "status", "outcome", "group")


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
  """How many levels a claim's verdict tests separately (Holm within it)."""
  if v.get("pool") == "mean" or not v.get("per_level"):
    return 1
  return sum(p["p"] is not None for p in v["per_level"]) or 1


def plan(experiment: str, pilot) -> str:
  """The plan table (markdown) of an experiment's claims from a pilot."""
  from warmup_research import results  # reads analysis.csv; imports the plotting stack
  swept, rows = read_runs(pilot)
  found = claims_lib.validate(config_lib.load_claims(experiment), swept)
  measured = results.read_analysis(pilot)
  lines = [f"Plan for {experiment} from the pilot {pilot}: the paired sd over the pilot's "
           "seeds, and the seeds the paired t needs at 80% power (two-sided 5%, or 5% / m for "
           "a claim tested at m levels; equivalence: its margin at a true difference of 0).",
           "", "| claim | metric | pilot seeds | paired sd | effect to detect | levels | "
           "seeds needed |", "|---|---|---|---|---|---|---|"]
  for c, v in zip(found, claims_lib.evaluate_all(found, swept, rows, None, measured)):
    equivalence = claims_lib.option(c, "kind") == "equivalence"
    target = claims_lib.option(c, "margin" if equivalence else "effect")
    m = _tested_levels(v)
    sds = [v["sd"]] if m == 1 else [p["sd"] for p in v["per_level"] if p["p"] is not None]
    sds = [s for s in sds if s is not None]
    sd = max(sds) if sds else None   # the noisiest level sets the design
    need = None if target is None else stats.seeds_needed(sd, target, stats.ALPHA / m,
                                                          equivalence=equivalence)
    what = "—" if target is None else f"{'margin ' if equivalence else ''}{target:g}"
    lines.append("| " + " | ".join([
        c["claim"], c["metric"], str(v["n_seeds"]), "n/a" if sd is None else f"{sd:.4g}", what,
        str(m), "n/a (no effect declared)" if target is None else
        "n/a (no paired sd)" if need is None else str(need)]) + " |")
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


def rederive(results_dir, experiments_dir="experiments") -> list[str]:
  """Re-derives every results_dir/NAME/summary.json's claims (module
  docstring); returns the experiments it re-derived."""
  from warmup_research import plots, results, sweep, workdir  # the grid's expansion: jax
  done = []
  for path in sorted(pathlib.Path(results_dir).glob("*/summary.json")):
    d, summary = path.parent, json.loads(path.read_text())
    spec = pathlib.Path(experiments_dir) / f"{d.name}.py"
    if not summary.get("claims") or not spec.exists():
      continue
    swept, rows = read_runs(d)
    found = claims_lib.validate(config_lib.load_claims(str(spec)), swept)
    old = {c["claim"]: c for c in summary["claims"]}
    new = claims_lib.evaluate_all(found, swept, rows, None, results.read_analysis(d))
    for i, (c, v) in enumerate(zip(found, new)):
      before = old.get(c["claim"])
      if v["verdict"].startswith("not measured (no eval curves)") and before:
        new[i] = dict(before, n_seeds=before.get("n_seeds", before.get("n_pairs", 0)), p=None,
                      flags=["old rule (its data is not committed)"])
      elif (before is None or _differs(_definition(before), c)
            or "relabelled after the run" in (before.get("flags") or [])):
        v["flags"] = [*v["flags"], "relabelled after the run"]
    new = claims_lib.adjust(new)   # a kept old verdict has no p: it is not kept by Holm
    _relabel_marker(d, f"experiments/{d.name}.py", spec, summary["claims"], found, sweep,
                    workdir)
    summary["claims"] = new
    workdir.write_atomic(path, workdir.strict_json(summary, indent=1))
    md = d / "summary.md"
    if md.exists():
      text = md.read_text()
      head = text.split("\nClaims (", 1)[0].rstrip("\n")
      workdir.write_atomic(md, "\n".join([head, *claims_lib.markdown(new)]) + "\n")
    if (d / "plots").is_dir():
      plots.plot_claims(new, d / "plots" / "claims.png", title=summary.get("experiment", ""))
    done.append(d.name)
  return done


def _relabel_marker(d: pathlib.Path, name: str, spec: pathlib.Path, old_claims, found, sweep,
                    workdir) -> None:
  """Moves the marker's record hash to the grid with the new claims, when the
  grid with the old claims is the one it recorded."""
  marker = workdir.read_marker(d)
  if marker is None:
    return
  from warmup_research import results  # validate_heatmaps
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
    marker = dict(marker, record_sha256=new_hash, relabelled_from=old_hash)
    workdir.write_atomic(d / workdir.MARKER, json.dumps(marker, indent=1))
