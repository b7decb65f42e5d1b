"""Optimizers: traced-number chains equal optax's own optimizers built from
Python numbers or a reference (schedulefree's, numpy from the algorithm),
and a vmapped grid over their numbers compiles once."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from warmup_research import analysis, data, optimizers, results, schedules, sweep, train, workdir
from warmup_research import model as model_lib
from warmup_research.sweep import axis

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


@pytest.mark.parametrize("name", ["adamw", "muon", "adamw_normalized", "schedule_free_adamw"])
def test_numbers_are_traced_one_compile_for_a_grid(name):
  def step(numbers, lr):
    hp = optimizers.OptHParams(**numbers)
    tx = optimizers.make(name, nesterov=False, hp=hp, learning_rate=lambda c: lr)
    params, state = PARAMS, tx.init(PARAMS)
    for i in range(2):   # schedule-free's second update is the first to move x
      updates, state = tx.update(_grads(i), state, params)
      params = optax.apply_updates(params, updates)
    return optimizers.eval_params(name, params, state)["w"]
  f = jax.jit(jax.vmap(step))
  def grid(b1s, wds, momenta):
    hps = [optimizers.make_hparams(b1=b1, b2=0.99, eps=1e-8, weight_decay=wd, momentum=m,
                                   clip_norm=1.0) for b1, wd, m in zip(b1s, wds, momenta)]
    return jax.tree.map(lambda *x: jnp.stack(x), *[vars(h) for h in hps])
  out1 = f(grid([0.9, 0.5], [0.1, 0.0], [0.9, 0.5]), jnp.asarray([1e-2, 3e-2]))
  out2 = f(grid([0.8, 0.95], [0.5, 2.0], [0.0, 0.99]), jnp.asarray([1e-1, 1e-3]))
  assert f._cache_size() == 1
  assert not np.allclose(out1, out2)
  assert not np.allclose(out1[0], out1[1])


# ------------------------------------------------------------ schedule-free AdamW

SF_REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" /
                           "schedule_free_reference.json").read_text())


def _least_squares(problem):
  x_8x4, t_8x3 = (jnp.asarray(problem[k], jnp.float32) for k in ("X", "T"))
  return lambda p: jnp.mean((x_8x4 @ p["W"] + p["b"] - t_8x3) ** 2)


@pytest.mark.parametrize("case", SF_REFERENCE["cases"], ids=lambda c: c["name"])
def test_schedule_free_adamw_equals_the_schedulefree_reference(case):
  # Values from the PyPI `schedulefree` AdamWScheduleFree (float64), made by
  # tests/data/make_schedule_free_reference.py, which says how its options
  # give our algorithm. Ours runs in float32: 8 updates stay within 2e-6
  # (measured: under 3e-7).
  problem = SF_REFERENCE["problem"]
  s_hp = schedules.make_hparams(
      peak_lr=case["peak_lr"], total_steps=case["steps"], warmup_steps=case["warmup_steps"],
      warmup_shape="linear" if case["warmup_steps"] else "none", decay_shape="constant")
  lr = lambda c: schedules.schedule(c, s_hp)  # noqa: E731
  hp = optimizers.make_hparams(b1=case["b1"], b2=case["b2"], eps=case["eps"],
                               weight_decay=case["weight_decay"], clip_norm=case["clip_norm"])
  tx = optimizers.make("schedule_free_adamw", nesterov=False, hp=hp, learning_rate=lr)
  loss = _least_squares(problem)
  params = {k: jnp.asarray(problem[k], jnp.float32) for k in ("W", "b")}
  state = tx.init(params)
  for t, ref in enumerate(case["updates"]):
    np.testing.assert_allclose(lr(t), ref["lr"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(loss(params), ref["loss_at_y"], rtol=1e-5)
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    x = optimizers.eval_params("schedule_free_adamw", params, state)
    for k in params:
      np.testing.assert_allclose(params[k], ref["y"][k], atol=2e-6, err_msg=f"y {k} at {t}")
      np.testing.assert_allclose(x[k], ref["x"][k], atol=2e-6, err_msg=f"x {k} at {t}")
  assert not np.allclose(x["W"], params["W"], atol=1e-4)   # y and x differ: the test sees both


# --------------------------------------------------------------------------- muon

NS_COEFFS = (3.4445, -4.7750, 2.0315)   # Jordan 2024's quintic, as optax's default


def _newton_schulz(g, steps=5, eps=1e-8):
  """Jordan's orthogonalisation of one matrix, in float64: X = G / ||G||_F, then
  `steps` times X <- a X + (b A + c A^2) X with A = X X^T, on the wide side."""
  a, b, c = NS_COEFFS
  wide = g.shape[0] > g.shape[1]
  x = (g.T if wide else g) / (np.linalg.norm(g) + eps)
  for _ in range(steps):
    s = x @ x.T
    x = a * x + (b * s + c * s @ s) @ x
  return x.T if wide else x


def _orthogonalise(u, axes):
  """_newton_schulz of each matrix of `u`: `axes` (input, output) name the
  matrix's axes, the rest index separate matrices."""
  ins, outs = axes
  batch = [a for a in range(u.ndim) if a not in ins + outs]
  order = batch + list(ins) + list(outs)
  moved = np.transpose(u, order)
  m = int(np.prod([u.shape[a] for a in ins]))
  n = int(np.prod([u.shape[a] for a in outs]))
  flat = moved.reshape(-1, m, n)
  done = np.stack([_newton_schulz(x) for x in flat]).reshape(moved.shape)
  return np.transpose(done, np.argsort(order)), m, n


