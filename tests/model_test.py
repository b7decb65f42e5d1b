"""Model: causal, every option builds and runs, parameter count as computed;
the llama block's pieces (rotary embeddings, RMSNorm, SwiGLU) against their
formulas and one block against a NumPy forward pass."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from warmup_research import model as model_lib
from warmup_research.model import ModelConfig, TransformerLM, num_params

OPTIONS = [dict(norm="pre"), dict(norm="post"), dict(qk_norm=True),
           dict(tie_embeddings=False), dict(dtype="bfloat16"), dict(attention="xla"),
           dict(block="llama"), dict(block="llama", norm="post", qk_norm=True),
           dict(block="llama", dtype="bfloat16", attention="xla")]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: str(o))
def test_causal_changing_token_t_never_changes_logits_before_t(opts):
  cfg = ModelConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, max_len=16, **opts)
  model = TransformerLM(cfg, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)
  base = model(tokens)
  assert base.shape == (2, 16, 64) and base.dtype == jnp.float32
  for t in (0, 7, 15):
    changed = model(tokens.at[:, t].set((tokens[:, t] + 1) % 64))
    np.testing.assert_array_equal(base[:, :t], changed[:, :t])
    assert not np.allclose(base[:, t:], changed[:, t:])


def test_param_count_and_dtype():
  cfg = ModelConfig(vocab_size=256, d_model=128, num_layers=2, num_heads=4, max_len=128)
  params = nnx.to_pure_dict(nnx.state(TransformerLM(cfg, rngs=nnx.Rngs(0))))
  d, f = 128, 512
  per_layer = 4 * d * d + 2 * d * f + 4 * d  # attention, MLP, two LNs
  assert num_params(params) == 256 * d + 128 * d + 2 * per_layer + 2 * d
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  bf = TransformerLM(ModelConfig(dtype="bfloat16", max_len=8), rngs=nnx.Rngs(0))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(bf)))


@pytest.mark.parametrize("opts", [
    {}, dict(qk_norm=True, tie_embeddings=False), dict(norm="post", qk_norm=True),
    dict(block="llama"), dict(block="llama", qk_norm=True, tie_embeddings=False),
    dict(block="llama", norm="post", mlp_ratio=2.5)], ids=lambda o: str(o))
def test_param_count_from_the_config_is_the_modules(opts):
  cfg = ModelConfig(vocab_size=64, d_model=24, num_layers=2, num_heads=3, max_len=16, **opts)
  params = nnx.to_pure_dict(nnx.state(TransformerLM(cfg, rngs=nnx.Rngs(0))))
  assert model_lib.param_count(cfg) == num_params(params)


def test_llama_has_no_biases_and_no_learned_positions():
  cfg = ModelConfig(vocab_size=64, d_model=32, max_len=16, block="llama", qk_norm=True)
  params = nnx.to_pure_dict(nnx.state(TransformerLM(cfg, rngs=nnx.Rngs(0))))
  names = {str(k) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
           for k in path}
  assert not {n for n in names if "bias" in n or "pos" in n}, names
  assert isinstance(TransformerLM(cfg, rngs=nnx.Rngs(0)).blocks[0].mlp, model_lib.SwiGlu)


def test_swiglu_at_two_thirds_width_has_the_gelu_mlps_params_and_flops():
  # 2/3 * 4 * 48 = 128 exactly: the same MLP parameters, so the same FLOPs
  gpt2, llama = (ModelConfig(d_model=48, num_heads=4, block=b) for b in ("gpt2", "llama"))
  assert (gpt2.mlp_hidden, llama.mlp_hidden) == (192, 128)
  assert model_lib.flops_per_token(gpt2, 64) == model_lib.flops_per_token(llama, 64)
  d, f, layers, v, seq = 48, 128, 2, 256, 64
  assert model_lib.flops_per_token(llama, seq) == (
      6 * (layers * (4 * d * d + 3 * d * f) + d * v) + 3 * layers * 4 * seq * d)
  # no position table, one vector per norm: fewer parameters than gpt2's
  assert model_lib.param_count(gpt2) - model_lib.param_count(llama) == (
      128 * d + layers * 2 * d + d)


def test_rotary_turns_each_pair_of_dims_by_position_times_its_frequency():
  # K = 4: pairs (0, 2) at frequency 1 and (1, 3) at 10000^(-1/2) = 0.01 rad per position
  x_1xLx2x4 = jnp.asarray(np.tile(np.eye(4)[:2][None, None], (1, 3, 1, 1)), jnp.float32)
  got = np.asarray(model_lib.rotary(x_1xLx2x4))
  np.testing.assert_array_equal(got[0, 0], np.eye(4)[:2])   # position 0: no turn
  for pos in (1, 2):
    c1, s1, c2, s2 = np.cos(pos), np.sin(pos), np.cos(0.01 * pos), np.sin(0.01 * pos)
    np.testing.assert_allclose(got[0, pos], [[c1, 0, s1, 0], [0, c2, 0, s2]], atol=1e-6)
  # a rotation: lengths are kept
  x = jax.random.normal(jax.random.key(0), (2, 16, 3, 8))
  np.testing.assert_allclose(np.linalg.norm(model_lib.rotary(x), axis=-1),
                             np.linalg.norm(x, axis=-1), rtol=1e-5)


def test_rotary_scores_depend_on_the_offset_alone():
  # One query and one key vector at every position: after the rotation their
  # dot product is a function of l - m, and not a constant.
  q_K, k_K = jax.random.normal(jax.random.key(1), (2, 16))
  seq = 12
  q_1xLx1xK = model_lib.rotary(jnp.broadcast_to(q_K, (1, seq, 1, 16)))
  k_1xLx1xK = model_lib.rotary(jnp.broadcast_to(k_K, (1, seq, 1, 16)))
  s_LxL = np.einsum("lk,mk->lm", q_1xLx1xK[0, :, 0], k_1xLx1xK[0, :, 0])
  for offset in range(-seq + 1, seq):
    diagonal = np.diagonal(s_LxL, offset=-offset)   # entries with l - m == offset
    np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-5, atol=1e-5)
  assert np.ptp([s_LxL[o, 0] for o in range(seq)]) > 0.1


def _rotary_reference(x_BxLxHxK, base=10000.0):
  """RoPE in float64 as complex numbers: z_i = x_i + j x_(i+K/2) times e^(j l theta_i)."""
  x = np.asarray(x_BxLxHxK, np.float64)
  half = x.shape[-1] // 2
  theta = base ** (-2 * np.arange(half) / x.shape[-1])
  z = (x[..., :half] + 1j * x[..., half:]) * np.exp(
      1j * np.arange(x.shape[1])[None, :, None, None] * theta)
  return np.concatenate([z.real, z.imag], axis=-1)


def _rms_norm_reference(x, scale, eps=1e-6):
  x = np.asarray(x, np.float64)
  return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + eps) * np.asarray(scale)


def _silu(x):
  return x / (1 + np.exp(-x))


def test_rms_norm_is_x_over_its_root_mean_square_times_the_scale():
  norm = model_lib._norm(ModelConfig(block="llama"), 8, nnx.Rngs(0))
  assert isinstance(norm, nnx.RMSNorm)
  scale = jax.random.normal(jax.random.key(0), (8,)) + 1
  norm.scale[...] = scale
  x = jax.random.normal(jax.random.key(1), (3, 5, 8)) * 4 + 1
  np.testing.assert_allclose(norm(x), _rms_norm_reference(x, scale), rtol=1e-5, atol=1e-6)


def test_swiglu_is_silu_gate_times_up_then_down():
  cfg = ModelConfig(d_model=16, mlp_ratio=3.0, block="llama", init_scale=0.5)
  mlp = model_lib.SwiGlu(cfg, rngs=nnx.Rngs(0))
  w_in, w_out = (np.asarray(mlp.w_in_Dx2xF[...], np.float64), np.asarray(mlp.w_out_FxD[...]))
  assert w_in.shape == (16, 2, 32) and w_out.shape == (32, 16)
  x = np.asarray(jax.random.normal(jax.random.key(1), (2, 7, 16)))
  want = (_silu(x @ w_in[:, 0]) * (x @ w_in[:, 1])) @ w_out
  np.testing.assert_allclose(mlp(jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)


def _llama_block_reference(p, x, norm, qk_norm):
  """One llama block in float64 NumPy, from the module's parameters `p`."""
  def attention(h):
    w_qkv = np.asarray(p["attn"]["w_qkv_Dx3xHxK"], np.float64)
    q, k, v = (np.einsum("bld,dhk->blhk", h, w_qkv[:, i]) for i in range(3))
    if qk_norm:
      q = _rms_norm_reference(q, p["attn"]["q_norm"]["scale"])
      k = _rms_norm_reference(k, p["attn"]["k_norm"]["scale"])
    o = _reference_attention(_rotary_reference(q), _rotary_reference(k), v)
    return np.einsum("blhk,hkd->bld", o, np.asarray(p["attn"]["w_out_HxKxD"], np.float64))

  def mlp(h):
    w_in = np.asarray(p["mlp"]["w_in_Dx2xF"], np.float64)
    return (_silu(h @ w_in[:, 0]) * (h @ w_in[:, 1])) @ np.asarray(p["mlp"]["w_out_FxD"])

  ln_attn = lambda h: _rms_norm_reference(h, p["ln_attn"]["scale"])
  ln_mlp = lambda h: _rms_norm_reference(h, p["ln_mlp"]["scale"])
  if norm == "pre":
    x = x + attention(ln_attn(x))
    return x + mlp(ln_mlp(x))
  x = ln_attn(x + attention(x))
  return ln_mlp(x + mlp(x))


