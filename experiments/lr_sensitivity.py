"""Ablation: warmup length and learning-rate sensitivity (Wortsman et al.
2023, "Small-scale proxies for large-scale Transformer training
instabilities", Section 3.4 / Figure 9).

Claim: a longer warmup lowers LR sensitivity, the expected excess loss over
the LR range swept: E_lr[min(loss(lr), loss at init) - best loss].

Run (CPU scale, about 10 minutes on 2 cores; writes results/lr_sensitivity/):

    ./launch.sh experiments/lr_sensitivity.py
    # GPU scale (d_model 512/1024, 8 layers, seq 256, 4000 steps):
    ./launch.sh experiments/lr_sensitivity.py:gpu --workdir results/lr_sensitivity_gpu

Grid: width d_model {64, 128} (CPU) x linear warmup {0, 10%, 50%} of 300
steps x peak LR {1e-3, 3e-3, 1e-2, 3e-2}, Adam (b2 0.95, no weight decay or
clipping), cosine decay, 1 seed. Warmup is given as a ratio of training
(`schedule.warmup_ratio`), so it means the same at either scale. Width is
static: two compiled programs of 12 variants each. The summary reports one
LR sensitivity per (width, warmup).
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=300, gpu_steps=4000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.schedule.warmup_ratio = 0.1
  return c


def get_sweep(arg=None):
  widths = [512, 1024] if arg == "gpu" else [64, 128]
  return product(axis("model.d_model", widths),
                 axis("schedule.warmup_ratio", [0.0, 0.1, 0.5]),
                 axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2, 3e-2]))