def test_newton_schulz_equals_numpy_and_is_near_orthogonal():
  # momentum 0 and LR -1: our muon's update of a matrix is its gradient
  # orthogonalised, times 0.2 * sqrt(max(fan_in, fan_out))
  tx = optimizers.make("muon", nesterov=False, learning_rate=lambda c: -1.0,
                       hp=optimizers.make_hparams(momentum=0.0, weight_decay=0.0))
  g = np.asarray(jax.random.normal(jax.random.key(3), (6, 10)), np.float64)
  for x in (g, g.T):
    params = {"w": jnp.zeros(x.shape)}
    updates, _ = tx.update({"w": jnp.asarray(x, jnp.float32)}, tx.init(params), params)
    ours = np.asarray(updates["w"]) / (0.2 * np.sqrt(10))
    np.testing.assert_allclose(ours, _newton_schulz(x), atol=2e-6)
    sv = np.linalg.svd(ours, compute_uv=False)
    # Jordan's coefficients trade exactness for speed: singular values land in
    # about (0.7, 1.2), not at 1 (his "Uniform(0.5, 1.5)"), so the update is
    # close to the polar factor U V^T but not equal to it.
    assert sv.min() > 0.5 and sv.max() < 1.5, sv
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    cos = np.sum(ours * (u @ vt)) / (np.linalg.norm(ours) * np.linalg.norm(u @ vt))
    assert cos > 0.95, cos


MUON_PARAMS = {"w": jnp.linspace(-1, 1, 12).reshape(3, 4),
               "qkv": jnp.linspace(-0.5, 0.7, 24).reshape(4, 2, 3),   # two 4 x 3 matrices
               "b": jnp.linspace(0.5, 1, 4), "embed": jnp.linspace(0, 1, 10).reshape(5, 2)}
MUON_AXES = {"w": ((0,), (1,)), "qkv": ((0,), (2,))}


def _muon_axes(path, leaf):
  return MUON_AXES.get(path[-1])


def _muon_grads(i):
  keys = jax.random.split(jax.random.key(100 + i), len(MUON_PARAMS))
  return {k: jax.random.normal(key, v.shape) for key, (k, v) in zip(keys, MUON_PARAMS.items())}


