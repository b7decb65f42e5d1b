"""Result tables and plots of a sweep workdir, rebuilt from its files.

`write(workdir)` reads a workdir's record, group records and metrics files
(`workdir.Layout` names them; a `train` run's workdir is a sweep of one
run) and writes, atomically: `runs.csv` (one row per run), `summary.md` (seeds
aggregated as mean ± std, best marked), `summary.json` (the same numbers,
`n_compiles`, device and mesh, command, date), TensorBoard event files under
`tb/RUN_ID/`, and `plots/*.png` (drawn by `plots.py`). `python -m warmup_research report WORKDIR`
calls it; so does the sweep runner at its end.
"""
from __future__ import annotations

import csv
import io
import json
import math
import pathlib
import statistics

from warmup_research import claims as claims_lib
from warmup_research import config as config_lib
from warmup_research import laws, loggers, metrics_io, schedules, stats
from warmup_research import model as model_lib
from warmup_research import plots as plots_lib
from warmup_research.errors import ConfigError
from warmup_research.workdir import Layout, read_marker, read_record, strict_json, write_atomic

RUN_COLUMNS = ("status", "outcome", "diverged_step", "final_train_loss", "final_eval_loss",
               "best_eval_loss", "initial_eval_loss", "tokens_seen", "step_seconds",
               "compile_seconds", "group", "final_eval_bpb", "best_eval_bpb")
# with a target only
TO_TARGET = ("updates_to_target", "seconds_to_target", "updates_budget", "seconds_budget")


def load(workdir) -> dict:
  """The record, group records and per-run metrics rows of a workdir, any
  layout (`workdir.Layout`): a finished run's rows come only from a whole
  metrics file."""
  layout = Layout.of(workdir)
  rec = read_record(layout.root)
  by_gid, finished = metrics_io.finished_runs(layout.root)
  metrics = {r["run_id"]: finished.get(r["run_id"]) or metrics_io.read(
      layout.metrics(r["run_id"])) for r in rec["runs"]}
  return dict(record=rec, groups=list(by_gid.values()), metrics=metrics)


def _tokens_per_byte(group: dict, cfg: dict) -> float | None:
  """The group record's tokens per byte; for one recorded before it was
  kept, 1 where the data was byte-level text (every token a byte)."""
  if "tokens_per_byte" in group or not group:
    return group.get("tokens_per_byte")
  data = cfg["data"]
  return 1.0 if data["name"] != "synthetic" and data.get("tokenizer", "bytes") == "bytes" else None


def _field(cfg: dict, dotted: str):
  """A run's effective value of a field (swept in other points or not)."""
  for key in dotted.split("."):
    cfg = cfg[key]
  return cfg


def _group_of(loaded) -> dict[str, dict]:
  return {rid: g for g in loaded["groups"] for rid in g["run_ids"]}


def summaries(loaded) -> dict[str, dict]:
  """run id -> the run's summary (`metrics_io.summarize`: status, outcome,
  losses, steps) from its rows and its group's record (none: unfinished)."""
  group_of, out = _group_of(loaded), {}
  for r in loaded["record"]["runs"]:
    cfg, g = r["config"], group_of.get(r["run_id"], {})
    sched = cfg["schedule"]
    # no entropy in records made before stalls were told apart
    out[r["run_id"]] = metrics_io.summarize(
        loaded["metrics"][r["run_id"]], g.get("unigram_entropy"),
        stall_margin=cfg["train"].get("stall_margin", 0.25),
        total_steps=cfg["train"]["total_steps"], tokens_per_byte=_tokens_per_byte(g, cfg),
        target=cfg["train"].get("target_eval_loss", 0.0),
        warmup_end=schedules.steps_from_duration(
            total_steps=cfg["train"]["total_steps"], steps=sched.get("warmup_steps"),
            ratio=sched.get("warmup_ratio"), field="config.schedule.warmup"))
  return out


