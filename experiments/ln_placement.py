"""Ablation: layer-norm placement (Xiong et al. 2020, "On Layer Normalization
in the Transformer Architecture").

Claim: post-LN transformers need learning-rate warmup at peak LRs where
pre-LN transformers train fine without it.

Run (CPU scale, about 10 minutes on 2 cores; writes results/ln_placement/):

    ./launch.sh experiments/ln_placement.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 steps):
    ./launch.sh experiments/ln_placement.py:gpu --workdir results/ln_placement_gpu

Grid: norm {pre, post} x warmup {0, 100} steps (linear) x peak LR
{1e-3, 3e-3, 1e-2}, Adam (b2 0.98, no weight decay, no clipping, so nothing
hides the instability), cosine decay, byte-level Python stdlib text, seeds
{0, 1}. `norm` is static, so the grid is two compiled programs of 12
variants each.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=400, gpu_steps=3000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.98
  return c


def get_sweep(arg=None):
  warmups = [0, 1000] if arg == "gpu" else [0, 100]
  return product(axis("model.norm", ["pre", "post"]),
                 axis("schedule.warmup_steps", warmups),
                 axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2]),
                 axis("seed", [0, 1]))
