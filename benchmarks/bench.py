"""Benchmarks: tables under results/benchmarks/, never assertions in tests.

    python -m benchmarks.bench [all|throughput|sweep|compile|gpu] [--quick]

(from the repository root; the measurement history is in benchmarks/NOTES.md)

- `throughput`: train-step tokens/s (median step after warm-up steps, each
  step timed to `block_until_ready`), model FLOP/s (`model.flops_per_token`:
  6 x matmul params + attention, 2 FLOPs per multiply-add) and its ratio to
  a dense matmul's FLOP/s measured in the same process, for several sizes.
- `sweep`: K variants in ONE vmapped, sharded program vs K single runs.
- `compile`: compilations and compile seconds of a 24-variant grid; time to
  the first train step in a cold process vs a second process that finds the
  persistent compilation cache warm, and where the warm process spends it
  (`first_step_parts`: what a cache could not skip).
- `gpu`: MFU of a 125M-class config (d 768, 12 layers, seq 1024, bf16)
  against the measured bf16 matmul rate, 1..64 vmapped tiny variants, and
  time to the first step with a cold vs a warm persistent cache (the
  quickstart model and the 125M-class one).
- `--quick`: the quickstart model only (under 2 minutes on 2 CPU cores);
  ends with one JSON line: tokens_per_s, model_gflops_per_s,
  matmul_gflops_per_s, ...

Step timing is of the compiled train program alone (compiled ahead of
time), as the loop runs it: n = `loop.steps_per_call` updates per call, each
call timed and divided by n; the batch is the same each step, so data
loading is not in these numbers.
The persistent compilation cache is off, except where `compile` turns it on
on purpose.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from warmup_research.runtime import cpu_model

# name -> (overrides of experiments/quickstart.py). The last is the largest
# CPU config (the issue's >= 50%-of-matmul target is about it).
REPO = pathlib.Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "experiments" / "quickstart.py")
CPU_SIZES = {
    "quickstart d128 L2 seq128 b32": {},
    "ablation d64 L6 seq64 b16": {"model.d_model": 64, "model.num_layers": 6,
                                  "data.seq_len": 64, "data.batch_size": 16},
    "d256 L4 seq256 b16": {"model.d_model": 256, "model.num_layers": 4, "model.num_heads": 4,
                           "data.seq_len": 256, "data.batch_size": 16},
    "d512 L4 seq256 b16": {"model.d_model": 512, "model.num_layers": 4, "model.num_heads": 8,
                           "data.seq_len": 256, "data.batch_size": 16},
}
GPU_125M = {"model.d_model": 768, "model.num_layers": 12, "model.num_heads": 12,
            "data.seq_len": 1024, "data.batch_size": 32, "model.dtype": "bfloat16"}


def machine() -> dict:
  import flax
  import jax
  import optax
  dev = jax.devices()[0]
  return dict(cpu=cpu_model(), cores=len(os.sched_getaffinity(0)),
              devices=f"{jax.device_count()} x {dev.device_kind} ({dev.platform})",
              versions=f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}",
              python=platform.python_version(), xla_flags=os.environ.get("XLA_FLAGS", ""),
              date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def header(title: str, command: str) -> list[str]:
  m = machine()
  from warmup_research.workdir import code_version
  return [f"# {title}", "", f"- command: `{command}` at code {code_version()}",
          f"- machine: {m['cpu']}, {m['cores']} cores; JAX devices: {m['devices']}",
          f"- software: Python {m['python']}, {m['versions']}",
          f"- XLA_FLAGS: `{m['xla_flags']}`", f"- date: {m['date']}", ""]


def _write(out: pathlib.Path, lines: list[str]) -> None:
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text("\n".join(lines) + "\n")


def command(prog: str, doc: str, flag: str, default: int, help: str):
  """The arguments of a benchmark command of one count option (`--flag`,
  an integer >= 1: else one `error:` line, exit 2) and `--out-dir`, with
  the process set up for JAX (XLA's flags; the persistent compilation
  cache off, so compiles are cold)."""
  import argparse  # only the commands need it

  from warmup_research import runtime  # sets XLA's flags before jax is imported
  p = argparse.ArgumentParser(prog=prog, description=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument(f"--{flag}", type=int, default=default, help=f"{help} (>= 1)")
  p.add_argument("--out-dir", default=str(REPO / "results" / "benchmarks"))
  args = p.parse_args(sys.argv[1:])
  if getattr(args, flag) < 1:
    print(f"error: --{flag}: must be an integer >= 1, got {getattr(args, flag)}",
          file=sys.stderr)
    sys.exit(2)
  runtime.setup_process()
  runtime.enable_compilation_cache("")
  return args


def matmul_gflops(n: int = 2048, dtype: str = "float32", reps: int = 10) -> float:
  """Dense n x n x n matmul on one device: 2 n^3 FLOPs / median seconds."""
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n ** 3 / statistics.median(times) / 1e9


def time_steps(prog, state, batch_BxL1, steps: int, n: int, warmup: int = 3):
  """(compile seconds, median seconds per update) of a Program's train
  program as the loop runs it: `prog.steps` over n updates per call (the
  same batch each update), `steps` calls timed after `warmup`, each to
  `block_until_ready`, divided by n."""
  compile_s, call = call_timer(prog, state, batch_BxL1, n, warmup)
  return compile_s, statistics.median(call() for _ in range(steps))


def call_timer(prog, state, batch_BxL1, n: int, warmup: int = 3):
  """(compile seconds, call): `call()` runs `prog.steps` once more over n
  updates (the same batch each), from where the last call left the state,
  and returns its seconds per update (to `block_until_ready`); `warmup`
  calls run first, untimed. `call.steps` is the compiled program (for its
  memory analysis, or calls of one's own), so no caller compiles it again."""
  import jax
  import numpy as np
  batches = prog.put_batches(np.stack([batch_BxL1] * n))
  steps, compile_s = prog.compile_steps(batches)
  for _ in range(warmup):
    state, m = steps(state, batches, prog.hp)
  jax.block_until_ready(state)

  def call() -> float:
    nonlocal state
    t = time.perf_counter()
    state, m = steps(state, batches, prog.hp)
    jax.block_until_ready((state, m))
    return (time.perf_counter() - t) / n
  call.steps = steps
  return compile_s, call


def _program(cfgs, skip_frozen: bool = True):
  from warmup_research import mesh as mesh_lib
  from warmup_research.program import GroupProgram
  shape = mesh_lib.group_shape(cfgs)
  return GroupProgram(cfgs, mesh_lib.make(*shape), skip_frozen=skip_frozen), shape


def _base(overrides=None):
  from warmup_research import config as config_lib
  return config_lib.apply_overrides(config_lib.load(QUICKSTART),
                                    overrides or {})


def train_throughput(cfg, steps: int = 20) -> dict:
  """One run (K = 1) of `cfg` on the default mesh: tokens/s and model GFLOP/s."""
  from warmup_research import data, loop, model
  prog, shape = _program([cfg])
  state = prog.init(prog.keys, prog.hp)
  n = loop.steps_per_call(cfg.train)
  compile_s, step_s = time_steps(prog, state, data.Batches(cfg).train(0), steps, n)
  mcfg = model.ModelConfig.from_config(cfg)
  tokens = cfg.data.batch_size * cfg.data.seq_len
  params = model.num_params(state.params) // prog.k
  return dict(mesh=f"{shape[0]}x{shape[1]}", params=params, tokens_per_step=tokens,
              steps_per_call=n, compile_s=compile_s, step_s=step_s, tokens_per_s=tokens / step_s,
              model_gflops_per_s=model.flops_per_token(mcfg, cfg.data.seq_len) * tokens
              / step_s / 1e9)


def throughput(sizes: dict, steps: int = 20, matmul_dtype: str = "float32",
               matmul_n: int = 2048) -> list[dict]:
  """One row per size, each with the dense matmul rate measured in this
  process right before and right after it (the higher of the two:
  `matmul_gflops`). A shared VM's speed drifts by 10-40% between minutes,
  so one reference taken at the start would skew the later rows' ratios."""
  rows = []
  for name, overrides in sizes.items():
    before = matmul_gflops(matmul_n, dtype=matmul_dtype)
    r = dict(name=name, **train_throughput(_base(overrides), steps))
    r["matmul_gflops"] = max(before, matmul_gflops(matmul_n, dtype=matmul_dtype))
    r["matmul_ratio"] = r["model_gflops_per_s"] / r["matmul_gflops"]
    rows.append(r)
    print(f"[bench] {name}: {r['tokens_per_s']:,.0f} tok/s, {r['model_gflops_per_s']:.1f} "
          f"GFLOP/s = {r['matmul_ratio']:.0%} of matmul ({r['matmul_gflops']:.0f})", flush=True)
  return rows


def write_throughput_table(rows, out, command, steps, title="Train-step throughput",
                           matmul="float32 2048x2048 matmul") -> None:
  lines = header(title, command)
  lines += [f"One run (K = 1), AdamW, the same batch each step, run as the training loop runs "
            f"it: n updates per call of the compiled program (`loop.steps_per_call`); ms/step "
            f"is the median of {steps} calls after 3 warm-up calls, divided by n. Model "
            f"FLOPs: 6 x matmul parameters + attention (full L x L, as computed) per token. "
            f"Reference: a {matmul} on one device, measured in the same process right before "
            f"and right after each row (the higher of the two).", "",
            "| config | params | mesh (variant x data) | n | compile s | ms/step | tokens/s "
            "| model GFLOP/s | matmul GFLOP/s | model / matmul |",
            "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['name']} | {r['params']:,} | {r['mesh']} | {r['steps_per_call']} | "
                 f"{r['compile_s']:.2f} | {r['step_s'] * 1e3:.1f} | {r['tokens_per_s']:,.0f} | "
                 f"{r['model_gflops_per_s']:.1f} | {r['matmul_gflops']:.1f} | "
                 f"{r['matmul_ratio']:.0%} |")
  _write(out, lines)


def sweep_scaling(ks=(1, 2, 4, 8, 16), steps: int = 10, run_steps: int = 300,
                  overrides=None) -> list[dict]:
  """Per K: compile and step seconds of one K-variant program; 'K runs' is
  K x the K = 1 numbers (the compile paid K times)."""
  from warmup_research import config as config_lib
  from warmup_research import data, loop
  base = _base(overrides)
  batch_np = data.Batches(base).train(0)
  n = loop.steps_per_call(base.train)
  rows = []
  for k in ks:
    cfgs = [config_lib.apply_overrides(base, {"optimizer.peak_lr": 1e-3 * (1 + i)})
            for i in range(k)]
    prog, shape = _program(cfgs)
    state = prog.init(prog.keys, prog.hp)
    compile_s, step_s = time_steps(prog, state, batch_np, steps, n)
    rows.append(dict(k=k, mesh=f"{shape[0]}x{shape[1]}", steps_per_call=n, compile_s=compile_s,
                     step_s=step_s))
    print(f"[bench] K={k}: mesh {shape}, compile {compile_s:.2f}s, step {step_s * 1e3:.1f} ms",
          flush=True)
  one = rows[0]
  for r in rows:
    r["vs_one"] = r["step_s"] / one["step_s"]   # the GPU target: K = 16 at most 2x K = 1
    r["separate_step_s"] = r["k"] * one["step_s"]
    r["separate_compile_s"] = r["k"] * one["compile_s"]
    r["step_ratio"] = r["step_s"] / r["separate_step_s"]
    total_one = r["compile_s"] + run_steps * r["step_s"]
    total_sep = r["separate_compile_s"] + run_steps * r["separate_step_s"]
    r["run_ratio"] = total_one / total_sep
  return rows


def write_sweep_table(rows, out: pathlib.Path, command: str, steps: int, run_steps: int,
                      model: str = "Quickstart model (d_model 128, 2 layers, seq 128, batch 32, "
                                   "AdamW)") -> None:
  lines = header("Sweep scaling: K variants in one program vs K separate runs", command)
  n = rows[0]["steps_per_call"]
  lines += [f"{model}, the same batch each step, {n} updates per call of the compiled program "
            f"(as the training loop runs it). Step time: median of {steps} calls after 3 "
            f"warm-up calls, divided by {n}. Persistent compilation cache off. 'K runs' = K x "
            f"the K = 1 numbers. '{run_steps}-step run' compares compile + {run_steps} steps.",
            "",
            "| K | mesh (variant x data) | one program: compile s | one program: s/step "
            "| one program: s/step vs K = 1 | K runs: compile s | K runs: s/step "
            f"| s/step ratio | {run_steps}-step run ratio |",
            "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['k']} | {r['mesh']} | {r['compile_s']:.2f} | {r['step_s']:.4f} | "
                 f"{r['vs_one']:.2f}x | {r['separate_compile_s']:.2f} | "
                 f"{r['separate_step_s']:.4f} | {r['step_ratio']:.2f} | {r['run_ratio']:.2f} |")
  lines += ["", "A ratio below 1 means the single program is cheaper than K separate runs. "
            "'vs K = 1': how much longer a step of K variants takes than a step of one."]
  _write(out, lines)


def gpu(out: pathlib.Path, command: str, steps: int, sizes: dict | None = None,
        ks=(1, 2, 4, 8, 16, 32, 64), sweep_overrides=None, matmul_n: int = 8192,
        first_step_cases: dict | None = None, rounds: int = 1) -> None:
  """`bench gpu`, its tables in order of priority, each written as soon as
  it is measured (a run cut short keeps what it did): gpu_mfu.md (the
  125M-class config against the measured bfloat16 matmul, and again with
  `model.attention=cudnn`), gpu_sweep.md (1..64 vmapped quickstart
  variants), gpu_compile.md (time to the first step with a cold and a warm
  persistent cache, GPU_FIRST_STEP_CASES in `rounds` rounds; rewritten after
  each case). A failing cuDNN row is reported and left out; the other rows
  are still written. (`sizes`, `ks`, ...: smaller for the test, which runs
  this on CPU.)"""
  sizes = sizes or {"125M-class d768 L12 seq1024 b32 bf16": GPU_125M}
  matmul = dict(matmul_dtype="bfloat16", matmul_n=matmul_n)
  rows = throughput(sizes, steps, **matmul)
  flash = {f"{name}, model.attention=cudnn": {**o, "model.attention": "cudnn"}
           for name, o in sizes.items()}
  try:  # cuDNN flash attention has never run on the lent GPUs yet
    rows += throughput(flash, steps, **matmul)
  except Exception as e:  # noqa: BLE001 -- report, keep the other rows
    print(f"[bench] model.attention=cudnn failed: {type(e).__name__}: {e}", flush=True)
  write_throughput_table(rows, out / "gpu_mfu.md", command, steps,
                         title="GPU: MFU of a 125M-class model",
                         matmul=f"bfloat16 {matmul_n}x{matmul_n} matmul")
  write_sweep_table(sweep_scaling(ks, steps=steps, overrides=sweep_overrides),
                    out / "gpu_sweep.md", command, steps, 300)
  title = "GPU: time to the first step, cold vs warm persistent cache"
  cold_vs_warm(rounds, first_step_cases or GPU_FIRST_STEP_CASES,
               after_each=lambda cw: write_compile_table(None, cw, out / "gpu_compile.md",
                                                         command, title=title))


def grid_compiles(n_steps: int = 4, overrides=None) -> dict:
  """A 24-variant quickstart grid run through `sweep.run` (cache off): how
  many XLA compilations it triggers in total, and the train step's share."""
  import jax

  from warmup_research import sweep, workdir
  from warmup_research.sweep import axis, product
  events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda e, d, **kw: events.append(d) if e == "/jax/core/compile/backend_compile_duration"
      else None)
  points = product(axis("schedule.warmup_steps", [0, 2, 3]),
                   axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2, 3e-2]), axis("seed", [0, 1]))
  base = _base({"train.total_steps": n_steps, "train.eval_every": n_steps,
                "train.checkpoint_every": n_steps, **(overrides or {})})
  variants = sweep.expand(base, points)
  with tempfile.TemporaryDirectory() as wd:
    workdir.prepare(wd, sweep.sweep_record("bench", variants), kind="sweep")
    t0 = time.perf_counter()
    records = sweep.run(variants, pathlib.Path(wd), progress=False)["groups"]
    wall = time.perf_counter() - t0
  return dict(n_variants=len(variants), n_groups=len(records), backend_compiles=len(events),
              backend_compile_s=sum(events),
              train_step_compile_s=sum(r["compile_seconds"] for r in records), wall_s=wall)