def test_muon_follows_its_definition():
  # numpy from the algorithm: Nesterov momentum with optax's bias correction,
  # the orthogonalisation above, 0.2 * sqrt(max(fan_in, fan_out)); Adam for
  # the rest ("embed" is 2-D but not a hidden matrix); decoupled decay on ndim >= 2.
  lr, beta, b1, b2, eps, wd = 1e-2, 0.9, 0.8, 0.95, 1e-8, 0.1
  hp = optimizers.make_hparams(b1=b1, b2=b2, eps=eps, weight_decay=wd, momentum=beta)
  tx = optimizers.make("muon", nesterov=False, hp=hp, learning_rate=lambda c: lr,
                       matrix_axes=_muon_axes)
  params, state = MUON_PARAMS, tx.init(MUON_PARAMS)
  ref = {k: np.asarray(v, np.float64) for k, v in MUON_PARAMS.items()}
  m = {k: np.zeros_like(v) for k, v in ref.items()}
  v = {k: np.zeros_like(x) for k, x in ref.items()}
  for t in range(1, 5):
    g = {k: np.asarray(x, np.float64) for k, x in _muon_grads(t).items()}
    for k in ref:
      m[k] = (beta if k in MUON_AXES else b1) * m[k] + (1 - (beta if k in MUON_AXES else b1)) * g[k]
      if k in MUON_AXES:
        nesterov = beta * m[k] / (1 - beta ** (t + 1)) + (1 - beta) * g[k] / (1 - beta ** t)
        o, fan_in, fan_out = _orthogonalise(nesterov, MUON_AXES[k])
        u = o * 0.2 * np.sqrt(max(fan_in, fan_out))
      else:
        v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
        u = (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)
      ref[k] = ref[k] - lr * (u + (wd * ref[k] if ref[k].ndim >= 2 else 0))
    updates, state = tx.update(_muon_grads(t), state, params)
    params = optax.apply_updates(params, updates)
  for k in ref:
    np.testing.assert_allclose(params[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # the 3-D weight is two matrices: one orthogonalisation of its 4 x 6 reshape differs
  o_whole = _newton_schulz(np.asarray(_muon_grads(1)["qkv"]).reshape(4, 6)).reshape(4, 2, 3)
  o_each, _, _ = _orthogonalise(np.asarray(_muon_grads(1)["qkv"]), MUON_AXES["qkv"])
  assert not np.allclose(o_whole, o_each, atol=1e-3)


def test_muon_under_vmap_orthogonalises_each_variant_alone():
  hp = optimizers.make_hparams(momentum=0.95)

  def step(params, grads, lr):
    tx = optimizers.make("muon", nesterov=False, hp=hp, learning_rate=lambda c: lr,
                         matrix_axes=_muon_axes)
    return tx.update(grads, tx.init(params), params)[0]

  stack = lambda *trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)  # noqa: E731
  grads = [_muon_grads(1), jax.tree.map(lambda g: 3 * g[::-1], _muon_grads(2))]
  both = jax.jit(jax.vmap(step))(stack(MUON_PARAMS, MUON_PARAMS), stack(*grads),
                                 jnp.asarray([1e-2, 3e-2]))
  for i, lr in enumerate((1e-2, 3e-2)):
    alone = step(MUON_PARAMS, grads[i], lr)
    for k in alone:
      np.testing.assert_allclose(both[k][i], alone[k], rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("block,tie", [("gpt2", True), ("llama", False)])
def test_muon_takes_the_blocks_matrices_and_adam_the_rest(block, tie):
  cfg = model_lib.ModelConfig(d_model=32, num_layers=2, num_heads=2, max_len=8, block=block,
                              qk_norm=True, tie_embeddings=tie)
  params = nnx.to_pure_dict(nnx.state(model_lib.TransformerLM(cfg, rngs=nnx.Rngs(0))))
  muon = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    keys = tuple(str(k.key) for k in path)
    axes = model_lib.hidden_matrix_axes(keys, leaf)
    muon[keys[-1]] = axes is not None
    if axes is not None:   # a matrix's input and output axes are disjoint axes of the array
      assert not set(axes[0]) & set(axes[1]) and max(axes[0] + axes[1]) < leaf.ndim, keys
    # every array of a block with ndim >= 2 is a matrix for Muon; nothing else is
    assert (axes is not None) == (keys[0] == "blocks" and leaf.ndim >= 2), keys
  assert not muon["embed_VxD"] and muon["w_out_FxD"] and muon["w_qkv_Dx3xHxK"]
  tx = optimizers.make("muon", nesterov=False, hp=optimizers.make_hparams(),
                       learning_rate=lambda c: 1e-2, matrix_axes=model_lib.hidden_matrix_axes)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates))


