"""A decoder-only transformer LM in Flax NNX.

Shapes in names: B batch, L sequence, D d_model, H heads, K head dim,
F MLP hidden, V vocab.

Options (all static: they shape the program): the block, 'gpt2' (LayerNorm,
learned absolute positions, a GELU MLP) or 'llama' (RMSNorm, rotary position
embeddings on queries and keys, a SwiGLU MLP of 2/3 the hidden width, so the
same parameters; Touvron et al. 2023); pre-norm (`x + f(N(x))`, with a final
norm) or post-norm (`N(x + f(x))`, Vaswani et al. 2017; no final norm);
QK-norm (the block's norm of queries and keys per head, Dehghani et al. 2023;
before the rotation, as OLMo 2 and Qwen 3 do); tied or separate output
embeddings; compute dtype float32 or bfloat16 with float32 parameters. No
block has biases in its matmuls; only LayerNorm has one. Weights are
N(0, init_scale^2), the residual output projections
N(0, (init_scale / sqrt(2 * layers))^2) (GPT-2).
Attention is causal: `softmax(q k^T / sqrt(K) + causal bias) v` with the
softmax in float32. `attention` picks how (static): 'einsum' (default; written
out with an additive mask, faster on CPU than the next one: benchmarks/NOTES.md,
attempt 13), 'xla' (`jax.nn.dot_product_attention`'s XLA path) or 'cudnn' (its
cuDNN flash kernel: GPU and bfloat16 only).
The z-loss (Wortsman et al. 2023) lives in `train.loss_fn`.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int = 256
  d_model: int = 128
  num_layers: int = 2
  num_heads: int = 4
  mlp_ratio: float = 4.0
  max_len: int = 128
  norm: str = "pre"
  qk_norm: bool = False
  init_scale: float = 0.02
  tie_embeddings: bool = True
  dtype: str = "float32"
  attention: str = "einsum"
  block: str = "gpt2"

  @classmethod
  def from_config(cls, cfg) -> "ModelConfig":
    """From a run config (`cfg.model` plus `data.seq_len` as max_len)."""
    m = cfg.model
    return cls(vocab_size=m.vocab_size, d_model=m.d_model, num_layers=m.num_layers,
               num_heads=m.num_heads, mlp_ratio=m.mlp_ratio, max_len=cfg.data.seq_len,
               norm=m.norm, qk_norm=m.qk_norm, init_scale=m.init_scale,
               tie_embeddings=m.tie_embeddings, dtype=m.dtype, attention=m.attention,
               block=m.block)

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def mlp_hidden(self) -> int:
    """F: int(mlp_ratio * D) for the GELU MLP; 2/3 of it for SwiGLU, whose
    three matrices then hold what the GELU MLP's two do (LLaMA's rule)."""
    f = self.mlp_ratio * self.d_model
    return int(f) if self.block == "gpt2" else int(2 * f / 3)


ROPE_BASE = 10000.0   # the rotary embeddings' wavelength base (RoFormer, LLaMA)


def _layer_norm(d, rngs):
  # float32 statistics whatever the compute dtype.
  return nnx.LayerNorm(d, epsilon=1e-6, dtype=jnp.float32, rngs=rngs)


def _norm(cfg: ModelConfig, d, rngs):
  """The block's norm: LayerNorm (gpt2) or RMSNorm (llama), float32 statistics."""
  if cfg.block == "llama":
    return nnx.RMSNorm(d, epsilon=1e-6, dtype=jnp.float32, rngs=rngs)
  return _layer_norm(d, rngs)