def one_call(n: int) -> dict:
  """Overrides that make a run one call of n updates. No warmup fits in it,
  but the hyperparameters are traced: the train program is the same as the
  full run's (tests/bench_test.py compares the lowered text)."""
  return {"train.total_steps": n, "train.eval_every": n, "train.checkpoint_every": n,
          "schedule.warmup_steps": 0}


def first_step(cache_dir: str, single: bool = False, overrides=None) -> dict:
  """In THIS process (called in a fresh one), with the given cache dir: the
  quickstart grid (or its base config alone, `single`: what `train` does;
  `overrides` change the base, e.g. the model's size) run by
  `loop.run_group`, as `sweep` and `train` run it, for one call of the train
  program (its first n = `loop.steps_per_call` updates): seconds from this
  function's start (Python and the CLI module already loaded) to the end of
  that call, and its parts."""
  t_start = time.perf_counter()
  from warmup_research import loop
  from warmup_research import mesh as mesh_lib
  hits, compiles = _start_counting(cache_dir)
  t_import = time.perf_counter()
  cfgs, n = _one_call_configs(single, overrides)
  with tempfile.TemporaryDirectory() as wd:
    t_run = time.perf_counter()
    r = loop.run_group(cfgs, metrics_paths=[f"{wd}/{i}.jsonl" for i in range(len(cfgs))],
                       checkpoint_dir=f"{wd}/checkpoints", progress=False,
                       mesh=mesh_lib.make(*mesh_lib.group_shape(cfgs)))
  return dict(import_s=t_import - t_start, startup_s=r.first_step_seconds,
              compile_s=r.compile_seconds, steps_per_call=n,
              to_first_step_s=t_run - t_start + r.first_step_seconds,
              cache_hits=len(hits), backend_compiles=len(compiles) - len(hits),
              params=_num_params(cfgs[0]))