def run_rows(loaded, also=()) -> tuple[list[str], list[dict]]:
  """(swept field names, one row per run); `also`: more fields to add as
  columns (each run's value, swept or not)."""
  runs = loaded["record"]["runs"]
  swept = list(dict.fromkeys([*(f for r in runs for f in r["swept"]), *also]))
  group_of, summary_of = _group_of(loaded), summaries(loaded)
  rows = []
  for r in runs:
    cfg, g, s = r["config"], group_of.get(r["run_id"], {}), summary_of[r["run_id"]]
    row = dict(run_id=r["run_id"], **{f: _field(cfg, f) for f in swept})
    row.update(status=s["status"] if g else "unfinished", outcome=s["outcome"] if g else None,
               diverged_step=s["diverged_step"], pruned_step=s["pruned_step"],
               final_train_loss=s["final_train_loss"], final_eval_loss=s["final_eval_loss"],
               best_eval_loss=s["best_eval_loss"], initial_eval_loss=s["initial_eval_loss"],
               final_eval_bpb=s["final_eval_bpb"], best_eval_bpb=s["best_eval_bpb"],
               tokens_seen=applied_updates(s) * cfg["data"]["batch_size"] * cfg["data"]["seq_len"],
               **ladder_position(cfg),
               step_seconds=g.get("step_seconds"), compile_seconds=g.get("compile_seconds"),
               group=g.get("group"))
    for m, o in (s["outcomes"] or {}).items():
      row[f"outcome@{m}"] = o if g else None
    if cfg["train"].get("target_eval_loss"):
      row.update(_to_target(s["updates_to_target"], cfg["train"]["total_steps"],
                            g.get("step_seconds"), len(g.get("run_ids") or [None]))
                 if g else dict.fromkeys(TO_TARGET))
    rows.append(row)
  return swept, rows


def ladder_position(cfg: dict) -> dict:
  """A run's place on a size and horizon ladder: its model's non-embedding
  parameters (`model.non_embedding_params`) and the tokens its whole budget
  trains on per such parameter (Chinchilla's compute-optimal is about 20)."""
  n = model_lib.non_embedding_params(model_lib.ModelConfig.from_config(
      config_lib.from_saved(cfg)))
  tokens = cfg["train"]["total_steps"] * cfg["data"]["batch_size"] * cfg["data"]["seq_len"]
  return dict(non_embedding_params=n, tokens_per_param=tokens / n)


def _to_target(updates, budget: int, step_seconds, n_runs: int) -> dict:
  """Time to target (`train.target_eval_loss`): updates, and those times the
  group's steady seconds per update shared over its `n_runs` runs (one
  program steps them all: a run's share, as `sweep --dry-run` rates it);
  `updates_budget` / `seconds_budget`: what a claim with failures='cap'
  counts a run that never reached it as."""
  rate = None if step_seconds is None else step_seconds / n_runs
  return dict(updates_to_target=updates, updates_budget=budget,
              seconds_to_target=None if updates is None or rate is None else updates * rate,
              seconds_budget=None if rate is None else budget * rate)


def _law_curves(loaded, record_claims) -> dict | None:
  """run id -> laws.Curve (its schedule's LRs and eval curve) of every run,
  where a law claim needs them; else None."""
  if not any(claims_lib.option(c, "kind") == "law" for c in record_claims):
    return None
  return {r["run_id"]: laws.run_curve(r["config"], loaded["metrics"][r["run_id"]], r["run_id"])
          for r in loaded["record"]["runs"]}


def applied_updates(summary: dict) -> int:
  """Updates that changed the params: a diverged run's stop at the one that diverged."""
  if summary["diverged_step"] is not None:
    return summary["diverged_step"]
  return summary["steps"]


def to_csv(columns, rows) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
  w.writeheader()
  for row in rows:
    w.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
  return buf.getvalue()


