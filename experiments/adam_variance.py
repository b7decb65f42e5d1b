"""Ablation: Adam's early variance (Liu et al. 2019, "On the Variance of the
Adaptive Learning Rate and Beyond"; Ma & Yarats 2021, "On the adequacy of
untuned warmup for adaptive optimization").

Claims: Adam without warmup trains worse than Adam with warmup; RAdam's
rectification beats Adam without warmup; an untuned linear warmup of
2 / (1 - beta2) steps does at least as well as RAdam. And a control of our
own: warmup's benefit is not only a lower mean LR (a no-warmup schedule
with the same mean LR as the warmup schedule).

Run (CPU scale; results/README.md has the measured wall time; writes
results/adam_variance/):

    ./launch.sh experiments/adam_variance.py
    # the bracket check: every method at 3e-4, below the grid's lowest LR, where
    # Adam without warmup was still best (no claims; results/README.md compares it):
    ./launch.sh experiments/adam_variance.py:below --workdir results/adam_variance_below
    # GPU scale (d_model 512, 8 layers, seq 256, 4000 steps):
    ./launch.sh experiments/adam_variance.py:gpu --workdir results/adam_variance_gpu

Grid, beta2 0.99 (so 2 / (1 - beta2) = 200 warmup steps of 500), cosine
decay, no weight decay or clipping, 5 paired seeds, each method at each of
the peak LRs {1e-3, 3e-3, 1e-2, 3e-2} (claims compare every method at its own
best LR; a first grid without 1e-3 had RAdam and Adam without warmup best
at its lowest LR): Adam without warmup; Adam with the 200-step linear warmup; RAdam
without warmup; and the control, Adam without warmup at `MEAN_LR_RATIO` x
each peak LR, which gives it the warmup schedule's mean LR. The optimizer
family is static: two compiled programs (Adam: 60 runs, RAdam: 20).
"""
import numpy as np

from warmup_research import config as config_lib
from warmup_research import schedules
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, ablation_scale

B2 = 0.99
LRS = [1e-3, 3e-3, 1e-2, 3e-2]   # 1e-3: below the first grid's edge winners (3e-3)
BELOW = [3e-4]   # arg 'below': below this grid's edge winner (1e-3), on the same seeds


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=500, gpu_steps=4000)
  c.optimizer.b2 = B2
  c.optimizer.peak_lr = 1e-2
  return c


def _warmup():
  return round(2 / (1 - B2))


def mean_lr_ratio(total_steps: int) -> float:
  """Mean LR of the warmup schedule / mean LR of the same without warmup."""
  steps = np.arange(total_steps)
  mean = lambda w: float(np.mean(schedules.schedule(steps, schedules.make_hparams(
      peak_lr=1.0, total_steps=total_steps, warmup_steps=w, decay_shape="cosine",
      final_frac=0.1))))
  return mean(_warmup()) / mean(0)


def _lrs(arg):
  lrs = BELOW if arg == "below" else LRS
  ratio = mean_lr_ratio(get_config(arg).train.total_steps)
  return lrs, [float(f"{lr * ratio:.4g}") for lr in lrs]


def get_sweep(arg=None):
  lrs, control = _lrs(arg)
  points = []
  for name, warmup, grid in (("adam", 0, lrs), ("adam", _warmup(), lrs), ("radam", 0, lrs),
                             ("adam", 0, control)):
    points += [{"optimizer.name": name, "schedule.warmup_steps": warmup,
                "optimizer.peak_lr": lr} for lr in grid]
  return product(points, axis("seed", SEEDS))


def get_claims(arg=None):
  if arg == "below":   # one LR per method: nothing to choose a best LR over
    return []
  lrs, control = _lrs(arg)
  paper = "Liu et al. 2019; Ma & Yarats 2021"
  adam = {"optimizer.name": "adam", "schedule.warmup_steps": 0, "optimizer.peak_lr": lrs}
  warm = {"optimizer.name": "adam", "schedule.warmup_steps": _warmup()}
  radam = {"optimizer.name": "radam"}
  same_mean = {"optimizer.name": "adam", "schedule.warmup_steps": 0,
               "optimizer.peak_lr": control}
  best = dict(at_best="optimizer.peak_lr", planned_seeds=len(SEEDS))
  # Non-inferiority margin, in nats per token, declared before this re-run (after the first
  # run): 0.05, as the other experiments' margins (about 2% of the final loss, 5x what the
  # fixed eval batches resolve).
  margin = 0.05
  return [
      claim("Adam without warmup is worse than with a 2/(1-b2) warmup", paper=paper,
            a=adam, b=warm, **best, metric="final_eval_loss", direction="lower"),
      claim("RAdam beats Adam without warmup", paper="Liu et al. 2019", a=adam, b=radam,
            **best, metric="final_eval_loss", direction="lower"),
      # "at least as well" is one-sided: non-inferiority within `margin`
      noninferior("an untuned 2/(1-b2) warmup does at least as well as RAdam",
                  paper="Ma & Yarats 2021", a=radam, b=warm, **best,
                  metric="final_eval_loss", margin=margin),
      claim("(control) warmup beats no warmup at the same mean LR", paper="none (our control)",
            a=same_mean, b=warm, **best, metric="final_eval_loss", direction="lower"),
  ]
