"""Schedules: every preset equals its peer at every step; the traced general
schedule covers the peers' families; nothing recompiles across a grid."""
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from warmup_research import schedules
from warmup_research.errors import ConfigError

HF = json.loads((pathlib.Path(__file__).parent / "data" / "hf_schedules.json").read_text())
CASES = [(100, 0), (100, 10), (37, 5), (1000, 60), (10, 1), (50, 49)]


def _close(ours, theirs, what):
  """Equal to float32 precision: within 2e-6 relative, or 1e-6 of the peak.

  Peers compute in float64; ours are float32 arrays. Near the end of a cosine,
  1 + cos(pi q) cancels in float32, leaving errors of ~1e-7 of the peak LR.
  """
  theirs = np.asarray(theirs, np.float64)
  np.testing.assert_allclose(np.asarray(ours, np.float64), theirs, rtol=2e-6,
                             atol=1e-6 * np.max(np.abs(theirs)), err_msg=what)


@pytest.mark.parametrize("case", HF["schedules"], ids=lambda c: (
    f"{c['name']}-T{c['total_steps']}-W{c['warmup_steps']}-{c['kw']}"))
def test_hf_presets_match_transformers_at_every_step(case):
  lr = schedules.preset(case["name"], peak_lr=HF["peak_lr"], total_steps=case["total_steps"],
                        warmup_steps=case["warmup_steps"], **case["kw"])
  steps = np.arange(case["total_steps"] + 1)
  _close(jax.jit(lr)(steps), case["lr"], "traced steps")
  for s in (0, case["warmup_steps"], case["total_steps"]):  # Python ints too
    _close(lr(s), case["lr"][s], f"python int step {s}")


def test_warmup_ratio_converts_like_transformers():
  for c in HF["warmup_ratio"]:
    assert schedules.warmup_steps_from_ratio(c["ratio"], c["total_steps"]) == c["warmup_steps"], c


@pytest.mark.parametrize("total,warmup", [(100, 10), (37, 5), (1000, 60), (10, 1), (100, 0)])
@pytest.mark.parametrize("end_value,init_value,exponent", [(0.0, 0.0, 1.0), (1e-4, 1e-5, 2.0)])
def test_optax_warmup_cosine_matches_optax(total, warmup, end_value, init_value, exponent):
  theirs = optax.warmup_cosine_decay_schedule(init_value, 1e-3, warmup, total, end_value,
                                              exponent)
  ours = schedules.preset("optax_warmup_cosine", peak_lr=1e-3, total_steps=total,
                          warmup_steps=warmup, end_value=end_value, init_value=init_value,
                          exponent=exponent)
  steps = np.arange(total + 1)
  _close(ours(steps), [theirs(s) for s in steps], "optax_warmup_cosine")


@pytest.mark.parametrize("total,warmup", [(100, 10), (37, 5), (1000, 60), (10, 0)])
@pytest.mark.parametrize("kw", [dict(transition_steps=10, decay_rate=0.5),
                                dict(transition_steps=7, decay_rate=0.9, staircase=True,
                                     transition_begin=3, end_value=2e-4)])
def test_optax_warmup_exponential_matches_optax(total, warmup, kw):
  theirs = optax.warmup_exponential_decay_schedule(0.0, 1e-3, warmup, **kw)
  ours = schedules.preset("optax_warmup_exponential", peak_lr=1e-3, total_steps=total,
                          warmup_steps=warmup, **kw)
  steps = np.arange(total + 1)
  _close(ours(steps), [theirs(s) for s in steps], "optax_warmup_exponential")


def _annotated_transformer_rate(step, model_size, factor, warmup):
  """`rate` from The Annotated Transformer (Harvard NLP), verbatim."""
  if step == 0:
    step = 1
  return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))


def _t5x_rsqrt(step, base_learning_rate, warmup_steps):
  """t5x utils.create_learning_rate_scheduler(factors='constant * rsqrt_decay')."""
  return base_learning_rate * 1.0 / math.sqrt(max(step, warmup_steps))


