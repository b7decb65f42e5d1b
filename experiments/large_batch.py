"""Ablation: large-batch training with the linear scaling rule (Goyal et al.
2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour").

Claim: when the LR is scaled linearly with the batch size (k x batch ->
k x LR), a gradual warmup is what lets the large batch train as well as the
small one at the same number of examples; without it, early training breaks.

Run (CPU scale, about 10 minutes on 2 cores; writes results/large_batch/):

    ./launch.sh experiments/large_batch.py
    # GPU scale (d_model 512, 8 layers, seq 256; batch 32 -> 256):
    ./launch.sh experiments/large_batch.py:gpu --workdir results/large_batch_gpu

Grid, at equal examples seen (CPU: 800 x 16 = 100 x 128 sequences):
  batch 16,  800 steps, peak LR eta           in {1e-3, 3e-3}
  batch 128, 100 steps, peak LR 8 x eta       in {8e-3, 2.4e-2}
each with linear warmup {0, 25% of training} (Goyal et al. warm up over 5 of
90 epochs; at 100 steps a quarter is 25 updates). Adam (b2 0.95), cosine
decay, no weight decay or clipping, 1 seed. Batch size and step count are
static: two compiled programs of 4 variants each. Goyal et al. used SGD with
momentum; `:sgd` runs the same grid with SGD + Nesterov momentum 0.9 at
30x the LRs.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import product

from ._ablation import ablation_scale

SMALL, LARGE = 16, 128


def get_config(arg=None):
  scale = "gpu" if arg == "gpu" else None
  c = ablation_scale(config_lib.default_config(), scale, steps=800, gpu_steps=8000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  if arg == "sgd":
    c.optimizer.name, c.optimizer.nesterov, c.optimizer.momentum = "sgd", True, 0.9
  c.data.batch_size = 32 if arg == "gpu" else SMALL
  return c


def get_sweep(arg=None):
  base = get_config(arg)
  small, steps = base.data.batch_size, base.train.total_steps
  k = LARGE // SMALL
  lr_mult = 30.0 if arg == "sgd" else 1.0
  points = []
  for batch, total, lr_scale in ((small, steps, 1), (small * k, steps // k, k)):
    for eta in (1e-3, 3e-3):
      for ratio in (0.0, 0.25):
        points.append({"data.batch_size": batch, "train.total_steps": total,
                       "train.eval_every": total // 8, "train.checkpoint_every": total // 4,
                       "optimizer.peak_lr": eta * lr_scale * lr_mult,
                       "schedule.warmup_ratio": ratio})
  return product(points)
