"""Train state and the pure step functions of ONE variant.

`Trainer(cfg)` holds what is static (model graph, optimizer family); its
`init(key, hp)`, `train_step(state, batch, hp)` and `eval_step(params, batch,
hp)` (evaluations pass it `eval_params(state)`: the params, or schedule-free
AdamW's average) are pure functions of arrays, jitted once and vmapped over a leading
`variant` axis by `warmup_research.loop`. `hp` (an `HParams` of float32/int32
arrays) is never static: changing any schedule or optimizer number, schedule
shape, or seed reuses the compiled program.

Gradient accumulation (`train.grad_accum` k, static): a step's batch is k
microbatches, their gradients summed in a `lax.scan` and divided by k, so
one microbatch's activations are alive at a time; loss, gradient and
metrics are the whole batch's, up to the order of the sums. With k = 1 the
step is the plain one, unchanged.

Divergence: a step whose loss is non-finite or above `hp.divergence_bound`
is not applied, and the variant stays frozen from then on (`diverged_step`
records the update index). A variant pruned by successive halving is frozen
the same way from update `hp.stop_step` on, without counting as diverged.
Frozen variants never NaN the others, and the others' numbers are unchanged
by them (what they still cost: `program.over_variants`, `loop.py`).
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from warmup_research import config as config_lib
from warmup_research import model as model_lib
from warmup_research import optimizers, schedules
from warmup_research.errors import ConfigError
from warmup_research.model import ModelConfig, TransformerLM


@flax.struct.dataclass
class HParams:
  schedule: schedules.ScheduleHParams
  opt: optimizers.OptHParams
  z_loss: jax.Array
  divergence_bound: jax.Array
  data_index: jax.Array      # int32: which of a group's data streams this variant trains on
  stop_step: jax.Array       # int32: frozen from this update on (pruned; see loop.py)


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # int32: updates done so far
  params: Any                # nested dict of float32 arrays
  opt_state: Any
  diverged_step: jax.Array   # int32: the update that diverged, or -1


def hparams(cfg) -> HParams:
  """The traced numbers of a (validated) run config."""
  s, o = cfg.schedule, cfg.optimizer
  warmup, cooldown = config_lib.durations(cfg)
  return HParams(
      schedule=schedules.make_hparams(
          peak_lr=o.peak_lr, total_steps=cfg.train.total_steps, warmup_steps=warmup,
          warmup_shape=s.warmup_shape, warmup_init_frac=s.warmup_init_frac,
          warmup_exp_start=s.warmup_exp_start, warmup_power=s.warmup_power,
          decay_shape=s.decay_shape, final_frac=s.final_frac,
          rsqrt_timescale=s.rsqrt_timescale, cooldown_steps=cooldown,
          cooldown_shape=s.cooldown_shape),
      opt=optimizers.make_hparams(b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                                  momentum=o.momentum, clip_norm=o.clip_norm,
                                  lr_mults=[o[f"lr_mult_{g}"] for g in model_lib.LR_GROUPS],
                                  ramps=config_lib.ramps(cfg), total_steps=cfg.train.total_steps,
                                  weight_decay_tied=o.weight_decay_tied),
      z_loss=jnp.asarray(cfg.model.z_loss, jnp.float32),
      divergence_bound=jnp.asarray(cfg.train.divergence_bound, jnp.float32),
      data_index=jnp.zeros((), jnp.int32), stop_step=jnp.asarray(NEVER, jnp.int32))


NEVER = 2**31 - 1   # the stop_step of a variant that is never pruned



def logged_values(cfg, n: int) -> dict[str, np.ndarray]:
  """The LR and every scheduled hyperparameter at updates 0 .. n - 1, in
  float32 as a train row logs them (for rows a step did not write: a
  compacted-out variant's, a branch's copied from its trunk)."""
  hp, steps = hparams(cfg), np.arange(n)
  return {"lr": np.asarray(schedules.schedule(steps, hp.schedule), np.float32),
          **{k: np.asarray(v, np.float32) for k, v in optimizers.values_at(hp.opt, steps).items()}}


def cross_entropy(logits_BxLxV, targets_BxL, z_loss):
  """Mean next-token CE, and z-loss = z_loss * mean(logsumexp(logits)^2)."""
  log_z_BxL = jax.nn.logsumexp(logits_BxLxV, axis=-1)
  target_logit_BxL = jnp.take_along_axis(logits_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]
  ce = jnp.mean(log_z_BxL - target_logit_BxL)
  return ce, z_loss * jnp.mean(log_z_BxL ** 2)


def _blocks(tree) -> dict:
  """The params' (or updates') groups that update sizes are summarised
  over: each transformer block ('blocks.i'), and each other top-level
  entry (embeddings, positions, the final norm)."""
  out = {}
  for name, sub in tree.items():
    if name == "blocks":
      out.update({f"blocks.{i}": b for i, b in sub.items()})
    else:
      out[name] = sub
  return out


def _angle(w, u):
  """The angle (radians) between W and W + U, from U's part orthogonal to
  W: atan2(|U_perp|, |W| + U.W/|W|), exact where arccos of the cosine
  rounds to 0 (a float32 cosine cannot resolve angles below about 3e-4)."""
  w, u = w.astype(jnp.float32), u.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(w * w))
  along = jnp.sum(u * w) / jnp.maximum(norm, 1e-30)
  perp = u - along * w / jnp.maximum(norm, 1e-30)
  return jnp.arctan2(jnp.sqrt(jnp.sum(perp * perp)), norm + along)


def update_sizes(params, updates) -> dict:
  """Per block (`_blocks`): 'update_ratio/B', ||U|| / ||W|| over all its
  parameters, and, where it holds weight matrices (ndim >= 2),
  'angle/B', the mean over them of each matrix's angular update
  (`_angle`, radians; Kosson et al. 2024's measure of the rotation an
  update makes). U is the update the optimizer returned for params W."""
  out = {}
  for name, (w, u) in ((n, (_blocks(params)[n], b)) for n, b in _blocks(updates).items()):
    out[f"update_ratio/{name}"] = optax.tree.norm(u) / optax.tree.norm(w)
    angles = [_angle(a, b) for a, b in zip(jax.tree.leaves(w), jax.tree.leaves(u)) if a.ndim >= 2]
    if angles:
      out[f"angle/{name}"] = jnp.mean(jnp.stack(angles))
  return out


class Trainer:
  """The static half of a run: model graph and optimizer family."""

  def __init__(self, cfg):
    self.model_cfg = ModelConfig.from_config(cfg)
    if self.model_cfg.attention == "cudnn" and jax.default_backend() != "gpu":
      raise ConfigError("config.model.attention", "'cudnn' needs a GPU, this process has "
                        f"{jax.default_backend()}; allowed here: 'einsum', 'xla'")
    self.graphdef = nnx.graphdef(nnx.eval_shape(
        lambda: TransformerLM(self.model_cfg, rngs=nnx.Rngs(0))))
    self.opt_name = cfg.optimizer.name
    self.nesterov = cfg.optimizer.nesterov
    self.grad_accum = cfg.train.grad_accum

  def optimizer(self, hp: HParams) -> optax.GradientTransformation:
    return optimizers.make(self.opt_name, nesterov=self.nesterov, hp=hp.opt,
                           learning_rate=lambda count: schedules.schedule(count, hp.schedule),
                           matrix_axes=model_lib.hidden_matrix_axes,
                           lr_group=model_lib.lr_group)

  def eval_params(self, state: TrainState):
    """The params evaluations see (schedule-free AdamW: its average x)."""
    return optimizers.eval_params(self.opt_name, state.params, state.opt_state)

  def apply(self, params, tokens_BxL):
    return nnx.merge(self.graphdef, params)(tokens_BxL)

  def init(self, key, hp: HParams) -> TrainState:
    params = nnx.to_pure_dict(nnx.state(TransformerLM(self.model_cfg, rngs=nnx.Rngs(key))))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.optimizer(hp).init(params),
                      diverged_step=jnp.full((), -1, jnp.int32))

  def loss_fn(self, params, batch_BxL1, hp: HParams):
    logits = self.apply(params, batch_BxL1[:, :-1])
    ce, z = cross_entropy(logits, batch_BxL1[:, 1:], hp.z_loss)
    return ce + z, (ce, z)

  def loss_and_grads(self, params, batch_BxL1, hp: HParams):
    """(ce, z, grads) of the batch's mean loss, over `grad_accum` microbatches."""
    grad_fn = jax.value_and_grad(self.loss_fn, has_aux=True)
    if self.grad_accum == 1:   # static: the plain step, bit for bit as before accumulation
      (_, (ce, z)), grads = grad_fn(params, batch_BxL1, hp)
      return ce, z, grads
    k = self.grad_accum
    # Microbatch i is rows i, i + k, i + 2k, ...: a data shard holds a block of
    # whole rows, so it holds its share of every microbatch and the scan moves no data.
    micro_KxMxL1 = batch_BxL1.reshape(-1, k, batch_BxL1.shape[1]).swapaxes(0, 1)

    def add(total, micro_MxL1):
      (_, ce_z), grads = grad_fn(params, micro_MxL1, hp)
      return jax.tree.map(jnp.add, total, grads), ce_z

    # The losses come out per microbatch, not in the carry: a carry must vary over
    # the axes its updates do (a `shard_map` over variants), as zeros_like(params) does.
    grads, (ce_K, z_K) = jax.lax.scan(add, jax.tree.map(jnp.zeros_like, params), micro_KxMxL1)
    # equal microbatches: the mean of their means is the batch's mean
    return jnp.mean(ce_K), jnp.mean(z_K), jax.tree.map(lambda g: g / k, grads)

  def train_step(self, state: TrainState, batch_BxL1, hp: HParams):
    """One update; returns the new state and this update's metrics (with the
    values of the scheduled hyperparameters, `optimizers.SCHEDULED`, which
    loop.py writes only to the rows of a run whose config varies them)."""
    ce, z, grads = self.loss_and_grads(state.params, batch_BxL1, hp)
    tx = self.optimizer(hp)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    alive = (state.diverged_step < 0) & (state.step < hp.stop_step)
    ok = alive & jnp.isfinite(ce + z) & (ce <= hp.divergence_bound)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_state = TrainState(
        step=state.step + 1, params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        diverged_step=jnp.where(alive & ~ok, state.step, state.diverged_step))
    metrics = dict(loss=ce, z_loss=z, lr=schedules.schedule(state.step, hp.schedule),
                   grad_norm=optax.tree.norm(grads), update_norm=optax.tree.norm(updates),
                   param_norm=optax.tree.norm(state.params),
                   diverged=(new_state.diverged_step >= 0).astype(jnp.int32),
                   **optimizers.values_at(hp.opt, state.step),
                   **update_sizes(state.params, updates))
    return new_state, metrics

  def eval_step(self, params, batch_BxL1, hp: HParams):
    ce, _ = cross_entropy(self.apply(params, batch_BxL1[:, :-1]), batch_BxL1[:, 1:], hp.z_loss)
    return ce


