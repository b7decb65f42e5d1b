"""What dead variants cost: a 24-variant peak LR x warmup grid in which a
third of the variants diverge early, run in one process six ways, in
`--rounds` rounds (each round runs every way once, so slow spells of a
shared machine fall on all of them).

    python -m benchmarks.dead_variants [--steps 300] [--d-model 64] [--rounds 3]

(from the repository root). Writes results/benchmarks/dead_variants.md and
dead_variants.json (with --d-model N other than 64: dead_variants_dN.*).
Per way: wall seconds of the group (init, compiles, every call, evals and
checkpoints), steady-state seconds per update (the loop's `step_seconds`:
after the first call, evals and checkpoints included), train-step
compilations, run-steps computed (a frozen variant's steps count only where
the program computes them), and whether the surviving variants' metrics
equal today's. A ratio is the median over rounds of (this way / today's
way in the same round); the tables give each round's too. An untimed
30-update run of each variant loop comes first; every other round runs the
ways in reverse order. After the rounds, the compiled train programs of
four ways run alone, their calls interleaved (`programs_alone`).

- map, today: every variant's step computed, a frozen one's masked
  (`skip_frozen=False`), the CPU default before skipping existed.
- map, skip: a frozen variant's step skipped by `lax.cond` (the default).
- vmap, today: a batched program of all 24 (`mesh.variant_loop=vmap`).
- vmap, compact: the same, re-packed to the live variants after the first
  eval where a quarter or more are frozen (`train.compact_frozen`).
- map, skip + halving / vmap, compact + halving: successive halving at
  1/9 and 1/3 of training (`train.prune_steps`), keeping a third of each
  warmup's running LRs; reported as the best variant's final loss against
  the full grid's best.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks import bench
from warmup_research import runtime
from warmup_research.workdir import code_version

LRS = [1e-3, 3e-3, 1e-2, 3e-2, 1.0, 3.0]   # the last two diverge (no clipping)
WARMUP_SHARES = [0, 1 / 30, 1 / 10, 1 / 3]


def grid(steps: int, lrs=LRS, shares=WARMUP_SHARES, **overrides) -> list:
  """The 24 configs (`lrs` x `shares`; tests pass fewer): Adam (no
  clipping), d_model 64 (unless overridden), 2 layers, seq 64, batch 16, on
  the offline byte corpus; divergence is a loss above 10 nats. Evals and
  checkpoints at the default config's shares of training (1/10, 1/5)."""
  from warmup_research import config as config_lib  # imports jax: after setup_process
  cfgs = []
  for share in shares:
    for lr in lrs:
      c = config_lib.default_config()
      c.model.d_model, c.model.num_layers, c.model.num_heads = 64, 2, 4
      c.data.seq_len, c.data.batch_size = 64, 16
      c.optimizer.name, c.optimizer.peak_lr, c.optimizer.clip_norm = "adam", lr, 0.0
      c.optimizer.weight_decay = 0.0
      c.schedule.warmup_steps = round(share * steps)
      c.train.total_steps, c.train.eval_every, c.train.eval_batches = steps, steps // 10, 4
      c.train.log_every, c.train.checkpoint_every = steps // 30, steps // 5
      c.train.divergence_bound = 10.0
      for k, v in overrides.items():
        config_lib.set_field(c, k, v)
      config_lib.validate(c)
      cfgs.append(c)
  return cfgs


def run_way(cfgs, skip: bool, out: pathlib.Path) -> dict:
  """One way: the group run by `loop.run_group` in this process, its files
  in the new directory `out`."""
  from warmup_research import data, loop  # jax: after setup_process's flags
  from warmup_research import mesh as mesh_lib  # jax: after setup_process's flags
  out.mkdir()
  mesh = mesh_lib.make(*mesh_lib.group_shape(cfgs))
  batches = data.Batches(cfgs[0])
  paths = [out / f"{i}.jsonl" for i in range(len(cfgs))]
  t0 = time.perf_counter()
  result = loop.run_group(cfgs, metrics_paths=paths, checkpoint_dir=out / "ck", mesh=mesh,
                          batches=batches, progress=False, skip_frozen=skip)
  wall = time.perf_counter() - t0
  rows = [[json.loads(line) for line in p.read_text().splitlines()] for p in paths]
  computed = sum(_computed_steps(r, cfgs[0].train.total_steps) for r in rows)
  return dict(wall_s=wall, step_s=result.step_seconds, compiles=result.train_step_compiles,
              compile_s=result.compile_seconds, run_steps_computed=computed,
              summaries=result.summaries, rows=rows)


PROGRAM_CALLS = 15
PROGRAM_WAYS = ("map, today", "map, skip", "vmap, today", "vmap, compact")


