"""Orbax checkpoints: save every k steps, keep N, resume from the newest VALID
step, and load anywhere for analysis.

Each checkpoint step directory holds two items (current orbax API,
`CheckpointManager` + `args.Composite`):

    <dir>/<step>/state   the train state pytree (StandardSave; each array in
                         chunks of one row of its leading, `variant`, axis)
    <dir>/<step>/meta    JSON: the run config(s), step, latest metrics

`load_row` reads one variant's rows of a group checkpoint through
tensorstore (the analysis path); `load` restores a whole checkpoint.

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

import json
import pathlib
import sys
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts
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
    """Saves asynchronously; each array is stored in chunks of one row of
    its leading axis (a group's `variant` axis), so `load_slice` reads one
    variant without touching the others."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state, save_args=jax.tree.map(_row_chunks, state)),
        meta=ocp.args.JsonSave(meta)), force=True)

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


def _row_chunks(x) -> ocp.SaveArgs:
  if getattr(x, "ndim", 0) == 0 or x.shape[0] == 0:
    return ocp.SaveArgs()
  return ocp.SaveArgs(chunk_byte_size=max(x.dtype.itemsize, x.nbytes // x.shape[0]),
                      shard_axes=(0,))


def _name(path) -> str:
  """Orbax's name of a leaf: its path's keys joined by '.'."""
  return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def _arrays(state_dir: pathlib.Path, context=None):
  """name -> the tensorstore of that array in a checkpoint step's `state`
  item (orbax's OCDBT layout, zarr or zarr3 as its metadata says)."""
  zarr3 = json.loads((state_dir / "_METADATA").read_text()).get("use_zarr3", False)
  kvstore = {"driver": "ocdbt", "base": f"file://{state_dir}"}
  return lambda name: ts.open({"driver": "zarr3" if zarr3 else "zarr", "path": name,
                               "kvstore": kvstore}, open=True, read=True,
                              context=context).result()


def load_slice(directory, step: int, index: int, target):
  """Row `index` of every array of the checkpoint at `step` (one variant of a
  stacked group state), as numpy arrays in `target`'s structure (an
  abstract stacked state). Reads only that row's chunks through
  tensorstore, so memory and time do not grow with the group's size."""
  state_dir = pathlib.Path(directory).absolute() / str(step) / "state"
  array = _arrays(state_dir, ts.Context({"cache_pool": {"total_bytes_limit": 0}}))
  # every read starts before the first is waited for
  pending = jax.tree_util.tree_map_with_path(
      lambda path, _: array(_name(path))[index].read(), target)
  return jax.tree.map(lambda f: f.result(), pending,
                      is_leaf=lambda x: isinstance(x, ts.Future))


def load_row(directory, index: int, step: int | None = None, target=None):
  """(step, state) of row `index` of a stacked checkpoint (one variant of a
  group), reading only that row (`load_slice`); `target(n_stacked)` gives
  the abstract stacked state. step=None: the newest. If the row cannot be
  read that way, the whole checkpoint is restored (`load`, which also falls
  back to earlier steps) and the row taken from it, with a warning."""
  steps = _saved_steps(directory, step)
  where = pathlib.Path(directory).absolute()
  if not steps:
    raise FileNotFoundError(f"no checkpoints in {where}")
  chosen = steps[-1]
  try:
    n = stacked_size(directory, chosen, target(1))
  except Exception as e:  # unreadable metadata: restore the whole step, or an earlier one
    return _whole_row(directory, step, index, target, where, chosen, e)
  _check_row(index, n, chosen, where)
  try:
    return chosen, load_slice(directory, chosen, index, target(n))
  except Exception as e:  # an unreadable row: restore the whole step, or an earlier one
    return _whole_row(directory, step, index, target, where, chosen, e)


def stacked_size(directory, step: int, target) -> int:
  """The leading (`variant`) size of checkpoint `step`'s arrays, read from
  its first array's metadata (`target`: the abstract state, any size)."""
  first = jax.tree_util.tree_leaves_with_path(target)[0][0]
  return _arrays(pathlib.Path(directory).absolute() / str(step) / "state")(_name(first)).shape[0]


def load_rows(directory, step: int, indices, target):
  """Rows `indices` of every array of checkpoint `step`, stacked in that
  order, as numpy arrays in `target`'s structure (an abstract stacked
  state): some variants of a group, each row read alone (`load_slice`).
  Only tensorstore reads, no orbax restore: a damaged step raises here, and
  no read is left to fail later in a closed event loop."""
  rows = {i: load_slice(directory, step, i, target) for i in dict.fromkeys(indices)}
  return jax.tree.map(lambda *xs: np.stack(xs), *[rows[i] for i in indices])


def _whole_row(directory, step, index, target, where, chosen, e):
  """`load_row`'s fallback: row `index` of the whole restored step."""
  warnings.warn(f"row {index} of checkpoint step {chosen} in {where} could not be "
                f"read alone ({type(e).__name__}: {str(e)[:200]}); restoring it whole",
                stacklevel=3)
  s, state, _ = load(directory, step, target=target)
  _check_row(index, jax.tree.leaves(state)[0].shape[0], s, where)
  return s, jax.tree.map(lambda x: x[index], state)


def _check_row(index: int, n: int, step: int, where) -> None:
  """IndexError for a row outside the stacked axis: a jax array would clamp
  the index and give another variant's row."""
  if not 0 <= index < n:
    raise IndexError(f"row {index} is outside checkpoint step {step} in {where}, which "
                     f"stacks {n} variant(s)")


def load_meta(directory, step: int) -> dict:
  """The `meta` item of checkpoint `step` (JSON: the configs of its stacked
  variants in order, the step, ...), without reading its arrays."""
  _saved_steps(directory, step)
  ckpt = Checkpointer(directory, keep=10**9)
  try:
    return ckpt.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
  finally:
    ckpt.close()


def saved_steps(directory) -> list[int]:
  """The saved steps of `directory`, oldest first ([] without one; the
  directory is never created)."""
  return _saved_steps(directory, None) if pathlib.Path(directory).is_dir() else []


def _saved_steps(directory, step: int | None) -> list[int]:
  """The saved steps of `directory` (just `step` when given), oldest first;
  FileNotFoundError for a missing directory or step."""
  if not pathlib.Path(directory).is_dir():   # checked first: the manager would create it
    raise FileNotFoundError(f"no checkpoint directory {pathlib.Path(directory).absolute()}")
  ckpt = Checkpointer(directory, keep=10**9)
  try:
    steps = ckpt.steps()
  finally:
    ckpt.close()
  if step is not None and step not in steps:
    raise FileNotFoundError(f"no checkpoint at step {step} in {ckpt.directory}; saved "
                            f"steps: {', '.join(map(str, steps)) or 'none'}")
  return steps if step is None else [step]


def load(directory, step: int | None = None, sharding=None, target=None):
  """(step, state, meta) for analysis, without the original train state.

  The abstract target comes from the checkpoint's own metadata (plain nested
  dicts), or, with `target(n_stacked) -> abstract pytree`, from the caller's
  structure (e.g. optax state objects) with the leading size read from disk.
  Every array is placed with `sharding` (default: the first local device), so
  a checkpoint written on 8 devices loads in a 1-device process. `step=None`
  is the newest step that restores.
  """
  steps = _saved_steps(directory, step)
  ckpt = Checkpointer(directory, keep=10**9)
  try:
    return _load_newest(ckpt, steps,
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
