"""Benchmarks: tables under results/benchmarks/, never assertions in tests.

    python -m warmup_research bench sweep [--steps N] [--ks 1,2,4,8,16]

`sweep`: the train step of K variants in ONE vmapped, sharded program vs K
separate single-variant runs, on the quickstart model and data. Per K: the
compile seconds of the program and the median seconds per step (after
warm-up steps, each step timed with `block_until_ready`). "K separate runs"
is K times the K = 1 numbers (what running the variants one by one costs),
with the compile paid K times (no persistent cache: this benchmark runs with
it off, to measure cold compiles).
"""
from __future__ import annotations

import datetime
import pathlib
import platform
import statistics
import time



def machine() -> dict:
  import jax
  cpu = platform.processor() or "unknown"
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  import flax
  import optax
  dev = jax.devices()[0]
  return dict(cpu=cpu, cores=len(__import__("os").sched_getaffinity(0)),
              devices=f"{jax.device_count()} x {dev.device_kind} ({dev.platform})",
              versions=f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}",
              python=platform.python_version(),
              date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def header(title: str, command: str) -> list[str]:
  m = machine()
  return [f"# {title}", "", f"- command: `{command}`", f"- machine: {m['cpu']}, {m['cores']} cores; "
          f"JAX devices: {m['devices']}", f"- software: Python {m['python']}, {m['versions']}",
          f"- date: {m['date']}", ""]


def time_steps(prog, state, batch, steps: int, warmup: int = 2):
  """(compile seconds, median seconds per step)."""
  import jax
  t0 = time.perf_counter()
  step = prog.step.lower(state, batch, prog.hp).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    state, m = step(state, batch, prog.hp)
  jax.block_until_ready(state)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, m = step(state, batch, prog.hp)
    jax.block_until_ready((state, m))
    times.append(time.perf_counter() - t)
  return compile_s, statistics.median(times)


def sweep_scaling(ks=(1, 2, 4, 8, 16), steps: int = 10, run_steps: int = 300) -> list[dict]:
  import jax
  from warmup_research import config as config_lib, data, loop, mesh as mesh_lib
  base = config_lib.load("experiments/quickstart.py")
  batch_np = data.Batches(base).train(0)
  rows = []
  for k in ks:
    cfgs = [config_lib.apply_overrides(base, {"optimizer.peak_lr": 1e-3 * (1 + i)})
            for i in range(k)]
    shape = mesh_lib.choose_shape(jax.device_count(), k, base.data.batch_size)
    prog = loop.Program(cfgs, mesh_lib.make(*shape))
    state = prog.init(prog.keys, prog.hp)
    compile_s, step_s = time_steps(prog, state, prog.put_batch(batch_np), steps)
    rows.append(dict(k=k, mesh=f"{shape[0]}x{shape[1]}", compile_s=compile_s, step_s=step_s))
    print(f"[bench] K={k}: mesh {shape}, compile {compile_s:.2f}s, step {step_s * 1e3:.1f} ms",
          flush=True)
  one = rows[0]
  for r in rows:
    r["separate_step_s"] = r["k"] * one["step_s"]
    r["separate_compile_s"] = r["k"] * one["compile_s"]
    r["step_ratio"] = r["step_s"] / r["separate_step_s"]
    total_one = r["compile_s"] + run_steps * r["step_s"]
    total_sep = r["separate_compile_s"] + run_steps * r["separate_step_s"]
    r["run_ratio"] = total_one / total_sep
  return rows


def write_sweep_table(rows, out: pathlib.Path, command: str, steps: int, run_steps: int) -> None:
  lines = header("Sweep scaling: K variants in one program vs K separate runs", command)
  lines += [f"Quickstart model (d_model 128, 2 layers, seq 128, batch 32, AdamW), the same "
            f"batch each step. Step time: median of {steps} steps after 2 warm-up steps. "
            f"Persistent compilation cache off. 'K runs' = K x the K = 1 numbers. "
            f"'{run_steps}-step run' compares compile + {run_steps} steps.", "",
            "| K | mesh (variant x data) | one program: compile s | one program: s/step "
            "| K runs: compile s | K runs: s/step | s/step ratio | "
            f"{run_steps}-step run ratio |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['k']} | {r['mesh']} | {r['compile_s']:.2f} | {r['step_s']:.4f} | "
                 f"{r['separate_compile_s']:.2f} | {r['separate_step_s']:.4f} | "
                 f"{r['step_ratio']:.2f} | {r['run_ratio']:.2f} |")
  lines += ["", "A ratio below 1 means the single program is cheaper than K separate runs."]
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text("\n".join(lines) + "\n")
