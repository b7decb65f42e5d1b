"""Ablation: warmup and learning-rate sensitivity (Wortsman et al. 2023,
"Small-scale proxies for large-scale Transformer training instabilities").

Claim: longer warmup lowers the sensitivity of the final loss to the peak
LR (LR sensitivity: the mean over the swept LRs of min(final loss, initial
loss) minus the best final loss), and raises the largest LR that trains.

Run (CPU scale, about 16 minutes on 2 cores; writes results/lr_sensitivity/):

    ./launch.sh experiments/lr_sensitivity.py
    # GPU scale (widths 512 and 1024, seq 256, 4000 steps):
    ./launch.sh experiments/lr_sensitivity.py:gpu --workdir results/lr_sensitivity_gpu

Grid: width d_model {32, 64} (CPU) x linear warmup {0, 10%, 50%} of 200
steps x peak LR {1e-3, 2.5e-3, 6.3e-3, 1.6e-2, 4e-2, 1e-1} (6 LRs over 2
decades) x 5 paired seeds; Adam (b2 0.95, no weight decay or clipping),
cosine decay. Warmup is a ratio of training (`schedule.warmup_ratio`), so it
means the same at either scale. Width is static: two compiled programs of 90
variants each. LR sensitivity is computed per (width, warmup, seed) and
compared pair by pair.
"""
from warmup_research import config as config_lib
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, ablation_scale

PAPER = "Wortsman et al. 2023"
LRS = [1e-3, 2.5e-3, 6.3e-3, 1.6e-2, 4e-2, 1e-1]


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=200, gpu_steps=4000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.schedule.warmup_ratio = 0.1
  return c


def get_sweep(arg=None):
  widths = [512, 1024] if arg == "gpu" else [32, 64]
  return product(axis("model.d_model", widths),
                 axis("schedule.warmup_ratio", [0.0, 0.1, 0.5]),
                 axis("optimizer.peak_lr", LRS), axis("seed", SEEDS))


def get_claims(arg=None):
  del arg
  none, long = {"schedule.warmup_ratio": 0.0}, {"schedule.warmup_ratio": 0.5}
  short = {"schedule.warmup_ratio": 0.1}
  pooled = dict(pool="mean", planned_seeds=5)   # each seed's mean over the two widths
  # Non-inferiority margin, in nats per token, declared after the run (so flagged
  # relabelled): 0.05, as the other experiments' margins (about 2% of the final loss, 5x
  # what the fixed eval batches resolve).
  margin = 0.05
  return [
      claim("longer warmup (50%) lowers LR sensitivity", paper=PAPER, a=none, b=long,
            metric="lr_sensitivity", direction="lower", **pooled),
      claim("short warmup (10%) lowers LR sensitivity", paper=PAPER, a=none, b=short,
            metric="lr_sensitivity", direction="lower", **pooled),
      claim("longer warmup raises the largest LR that trains", paper=PAPER, a=none, b=long,
            metric="max_trained_lr", direction="higher", **pooled),
      # "does not hurt" is one-sided: non-inferiority within `margin`
      noninferior("at each one's best LR, longer warmup does not hurt the loss", paper=PAPER,
                  a=none, b=long, at_best="optimizer.peak_lr", metric="final_eval_loss",
                  margin=margin, **pooled),
  ]
