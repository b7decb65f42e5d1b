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

Dead variants (docs/sweeps.md): `roster.Roster` decides who runs, is
frozen (diverged or pruned) or compacted away, and keeps the frozen
variants' eval losses; the loop asks it after each eval and executes its
answers (`_Programs`). A frozen variant's eval is reused (under `map`
its forward passes are skipped). At each of `train.prune_steps`, after its
eval, successive halving freezes the worse variants of each comparison
set. After an eval, a vmap group whose frozen share reached
`train.compact_frozen` continues as a smaller program of the live
variants; evals already read the device, and checkpoint cadence is the
user's choice for safety, not for compute. Checkpoints keep the whole
group's state, and their meta records the roster's decisions
(`Roster.to_json`), so a resumed run makes the same ones and writes the
same numbers.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import sys
import time

import jax
import numpy as np

from warmup_research import (
  branches,
  checkpoints,
  data,
  loggers,
  metrics_io,
  optimizers,
  train,
)
from warmup_research import config as config_lib
from warmup_research import program as program_lib
from warmup_research.errors import ConfigError
from warmup_research.program import GroupProgram
from warmup_research.progress import Progress
from warmup_research.roster import Roster

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


def steps_per_call(t_cfg, most: int = STEPS_PER_CALL) -> int:
  """The largest n <= `most` that divides `total_steps`,
  `eval_every`, `checkpoint_every`, every `checkpoint_steps` and a branch's
  `branch_at`, so every
  call ends on or before each eval, checkpoint and the last update, and a
  resumed run (from a checkpoint step) is cut into the same calls as an
  uninterrupted one."""
  g = math.gcd(t_cfg.total_steps, t_cfg.eval_every, t_cfg.checkpoint_every,
               *t_cfg.get("checkpoint_steps", ()), *t_cfg.get("prune_steps", ()),
               t_cfg.get("branch_at", 0))   # a branch starts there
  return max(n for n in range(1, most + 1) if g % n == 0)


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
  tokens_per_byte: float | None = None     # of the validation text: loss -> bits per byte
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
              log: loggers.Targets | None = None, skip_frozen: bool = True,
              max_steps_per_call: int = STEPS_PER_CALL,
              trunk: branches.Start | None = None) -> GroupResult:
  """Trains the variants `cfgs` (validated, one static signature) together.

  `progress`: the sweep's display (`desc` names this group in it), or
  whether to show one of this group's own. Every process of a multi-process
  run calls this; only process 0 writes metrics (the JSONL files, and the
  live loggers `log` names). `skip_frozen`: see `GroupProgram`;
  `max_steps_per_call`: the most updates per call (`steps_per_call`);
  `trunk`: where a group of cooldown branches starts when it has no
  checkpoint of its own (`branches.Start`).
  """
  t_entry = time.perf_counter()
  cfg0, k = cfgs[0], len(cfgs)
  t_cfg, total = cfg0.train, cfg0.train.total_steps
  writer = jax.process_index() == 0
  batches = batches or data.Batches(cfg0)
  entropy = batches.unigram_entropy
  per_byte = batches.tokens_per_byte
  progs = _Programs(cfgs, mesh, desc, skip_frozen)
  roster = Roster.of(cfgs, progs.base.how)
  extra = set(t_cfg.get("checkpoint_steps", ()))
  ckpt = checkpoints.Checkpointer(checkpoint_dir, keep=t_cfg.keep_checkpoints, preserve=extra)
  start, progs.state, meta = _resume(ckpt, progs.base.abstract_state, metrics_paths, cfgs,
                                     checkpoint_dir, writer, trunk)
  was_active = None   # the variants the checkpoint's run ran, if it was compacted then
  if meta is not None:
    was_active = roster.from_json(meta)
    progs.base.set_stops(roster.stops)
    progs.compiled_before = set(meta.get("compiled_sizes", ()))
  devices_before = set((meta or {}).get("device_counts", ()))   # earlier attempts'

  # Checkpoints are written at multiples of n (n divides checkpoint_every, and a
  # run that stops early on divergence stops at a call's end), so start is one
  # too; the gcd keeps calls on the boundaries even if a checkpoint is not.
  n = math.gcd(steps_per_call(t_cfg, max_steps_per_call), start)
  bar = progress if isinstance(progress, Progress) else Progress(
      [(desc, k, (total - start) * k)], enabled=bool(progress) and writer)
  bar.start(desc, max(0, total - start) * k)
  if start >= total:  # nothing left to run: report from the metrics files
    ckpt.close()
    _finish(bar, progress)
    return GroupResult(summaries=_summaries(metrics_paths, cfgs, entropy, per_byte),
                       compile_seconds=0.0, step_seconds=None, steps_run=0,
                       unigram_entropy=entropy, tokens_per_byte=per_byte,
                       train_step_compiles=0, device_counts=sorted(devices_before))
  eval_batches = [progs.base.put_batch(batches.eval(i)) for i in range(t_cfg.eval_batches)]
  if was_active is not None:
    progs.compact(roster, was_active, eval_batches)

  def put_call(t):   # the batches of updates t .. t + n - 1
    return progs.prog.train_batches(batches, t, n)

  ready = {start: put_call(start)}   # batches already put for a call (for a compile, too)
  compiling = in_background(progs.steps_for, ready[start])
  if progs.state is None:
    progs.state = progs.base.init(progs.base.keys, progs.base.hp)
  rows = _Rows((log or loggers.Targets()).logger(metrics_paths, cfgs, start) if writer else None,
               cfgs, roster)

  def evaluate(after):
    """Writes the eval rows after `after` updates; returns (variant -> eval
    loss, the running variants not frozen)."""
    losses, live = roster.evaluated(progs.eval_losses(eval_batches, roster.known_positions()),
                                    progs.frozen())
    rows.evals(after, losses)
    return losses, live

  def device_counts():
    return sorted(devices_before | {jax.device_count()})

  if start == 0:
    evaluate(0)
  steps_fn = compiling.result()
  pending, timed_from, t_steady = None, None, None
  fence = None   # metrics of the last call the loop will wait for
  done = start
  for call, t in enumerate(range(start, total, n)):
    progs.state, metrics = steps_fn(progs.state, ready.pop(t) if t in ready else put_call(t),
                                    progs.prog.hp)
    if call % SYNC_EVERY == 0:
      if fence is not None:
        jax.block_until_ready(fence)
      fence = metrics
    m = rows.train(pending)   # read the previous call's metrics only after this one is dispatched
    logged = [s for s in range(t, t + n) if s % t_cfg.log_every == 0 or s == total - 1]
    pending = (t, logged, metrics, list(roster.active)) if logged else None
    done = t + n
    all_diverged = m is not None and bool(np.all(m["diverged"]))
    if call == 0:   # steady-state timing starts after the first call (its first run is slower)
      jax.block_until_ready(progs.state)
      timed_from, t_steady = done, time.perf_counter()
      first_step_seconds = t_steady - t_entry
    finished = done == total or all_diverged
    keep = None
    if done % t_cfg.eval_every == 0 or finished:
      rows.train(pending)
      pending = None
      losses, live = evaluate(done)   # one read of who is frozen, kept up to date below
      if not finished:
        pruned, live = roster.prune(done, losses, live)
        if pruned:
          progs.set_stops(roster)
          rows.pruned(done, pruned)
        if keep := roster.compaction(live):
          progs.compact(roster, keep, eval_batches)
    if done % t_cfg.checkpoint_every == 0 or done in extra or finished:
      rows.train(pending)
      pending = None
      rows.flush()
      ckpt.save(done, progs.whole_state(roster.active), dict(
          step=done, finished=finished, **roster.to_json(),
          compiled_sizes=progs.compiled_sizes(), device_counts=device_counts(),
          configs=[c.to_dict() for c in cfgs]))
    if keep:   # the next call's batches, for the new shape
      ready[done] = put_call(done)
      steps_fn = progs.steps_for(ready[done])
    bar.advance(n * k, *((m["loss"], m["diverged"]) if m is not None else ()))
    if all_diverged:
      break
  rows.train(pending)
  jax.block_until_ready(progs.state)
  end = time.perf_counter()
  _finish(bar, progress)
  rows.close()
  ckpt.close()
  steps_timed = (done - timed_from) if timed_from is not None else 0
  step_seconds = (end - t_steady) / steps_timed if steps_timed > 0 else None
  spec = str(jax.tree.leaves(progs.state.params)[0].sharding.spec)
  return GroupResult(summaries=_summaries(metrics_paths, cfgs, entropy, per_byte)
                     if writer else [], tokens_per_byte=per_byte,
                     compile_seconds=progs.compile_seconds, step_seconds=step_seconds,
                     steps_run=done - start, state_sharding=spec, variant_loop=progs.prog.how,
                     first_step_seconds=first_step_seconds, unigram_entropy=entropy,
                     train_step_compiles=len(progs.compiled_sizes()),
                     device_counts=device_counts())