def aggregate(swept, rows) -> list[dict]:
  """Rows with equal non-seed settings merged: mean ± std and the 95% t
  interval over seeds (of the runs that did not diverge), and the counts of
  stalled and diverged runs."""
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  out: dict[tuple, dict] = {}
  for row in rows:
    k = tuple(json.dumps(row[f]) for f in keys)
    agg = out.setdefault(k, dict(**{f: row[f] for f in keys}, n=0, stalled=0, diverged=0,
                                 final=[], best=[], bpb=[]))
    agg["n"] += 1
    diverged = row["status"] == "diverged" or row.get("outcome") == "diverged"
    agg["diverged"] += diverged
    agg["stalled"] += row.get("outcome") == "stalled"
    agg["unfinished"] = agg.get("unfinished", 0) + (row["status"] == "unfinished")
    agg["pruned"] = agg.get("pruned", 0) + (row["status"] == "pruned")
    if diverged or row["status"] in ("unfinished", "pruned"):   # never in a mean (a diverged
      continue                        # run may have a finite loss; a pruned one stopped early)
    for name, col in (("final", "final_eval_loss"), ("best", "best_eval_loss"),
                      ("bpb", "final_eval_bpb")):
      if row.get(col) is not None and math.isfinite(row[col]):
        agg[name].append(row[col])
  result = []
  for agg in out.values():
    for name in ("final", "best"):
      vals = agg.pop(name)
      agg[f"{name}_eval_mean"] = statistics.fmean(vals) if vals else None
      agg[f"{name}_eval_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else None
      ci = stats.mean_ci(vals)
      agg[f"{name}_eval_ci95"] = None if ci.lo is None else [ci.lo, ci.hi]
    bpb = agg.pop("bpb")   # bits per byte: what compares across tokenizers
    agg["final_eval_bpb_mean"] = statistics.fmean(bpb) if bpb else None
    result.append(agg)
  return result


def lr_sensitivities(swept, rows, agg) -> list[dict]:
  """Wortsman et al.'s LR sensitivity per setting of the non-LR, non-seed axes
  (needs optimizer.peak_lr swept over >= 2 values). A setting with an LR
  that has no finished run gets None (n/a); one where every LR diverged has
  no best loss of its own, so its best is the grid's: initial - grid best."""
  if "optimizer.peak_lr" not in swept:
    return []
  others = [f for f in swept if f != "optimizer.peak_lr" and f.split(".")[-1] != "seed"]
  inits = [r["initial_eval_loss"] for r in rows if r.get("initial_eval_loss") is not None]
  if not inits:
    return []
  initial = statistics.fmean(inits)
  grid_best = min((a["final_eval_mean"] for a in agg if a["final_eval_mean"] is not None),
                  default=None)
  by_setting: dict[str, list] = {}
  for a in agg:
    key = json.dumps({f: a[f] for f in others})
    # unknown: no finished run, or a pruned one (its fate past the rung is unknown)
    missing = a.get("unfinished", 0) == a["n"] or a.get("pruned", 0) > 0
    by_setting.setdefault(key, []).append(
        (a["optimizer.peak_lr"], None if missing else (
            a["final_eval_mean"] if a["final_eval_mean"] is not None else math.nan)))
  out = []
  for key, pts in by_setting.items():
    if len(pts) < 2:
      continue
    losses = [y for _, y in pts]
    if any(y is None for y in losses):
      sens = None
    elif all(math.isnan(y) for y in losses):
      sens = None if grid_best is None else initial - min(grid_best, initial)
    else:
      sens = stats.lr_sensitivity([x for x, _ in pts], losses, initial)
    out.append(dict(**json.loads(key), n_lrs=len(pts), lr_sensitivity=sens))
  return out


def validate_heatmaps(pairs, values: dict, field: str = "get_heatmaps") -> list[dict]:
  """Heatmap axes, each an (x, y) pair of swept fields with numeric values
  (`values`: swept field -> its values), as [{'x': X, 'y': Y}]."""
  out = []
  for i, pair in enumerate(pairs or []):
    if isinstance(pair, dict):
      pair = (pair.get("x"), pair.get("y"))
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
      raise ConfigError(field, f"item {i} must be an (x, y) pair of swept fields, got {pair!r}")
    for f in pair:
      numeric = [v for v in values.get(f, []) if isinstance(v, (int, float))
                 and not isinstance(v, bool)]
      if f not in values or len(set(numeric)) < 2 or len(numeric) < len(values[f]):
        allowed = [k for k, vs in values.items() if len(set(map(json.dumps, vs))) > 1
                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)]
        raise ConfigError(field, f"{f!r} is not a swept numeric field with 2 or more values; "
                          f"allowed: {', '.join(allowed) or 'none in this grid'}")
    if pair[0] == pair[1]:
      raise ConfigError(field, f"x and y are both {pair[0]!r}; give two different fields")
    out.append(dict(x=pair[0], y=pair[1]))
  return out


def heatmap(swept, rows, x: str, y: str, agg=None) -> list[dict]:
  """A heatmap's numbers, one dict per setting ('facet') of the other
  non-seed swept fields: the sorted x and y values, per cell (arrays YxX)
  the finished runs, mean final eval loss over those that did not diverge,
  stalled and diverged fractions (from `aggregate`'s cells), and per x the
  best y (lowest mean over seeds of `claims.capped_loss`) with its 95%
  seed-bootstrap interval (`stats.best_value_ci`)."""
  seeds = [f for f in swept if f.split(".")[-1] == "seed"]
  others = [f for f in swept if f not in (x, y) and f not in seeds]
  key = lambda r, *fields: json.dumps([r[f] for f in fields])   # noqa: E731
  cells = {key(a, *others, x, y): a for a in (agg or aggregate(swept, rows)) if _finished(a)}
  done = [r for r in rows if r["status"] != "unfinished"]
  inits = [r["initial_eval_loss"] for r in done if r.get("initial_eval_loss") is not None]
  initial = statistics.fmean(inits) if inits else math.inf
  out = []
  for facet in dict.fromkeys(key(r, *others) for r in done):
    runs = [r for r in done if key(r, *others) == facet]
    xs, ys = sorted({r[x] for r in runs}), sorted({r[y] for r in runs})
    at = [[cells.get(json.dumps([*json.loads(facet), xv, yv])) for xv in xs] for yv in ys]
    grid = lambda fn, at=at: [[None if a is None else fn(a) for a in row] for row in at]
    best = [_best_y(runs, x, xv, y, ys, seeds, initial) for xv in xs]
    out.append(dict(x=x, y=y, facet=dict(zip(others, json.loads(facet))), xs=xs, ys=ys,
                    n_YxX=grid(_finished), loss_YxX=grid(lambda a: a["final_eval_mean"]),
                    stalled_YxX=grid(lambda a: a["stalled"] / _finished(a)),
                    diverged_YxX=grid(lambda a: a["diverged"] / _finished(a)),
                    best=[b for b in best if b is not None]))
  return out


