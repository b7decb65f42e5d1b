"""Model: causal, every option builds and runs, parameter count as computed."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from warmup_research import model as model_lib
from warmup_research.model import ModelConfig, TransformerLM, num_params

OPTIONS = [dict(norm="pre"), dict(norm="post"), dict(qk_norm=True),
           dict(tie_embeddings=False), dict(dtype="bfloat16"), dict(attention="xla")]


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
