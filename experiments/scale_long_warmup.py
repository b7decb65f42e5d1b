"""A long warmup across model size: does a warmup of half of training lower
Adam's loss at each one's best LR at every rung of scale_warmup's ladder,
and does its gain grow with size? (The result that held up in
phase_diagram, -0.26 nats on the byte model, replicated on the llama
block and BPE tokens of prose; Wortsman et al. 2023: the trend with size is
what transfers.)

Claims (fixed before the run):
- at each size, a warmup of half of training lowers the final loss, each at
  its best LR;
- its gain grows with size (the slope of the effect on log10 non-embedding
  parameters is negative).

Run (CPU scale: 240 runs, 47,760 run-steps, about 25 minutes on 2 cores;
writes results/scale_long_warmup/):

    ./launch.sh experiments/scale_long_warmup.py

Ladder: scale_warmup's (24,672 / 83,280 / 196,672 non-embedding parameters,
2 tokens per parameter: 49 / 163 / 385 updates). Grid: warmup {none, 50%
linear} x 8 peak LRs per rung, 2 per octave, each rung's own window around
scale_warmup's optima (1.1e-2 / 4e-3 / 2.8e-3 without warmup) with more room
above, where a long warmup moves the optimum (phase_diagram: 10x) x 5 paired
seeds (fresh: 1100..1104). Adam b2 0.95, cosine to 10%, no weight decay or
clipping. The windows differ per rung, so LR sensitivity (which depends on
the grid's span) is not compared across rungs here; scale_warmup does that
on one grid.
"""
from warmup_research.claims import claim, trend
from warmup_research.sweep import axis, ladder, product

from ._ablation import seeds
from .scale_warmup import SIZES
from .scale_warmup import get_config as scale_config

LR = "optimizer.peak_lr"
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(5, first=1100)
NONE, HALF = {WARMUP: 0.0}, {WARMUP: 0.5}
# Each rung's first half-octave step k of 2e-3 * 2**(k/2); 8 steps from there.
FIRST_K = (2, 0, -2)   # 4e-3.. / 2e-3.. / 1e-3..


def _lrs(first_k):
  return [round(2e-3 * 2 ** (k / 2), 6) for k in range(first_k, first_k + 8)]


def get_config(arg=None):
  del arg
  return scale_config()


def get_sweep(arg=None):
  del arg
  points = []
  for size, k in zip(SIZES, FIRST_K):
    (rung,) = ladder(get_config(), [size], tokens_per_param=[2])
    points += product([rung], axis(WARMUP, [0.0, 0.5]), axis(LR, _lrs(k)),
                      axis("seed", SEEDS))
  return points


def get_claims(arg=None):
  del arg
  w = "Wortsman et al. 2023"
  best = dict(a=NONE, b=HALF, metric="final_eval_loss", at_best=LR, direction="lower",
              planned_seeds=5)
  return [
      claim("at each size, a warmup of half of training lowers the final loss, each at its "
            "best LR", paper=w, **best),
      trend("the long warmup's gain at the best LR grows with size", paper=w,
            x="non_embedding_params", **best),
  ]
