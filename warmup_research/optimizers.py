"""Optax chains whose every number is traced data.

The optimizer *family* (`name`) and `nesterov` are static: they shape the
optimizer state or the program. Every number (betas, eps, weight decay,
momentum, clip norm, and the LR schedule's numbers) comes from the traced `hp`,
so a grid over them compiles once.

All families share one chain:

    clip_by_global_norm(clip_norm)      # clip_norm = 0 turns clipping off
    -> scale_by_<family>(numbers)
    -> add_decayed_weights(weight_decay, mask=matrices)   # not for 'adam'
    -> scale_by_grouped_lr(schedule, lr_mults)   # optax's scale_by_learning_rate, per group

so weight decay is decoupled (AdamW-style, multiplied by the LR) for every
family but adam, which has none. Only parameters with ndim >= 2 (matrices,
embeddings) are decayed; norms' scales and biases are not.

Families: adamw/adam (`scale_by_adam`), radam (`scale_by_radam`, Liu et al.
2019), lion (`scale_by_lion`, b1/b2 as in Chen et al. 2023), sgd (`trace` with
`momentum`, optionally Nesterov; momentum 0 is plain SGD), gi_adam and
gi_adam_bc (`scale_by_gi_adam`: Adam whose second moment starts from the
first gradient's square, Kalra & Barkeshli 2024; decoupled weight decay like
adamw). The two GI forms differ only in Adam's bias correction on nu:
gi_adam drops it (nu needs none once it starts from g^2), gi_adam_bc keeps
Adam's update unchanged, so its first updates are scaled down by
sqrt(1 - b2^t), a built-in warmup of about 1 / (1 - b2) steps.

adamw_normalized (Kosson et al. 2024, "Analyzing & reducing the need for
learning rate warmup in GPT training", their AdamW with a normalised update
norm): AdamW whose update u of each parameter array (a weight matrix, an
embedding, a norm's scale) is rescaled to u * sqrt(C) / ||u||_2, C its number
of elements, before weight decay and the LR. So every array moves by
lr * sqrt(C) per update whatever its gradients, the l2 update size of Lion's
sign update, and the large first updates that warmup exists to shrink are
gone while the direction is still Adam's. Per array (per layer), not per
neuron: the paper controls the l2 norm of each layer's update this way; the
per-neuron form is their angular-update control (LionA), a different method.

muon (Jordan 2024, `optax.contrib.scale_by_muon`): each hidden weight matrix
of a block (attention q, k, v each, attention output, MLP in/out; SwiGLU's
gate and up each: `model.hidden_matrix_axes` says which axes are a matrix's
input and output) gets Nesterov momentum (`momentum`, with optax's bias
correction; modded-nanogpt has none, which the orthogonalisation nearly
cancels), orthogonalised by 5 Newton-Schulz steps with Jordan's coefficients
(3.4445, -4.7750, 2.0315) after a Frobenius normalisation (`eps`), then
scaled by 0.2 * sqrt(max(fan_in, fan_out)) (Liu et al. 2025), which gives it
AdamW's update RMS, so ONE LR schedule and one weight decay drive both parts.
Every other array (token embedding, which is the head when tied, positions,
an untied head, norms) gets plain AdamW (`scale_by_adam`, b1, b2, eps; no
Nesterov, unlike optax's `muon` default). Muon's momentum is always
Nesterov's; `nesterov` is sgd's. Under the program's vmap over variants each
variant's matrices are orthogonalised separately (the step is written for
one variant; vmap adds the variant axis outside it).

schedule_free_adamw (Defazio et al. 2024; the PyPI `schedulefree`
`AdamWScheduleFree` with r = 0 and weight_lr_power = 2, built from
`optax.contrib.schedule_free` around the shared chain with
`scale_by_rms(b2, eps, bias_correction)` as the family: AdamW without its
momentum). The state keeps z; the params are y = (1 - b1) z + b1 x, where
gradients are taken; x, the average of the z, is what evaluations see
(`eval_params`). Update t (0-based) uses lr_t = schedule(t) for z's step
and the averaging weight lr_max^2 (lr_max: the largest lr so far), so the
warmup is the configured schedule's (schedulefree's own warmup_steps is its
linear warmup from lr / W at the first update; ours starts at 0 by default).
The schedule-free method is meant with `decay_shape='constant'` after the
warmup; any schedule is allowed. Weight decay is taken at y (as
schedulefree does), times lr_t, on matrices only; the gradient is clipped
at y, before Adam's normalisation (schedulefree has no clipping). `b1` is
the interpolation weight and must be > 0 (x = (y - (1 - b1) z) / b1);
`momentum` is unused.

Hyperparameter schedules (`Ramp`, `value_at`): b1, b2, momentum and
weight_decay may each vary over training, as traced data like the LR's
schedule. Update t (0-based: t = 0 is the FIRST update, as in schedules.py;
t is the chain's own count, the one the LR schedule reads) uses

    start + (v - start) * t / W            for t < W            (warmup)
    v + (end - v) * r                      for t >= c, C > 0    (cooldown)
    v                                      otherwise

with v the hyperparameter's value, W = warmup_steps, C = cooldown_steps,
T = total_steps, c = max(T - C, W) and r = clip((t - c) / max(T - c, 1), 0, 1)
(as the LR's wsd cooldown: r = 1 would be at t = T, after the last update).
W = C = 0 (no schedule) gives v itself, bit for bit, so the updates are the
same formulas (to float32 rounding: another compiled program may order its
sums differently) and the optimizer state is the same pytree (a schedule
only changes the scalars the chain is built with at each update, never its
state).

Bias correction with a varying beta is optax's: Adam-family moments at update
t are divided by 1 - beta_t^(t+1), the CURRENT beta's power, not by the exact
1 - prod_{i<=t} beta_i of an EMA whose beta changed. Deliberately: the exact
form needs the running product in the state (which would change the state of
every run, old checkpoints included); the two agree where the beta is
constant, and they differ little where a beta moves slowly (a warmup of
hundreds of updates) or late (a cooldown, where both are 1 to float32
precision). Lion and sgd have no bias correction; Muon's is optax's too.

Weight decay, `weight_decay_tied` (traced 1 or 0): tied (1, the default and
the code before it) is decoupled decay multiplied by the LR, lr_t * wd_t * p;
untied (0) is wd_t * p per update, times neither the LR nor its group
multiplier, so wd_t's own schedule alone shapes it (and wd is about lr
times smaller). This is not Wortsman et al. 2023's "independent" decay,
which follows the LR schedule (wd * lr_t / lr_max): for that, keep it tied
and set wd / lr_max.
"""
from __future__ import annotations