@pytest.mark.parametrize("norm,qk_norm", [("pre", True), ("post", False)])
def test_a_llama_block_matches_a_numpy_forward_pass(norm, qk_norm):
  cfg = ModelConfig(d_model=24, num_heads=3, num_layers=2, mlp_ratio=3.0, block="llama",
                    norm=norm, qk_norm=qk_norm, init_scale=0.3)
  block = model_lib.Block(cfg, rngs=nnx.Rngs(0))
  # every parameter moved off its init (norm scales of one would hide a missing scale)
  state = nnx.state(block, nnx.Param)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  nnx.update(block, jax.tree.unflatten(tree, [
      a + 0.2 * jax.random.normal(key, a.shape) for a, key in zip(leaves, keys)]))
  params = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(block)))
  x = jax.random.normal(jax.random.key(3), (2, 10, 24))
  want = _llama_block_reference(params, np.asarray(x, np.float64), norm, qk_norm)
  np.testing.assert_allclose(block(x), want, rtol=1e-4, atol=1e-5)


def test_post_ln_differs_from_pre_ln():
  tokens = jnp.arange(16)[None] % 64
  outs = [TransformerLM(ModelConfig(vocab_size=64, d_model=32, max_len=16, norm=n),
                        rngs=nnx.Rngs(0))(tokens) for n in ("pre", "post")]
  assert not np.allclose(outs[0], outs[1])