def test_muon_with_no_matrix_says_so():
  tx = optimizers.make("muon", nesterov=False, hp=optimizers.make_hparams(),
                       learning_rate=lambda c: 1e-2, matrix_axes=lambda path, leaf: None)
  with pytest.raises(ValueError, match="no parameter is a weight matrix"):
    tx.init(PARAMS)


# --------------------------------------------------------- update-normalised AdamW

def test_adamw_normalized_moves_each_array_by_lr_sqrt_size_in_adams_direction():
  lr, wd = 1e-2, 0.1
  numbers = dict(b1=0.9, b2=0.99, eps=1e-8, clip_norm=1.0)
  plain = optimizers.make("adamw", nesterov=False, learning_rate=lambda c: lr,
                          hp=optimizers.make_hparams(**numbers))
  normed = optimizers.make("adamw_normalized", nesterov=False, learning_rate=lambda c: lr,
                           hp=optimizers.make_hparams(weight_decay=wd, **numbers))
  params, s_plain, s_normed = PARAMS, plain.init(PARAMS), normed.init(PARAMS)
  for t in range(4):
    g = _grads(t)
    u_plain, s_plain = plain.update(g, s_plain, params)
    u_normed, s_normed = normed.update(g, s_normed, params)
    for k, p in params.items():
      decay = -lr * wd * p if p.ndim >= 2 else 0.0   # decoupled, after the normalisation
      step = u_normed[k] - decay
      np.testing.assert_allclose(jnp.linalg.norm(step), lr * np.sqrt(p.size), rtol=1e-5)
      # Adam's direction, rescaled: the plain AdamW update times a positive number
      ratio = step / u_plain[k]
      np.testing.assert_allclose(ratio, np.full(p.shape, ratio.ravel()[0]), rtol=1e-4)
      assert ratio.ravel()[0] > 0
    params = optax.apply_updates(params, u_normed)


def test_normalize_update_keeps_a_zero_update_zero():
  out, _ = optimizers.normalize_update().update({"a": jnp.zeros(3)}, optax.EmptyState())
  np.testing.assert_array_equal(out["a"], 0.0)


# ------------------------------------------------- the new families in a sweep

NEW = ["muon", "adamw_normalized", "schedule_free_adamw"]


@pytest.fixture(scope="module", params=NEW)
def two_lr_sweep(request, tmp_path_factory, corpus_dir):
  """A grid of two peak LRs of one new family: 12 updates of the tiny model
  on bytes of text, in this process, checkpointed at the end."""
  from helpers import tiny_config  # imports jax's config: after conftest's environment
  name = request.param
  cfg = tiny_config(**{"optimizer.name": name, "data.name": "bytes",
                       "data.corpus_dir": str(corpus_dir),
                       "train.total_steps": 12, "train.eval_every": 6,
                       "train.checkpoint_every": 12, "train.log_every": 1,
                       "schedule.decay_shape": "constant", "schedule.warmup_steps": 2,
                       **({"optimizer.momentum": 0.95} if name == "muon" else {})})
  variants = sweep.expand(cfg, axis("optimizer.peak_lr", [3e-3, 1e-2]))
  wd = tmp_path_factory.mktemp(name) / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, wd, progress=False)
  return name, wd, results.write(wd, plots=False, tensorboard=False)


def test_a_grid_of_a_new_family_is_one_program_and_learns(two_lr_sweep):
  name, wd, summary = two_lr_sweep
  assert summary["n_groups"] == 1 and summary["n_compiles"] == 1, name
  df = analysis.load_metrics(wd)
  for run_id, rows in df[df.split == "train"].groupby("run_id"):
    losses = rows.sort_values("step")["loss"].to_numpy()
    assert len(losses) == 12 and np.isfinite(losses).all(), (name, run_id)
    # bytes start near ln(256) = 5.5; 12 updates lower it
    assert losses[-3:].mean() < losses[:3].mean() - 0.1, (name, run_id, losses)
  assert len({r["final_eval_loss"] for r in summary["runs"]}) == 2   # two LRs, two runs


