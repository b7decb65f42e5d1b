"""Model: causal, every option builds and runs, parameter count as computed."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from warmup_research.model import ModelConfig, TransformerLM, num_params

OPTIONS = [dict(norm="pre"), dict(norm="post"), dict(qk_norm=True),
           dict(tie_embeddings=False), dict(dtype="bfloat16")]


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