def program_call(cfgs, skip: bool, frozen: list[int], keep_only: bool = False):
  """`bench.call_timer`'s call of the compiled train program alone (no
  evals, checkpoints or host work between calls), from the initial state
  with the variants `frozen` frozen (diverged at update 0); with
  `keep_only`, a program of the others only (what compaction runs)."""
  import jax  # after setup_process's flags

  from warmup_research import data, loop
  if keep_only:
    cfgs, frozen = [c for i, c in enumerate(cfgs) if i not in frozen], []
  prog, _ = bench._program(cfgs, skip_frozen=skip)
  state = prog.init(prog.keys, prog.hp)
  dead = np.full(prog.k_pad, -1, np.int32)
  dead[frozen] = 0
  state = state.replace(diverged_step=jax.device_put(dead, state.diverged_step.sharding))
  return bench.call_timer(prog, state, data.Batches(cfgs[0]).train(0),
                          loop.steps_per_call(cfgs[0].train))[1]


def programs_alone(ways: dict, frozen: list[int], calls: int = PROGRAM_CALLS) -> dict:
  """Per way of PROGRAM_WAYS: seconds per update of `calls` calls of its
  train program alone (`program_call`). The ways' calls are interleaved
  (one call of each in turn), so a slow spell of the machine falls on all
  of them and the same-turn ratios cancel it."""
  call = {name: program_call(*ways[name], frozen, keep_only=name == "vmap, compact")
          for name in PROGRAM_WAYS}
  out = {name: [] for name in PROGRAM_WAYS}
  for _ in range(calls):
    for name in PROGRAM_WAYS:
      out[name].append(call[name]())
  return out


def _computed_steps(rows, total: int) -> int:
  """Updates the program computed for a variant (to the logging interval):
  until its first logged row without a gradient norm (skipped or compacted
  out), else all of them."""
  return next((r["step"] for r in rows if "loss" in r and math.isnan(r["grad_norm"])), total)


def _survivors_equal(a: dict, b: dict) -> tuple[bool, float]:
  """(every survivor's rows bit-identical, max relative difference of any number)."""
  worst, equal = 0.0, True
  for sa, ra, rb in zip(a["summaries"], a["rows"], b["rows"]):
    if sa["status"] in ("diverged", "pruned"):   # frozen by the loop
      continue
    for x, y in zip(ra, rb, strict=True):
      for key in x:
        u, v = float(x[key]), float(y[key])
        if u != v and not (math.isnan(u) and math.isnan(v)):
          equal = False
          worst = max(worst, abs(u - v) / max(abs(v), 1e-30))
  return equal, worst


def _best(summaries) -> float:
  return min(s["final_eval_loss"] for s in summaries if s["outcome"] in ("trained", "stalled"))


WARMUP_STEPS = 30   # the untimed first run of each variant loop


def measure(steps: int, rounds: int = 1, lrs=LRS, shares=WARMUP_SHARES, **overrides) -> dict:
  """Each way's runs, `rounds` times in turn: per way, lists of wall and
  step seconds, and the first round's rows and summaries (`deterministic`:
  every round wrote the same rows); `overrides` (config fields) shrink it
  for tests."""
  way = lambda **kw: grid(steps, lrs, shares, **overrides, **kw)   # noqa: E731
  ways = {
      "map, today": (way(**{"mesh.variant_loop": "map"}), False),
      "map, skip": (way(**{"mesh.variant_loop": "map"}), True),
      "vmap, today": (way(**{"mesh.variant_loop": "vmap"}), True),
      "vmap, compact": (way(**{"mesh.variant_loop": "vmap",
                                       "train.compact_frozen": 0.25}), True),
      "map, skip + halving": (way(**{"mesh.variant_loop": "map",
                                             "train.prune_steps": _rungs(steps)}), True),
      "vmap, compact + halving": (way(**{
          "mesh.variant_loop": "vmap", "train.compact_frozen": 0.25,
          "train.prune_steps": _rungs(steps)}), True),
  }
  out = {}
  with tempfile.TemporaryDirectory(prefix="wr-dead-") as tmp:
    # Untimed: what the process pays once (imports, the data, JAX's own
    # caches) would otherwise fall on whichever way runs first.
    for how in ("map", "vmap"):
      run_way(grid(WARMUP_STEPS, lrs, shares, **overrides, **{"mesh.variant_loop": how}), True,
              pathlib.Path(tmp) / how)
    for r in range(rounds):
      # every other round in reverse, so a drift of the machine's speed
      # within a round falls on both ways of a pair alike
      for name, (cfgs, skip) in list(ways.items())[::-1 if r % 2 else 1]:
        d = pathlib.Path(tmp) / f"{r}_{name}".replace(" ", "_").replace(",", "").replace("+", "")
        gc.collect()   # the last way's garbage, collected before the timer starts
        run = run_way(cfgs, skip, d)
        print(f"[dead_variants] round {r + 1}/{rounds}, {name}: {run['wall_s']:.1f} s",
              file=sys.stderr)
        if r == 0:
          out[name] = dict(run, wall_s=[], step_s=[], compile_s=[], deterministic=True)
        runs = out[name]
        for key in ("wall_s", "step_s", "compile_s"):
          runs[key].append(run[key])
        # every round computes the same numbers (json: NaN equals NaN)
        runs["deterministic"] &= json.dumps(run["rows"]) == json.dumps(runs["rows"])
    # the train program alone, with the variants that diverged frozen from the start
    dead = [i for i, s in enumerate(out["map, today"]["summaries"]) if s["status"] == "diverged"]
    for name, seconds in programs_alone(ways, dead).items():
      out[name]["program_s"] = seconds
  return out