# Bytes per parameter while training: float32 params, grads, the update and
# two optimizer moments (Adam-family; SGD and Lion keep fewer).
STATE_BYTES_PER_PARAM = 5 * 4


def memory_bytes(cfg, n_variants: int, batched: bool) -> int:
  """A rough upper estimate of the memory `n_variants` stacked variants of
  `cfg` need: their train state, plus the activations kept for the backward
  pass (of every variant at once when `batched` (vmap), else of one).

  With `train.grad_accum` k, the activations are one microbatch's (1/k of
  the batch's), the state holds a gradient sum more, and an eval's forward
  pass of the whole batch (its logits and one layer's attention
  probabilities) may be the larger."""
  m = ModelConfig.from_config(cfg)
  d, f, v = m.d_model, m.mlp_hidden, m.vocab_size
  k = cfg.train.grad_accum
  params = model_lib.param_count(m)
  tokens = cfg.data.batch_size * cfg.data.seq_len
  heads_scores = m.num_heads * cfg.data.seq_len   # attention probabilities per token
  mlp = f * (3 if m.block == "llama" else 2)      # SwiGLU keeps gate, up and their product
  train = 4 * tokens // k * (m.num_layers * (16 * d + mlp + 2 * heads_scores) + 3 * v)
  activations = max(train, 4 * tokens * (3 * v + 2 * heads_scores))
  state = STATE_BYTES_PER_PARAM + (4 if k > 1 else 0)
  return n_variants * params * state + activations * (n_variants if batched else 1)