import math
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

# The hyperparameters that may have a schedule (`Ramp`).
SCHEDULED = ("b1", "b2", "momentum", "weight_decay")


@flax.struct.dataclass
class Ramp:
  """A hyperparameter's schedule around its value (`value_at`)."""
  start: jax.Array            # the value at update 0 (warmup's start)
  warmup_steps: jax.Array     # int32 W: updates 0 .. W - 1 ramp from start (0: none)
  end: jax.Array              # the value the cooldown ramps to
  cooldown_steps: jax.Array   # int32 C: the cooldown's length, ending at total_steps (0: none)


@flax.struct.dataclass
class OptHParams:
  """Optimizer numbers, float32 arrays (int32 where said)."""
  b1: jax.Array
  b2: jax.Array
  eps: jax.Array
  weight_decay: jax.Array
  momentum: jax.Array
  clip_norm: jax.Array
  lr_mults: jax.Array   # [groups]: each param group's LR multiplier (`lr_group`)
  ramps: dict           # {name in SCHEDULED: Ramp}
  total_steps: jax.Array        # int32: T, where cooldowns end
  weight_decay_tied: jax.Array  # 1: decay times the LR (decoupled); 0: independent


def make_hparams(*, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, momentum=0.9,
                 clip_norm=0.0, lr_mults=(1.0,), ramps=None, total_steps=1,
                 weight_decay_tied=True) -> OptHParams:
  """`ramps`: {name: dict(start=, warmup_steps=, end=, cooldown_steps=)} for
  some of SCHEDULED (a missing key: the value's own; the others: none)."""
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  values = dict(b1=b1, b2=b2, weight_decay=weight_decay, momentum=momentum)

  def ramp(name):
    r = (ramps or {}).get(name, {})
    return Ramp(start=f32(r.get("start", values[name])),
                warmup_steps=jnp.asarray(r.get("warmup_steps", 0), jnp.int32),
                end=f32(r.get("end", values[name])),
                cooldown_steps=jnp.asarray(r.get("cooldown_steps", 0), jnp.int32))
  unknown = set(ramps or {}) - set(SCHEDULED)
  if unknown:
    raise ValueError(f"no schedule for {sorted(unknown)}; allowed: {', '.join(SCHEDULED)}")
  return OptHParams(b1=f32(b1), b2=f32(b2), eps=f32(eps), weight_decay=f32(weight_decay),
                    momentum=f32(momentum), clip_norm=f32(clip_norm), lr_mults=f32(lr_mults),
                    ramps={name: ramp(name) for name in SCHEDULED},
                    total_steps=jnp.asarray(total_steps, jnp.int32),
                    weight_decay_tied=f32(weight_decay_tied))


