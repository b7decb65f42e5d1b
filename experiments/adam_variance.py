"""Ablation: Adam's early variance (Liu et al. 2019, "On the Variance of the
Adaptive Learning Rate and Beyond"; Ma & Yarats 2021, "On the adequacy of
untuned warmup for adaptive optimization").

Claims: Adam without warmup trains worse than Adam with warmup; a linear
warmup of about 2 / (1 - beta2) steps (Ma & Yarats' rule of thumb) does about
as well as RAdam's rectification, which needs no warmup.

Run (CPU scale, about 8 minutes on 2 cores; writes results/adam_variance/):

    ./launch.sh experiments/adam_variance.py
    # GPU scale (d_model 512, 8 layers, seq 256, 4000 steps):
    ./launch.sh experiments/adam_variance.py:gpu --workdir results/adam_variance_gpu

Grid, at two beta2 values {0.95, 0.99} and two seeds: Adam with no warmup,
Adam with linear warmup over 2 / (1 - beta2) steps (40 and 200), RAdam with no
warmup. Peak LR 1e-2, cosine decay, no weight decay, no clipping. The
optimizer family is static: two compiled programs (Adam: 8 runs, RAdam: 4).
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=600, gpu_steps=4000)
  c.optimizer.peak_lr = 1e-2
  return c


def get_sweep(arg=None):
  del arg
  points = []
  for b2 in (0.95, 0.99):
    rule = round(2 / (1 - b2))
    for name, warmup in (("adam", 0), ("adam", rule), ("radam", 0)):
      points.append({"optimizer.b2": b2, "optimizer.name": name,
                     "schedule.warmup_steps": warmup})
  return product(points, axis("seed", [0, 1]))