def rotary(x_BxLxHxK, base: float = ROPE_BASE):
  """Rotary position embedding (Su et al. 2021) of position l = 0 .. L-1.

  Dims i and i + K/2 (the half-split pairing of GPT-NeoX and HF LLaMA) form
  a plane rotated by the angle l * base^(-2i / K), so a rotated query and
  key meet in `q . k` through their offset l - m alone. Computed in float32.
  """
  seq_len, k = x_BxLxHxK.shape[1], x_BxLxHxK.shape[3]
  # Constants of the static shape, in float64 before the cast (as the bias in
  # causal_attention), so every program gets the same angles.
  inv_freq_K2 = base ** (-np.arange(0, k, 2, dtype=np.float64) / k)
  angle_LxK2 = np.arange(seq_len, dtype=np.float64)[:, None] * inv_freq_K2[None]
  cos_1xLx1xK2 = np.cos(angle_LxK2).astype(np.float32)[None, :, None]
  sin_1xLx1xK2 = np.sin(angle_LxK2).astype(np.float32)[None, :, None]
  x1_BxLxHxK2, x2_BxLxHxK2 = jnp.split(x_BxLxHxK.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1_BxLxHxK2 * cos_1xLx1xK2 - x2_BxLxHxK2 * sin_1xLx1xK2,
                          x2_BxLxHxK2 * cos_1xLx1xK2 + x1_BxLxHxK2 * sin_1xLx1xK2],
                         axis=-1).astype(x_BxLxHxK.dtype)


class Attention(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, h = cfg.d_model, cfg.num_heads
    k = d // h
    init = nnx.initializers.normal(cfg.init_scale)
    out_init = nnx.initializers.normal(cfg.init_scale / math.sqrt(2 * cfg.num_layers))
    self.cfg = cfg
    self.w_qkv_Dx3xHxK = nnx.Param(init(rngs.params(), (d, 3, h, k)))
    self.w_out_HxKxD = nnx.Param(out_init(rngs.params(), (h, k, d)))
    if cfg.qk_norm:
      self.q_norm = _norm(cfg, k, rngs)
      self.k_norm = _norm(cfg, k, rngs)

  def __call__(self, x_BxLxD):
    dt = self.cfg.compute_dtype
    w_qkv_Dx3xHxK = self.w_qkv_Dx3xHxK[...].astype(dt)
    d, _, h, k = w_qkv_Dx3xHxK.shape
    # One [D, 3HK] matmul; the split is a reshape (row-major, no transpose).
    qkv_BxLx3xHxK = (x_BxLxD @ w_qkv_Dx3xHxK.reshape(d, 3 * h * k)).reshape(
        *x_BxLxD.shape[:2], 3, h, k)
    q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = (qkv_BxLx3xHxK[:, :, i] for i in range(3))
    if self.cfg.qk_norm:
      q_BxLxHxK = self.q_norm(q_BxLxHxK).astype(dt)
      k_BxLxHxK = self.k_norm(k_BxLxHxK).astype(dt)
    if self.cfg.block == "llama":
      q_BxLxHxK, k_BxLxHxK = rotary(q_BxLxHxK), rotary(k_BxLxHxK)
    o_BxLxHxK = causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, self.cfg.attention)
    return o_BxLxHxK.reshape(*o_BxLxHxK.shape[:2], h * k) @ self.w_out_HxKxD[...].reshape(
        h * k, d).astype(dt)


def causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, impl: str = "einsum"):
  """softmax(q k^T / sqrt(K) + causal bias) v: position l attends to m <= l."""
  if impl in ("xla", "cudnn"):
    return jax.nn.dot_product_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, is_causal=True,
                                        implementation=impl)
  seq_len, head_dim = q_BxLxHxK.shape[1], q_BxLxHxK.shape[3]
  # A constant additive bias, not `where` on the scores (faster on XLA CPU).
  bias_LxL = np.where(np.tril(np.ones((seq_len, seq_len), bool)), 0.0,
                      -1e30).astype(np.float32)
  q_BxLxHxK = q_BxLxHxK * np.asarray(1 / math.sqrt(head_dim), q_BxLxHxK.dtype)
  s_BxHxLxL = jnp.einsum("blhk,bmhk->bhlm", q_BxLxHxK, k_BxLxHxK,
                         preferred_element_type=jnp.float32)  # as the xla path does
  p_BxHxLxL = jax.nn.softmax(s_BxHxLxL + bias_LxL, axis=-1).astype(v_BxLxHxK.dtype)
  return jnp.einsum("bhlm,bmhk->blhk", p_BxHxLxL, v_BxLxHxK)