def _finished(cell: dict) -> int:
  """An `aggregate` cell's runs that finished (diverged and pruned included)."""
  return cell["n"] - cell.get("unfinished", 0)


def _best_y(runs, x, xv, y, ys, seeds, initial):
  """The best y at x = xv over the seeds that ran every y (`heatmap`)."""
  by_seed: dict[str, dict] = {}
  for r in runs:
    if r[x] == xv:
      by_seed.setdefault(json.dumps([r[f] for f in seeds]), {})[r[y]] = (
          claims_lib.capped_loss(r, initial))
  full = [[s[yv] for yv in ys] for s in by_seed.values() if len(s) == len(ys)]
  if not full or not math.isfinite(initial):
    return None
  b, lo, hi, n = stats.best_value_ci(ys, full)
  return dict(x=xv, best=b, lo=lo, hi=hi, n=n,
              loss=statistics.fmean(row[ys.index(b)] for row in full))


def heatmap_markdown(maps: list[dict]) -> list[str]:
  """Per heatmap, the best y per x with its interval (summary.md)."""
  lines = []
  for m in maps:
    x, y = m["x"].split(".")[-1], m["y"].split(".")[-1]
    facet = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in m["facet"].items())
    lines += ["", f"Best {y} per {x}{' (' + facet + ')' if facet else ''}: lowest mean over seeds "
              "of min(final eval loss, initial eval loss), a diverged run counted as the "
              "initial loss; 95% interval from a bootstrap over seeds:", "",
              f"| {x} | best {y} | 95% interval | seeds | mean loss there |",
              "|---|---|---|---|---|"]
    lines += [f"| {b['x']} | {b['best']} | " + (
        f"[{b['lo']}, {b['hi']}]" if b["lo"] is not None else "n/a (one seed)")
        + f" | {b['n']} | {b['loss']:.4f} |" for b in m["best"]]
  return lines


def _pm(mean, std):
  return "—" if mean is None else f"{mean:.4f} ± {std:.4f}"


def _ci(mean, ci95):
  if mean is None:
    return "—"
  return f"{mean:.4f}" + ("" if ci95 is None else f" [{ci95[0]:.4f}, {ci95[1]:.4f}]")


def resumed_elsewhere(groups) -> list[str]:
  """A line for groups resumed on another device count: their numbers come
  from two or more programs (docs/reliability.md), so say so."""
  moved = [f"{g['group']} ({' and '.join(map(str, g['device_counts']))} devices)"
           for g in groups if len(g.get("device_counts") or ()) > 1]
  return [f"- **resumed on another device count**: {', '.join(moved)}; their numbers are "
          "not bit-identical to an uninterrupted run's"] if moved else []


