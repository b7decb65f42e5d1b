"""Ablation: warmup-stable-decay vs cosine, and warmup shape (Hägele et al.
2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations").

Claims: (a) a constant LR after warmup followed by a short cooldown (20% of
training; linear, or 1 - sqrt as they recommend) matches a cosine schedule
at equal steps; (b) at equal warmup length, the warmup shape (linear,
cosine, exponential) matters little.

Run (CPU scale, about 5 minutes on 2 cores; writes results/wsd/):

    ./launch.sh experiments/wsd.py
    # GPU scale (d_model 512, 8 layers, seq 256, 4000 steps):
    ./launch.sh experiments/wsd.py:gpu --workdir results/wsd_gpu

Grid, at peak LR 3e-3, 400 steps, 2 seeds, Adam (b2 0.95), warmup 10% of
training: decay {cosine to 10% of peak, cosine to 0, WSD + linear cooldown,
WSD + 1-sqrt cooldown} with linear warmup, and warmup shape {cosine,
exponential} with cosine decay to 10%. Every shape is a traced number: the
whole grid is ONE compiled program of 12 variants.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=400, gpu_steps=4000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.optimizer.peak_lr = 3e-3
  c.schedule.warmup_ratio = 0.1
  c.schedule.final_frac = 0.1
  return c


def get_sweep(arg=None):
  del arg
  decays = [{"schedule.decay_shape": "cosine"},
            {"schedule.decay_shape": "cosine", "schedule.final_frac": 0.0},
            {"schedule.decay_shape": "wsd", "schedule.final_frac": 0.0,
             "schedule.cooldown_ratio": 0.2, "schedule.cooldown_shape": "linear"},
            {"schedule.decay_shape": "wsd", "schedule.final_frac": 0.0,
             "schedule.cooldown_ratio": 0.2, "schedule.cooldown_shape": "1-sqrt"}]
  shapes = [{"schedule.warmup_shape": s} for s in ("cosine", "exponential")]
  return product(decays + shapes, axis("seed", [0, 1]))