def _mlp_inits(cfg: ModelConfig):
  """(d, hidden width, init, output init) of either MLP: the output layer's
  init scaled by 1 / sqrt(2 layers), as GPT-2's residual projections."""
  return (cfg.d_model, cfg.mlp_hidden, nnx.initializers.normal(cfg.init_scale),
          nnx.initializers.normal(cfg.init_scale / math.sqrt(2 * cfg.num_layers)))


class Mlp(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, f, init, out_init = _mlp_inits(cfg)
    self.dtype = cfg.compute_dtype
    self.w_in_DxF = nnx.Param(init(rngs.params(), (d, f)))
    self.w_out_FxD = nnx.Param(out_init(rngs.params(), (f, d)))

  def __call__(self, x_BxLxD):
    h_BxLxF = jax.nn.gelu(x_BxLxD @ self.w_in_DxF[...].astype(self.dtype))
    return h_BxLxF @ self.w_out_FxD[...].astype(self.dtype)


class SwiGlu(nnx.Module):
  """`(silu(x W_gate) * (x W_up)) W_down` (Shazeer 2020), LLaMA's MLP."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, f, init, out_init = _mlp_inits(cfg)
    self.dtype = cfg.compute_dtype
    # gate and up as one [D, 2F] matmul (as the attention's qkv), split by a reshape
    self.w_in_Dx2xF = nnx.Param(init(rngs.params(), (d, 2, f)))
    self.w_out_FxD = nnx.Param(out_init(rngs.params(), (f, d)))

  def __call__(self, x_BxLxD):
    w_in_Dx2xF = self.w_in_Dx2xF[...].astype(self.dtype)
    d, _, f = w_in_Dx2xF.shape
    h_BxLx2xF = (x_BxLxD @ w_in_Dx2xF.reshape(d, 2 * f)).reshape(*x_BxLxD.shape[:2], 2, f)
    h_BxLxF = jax.nn.silu(h_BxLx2xF[:, :, 0]) * h_BxLx2xF[:, :, 1]
    return h_BxLxF @ self.w_out_FxD[...].astype(self.dtype)


class Block(nnx.Module):

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.pre_ln = cfg.norm == "pre"
    self.dtype = cfg.compute_dtype
    self.ln_attn = _norm(cfg, cfg.d_model, rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.ln_mlp = _norm(cfg, cfg.d_model, rngs)
    self.mlp = (SwiGlu if cfg.block == "llama" else Mlp)(cfg, rngs=rngs)

  def __call__(self, x_BxLxD):
    dt = self.dtype
    if self.pre_ln:
      x_BxLxD = x_BxLxD + self.attn(self.ln_attn(x_BxLxD).astype(dt))
      return x_BxLxD + self.mlp(self.ln_mlp(x_BxLxD).astype(dt))
    x_BxLxD = self.ln_attn(x_BxLxD + self.attn(x_BxLxD)).astype(dt)
    return self.ln_mlp(x_BxLxD + self.mlp(x_BxLxD)).astype(dt)


class TransformerLM(nnx.Module):
  """tokens [B, L] int -> logits [B, L, V] float32."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    init = nnx.initializers.normal(cfg.init_scale)
    self.embed_VxD = nnx.Param(init(rngs.params(), (cfg.vocab_size, cfg.d_model)))
    if cfg.block == "gpt2":   # llama's positions are the rotations inside attention
      self.pos_LxD = nnx.Param(init(rngs.params(), (cfg.max_len, cfg.d_model)))
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    if cfg.norm == "pre":
      self.ln_final = _norm(cfg, cfg.d_model, rngs)
    if not cfg.tie_embeddings:
      self.unembed_DxV = nnx.Param(init(rngs.params(), (cfg.d_model, cfg.vocab_size)))

  def __call__(self, tokens_BxL):
    cfg, dt = self.cfg, self.cfg.compute_dtype
    seq_len = tokens_BxL.shape[1]
    x_BxLxD = self.embed_VxD[...][tokens_BxL]
    if cfg.block == "gpt2":
      x_BxLxD = x_BxLxD + self.pos_LxD[...][:seq_len]
    x_BxLxD = x_BxLxD.astype(dt)
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD)
    if cfg.norm == "pre":
      x_BxLxD = self.ln_final(x_BxLxD).astype(dt)
    unembed_DxV = (self.embed_VxD[...].T if cfg.tie_embeddings else self.unembed_DxV[...])
    return jnp.einsum("bld,dv->blv", x_BxLxD, unembed_DxV.astype(dt)).astype(jnp.float32)