def _rungs(steps: int) -> list[int]:
  every = steps // 10
  return sorted({max(every, round(steps * f / every) * every) for f in (1 / 9, 1 / 3)})


BASE = {"map": "map, today", "vmap": "vmap, today"}   # each way's "today"


def _ratios(ways: dict, key: str) -> dict:
  """Per way: its `key` seconds over today's, round by round."""
  return {name: [x / y for x, y in zip(w[key], ways[BASE[name.split(",")[0]]][key])]
          for name, w in ways.items()}


def report(ways: dict, steps: int, command: str, d_model: int = 64, lrs=LRS,
           shares=WARMUP_SHARES) -> dict:
  # the variants the loop froze (a finite loss that rose above the initial one is
  # "diverged" too, but it kept training)
  dead = [s for s in ways["map, today"]["summaries"] if s["status"] == "diverged"]
  n = len(ways["map, today"]["summaries"])
  skip_eq, skip_diff = _survivors_equal(ways["map, skip"], ways["map, today"])
  comp_eq, comp_diff = _survivors_equal(ways["vmap, compact"], ways["vmap, today"])
  full_best = _best(ways["map, today"]["summaries"])
  wall, step = _ratios(ways, "wall_s"), _ratios(ways, "step_s")
  program = _ratios({k: w for k, w in ways.items() if "program_s" in w}, "program_s")
  median = {name: statistics.median(r) for name, r in wall.items()}
  result = dict(
      wall_ratio_skip=median["map, skip"], wall_ratio_compact=median["vmap, compact"],
      step_ratio_skip=statistics.median(step["map, skip"]),
      step_ratio_compact=statistics.median(step["vmap, compact"]),
      program_ratio_skip=statistics.median(program["map, skip"]),
      program_ratio_compact=statistics.median(program["vmap, compact"]),
      live_share=1 - len(dead) / n, program_ratio_calls=program,
      program_s={k: w["program_s"] for k, w in ways.items() if "program_s" in w},
      survivors_identical=bool(skip_eq and comp_eq),
      survivors_max_rel_diff=dict(skip=skip_diff, compact=comp_diff),
      deterministic=all(w["deterministic"] for w in ways.values()),
      dead_fraction=len(dead) / n,
      dead_by_update=sorted(s["diverged_step"] for s in dead),
      halving_best_minus_full_best=dict(
          map=_best(ways["map, skip + halving"]["summaries"]) - full_best,
          vmap=_best(ways["vmap, compact + halving"]["summaries"]) - full_best),
      rounds=len(ways["map, today"]["wall_s"]),
      wall_ratio=median, wall_ratio_rounds=wall, step_ratio_rounds=step,
      wall_s={k: w["wall_s"] for k, w in ways.items()},
      step_s={k: w["step_s"] for k, w in ways.items()},
      compiles={k: w["compiles"] for k, w in ways.items()},
      compile_s={k: w["compile_s"] for k, w in ways.items()},
      run_steps_computed={k: w["run_steps_computed"] for k, w in ways.items()},
      steps=steps, d_model=d_model, n_variants=n, lrs=list(lrs), warmup_shares=list(shares),
      command=command, machine=bench.machine(),
      code=code_version())
  return result