def markdown(loaded, swept, rows, agg, sens=(), verdicts=(), maps=()) -> str:
  keys = [f for f in swept if f.split(".")[-1] != "seed"]
  pruned = any(a.get("pruned") for a in agg)
  groups = loaded["groups"]
  device = groups[-1]["device"] if groups else {}
  unfinished = sum(r["status"] == "unfinished" for r in rows)
  valid = [a for a in agg if a["final_eval_mean"] is not None and a["diverged"] < a["n"]
           and not a.get("unfinished")]
  best = min(valid, key=lambda a: a["final_eval_mean"]) if valid else None
  bpb = any(a.get("final_eval_bpb_mean") is not None for a in agg)
  lines = [f"# {loaded['record']['experiment']}", "",
           f"- command: `{groups[-1]['command'] if groups else ''}`"
           + (f" at code {groups[-1]['code']}" if groups and groups[-1].get("code") else ""),
           ("- finished: not yet: " + f"{unfinished} of {len(rows)} runs unfinished (their "
            "partial curves are left out of every mean)" if unfinished else
            f"- finished: {groups[-1]['finished_at'] if groups else 'not yet'}"),
           f"- hardware: {device.get('n_devices')} x {device.get('device_kind')} "
           f"({device.get('platform')})"
           + (f" on {device['host']}" if device.get("host") else "")
           + f", {device.get('n_processes')} process(es), mesh {device.get('mesh')}",
           *resumed_elsewhere(groups),
           f"- {len(rows)} runs in {len(groups)} compile group(s); train-step compilations: "
           f"{sum(g['train_step_compiles'] for g in groups)}",
           "- eval loss in nats per token, over the seeds (n per row) that did not diverge: "
           "final as mean [95% t interval], best as mean ± std; diverged: a non-finite or "
           "out-of-bound loss, or an eval loss after the warmup above the initial one; "
           "stalled: final eval loss above the data's unigram entropy minus "
           "`train.stall_margin` and flat (fell by at most "
           f"{metrics_io.SLOW_DROP} nats) over the last half of training (a run still "
           "falling there is slow, not a failure); "
           "★ = lowest mean final eval loss"
           + ("; final eval bpb: the mean final eval loss in bits per byte of the validation "
              "text (loss x tokens / (bytes x ln 2)), comparable across tokenizers" if bpb else "")
           + ("; pruned: stopped by successive halving at a rung (`train.prune_steps`), "
              "left out of the means" if pruned else ""), "",
           "| " + " | ".join([*(k.split(".")[-1] for k in keys), "n", "stalled", "diverged",
                              *(["pruned"] if pruned else []),
                              "final eval loss", "best eval loss",
                              *(["final eval bpb"] if bpb else []), ""]) + " |",
           "|" + "---|" * (len(keys) + 6 + pruned + bpb)]
  for a in agg:
    cells = [str(a[k]) for k in keys] + [str(a["n"]), f"{a['stalled']}/{a['n']}",
                                         f"{a['diverged']}/{a['n']}",
                                         *([f"{a['pruned']}/{a['n']}"] if pruned else []),
                                         _ci(a["final_eval_mean"], a["final_eval_ci95"]),
                                         _pm(a["best_eval_mean"], a["best_eval_std"]),
                                         *([_bpb(a.get("final_eval_bpb_mean"))] if bpb else []),
                                         "★" if a is best else ""]
    lines.append("| " + " | ".join(cells) + " |")
  if sens:
    cols = [k for k in sens[0] if k not in ("n_lrs", "lr_sensitivity")]
    lines += ["", "LR sensitivity (Wortsman et al. 2023: mean over the swept peak LRs of "
              "min(final eval loss, initial eval loss) minus the best; diverged = initial; "
              "lower is more robust):", "",
              "| " + " | ".join([*(c.split(".")[-1] for c in cols), "LRs", "LR sensitivity"])
              + " |", "|" + "---|" * (len(cols) + 2)]
    for r in sens:
      lines.append("| " + " | ".join([*(str(r[c]) for c in cols), str(r["n_lrs"]),
                                      "n/a" if r["lr_sensitivity"] is None
                                      else f"{r['lr_sensitivity']:.4f}"]) + " |")
  lines += heatmap_markdown(list(maps))
  lines += claims_lib.markdown(list(verdicts))
  return "\n".join(lines) + "\n"


def _bpb(x: float | None) -> str:
  return "n/a" if x is None else f"{x:.4f}"


def read_analysis(workdir) -> dict[str, list[dict]]:
  """analysis.csv (written by `analyze`) as run_id -> its rows, numbers as
  floats (empty cells None); {} when there is none."""
  path = pathlib.Path(workdir) / "analysis.csv"
  if not path.exists():
    return {}
  out: dict[str, list[dict]] = {}
  with open(path, newline="") as f:
    for row in csv.DictReader(f):
      out.setdefault(row["run_id"], []).append(
          {k: (v if k == "run_id" else None if v == "" else int(v) if k == "step" else float(v))
           for k, v in row.items()})
  return out


def write_tensorboard(workdir: pathlib.Path, loaded: dict) -> None:
  """tb/RUN_ID/ from the metrics files, for runs that have none (trained
  with `--logger none`, or before the live logger existed)."""
  for r in loaded["record"]["runs"]:
    out = Layout.of(workdir).tb(r["run_id"])
    if out.is_dir():
      continue
    with loggers.tensorboard_writer(out, config_lib.from_saved(r["config"]), r["swept"]) as w:
      for row in loaded["metrics"][r["run_id"]]:
        for k, v in loggers.scalars(row).items():
          w.add_scalar(k, v, row["step"])


