"""Warmup-composed learning-rate schedules as pure functions of traced data.

    lr = schedule(step, hp)

`hp` is a `ScheduleHParams` of float32/int32 arrays: nothing about a schedule's
numbers *or shapes* is a Python constant in the trace, so a grid of schedules
jits once and vmaps over a leading `variant` axis of `hp`.

Step indexing: `step` counts optimizer updates and step 0 is the FIRST update
(the LR it uses is `schedule(0, hp)`). This is the convention of optax (the
`count` of `scale_by_schedule`) and of HF `transformers` (torch `LambdaLR`
calls its lambda with 0 for the first update).

Phases, with W = warmup_steps and T = total_steps:

* warmup, steps 0 <= s < W, progress p = s / W (so p = 0 at the first update
  and the peak is reached at s = W, as in HF and optax):
    none         no warmup at all (W is treated as 0)
    linear       init + (1 - init) * p
    cosine       init + (1 - init) * (1 - cos(pi p)) / 2
    exponential  exp_start ** (1 - p)          (geometric from exp_start)
    polynomial   init + (1 - init) * p ** power
  where init = `warmup_init_frac` (start LR as a fraction of peak, default 0).
* decay, steps W <= s <= T, progress q = 1 - clip((T - s) / max(T - W, 1), 0, 1)
  (0 at s = W, 1 at s = T; steps past T hold the value at T):
    constant     1
    linear       1 - (1 - final) * q
    cosine       final + (1 - final) * (1 + cos(pi q)) / 2
    rsqrt        sqrt(tau / (s - W + tau)), tau = rsqrt_timescale, or max(W, 1)
                 when rsqrt_timescale <= 0 (HF `get_inverse_sqrt_schedule`)
    exponential  final ** q                   (geometric from 1 down to final)
    wsd          1 until the cooldown, then final + (1 - final) * c(r) over the
                 last `cooldown_steps` steps (never before W), r in [0, 1],
                 c = linear 1 - r | cosine (1 + cos(pi r)) / 2 | 1-sqrt 1 - sqrt(r)
  where final = `final_frac` (final LR as a fraction of peak).

lr = peak_lr * factor. Durations (warmup, cooldown) given as a ratio of T are
turned into whole steps in ONE place, `steps_from_duration`, the HF way:
`ceil(ratio * total_steps)` in float64.

`preset(name, ...)` gives schedules equal, at every step, to a peer library's
(HF transformers, optax, Vaswani et al. 2017, t5x); see `PRESETS`.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp

from warmup_research.errors import ConfigError

WARMUP_SHAPES = ("none", "linear", "cosine", "exponential", "polynomial")
DECAY_SHAPES = ("constant", "linear", "cosine", "rsqrt", "exponential", "wsd")
COOLDOWN_SHAPES = ("linear", "cosine", "1-sqrt")


@flax.struct.dataclass
class ScheduleHParams:
  """Schedule numbers, all arrays (float32 unless said): data, not code."""
  peak_lr: jax.Array
  total_steps: jax.Array        # int32
  warmup_steps: jax.Array       # int32
  warmup_shape: jax.Array       # int32 index into WARMUP_SHAPES
  warmup_init_frac: jax.Array
  warmup_exp_start: jax.Array
  warmup_power: jax.Array
  decay_shape: jax.Array        # int32 index into DECAY_SHAPES
  final_frac: jax.Array
  rsqrt_timescale: jax.Array
  cooldown_steps: jax.Array     # int32
  cooldown_shape: jax.Array     # int32 index into COOLDOWN_SHAPES


def index_of(name: str, allowed: tuple[str, ...], field: str) -> int:
  if name not in allowed:
    raise ConfigError(field, f"unknown name {name!r}; allowed: {', '.join(allowed)}")
  return allowed.index(name)


def warmup_steps_from_ratio(ratio: float, total_steps: int) -> int:
  """`ceil(ratio * total_steps)`, exactly as HF `TrainingArguments` does it."""
  return steps_from_duration(total_steps=total_steps, ratio=ratio)


def steps_from_duration(*, total_steps: int, steps: int | None = None,
                        ratio: float | None = None,
                        field: str = "schedule.warmup") -> int:
  """The one place a duration (steps, or a ratio of training) becomes steps.

  Exactly one of `steps` and `ratio` may be given (neither means 0). A ratio in
  [0, 1] becomes `ceil(ratio * total_steps)` (float64), as in HF
  `transformers`; the result must lie in [0, total_steps].
  """
  if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
    raise ConfigError("train.total_steps", f"must be a positive integer, got {total_steps!r}")
  if steps is not None and ratio is not None:
    raise ConfigError(field, f"give {field}_steps or {field}_ratio, not both "
                      f"(got steps={steps}, ratio={ratio})")
  if ratio is not None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
      raise ConfigError(f"{field}_ratio", f"must be a number in [0, 1], got {ratio!r}")
    return math.ceil(total_steps * float(ratio))
  if steps is None:
    return 0
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ConfigError(f"{field}_steps", f"must be an integer >= 0, got {steps!r}")
  if steps > total_steps:
    raise ConfigError(f"{field}_steps", f"must be <= train.total_steps "
                      f"({total_steps}), got {steps}")
  return steps


def make_hparams(*, peak_lr, total_steps, warmup_steps=0, warmup_shape="linear",
                 warmup_init_frac=0.0, warmup_exp_start=0.01, warmup_power=2.0,
                 decay_shape="constant", final_frac=0.0, rsqrt_timescale=0.0,
                 cooldown_steps=0, cooldown_shape="linear") -> ScheduleHParams:
  """Builds `ScheduleHParams` from Python values (names become indices)."""
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  i32 = lambda x: jnp.asarray(x, jnp.int32)
  return ScheduleHParams(
      peak_lr=f32(peak_lr), total_steps=i32(total_steps),
      warmup_steps=i32(warmup_steps),
      warmup_shape=i32(index_of(warmup_shape, WARMUP_SHAPES, "schedule.warmup_shape")),
      warmup_init_frac=f32(warmup_init_frac), warmup_exp_start=f32(warmup_exp_start),
      warmup_power=f32(warmup_power),
      decay_shape=i32(index_of(decay_shape, DECAY_SHAPES, "schedule.decay_shape")),
      final_frac=f32(final_frac), rsqrt_timescale=f32(rsqrt_timescale),
      cooldown_steps=i32(cooldown_steps),
      cooldown_shape=i32(index_of(cooldown_shape, COOLDOWN_SHAPES, "schedule.cooldown_shape")))


def _pick(index, options):
  """options[index] for a traced index; every option is a cheap scalar."""
  return jnp.stack(options)[index]


def schedule(step, hp: ScheduleHParams) -> jax.Array:
  """LR at update `step` (0 = first update) for schedule numbers `hp`."""
  s = jnp.asarray(step, jnp.float32)
  total = hp.total_steps.astype(jnp.float32)
  no_warmup = hp.warmup_shape == WARMUP_SHAPES.index("none")
  warm = jnp.where(no_warmup, 0.0, hp.warmup_steps.astype(jnp.float32))

  p = jnp.clip(s / jnp.maximum(warm, 1.0), 0.0, 1.0)
  init = hp.warmup_init_frac
  warmup_factor = _pick(hp.warmup_shape, [
      jnp.ones_like(p),
      init + (1 - init) * p,
      init + (1 - init) * (1 - jnp.cos(jnp.pi * p)) / 2,
      hp.warmup_exp_start ** (1 - p),
      init + (1 - init) * p ** hp.warmup_power,
  ])

  final = hp.final_frac
  q = 1 - jnp.clip((total - s) / jnp.maximum(total - warm, 1.0), 0.0, 1.0)
  tau = jnp.where(hp.rsqrt_timescale > 0, hp.rsqrt_timescale, jnp.maximum(warm, 1.0))
  cool_start = jnp.maximum(total - hp.cooldown_steps.astype(jnp.float32), warm)
  r = jnp.clip((s - cool_start) / jnp.maximum(total - cool_start, 1.0), 0.0, 1.0)
  cooldown = _pick(hp.cooldown_shape, [1 - r, (1 + jnp.cos(jnp.pi * r)) / 2, 1 - jnp.sqrt(r)])
  decay_factor = _pick(hp.decay_shape, [
      jnp.ones_like(q),
      1 - (1 - final) * q,
      final + (1 - final) * (1 + jnp.cos(jnp.pi * q)) / 2,
      jnp.sqrt(tau / (jnp.clip(s, warm, total) - warm + tau)),
      final ** q,
      final + (1 - final) * cooldown,
  ])
  return hp.peak_lr * jnp.where(s < warm, warmup_factor, decay_factor)


@functools.partial(jax.jit, static_argnums=0)
def curve(n_steps: int, hp: ScheduleHParams) -> jax.Array:
  """LRs of updates 0 .. n_steps - 1 in one compiled call, for host-side
  curves (plots): eager `schedule` dispatches each of its ops on its own."""
  return schedule(jnp.arange(n_steps), hp)


# ---------------------------------------------------------------------------
# Peer-exact presets. Each mirrors its peer's formula line by line (peers differ
# at the edges, e.g. HF linear and HF cosine disagree at warmup == total), so
# each is its own few lines; tests check them against the peers' own values.


def _hf_warmup(s, warmup):
  return s / jnp.maximum(1.0, warmup)


def _hf_constant(s, *, peak_lr, total_steps, warmup):
  del total_steps
  return peak_lr * jnp.where(s < warmup, _hf_warmup(s, warmup), 1.0)


def _hf_linear(s, *, peak_lr, total_steps, warmup):
  decay = jnp.maximum(0.0, (total_steps - s) / jnp.maximum(1.0, total_steps - warmup))
  return peak_lr * jnp.where(s < warmup, _hf_warmup(s, warmup), decay)


def _hf_cosine(s, *, peak_lr, total_steps, warmup, num_cycles=0.5):
  progress = (s - warmup) / jnp.maximum(1.0, total_steps - warmup)
  decay = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(jnp.pi * num_cycles * 2.0 * progress)))
  return peak_lr * jnp.where(s < warmup, _hf_warmup(s, warmup), decay)


def _hf_polynomial(s, *, peak_lr, total_steps, warmup, lr_end=1e-7, power=1.0):
  if not peak_lr > lr_end:
    raise ConfigError("lr_end", f"must be below peak_lr ({peak_lr}), got {lr_end}")
  if warmup >= total_steps:
    raise ConfigError("warmup_steps", "hf_polynomial needs warmup_steps < total_steps "
                      "(HF divides by their difference)")
  remaining = 1 - (s - warmup) / (total_steps - warmup)
  decay = ((peak_lr - lr_end) * jnp.abs(remaining) ** power + lr_end) / peak_lr
  factor = jnp.where(s < warmup, _hf_warmup(s, warmup),
                     jnp.where(s > total_steps, lr_end / peak_lr, decay))
  return peak_lr * factor


def _hf_inverse_sqrt(s, *, peak_lr, total_steps, warmup, timescale=None):
  del total_steps
  timescale = timescale or warmup or 10_000
  decay = 1.0 / jnp.sqrt(jnp.maximum(s + timescale - warmup, 0.0) / timescale)
  return peak_lr * jnp.where(s < warmup, _hf_warmup(s, warmup), decay)


def _optax_warmup_cosine(s, *, peak_lr, total_steps, warmup, end_value=0.0,
                         init_value=0.0, exponent=1.0):
  """optax.warmup_cosine_decay_schedule with decay_steps = total_steps."""
  if total_steps <= warmup:
    raise ConfigError("warmup_steps", "optax needs warmup_steps < total_steps "
                      "(its cosine part has total_steps - warmup_steps steps)")
  alpha = 0.0 if peak_lr == 0.0 else end_value / peak_lr
  warm = jnp.clip(s, 0, warmup) / max(warmup, 1)
  warm_lr = init_value + (peak_lr - init_value) * warm if warmup > 0 else init_value
  count = jnp.minimum(s - warmup, total_steps - warmup)
  cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / (total_steps - warmup)))
  decay_lr = peak_lr * ((1 - alpha) * cosine ** exponent + alpha)
  return jnp.where(s < warmup, warm_lr, decay_lr)


def _optax_warmup_exponential(s, *, peak_lr, total_steps, warmup, transition_steps,
                              decay_rate, init_value=0.0, transition_begin=0,
                              staircase=False, end_value=None):
  """optax.warmup_exponential_decay_schedule."""
  del total_steps
  warm = jnp.clip(s, 0, warmup) / max(warmup, 1)
  warm_lr = init_value + (peak_lr - init_value) * warm if warmup > 0 else init_value
  count = s - warmup - transition_begin
  p = count / transition_steps
  if staircase:
    p = jnp.floor(p)
  decay_lr = jnp.where(count <= 0, peak_lr, peak_lr * jnp.power(decay_rate, p))
  if end_value is not None:
    decay_lr = (jnp.maximum if decay_rate < 1 else jnp.minimum)(decay_lr, end_value)
  return jnp.where(s < warmup, warm_lr, decay_lr)


def _noam(s, *, peak_lr, total_steps, warmup, d_model):
  """Vaswani et al. 2017, eq. 3, `peak_lr` the scale factor.

  As in The Annotated Transformer's `rate()`, update s uses step_num = max(s, 1)
  (the paper's step_num starts at 1; s = 0 and s = 1 share a value).
  """
  del total_steps
  n = jnp.maximum(s, 1.0)
  return peak_lr * d_model ** -0.5 * jnp.minimum(n ** -0.5, n * warmup ** -1.5)


def _t5_rsqrt(s, *, peak_lr, total_steps, warmup):
  """t5x `constant * rsqrt_decay`: peak_lr / sqrt(max(step, warmup_steps)).

  `peak_lr` is t5x's `base_learning_rate`; the LR is flat at
  peak_lr / sqrt(warmup_steps) for the first warmup_steps updates.
  """
  del total_steps
  return peak_lr / jnp.sqrt(jnp.maximum(s, float(max(warmup, 1))))


PRESETS: dict[str, Callable] = {
    "hf_constant": _hf_constant,
    "hf_linear": _hf_linear,
    "hf_cosine": _hf_cosine,
    "hf_polynomial": _hf_polynomial,
    "hf_inverse_sqrt": _hf_inverse_sqrt,
    "optax_warmup_cosine": _optax_warmup_cosine,
    "optax_warmup_exponential": _optax_warmup_exponential,
    "noam": _noam,
    "t5_rsqrt": _t5_rsqrt,
}


def preset(name: str, *, peak_lr: float, total_steps: int,
           warmup_steps: int | None = None, warmup_ratio: float | None = None,
           **kw) -> Callable:
  """A peer's schedule: returns `step -> lr` (Python ints or traced int arrays).

  Warmup is given as steps or as a ratio of `total_steps` (HF rounding).
  Extra keywords are the peer's own (`num_cycles`, `lr_end`, `power`,
  `timescale`, `end_value`, `transition_steps`, `decay_rate`, `d_model`).
  """
  if name not in PRESETS:
    raise ConfigError("schedule.preset", f"unknown preset {name!r}; allowed: "
                      f"{', '.join(PRESETS)}")
  if isinstance(peak_lr, bool) or not isinstance(peak_lr, (int, float)) or not peak_lr > 0:
    raise ConfigError("peak_lr", f"must be a number > 0, got {peak_lr!r}")
  warmup = steps_from_duration(total_steps=total_steps, steps=warmup_steps,
                               ratio=warmup_ratio, field="warmup")
  fn = PRESETS[name]

  def lr(step):
    return fn(jnp.asarray(step, jnp.float32), peak_lr=float(peak_lr),
              total_steps=total_steps, warmup=warmup, **kw)
  # Check the peer's own argument rules now, not at the first call.
  jax.eval_shape(lr, 0)
  return lr
