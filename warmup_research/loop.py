"""The training loop of one compile group: K variants stacked on a leading
`variant` axis, one jitted, sharded program (vmapped, or mapped on CPU: see
`variant_loop`), one batch per step for all.

`run_group` is what both `train` (K = 1) and the sweep runner call. It runs
n = `steps_per_call(config.train)` updates per call of one compiled program
(a `lax.scan` over n steps; n divides every eval, checkpoint and the last
step, so nothing else changes). Per call, from update t:

    batches = data(seed, t), ..., data(seed, t + n - 1)    # the same for every variant
    state, metrics_t..t+n-1 = steps(state, batches, hp)    # dispatched asynchronously
    the previous call's metrics are read only after this call is dispatched
    every SYNC_EVERY calls: wait for the call dispatched SYNC_EVERY before

The train program is compiled ahead of time (`lower().compile()`) so compile
time is measured apart from step time (and hits JAX's persistent cache when it
is on). It needs only the state's shapes, so it compiles in a background thread
while the main thread initialises the state and runs the initial eval (their
own compiles included). The quickstart grid reaches its first update 1.5 s
sooner cold and 0.5 s warm; a single run gains nothing measurable
(results/benchmarks/NOTES.md attempt 37). Every `eval_every` updates: eval loss
on `eval_batches` fixed validation batches. Every `checkpoint_every` updates:
an orbax checkpoint of the stacked state. A re-run resumes from the newest
valid checkpoint, cuts each metrics file back to that step, and ends with the
same numbers as an uninterrupted run.

Metrics files (JSON lines, one per variant): train rows
`{"step": s, "loss", "z_loss", "lr", "grad_norm", "update_norm", "param_norm",
"diverged"}` for update s (every `log_every` updates and the last), and eval
rows `{"step": n, "eval_loss"}` after n updates (n = 0 is the initial model).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from warmup_research import checkpoints, data, train
from warmup_research import mesh as mesh_lib
from warmup_research.errors import ConfigError

TRAIN_KEYS = ("loss", "z_loss", "lr", "grad_norm", "update_norm", "param_norm", "diverged")

# Every SYNC_EVERY calls the loop waits for the call it dispatched SYNC_EVERY
# calls before, so at most 2 * SYNC_EVERY calls are ever queued ahead of the
# devices and the host syncs once per SYNC_EVERY calls, never every call.
# Without a bound, XLA:CPU with several devices can deadlock: with as many
# client threads as devices (a 2-core machine, 2 devices), once ~35-40 steps
# with collectives were queued, the gradient all-gather waited 40 s for the
# other device and XLA aborted the process (`Termination timeout for all
# gather ...`; 4 runs in 4 of 300 unlogged steps; none with this bound;
# tests/sweep_test.py). Our reading of XLA's cpu_client.cc: each launch
# takes a per-device in-flight slot on a client-pool thread, a full slot
# count blocks those threads, and none is left to run the collective's other
# participant.
SYNC_EVERY = 8

# Updates per call of the compiled program: at most STEPS_PER_CALL (see
# `steps_per_call`). On XLA:CPU every execution of a program maps a fresh
# temporary buffer (82 MB per device for the quickstart step: ~40k page
# faults, a third of a 130 ms step) and unmaps it at the end; n steps in one
# program pay that once. Quickstart model, n = 5: 92 vs 130 ms per update
# (K = 1), 533 vs 563 ms (the 6-variant grid, whose variant loop already
# reuses the buffer); parameters bit-identical to one step per call
# (results/benchmarks/NOTES.md attempt 32; tests/loop_test.py).
STEPS_PER_CALL = 8


def steps_per_call(t_cfg) -> int:
  """The largest n <= STEPS_PER_CALL that divides `total_steps`,
  `eval_every` and `checkpoint_every`, so every call ends on or before each
  eval, checkpoint and the last update, and a resumed run (from a
  checkpoint step) is cut into the same calls as an uninterrupted one."""
  g = math.gcd(t_cfg.total_steps, t_cfg.eval_every, t_cfg.checkpoint_every)
  return max(n for n in range(1, STEPS_PER_CALL + 1) if g % n == 0)


@dataclasses.dataclass
class GroupResult:
  summaries: list[dict]          # one per variant, from its metrics file
  compile_seconds: float
  step_seconds: float | None     # steady-state wall seconds per update (all variants);
                                 # None when no call ran after the first
  steps_run: int                 # updates run in this process (0 if all were done)
  state_sharding: str = ""       # the sharding spec of the stacked params, as run
  variant_loop: str = ""         # 'vmap' or 'map', as run
  first_step_seconds: float | None = None  # from entering run_group to the end of its first
                                           # call (build, init, compiles, eval 0); None if none ran


def read_metrics(path) -> list[dict]:
  """Rows of a metrics file; a torn last line (a killed write) is dropped."""
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          break
  return rows


def write_rows_atomic(path, rows) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  os.replace(tmp, path)


def truncate_metrics(path, step: int) -> None:
  """Keeps train rows of updates < step and eval rows after <= step updates."""
  keep = [r for r in read_metrics(path)
          if (r["step"] <= step if "eval_loss" in r else r["step"] < step)]
  write_rows_atomic(path, keep)


def check_metrics_cover(path, step: int, t_cfg) -> None:
  """A resumed run's metrics file must hold the train row of the last update
  before `step` (the checkpoint's) that the loop logs; otherwise the file was
  damaged or replaced, and resuming would leave a hole in the curves (or, for
  a finished run, report from nothing)."""
  want = next((s for s in range(step - 1, -1, -1)
               if s % t_cfg.log_every == 0 or s == t_cfg.total_steps - 1), None)
  rows = read_metrics(path)
  if want is not None and not any(r["step"] == want and "loss" in r for r in rows):
    last = max((r["step"] for r in rows if "loss" in r), default=None)
    raise ConfigError(str(path), f"has {len(rows)} readable rows (last train step: {last}), "
                      f"but the checkpoint is at step {step}, so it should reach update "
                      f"{want}: the file was damaged or replaced; re-run with --overwrite "
                      "(or into a new workdir) to start again")


def summarize(rows: list[dict]) -> dict:
  train_rows = [r for r in rows if "loss" in r]
  evals = [r for r in rows if "eval_loss" in r]
  diverged = [r["step"] for r in train_rows if r["diverged"]]
  finite_evals = [r["eval_loss"] for r in evals if math.isfinite(r["eval_loss"])]
  return dict(
      status="diverged" if diverged else "finished",
      diverged_step=diverged[0] if diverged else None,
      final_train_loss=train_rows[-1]["loss"] if train_rows else None,
      initial_eval_loss=evals[0]["eval_loss"] if evals else None,
      final_eval_loss=evals[-1]["eval_loss"] if evals else None,
      best_eval_loss=min(finite_evals) if finite_evals else None,
      steps=evals[-1]["step"] if evals else 0)


def variant_loop(cfg) -> str:
  """'vmap' or 'map': `mesh.variant_loop`, with 'auto' = map on CPU.

  On CPU a vmapped step turns every matmul into a batched one, which XLA's
  CPU backend runs more slowly than K plain matmuls: a K = 8 quickstart
  step took 1.6x longer vmapped than mapped (results/benchmarks/NOTES.md).
  Accelerators want the batched form.
  """
  how = cfg.mesh.variant_loop
  if how == "auto":
    how = "map" if jax.devices()[0].platform == "cpu" else "vmap"
  return how


def mesh_shape(cfgs) -> tuple[int, int]:
  """The (variant, data) mesh of a group: `config.mesh`, else picked."""
  c = cfgs[0]
  return mesh_lib.choose_shape(jax.device_count(), len(cfgs), c.data.batch_size,
                               c.mesh.variant, c.mesh.data,
                               prefer_data=variant_loop(c) == "map")


def over_variants(fn, mesh, how: str):
  """fn(x, batch, hp) of ONE variant -> the same over stacked x and hp.

  'vmap': `jax.vmap`. 'map': a `shard_map` that is manual over the
  `variant` axis only (the `data` axis stays automatic, so XLA still
  inserts the gradient all-reduce), running each device's variants one
  after another with `lax.map`. Both give the same numbers (tested). A
  device with one variant (every `train` run) calls `fn` directly: the same
  step, without a one-trip loop; lowering the quickstart step takes 0.09-0.12
  instead of 0.15-0.17 s (results/benchmarks/NOTES.md attempt 21).
  """
  if how == "vmap":
    return jax.vmap(fn, in_axes=(0, None, 0))
  from jax.sharding import PartitionSpec as P

  def local(x, batch, hp):
    if jax.tree.leaves(hp)[0].shape[0] == 1:   # static: this device's variant count
      first = lambda tree: jax.tree.map(lambda a: a[0], tree)
      return jax.tree.map(lambda a: a[None], fn(first(x), batch, first(hp)))
    return jax.lax.map(lambda x_hp: fn(x_hp[0], batch, x_hp[1]), (x, hp))

  return jax.shard_map(local, mesh=mesh, in_specs=(P("variant"), P(), P("variant")),
                       out_specs=P("variant"), axis_names={"variant"})


class Program:
  """The jitted, sharded functions and stacked inputs of one group.

  The K variants are padded to a multiple of the mesh's `variant` axis (pads
  repeat the last variant; their results are dropped) and sharded over it;
  each batch is sharded over `data`. Metrics and eval losses come back
  replicated, so every process can read them. `how` (see `variant_loop`)
  picks vmap or map over a device's variants.

  `step(state, batch_BxL1, hp)` runs one update; `steps(state,
  batches_NxBxL1, hp)` runs N in order (a `lax.scan` of the same step) and
  returns the metrics of each, stacked on a leading N axis.
  """

  def __init__(self, cfgs, mesh, how: str | None = None):
    trainer = train.Trainer(cfgs[0])
    self.per_variant, self.batch_sharding, replicated = mesh_lib.shardings(mesh)
    self.how = how or variant_loop(cfgs[0])
    self.k = len(cfgs)
    k_pad = -(-self.k // mesh.shape["variant"]) * mesh.shape["variant"]
    padded = list(cfgs) + [cfgs[-1]] * (k_pad - self.k)
    self.hp = mesh_lib.to_global(
        jax.tree.map(lambda *x: np.stack(x), *[train.hparams(c) for c in padded]),
        self.per_variant)
    self.keys = mesh_lib.to_global(
        np.stack([np.asarray(jax.random.key_data(jax.random.key(c.seed))) for c in padded]),
        self.per_variant)

    def init(key_data, hp):
      return trainer.init(jax.random.wrap_key_data(key_data), hp)

    self.init = jax.jit(jax.vmap(init), out_shardings=self.per_variant)
    one = over_variants(trainer.train_step, mesh, self.how)
    self.step = jax.jit(one, out_shardings=(self.per_variant, replicated), donate_argnums=0)
    self.steps = jax.jit(
        lambda x, batches, hp: jax.lax.scan(lambda x, batch: one(x, batch, hp), x, batches),
        out_shardings=(self.per_variant, replicated), donate_argnums=0)
    self.batches_sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(None, *self.batch_sharding.spec))
    self.eval = jax.jit(over_variants(trainer.eval_step, mesh, self.how),
                        out_shardings=replicated)

  @functools.cached_property
  def abstract_state(self):
    """Shapes, dtypes and shardings of the stacked state (no compute)."""
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.per_variant,
                                       weak_type=a.weak_type),
        jax.eval_shape(self.init, self.keys, self.hp))

  def compile_steps(self, batches_NxBxL1):
    """(`steps` compiled ahead of time for batches of this shape, seconds).
    Needs no state: the loop runs it in a background thread."""
    t0 = time.perf_counter()
    compiled = self.steps.lower(self.abstract_state, batches_NxBxL1, self.hp).compile()
    return compiled, time.perf_counter() - t0

  def put_batch(self, batch_BxL1):
    return mesh_lib.to_global(batch_BxL1, self.batch_sharding)

  def put_batches(self, batches_NxBxL1):
    return mesh_lib.to_global(batches_NxBxL1, self.batches_sharding)


def in_background(fn, *args) -> concurrent.futures.Future:
  """fn(*args) in a new thread; `.result()` returns its value or raises its error."""
  pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="warmup_research")
  try:
    return pool.submit(fn, *args)
  finally:
    pool.shutdown(wait=False)


def run_group(cfgs, *, metrics_paths, checkpoint_dir, mesh, desc="train",
              progress=True, batches: data.Batches | None = None) -> GroupResult:
  """Trains the variants `cfgs` (validated, one static signature) together.

  Every process of a multi-process run calls this; only process 0 writes
  metrics files.
  """
  t_entry = time.perf_counter()
  cfg0 = cfgs[0]
  t_cfg = cfg0.train
  total = t_cfg.total_steps
  k = len(cfgs)
  writer = jax.process_index() == 0
  batches = batches or data.Batches(cfg0)
  prog = Program(cfgs, mesh)
  vinit, veval, hp, keys, put_batch = prog.init, prog.eval, prog.hp, prog.keys, prog.put_batch

  ckpt = checkpoints.Checkpointer(checkpoint_dir, keep=t_cfg.keep_checkpoints)
  restored = ckpt.restore_latest(prog.abstract_state)
  if restored is None:
    start, state = 0, None   # initialised below, while the train program compiles
    if writer:
      for p in metrics_paths:
        write_rows_atomic(p, [])
  else:
    start, state, meta = restored
    try:
      for p in metrics_paths:
        check_metrics_cover(p, start, t_cfg)
    except ConfigError:
      ckpt.close()
      raise
    if meta.get("finished"):
      start = total
    if writer:
      for p in metrics_paths:
        truncate_metrics(p, start)

  # Checkpoints are written at multiples of n (n divides checkpoint_every, and a
  # run that stops early on divergence stops at a call's end), so start is one
  # too; the gcd keeps calls on the boundaries even if a checkpoint is not.
  n = math.gcd(steps_per_call(t_cfg), start)
  if start >= total:  # nothing left to run: report from the metrics files
    ckpt.close()
    return GroupResult(summaries=[summarize(read_metrics(p)) for p in metrics_paths],
                       compile_seconds=0.0, step_seconds=None, steps_run=0)
  def put_call(t):   # the batches of updates t .. t + n - 1
    return prog.put_batches(batches.train_steps(t, n))

  batches0 = put_call(start)
  compiling = in_background(prog.compile_steps, batches0)
  if state is None:
    state = vinit(keys, hp)
  eval_batches = [put_batch(batches.eval(i)) for i in range(t_cfg.eval_batches)]

  files = [open(p, "a") if writer else None for p in metrics_paths]

  def write(rows_per_variant):
    for f, row in zip(files, rows_per_variant):
      if f is not None:
        f.write(json.dumps(row) + "\n")

  def evaluate(after):   # eval rows after `after` updates
    losses = np.mean([np.asarray(veval(state.params, b, hp)) for b in eval_batches], axis=0)
    write([dict(step=after, eval_loss=float(x)) for x in losses[:k]])

  def flush(pending):
    """Writes the logged rows of a call; returns its last logged step's metrics."""
    if pending is None:
      return None
    t, logged, m = pending
    m = jax.device_get(m)
    for s in logged:
      write([{"step": s, **{key: float(m[key][s - t][v]) for key in TRAIN_KEYS}}
             for v in range(k)])
    return {key: m[key][logged[-1] - t] for key in ("loss", "diverged")}

  if start == 0:
    evaluate(0)
  steps_fn, compile_seconds = compiling.result()
  bar = tqdm(total=total, initial=start, desc=desc, unit="step", file=sys.stderr,
             disable=not (progress and writer), dynamic_ncols=True)
  pending, timed_from, t_steady = None, None, None
  fence = None   # metrics of the last call the loop will wait for
  done = start
  for call, t in enumerate(range(start, total, n)):
    state, metrics = steps_fn(state, batches0 if call == 0 else put_call(t), hp)
    if call % SYNC_EVERY == 0:
      if fence is not None:
        jax.block_until_ready(fence)
      fence = metrics
    m = flush(pending)   # read the previous call's metrics only after this one is dispatched
    logged = [s for s in range(t, t + n) if s % t_cfg.log_every == 0 or s == total - 1]
    pending = (t, logged, metrics) if logged else None
    done = t + n
    all_diverged = m is not None and bool(np.all(m["diverged"][:k]))
    if m is not None:
      bar.set_postfix(loss=f"{float(np.nanmean(m['loss'][:k])):.4f}", refresh=False)
    if call == 0:   # steady-state timing starts after the first call (its first run is slower)
      jax.block_until_ready(state)
      timed_from, t_steady = done, time.perf_counter()
      first_step_seconds = t_steady - t_entry
    finished = done == total or all_diverged
    if done % t_cfg.eval_every == 0 or finished:
      flush(pending)
      pending = None
      evaluate(done)
    if done % t_cfg.checkpoint_every == 0 or finished:
      flush(pending)
      pending = None
      for f in files:
        if f is not None:
          f.flush()
      ckpt.save(done, state, dict(step=done, finished=finished,
                                  configs=[c.to_dict() for c in cfgs]))
    bar.update(n)
    if all_diverged:
      break
  flush(pending)
  jax.block_until_ready(state)
  end = time.perf_counter()
  bar.close()
  for f in files:
    if f is not None:
      f.close()
  ckpt.close()
  steps_timed = (done - timed_from) if timed_from is not None else 0
  step_seconds = (end - t_steady) / steps_timed if steps_timed > 0 else None
  summaries = [summarize(read_metrics(p)) for p in metrics_paths] if writer else []
  spec = str(jax.tree.leaves(state.params)[0].sharding.spec)
  return GroupResult(summaries=summaries, compile_seconds=compile_seconds,
                     step_seconds=step_seconds, steps_run=done - start, state_sharding=spec,
                     variant_loop=prog.how, first_step_seconds=first_step_seconds)