def value_at(step, value: jax.Array, ramp: Ramp, total_steps: jax.Array) -> jax.Array:
  """The value a scheduled hyperparameter takes at update `step` (0 = the
  first update; the formula: the module docstring). Without a warmup or
  cooldown it is `value` itself, bit for bit."""
  s = jnp.asarray(step, jnp.float32)
  warm = ramp.warmup_steps.astype(jnp.float32)
  cool = ramp.cooldown_steps.astype(jnp.float32)
  total = total_steps.astype(jnp.float32)
  warming = ramp.start + (value - ramp.start) * (s / jnp.maximum(warm, 1.0))
  cool_start = jnp.maximum(total - cool, warm)
  r = jnp.clip((s - cool_start) / jnp.maximum(total - cool_start, 1.0), 0.0, 1.0)
  cooling = value + (ramp.end - value) * r
  return jnp.where(s < warm, warming, jnp.where((cool > 0) & (s >= cool_start), cooling, value))


def values_at(hp: OptHParams, step) -> dict[str, jax.Array]:
  """{name: its value at update `step`} for every name in SCHEDULED."""
  return {name: value_at(step, getattr(hp, name), hp.ramps[name], hp.total_steps)
          for name in SCHEDULED}


def at_step(hp: OptHParams, step) -> OptHParams:
  """`hp` with each scheduled hyperparameter at its value of update `step`."""
  return hp.replace(**values_at(hp, step))


def one_group(path: tuple[str, ...]) -> int:
  """The default `lr_group` of `make`: every param in group 0."""
  del path
  return 0


def scale_by_grouped_lr(learning_rate: Callable, mults: jax.Array, lr_group: Callable
                        ) -> optax.GradientTransformation:
  """`optax.scale_by_learning_rate` with each leaf's LR times
  `mults[lr_group(path)]`: the same state (the count), and at multipliers of
  1 the same numbers bit for bit (x * 1.0 is exact)."""
  def update(updates, state, params=None):
    del params
    lr = -1 * learning_rate(state.count)   # as optax's, so 1x is its numbers exactly

    def one(path, u):
      step = lr * mults[lr_group(tuple(str(k.key) for k in path))]
      return jnp.array(step, dtype=u.dtype) * u

    return (jax.tree_util.tree_map_with_path(one, updates),
            optax.ScaleByScheduleState(count=optax.safe_increment(state.count)))

  return optax.GradientTransformation(
      lambda params: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)), update)


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


def normalize_update() -> optax.GradientTransformation:
  """Each array's update u -> u * sqrt(C) / ||u||_2 (RMS 1); an all-zero
  update stays zero."""

  def update(updates, state, params=None):
    del params

    def one(u):
      norm = jnp.sqrt(jnp.sum(jnp.square(u)))
      return jnp.where(norm > 0, u * (jnp.sqrt(u.size) / jnp.where(norm > 0, norm, 1.0)), u)

    return jax.tree.map(one, updates), state

  return optax.GradientTransformation(optax.init_empty_state, update)


# Muon's update RMS relative to AdamW's (Liu et al. 2025's `consistent_rms`).
MUON_RMS = 0.2


def every_2d_matrix(path: tuple[str, ...], leaf) -> tuple | None:
  """The default `matrix_axes` of `make`: a 2-D array is one input x output
  matrix (optax's `muon` rule)."""
  del path
  return ((0,), (1,)) if leaf.ndim == 2 else None


def _is_dims(x):
  return x is None or isinstance(x, optax.contrib.MuonDimensionNumbers)


def _muon_dims(tree, matrix_axes: Callable):
  """Per leaf of `tree`: MuonDimensionNumbers where `matrix_axes` names its
  axes, else None; an optax.MaskedNode (a leaf another partition owns) stays."""
  def dims(path, leaf):
    if isinstance(leaf, optax.MaskedNode):
      return leaf
    axes = matrix_axes(tuple(str(k.key) for k in path), leaf)
    return None if axes is None else optax.contrib.MuonDimensionNumbers(*axes)
  return jax.tree_util.tree_map_with_path(
      dims, tree, is_leaf=lambda x: isinstance(x, optax.MaskedNode))


def scale_by_muon_rms(dims_fn: Callable) -> optax.GradientTransformation:
  """An orthogonalised update times MUON_RMS * sqrt(max(fan_in, fan_out)):
  its RMS is then about MUON_RMS, as AdamW's typically is."""

  def update(updates, state, params=None):
    del params

    def one(u, d):
      fan_in = math.prod(u.shape[a] for a in d.reduction_axis)
      fan_out = math.prod(u.shape[a] for a in d.output_axis)
      return u * (MUON_RMS * math.sqrt(max(fan_in, fan_out)))

    return jax.tree.map(one, updates, dims_fn(updates), is_leaf=_is_dims), state

  return optax.GradientTransformation(optax.init_empty_state, update)