def _num_params(cfg) -> int:
  """Parameters of one variant of `cfg`'s model (abstract: no compute)."""
  from flax import nnx

  from warmup_research import model
  lm = nnx.eval_shape(lambda: model.TransformerLM(model.ModelConfig.from_config(cfg),
                                                  rngs=nnx.Rngs(0)))
  return model.num_params(nnx.state(lm, nnx.Param))


def _one_call_configs(single: bool, overrides=None):
  """The quickstart grid's configs (or its base config alone, `single`), with
  `overrides`, each cut to one call of the train program; and that call's n
  updates."""
  from warmup_research import config as config_lib
  from warmup_research import loop
  base = _base(overrides)
  n = loop.steps_per_call(base.train)
  points = [{}] if single else config_lib.load_sweep(QUICKSTART)
  return [config_lib.apply_overrides(base, {**p, **one_call(n)}) for p in points], n


def _start_counting(cache_dir: str):
  """Imports jax, turns the persistent cache on at cache_dir ('' = off), and
  returns two lists that fill as the process runs: cache hits, and XLA
  compile events (a compile or a cache load: a hit)."""
  import jax

  from warmup_research import runtime
  runtime.enable_compilation_cache(cache_dir)
  hits, compiles = [], []
  jax.monitoring.register_event_listener(
      lambda e, **kw: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
  jax.monitoring.register_event_duration_secs_listener(
      lambda e, d, **kw: compiles.append(d) if e == "/jax/core/compile/backend_compile_duration"
      else None)
  return hits, compiles


PARTS_CASE = "one run, its parts one after another (no background compile)"

# The parts of `first_step_parts`, in the order they run; what a cache of
# compiled programs could never skip: the imports, loading the programs and
# their first runs (BOUND_PARTS).
PROGRAM_PARTS = ("trace_lower", "compile", "first_run")
PARTS = ("imports", "build", *(f"{prog}_{part}" for prog in ("init", "eval", "train")
                               for part in PROGRAM_PARTS))
BOUND_PARTS = ("imports", *(f"{prog}_{part}" for prog in ("init", "eval", "train")
                            for part in ("compile", "first_run")))


def first_step_parts(cache_dir: str, overrides=None) -> dict:
  """In THIS (fresh) process: what `first_step(single=True)` runs, but its
  parts one after another (no background compile) and each timed: the
  imports; 'build' (the dataset, `GroupProgram`, the abstract state, the
  first call's batches); then for the init, eval and train programs their
  trace + lowering, their XLA compile (a cache load when the cache is warm)
  and their first run (the initial eval over all eval batches; the train
  program's first call of n updates; no checkpointer, no metrics files).
  `overrides` change the base config as in `first_step`. Same keys as
  `first_step`, plus `parts` (seconds per PARTS name)."""
  t_start = last = time.perf_counter()
  import jax
  import numpy as np

  from warmup_research import data, loop  # noqa: F401 -- loop (orbax) counts as imports
  hits, compiles = _start_counting(cache_dir)
  parts = {}

  def done(name, value=None):
    nonlocal last
    now = time.perf_counter()
    parts[name], last = now - last, now
    return value

  done("imports")
  (cfg,), n = _one_call_configs(True, overrides)
  batches = data.Batches(cfg)
  prog, _ = _program([cfg])
  abstract = prog.abstract_state
  batches0 = prog.put_batches(batches.train_steps(0, n))
  eval_batches = [prog.put_batch(batches.eval(i)) for i in range(cfg.train.eval_batches)]
  done("build")
  init = done("init_trace_lower", prog.init.trace(prog.keys, prog.hp).lower())
  init = done("init_compile", init.compile())
  state = done("init_first_run", jax.block_until_ready(init(prog.keys, prog.hp)))
  state_known = (state, prog.known_mask())   # eval every variant
  ev = done("eval_trace_lower", prog.eval.trace(state_known, eval_batches[0], prog.hp).lower())
  ev = done("eval_compile", ev.compile())
  done("eval_first_run", np.mean([np.asarray(ev(state_known, b, prog.hp))
                                  for b in eval_batches]))
  steps = done("train_trace_lower", prog.steps.trace(abstract, batches0, prog.hp).lower())
  steps = done("train_compile", steps.compile())
  done("train_first_run", jax.block_until_ready(steps(state, batches0, prog.hp)))
  to_first = time.perf_counter() - t_start
  return dict(import_s=parts["imports"], startup_s=to_first - parts["imports"],
              compile_s=parts["train_compile"], steps_per_call=n, to_first_step_s=to_first,
              cache_hits=len(hits), backend_compiles=len(compiles) - len(hits),
              params=_num_params(cfg), parts=parts)


def config_flags(overrides: dict) -> list[str]:
  """{'model.d_model': 768} -> ['--config.model.d_model=768'] (for `first-step`)."""
  return [f"--config.{k}={v}" for k, v in overrides.items()]


# case -> `bench first-step` flags. A case whose flags hold --parts runs
# `first_step_parts` (its table rows get a part-by-part section).
FIRST_STEP_CASES = {"one run (K = 1, as `train`)": ["--single"],
                    "the quickstart grid (6 variants, one program)": [],
                    PARTS_CASE: ["--parts"]}
# On a GPU: the quickstart model and the 125M-class config, one run each
# (what a researcher starts most), and the 125M-class one part by part.
GPU_FIRST_STEP_CASES = {
    "quickstart model, one run (K = 1, as `train`)": ["--single"],
    "125M-class, one run (K = 1, as `train`)": ["--single", *config_flags(GPU_125M)],
    f"125M-class, {PARTS_CASE}": ["--parts", *config_flags(GPU_125M)]}


def cold_vs_warm(rounds: int = 3, cases: dict | None = None, after_each=None) -> list[dict]:
  """Per round and case (default FIRST_STEP_CASES), two fresh processes
  sharing one new persistent cache: cold, then warm. Rounds repeat the cases
  in turn, so a slow minute (this VM drifts 10-40%) falls on some of each.
  Each row also has the process wall time (start to exit). `after_each(rows)`
  is called after each cold/warm pair (to write a table as it grows).

  The processes run with XLA_PYTHON_CLIENT_PREALLOCATE=false: on a GPU the
  calling process already holds its memory pool (`bench gpu`), and a child
  preallocating its default 75% of the GPU would fail."""
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  rows = []
  for rnd in range(rounds):
    for case, flags in (cases or FIRST_STEP_CASES).items():
      with tempfile.TemporaryDirectory() as cache:
        for label in ("cold cache", "warm cache"):
          cmd = [sys.executable, "-m", "benchmarks.bench", "first-step",
                 "--cache-dir", cache, *flags]
          t0 = time.perf_counter()
          out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
          if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} exited {out.returncode}:\n"
                               f"{out.stderr[-3000:]}")
          row = json.loads(out.stdout.strip().splitlines()[-1])
          rows.append(dict(case=case, label=label, round=rnd,
                           process_s=time.perf_counter() - t0, **row))
          print(f"[bench] round {rnd + 1}/{rounds}, {case}, {label}: {row}", flush=True)
      if after_each:
        after_each(rows)
  return rows