def test_evals_and_load_run_are_at_the_point_evaluations_see(two_lr_sweep):
  # schedule-free AdamW is evaluated at its average x, not at its params y:
  # the logged eval loss is the loss at run.eval_params, and for schedule-free
  # it is not the loss at run.params; the others are evaluated at their params.
  name, wd, _ = two_lr_sweep
  run = analysis.load_run(wd, peak_lr=1e-2)
  trainer, hp = train.Trainer(run.config), train.hparams(run.config)
  batches = data.Batches(run.config)
  def loss_at(params):
    return np.mean([float(trainer.eval_step(params, jnp.asarray(batches.eval(i)), hp))
                    for i in range(run.config.train.eval_batches)])
  logged = float(run.eval[run.eval.step == 12]["eval_loss"].iloc[0])
  np.testing.assert_allclose(loss_at(run.eval_params), logged, rtol=1e-5)
  if name == "schedule_free_adamw":
    assert abs(loss_at(run.params) - logged) > 1e-3, (loss_at(run.params), logged)
  else:
    assert run.eval_params is run.params


def test_grouped_lr_at_ones_is_optaxs_scale_by_learning_rate_bit_for_bit():
  sched = schedules.make_hparams(**SCHED)
  lr = lambda c: schedules.schedule(c, sched)  # noqa: E731
  ours = optimizers.scale_by_grouped_lr(lr, jnp.ones(2), lambda path: int(path[-1] == "b"))
  theirs = optax.scale_by_learning_rate(lr)
  s_ours, s_theirs = ours.init(PARAMS), theirs.init(PARAMS)
  assert jax.tree.structure(s_ours) == jax.tree.structure(s_theirs)   # old checkpoints load
  for i in range(4):
    u_ours, s_ours = ours.update(_grads(i), s_ours)
    u_theirs, s_theirs = theirs.update(_grads(i), s_theirs)
    for a, b in zip(jax.tree.leaves(u_ours), jax.tree.leaves(u_theirs)):
      np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["sgd", "muon"])
def test_each_param_groups_lr_multiplier_scales_only_its_updates(name):
  from helpers import tiny_config  # imports jax's config: after conftest's environment
  base = {"optimizer.name": name, "optimizer.weight_decay": 0.0, "optimizer.clip_norm": 0.0,
          "model.tie_embeddings": False, "schedule.warmup_steps": 0,
          **({"optimizer.momentum": 0.0} if name == "sgd" else {})}
  trainer = train.Trainer(tiny_config(**base))
  mults = {"embed": 2.0, "matrices": 0.5, "head": 4.0, "norms": 0.25}
  updates = []
  for over in ({}, {f"optimizer.lr_mult_{g}": m for g, m in mults.items()}):
    hp = train.hparams(tiny_config(**base, **over))
    state = trainer.init(jax.random.key(0), hp)
    grads = jax.tree.map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape)),
                         state.params)
    updates.append(trainer.optimizer(hp).update(grads, state.opt_state, state.params)[0])
  seen = set()
  for (path, plain), scaled in zip(jax.tree_util.tree_flatten_with_path(updates[0])[0],
                                   jax.tree.leaves(updates[1])):
    keys = tuple(str(k.key) for k in path)
    group = model_lib.LR_GROUPS[model_lib.lr_group(keys)]
    seen.add(group)
    # multipliers are powers of two: exact; the update before the LR is the same
    np.testing.assert_array_equal(scaled, plain * mults[group], err_msg=str(keys))
  assert seen == set(model_lib.LR_GROUPS)


# ------------------------------------------------------- hyperparameter schedules

ALL_FAMILIES = ["adamw", "adam", "sgd", "radam", "lion", "gi_adam", "gi_adam_bc", "muon",
                "adamw_normalized", "schedule_free_adamw"]


