"""Ablation: layer-norm placement (Xiong et al. 2020, "On Layer Normalization
in the Transformer Architecture").

Claim: post-LN transformers need learning-rate warmup at peak LRs where
pre-LN transformers train fine without it.

Run (CPU scale, about 6 minutes on 2 cores; writes results/ln_placement/):

    ./launch.sh experiments/ln_placement.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 steps):
    ./launch.sh experiments/ln_placement.py:gpu --workdir results/ln_placement_gpu

Grid: norm {pre, post} x warmup {0, 100} steps (linear) x peak LR
{1e-3, 3e-3, 1e-2}, Adam (b2 0.98, no weight decay, no clipping, so nothing
hides the instability), cosine decay, byte-level Python stdlib text. `norm`
is static, so the grid is two compiled programs of six variants each.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product


def get_config(arg=None):
  c = config_lib.default_config()
  if arg == "gpu":
    c.model.d_model, c.model.num_layers, c.model.num_heads = 512, 8, 8
    c.data.seq_len, c.data.batch_size = 256, 64
    c.train.total_steps, c.train.eval_every, c.train.checkpoint_every = 3000, 250, 500
  else:
    c.model.d_model, c.model.num_layers, c.model.num_heads = 64, 6, 4
    c.data.seq_len, c.data.batch_size = 64, 16
    c.train.total_steps, c.train.eval_every, c.train.checkpoint_every = 400, 50, 100
  c.train.eval_batches = 4
  c.train.log_every = 10
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.98
  c.optimizer.clip_norm = 0.0
  c.optimizer.weight_decay = 0.0
  c.schedule.warmup_shape = "linear"
  c.schedule.decay_shape = "cosine"
  return c


def get_sweep(arg=None):
  warmups = [0, 1000] if arg == "gpu" else [0, 100]
  return product(axis("model.norm", ["pre", "post"]),
                 axis("schedule.warmup_steps", warmups),
                 axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2]))