FIRST_STEP_COLUMNS = ("import_s", "startup_s", "compile_s", "to_first_step_s",
                      "backend_compiles", "cache_hits", "process_s")


def first_step_summary(cw: list[dict]) -> list[dict]:
  """Per (case, cold/warm), the median of each column over the rounds, and
  per case the ratios cold / warm of each round (in `cold_over_warm`)."""
  out = []
  for case in dict.fromkeys(r["case"] for r in cw):
    cold, warm = ([r for r in cw if r["case"] == case and r["label"] == label]
                  for label in ("cold cache", "warm cache"))
    ratios = {k: [c[k] / w[k] for c, w in zip(cold, warm)]
              for k in ("compile_s", "to_first_step_s")}
    for label, rows in (("cold cache", cold), ("warm cache", warm)):
      out.append(dict(case=case, label=label, rounds=len(rows), cold_over_warm=ratios,
                      **{k: statistics.median(r[k] for r in rows) for k in FIRST_STEP_COLUMNS}))
  return out


def write_compile_table(grid, cw, out, command,
                        title="Compilation: a 24-variant grid, and cold vs warm persistent "
                              "cache") -> None:
  """compile.md: the grid's compilations (`grid_compiles`; None leaves that
  section out) and the cold/warm cases of `cold_vs_warm`."""
  summary = first_step_summary(cw)
  lines = header(title, command)
  if grid is not None:
    lines += _grid_section(grid)
  lines += ["## Time to the first train step", "",
            "Each case in a fresh process, twice, with one new persistent cache directory: "
            "the first process compiles and fills it, the second loads from it; "
            f"{summary[0]['rounds']} round(s) of the cases in turn, and each number is the "
            "median over the rounds (a shared VM's speed drifts from minute to minute). Each "
            "runs `loop.run_group` (what `train` and `sweep` run) for one call of the train "
            f"program, {cw[0]['steps_per_call']} updates (`loop.steps_per_call`): the first "
            "results a run can report. Times count from the CLI's start, after Python's "
            "(the process wall time counts all). 'imports': jax, flax, optax, orbax and "
            "tfds; 'run_group to first step': building the program, initialising the "
            "state, the initial eval and the first call, with the train-program compile "
            "(tracing and lowering included) in a background thread alongside. 'XLA "
            "compilations' and 'cache hits' count the whole process (the final eval and "
            "orbax's checkpoint-save helpers included). A case 'its parts one after "
            "another' runs the same programs without `run_group` (no checkpoints: fewer "
            "compilations), each part alone: its 'run_group to first step' is the sum of its "
            "parts after the imports, and its train-program compile ran by itself (see the "
            "last section).", "",
            "| case | process | imports s | run_group to first step s "
            "| of which train-program compile s (in a thread) | start to first step s "
            "| XLA compilations | cache hits | process wall s |",
            "|---|---|---|---|---|---|---|---|---|"]
  for r in summary:
    lines.append(f"| {r['case']} | {r['label']} | {r['import_s']:.2f} | {r['startup_s']:.2f} | "
                 f"{r['compile_s']:.2f} | {r['to_first_step_s']:.2f} | "
                 f"{r['backend_compiles']:g} | {r['cache_hits']:g} | {r['process_s']:.2f} |")
  lines.append("")
  for cold, warm in zip(summary[::2], summary[1::2]):
    each = lambda k, cold=cold: " / ".join(f"{x:.1f}" for x in cold["cold_over_warm"][k])
    lines.append(f"- {cold['case']}: warm cache cuts the train-step compile "
                 f"{cold['compile_s'] / warm['compile_s']:.1f}x (rounds: {each('compile_s')}) "
                 f"and the time from the start of the process to the end of the first step "
                 f"{cold['to_first_step_s'] / warm['to_first_step_s']:.1f}x (rounds: "
                 f"{each('to_first_step_s')}).")
  for case in dict.fromkeys(r["case"] for r in cw if "parts" in r):
    lines += _parts_section(case, cw, summary)
  _write(out, lines)