def _reference_attention(q, k, v):
  """Textbook causal attention in float64 NumPy: [B, L, H, K] in and out."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  s = np.einsum("blhk,bmhk->bhlm", q, k) / np.sqrt(q.shape[-1])
  s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
  p = np.exp(s - s.max(-1, keepdims=True))
  return np.einsum("bhlm,bmhk->blhk", p / p.sum(-1, keepdims=True), v)


@pytest.mark.parametrize("impl", ["einsum", "xla"])
def test_attention_matches_the_textbook_formula(impl):
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 9, 3, 8)) * 3
  got = model_lib.causal_attention(q, k, v, impl)
  np.testing.assert_allclose(got, _reference_attention(q, k, v), rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda q, k, v, i=i: jnp.sum(jnp.sin(model_lib.causal_attention(q, k, v, i))),
                    argnums=(0, 1, 2))(q, k, v) for i in ("einsum", "xla")]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_attention_keeps_its_softmax_in_float32():
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 64, 2, 16))
  got = model_lib.causal_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(np.float32), _reference_attention(q, k, v), atol=3e-2)
  # the same rounding as jax.nn.dot_product_attention (float32 scores)
  xla = model_lib.causal_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)), "xla")
  np.testing.assert_allclose(got.astype(np.float32), xla.astype(np.float32), atol=1e-3)