def _resume(ckpt, abstract_state, metrics_paths, cfgs, checkpoint_dir, writer, trunk):
  """(first update to run, the restored state or None, the checkpoint's meta
  or None): the newest valid checkpoint, with each metrics file cut back to
  it (process 0); or none: a branch's trunk at its branch point (`trunk`),
  or update 0 with the files emptied."""
  t_cfg = cfgs[0].train
  restored = ckpt.restore_latest(abstract_state)
  if restored is None and trunk is not None:
    state = trunk.state(abstract_state)
    if writer:
      trunk.write_metrics(cfgs, metrics_paths)
    return trunk.step, state, None
  if restored is None:
    if writer:
      for p in metrics_paths:
        metrics_io.write(p, [])
    return 0, None, None
  start, state, meta = restored
  try:
    for p in metrics_paths:
      metrics_io.check_covers(p, start, t_cfg, metrics_io.restart_remedy(checkpoint_dir))
  except ConfigError:
    ckpt.close()
    raise
  if meta.get("finished"):
    start = t_cfg.total_steps
  if writer:
    for p in metrics_paths:
      metrics_io.truncate(p, start)
  return start, state, meta


def _summaries(metrics_paths, cfgs, entropy, tokens_per_byte=None) -> list[dict]:
  """One summary per variant, from its metrics file."""
  return [metrics_io.summarize(metrics_io.read(p), entropy, stall_margin=c.train.stall_margin,
                               total_steps=c.train.total_steps,
                               tokens_per_byte=tokens_per_byte,
                               warmup_end=config_lib.durations(c)[0])
          for p, c in zip(metrics_paths, cfgs)]