def _grid_section(grid: dict) -> list[str]:
  return ["## 24-variant grid", "",
          "Quickstart model, warmup {0, 2, 3} x peak LR {1e-3, 3e-3, 1e-2, 3e-2} x seed {0, 1}, "
          "4 steps, run through the sweep runner with the persistent cache off; compilations "
          "counted with `jax.monitoring` (`/jax/core/compile/backend_compile_duration`).", "",
          "| variants | compile groups | XLA compilations (all) | their seconds "
          "| train-step compile s | wall s |", "|---|---|---|---|---|---|",
          f"| {grid['n_variants']} | {grid['n_groups']} | {grid['backend_compiles']} | "
          f"{grid['backend_compile_s']:.2f} | {grid['train_step_compile_s']:.2f} | "
          f"{grid['wall_s']:.1f} |", "",
          "Exactly one of them is the train step (compiled ahead of time, once per "
          "group); the others are the init and eval programs, small helpers of the "
          "loop, and, when the state is replicated over a data axis, orbax's `jit(slice)` "
          "of each array per device as it splits a checkpoint save between replicas "
          "(a few hundredths of a second each).", ""]


PART_LABELS = {"imports": "imports", "build": "build: dataset, `Program`, abstract state, batches",
               "trace_lower": "trace + lower", "compile": "XLA compile (cold) / cache load (warm)",
               "first_run": "first run"}