def write(workdir, *, plots: bool = True, tensorboard: bool = True) -> dict:
  """Re-makes the workdir's tables and plots from its files and returns the
  summary; a legacy `train` workdir's summary.json (the run's record) is
  left as it is."""
  wd = pathlib.Path(workdir)
  layout = Layout.of(wd)
  loaded = load(wd)
  swept, rows = run_rows(loaded)
  agg = aggregate(swept, rows)
  margins = [f"outcome@{m}" for m in metrics_io.STALL_MARGINS]
  columns = ["run_id", *swept, *RUN_COLUMNS, *(["pruned_step"] if any(
      r["status"] == "pruned" for r in rows) else []),
             *(TO_TARGET if any("updates_budget" in r for r in rows) else []),
             *(k for k in claims_lib.LADDER if len({r[k] for r in rows}) > 1),
             *(margins if rows and all(m in r for r in rows for m in margins) else [])]
  write_atomic(wd / "runs.csv", to_csv(columns, rows))
  sens = lr_sensitivities(swept, rows, agg)
  curves = {rid: [(m["step"], m["eval_loss"]) for m in ms if "eval_loss" in m]
            for rid, ms in loaded["metrics"].items()}
  measured = read_analysis(wd)
  record_claims = loaded["record"].get("claims", [])
  law_curves = _law_curves(loaded, record_claims)
  verdicts = claims_lib.evaluate_all(record_claims, swept, rows, curves, measured, law_curves,
                                     laws.fit if law_curves else None)
  # claims rewritten after their runs stay flagged through a re-run (the marker keeps it)
  verdicts = claims_lib.flag_relabelled(verdicts, (read_marker(wd) or {}).get(
      "relabelled_claims", []))
  per_pair = [heatmap(swept, rows, h["x"], h["y"], agg)
              for h in loaded["record"].get("heatmaps", [])]
  maps = [m for facets in per_pair for m in facets]
  write_atomic(wd / "summary.md", markdown(loaded, swept, rows, agg, sens, verdicts, maps))
  groups = loaded["groups"]
  summary = dict(experiment=loaded["record"]["experiment"],
                 command=groups[-1]["command"] if groups else None,
                 device=groups[-1]["device"] if groups else None,
                 n_runs=len(rows), n_groups=len(groups),
                 n_compiles=sum(g["train_step_compiles"] for g in groups),
                 groups=groups, runs=rows, aggregated=agg, lr_sensitivity=sens,
                 claims=verdicts, **({"heatmaps": maps} if maps else {}))
  if layout.summary is not None:
    write_atomic(layout.summary, strict_json(summary, indent=1))
  if tensorboard and not layout.legacy:   # a legacy run's events are its tb/ as trained
    write_tensorboard(wd, loaded)
  if plots:
    plots_lib.plot_sweep(wd, loaded, swept, rows, agg)
    for facets in per_pair:
      plots_lib.plot_heatmap(wd / "plots", facets)
    plots_lib.plot_claims(verdicts, wd / "plots" / "claims.png",
                          title=loaded["record"]["experiment"])
    plots_lib.plot_law_predictions(verdicts, wd / "plots" / "law_predictions.png")
    plots_lib.plot_trends(verdicts, wd / "plots" / "trends.png")
    if measured:
      plots_lib.plot_analysis(wd, [r for rs in measured.values() for r in rs],
                              {r["run_id"]: r["swept"] for r in loaded["record"]["runs"]})
  return summary


