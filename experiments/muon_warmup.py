"""Muon against AdamW on a warmup x peak-LR grid: does Muon's best run need
an LR warmup? (Jordan 2024, modded-nanogpt, trains Muon with no LR warmup,
only a momentum warmup; Liu et al. 2025, "Muon is Scalable for LLM
Training": Muon at about 2x AdamW's compute efficiency.)

Claims (fixed before the run): without warmup Muon is no worse than with a
10% warmup, each at its best LR (the modded-nanogpt practice); AdamW's
10% warmup lowers its loss at its best LR (the control: the effect Muon is
said not to need); Muon beats AdamW at the same 10% warmup, each at its
best LR (Liu et al.).

Run (CPU scale: 150 runs x 300 updates = 45,000 run-steps, two compiled
programs; writes results/muon_warmup/):

    ./launch.sh experiments/muon_warmup.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 updates):
    ./launch.sh experiments/muon_warmup.py:gpu --workdir results/muon_warmup_gpu

Grid: {AdamW, Muon} x linear warmup {0, 10%, 50%} x peak LR {1e-3, 3e-3,
1e-2, 3e-2, 1e-1} x 5 paired seeds (fresh: 500..504; stabilisers.py has
100..104), cosine decay to 10%, b2 0.95, no weight decay or clipping, the
4-layer CPU-scale model. Muon's matrices are scaled to AdamW's update RMS
(optimizers.py), so one LR grid serves both; its Adam part (embeddings,
norms) runs at the same LR.
"""
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import adam_scale, seeds

LR = "optimizer.peak_lr"
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(5, first=500)


def get_config(arg=None):
  c = adam_scale(arg, steps=300, gpu_steps=3000)
  c.optimizer.name = "adamw"
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.1
  return c


def get_sweep(arg=None):
  del arg
  return product(axis("optimizer.name", ["adamw", "muon"]), axis(WARMUP, [0.0, 0.1, 0.5]),
                 axis(LR, [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]), axis("seed", SEEDS))


def get_heatmaps(arg=None):
  del arg
  return [(WARMUP, LR)]


def get_claims(arg=None):
  del arg
  # Non-inferiority margin, in nats per token, declared before the run: 0.05, as the other
  # experiments' (about 2% of the final loss, 5x what the 32 fixed eval batches resolve).
  margin = 0.05
  muon = lambda w: {"optimizer.name": "muon", WARMUP: w}   # noqa: E731
  adamw = lambda w: {"optimizer.name": "adamw", WARMUP: w}   # noqa: E731
  return [
      noninferior("Muon without LR warmup is no worse than with a 10% warmup, each at its "
                  "best LR", paper="Jordan 2024 (modded-nanogpt)", a=muon(0.1), b=muon(0.0),
                  at_best=LR, metric="final_eval_loss", margin=margin, planned_seeds=5),
      claim("AdamW: a 10% warmup lowers the final loss at each one's best LR",
            paper="Kalra & Barkeshli 2024 (the control)", a=adamw(0.0), b=adamw(0.1),
            at_best=LR, metric="final_eval_loss", direction="lower", planned_seeds=5),
      claim("with a 10% warmup, Muon reaches a lower loss than AdamW, each at its best LR",
            paper="Liu et al. 2025", a=adamw(0.1), b=muon(0.1), at_best=LR,
            metric="final_eval_loss", direction="lower", planned_seeds=5),
  ]
