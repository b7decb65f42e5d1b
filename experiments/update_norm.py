"""Does normalising the update remove the need for warmup? (Kosson et al.
2024, "Analyzing & Reducing the Need for Learning Rate Warmup in GPT
Training": warmup counters large early updates; controlling the update's
size reduces or removes the need for it.)

Claims (fixed before the run): AdamW's 10% warmup lowers its loss at its
best LR (the premise); with the update normalised per array
(`adamw_normalized`), no warmup is no worse than a 10% warmup, and no
worse than AdamW with its warmup, each at its best LR.

Run (CPU scale: 100 runs x 300 updates = 30,000 run-steps, two compiled
programs; writes results/update_norm/):

    ./launch.sh experiments/update_norm.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 updates):
    ./launch.sh experiments/update_norm.py:gpu --workdir results/update_norm_gpu

Grid: {AdamW, AdamW with each array's update rescaled to RMS 1} x linear
warmup {0, 10%} x peak LR {3e-4, 1e-3, 3e-3, 1e-2, 3e-2} x 5 paired seeds
(fresh: 300..304), cosine decay to 10%, b2 0.95, no weight decay or
clipping, the 4-layer CPU-scale model. A normalised update moves every
array by lr per element, as Lion's sign update does, so its best LR is
expected below AdamW's: the grid reaches down to 3e-4.
"""
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import adam_scale, seeds

LR = "optimizer.peak_lr"
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(5, first=300)


def get_config(arg=None):
  c = adam_scale(arg, steps=300, gpu_steps=3000)
  c.optimizer.name = "adamw"
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.1
  return c


def get_sweep(arg=None):
  del arg
  return product(axis("optimizer.name", ["adamw", "adamw_normalized"]),
                 axis(WARMUP, [0.0, 0.1]), axis(LR, [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]),
                 axis("seed", SEEDS))


def get_claims(arg=None):
  del arg
  # Non-inferiority margin, in nats per token, declared before the run: 0.05, as the other
  # experiments' (about 2% of the final loss, 5x what the 32 fixed eval batches resolve).
  margin = 0.05
  paper = "Kosson et al. 2024"
  adamw = lambda w: {"optimizer.name": "adamw", WARMUP: w}   # noqa: E731
  normed = lambda w: {"optimizer.name": "adamw_normalized", WARMUP: w}   # noqa: E731
  best = dict(at_best=LR, metric="final_eval_loss", planned_seeds=5)
  return [
      claim("AdamW: a 10% warmup lowers the final loss at each one's best LR (the premise)",
            paper=paper, a=adamw(0.0), b=adamw(0.1), direction="lower", **best),
      noninferior("normalised AdamW without warmup is no worse than with a 10% warmup",
                  paper=paper, a=normed(0.1), b=normed(0.0), margin=margin, **best),
      noninferior("normalised AdamW without warmup is no worse than AdamW with a 10% warmup",
                  paper=paper, a=adamw(0.1), b=normed(0.0), margin=margin, **best),
  ]
