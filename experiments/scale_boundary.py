"""Where training breaks along the size ladder: the largest trainable peak
LR with and without warmup at each of scale_warmup's rungs, on an LR grid
that starts where scale_warmup's ended (Kalra & Barkeshli 2024: warmup
raises the largest trainable LR; Wortsman et al. 2023: measure how it
changes with size).

scale_warmup's grid (to 9.05e-2) found no failure at 83k and 197k
parameters, so its boundary was censored at the top. This grid runs from
6.4e-2 (trained at every rung there) to 0.72, 2 LRs per octave.

Claims (fixed before the run):
- at each size, a 10% warmup raises the largest trainable LR;
- that rise grows with size (the slope of its effect on log10
  non-embedding parameters is positive).

A run fails by the project's outcome rules (warmup_research/metrics_io.py):
diverged when a loss is non-finite or above `train.divergence_bound`, or
an eval after the warmup rises more than 0.05 nats above the initial eval
loss; stalled when it ends above the unigram entropy minus 0.25 and was
flat over the last half of training. The boundary is, per arm and seed, the midpoint in
log10 of the gap above the largest LR that trained (claims.py).

Run (CPU scale: 288 runs, 57,312 run-steps, about 25 minutes on 2 cores;
writes results/scale_boundary/):

    ./launch.sh experiments/scale_boundary.py

Ladder: scale_warmup's (24,672 / 83,280 / 196,672 non-embedding
parameters, 2 tokens per parameter: 49 / 163 / 385 updates). Grid: warmup
{none, 10% linear} x peak LR {6.4e-2 .. 0.72, 8 points} x 6 paired seeds
(fresh: 1200..1205; 6 because a boundary difference is decided with the
exact sign test's floor, which 5 seeds cannot pass). Adam b2 0.95, cosine
to 10%, no weight decay or clipping.
"""
from warmup_research.claims import claim, trend

from ._ablation import seeds
from .scale_warmup import get_config as scale_config
from .scale_warmup import grid

WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(6, first=1200)
LRS = [round(2e-3 * 2 ** (k / 2), 6) for k in range(10, 18)]   # 0.064 .. 0.724
NONE, TEN = {WARMUP: 0.0}, {WARMUP: 0.1}


def get_config(arg=None):
  del arg
  return scale_config()


def get_sweep(arg=None):
  del arg
  return grid(LRS, SEEDS)


def get_claims(arg=None):
  del arg
  kb, w = "Kalra & Barkeshli 2024", "Wortsman et al. 2023"
  sides = dict(a=NONE, b=TEN, metric="max_trained_lr", direction="higher", planned_seeds=6)
  return [
      claim("at each size, a 10% warmup raises the largest trainable LR", paper=kb, **sides),
      trend("the warmup's rise of the largest trainable LR grows with size", paper=w,
            x="non_embedding_params", **sides),
  ]