# A block's weights as matrices, (input axes, output axes) of each array; an
# axis in neither (q/k/v, gate/up) indexes separate matrices. Muon
# orthogonalises each such matrix (optimizers.py); embeddings, positions, an
# untied head and norms are not among them.
HIDDEN_MATRIX_AXES = {"w_qkv_Dx3xHxK": ((0,), (2, 3)), "w_out_HxKxD": ((0, 1), (2,)),
                      "w_in_DxF": ((0,), (1,)), "w_in_Dx2xF": ((0,), (2,)),
                      "w_out_FxD": ((0,), (1,))}


def hidden_matrix_axes(path: tuple[str, ...], leaf) -> tuple | None:
  """(input axes, output axes) of the param at `path` (its keys in the
  params dict) if it is a block's weight matrix, else None."""
  del leaf
  return HIDDEN_MATRIX_AXES.get(path[-1]) if path[0] == "blocks" else None


LR_GROUPS = ("embed", "matrices", "head", "norms")


def lr_group(path: tuple[str, ...]) -> int:
  """The index in LR_GROUPS of the param at `path` (its keys in the params
  dict): the token embedding (the head too, when tied) and positions, the
  blocks' weight matrices (`HIDDEN_MATRIX_AXES`, Muon's), an untied head,
  or anything else (norm scales and biases, QK-norm's)."""
  if path[-1] in ("embed_VxD", "pos_LxD"):
    return 0
  if path[0] == "blocks" and path[-1] in HIDDEN_MATRIX_AXES:
    return 1
  return 2 if path[-1] == "unembed_DxV" else 3


def num_params(params) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(params))


def param_count(cfg: ModelConfig) -> int:
  """The parameters `TransformerLM(cfg)` has (`num_params` of its state),
  from the config alone."""
  d, k = cfg.d_model, cfg.d_model // cfg.num_heads
  vectors = 1 if cfg.block == "llama" else 2   # per norm: RMSNorm a scale, LayerNorm a bias too
  per_layer = (4 * d * d + _mlp_matrices(cfg) * d * cfg.mlp_hidden + 2 * vectors * d
               + (2 * vectors * k if cfg.qk_norm else 0))
  final_norm = vectors * d if cfg.norm == "pre" else 0
  return embedding_params(cfg) + cfg.num_layers * per_layer + final_norm


def embedding_params(cfg: ModelConfig) -> int:
  """The token embedding, an untied head and learned positions: what the
  non-embedding count (Kaplan et al. 2020's N, a size ladder's x) leaves out."""
  positions = cfg.max_len * cfg.d_model if cfg.block == "gpt2" else 0
  return cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2) + positions


def non_embedding_params(cfg: ModelConfig) -> int:
  return param_count(cfg) - embedding_params(cfg)


def _mlp_matrices(cfg: ModelConfig) -> int:
  return 3 if cfg.block == "llama" else 2   # SwiGLU: gate, up, down


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
  """Training FLOPs per token: 6 * matmul params + attention (fwd+bwd = 3x fwd).

  Counts 2 FLOPs per multiply-add; attention scores and values are
  2 * 2 * L * D per token per layer forward (the full L x L, as computed).
  The elementwise work (norms, activations, rotations) is left out.
  """
  d, f = cfg.d_model, cfg.mlp_hidden
  matmul_params = (cfg.num_layers * (4 * d * d + _mlp_matrices(cfg) * d * f)
                   + d * cfg.vocab_size)
  attention = cfg.num_layers * 2 * 2 * seq_len * d
  return 6 * matmul_params + 3 * attention
