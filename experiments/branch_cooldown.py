"""Cooldowns branched from one constant-LR trunk (WSD-S; Hägele et al. 2024,
"Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations") against cosine retrained for each budget.

One trunk per seed and peak LR trains at a constant LR (after a 40-update
warmup) for 640 updates, once; at each budget B in {200, 400, 800} a
branch starts from the trunk's checkpoint at 0.8 B and cools down linearly
to 0 over the last 20% (`train.branch_at`, docs/sweeps.md). Cosine to 10%,
with the same warmup, is trained from scratch for each budget. The trunk
and its three branches cost 920 updates per seed and LR; the three cosine
runs 1,400.

Claims (fixed before the run): at each budget, the branched cooldown is no
worse than cosine retrained for that budget (each at its best LR; margin
0.05 nats, as the other experiments'). The paper reports matching losses.

Run (CPU scale: 105 runs, 34,800 run-steps; writes results/branch_cooldown/):

    ./launch.sh experiments/branch_cooldown.py
    # GPU scale (d_model 512, 8 layers, seq 256; budgets 2000, 4000, 8000):
    ./launch.sh experiments/branch_cooldown.py:gpu --workdir results/branch_cooldown_gpu

Grid: {trunk, 3 branches, 3 cosine runs} x peak LR {1e-3, 3e-3, 1e-2} x 5
paired seeds (fresh: 800..804), Adam b2 0.95, no weight decay or clipping,
the 4-layer CPU-scale model (about 210k parameters).
"""
from warmup_research.claims import noninferior
from warmup_research.sweep import axis, product

from ._ablation import adam_scale, seeds

LR = "optimizer.peak_lr"
HORIZON = "train.total_steps"
SEEDS = seeds(5, first=800)
COOLDOWN = 0.2          # of each budget: WSD's cooldown, from update 0.8 B
COSINE = {"schedule.decay_shape": "cosine", "schedule.final_frac": 0.1}
BRANCH = {"schedule.decay_shape": "wsd", "schedule.final_frac": 0.0,
          "schedule.cooldown_ratio": COOLDOWN}


def _budgets(arg):
  return [2000, 4000, 8000] if arg == "gpu" else [200, 400, 800]


def _branch_at(budget: int) -> int:
  return round(budget * (1 - COOLDOWN))


def get_config(arg=None):
  c = adam_scale(arg, steps=800, gpu_steps=8000)
  c.schedule.warmup_ratio = None
  c.schedule.warmup_steps = _budgets(arg)[0] // 5   # in updates: the same for every budget
  return c


def get_sweep(arg=None):
  budgets = _budgets(arg)
  points = _branch_at(budgets[-1])
  trunk = {"schedule.decay_shape": "constant", HORIZON: points,
           "train.checkpoint_steps": [_branch_at(b) for b in budgets]}
  branches = [{**BRANCH, HORIZON: b, "train.branch_at": _branch_at(b)} for b in budgets]
  cosine = [{**COSINE, HORIZON: b} for b in budgets]
  return product([trunk, *branches, *cosine], axis(LR, [1e-3, 3e-3, 1e-2]), axis("seed", SEEDS))


def get_claims(arg=None):
  paper = "Hägele et al. 2024"
  best = dict(at_best=LR, metric="final_eval_loss", planned_seeds=5)
  return [noninferior(f"at {b} updates, a cooldown branched from the constant-LR trunk is no "
                      "worse than cosine retrained for the budget, each at its best LR",
                      paper=paper, a=COSINE, b=BRANCH, where={HORIZON: b}, margin=0.05, **best)
          for b in _budgets(arg)]
