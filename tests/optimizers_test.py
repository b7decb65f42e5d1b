"""Optimizers: traced-number chains equal optax's own optimizers built from
Python numbers, and a vmapped grid over their numbers compiles once."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from warmup_research import optimizers, schedules

PARAMS = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4), "b": jnp.linspace(0.5, 1, 4)}
MASK = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)


def _grads(i):
  k1, k2 = jax.random.split(jax.random.key(i))
  return {"w": jax.random.normal(k1, (3, 4)) * 3, "b": jax.random.normal(k2, (4,))}


def _run(tx, steps=6):
  params, state = PARAMS, tx.init(PARAMS)
  for i in range(steps):
    updates, state = tx.update(_grads(i), state, params)
    params = optax.apply_updates(params, updates)
  return params


SCHED = dict(peak_lr=1e-2, total_steps=6, warmup_steps=2, warmup_shape="linear",
             decay_shape="cosine", final_frac=0.0)


def _ours(name, nesterov=False, **numbers):
  hp = optimizers.make_hparams(**numbers)
  s_hp = schedules.make_hparams(**SCHED)
  return optimizers.make(name, nesterov=nesterov, hp=hp,
                         learning_rate=lambda c: schedules.schedule(c, s_hp))


LR = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 6, 0.0)
REFERENCES = [
    ("adamw", dict(b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1, clip_norm=1.0),
     lambda: optax.chain(optax.clip_by_global_norm(1.0),
                         optax.adamw(LR, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1,
                                     mask=MASK))),
    ("adam", dict(b1=0.9, b2=0.99, eps=1e-8), lambda: optax.adam(LR, b1=0.9, b2=0.99)),
    ("radam", dict(b1=0.9, b2=0.999, eps=1e-8), lambda: optax.radam(LR)),
    ("lion", dict(b1=0.9, b2=0.99, weight_decay=0.5),
     lambda: optax.lion(LR, b1=0.9, b2=0.99, weight_decay=0.5, mask=MASK)),
    ("sgd", dict(momentum=0.9), lambda: optax.sgd(LR, momentum=0.9)),
]


@pytest.mark.parametrize("name,numbers,reference", REFERENCES, ids=lambda x: str(x)[:20])
def test_equals_optax(name, numbers, reference):
  ours, theirs = _run(_ours(name, **numbers)), _run(reference())
  for k in PARAMS:
    np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-5, atol=1e-7, err_msg=name)


def test_sgd_nesterov_equals_optax():
  ours = _run(_ours("sgd", nesterov=True, momentum=0.5))
  theirs = _run(optax.sgd(LR, momentum=0.5, nesterov=True))
  np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-5)


@pytest.mark.parametrize("name", ["gi_adam", "gi_adam_bc"])
def test_gi_adam_follows_its_definition(name):
  b1, b2, eps = 0.9, 0.99, 1e-8
  lr = lambda c: 1e-2
  tx = optimizers.make(name, nesterov=False, learning_rate=lr,
                       hp=optimizers.make_hparams(b1=b1, b2=b2, eps=eps))
  params, state = PARAMS, tx.init(PARAMS)
  mu = {k: np.zeros_like(v) for k, v in PARAMS.items()}
  nu, ref = None, {k: np.asarray(v, np.float64) for k, v in PARAMS.items()}
  for t in range(1, 4):
    g = {k: np.asarray(v, np.float64) for k, v in _grads(t).items()}
    nu = {k: g[k] ** 2 for k in g} if nu is None else nu   # nu_0 = g_0^2
    mu = {k: b1 * mu[k] + (1 - b1) * g[k] for k in g}
    nu = {k: b2 * nu[k] + (1 - b2) * g[k] ** 2 for k in g}
    nu_hat = {k: nu[k] / (1 - b2 ** t) if name == "gi_adam_bc" else nu[k] for k in g}
    ref = {k: ref[k] - 1e-2 * (mu[k] / (1 - b1 ** t)) / (np.sqrt(nu_hat[k]) + eps) for k in g}
    updates, state = tx.update(_grads(t), state, params)
    params = optax.apply_updates(params, updates)
  for k in PARAMS:   # weight decay 0 here: pure GI-Adam
    np.testing.assert_allclose(params[k], ref[k], rtol=1e-5, atol=1e-7)
  plain = _run(_ours("adamw", b1=b1, b2=b2, eps=eps), steps=3)
  assert not np.allclose(plain["w"], params["w"])


def test_clip_norm_zero_is_off_and_positive_clips():
  g = _grads(0)
  for clip, expect_norm in ((0.0, optax.tree.norm(g)), (0.5, 0.5)):
    hp = optimizers.make_hparams(momentum=0.0, clip_norm=clip)
    tx = optimizers.make("sgd", nesterov=False, hp=hp, learning_rate=lambda c: -1.0)
    updates, _ = tx.update(g, tx.init(PARAMS), PARAMS)
    np.testing.assert_allclose(optax.tree.norm(updates), expect_norm, rtol=1e-5)


def test_numbers_are_traced_one_compile_for_a_grid():
  def step(numbers):
    hp = optimizers.OptHParams(**numbers)
    tx = optimizers.make("adamw", nesterov=False, hp=hp, learning_rate=lambda c: 1e-2)
    state = tx.init(PARAMS)
    updates, _ = tx.update(_grads(0), state, PARAMS)
    return updates["w"]
  f = jax.jit(jax.vmap(step))
  def grid(eps, wds):
    hps = [optimizers.make_hparams(b1=0.9, b2=0.99, eps=e, weight_decay=wd, clip_norm=1.0)
           for e, wd in zip(eps, wds)]
    return jax.tree.map(lambda *x: jnp.stack(x), *[vars(h) for h in hps])
  out1 = f(grid([1e-8, 1e-3], [0.1, 0.0]))
  out2 = f(grid([1e-1, 1.0], [0.5, 2.0]))
  assert f._cache_size() == 1
  assert not np.allclose(out1, out2)