def scale_by_muon_and_adam(hp: OptHParams, matrix_axes: Callable) -> optax.GradientTransformation:
  """Muon on the leaves `matrix_axes` names, Adam on the others."""
  dims_fn = lambda tree: _muon_dims(tree, matrix_axes)  # noqa: E731

  def labels(params):
    out = jax.tree.map(lambda d: "adam" if d is None else "muon", dims_fn(params),
                       is_leaf=_is_dims)
    if "muon" not in jax.tree.leaves(out):
      raise ValueError("muon: no parameter is a weight matrix (matrix_axes named none)")
    return out

  muon = optax.chain(
      optax.contrib.scale_by_muon(beta=hp.momentum, eps=hp.eps, nesterov=True,
                                  weight_dimension_numbers=dims_fn),
      scale_by_muon_rms(dims_fn))
  adam = optax.scale_by_adam(b1=hp.b1, b2=hp.b2, eps=hp.eps)
  return optax.partition({"muon": muon, "adam": adam}, labels)


def _scale_by(name: str, nesterov: bool, hp: OptHParams, matrix_axes: Callable
              ) -> optax.GradientTransformation:
  if name == "muon":
    return scale_by_muon_and_adam(hp, matrix_axes)
  if name == "adamw_normalized":
    return optax.chain(optax.scale_by_adam(b1=hp.b1, b2=hp.b2, eps=hp.eps), normalize_update())
  if name == "schedule_free_adamw":   # AdamW without momentum: schedule_free replaces it
    return optax.scale_by_rms(decay=hp.b2, eps=hp.eps, eps_in_sqrt=False, bias_correction=True)
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


def make(name: str, *, nesterov: bool, learning_rate: Callable, hp: OptHParams,
         matrix_axes: Callable = every_2d_matrix, lr_group: Callable = one_group
         ) -> optax.GradientTransformation:
  """The optimizer `name` with numbers `hp` and schedule `learning_rate(count)`.

  `matrix_axes(path, leaf)` -> (input axes, output axes) of a leaf Muon
  treats as a matrix (or matrices, over the other axes), None for Adam's;
  `path` is the leaf's dict keys. Only muon reads it. `lr_group(path)`: the
  index into `hp.lr_mults` of the leaf's LR multiplier (weight decay, being
  multiplied by the LR, scales with it).

  Each update rebuilds the chain with `at_step(hp, count)` (count: the
  chain's own, the LR's), so the state is the chain's alone, as before
  hyperparameter schedules."""
  def build(numbers):
    return _chain(name, nesterov, learning_rate, numbers, matrix_axes, lr_group)

  def update(updates, state, params=None):
    numbers = at_step(hp, _count(name, state))
    new, state = build(numbers).update(updates, state, params)
    if name in ("adam", "schedule_free_adamw"):   # no independent decay (config.validate)
      return new, state
    # Independent decay, after the LR; `where` keeps the tied updates as they were, bit for bit.
    untied = jax.tree.map(lambda u, p, m: u - numbers.weight_decay * p if m else u,
                          new, params, _decay_mask(params))
    return jax.tree.map(lambda t, u: jnp.where(numbers.weight_decay_tied > 0, t, u),
                        new, untied), state

  return optax.GradientTransformation(build(hp).init, update)


def _count(name: str, state) -> jax.Array:
  """The number of updates done: the count of the chain's scale_by_grouped_lr."""
  if name == "schedule_free_adamw":
    state = state.base_optimizer_state
  return state[-1].count


def _chain(name, nesterov, learning_rate, hp: OptHParams, matrix_axes, lr_group
           ) -> optax.GradientTransformation:
  max_norm = jnp.where(hp.clip_norm > 0, hp.clip_norm, jnp.inf)
  parts = [optax.clip_by_global_norm(max_norm), _scale_by(name, nesterov, hp, matrix_axes)]
  if name != "adam":
    tied = jnp.where(hp.weight_decay_tied > 0, hp.weight_decay, 0.0)
    parts.append(optax.add_decayed_weights(tied, mask=_decay_mask))
  parts.append(scale_by_grouped_lr(learning_rate, hp.lr_mults, lr_group))
  if name == "schedule_free_adamw":
    # schedule_free asks for the LR of update t as learning_rate(t + 1) (its
    # count starts at 1); the chain's scale_by_learning_rate counts from 0.
    return optax.contrib.schedule_free(optax.chain(*parts),
                                       learning_rate=lambda count: learning_rate(count - 1),
                                       b1=hp.b1, weight_lr_power=2.0)
  return optax.chain(*parts)


def eval_params(name: str, params, opt_state):
  """The point evaluations see: the params, but for schedule_free_adamw its
  average x (its params are y, where gradients are taken)."""
  if name == "schedule_free_adamw":
    return optax.contrib.schedule_free_eval_params(opt_state, params)
  return params
