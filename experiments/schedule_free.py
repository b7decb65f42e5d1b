"""Schedule-free AdamW with and without warmup against tuned cosine and WSD
AdamW (Defazio et al. 2024, "The Road Less Scheduled": schedule-free
AdamW won AlgoPerf's self-tuning track; its authors still recommend a
warmup).

Claims (fixed before the run): with a 5% warmup, schedule-free AdamW is no
worse than cosine AdamW and than WSD AdamW, each at its best LR; a 5%
warmup lowers schedule-free's loss against none; (ours) 20% and 5%
warmups give schedule-free the same loss within 0.05 nats.

Run (CPU scale: 100 runs x 300 updates = 30,000 run-steps, two compiled
programs; writes results/schedule_free/):

    ./launch.sh experiments/schedule_free.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 updates):
    ./launch.sh experiments/schedule_free.py:gpu --workdir results/schedule_free_gpu

Grid: schedule-free AdamW (constant LR after a linear warmup of {0, 5%,
20%}; evaluated at its averaged x) and AdamW with a 5% warmup and {cosine to
10%, WSD with a 20% linear cooldown}, each x peak LR {1e-3, 3e-3, 1e-2,
3e-2} x 5 paired seeds (fresh: 200..204); b1 0.9, b2 0.95, no weight decay
or clipping, the 4-layer CPU-scale model.
"""
from warmup_research.claims import claim, equivalent, noninferior
from warmup_research.sweep import axis, product

from ._ablation import adam_scale, seeds

LR = "optimizer.peak_lr"
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(5, first=200)
LRS = [1e-3, 3e-3, 1e-2, 3e-2]
SF = lambda w: {"optimizer.name": "schedule_free_adamw", WARMUP: w}   # noqa: E731
COSINE = {"optimizer.name": "adamw", "schedule.decay_shape": "cosine"}
WSD = {"optimizer.name": "adamw", "schedule.decay_shape": "wsd"}


def get_config(arg=None):
  c = adam_scale(arg, steps=300, gpu_steps=3000)
  c.optimizer.name = "adamw"
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.05
  c.schedule.final_frac = 0.1
  c.schedule.cooldown_ratio = 0.2
  c.schedule.cooldown_shape = "linear"
  return c


def get_sweep(arg=None):
  del arg
  free = product(axis("optimizer.name", ["schedule_free_adamw"]),
                 axis("schedule.decay_shape", ["constant"]), axis(WARMUP, [0.0, 0.05, 0.2]),
                 axis(LR, LRS), axis("seed", SEEDS))
  tuned = product(axis("optimizer.name", ["adamw"]),
                  axis("schedule.decay_shape", ["cosine", "wsd"]), axis(WARMUP, [0.05]),
                  axis(LR, LRS), axis("seed", SEEDS))
  return free + tuned


def get_claims(arg=None):
  del arg
  # Margins, in nats per token, declared before the run: 0.05, as the other experiments'
  # (about 2% of the final loss, 5x what the 32 fixed eval batches resolve).
  margin = 0.05
  paper = "Defazio et al. 2024"
  best = dict(at_best=LR, metric="final_eval_loss", planned_seeds=5)
  return [
      noninferior("with a 5% warmup, schedule-free AdamW is no worse than cosine AdamW, each "
                  "at its best LR", paper=paper, a={**COSINE, WARMUP: 0.05}, b=SF(0.05),
                  margin=margin, **best),
      noninferior("with a 5% warmup, schedule-free AdamW is no worse than WSD AdamW, each at "
                  "its best LR", paper=paper, a={**WSD, WARMUP: 0.05}, b=SF(0.05),
                  margin=margin, **best),
      claim("schedule-free AdamW: a 5% warmup lowers the final loss against none, each at "
            "its best LR", paper=paper, a=SF(0.0), b=SF(0.05), direction="lower", **best),
      equivalent("(ours) schedule-free AdamW: 20% and 5% warmups reach the same loss, each at "
                 "its best LR", paper="none (our question)", a=SF(0.05), b=SF(0.2),
                 margin=margin, **best),
  ]
