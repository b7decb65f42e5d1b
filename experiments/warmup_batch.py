"""Warmup vs batch size, with the LR scaled as Goyal et al. 2017 scale it
("Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"): the best
warmup length at three batch sizes, at equal examples seen.

Goyal et al. scale the peak LR linearly with the batch (k x batch ->
k x LR) and find that the large batch, at its scaled LR, needs a gradual
warmup that the small one does not. Tested here: with the linear rule, is
the largest batch's best warmup a larger share of training than the
smallest's (and the middle batch's)? And, as a check that the design can
see the cost of fewer updates: without warmup, does the largest batch end
higher than the smallest at its best LR?

Run (CPU scale: 210 runs, 49,000 run-steps, 686,000 sequences of 64
tokens; results/README.md has the measured wall time; writes
results/warmup_batch/):

    ./launch.sh experiments/warmup_batch.py
    # GPU scale (d_model 512, 8 layers, seq 256; batch 32/128/512 for
    # 4000/1000/250 updates):
    ./launch.sh experiments/warmup_batch.py:gpu --workdir results/warmup_batch_gpu

Grid: batch {8, 16, 32} (CPU) for {400, 200, 100} updates (3,200 sequences
each) x linear warmup of {0, 1/4, 1/2, 3/4, all} of the updates (past half,
so an optimum at a long warmup is bracketed: a first design stopped at 1/2,
which 14 of 15 (seed, batch) cells chose) x base peak LR {1e-3, 3e-3} at
batch 8, times batch / 8 at the others (the linear rule) x 7 paired seeds;
Adam b2 0.95, cosine decay, no weight decay or clipping, the CPU-scale model
at 4 layers; 512 fixed validation sequences at every batch size. Batch size
and step count are static: three compiled programs of 70 variants.

7 seeds is the design's floor: the warmup claims are exact sign tests (ties
dropped), whose smallest two-sided p at n seeds is 2^(1-n); 7 seeds give
0.0156, under Holm's 0.05/3 for the first of these three claims.
"""
from warmup_research.claims import claim
from warmup_research.sweep import axis, product

from ._ablation import adam_scale, seeds

PAPER = "Goyal et al. 2017"
BASE_LRS = [1e-3, 3e-3]             # at the smallest batch; scaled linearly with the batch
SHARES = [0.0, 0.25, 0.5, 0.75, 1.0]   # warmup, as a share of each batch size's updates
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(7)


def get_config(arg=None):
  c = adam_scale(arg, steps=200, gpu_steps=2000)
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.0
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


def _lrs(size, sizes):
  k = size["data.batch_size"] / sizes[0]["data.batch_size"]
  return [float(f"{lr * k:.4g}") for lr in BASE_LRS]


def get_sweep(arg=None):
  sizes = _sizes(arg)
  points = [dict(size, **{WARMUP: share, "optimizer.peak_lr": lr})
            for size in sizes for share in SHARES for lr in _lrs(size, sizes)]
  return product(points, axis("seed", SEEDS))


def get_heatmaps(arg=None):
  del arg
  return [(WARMUP, "optimizer.peak_lr")]


def get_claims(arg=None):
  small, middle, large = _sizes(arg)
  planned = dict(planned_seeds=len(SEEDS))
  # Each claim predicts a direction (longer, higher): superiority. The best warmup is chosen
  # over warmup and the (scaled) peak LR per seed.
  return [
      claim("with the LR scaled linearly, the largest batch's best warmup is a larger "
            "share of training than the smallest's", paper=PAPER, a=small, b=large,
            metric=f"argmin:{WARMUP}", direction="higher",
            comment="'contradicted': a smaller share", **planned),
      claim("with the LR scaled linearly, the middle batch's best warmup is a larger share "
            "of training than the smallest's", paper=PAPER, a=small, b=middle,
            metric=f"argmin:{WARMUP}", direction="higher", **planned),
      claim("without warmup, at equal examples the largest batch ends higher at its best LR",
            paper="(the cost of fewer updates)", a=small, b=large,
            at_best="optimizer.peak_lr", where={WARMUP: 0.0}, metric="final_eval_loss",
            direction="higher", failures="cap", **planned),
  ]
