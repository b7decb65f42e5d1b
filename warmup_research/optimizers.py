"""Optax chains whose every number is traced data.

The optimizer *family* (`name`) and `nesterov` are static: they shape the
optimizer state or the program. Every number (betas, eps, weight decay,
momentum, clip norm, and the LR schedule's numbers) comes from the traced `hp`,
so a grid over them compiles once.

All families share one chain:

    clip_by_global_norm(clip_norm)      # clip_norm = 0 turns clipping off
    -> scale_by_<family>(numbers)
    -> add_decayed_weights(weight_decay, mask=matrices)   # not for 'adam'
    -> scale_by_learning_rate(schedule)

so weight decay is decoupled (AdamW-style, multiplied by the LR) for adamw,
sgd, radam and lion, and absent for adam. Only parameters with ndim >= 2
(matrices, embeddings) are decayed; norms' scales and biases are not.

Families: adamw/adam (`scale_by_adam`), radam (`scale_by_radam`, Liu et al.
2019), lion (`scale_by_lion`, b1/b2 as in Chen et al. 2023), sgd (`trace` with
`momentum`, optionally Nesterov; momentum 0 is plain SGD), gi_adam and
gi_adam_bc (`scale_by_gi_adam`: Adam whose second moment starts from the
first gradient's square, Kalra & Barkeshli 2024; decoupled weight decay like
adamw). The two GI forms differ only in Adam's bias correction on nu:
gi_adam drops it (nu needs none once it starts from g^2), gi_adam_bc keeps
Adam's update unchanged, so its first updates are scaled down by
sqrt(1 - b2^t), a built-in warmup of about 1 / (1 - b2) steps.
"""
from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class OptHParams:
  """Optimizer numbers, float32 arrays."""
  b1: jax.Array
  b2: jax.Array
  eps: jax.Array
  weight_decay: jax.Array
  momentum: jax.Array
  clip_norm: jax.Array


def make_hparams(*, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, momentum=0.9,
                 clip_norm=0.0) -> OptHParams:
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  return OptHParams(b1=f32(b1), b2=f32(b2), eps=f32(eps), weight_decay=f32(weight_decay),
                    momentum=f32(momentum), clip_norm=f32(clip_norm))


def _decay_mask(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def scale_by_gi_adam(b1, b2, eps, *, nu_bias_correction: bool = False
                     ) -> optax.GradientTransformation:
  """Adam with nu_0 = g_0^2 (GI-Adam): at the first update nu is set to the
  gradient's square before the usual EMA. mu keeps Adam's bias correction;
  nu keeps it only with `nu_bias_correction` (Adam's update unchanged).
  State is optax's ScaleByAdamState."""

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros(), nu=zeros())

  def update(grads, state, params=None):
    del params
    first = state.count == 0
    nu = jax.tree.map(lambda v, g: jnp.where(first, g * g, v), state.nu, grads)
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
    count = state.count + 1
    correction = 1 - b1 ** count.astype(jnp.float32)
    nu_correction = 1 - b2 ** count.astype(jnp.float32) if nu_bias_correction else 1.0
    updates = jax.tree.map(
        lambda m, v: (m / correction) / (jnp.sqrt(v / nu_correction) + eps), mu, nu)
    return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def _scale_by(name: str, nesterov: bool, hp: OptHParams) -> optax.GradientTransformation:
  if name in ("gi_adam", "gi_adam_bc"):
    return scale_by_gi_adam(hp.b1, hp.b2, hp.eps, nu_bias_correction=name == "gi_adam_bc")
  if name in ("adamw", "adam"):
    return optax.scale_by_adam(b1=hp.b1, b2=hp.b2, eps=hp.eps)
  if name == "radam":
    return optax.scale_by_radam(b1=hp.b1, b2=hp.b2, eps=hp.eps)
  if name == "lion":
    return optax.scale_by_lion(b1=hp.b1, b2=hp.b2)
  if name == "sgd":
    return optax.trace(decay=hp.momentum, nesterov=nesterov)
  raise ValueError(f"unknown optimizer {name!r}")  # config.validate names the field


def make(name: str, *, nesterov: bool, learning_rate: Callable,
         hp: OptHParams) -> optax.GradientTransformation:
  """The optimizer `name` with numbers `hp` and schedule `learning_rate(count)`."""
  max_norm = jnp.where(hp.clip_norm > 0, hp.clip_norm, jnp.inf)
  parts = [optax.clip_by_global_norm(max_norm), _scale_by(name, nesterov, hp)]
  if name != "adam":
    parts.append(optax.add_decayed_weights(hp.weight_decay, mask=_decay_mask))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)