def compare(a, b) -> str:
  """Two workdirs side by side (markdown): the config fields whose values
  differ between their runs, then rows matched by the values of every
  non-seed field either one sweeps, with final eval loss as mean [95% CI]
  over seeds and B - A: paired over seeds where both hold the same seed
  values (`_b_minus_a`), else the difference of the means, so labelled."""
  la, lb = load(a), load(b)
  fields = list(dict.fromkeys(f for loaded in (la, lb) for r in loaded["record"]["runs"]
                              for f in r["swept"] if f.split(".")[-1] != "seed"))
  key = lambda row: json.dumps([row[f] for f in fields])
  sides = []
  for loaded in (la, lb):
    swept, rows = run_rows(loaded, also=fields)
    seed_of = {r["run_id"]: _seed_key(r["config"]) for r in loaded["record"]["runs"]}
    runs: dict[str, list] = {}
    for row in rows:
      runs.setdefault(key(row), []).append((seed_of[row["run_id"]], row))
    sides.append(({key(r): r for r in aggregate(swept, rows)}, runs))
  names = [pathlib.Path(a).name or str(a), pathlib.Path(b).name or str(b)]
  lines = [f"A = {a}, B = {b}", "", *_config_diff(la, lb), "",
           "Final eval loss, mean [95% t CI] over the seeds that did not diverge (n runs). "
           "B - A: where A and B hold the same seeds (the same init and data order), the mean "
           "over seeds of B's run minus A's run of that seed, with the paired t 95% CI over "
           "the n pairs that both finished; elsewhere the difference of the means, unpaired.",
           "", "| " + " | ".join([*(f.split(".")[-1] for f in fields), f"A: {names[0]}",
                                  f"B: {names[1]}", "B - A over", "95% CI of B - A", "B - A"])
           + " |", "|" + "---|" * (len(fields) + 5)]
  (index_a, runs_a), (index_b, runs_b) = sides
  for k in dict.fromkeys([*index_a, *index_b]):
    ra, rb = index_a.get(k), index_b.get(k)
    row = ra or rb
    cell = lambda r: "—" if r is None else f"{_ci(r['final_eval_mean'], r['final_eval_ci95'])} " \
        f"({r['n']})"
    over, ci, diff = ("—", "—", "—") if not (ra and rb) else _b_minus_a(
        runs_a[k], runs_b[k], ra["final_eval_mean"], rb["final_eval_mean"])
    lines.append("| " + " | ".join([*(str(row[f]) for f in fields), cell(ra), cell(rb), over,
                                    ci, diff]) + " |")
  return "\n".join(lines) + "\n"


def _seed_key(cfg: dict) -> tuple:
  """A run's seeds: every config field named `seed` (`seed`, `data.seed`),
  which together fix its init and data order."""
  return tuple((f, v) for f, v in config_lib.flatten(cfg).items() if f.split(".")[-1] == "seed")


def _seed_names(seeds) -> str:
  return ", ".join("/".join(str(v) for _, v in s if v is not None) for s in seeds)


def _b_minus_a(runs_a, runs_b, mean_a, mean_b) -> tuple[str, str, str]:
  """`compare`'s (B - A over, its 95% CI, B - A) cells of a row whose runs
  are `runs_a` and `runs_b`, (seed key, run row) pairs."""
  seeds_a, seeds_b = [s for s, _ in runs_a], [s for s, _ in runs_b]
  if set(seeds_a) != set(seeds_b) or len(set(seeds_a)) < len(seeds_a):
    unpaired = "—" if None in (mean_a, mean_b) else f"{mean_b - mean_a:+.4f}"
    return (f"unpaired: seeds differ (A: {_seed_names(dict.fromkeys(seeds_a))}; "
            f"B: {_seed_names(dict.fromkeys(seeds_b))})", "—", unpaired)
  # a diverged, pruned or unfinished run drops its pair, as `aggregate` drops it from a mean
  value = lambda row: (None if row["status"] in ("unfinished", "diverged", "pruned")
                       or row.get("outcome") == "diverged" else row["final_eval_loss"])
  of_b = {s: row for s, row in runs_b}
  d = stats.paired_difference([value(row) for _, row in runs_a],
                              [value(of_b[s]) for s, _ in runs_a])
  if d.n_pairs == 0:
    return "paired, n = 0 (no seed finished on both sides)", "—", "—"
  ci = (f"[{d.ci95[0]:.4f}, {d.ci95[1]:.4f}]" if d.ci95 is not None else
        "n/a (1 pair)" if d.n_pairs == 1 else "n/a (no spread)")
  return f"paired, n = {d.n_pairs}", ci, f"{d.effect:+.4f}"


def _config_diff(la, lb) -> list[str]:
  """`compare`'s table of the config fields whose values differ between
  two loaded workdirs' runs (each run's recorded config, with the fields it
  predates at the values it ran with), a swept field with its values."""
  values = []
  for loaded in (la, lb):
    seen: dict[str, dict] = {}
    for r in loaded["record"]["runs"]:
      flat = config_lib.flatten(config_lib.from_saved(r["config"]).to_dict())
      for f, v in flat.items():
        seen.setdefault(f, {}).setdefault(json.dumps(v, sort_keys=True), v)
    values.append(seen)
  swept = {f for loaded in (la, lb) for r in loaded["record"]["runs"] for f in r["swept"]}
  show = lambda vs: "—" if vs is None else ", ".join(
      json.dumps(v) if isinstance(v, (list, dict)) else str(v) for v in vs.values())
  differ = [f for f in dict.fromkeys([*values[0], *values[1]])
            if set(values[0].get(f, {})) != set(values[1].get(f, {}))]
  if not differ:
    return ["No config field differs."]
  return ["Config fields that differ (every run's recorded config, flattened; a swept "
          "field lists its values):", "", "| field | A | B |", "|---|---|---|",
          *(f"| {f}{' (swept)' if f in swept else ''} | {show(values[0].get(f))} | "
            f"{show(values[1].get(f))} |" for f in differ)]


