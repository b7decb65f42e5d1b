"""Orbax checkpoints: save every k steps, keep N, resume from the newest VALID
step, and load anywhere for analysis.

Each checkpoint step directory holds two items (current orbax API,
`CheckpointManager` + `args.Composite`):

    <dir>/<step>/state   the train state pytree (StandardSave)
    <dir>/<step>/meta    JSON: the run config(s), step, latest metrics

Saves are asynchronous and atomic (orbax writes a tmp dir and renames it); a
save killed part-way leaves a `*.orbax-checkpoint-tmp` dir that orbax ignores.
A finished step whose files were damaged later is NOT skipped by orbax:
`restore_latest` (and `load`) try steps newest first and fall back, with a
warning; `restore_latest` (resuming a run) then moves the damaged steps to
`<dir>.damaged/`, so the resumed run can save those steps again. After such
a failure Python may later print "Exception ignored in: None ...
RuntimeError: Event loop is closed": the step's other array reads
(tensorstore) finished after orbax had closed the event loop awaiting them.
It is harmless; the fallback has already happened.
"""
from __future__ import annotations

import pathlib
import sys
import warnings

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


class Checkpointer:

  def __init__(self, directory, *, keep: int, preserve=()):
    """Keeps the newest `keep` steps, and every step in `preserve` for good."""
    self.directory = pathlib.Path(directory).absolute()
    policy = ocp.checkpoint_managers.LatestN(n=keep)
    if preserve:
      policy = ocp.checkpoint_managers.AnyPreservationPolicy(
          [policy, ocp.checkpoint_managers.CustomSteps(sorted(preserve))])
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(preservation_policy=policy,
                                                             create=True),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def save(self, step: int, state, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def restore(self, step: int, abstract_state):
    """(state, meta) of `step`, shaped and sharded like `abstract_state`."""
    r = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return r.state, r.meta

  def restore_latest(self, abstract_state):
    """(step, state, meta) of the newest step that restores, or None if none.

    The damaged steps it passed over are set aside (`set_aside`): the run
    resumed from an earlier step will save those steps again, and orbax
    refuses to save a step that exists."""
    damaged = []
    for step in reversed(self.steps()):
      try:
        state, meta = self.restore(step, abstract_state)
        self.set_aside(damaged)
        return step, state, meta
      except Exception as e:  # damaged files: fall back to the previous step
        msg = (f"checkpoint step {step} in {self.directory} could not be restored "
               f"({type(e).__name__}: {str(e)[:200]}); falling back to an earlier step")
        warnings.warn(msg, stacklevel=2)
        print(f"[checkpoints] warning: {msg}", file=sys.stderr)
        damaged.append(step)
    self.set_aside(damaged)
    return None

  def set_aside(self, steps: list[int]) -> None:
    """Moves damaged `steps` out of orbax's directory, to `<directory>.damaged/
    <step>[.N]` (kept for inspection, never deleted); process 0 moves them,
    the others wait."""
    if not steps:
      return
    aside = self.directory.parent / f"{self.directory.name}.damaged"
    if jax.process_index() == 0:
      aside.mkdir(exist_ok=True)
      for step in steps:
        dest, n = aside / str(step), 0
        while dest.exists():
          n += 1
          dest = aside / f"{step}.{n}"
        (self.directory / str(step)).rename(dest)
        print(f"[checkpoints] moved the damaged step {step} to {dest}", file=sys.stderr)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"checkpoints: set aside {self.directory}")
    self.manager.reload()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def load(directory, step: int | None = None, sharding=None, target=None):
  """(step, state, meta) for analysis, without the original train state.

  The abstract target comes from the checkpoint's own metadata (plain nested
  dicts), or, with `target(n_stacked) -> abstract pytree`, from the caller's
  structure (e.g. optax state objects) with the leading size read from disk.
  Every array is placed with `sharding` (default: the first local device), so
  a checkpoint written on 8 devices loads in a 1-device process. `step=None`
  is the newest step that restores.
  """
  if not pathlib.Path(directory).is_dir():   # checked first: the manager would create it
    raise FileNotFoundError(f"no checkpoint directory {pathlib.Path(directory).absolute()}")
  ckpt = Checkpointer(directory, keep=10**9)
  try:
    if step is not None and step not in ckpt.steps():
      raise FileNotFoundError(f"no checkpoint at step {step} in {ckpt.directory}; saved "
                              f"steps: {', '.join(map(str, ckpt.steps())) or 'none'}")
    return _load_newest(ckpt, ckpt.steps() if step is None else [step],
                        sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0]),
                        target)
  finally:
    ckpt.close()


def _load_newest(ckpt: Checkpointer, steps: list[int], sharding, target):
  """`load`'s fallback loop: the newest of `steps` that restores."""
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {ckpt.directory}")
  is_leaf = lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
  errors = []
  for s in reversed(steps):
    try:
      tree = ckpt.manager.item_metadata(s)["state"].tree
      if target is not None:
        tree = target(jax.tree.leaves(tree, is_leaf=is_leaf)[0].shape[0])
      abstract = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), tree,
          is_leaf=is_leaf)
      state, meta = ckpt.restore(s, abstract)
      return s, state, meta
    except Exception as e:
      errors.append(f"step {s}: {type(e).__name__}: {str(e)[:200]}")
      warnings.warn(f"checkpoint {errors[-1]}; trying an earlier step", stacklevel=2)
  raise ValueError(f"no restorable checkpoint in {ckpt.directory}: " + "; ".join(errors))