def _parts_section(case: str, cw: list[dict], summary: list[dict]) -> list[str]:
  """The rows of a parts case of `cold_vs_warm`: medians per part, and the
  bound (the totals are the case's medians in `first_step_summary`)."""
  total = {r["label"]: r["to_first_step_s"] for r in summary if r["case"] == case}
  if len(total) < 2:
    return []
  med = {label: {p: statistics.median(r["parts"][p] for r in cw
                                      if r["case"] == case and r["label"] == label)
                 for p in PARTS} for label in total}
  lines = ["", f"## Where the warm start goes: {case}", "",
           f"The case '{case}' runs what `train` runs up to the end of its first call, "
           "but each part alone and in turn (`bench.first_step_parts`: no checkpointer and "
           "no metrics files); medians over the rounds.", "",
           "| part | cold cache s | warm cache s |", "|---|---|---|"]
  for p in PARTS:
    prog, _, part = p.partition("_")
    label = PART_LABELS.get(p) or f"{prog}: {PART_LABELS[part]}"
    lines.append(f"| {label} | {med['cold cache'][p]:.2f} | {med['warm cache'][p]:.2f} |")
  lines.append(f"| to the end of the first call | {total['cold cache']:.2f} | "
               f"{total['warm cache']:.2f} |")
  bound = sum(med["warm cache"][p] for p in BOUND_PARTS)
  lines += ["", f"Without building, tracing and lowering (all that a cache of compiled, "
            f"serialised programs could skip), the warm process would still spend "
            f"{bound:.2f} s on the imports, the cache loads and the first runs: by this "
            f"measure no cache could cut this time to first step more than "
            f"{total['cold cache'] / bound:.1f}x (the warm cache as shipped: "
            f"{total['cold cache'] / total['warm cache']:.1f}x)."]
  return lines


