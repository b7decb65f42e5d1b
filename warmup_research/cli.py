"""warmup-research {sweep,train,report,plan,analyze,schedules} ...  (= python -m warmup_research)

    sweep experiments/NAME.py[:arg] [--workdir DIR] [--config.x.y=v ...] [--overwrite]
          [--dry-run]
    train --config experiments/NAME.py[:arg] --workdir DIR [--config.x.y=v ...] [--overwrite]
    report WORKDIR [--compare OTHER | --against COMMITTED | --heatmap x=FIELD,y=FIELD]
    report --claims DIR [--rederive]
    plan EXPERIMENT --pilot WORKDIR
    analyze WORKDIR [--runs ID [--runs ID ...]] [--every K] [--iters N]
    schedules [--out results/schedules.png]

Every bad input stops with one line `error: <field>: <what is allowed>` and
exit code 2, before any compute and without touching earlier files.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import pathlib
import shlex
import signal
import sys
import tempfile
import threading

# Only light modules here: each command imports the heavy ones (jax, orbax,
# tfds, scipy, matplotlib, and the modules of this package that import them)
# it needs, so `--help` and bad arguments answer at once.
from warmup_research import runtime
from warmup_research.errors import ConfigError

USAGE_EXIT = 2
LOGGER_DEFAULT = "tensorboard"   # loggers.DEFAULT, without importing loggers (cli_test checks)


def split_overrides(rest: list[str]) -> dict[str, str]:
  """['--config.a.b=1', '--config.c', '2'] -> {'a.b': '1', 'c': '2'}."""
  out, i = {}, 0
  while i < len(rest):
    arg = rest[i]
    if not arg.startswith("--config."):
      raise ConfigError(arg, "unknown argument; overrides look like --config.section.field=value")
    key, eq, value = arg[len("--config."):].partition("=")
    if not eq:
      if i + 1 >= len(rest):
        raise ConfigError(arg, "needs a value: --config.section.field=value")
      value, i = rest[i + 1], i + 1
    out[key] = value
    i += 1
  return out


def load_config(spec: str, overrides: dict[str, str]):
  from warmup_research import config as config_lib  # heavy: commands only, not --help
  cfg = config_lib.apply_overrides(config_lib.load(spec), overrides)
  config_lib.validate(cfg)
  return cfg


def _prepare_data(cfg):
  """Builds the dataset (process 0 first, so hosts never build at once)."""
  import jax  # heavy: commands only, not --help

  from warmup_research import data  # heavy: commands only, not --help
  batches = data.Batches(cfg) if jax.process_index() == 0 else None
  runtime.barrier("data")
  return batches or data.Batches(cfg)


def _fmt(x):
  return "n/a" if x is None else f"{x:.4f}"


def _together(fn, *args, fingerprint=None):
  """fn(*args) in every process, then they meet: bad input in any one ends
  all of them at once (each with one line), instead of leaving the others
  waiting at a barrier. `fingerprint(out)`: what must be equal everywhere."""
  try:
    out, error = fn(*args), None
  except ConfigError as e:
    out, error = None, e
  runtime.agree(error, "" if error or fingerprint is None else fingerprint(out))
  return out


def cmd_train(args, rest) -> None:
  """A sweep of one point (`sweep.one_point`), run as `sweep` runs one, with
  its own one-line report; a legacy `train` workdir resumes in its layout."""
  import jax  # heavy: commands only, not --help

  from warmup_research import (  # heavy: commands only, not --help
    branches,
    loggers,
    results,
    sweep,
    train,
    workdir,
  )
  from warmup_research import config as config_lib  # heavy: commands only, not --help
  from warmup_research import mesh as mesh_lib  # heavy: commands only, not --help

  def check():
    loggers.parse(args.logger)
    cfg = load_config(args.config, split_overrides(rest))
    branches.trunks(sweep.one_point(cfg))   # no train.branch_at here: its trunk is a sweep's
    workdir.check_path(args.workdir)
    mesh_lib.group_shape([cfg])
    mesh_lib.check_fits([cfg], train.memory_bytes(cfg, 1, batched=False))
    return cfg

  runtime.start_jax(args.jax_cache_dir)
  cfg = _together(check, fingerprint=config_lib.to_json)
  _together(_prepare_data, cfg)  # bad dataset / corpus fail here, before the workdir
  variants = sweep.one_point(cfg)
  layout = _together(lambda: workdir.prepare(
      args.workdir, sweep.sweep_record(f"train {args.config}", variants), kind="run",
      overwrite=args.overwrite, write=jax.process_index() == 0,
      upgrade=config_lib.upgrade_record))
  finished = layout.group_record(sweep.group_id(0)).is_file()
  command = " ".join(["python -m warmup_research train --config", args.config,
                      "--workdir", args.workdir, *rest])
  (record,) = sweep.run(variants, layout.root, progress=not args.no_progress, command=command,
                        backends=loggers.parse(args.logger))["groups"]
  runtime.barrier("done")
  if jax.process_index() != 0:
    return
  wd = layout.root
  # a finished run's files are left as they are, but a kill after its group record
  # and before its tables leaves no tables: those are made
  remade = layout.summary is not None and not layout.summary.is_file()
  if not finished or remade:
    results.write(wd)
  s = results.summaries(results.load(wd))["run"]
  if finished:
    print(f"done: already finished ({s['outcome']} after {s['steps']} steps); {wd} "
          + ("unchanged but for its tables, made again" if remade else "unchanged"))
    return
  step_seconds = record["step_seconds"]   # None: no call ran after the first
  print(f"done: {s['outcome']} after {s['steps']} steps"
        + (f" (diverged at step {s['diverged_step']})" if s["diverged_step"] is not None else "")
        + f" | train loss {_fmt(s['final_train_loss'])} | eval loss "
        f"{_fmt(s['initial_eval_loss'])} -> {_fmt(s['final_eval_loss'])} "
        f"(best {_fmt(s['best_eval_loss'])})"
        + (f", {_fmt(s['final_eval_bpb'])} bits/byte" if s.get("final_eval_bpb") is not None
           else "")
        + f" | compile {record['compile_seconds']:.1f}s | "
        f"{record['steps_run']} steps run here"
        + (f", {1 / step_seconds:.1f} steps/s" if step_seconds is not None else "")
        + f" | {wd}")


def _experiment(args) -> str:
  """The experiment file: positional, or `--config F` (its synonym)."""
  if args.experiment and args.config_file:
    raise ConfigError("--config", f"give the experiment once: positional "
                      f"{args.experiment!r} or --config {args.config_file!r}")
  if not (args.experiment or args.config_file):
    raise ConfigError("EXPERIMENT", "missing: warmup-research sweep experiments/NAME.py[:arg]")
  return args.experiment or args.config_file


def _plan(args, rest):
  """The plan of a sweep command (`sweep.Plan`), every input checked; a grid
  that grows the one recorded in its workdir keeps the recorded runs."""
  from warmup_research import claims as claims_lib  # heavy: commands only, not --help
  from warmup_research import config as config_lib  # heavy: commands only, not --help
  from warmup_research import loggers, results, sweep, workdir  # heavy: commands only, not --help
  spec = _experiment(args)
  loggers.parse(args.logger)
  overrides = split_overrides(rest)
  base = config_lib.apply_overrides(config_lib.load(spec), overrides)
  variants = sweep.expand(base, config_lib.load_sweep(spec), overridden=overrides)
  claims = claims_lib.validate(config_lib.load_claims(spec), sweep.swept_fields(variants))
  heatmaps = results.validate_heatmaps(config_lib.load_heatmaps(spec),
                                       sweep.swept_values(variants))
  name = pathlib.Path(spec.partition(":")[0]).stem
  wd = workdir.check_path(f"results/{name}" if args.workdir is None else args.workdir)
  record = sweep.sweep_record(spec, variants, claims, heatmaps=heatmaps)
  path, recorded, grown = workdir.Layout(wd).record, None, None
  # A recorded grid this one grows (or equals) keeps its layout, with --overwrite too:
  # --overwrite replaces only a different grid, so an unchanged one loses nothing.
  if path.is_file():
    try:
      old = config_lib.upgrade_record(json.loads(path.read_text()))
      recorded, grown = old, sweep.grow(old, spec, variants, claims, heatmaps)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      if not args.overwrite:   # with it, `workdir.prepare` replaces the grid
        raise ConfigError(str(path), workdir.unreadable(e, workdir.RECORD_REMEDY + "; or "
                                                        "--overwrite to start the grid afresh "
                                                        "(deletes its runs)")) from None
  return sweep.Plan(spec, variants, claims, heatmaps, wd, grown or record, recorded, grown)


def _check_analysis(wd: pathlib.Path) -> None:
  """analysis.csv, which the tables re-read, parses; else one `error:` line."""
  from warmup_research import analysis, results  # heavy: commands only, not --help
  try:
    results.read_analysis(wd)
  except analysis.CSV_ERRORS as e:
    raise analysis.unreadable_csv(wd, e) from None


def cmd_sweep(args, rest) -> None:
  import jax  # heavy: commands only, not --help

  from warmup_research import config as config_lib  # heavy: commands only, not --help
  from warmup_research import (  # heavy: commands only, not --help
    data,
    loggers,
    metrics_io,
    results,
    sweep,
    train,
    workdir,
  )
  from warmup_research import mesh as mesh_lib  # heavy: commands only, not --help

  def check():
    plan = _plan(args, rest)
    for _, members in plan.groups:   # every group fits, before compute
      cfgs = [v.cfg for v in members]
      variant, _ = mesh_lib.group_shape(cfgs)
      mesh_lib.check_fits(cfgs, train.memory_bytes(
          cfgs[0], -(-len(cfgs) // variant), batched=mesh_lib.variant_loop(cfgs[0]) == "vmap"))
    if plan.keeps_runs:   # as `sweep.run` checks them
      metrics_io.finished_runs(plan.workdir)  # the finished groups' records and whole metrics files
    return plan

  if args.dry_run:   # every check of the real run, and the data's without building it
    # The checks ask the devices (count, memory): an accelerator is not preallocated
    # for that, so a dry run beside a running job takes none of its memory.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    plan = check()
    sources = {json.dumps(v.cfg.data.to_dict(), sort_keys=True): v.cfg for v in plan.variants}
    for cfg in sources.values():   # each data config once (a corpus is walked to check it)
      data.check_source(cfg)
    return _dry_run(plan, overwrite=args.overwrite)
  runtime.start_jax(args.jax_cache_dir)
  plan = _together(check, fingerprint=lambda p: p.record)
  wd = plan.workdir
  for _, members in plan.groups:
    _together(_prepare_data, members[0].cfg)
  _together(lambda: workdir.prepare(
      wd, plan.record, kind="sweep", overwrite=args.overwrite, write=jax.process_index() == 0,
      upgrade=config_lib.upgrade_record, grows=plan.grows))
  if jax.process_index() == 0:
    print(f"[sweep] {plan.spec}: {len(plan.variants)} runs in {len(plan.groups)} compile "
          f"group(s) on {jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"{jax.process_count()} process(es) -> {wd}", file=sys.stderr)
  command = " ".join(["python -m warmup_research sweep", plan.spec,
                      *(["--workdir", args.workdir] if args.workdir else []), *rest])
  sweep.run(plan.variants, wd, progress=not args.no_progress, command=command,
            layout=plan.layout, backends=loggers.parse(args.logger))
  runtime.barrier("done")
  if jax.process_index() == 0:
    summary = results.write(wd)
    print(f"done: {summary['n_runs']} runs, {summary['n_compiles']} train-step compilation(s); "
          f"{wd / 'runs.csv'}, {wd / 'summary.md'}, {wd / 'plots'}")
    print((wd / "summary.md").read_text())


def _dry_run(plan, overwrite=False) -> None:
  """What `sweep` would run, from the files and the checks alone: nothing
  written, nothing compiled or run. A workdir holding another grid is
  refused as `sweep` would refuse it, or with `overwrite` counted as empty
  (its runs would be deleted). The wall time is estimated from the rates
  recorded by finished groups of the same signature (`_recorded_rates`)."""
  from warmup_research import config as config_lib  # heavy: commands only, not --help
  from warmup_research import sweep, workdir  # heavy: commands only, not --help
  wd, replaced = plan.workdir, plan.replaced
  if replaced and not overwrite:   # refused, by name, as `sweep` would refuse it
    workdir.prepare(wd, plan.record, kind="sweep", write=False,
                    upgrade=config_lib.upgrade_record, grows=plan.grows)
  swept = sweep.swept_fields(plan.variants)
  print(f"{len(plan.variants)} variants; swept: {', '.join(swept) or 'nothing'}; workdir {wd}"
        + (" (grown in place: recorded runs kept)" if plan.layout else ""))
  committed = pathlib.Path("results") / pathlib.Path(plan.spec.partition(":")[0]).stem
  rates = _recorded_rates([d for d in dict.fromkeys([wd, committed]) if (
      plan.keeps_runs if d == wd else d.is_dir() and not workdir.differences_from(
          d, plan.record, kind="sweep", upgrade=config_lib.upgrade_record, grows=plan.grows))],
      plan.variants)
  seconds, based_on, unrated = 0.0, {}, []
  for gid, members in plan.groups:
    total, done, left = members[0].cfg.train.total_steps, plan.done[gid], plan.left[gid]
    rate = rates.get(config_lib.static_signature(members[0].cfg))
    if left and rate:
      seconds += left * rate[0]
      based_on[rate[1]] = None
    elif left:
      unrated.append(gid)
    state = "finished" if left == 0 else f"from update {done}" if done else "new"
    print(f"  group {gid}: {len(members)} runs x {total} updates, {state}")
    for v in members:
      print(f"    {v.run_id}")
  print(f"train-step compilations: {plan.compiles}; cost: {plan.steps_to_run:,} run-steps to "
        f"run ({plan.steps_in_grid:,} in the whole grid); "
        f"{len(plan.claims)} claim(s). Dry run: nothing written"
        + (f" (--overwrite would first delete the other grid's runs in {wd})." if replaced
           else "."))
  if based_on:
    print(f"wall time: about {_duration(seconds)} of training (compilation not counted), at "
          f"the rate per run (seconds per update / runs) recorded by {'; '.join(based_on)}"
          + (f"; group(s) {', '.join(unrated)}: no rate recorded, not counted" if unrated
             else ""))
  elif plan.steps_to_run:
    print(f"wall time: no rate recorded (no finished group of this signature in {wd}"
          + (f" or {committed}" if committed != wd else "") + "), so no estimate")


def _recorded_rates(dirs, variants) -> dict[str, tuple[float, str]]:
  """static signature -> (seconds per run-step, what it is from): finished
  groups' `step_seconds` (per update of the group) divided by their runs,
  from the group records in `dirs` (or, committed results without them,
  their summary.json). A group counts only if all its runs are in this grid."""
  import jax  # heavy: commands only, not --help

  from warmup_research import config as config_lib  # heavy: commands only, not --help
  from warmup_research import workdir  # heavy: commands only, not --help
  by_id = {v.run_id: v for v in variants}
  here = f"{jax.devices()[0].platform} x{jax.device_count()}"
  rates = {}
  for d in dirs:
    try:
      records = [(p, json.loads(p.read_text())) for _, p in workdir.Layout.of(d).group_records()]
      summary = workdir.Layout.of(d).summary
      if not records and summary and summary.is_file():
        records = [(summary, g) for g in json.loads(summary.read_text()).get("groups") or []]
      for path, g in records:
        ids, step_seconds = g.get("run_ids") or [], g.get("step_seconds")
        if not step_seconds or not ids or not all(r in by_id for r in ids):
          continue
        dev = g.get("device") or {}
        there = f"{dev.get('platform', '?')} x{dev.get('n_devices', '?')}"
        rates.setdefault(config_lib.static_signature(by_id[ids[0]].cfg), (
            step_seconds / len(ids),
            f"group {g.get('group')} ({step_seconds:.3g} s per update of {len(ids)} runs on "
            f"{there}{'' if there == here else f', not this {here}'}) in {path}"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
      continue   # an unreadable source gives no rate; the estimate says so
  return rates


def _duration(seconds: float) -> str:
  if seconds < 90:
    return f"{seconds:.0f}s"
  return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _no_extra(rest) -> None:
  if rest:
    raise ConfigError(rest[0], "unknown argument")


def _workdir(path: str, lock: bool = True, analysis: bool = True,
             finished: bool = False) -> pathlib.Path:
  """A workdir (a sweep's or a train run's, any layout), locked for this
  process (report and analyze write there), its files checked before any
  work: its record, (`analysis`) analysis.csv, and (`finished`, for a
  command that computes before it re-makes the tables) the finished groups'
  records and metrics files, as the tables will read them."""
  from warmup_research import metrics_io, workdir  # heavy: commands only, not --help
  wd = pathlib.Path(path)
  workdir.read_record(wd)
  if finished:
    metrics_io.finished_runs(wd)
  if analysis:
    _check_analysis(wd)
  if lock:
    try:   # as `workdir.prepare` probes: a file made and removed
      with tempfile.NamedTemporaryFile(dir=wd, prefix=".write-probe-"):
        pass
      workdir.lock(wd, "WORKDIR")
    except OSError as e:
      raise _not_writable(wd, e) from None
  return wd


def _not_writable(wd: pathlib.Path, e: OSError) -> ConfigError:
  probe = ".write-probe-" in str(e.filename)
  return ConfigError("WORKDIR", f"{wd} is not writable ({e.strerror}"
                     + ("" if probe or not e.filename else f": {e.filename}") + "); its "
                     "tables are written there: make it writable, or run on a copy "
                     f"(cp -r {shlex.quote(str(wd))} COPY)")


def _writes(wd: pathlib.Path, fn, *args, **kw):
  """fn(...) that writes into `wd`: a file there it may not write is one
  `error:` line (a plots/ folder made read-only, say), not a traceback."""
  try:
    return fn(*args, **kw)
  except OSError as e:
    if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
      raise
    raise _not_writable(wd, e) from None


def cmd_plan(args, rest) -> None:
  _no_extra(rest)
  if not (pathlib.Path(args.pilot) / "runs.csv").is_file():
    raise ConfigError("--pilot", f"{args.pilot} holds no runs.csv; give a pilot sweep's "
                      "workdir (run `warmup-research report` on it first)")
  from warmup_research import plan  # the plan command's own module
  print(plan.plan(args.experiment, args.pilot), end="")


def cmd_report(args, rest) -> None:
  from warmup_research import results, workdir  # heavy: commands only, not --help
  _no_extra(rest)
  if args.claims:
    d = pathlib.Path(args.workdir)
    if not any(d.glob("*/summary.json")):
      raise ConfigError("WORKDIR", f"{d} holds no experiment results (*/summary.json)")
    if args.rederive:
      from warmup_research import plan  # only this path re-evaluates committed tables
      print(f"re-derived the claims of {', '.join(plan.rederive(d))} from their runs.csv")
    verdicts = results.write_claims(d)
    print(f"wrote the table of {len(verdicts)} claims into {d / 'README.md'} and "
          f"{d / 'claims.png'}")
    return
  if args.rederive:
    raise ConfigError("--rederive", "goes with --claims DIR (a results directory)")
  if args.against:   # summary.json against summary.json: a committed table has no runs
    print(results.against(args.workdir, args.against), end="")
    return
  if args.compare:
    a = _workdir(args.workdir, lock=False, analysis=False)
    b = _workdir(args.compare, lock=False, analysis=False)
    print(results.compare(a, b), end="")
    return
  wd = _workdir(args.workdir)
  if args.heatmap:
    return _writes(wd, _heatmap, wd, args.heatmap)
  _writes(wd, results.write, wd)
  print(f"rebuilt {wd / 'runs.csv'}, summary.md"
        + ("" if workdir.Layout.of(wd).legacy else ", summary.json") + ", plots/")


def _heatmap(wd: pathlib.Path, spec: str) -> None:
  """`report WORKDIR --heatmap x=FIELD,y=FIELD`: the heatmap of any two swept
  numeric fields, and its best-y-per-x table."""
  from warmup_research import plots, results  # heavy: commands only, not --help
  parts = dict(p.partition("=")[::2] for p in spec.split(","))
  if set(parts) != {"x", "y"} or not all(parts.values()):
    raise ConfigError("--heatmap", f"must be x=FIELD,y=FIELD (e.g. x=schedule.warmup_steps,"
                      f"y=optimizer.peak_lr), got {spec!r}")
  swept, rows = results.run_rows(results.load(wd))
  (h,) = results.validate_heatmaps([(parts["x"], parts["y"])],
                                   {f: [r[f] for r in rows] for f in swept}, "--heatmap")
  maps = results.heatmap(swept, rows, h["x"], h["y"])
  path = plots.plot_heatmap(wd / "plots", maps)
  print("\n".join(results.heatmap_markdown(maps)).lstrip("\n"))
  print(f"wrote {path}")


def cmd_analyze(args, rest) -> None:
  from warmup_research import analysis, workdir  # heavy: commands only, not --help
  _no_extra(rest)
  wd = _workdir(args.workdir, analysis=False,   # `analyze` refuses a torn one if it keeps rows
                finished=True)
  if args.every < 1:
    raise ConfigError("--every", f"must be an integer >= 1, got {args.every}")
  run_ids = args.runs or None
  known = [r["run_id"] for r in workdir.read_record(wd)["runs"]]
  for r in run_ids or []:
    if r not in known:
      raise ConfigError("--runs", f"no run {r!r} in {wd}; runs: {', '.join(known)}")
  if args.iters < 1:
    raise ConfigError("--iters", f"must be an integer >= 1, got {args.iters}")
  rows = _writes(wd, analysis.analyze, wd, run_ids, every=args.every, iters=args.iters)
  print(f"wrote {wd / 'analysis.csv'} ({len(rows)} checkpoints), "
        f"{wd / 'plots' / 'sharpness_vs_step.png'}, and re-made the tables")


def cmd_predict(args, rest) -> None:
  from warmup_research import laws, results, workdir  # heavy: commands only, not --help
  _no_extra(rest)
  wd = _workdir(args.workdir, analysis=False, finished=True)
  laws.law(args.law)   # an unknown law, before the workdir is read
  out = laws.report(wd, results.load(wd), args.fit_on, args.law, args.held_out, args.schedule)
  _writes(wd, workdir.write_atomic, wd / "laws.json", workdir.strict_json(out, indent=1))
  print(laws.markdown(out))
  print(f"\nwrote {wd / 'laws.json'} (parameters, residuals, predicted curves)")


def cmd_schedules(args, rest) -> None:
  from warmup_research import plots  # heavy: commands only, not --help
  _no_extra(rest)
  if args.total_steps < 1:
    raise ConfigError("--total-steps", f"must be an integer >= 1, got {args.total_steps}")
  if not 0 <= args.warmup_steps <= args.total_steps:
    raise ConfigError("--warmup-steps", f"must be an integer in [0, --total-steps], got "
                      f"{args.warmup_steps}")
  plots.plot_schedules(args.out, total_steps=args.total_steps, warmup_steps=args.warmup_steps)
  print(f"wrote {args.out}")


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
  """Keeps the epilog's line breaks and shows every option's default (flags:
  off; an option without one says in its help what happens)."""

  def _get_help_string(self, action):
    if isinstance(action, argparse._StoreTrueAction):
      return f"{action.help} (default: off)"
    if action.default is None or action.default == []:
      return action.help
    return super()._get_help_string(action)


OVERRIDES = """config overrides (train, sweep):
  --config.SECTION.FIELD=VALUE   set any field of the experiment's config, e.g.
                                 --config.optimizer.peak_lr=3e-3 --config.train.total_steps=500
                                 (sections: data model schedule optimizer train mesh; every
                                 field and its meaning: warmup_research/config.py)"""


NO_OVERRIDES = """config overrides (--config.SECTION.FIELD=VALUE) are for train and sweep;
this command reads the configs recorded in its workdir."""


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="warmup-research", description=__doc__, formatter_class=_Help)
  sub = p.add_subparsers(dest="command", required=True)
  add = lambda name, help: sub.add_parser(name, help=help, description=help,
                                          formatter_class=_Help, epilog=OVERRIDES)
  logger = dict(default=LOGGER_DEFAULT,
                help="live loggers besides the JSONL files: a comma list of tensorboard "
                     "(WORKDIR/tb), wandb (WANDB_MODE=offline keeps it on disk), or none")
  cache = dict(default=runtime.default_cache_dir(),
               help="persistent compilation cache directory ('' = off)")
  t = add("train", "train one run of an experiment config")
  t.add_argument("--config", required=True, help="the experiment file: experiments/NAME.py[:arg]")
  t.add_argument("--workdir", required=True, help="run directory (re-running resumes)")
  t.add_argument("--overwrite", action="store_true",
                 help="replace a workdir that holds a different config")
  t.add_argument("--no-progress", action="store_true", help="no progress bar")
  t.add_argument("--logger", **logger)
  t.add_argument("--jax-cache-dir", **cache)
  t.set_defaults(fn=cmd_train)
  w = add("sweep", "run an experiment's grid; a grid that gained points runs only the new ones")
  w.add_argument("experiment", nargs="?", help="the experiment file: experiments/NAME.py[:arg]")
  w.add_argument("--config", dest="config_file", metavar="EXPERIMENT",
                 help="the same as the positional EXPERIMENT")
  w.add_argument("--workdir", default=None, help="where results go (default: results/NAME)")
  w.add_argument("--overwrite", action="store_true",
                 help="replace a workdir that holds a different grid (deletes its runs)")
  w.add_argument("--dry-run", action="store_true",
                 help="every check of a real run, then print the variants, compile groups, "
                      "compilations, cost (run-steps) and the wall time the recorded rates "
                      "give; write nothing, compile nothing")
  w.add_argument("--no-progress", action="store_true", help="no progress bar")
  w.add_argument("--logger", **logger)
  w.add_argument("--jax-cache-dir", **cache)
  w.set_defaults(fn=cmd_sweep)
  r = add("report", "rebuild a sweep's (or a train run's) tables and plots from its files")
  r.epilog = NO_OVERRIDES
  r.add_argument("workdir", help="a sweep's or a train run's workdir (with --claims: the "
                 "results directory)")
  r.add_argument("--claims", action="store_true",
                 help="gather every experiment's claims under WORKDIR into WORKDIR/README.md")
  r.add_argument("--rederive", action="store_true",
                 help="with --claims: first re-evaluate each experiment's claims (today's "
                      "experiments/NAME.py) from its committed runs.csv into its summary.json")
  r.add_argument("--heatmap", metavar="x=FIELD,y=FIELD", default=None,
                 help="draw plots/heatmap_X_Y.png over two swept numeric fields (final loss, "
                 "stalled and diverged fractions, best y per x) and print its table")
  r.add_argument("--compare", metavar="OTHER", default=None,
                 help="print WORKDIR's and OTHER's tables side by side, rows matched by their "
                      "swept values (writes nothing)")
  r.add_argument("--against", metavar="COMMITTED", default=None,
                 help="print each run's final eval loss beside a committed table's (its "
                      "summary.json), e.g. results/quickstart (writes nothing)")
  r.set_defaults(fn=cmd_report)
  pl = add("plan", "per claim, a pilot grid's paired sd and the seeds needed for power 0.8")
  pl.epilog = NO_OVERRIDES
  pl.add_argument("experiment", help="the experiment file: experiments/NAME.py[:arg]")
  pl.add_argument("--pilot", required=True, help="a pilot sweep's workdir (with runs.csv)")
  pl.set_defaults(fn=cmd_plan)
  a = add("analyze", "sharpness etc. over a sweep's (or a train run's) saved checkpoints, "
          "then re-make its tables")
  a.epilog = NO_OVERRIDES
  a.add_argument("workdir", help="a sweep's or a train run's workdir")
  a.add_argument("--runs", action="append", default=[], metavar="RUN_ID",
                 help="a run id (ids hold commas); repeat for several (default: all)")
  a.add_argument("--every", type=int, default=1, help="checkpoint steps divisible by this")
  a.add_argument("--iters", type=int, default=20, help="Lanczos steps per eigenvalue")
  a.set_defaults(fn=cmd_analyze)
  pr = add("predict", "fit a loss-curve law on runs of a workdir; predict held-out runs and "
           "other schedules")
  pr.epilog = NO_OVERRIDES
  pr.add_argument("workdir", help="a sweep's or a train run's workdir")
  pr.add_argument("--fit-on", action="append", required=True, metavar="RUN_ID",
                  help="a run whose eval curve the law is fitted to; repeat for several")
  pr.add_argument("--law", default="multi_power",
                  help="multi_power (Luo et al. 2025) or momentum (Tissue et al. 2024)")
  pr.add_argument("--held-out", action="append", default=[], metavar="RUN_ID",
                  help="a run to predict and compare with its curve; repeat for several "
                  "(default: none)")
  pr.add_argument("--schedule", action="append", default=[], metavar="FIELD=VALUE,...",
                  help="a schedule to predict: the first --fit-on run's, with these "
                  "config.schedule fields (e.g. decay_shape=wsd,cooldown_ratio=0.2); "
                  "a|b|c: each value, and every combination of such fields (a family, "
                  "its lowest final prediction marked); repeat for several (default: none)")
  pr.set_defaults(fn=cmd_predict)
  sc = add("schedules", "plot every schedule shape")
  sc.epilog = NO_OVERRIDES
  sc.add_argument("--out", default="results/schedules.png", help="the PNG to write")
  sc.add_argument("--total-steps", type=int, default=1000, help="updates on the x axis")
  sc.add_argument("--warmup-steps", type=int, default=200, help="warmup length shown")
  sc.set_defaults(fn=cmd_schedules)
  return p


def _resume_hint(argv) -> str:
  return f"re-run the same command to resume: warmup-research {shlex.join(argv)}"


def _no_space(e: BaseException | None, depth: int = 0) -> bool:
  if e is None or depth > 20:
    return False
  if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
    return True
  return _no_space(e.__cause__ or e.__context__, depth + 1)


class _NoSpaceLogs(logging.Filter):
  """Drops the log records of a full disk (orbax logs its failed save from
  each of its threads, with tracebacks, through absl; asyncio then logs each
  failed write's task as it is collected): the CLI says it in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    e = record.exc_info[1] if record.exc_info else None
    return not (_no_space(e) or "No space left on device" in record.getMessage())


_NO_SPACE_LOGS = _NoSpaceLogs()


def _abandoned(e) -> bool:
  """An error of an operation the CLI has given up on: a full disk's, or
  "Event loop is closed" (see `_quiet_abandoned`)."""
  return _no_space(e) or (isinstance(e, RuntimeError) and str(e) == "Event loop is closed")


def _quiet_abandoned() -> None:
  """After orbax gave up on a save or restore (a full disk, a damaged step)
  and closed its event loop, tensorstore still completes the operation's
  other reads and writes, and prints "RuntimeError: Event loop is closed"
  for each one it cannot hand back (sys.excepthook, from its own threads);
  files closed late meet the full disk again (sys.unraisablehook). Those
  results were abandoned, and the failure reaches the main thread, which
  says it in one line: they are not printed. Any other exception is, and
  one uncaught in the main thread always."""
  if getattr(sys.excepthook, "quiet_abandoned", False):
    return
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def on_exception(kind, value, tb):
    if not (_abandoned(value) and threading.current_thread() is not threading.main_thread()):
      excepthook(kind, value, tb)

  def on_unraisable(u):
    if not _abandoned(u.exc_value):
      unraisablehook(u)

  on_exception.quiet_abandoned = True
  sys.excepthook, sys.unraisablehook = on_exception, on_unraisable


def _stop_on(argv):
  """A SIGINT / SIGTERM handler that ends the process at once with one line.

  It exits from the handler itself, as a SIGKILL would: the metrics rows up
  to the last checkpoint are on disk and a half-written checkpoint is
  ignored on resume. A KeyboardInterrupt could instead be caught on its way
  up (by a library's cleanup) and let the run go on, and a normal exit could
  wait on orbax's save thread or a compile thread."""
  def stop(signum, frame):
    name = signal.Signals(signum).name
    sys.stdout.flush()
    sys.stderr.write(f"\ninterrupted ({name}); {_resume_hint(argv)}\n")
    sys.stderr.flush()
    os._exit(128 + signum)
  return stop


def main(argv=None) -> None:
  """Runs a command; call `runtime.setup_process()` first (`__main__` does).

  Bad input: one `error:` line, exit 2. A full disk: one line, exit 1 (the
  workdir resumes once space is freed). SIGINT / SIGTERM: one line with the
  command that resumes, exit 130 / 143."""
  argv = sys.argv[1:] if argv is None else list(argv)
  args, rest = parser().parse_known_args(argv)
  previous = {sig: signal.signal(sig, _stop_on(argv)) for sig in (signal.SIGINT, signal.SIGTERM)}
  # Kept after main returns: orbax's save threads may log the failure later still.
  for name in ("absl", "orbax", "asyncio"):
    logging.getLogger(name).addFilter(_NO_SPACE_LOGS)
  _quiet_abandoned()
  try:
    args.fn(args, rest)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USAGE_EXIT)
  except KeyboardInterrupt:   # raised by code (an experiment file, say): a signal exits above
    sys.stdout.flush()
    print(f"interrupted (KeyboardInterrupt); {_resume_hint(argv)}", file=sys.stderr)
    sys.exit(128 + signal.SIGINT)
  except Exception as e:   # a full disk, however deep in orbax or tensorstore it was met
    if not _no_space(e):
      raise
    print(f"error: no space left on the device; free some space, then {_resume_hint(argv)}",
          file=sys.stderr)
    sys.exit(1)
  finally:   # main() called in-process (tests, notebooks) leaves the handlers as it found them
    for sig, handler in previous.items():
      signal.signal(sig, handler)