def write(result: dict, out_dir: pathlib.Path, name: str = "dead_variants") -> None:
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
  m = result["machine"]   # as measured, so the table can be re-made from the json
  lines = ["# Dead variants: skipping, compaction and successive halving", "",
           f"- command: `{result['command']}` at code {result['code']}",
           f"- machine: {m['cpu']}, {m['cores']} cores; JAX devices: {m['devices']}",
           f"- software: Python {m['python']}, {m['versions']}",
           f"- XLA_FLAGS: `{m['xla_flags']}`", f"- date: {m['date']}", ""]
  rounds = result["rounds"]
  lines += [f"A grid of {result['n_variants']} variants (peak LR {result['lrs']} x warmup "
            f"{[round(s * result['steps']) for s in result['warmup_shares']]} of {result['steps']} "
            f"updates; Adam, no clipping, d_model {result['d_model']}, 2 layers); "
            f"{result['dead_fraction']:.0%} diverge (first logged as diverged at updates "
            f"{result['dead_by_update']}). After an untimed {WARMUP_STEPS}-update run of "
            f"each variant loop, {rounds} round(s), each running every way once (every "
            "other round in reverse order); "
            "seconds are medians over rounds, a ratio is the median over rounds of this "
            "way's time over today's in the same round (each round's ratio in brackets).",
            "", "| way | wall s | wall ratio to today | s per update | ratio to today | "
            "train-step compiles (s) | run-steps computed |", "|---|---|---|---|---|---|---|"]
  fmt = lambda rs: ", ".join(f"{r:.2f}" for r in rs)   # noqa: E731
  for way, walls in result["wall_s"].items():
    wall_r, step_r = result["wall_ratio_rounds"][way], result["step_ratio_rounds"][way]
    lines.append(
        f"| {way} | {statistics.median(walls):.1f} | **{statistics.median(wall_r):.2f}** "
        f"[{fmt(wall_r)}] | {statistics.median(result['step_s'][way]):.3f} | "
        f"{statistics.median(step_r):.2f} [{fmt(step_r)}] | {result['compiles'][way]} "
        f"({statistics.median(result['compile_s'][way]):.1f}) | "
        f"{result['run_steps_computed'][way]:,} |")
  lines += ["", f"The train program alone (`programs_alone`: {PROGRAM_CALLS} calls of "
            "each way's compiled steps after 3 warm-up ones, the ways' calls interleaved; "
            f"from the initial state with the {result['dead_fraction']:.0%} that diverge "
            "frozen from the start; no evals, checkpoints or host work; for vmap, compact: "
            "a program of the others only): what a frozen variant still costs where it "
            "runs. A ratio is the median of the same-turn ratios (quartiles in brackets). "
            f"The ideal ratio is the live share, {result['live_share']:.2f}.", "",
            "| way | s per update | ratio to today |", "|---|---|---|"]
  for way, secs in result["program_s"].items():
    r = result["program_ratio_calls"][way]
    q1, _, q3 = statistics.quantiles(r, n=4) if len(r) > 1 else r * 3
    lines.append(f"| {way} | {statistics.median(secs):.3f} | "
                 f"**{statistics.median(r):.2f}** [{q1:.2f}, {q3:.2f}] |")
  d = result["survivors_max_rel_diff"]
  h = result["halving_best_minus_full_best"]
  lines += ["", f"- survivors' rows bit-identical to today's: "
            f"{result['survivors_identical']}; largest relative difference: skip "
            f"{d['skip']:.2g}, compact {d['compact']:.2g}",
            f"- every round wrote the same rows: {result['deterministic']}",
            f"- successive halving: best final eval loss minus the full grid's best: "
            f"map {h['map']:+.4f}, vmap {h['vmap']:+.4f} nats",
            "- run-steps computed: per variant, the updates until its first logged row "
            "without a gradient norm (skipped or compacted out), summed",
            "- train-step compiles: the first in a thread while the state is initialised "
            "and evaluated; a compacted size's at the eval that re-packs"]
  bench._write(out_dir / f"{name}.md", lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m benchmarks.dead_variants", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--steps", type=int, default=300, help="updates per variant")
  p.add_argument("--d-model", type=int, default=64, help="model width (4 heads)")
  p.add_argument("--rounds", type=int, default=3, help="times each way runs, in turn")
  p.add_argument("--out-dir", default=str(bench.REPO / "results" / "benchmarks"))
  args = p.parse_args(argv)
  command = "python -m benchmarks.dead_variants" + (
      f" --steps {args.steps}" if args.steps != 300 else "") + (
      f" --d-model {args.d_model}" if args.d_model != 64 else "") + (
      f" --rounds {args.rounds}" if args.rounds != 3 else "")
  runtime.setup_process()   # before jax is imported: one CPU device per core
  result = report(measure(args.steps, args.rounds, **{"model.d_model": args.d_model}),
                  args.steps, command, args.d_model)
  write(result, pathlib.Path(args.out_dir),
        "dead_variants" + (f"_d{args.d_model}" if args.d_model != 64 else ""))
  print(json.dumps({k: result[k] for k in ("wall_ratio_skip", "wall_ratio_compact",
                                           "survivors_identical", "dead_fraction")}))


if __name__ == "__main__":
  main()