def quick(steps: int = 20) -> dict:
  """The quickstart model only; the JSON line of `bench --quick`."""
  import jax
  (r,) = throughput({"quickstart": {}}, steps)
  return dict(tokens_per_s=round(r["tokens_per_s"], 1),
              model_gflops_per_s=round(r["model_gflops_per_s"], 2),
              matmul_gflops_per_s=round(r["matmul_gflops"], 2),
              matmul_ratio=round(r["matmul_ratio"], 4),
              step_ms=round(r["step_s"] * 1e3, 2), compile_s=round(r["compile_s"], 2),
              mesh=r["mesh"], devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
              xla_flags=os.environ.get("XLA_FLAGS", ""))


def parser():
  import argparse
  p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("which", nargs="?", default="all",
                 choices=["all", "throughput", "sweep", "compile", "gpu", "first-step"])
  p.add_argument("--quick", action="store_true",
                 help="quickstart model only; prints one JSON line")
  p.add_argument("--steps", type=int, default=20, help="timed calls per row")
  p.add_argument("--cache-dir", default="", help="(first-step) persistent cache dir")
  p.add_argument("--single", action="store_true", help="(first-step) one run, not the grid")
  p.add_argument("--parts", action="store_true",
                 help="(first-step) one run, each part timed alone, in turn")
  p.add_argument("--ks", default="1,2,4,8,16", help="(sweep) variant counts")
  p.add_argument("--out-dir", default=str(REPO / "results" / "benchmarks"))
  return p


