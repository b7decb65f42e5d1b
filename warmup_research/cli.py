"""python -m warmup_research {train,schedules} ...

    train --config experiments/quickstart.py[:arg] --workdir DIR \
          [--config.optimizer.peak_lr=3e-3 ...] [--overwrite] [--no-progress]
    schedules [--out results/schedules.png]

Every bad input stops with one line `error: <field>: <what is allowed>` and
exit code 2, before any compute and without touching earlier files.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from warmup_research.errors import ConfigError

USAGE_EXIT = 2


def default_cache_dir() -> str:
  return os.environ.get("WARMUP_RESEARCH_JAX_CACHE",
                        str(pathlib.Path.home() / ".cache" / "warmup_research" / "jax_cache"))


def setup_jax(cache_dir: str) -> None:
  """Persistent compilation cache ('' turns it off)."""
  import jax
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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
  from warmup_research import config as config_lib
  cfg = config_lib.apply_overrides(config_lib.load(spec), overrides)
  config_lib.validate(cfg)
  return cfg


def cmd_train(args, rest) -> None:
  from warmup_research import config as config_lib, data, loop, workdir
  cfg = load_config(args.config, split_overrides(rest))
  batches = data.Batches(cfg)  # bad dataset / corpus fail here, before the workdir
  wd = workdir.prepare(args.workdir, config_lib.to_json(cfg), overwrite=args.overwrite)
  setup_jax(args.jax_cache_dir)
  result = loop.run_group([cfg], metrics_paths=[wd / "metrics.jsonl"],
                          checkpoint_dir=wd / "checkpoints", batches=batches,
                          progress=not args.no_progress)
  s = result.summaries[0]
  tokens_per_step = cfg.data.batch_size * cfg.data.seq_len
  summary = dict(**s, compile_seconds=result.compile_seconds, step_seconds=result.step_seconds,
                 tokens_per_second=tokens_per_step / result.step_seconds
                 if result.step_seconds == result.step_seconds else None)
  workdir.write_atomic(wd / "summary.json", json.dumps(summary, indent=1))
  def fmt(x):
    return "n/a" if x is None else f"{x:.4f}"
  print(f"done: {s['status']} after {s['steps']} steps"
        + (f" (diverged at step {s['diverged_step']})" if s["diverged_step"] is not None else "")
        + f" | train loss {fmt(s['final_train_loss'])} | eval loss {fmt(s['initial_eval_loss'])}"
        f" -> {fmt(s['final_eval_loss'])} (best {fmt(s['best_eval_loss'])})"
        f" | compile {result.compile_seconds:.1f}s | {result.steps_run} steps run here"
        + (f", {1 / result.step_seconds:.1f} steps/s" if result.steps_run > 2 else "")
        + f" | {wd}")


def cmd_schedules(args, rest) -> None:
  if rest:
    raise ConfigError(rest[0], "unknown argument")
  from warmup_research import results
  results.plot_schedules(args.out, total_steps=args.total_steps, warmup_steps=args.warmup_steps)
  print(f"wrote {args.out}")


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m warmup_research", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True)
  t = sub.add_parser("train", help="train one run of an experiment config")
  t.add_argument("--config", required=True, help="experiments/NAME.py[:arg]")
  t.add_argument("--workdir", required=True, help="run directory (re-running resumes)")
  t.add_argument("--overwrite", action="store_true",
                 help="replace a workdir that holds a different config")
  t.add_argument("--no-progress", action="store_true", help="no progress bar")
  t.add_argument("--jax-cache-dir", default=default_cache_dir(),
                 help="persistent compilation cache ('' = off)")
  t.set_defaults(fn=cmd_train)
  s = sub.add_parser("schedules", help="plot every schedule shape")
  s.add_argument("--out", default="results/schedules.png")
  s.add_argument("--total-steps", type=int, default=1000)
  s.add_argument("--warmup-steps", type=int, default=200)
  s.set_defaults(fn=cmd_schedules)
  return p


def main(argv=None) -> None:
  args, rest = parser().parse_known_args(argv)
  try:
    args.fn(args, rest)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USAGE_EXIT)
