"""The training loop of one compile group (K stacked variants; K = 1 for
`train`), as both `train` and the sweep runner call it: `run_group`.

Each call of the compiled program runs n = `steps_per_call(config.train)`
updates (a `lax.scan`); n divides every eval, checkpoint and the last step.
Per call, from update t:

    batches = data(seed, t), ..., data(seed, t + n - 1)    # per data seed (program.py)
    state, metrics_t..t+n-1 = steps(state, batches, hp)    # dispatched asynchronously
    the previous call's metrics are read only after this call is dispatched
    every SYNC_EVERY calls: wait for the call dispatched SYNC_EVERY before

The train program is compiled ahead of time, so compile time is reported
apart from step time (and hits the persistent cache when it is on). It needs
only the state's shapes, so it compiles in a background thread while the
main thread initialises the state and runs the initial eval. Every
`eval_every` updates: eval loss on `eval_batches` fixed validation batches;
every `checkpoint_every` (and at each of `checkpoint_steps`, kept for
analysis): an orbax checkpoint of the stacked state. A re-run
resumes from the newest valid checkpoint, cuts each metrics file back to
that step, and ends with the same numbers as an uninterrupted run.

Dead variants (docs/sweeps.md): a variant frozen at an eval keeps its eval
loss, so later evals reuse it (under `map` they skip its forward passes).
At each of `train.prune_steps`, after its eval, successive halving freezes
the worse variants of each comparison set (`prune`). After an eval, a vmap
group whose frozen share reached `train.compact_frozen` continues as a
smaller program of the live variants (`compact`); evals already read the
device, and checkpoint cadence is the user's choice for safety, not for
compute. Checkpoints keep the whole group's state, and their meta records
these decisions (`stops`, `active`, `known_eval`), so a resumed run makes
the same ones and writes the same numbers.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import sys
import time

import jax
import numpy as np

from warmup_research import checkpoints, data, loggers, metrics_io, schedules, train
from warmup_research import config as config_lib
from warmup_research import program as program_lib
from warmup_research.errors import ConfigError
from warmup_research.program import GroupProgram
from warmup_research.progress import Progress

# The loop waits every SYNC_EVERY calls for the call dispatched SYNC_EVERY
# before, so at most 2 * SYNC_EVERY calls are queued and the host syncs once
# per SYNC_EVERY calls. Unbounded, XLA:CPU with as many client threads as
# devices deadlocked in a gradient all-gather once ~35-40 steps with
# collectives were queued (tests/sweep_test.py reproduces it; history in
# benchmarks/NOTES.md).
SYNC_EVERY = 8

# At most this many updates per call: XLA:CPU maps and unmaps a temporary
# buffer per execution, which n steps per call pay once (same numbers;
# benchmarks/NOTES.md, attempt 32).
STEPS_PER_CALL = 8


def steps_per_call(t_cfg) -> int:
  """The largest n <= STEPS_PER_CALL that divides `total_steps`,
  `eval_every`, `checkpoint_every` and every `checkpoint_steps`, so every
  call ends on or before each eval, checkpoint and the last update, and a
  resumed run (from a checkpoint step) is cut into the same calls as an
  uninterrupted one."""
  g = math.gcd(t_cfg.total_steps, t_cfg.eval_every, t_cfg.checkpoint_every,
               *t_cfg.get("checkpoint_steps", ()), *t_cfg.get("prune_steps", ()))
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
  unigram_entropy: float | None = None     # of the training data: the stall level's base
  train_step_compiles: int = 1             # 1, plus one per compacted size (over every
                                           # attempt: a resume keeps the earlier ones)
  device_counts: list[int] = dataclasses.field(default_factory=list)  # of every attempt;
                                           # two or more: resumed on another device count


def in_background(fn, *args) -> concurrent.futures.Future:
  """fn(*args) in a new thread; `.result()` returns its value or raises its error."""
  pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="warmup_research")
  try:
    return pool.submit(fn, *args)
  finally:
    pool.shutdown(wait=False)


def run_group(cfgs, *, metrics_paths, checkpoint_dir, mesh, desc="train",
              progress: bool | Progress = True, batches: data.Batches | None = None,
              log: dict | None = None) -> GroupResult:
  """Trains the variants `cfgs` (validated, one static signature) together.

  `progress`: the sweep's display (`desc` names this group in it), or
  whether to show one of this group's own. Every process of a multi-process
  run calls this; only process 0 writes metrics (the JSONL files, and the
  live loggers `log` names: a dict of `loggers.Logger` arguments: run_ids,
  swepts, tb_dirs, backends, workdir).
  """
  t_entry = time.perf_counter()
  cfg0 = cfgs[0]
  t_cfg = cfg0.train
  total = t_cfg.total_steps
  k = len(cfgs)
  writer = jax.process_index() == 0
  batches = batches or data.Batches(cfg0)
  entropy = batches.unigram_entropy

  def summaries():
    return [metrics_io.summarize(metrics_io.read(p), entropy, stall_margin=c.train.stall_margin,
                                 total_steps=total, warmup_end=config_lib.durations(c)[0])
            for p, c in zip(metrics_paths, cfgs)]

  base = GroupProgram(cfgs, mesh)   # all K variants: init, checkpoints, eval of the frozen
  prog = base                       # the program that runs: base, or a compacted one
  active = list(range(k))           # the variants `prog` runs, as indices into cfgs
  full = None                       # while compacted: the whole K state (frozen rows kept)
  known_eval: dict[int, float] = {}  # the eval loss of a variant frozen at an eval (constant)
  frozen_lr: dict[int, np.ndarray] = {}  # a compacted-out variant's schedule, for its rows
  compact_at = t_cfg.get("compact_frozen", 0.0) if base.how == "vmap" else 0.0
  executables: dict[tuple, object] = {}   # compiled `steps`, by `GroupProgram.shape_key`
  compile_seconds = 0.0
  stops = [train.NEVER] * k         # each variant's hp.stop_step: the rung that pruned it
  rungs = set(t_cfg.get("prune_steps", ()))
  sets: dict[str, list[int]] = {}   # successive halving's comparison sets
  for i, c in enumerate(cfgs):
    flat = config_lib.flatten(c.to_dict())
    sets.setdefault(json.dumps({f: v for f, v in flat.items()
                                if f not in t_cfg.get("prune_over", ())}, sort_keys=True),
                    []).append(i)

  extra = set(t_cfg.get("checkpoint_steps", ()))
  ckpt = checkpoints.Checkpointer(checkpoint_dir, keep=t_cfg.keep_checkpoints, preserve=extra)
  restored = ckpt.restore_latest(base.abstract_state)
  compiled_before, devices_before = set(), set()   # earlier attempts' (from the checkpoint)
  if restored is None:
    start, state = 0, None   # initialised below, while the train program compiles
    if writer:
      for p in metrics_paths:
        metrics_io.write(p, [])
  else:
    start, state, meta = restored
    try:
      for p in metrics_paths:
        metrics_io.check_covers(p, start, t_cfg, metrics_io.restart_remedy(checkpoint_dir))
    except ConfigError:
      ckpt.close()
      raise
    if meta.get("finished"):
      start = total
    stops = list(meta.get("stops", stops))
    base.set_stops(stops)
    known_eval = {int(i): float.fromhex(x) for i, x in meta.get("known_eval", {}).items()}
    compiled_before = set(meta.get("compiled_sizes", ()))
    devices_before = set(meta.get("device_counts", ()))
    if writer:
      for p in metrics_paths:
        metrics_io.truncate(p, start)

  # Checkpoints are written at multiples of n (n divides checkpoint_every, and a
  # run that stops early on divergence stops at a call's end), so start is one
  # too; the gcd keeps calls on the boundaries even if a checkpoint is not.
  n = math.gcd(steps_per_call(t_cfg), start)
  bar = progress if isinstance(progress, Progress) else Progress(
      [(desc, k, (total - start) * k)], enabled=bool(progress) and writer)
  bar.start(desc, max(0, total - start) * k)
  if start >= total:  # nothing left to run: report from the metrics files
    ckpt.close()
    bar.finish()
    if bar is not progress:
      bar.close()
    return GroupResult(summaries=summaries(), compile_seconds=0.0, step_seconds=None,
                       steps_run=0, unigram_entropy=entropy, train_step_compiles=0,
                       device_counts=sorted(devices_before))
  eval_batches = [base.put_batch(batches.eval(i)) for i in range(t_cfg.eval_batches)]

  def whole_state():
    """The whole K state (compacted: the running variants written back into it)."""
    nonlocal full
    if full is not None:
      full = program_lib.put_rows(full, state, active)
      return full
    return state

  def compact(keep: list[int]):
    """Runs only the variants `keep` from here on: their states gathered into
    a program for len(keep) variants (compiled once per size). The others
    are frozen, with their eval losses in `known_eval`."""
    nonlocal prog, state, full, active
    whole = whole_state()
    missing = [i for i in set(active) - set(keep) if i not in known_eval]
    if missing:   # a checkpoint from before `known_eval` was recorded
      losses = base.eval_losses(whole.params, eval_batches)
      known_eval.update({i: float(losses[i]) for i in missing})
    for i in set(active) - set(keep):
      frozen_lr[i] = np.asarray(schedules.schedule(np.arange(total),
                                                   train.hparams(cfgs[i]).schedule), np.float32)
    full, active = whole, keep
    prog = GroupProgram([cfgs[i] for i in keep], mesh, base.how)
    prog.set_stops([stops[i] for i in keep])
    state = prog.take(full, keep)
    print(f"[loop] {desc}: {k - len(keep)} of {k} variants frozen; compacted to "
          f"{len(keep)} (vmap over {prog.k_pad})", file=sys.stderr)

  def running() -> list[int]:
    """The variants `prog` runs that are not frozen (diverged or pruned)."""
    frozen = np.asarray(jax.device_get(prog.frozen(state, prog.hp)))[:len(active)]
    return [i for i, f in zip(active, frozen) if not f]

  def maybe_compact(live: list[int]) -> bool:
    """After an eval: compact to the variants `live` (the running ones not
    frozen) once the frozen share reaches `train.compact_frozen` (vmap only;
    see the module docstring)."""
    if compact_at <= 0:
      return False
    if live and (len(active) - len(live)) / len(active) >= compact_at:
      compact(live)
      return True
    return False

  def steps_for(batches_NxBxL1):
    """`prog.steps` compiled ahead of time, once per shape (`shape_key`)."""
    nonlocal compile_seconds
    key = prog.shape_key()
    if key not in executables:
      executables[key], seconds = prog.compile_steps(batches_NxBxL1)
      compile_seconds += seconds
    return executables[key]

  if restored is not None and meta.get("active", active) != active:
    compact(meta["active"])   # the variants that ran when this checkpoint was saved

  def put_call(t):   # the batches of updates t .. t + n - 1
    return prog.train_batches(batches, t, n)

  ready = {start: put_call(start)}   # batches already put for a call (for a compile, too)
  compiling = in_background(steps_for, ready[start])
  if state is None:
    state = base.init(base.keys, base.hp)

  logger = None
  if writer:
    log = dict(run_ids=[str(i) for i in range(k)], swepts=[{}] * k, backends=()) | (log or {})
    logger = loggers.Logger(metrics_paths, cfgs=cfgs, start=start, **log)

  def write(rows_per_variant):
    if logger is not None:
      logger.write(rows_per_variant)

  def evaluate(after):
    """Writes the eval rows after `after` updates; returns (variant -> eval
    loss, the running variants not frozen). A frozen variant's loss is
    computed once, then kept."""
    known = [j for j, i in enumerate(active) if i in known_eval]
    losses = prog.eval_losses(state.params, eval_batches, known)
    by_variant = dict(zip(active, map(float, losses))) | known_eval
    write([dict(step=after, eval_loss=by_variant[i]) for i in range(k)])
    live = running()
    known_eval.update({i: by_variant[i] for i in active if i not in live})
    return by_variant, live

  def prune(rung, losses, live: list[int]) -> list[int]:
    """Successive halving at `rung`: in each comparison set (variants that
    differ only in `train.prune_over`), keep the best `train.prune_keep`
    share (at least one) of the variants `live` by eval loss; freeze the
    rest from here on (`hp.stop_step`) and mark them `pruned` in their rows.
    Returns the variants still live."""
    out, alive = [], set(live)
    for members in sets.values():
      ranked = sorted((i for i in members if i in alive),
                      key=lambda i: (not math.isfinite(losses[i]), losses[i], i))
      out += ranked[max(1, math.ceil(t_cfg.prune_keep * len(ranked))):]
    if not out:
      return live
    for i in out:
      stops[i] = rung
      known_eval[i] = losses[i]   # frozen from here on
    base.set_stops(stops)
    if prog is not base:
      prog.set_stops([stops[i] for i in active])
    write([{"step": rung, "pruned": 1.0} if i in out else None for i in range(k)])
    return [i for i in live if i not in out]

  def flush(pending):
    """Writes the logged rows of a call; returns its last logged step's metrics."""
    if pending is None:
      return None
    t, logged, m, ran = pending
    m = jax.device_get(m)
    for s in logged:
      rows = {i: {"step": s, **{key: float(m[key][s - t][j]) for key in metrics_io.TRAIN_KEYS}}
              for j, i in enumerate(ran)}
      write([rows.get(i) or frozen_row(i, s) for i in range(k)])
    return {key: m[key][logged[-1] - t][:len(ran)] for key in ("loss", "diverged")}

  def frozen_row(i, s):   # as `program.frozen_result` writes a skipped variant's row
    return {"step": s, **{key: math.nan for key in metrics_io.TRAIN_KEYS},
            "lr": float(frozen_lr[i][s]), "diverged": float(stops[i] == train.NEVER)}

  def compiled_sizes():   # the train programs' sizes compiled over every attempt
    return sorted(compiled_before | {key[0] for key in executables})

  def device_counts():
    return sorted(devices_before | {jax.device_count()})

  if start == 0:
    evaluate(0)
  steps_fn = compiling.result()
  pending, timed_from, t_steady = None, None, None
  fence = None   # metrics of the last call the loop will wait for
  done = start
  for call, t in enumerate(range(start, total, n)):
    state, metrics = steps_fn(state, ready.pop(t) if t in ready else put_call(t), prog.hp)
    if call % SYNC_EVERY == 0:
      if fence is not None:
        jax.block_until_ready(fence)
      fence = metrics
    m = flush(pending)   # read the previous call's metrics only after this one is dispatched
    logged = [s for s in range(t, t + n) if s % t_cfg.log_every == 0 or s == total - 1]
    pending = (t, logged, metrics, list(active)) if logged else None
    done = t + n
    all_diverged = m is not None and bool(np.all(m["diverged"]))
    if call == 0:   # steady-state timing starts after the first call (its first run is slower)
      jax.block_until_ready(state)
      timed_from, t_steady = done, time.perf_counter()
      first_step_seconds = t_steady - t_entry
    finished = done == total or all_diverged
    repacked = False
    if done % t_cfg.eval_every == 0 or finished:
      flush(pending)
      pending = None
      losses, live = evaluate(done)   # one read of who is frozen, kept up to date below
      if done in rungs and not finished:
        live = prune(done, losses, live)
      repacked = not finished and maybe_compact(live)
    if done % t_cfg.checkpoint_every == 0 or done in extra or finished:
      flush(pending)
      pending = None
      if logger is not None:
        logger.flush()
      ckpt.save(done, whole_state(), dict(
          step=done, finished=finished, active=active, stops=stops,
          known_eval={str(i): x.hex() for i, x in known_eval.items()},
          compiled_sizes=compiled_sizes(), device_counts=device_counts(),
          configs=[c.to_dict() for c in cfgs]))
    if repacked:   # the next call's batches, for the new shape
      ready[done] = put_call(done)
      steps_fn = steps_for(ready[done])
    bar.advance(n * k, *((m["loss"], m["diverged"]) if m is not None else ()))
    if all_diverged:
      break
  flush(pending)
  jax.block_until_ready(state)
  end = time.perf_counter()
  bar.finish()
  if bar is not progress:
    bar.close()
  if logger is not None:
    logger.close()
  ckpt.close()
  steps_timed = (done - timed_from) if timed_from is not None else 0
  step_seconds = (end - t_steady) / steps_timed if steps_timed > 0 else None
  spec = str(jax.tree.leaves(state.params)[0].sharding.spec)
  return GroupResult(summaries=summaries() if writer else [], compile_seconds=compile_seconds,
                     step_seconds=step_seconds, steps_run=done - start, state_sharding=spec,
                     variant_loop=prog.how, first_step_seconds=first_step_seconds,
                     unigram_entropy=entropy, train_step_compiles=len(compiled_sizes()),
                     device_counts=device_counts())