def _finish(bar: Progress, progress) -> None:
  """Ends this group on the display, and closes the display if it is its own."""
  bar.finish()
  if bar is not progress:
    bar.close()


class _Programs:
  """What runs a group: the group's own program (`base`, all K variants),
  or after a compaction one of the roster's `active` variants (`prog`), and
  its `state`; while compacted, the whole K state is kept in `full` (the
  frozen rows as they froze). The compiled train programs, once per shape."""

  def __init__(self, cfgs, mesh, desc: str, skip_frozen: bool):
    self.cfgs, self.mesh, self.desc = cfgs, mesh, desc
    self.base = self.prog = GroupProgram(cfgs, mesh, skip_frozen=skip_frozen)
    self.state = None   # the running program's
    self.full = None    # while compacted: the whole K state
    self.executables: dict[tuple, object] = {}   # compiled `steps`, by `shape_key`
    self.compiled_before: set[int] = set()   # sizes earlier attempts compiled (checkpoint)
    self.compile_seconds = 0.0

  def whole_state(self, active: list[int]):
    """The whole K state (compacted: the running variants `active` written back into it)."""
    if self.full is not None:
      self.full = program_lib.put_rows(self.full, self.state, active)
      return self.full
    return self.state

  def compact(self, roster: Roster, keep: list[int], eval_batches) -> None:
    """Runs only the variants `keep` from here on: their states gathered into
    a program for len(keep) variants (compiled once per size). The others
    are frozen, with their eval losses known to the roster."""
    whole = self.whole_state(roster.active)
    if missing := roster.unknown_evals(keep):
      losses = self.base.eval_losses(whole, eval_batches)
      roster.know({i: float(losses[i]) for i in missing})
    roster.compact(keep)
    self.full = whole
    self.prog = GroupProgram([self.cfgs[i] for i in keep], self.mesh, self.base.how,
                             skip_frozen=self.base.skip_frozen)
    self.prog.set_stops(roster.active_stops())
    self.state = self.prog.take(whole, keep)
    k = len(self.cfgs)
    print(f"[loop] {self.desc}: {k - len(keep)} of {k} variants frozen; compacted to "
          f"{len(keep)} (vmap over {self.prog.k_pad})", file=sys.stderr)

  def set_stops(self, roster: Roster) -> None:
    """The roster's `stops` into every program's `hp.stop_step`."""
    self.base.set_stops(roster.stops)
    if self.prog is not self.base:
      self.prog.set_stops(roster.active_stops())

  def eval_losses(self, eval_batches, known) -> np.ndarray:
    """The running program's eval losses (NaN at the positions `known`, where skipped)."""
    return self.prog.eval_losses(self.state, eval_batches, known)

  def frozen(self) -> np.ndarray:
    """Whether each running variant is frozen (diverged or pruned)."""
    return np.asarray(jax.device_get(self.prog.frozen(self.state, self.prog.hp)))[:self.prog.k]

  def steps_for(self, batches_NxBxL1):
    """`prog.steps` compiled ahead of time, once per shape (`shape_key`)."""
    key = self.prog.shape_key()
    if key not in self.executables:
      self.executables[key], seconds = self.prog.compile_steps(batches_NxBxL1)
      self.compile_seconds += seconds
    return self.executables[key]

  def compiled_sizes(self) -> list[int]:
    """The train programs' sizes compiled over every attempt."""
    return sorted(self.compiled_before | {key[0] for key in self.executables})


