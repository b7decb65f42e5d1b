"""Warmup vs batch size: the best warmup length and the largest trainable LR
at three batch sizes, at equal examples seen (Goyal et al. 2017,
"Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour").

Goyal et al. found that a large minibatch, with its LR scaled up, needs a
gradual warmup that the small one does not. The claim tested here is the
reading practitioners take from it: the larger the batch, the longer the
best warmup, counted in updates. Its alternative at equal examples is that
the best warmup is a fixed share of training (then it is shorter in
updates for the larger batch, which takes fewer of them).

Run (CPU scale: 300 runs, 70,000 run-steps, 960,000 sequences of 64 tokens;
see results/README.md for the measured wall time; writes
results/warmup_batch/):

    ./launch.sh experiments/warmup_batch.py
    # GPU scale (d_model 512, 8 layers, seq 256; batch 32/128/512 for
    # 4000/1000/250 updates):
    ./launch.sh experiments/warmup_batch.py:gpu --workdir results/warmup_batch_gpu

Grid: batch {8, 16, 32} (CPU) for {400, 200, 100} updates (3,200 sequences
each) x linear warmup of {0, 1/16, 1/8, 1/4, 1/2} of the updates x peak LR
{1e-3, 3e-3, 1e-2, 3e-2} x 5 paired seeds; Adam b2 0.95, cosine decay, no
weight decay or clipping, the CPU-scale model at 4 layers; 512 fixed
validation sequences at every batch size. Batch size and step count are
static: three compiled programs of 100 variants.
"""
from warmup_research.claims import claim
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, adam_scale

PAPER = "Goyal et al. 2017"
LRS = [1e-3, 3e-3, 1e-2, 3e-2]
SHARES = [0, 1 / 16, 1 / 8, 1 / 4, 1 / 2]   # warmup, as a share of each batch size's updates
WARMUP = "schedule.warmup_steps"


def get_config(arg=None):
  c = adam_scale(arg, steps=200, gpu_steps=2000)
  c.schedule.warmup_steps = 0
  return c


def _sizes(arg):
  """Each batch size with its updates and eval batches, at equal examples."""
  base = get_config(arg)
  examples = base.data.batch_size * base.train.total_steps
  evals = base.data.batch_size * base.train.eval_batches
  batches = [32, 128, 512] if arg == "gpu" else [8, 16, 32]
  return [{"data.batch_size": b, "train.total_steps": examples // b,
           "train.eval_every": examples // b // 4, "train.checkpoint_every": examples // b // 4,
           "train.eval_batches": evals // b} for b in batches]


def get_sweep(arg=None):
  points = [dict(size, **{WARMUP: round(share * size["train.total_steps"])})
            for size in _sizes(arg) for share in SHARES]
  return product(points, axis("optimizer.peak_lr", LRS), axis("seed", SEEDS))


def get_heatmaps(arg=None):
  del arg
  return [(WARMUP, "optimizer.peak_lr")]


def get_claims(arg=None):
  small, middle, large = _sizes(arg)
  # The design planned 3 seeds; the grid grew to 5 after the 3-seed verdicts were seen,
  # so its verdicts are exploratory.
  grown = dict(planned_seeds=3)
  # Every claim here predicts a direction (longer, larger, higher): superiority.
  return [
      claim("the largest batch's best warmup is longer in updates than the smallest's",
            paper=PAPER, a=small, b=large, metric=f"argmin:{WARMUP}", direction="higher",
            comment="best over warmup and peak LR per seed; 'contradicted': shorter", **grown),
      claim("the middle batch's best warmup is longer in updates than the smallest's",
            paper=PAPER, a=small, b=middle, metric=f"argmin:{WARMUP}", direction="higher",
            comment="best over warmup and peak LR per seed", **grown),
      claim("without warmup, the larger batch trains at a larger LR", paper=PAPER,
            a=small, b=large, where={WARMUP: 0}, metric="max_trained_lr",
            direction="higher", **grown),
      claim("without warmup, at equal examples the larger batch ends higher at its best LR",
            paper="(the cost of fewer updates)", a=small, b=large,
            at_best="optimizer.peak_lr", where={WARMUP: 0}, metric="final_eval_loss",
            direction="higher", **grown),
  ]
