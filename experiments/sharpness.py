"""Ablation: warmup and sharpness (Kalra & Barkeshli 2024, "Why Warmup the
Learning Rate? Underlying Mechanisms and Improvements").

The paper's claims tested here: (a) Adam without warmup starts with a large
preconditioned sharpness (top eigenvalue of P^-1 H, P = sqrt(nu_hat) + eps),
so its first updates exceed the stability threshold 2 (1 + b1) / ((1 - b1)
lr) unless the LR is warmed up; (b) so warmup lets larger peak LRs train;
(c) GI-Adam (nu_0 = g_0^2) lowers that early preconditioned sharpness and
gives warmup's benefit without a warmup.

GI-Adam runs in both forms: `gi_adam_bc` keeps Adam's update as it is, bias
correction on nu included (the first updates shrink by sqrt(1 - b2^t)), and
`gi_adam` drops the correction on nu. To our reading the paper changes only
nu_0 and keeps the rest of Adam, i.e. `gi_adam_bc`; only the abstract was at
hand offline to check it, so both forms carry the claim.

Run (CPU scale; results/README.md has the measured wall times of the sweep
and of `analyze`; writes results/sharpness/):

    ./launch.sh experiments/sharpness.py
    # sharpness, preconditioned sharpness, nu_hat and update ratios at every
    # saved checkpoint (every 10 updates to 100, then every 100), every run;
    # it then re-makes the tables, so the sharpness claims get their verdicts:
    ./launch.sh analyze results/sharpness --iters 10
    # the bracket check: every condition at 3e-4, below the grid's lowest LR,
    # where Adam without warmup was still best (no claims; results/README.md
    # compares it):
    ./launch.sh experiments/sharpness.py:below --workdir results/sharpness_below
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 steps; checkpoints every
    # 250 updates to 1000, then every 1000: about 24 GB per step, 150 GB in all):
    ./launch.sh experiments/sharpness.py:gpu --workdir results/sharpness_gpu
    ./launch.sh analyze results/sharpness_gpu --iters 10

Grid: Adam without warmup, Adam with a linear warmup of 100 updates,
GI-Adam in both forms without warmup; each at peak LR {1e-3, 3e-3, 1e-2,
3e-2, 1e-1} (1e-3: below the first grid's edge winners, 3e-3), b2 0.95,
constant LR after warmup (no decay, so a vanishing LR does not lower the
late sharpness), no weight decay or clipping, 5 paired seeds,
300 updates, the shared CPU-scale model at 4 layers instead of 6 (so the
100 runs x 13 checkpoints fit the time). Lanczos with 10 steps: within 7%
of 40 steps on this model's checkpoints (0.03 in the log10 of a peak). The
optimizer family is static: three compiled programs (Adam 50 runs, each
GI-Adam form 25).
"""
from warmup_research.claims import claim
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, adam_scale

LRS = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BELOW = [3e-4]   # arg 'below': below this grid's edge winner (1e-3), on the same seeds
EARLY = 100   # the window of the paper's early-training claims, in updates


def _warmup(arg):
  return 1000 if arg == "gpu" else EARLY


def get_config(arg=None):
  c = adam_scale(arg, steps=300, gpu_steps=3000)   # 4 layers: 1,300 checkpoints to measure
  c.schedule.decay_shape = "constant"
  # Dense checkpoints over the early window, sparse after; all kept for `analyze`.
  every = 250 if arg == "gpu" else 10
  c.train.checkpoint_every = 1000 if arg == "gpu" else 100
  c.train.keep_checkpoints = 100
  c.train.checkpoint_steps = list(range(every, _warmup(arg) + 1, every))
  return c


def get_sweep(arg=None):
  conditions = [{"optimizer.name": "adam", "schedule.warmup_steps": 0},
                {"optimizer.name": "adam", "schedule.warmup_steps": _warmup(arg)},
                {"optimizer.name": "gi_adam_bc", "schedule.warmup_steps": 0},
                {"optimizer.name": "gi_adam", "schedule.warmup_steps": 0}]
  lrs = BELOW if arg == "below" else LRS
  return product(conditions, axis("optimizer.peak_lr", lrs), axis("seed", SEEDS))


def get_claims(arg=None):
  if arg == "below":   # one LR per condition: nothing to choose a best LR over
    return []
  paper = "Kalra & Barkeshli 2024"
  early = f"peak:stability_ratio:{_warmup(arg)}"
  adam = {"optimizer.name": "adam", "schedule.warmup_steps": 0}
  warm = {"optimizer.name": "adam", "schedule.warmup_steps": _warmup(arg)}
  gi_bc = {"optimizer.name": "gi_adam_bc", "schedule.warmup_steps": 0}
  gi = {"optimizer.name": "gi_adam", "schedule.warmup_steps": 0}
  planned = dict(planned_seeds=len(SEEDS))
  pooled = dict(pool="mean", **planned)   # each seed's mean over the LRs
  # Every claim here predicts a direction (lowers, raises, trains better): superiority.
  return [
      claim("warmup keeps Adam's early updates further below the stability threshold",
            paper=paper, a=adam, b=warm, metric=early, direction="lower",
            comment="log10 of the peak ratio over the first updates, each seed's mean over "
            "the LRs", **pooled),
      claim("warmup raises the largest LR that trains", paper=paper, a=adam, b=warm,
            metric="max_trained_lr", direction="higher", **planned),
      claim("with warmup, Adam trains better at its best LR", paper=paper, a=adam, b=warm,
            at_best="optimizer.peak_lr", metric="final_eval_loss", direction="lower",
            **planned),
      claim("GI-Adam (bias-corrected) lowers the early peak ratio", paper=paper, a=adam,
            b=gi_bc, metric=early, direction="lower", **pooled),
      claim("GI-Adam (no correction on nu) lowers the early peak ratio", paper=paper,
            a=adam, b=gi, metric=early, direction="lower", **pooled),
      claim("GI-Adam (bias-corrected) trains better than Adam without warmup", paper=paper,
            a=adam, b=gi_bc, at_best="optimizer.peak_lr", metric="final_eval_loss",
            direction="lower", **planned),
      claim("GI-Adam (no correction on nu) trains better than Adam without warmup",
            paper=paper, a=adam, b=gi, at_best="optimizer.peak_lr",
            metric="final_eval_loss", direction="lower", **planned),
      claim("GI-Adam (bias-corrected) raises the largest LR that trains", paper=paper,
            a=adam, b=gi_bc, metric="max_trained_lr", direction="higher", **planned),
      claim("GI-Adam (no correction on nu) raises the largest LR that trains", paper=paper,
            a=adam, b=gi, metric="max_trained_lr", direction="higher", **planned),
  ]