class _Rows:
  """The metrics rows of a group's K variants, through `logger` (process 0;
  None elsewhere: nothing is written, but train metrics are still read)."""

  def __init__(self, logger: loggers.Logger | None, cfgs, roster: Roster):
    self.logger, self.cfgs, self.roster = logger, cfgs, roster
    self.curves: dict[int, dict] = {}   # a compacted-out variant's schedules, for its rows
    self.keys = metrics_io.TRAIN_KEYS     # a train row's keys, as the step returns them
    # The step returns every schedulable hyperparameter; a run's rows hold only those its
    # config varies, so the files of runs without such schedules are as they were.
    self.unlogged = [set(optimizers.SCHEDULED) - set(config_lib.scheduled(c)) for c in cfgs]

  def write(self, rows_per_variant) -> None:
    if self.logger is not None:
      self.logger.write(rows_per_variant)

  def evals(self, step: int, losses: dict[int, float]) -> None:
    self.write([dict(step=step, eval_loss=losses[i]) for i in range(len(self.cfgs))])

  def pruned(self, step: int, pruned: list[int]) -> None:
    self.write([{"step": step, "pruned": 1.0} if i in pruned else None
                for i in range(len(self.cfgs))])

  def train(self, pending):
    """Writes the logged rows of a call (t, logged steps, its metrics, the
    variants it ran); returns its last logged step's metrics."""
    if pending is None:
      return None
    t, logged, m, ran = pending
    m = jax.device_get(m)
    if self.logger is not None:
      self.keys = metrics_io.row_keys(m)
      for s in logged:
        rows = {i: {"step": s, **{key: float(m[key][s - t][j]) for key in self.keys
                                  if key not in self.unlogged[i]}}
                for j, i in enumerate(ran)}
        self.write([rows.get(i) or self._frozen_row(i, s) for i in range(len(self.cfgs))])
    return {key: m[key][logged[-1] - t][:len(ran)] for key in ("loss", "diverged")}

  def _frozen_row(self, i: int, s: int) -> dict:
    """A compacted-out variant's row, as `program.frozen_result` writes a skipped one's."""
    if i not in self.curves:
      self.curves[i] = train.logged_values(self.cfgs[i], self.cfgs[i].train.total_steps)
    skip = self.unlogged[i]
    return {"step": s, **{key: math.nan for key in self.keys if key not in skip},
            **{key: float(v[s]) for key, v in self.curves[i].items() if key not in skip},
            "diverged": float(not self.roster.pruned(i))}

  def flush(self) -> None:
    if self.logger is not None:
      self.logger.flush()

  def close(self) -> None:
    if self.logger is not None:
      self.logger.close()