def main(argv=None) -> None:
  from warmup_research import runtime
  runtime.setup_process()
  # jax is imported from here on, after setup_process set XLA's flags
  from warmup_research.cli import USAGE_EXIT, split_overrides
  from warmup_research.errors import ConfigError
  args, rest = parser().parse_known_args(argv)
  try:
    _run(args, rest, split_overrides)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def _run(args, rest, split_overrides) -> None:
  from warmup_research import runtime
  from warmup_research.errors import ConfigError
  if args.which == "first-step":  # one process of `compile` (or `gpu`)
    overrides = split_overrides(rest)  # --config.x.y=v: the model's size, say
    if args.parts:
      print(json.dumps(first_step_parts(args.cache_dir, overrides)))
    else:
      print(json.dumps(first_step(args.cache_dir, single=args.single, overrides=overrides)))
    return
  if rest:
    raise ConfigError(rest[0], "unknown argument")
  runtime.enable_compilation_cache("")  # cold compiles: the cache is off while benchmarking
  if args.steps < 1:
    raise ConfigError("--steps", f"must be an integer >= 1, got {args.steps}")
  try:
    ks = tuple(int(k) for k in args.ks.split(","))
  except ValueError:
    ks = ()
  if not ks or min(ks) < 1:
    raise ConfigError("--ks", f"must be comma-separated integers >= 1, got {args.ks!r}")
  out = pathlib.Path(args.out_dir)
  command = " ".join(["python -m benchmarks.bench", *sys.argv[1:]])
  if args.quick:
    print(json.dumps(quick(args.steps)))
    return
  if args.which in ("all", "throughput"):
    rows = throughput(CPU_SIZES, args.steps)
    write_throughput_table(rows, out / "throughput.md", command, args.steps)
  if args.which in ("all", "sweep"):
    rows = sweep_scaling(ks, steps=args.steps)
    write_sweep_table(rows, out / "sweep.md", command, args.steps, 300)
  if args.which in ("all", "compile"):
    write_compile_table(grid_compiles(), cold_vs_warm(), out / "compile.md", command)
  if args.which == "gpu":
    import jax
    if jax.devices()[0].platform != "gpu":
      raise ConfigError("bench gpu", f"needs a GPU; JAX sees {jax.devices()[0].platform} only")
    gpu(out, command, args.steps)
  print(f"wrote tables under {out}/")


if __name__ == "__main__":
  main()