def _todays_chain(name, hp, lr):
  """The chain `make` built before hyperparameter schedules, written out."""
  parts = [optax.clip_by_global_norm(jnp.where(hp.clip_norm > 0, hp.clip_norm, jnp.inf)),
           optimizers._scale_by(name, False, hp, optimizers.every_2d_matrix)]
  if name != "adam":
    parts.append(optax.add_decayed_weights(hp.weight_decay, mask=MASK))
  parts.append(optimizers.scale_by_grouped_lr(lr, hp.lr_mults, optimizers.one_group))
  if name == "schedule_free_adamw":
    return optax.contrib.schedule_free(optax.chain(*parts), learning_rate=lambda c: lr(c - 1),
                                       b1=hp.b1, weight_lr_power=2.0)
  return optax.chain(*parts)


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_without_a_schedule_updates_and_state_are_todays_to_rounding(name):
  s_hp = schedules.make_hparams(**SCHED)
  lr = lambda c: schedules.schedule(c, s_hp)  # noqa: E731
  hp = optimizers.make_hparams(b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1, momentum=0.9,
                               clip_norm=1.0, total_steps=6)

  def run(make_tx):
    @jax.jit   # hp an argument, as in training: traced, not constants XLA could fold
    def steps(params, hp):
      tx = make_tx(hp)
      state, out = tx.init(params), []
      for i in range(4):
        updates, state = tx.update(_grads(i), state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
      return out, state
    return steps(PARAMS, hp)

  ours, s_ours = run(lambda h: optimizers.make(name, nesterov=False, hp=h, learning_rate=lr))
  theirs, s_theirs = run(lambda h: _todays_chain(name, h, lr))
  assert jax.tree.structure(s_ours) == jax.tree.structure(s_theirs)   # old checkpoints load
  # Two programs, compiled apart: XLA may fuse or vectorise them differently (it does on some
  # CPUs without AVX-512), so a few float32 ulps are allowed; a changed formula is far larger.
  for a, b in zip(jax.tree.leaves((ours, s_ours)), jax.tree.leaves((theirs, s_theirs))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_value_at_is_a_linear_warmup_then_a_linear_cooldown():
  # start 0.5 -> 0.75 over updates 0..3, constant, then -> 0.5 over the last 4 of 12
  ramp = optimizers.Ramp(start=jnp.float32(0.5), warmup_steps=jnp.int32(4),
                         end=jnp.float32(0.5), cooldown_steps=jnp.int32(4))
  got = optimizers.value_at(jnp.arange(14), jnp.float32(0.75), ramp, jnp.int32(12))
  want = [0.5, 0.5625, 0.625, 0.6875, 0.75, 0.75, 0.75, 0.75,   # warmup; at 4 the value
          0.75, 0.6875, 0.625, 0.5625, 0.5, 0.5]                # cooldown from 8; past T: end
  np.testing.assert_array_equal(got, np.float32(want))
  none = optimizers.Ramp(start=jnp.float32(0.1), warmup_steps=jnp.int32(0),
                         end=jnp.float32(0.1), cooldown_steps=jnp.int32(0))
  np.testing.assert_array_equal(   # no schedule: the value itself at every update
      optimizers.value_at(jnp.arange(14), jnp.float32(0.75), none, jnp.int32(12)), 0.75)


# (family, hyperparameter, its value): a schedule of W = 4, C = 4 of T = 12 updates
# from start to value and on to end, all dyadic so every value is exact in float32.
SCHEDULE_CASES = [("adamw", "b1", 0.75), ("adamw", "b2", 0.875), ("adamw", "weight_decay", 0.25),
                  ("muon", "momentum", 0.875), ("muon", "b1", 0.75), ("sgd", "momentum", 0.75),
                  ("lion", "b2", 0.875), ("schedule_free_adamw", "b2", 0.875),
                  ("schedule_free_adamw", "weight_decay", 0.25)]


@pytest.mark.parametrize("name,h,value", SCHEDULE_CASES, ids=str)
def test_a_scheduled_hyperparameter_is_the_optimizers_at_each_update(name, h, value):
  # Each update of the scheduled optimizer equals one update, from the same state, of
  # the optimizer built with that update's value as a constant.
  lr = lambda c: 1e-2  # noqa: E731
  base = dict(b1=0.75, b2=0.875, eps=1e-6, weight_decay=0.125, momentum=0.75, clip_norm=0.0)
  ramp = dict(start=0.5, warmup_steps=4, end=0.5, cooldown_steps=4)
  want = {t: 0.5 + (value - 0.5) * min(t, 4) / 4 if t < 8 else value + (0.5 - value) * (t - 8) / 4
          for t in range(12)}
  hp = optimizers.make_hparams(**{**base, h: value}, ramps={h: ramp}, total_steps=12)
  np.testing.assert_array_equal(optimizers.values_at(hp, jnp.arange(12))[h],
                                np.float32([want[t] for t in range(12)]))
  tx = optimizers.make(name, nesterov=False, learning_rate=lr, hp=hp)
  params, state = PARAMS, tx.init(PARAMS)
  for t in range(12):
    const = optimizers.make(name, nesterov=False, learning_rate=lr,
                            hp=optimizers.make_hparams(**{**base, h: want[t]}, total_steps=12))
    u_sched, next_state = tx.update(_grads(t), state, params)
    u_const, _ = const.update(_grads(t), state, params)
    for a, b in zip(jax.tree.leaves(u_sched), jax.tree.leaves(u_const)):
      np.testing.assert_array_equal(a, b, err_msg=f"update {t}")
    params, state = optax.apply_updates(params, u_sched), next_state


@pytest.mark.parametrize("name", ["adamw", "sgd", "muon"])
def test_untied_weight_decay_is_wd_times_the_params_not_times_the_lr(name):
  lr = lambda c: 1e-2 * (c + 1)  # noqa: E731
  numbers = dict(b1=0.75, b2=0.875, momentum=0.75, clip_norm=0.0, total_steps=12)
  ramps = {"weight_decay": dict(start=0.0, warmup_steps=4, end=0.0, cooldown_steps=0)}
  untied = optimizers.make(name, nesterov=False, learning_rate=lr, hp=optimizers.make_hparams(
      weight_decay=1e-3, weight_decay_tied=False, ramps=ramps, **numbers))
  plain = optimizers.make(name, nesterov=False, learning_rate=lr,
                          hp=optimizers.make_hparams(weight_decay=0.0, **numbers))
  state = plain.init(PARAMS)
  for t in range(6):
    wd = 1e-3 * min(t, 4) / 4
    got, new_state = untied.update(_grads(t), state, PARAMS)
    want, _ = plain.update(_grads(t), state, PARAMS)
    np.testing.assert_allclose(got["w"], want["w"] - wd * PARAMS["w"], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got["b"], want["b"])   # vectors are not decayed
    state = new_state


def test_a_grid_over_schedule_numbers_compiles_once():
  def step(hp):
    tx = optimizers.make("muon", nesterov=False, hp=hp, learning_rate=lambda c: 1e-2)
    params, state = PARAMS, tx.init(PARAMS)
    for i in range(3):
      updates, state = tx.update(_grads(i), state, params)
      params = optax.apply_updates(params, updates)
    return params["w"]
  f = jax.jit(jax.vmap(step))

  def grid(starts, warmups, tied):
    hps = [optimizers.make_hparams(momentum=0.95, weight_decay=0.1, total_steps=3, ramps={
        "momentum": dict(start=s, warmup_steps=w), "b2": dict(end=0.5, cooldown_steps=w),
        "weight_decay": dict(start=0.0, warmup_steps=w)}, weight_decay_tied=t)
        for s, w, t in zip(starts, warmups, tied)]
    return jax.tree.map(lambda *x: jnp.stack(x), *hps)
  out1 = f(grid([0.85, 0.5], [2, 3], [True, False]))
  out2 = f(grid([0.95, 0.0], [0, 1], [False, True]))
  assert f._cache_size() == 1
  assert not np.allclose(out1, out2) and not np.allclose(out1[0], out1[1])