CLAIMS_START, CLAIMS_END = "<!-- claims table: start -->", "<!-- claims table: end -->"


def write_claims(results_dir) -> list[dict]:
  """The claims of every `results_dir/*/summary.json`, as one table in
  `results_dir/README.md` (between the CLAIMS_START / CLAIMS_END lines,
  replaced; appended if missing) and one forest plot, `claims.png`. Beside
  each raw and Holm-adjusted (within its experiment) verdict the table puts
  a Benjamini-Hochberg one, adjusted over every claim of the table."""
  results_dir = pathlib.Path(results_dir)
  verdicts = []
  for path in sorted(results_dir.glob("*/summary.json")):
    for v in json.loads(path.read_text()).get("claims") or []:
      verdicts.append(dict(v, experiment=path.parent.name))
  verdicts = claims_lib.adjust(verdicts, "bh", "bh")
  lines = [CLAIMS_START, "",
           "| experiment | claim | paper | metric | b vs a | effect (b - a) | 95% CI | seeds | "
           "method | p | verdict | Holm p | verdict (Holm) | BH p | verdict (BH) | flags | "
           "per level | comment |", "|" + "---|" * 18]
  for v in verdicts:
    lines.append("| " + " | ".join([
        f"[{v['experiment']}]({v['experiment']}/summary.md)", v["claim"], v["paper"],
        v["metric"], claims_lib.conditions(v), claims_lib.fmt(v.get("effect")),
        claims_lib.interval(v), claims_lib.seeds(v), v["method"],
        claims_lib.fmt_p(v.get("p")), v["verdict"], claims_lib.fmt_p(v.get("p_adjusted")),
        f"**{v.get('verdict_adjusted', v['verdict'])}**", claims_lib.fmt_p(v.get("p_bh")),
        v["verdict_bh"], claims_lib.notes(v), claims_lib.levels(v), v.get("comment", "")])
        + " |")
  lines += ["", f"Generated by `warmup-research report --claims {results_dir}` from each "
            "experiment's summary.json; the forest plot is [claims.png](claims.png). Holm: "
            "adjusted over the experiment's claims; BH: Benjamini-Hochberg over this table.",
            "", CLAIMS_END]
  readme = results_dir / "README.md"
  text = readme.read_text() if readme.exists() else "# Results\n"
  if CLAIMS_START in text and CLAIMS_END in text:
    head, rest = text.split(CLAIMS_START, 1)
    text = head + "\n".join(lines) + rest.split(CLAIMS_END, 1)[1]
  else:
    text = text.rstrip() + "\n\n## Claims\n\n" + "\n".join(lines) + "\n"
  write_atomic(readme, text)
  plots_lib.plot_claims(verdicts, results_dir / "claims.png",
                        title="every claim: paired difference b - a over seeds")
  return verdicts


def against(workdir, committed) -> str:
  """How a re-made grid's final eval losses compare with a committed
  table's (both summary.json), run by run: the main job prints it, so a
  user sees what moved, and by how much, on their CPU."""
  def runs(d):
    path = pathlib.Path(d) / "summary.json"
    try:
      s = json.loads(path.read_text())
      return s, {r["run_id"]: r.get("final_eval_loss") for r in s["runs"]}
    except (OSError, ValueError, KeyError, TypeError):
      raise ConfigError(str(path), "is not a readable summary.json of a sweep") from None
  (new, a), (old, b) = runs(workdir), runs(committed)
  host = lambda s: (s.get("device") or {}).get("host", "an unknown host")
  lines = [f"Against the committed table {committed} (made on {host(old)}; this run: "
           f"{host(new)}):", "", "| run | committed | this run | difference |", "|---|---|---|---|"]
  diffs = []
  for run_id in [*b, *(r for r in a if r not in b)]:
    x, y = b.get(run_id), a.get(run_id)
    d = None if x is None or y is None else y - x
    diffs += [] if d is None or not math.isfinite(d) else [abs(d)]
    lines.append(f"| {run_id} | {_fmt(x)} | {_fmt(y)} | {'—' if d is None else f'{d:+.4f}'} |")
  lines += ["", f"largest difference: {max(diffs):.4f} nats" if diffs else
            "no run in common", ""]
  return "\n".join(lines)


def _fmt(x) -> str:
  return "—" if x is None else f"{x:.4f}"