@pytest.mark.parametrize("total,warmup", CASES[1:])
def test_noam_and_t5_match_their_reference_formulas(total, warmup):
  steps = np.arange(total + 1)
  noam = schedules.preset("noam", peak_lr=2.0, total_steps=total, warmup_steps=warmup,
                          d_model=512)
  _close(noam(steps), [_annotated_transformer_rate(s, 512, 2.0, warmup) for s in steps], "noam")
  t5 = schedules.preset("t5_rsqrt", peak_lr=1.0, total_steps=total, warmup_steps=warmup)
  _close(t5(steps), [_t5x_rsqrt(s, 1.0, warmup) for s in steps], "t5_rsqrt")


# The general traced schedule reproduces each peer family (interior cases W < T).
FAMILIES = [
    ("hf_constant", {}, dict(decay_shape="constant")),
    ("hf_linear", {}, dict(decay_shape="linear", final_frac=0.0)),
    ("hf_cosine", {}, dict(decay_shape="cosine", final_frac=0.0)),
    ("hf_inverse_sqrt", {}, dict(decay_shape="rsqrt")),
    ("hf_inverse_sqrt", {"timescale": 50}, dict(decay_shape="rsqrt", rsqrt_timescale=50.0)),
    ("optax_warmup_cosine", {"end_value": 1e-4, "init_value": 1e-5},
     dict(decay_shape="cosine", final_frac=0.1, warmup_init_frac=0.01)),
]


@pytest.mark.parametrize("name,kw,general", FAMILIES, ids=lambda x: str(x))
@pytest.mark.parametrize("total,warmup", [(100, 10), (37, 5), (1000, 60), (10, 1)])
def test_general_schedule_reproduces_peer_families(name, kw, general, total, warmup):
  steps = np.arange(total + 1)
  peer = schedules.preset(name, peak_lr=1e-3, total_steps=total, warmup_steps=warmup, **kw)
  hp = schedules.make_hparams(peak_lr=1e-3, total_steps=total, warmup_steps=warmup,
                              warmup_shape="linear", **general)
  _close(schedules.schedule(steps, hp), peer(steps), name)


def _hp(**kw):
  base = dict(peak_lr=1.0, total_steps=100, warmup_steps=20, final_frac=0.1)
  return schedules.make_hparams(**{**base, **kw})


@pytest.mark.parametrize("kw", [dict(warmup_shape="cosine", decay_shape="cosine"),
                                dict(warmup_shape="exponential", decay_shape="rsqrt"),
                                dict(decay_shape="wsd", cooldown_steps=30, cooldown_shape="1-sqrt")])
def test_a_compiled_curve_is_the_schedule_at_every_update(kw):
  hp = _hp(**kw)
  eager = np.asarray(schedules.schedule(np.arange(101), hp))
  np.testing.assert_allclose(np.asarray(schedules.curve(101, hp)), eager, rtol=1e-6, atol=0)
  assert schedules.curve(101, hp).shape == (101,)


@pytest.mark.parametrize("shape", schedules.WARMUP_SHAPES)
def test_warmup_shapes(shape):
  lr = np.asarray(schedules.schedule(np.arange(101), _hp(warmup_shape=shape,
                                                        decay_shape="constant")))
  if shape == "none":
    np.testing.assert_allclose(lr, 1.0)
    return
  start = {"exponential": 0.01}.get(shape, 0.0)
  np.testing.assert_allclose(lr[0], start, atol=1e-7)      # step 0: the start LR
  np.testing.assert_allclose(lr[20:], 1.0, atol=1e-6)      # peak from step W on
  assert np.all(np.diff(lr[:21]) > 0), "warmup must increase strictly"
  mid = {"linear": 0.5, "cosine": 0.5, "exponential": 0.1, "polynomial": 0.25}[shape]
  np.testing.assert_allclose(lr[10], mid, rtol=1e-5)       # p = 1/2


