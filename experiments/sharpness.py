"""Ablation: warmup and sharpness (Kalra & Barkeshli 2024, "Why Warmup the
Learning Rate? Underlying Mechanisms and Improvements").

Claims: (a) warmup keeps the (Adam-preconditioned) sharpness low early on,
so that larger peak LRs train; (b) GI-Adam (Adam with its second moment
initialised from the first gradient's square) removes much of the need for
warmup.

Run (CPU scale, about 4 minutes on 2 cores, then about 7 for `analyze`;
writes results/sharpness/):

    ./launch.sh experiments/sharpness.py
    # then sharpness and preconditioned sharpness over the saved checkpoints:
    .venv/bin/python -m warmup_research analyze results/sharpness --every 1
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 steps):
    ./launch.sh experiments/sharpness.py:gpu --workdir results/sharpness_gpu

Grid: {Adam, GI-Adam} x linear warmup {0, 100} of 300 steps x peak LR
{3e-3, 1e-2, 3e-2}, b2 0.95, constant LR after warmup (no decay, so the
late-time sharpness is not lowered by a vanishing LR), no weight decay or
clipping, 1 seed. Every checkpoint (each 50 steps) is kept for `analyze`. The optimizer
family is static: two compiled programs of 6 variants each.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=300, gpu_steps=3000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.schedule.decay_shape = "constant"
  c.train.checkpoint_every = 50 if arg != "gpu" else 250
  c.train.keep_checkpoints = 100  # all of them, for `analyze`
  return c


def get_sweep(arg=None):
  warmups = [0, 1000] if arg == "gpu" else [0, 100]
  return product(axis("optimizer.name", ["adam", "gi_adam"]),
                 axis("schedule.warmup_steps", warmups),
                 axis("optimizer.peak_lr", [3e-3, 1e-2, 3e-2]))
