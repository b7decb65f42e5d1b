"""The compiled program of one compile group: K variants stacked on a
leading `variant` axis, sharded over the mesh, one batch for all.

`over_variants` turns a function of ONE variant (`train.Trainer`'s steps)
into one over the stacked variants, by `vmap` (batched: accelerators) or
`map` (one after another: CPU; see `mesh.variant_loop`). `GroupProgram`
jits those functions with their shardings and holds the stacked inputs.

Data: a group's variants may train on several data streams (one per data
seed: seeds are whole replicates). Each train call then gets the batches of
every stream, `[S, B, L1]` per step, and each variant picks its own by
`hp.data_index` (traced, like every other per-variant number). With one
stream the batch is shared and `[B, L1]`.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from warmup_research import data, optimizers, schedules, train
from warmup_research import mesh as mesh_lib


def is_frozen(state, hp):
  """A variant that diverged, or was pruned (frozen from `hp.stop_step`)."""
  return (state.diverged_step >= 0) | (state.step >= hp.stop_step)


def frozen_result(state, batch, hp):
  """The `skip` of a train step (see `over_variants`): whether the variant
  is frozen (diverged or pruned), and what its skipped update returns. Its
  state just counts the update; its metrics row has NaN for every computed
  number (`diverged` as it is). The predicate is per variant and the same
  on every `data` shard, so every shard computes the same variants and
  their gradient all-reduces match."""
  del batch
  # derived from the state, so they vary over `variant` like the step's own outputs
  nan = state.step.astype(jnp.float32) * jnp.nan
  sizes = {k: nan for k in train.update_sizes(state.params, state.params)}  # the same keys
  return is_frozen(state, hp), (state.replace(step=state.step + 1), dict(
      loss=nan, z_loss=nan, lr=schedules.schedule(state.step, hp.schedule).astype(jnp.float32),
      grad_norm=nan, update_norm=nan, param_norm=nan,
      diverged=(state.diverged_step >= 0).astype(jnp.int32),
      **optimizers.values_at(hp.opt, state.step), **sizes))


def known_result(state_known, batch, hp):
  """The `skip` of an eval called as fn((state, known), batch, hp): a
  variant whose loss the caller already has (`known`: frozen since its last
  eval, so its params have not changed) gets NaN."""
  del batch, hp
  known = state_known[1]
  return known, known.astype(jnp.float32) * jnp.nan


def over_variants(fn, mesh, how: str, skip=None):
  """fn(x, batch, hp) of ONE variant -> the same over stacked x and hp.

  'vmap': `jax.vmap`. 'map': a `shard_map` manual over the `variant` axis
  only (the `data` axis stays automatic, so XLA still inserts the gradient
  all-reduce), running each device's variants in turn. Both give the same
  numbers (tested). A device with one variant (every `train` run) calls
  `fn` directly: the same step without a one-trip loop, which lowers faster.

  `skip(x, batch, hp)` -> (skipped, result) of one variant: under map, the
  variants it skips are not computed and get its result (see `_unskipped`);
  under vmap every lane is computed whatever it says, so it is not used.
  """
  if how == "vmap":
    return jax.vmap(fn, in_axes=(0, None, 0))

  def local(x, batch, hp):
    if jax.tree.leaves(hp)[0].shape[0] == 1:   # static: this device's variant count
      first = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
      x, hp = first(x), first(hp)
      if skip is None:
        out = fn(x, batch, hp)
      else:
        skipped, result = skip(x, batch, hp)
        out = jax.lax.cond(skipped, lambda: result, lambda: fn(x, batch, hp))
      return jax.tree.map(lambda a: a[None], out)
    if skip is None:
      return jax.lax.map(lambda x_hp: fn(x_hp[0], batch, x_hp[1]), (x, hp))
    return _unskipped(fn, skip, x, batch, hp)

  return jax.shard_map(local, mesh=mesh, in_specs=(P("variant"), P(), P("variant")),
                       out_specs=P("variant"), axis_names={"variant"})


def _unskipped(fn, skip, x_K, batch, hp_K):
  """fn over a device's K stacked variants, computing only those `skip`
  does not skip: a loop of as many trips as there are such variants, each
  writing its result in place; the skipped keep `skip`'s result. A live
  variant costs what it does under `lax.map`, where a `lax.cond` around it
  added a tenth; a skipped one, its share of the carry's one copy (~7% of
  an update at benchmarks/dead_variants' size; NOTES attempt 51)."""
  skipped_K, out_K = jax.vmap(skip, in_axes=(0, None, 0))(x_K, batch, hp_K)
  k = skipped_K.shape[0]
  (todo,) = jnp.nonzero(~skipped_K, size=k, fill_value=0)   # in order, then padding

  def one(i, out_K):
    v = todo[i]
    at = lambda tree: jax.tree.map(  # noqa: E731
        lambda a: jax.lax.dynamic_index_in_dim(a, v, keepdims=False), tree)
    return jax.tree.map(lambda o, r: jax.lax.dynamic_update_index_in_dim(o, r, v, 0),
                        out_K, fn(at(x_K), batch, at(hp_K)))

  return jax.lax.fori_loop(0, k - jnp.sum(skipped_K), one, out_K)