@pytest.mark.parametrize("decay", schedules.DECAY_SHAPES)
def test_decay_shapes(decay):
  lr = np.asarray(schedules.schedule(np.arange(121), _hp(decay_shape=decay,
                                                        cooldown_steps=20)))
  np.testing.assert_allclose(lr[20], 1.0, rtol=1e-6)       # peak at s = W
  end = {"constant": 1.0, "rsqrt": math.sqrt(20 / 100)}.get(decay, 0.1)
  np.testing.assert_allclose(lr[100], end, rtol=1e-5)      # value at s = T
  np.testing.assert_allclose(lr[100:], lr[100], rtol=1e-6)  # held after T
  assert np.all(np.diff(lr[20:101]) <= 1e-7), "decay must not increase"
  if decay == "wsd":
    np.testing.assert_allclose(lr[20:81], 1.0)              # stable until the cooldown
    np.testing.assert_allclose(lr[90], 0.55, rtol=1e-5)     # linear cooldown halfway


@pytest.mark.parametrize("shape,mid", [("linear", 0.55), ("cosine", 0.55),
                                       ("1-sqrt", 0.1 + 0.9 * (1 - math.sqrt(0.5)))])
def test_wsd_cooldown_shapes(shape, mid):
  lr = schedules.schedule(np.arange(101), _hp(decay_shape="wsd", cooldown_steps=20,
                                              cooldown_shape=shape))
  np.testing.assert_allclose(lr[90], mid, rtol=1e-5)
  np.testing.assert_allclose(lr[100], 0.1, rtol=1e-5)


def test_a_grid_of_shapes_and_numbers_compiles_once():
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, *_ , **__: compiles.append(event)
      if event == "/jax/core/compile/backend_compile_duration" else None)
  fn = jax.jit(jax.vmap(schedules.schedule, in_axes=(None, 0)))
  steps = jnp.arange(50)
  grids = []
  for w_shape in schedules.WARMUP_SHAPES:
    grids.append([_hp(warmup_shape=w_shape, decay_shape=d, warmup_steps=w, peak_lr=lr)
                  for d in schedules.DECAY_SHAPES for w, lr in ((0, 1.0), (7, 3e-4))])
  stack = lambda hps: jax.tree.map(lambda *x: jnp.stack(x), *hps)
  fn(steps, stack(grids[0])).block_until_ready()
  before = len(compiles)
  outs = [fn(steps, stack(g)) for g in grids[1:]]
  assert len(compiles) == before, "changing schedule numbers or shapes recompiled"
  assert fn._cache_size() == 1
  # and the vmapped values equal the one-at-a-time values
  for g, out in zip(grids[1:], outs):
    for i, hp in enumerate(g):
      np.testing.assert_allclose(out[i], schedules.schedule(steps, hp), rtol=1e-6)


def test_duration_validation():
  assert schedules.steps_from_duration(total_steps=100, ratio=0.1) == 10
  assert schedules.steps_from_duration(total_steps=100, steps=100) == 100
  assert schedules.steps_from_duration(total_steps=100) == 0
  with pytest.raises(ConfigError, match="warmup_steps: must be <= train.total_steps"):
    schedules.steps_from_duration(total_steps=100, steps=101, field="warmup")
  with pytest.raises(ConfigError, match=r"warmup_ratio: must be a number in \[0, 1\]"):
    schedules.steps_from_duration(total_steps=100, ratio=1.5, field="warmup")
  with pytest.raises(ConfigError, match="not both"):
    schedules.steps_from_duration(total_steps=100, steps=5, ratio=0.1, field="warmup")
  with pytest.raises(ConfigError, match="unknown preset 'hf_nope'"):
    schedules.preset("hf_nope", peak_lr=1.0, total_steps=10)
  with pytest.raises(ConfigError, match="peak_lr: must be a number > 0"):
    schedules.preset("hf_linear", peak_lr=0.0, total_steps=10)
  with pytest.raises(ConfigError, match="unknown name 'zigzag'"):
    schedules.make_hparams(peak_lr=1.0, total_steps=10, warmup_shape="zigzag")