class GroupProgram:
  """The jitted, sharded functions and stacked inputs of one compile group.

  The K variants are padded to a multiple of the mesh's `variant` axis (pads
  repeat the last variant; their results are dropped) and sharded over it;
  each batch is sharded over `data`. Metrics and eval losses come back
  replicated, so every process can read them. `how` (see
  `mesh.variant_loop`) picks vmap or map over a device's variants. Under
  map, `skip_frozen` skips frozen variants' updates and the evals whose loss
  is known (`frozen_result`, `known_result`); off, they are computed (and
  the update masked) as under vmap (the benchmarks compare the two).

  `step(state, batch_BxL1, hp)` runs one update; `steps(state,
  batches_NxBxL1, hp)` runs N in order (a `lax.scan` of the same step) and
  returns the metrics of each, stacked on a leading N axis.
  """

  def __init__(self, cfgs, mesh, how: str | None = None, skip_frozen: bool = True):
    trainer = train.Trainer(cfgs[0])
    self.skip_frozen = skip_frozen
    # a mesh given by the caller, not picked for this batch, may not split it
    mesh_lib.check_batch_split(cfgs[0].data.batch_size, mesh.shape["data"],
                               cfgs[0].train.grad_accum)
    self.per_variant, self.batch_sharding, replicated = mesh_lib.shardings(mesh)
    self.how = how or mesh_lib.variant_loop(cfgs[0])
    self.k = len(cfgs)
    self.k_pad = k_pad = -(-self.k // mesh.shape["variant"]) * mesh.shape["variant"]
    padded = list(cfgs) + [cfgs[-1]] * (k_pad - self.k)
    self.data_seeds = list(dict.fromkeys(data.data_seed(c) for c in cfgs))
    hps = [train.hparams(c).replace(
        data_index=np.int32(self.data_seeds.index(data.data_seed(c)))) for c in padded]
    self.hp = mesh_lib.to_global(jax.tree.map(lambda *x: np.stack(x), *hps), self.per_variant)
    self.keys = mesh_lib.to_global(
        np.stack([np.asarray(jax.random.key_data(jax.random.key(c.seed))) for c in padded]),
        self.per_variant)

    def init(key_data, hp):
      return trainer.init(jax.random.wrap_key_data(key_data), hp)

    def train_own_stream(state, batches_SxBxL1, hp):
      return trainer.train_step(state, batches_SxBxL1[hp.data_index], hp)

    self.init = jax.jit(jax.vmap(init), out_shardings=self.per_variant)
    streams = len(self.data_seeds)
    step_fn = trainer.train_step if streams == 1 else train_own_stream
    one = over_variants(step_fn, mesh, self.how, skip=frozen_result if skip_frozen else None)
    self.step = jax.jit(one, out_shardings=(self.per_variant, replicated), donate_argnums=0)
    self.steps = jax.jit(
        lambda x, batches, hp: jax.lax.scan(lambda x, batch: one(x, batch, hp), x, batches),
        out_shardings=(self.per_variant, replicated), donate_argnums=0)
    # one step's batch(es), and a call's: the data axis is the batch's
    self.step_sharding = NamedSharding(mesh, P(*[None] * (streams > 1), "data"))
    self.batches_sharding = NamedSharding(mesh, P(None, *[None] * (streams > 1), "data"))
    # x = (state, known): the state, as schedule-free AdamW is evaluated at a
    # point its optimizer state holds (`Trainer.eval_params`)
    eval_fn = lambda x, batch, hp: trainer.eval_step(  # noqa: E731
        trainer.eval_params(x[0]), batch, hp)
    self.eval = jax.jit(over_variants(eval_fn, mesh, self.how,
                                      skip=known_result if skip_frozen else None),
                        out_shardings=replicated)
    # per variant: frozen (diverged or pruned) or not, readable by every process
    self.frozen = jax.jit(is_frozen, out_shardings=replicated)

  def eval_losses(self, state, eval_batches, known=()) -> np.ndarray:
    """[K] mean eval loss of each variant of the stacked `state` over
    `eval_batches` (put by `put_batch`), at `Trainer.eval_params`. Under
    `map`, the variants (indices) in `known` are skipped and get NaN: the
    caller has their losses (see `known_result`)."""
    mask = self.known_mask(known)
    return np.mean([np.asarray(self.eval((state, mask), b, self.hp)) for b in eval_batches],
                   axis=0)[:self.k]

  def known_mask(self, known=()):
    """`eval`'s per-variant bool input: True for the variants in `known`."""
    mask = np.zeros(self.k_pad, bool)
    mask[list(known)] = True
    return mesh_lib.to_global(mask, self.per_variant)

  def set_stops(self, stops: list[int]) -> None:
    """Each variant's `hp.stop_step` (pruned from that update on; pads copy
    the last variant's)."""
    stops = list(stops) + [stops[-1]] * (self.k_pad - len(stops))
    self.hp = self.hp.replace(stop_step=mesh_lib.to_global(np.asarray(stops, np.int32),
                                                           self.per_variant))

  def shape_key(self) -> tuple:
    """What the compiled `steps` depends on besides the config's statics:
    programs of equal keys share one executable (hp and keys are inputs)."""
    return self.k_pad, len(self.data_seeds)

  def take(self, state, rows: list[int]):
    """The variants `rows` of a stacked state (of any program of this
    group), padded and sharded as this program's state."""
    idx = np.asarray(list(rows) + [rows[-1]] * (self.k_pad - len(rows)), np.int32)
    return jax.jit(_take, out_shardings=self.per_variant)(state, idx)

  @functools.cached_property
  def abstract_state(self):
    """Shapes, dtypes and shardings of the stacked state (no compute)."""
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.per_variant,
                                       weak_type=a.weak_type),
        jax.eval_shape(self.init, self.keys, self.hp))

  def compile_steps(self, batches_NxBxL1):
    """(`steps` compiled ahead of time for batches of this shape, seconds).
    Needs no state, so the loop runs it in a background thread."""
    t0 = time.perf_counter()
    compiled = self.steps.lower(self.abstract_state, batches_NxBxL1, self.hp).compile()
    return compiled, time.perf_counter() - t0

  def put_batch(self, batch_BxL1):
    """An eval batch (the same for every variant)."""
    return mesh_lib.to_global(batch_BxL1, self.batch_sharding)

  def put_batches(self, batches_NxBxL1):
    """A call's train batches, [N, B, L1] (one stream) or [N, S, B, L1]."""
    return mesh_lib.to_global(batches_NxBxL1, self.batches_sharding)

  def train_batches(self, batches: data.Batches, first: int, n: int):
    """The train batches of updates first .. first + n - 1, on the devices."""
    per_seed = [batches.train_steps(first, n, seed) for seed in self.data_seeds]
    return self.put_batches(per_seed[0] if len(per_seed) == 1 else np.stack(per_seed, axis=1))

  def train_batch(self, batches: data.Batches, t: int):
    """The train batch(es) of update t, for `step`."""
    per_seed = [batches.train(t, seed) for seed in self.data_seeds]
    host = per_seed[0] if len(per_seed) == 1 else np.stack(per_seed)
    return mesh_lib.to_global(host, self.step_sharding)


def _take(state, idx):
  return jax.tree.map(lambda a: a[idx], state)


def _put(full, part, idx):
  return jax.tree.map(lambda a, b: a.at[idx].set(b[:idx.shape[0]]), full, part)


def put_rows(full, part, rows: list[int]):
  """`full` (a group's whole stacked state) with its variants `rows` replaced
  by the first len(rows) variants of `part` (a compacted program's state)."""
  sharding = jax.tree.map(lambda a: a.sharding, full)
  return jax.jit(_put, out_shardings=sharding, donate_argnums=0)(
      full, part, np.asarray(rows, np.int32))
