"""Linear decay to zero against cosine to 10%, at two training horizons
(Bergsma et al. 2025, "Straight to Zero: Why Linearly Decaying the
Learning Rate to Zero Works Best for LLMs": linear decay to zero (D2Z)
beats cosine to 10% of the peak, and its gain grows with tokens per
parameter).

Claims (fixed before the run): at the long horizon (600 updates) D2Z
reaches a lower loss than cosine to 10%, each at its best LR; at the short
one (150 updates) it is no worse. (How the gain changes with the horizon
is a trend claim, issue 35; both horizons' effects are in the table.)

Run (CPU scale: 60 runs, 22,500 run-steps, two compiled programs (the
horizon is static); writes results/decay_to_zero/):

    ./launch.sh experiments/decay_to_zero.py
    # GPU scale (d_model 512, 8 layers, seq 256, 1500 and 6000 updates):
    ./launch.sh experiments/decay_to_zero.py:gpu --workdir results/decay_to_zero_gpu

Grid: horizon {150, 600} updates x {linear to 0, cosine to 10%} x peak LR
{1e-3, 3e-3, 1e-2} x 5 paired seeds (fresh: 400..404), a 10% linear
warmup, AdamW b2 0.95, no weight decay or clipping, the 4-layer CPU-scale
model (about 210k parameters, so 150 and 600 updates of 1,024 tokens are
0.7 and 2.8 tokens per parameter).
"""
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product, zip_

from ._ablation import adam_scale, seeds

LR = "optimizer.peak_lr"
HORIZON = "train.total_steps"
SEEDS = seeds(5, first=400)
D2Z = {"schedule.decay_shape": "linear", "schedule.final_frac": 0.0}
COSINE = {"schedule.decay_shape": "cosine", "schedule.final_frac": 0.1}


def _horizons(arg):
  return [1500, 6000] if arg == "gpu" else [150, 600]


def get_config(arg=None):
  c = adam_scale(arg, steps=600, gpu_steps=6000)
  c.optimizer.name = "adamw"
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.1
  return c


def get_sweep(arg=None):
  decays = zip_(axis("schedule.decay_shape", ["linear", "cosine"]),
                axis("schedule.final_frac", [0.0, 0.1]))
  return product(axis(HORIZON, _horizons(arg)), decays, axis(LR, [1e-3, 3e-3, 1e-2]),
                 axis("seed", SEEDS))


def get_claims(arg=None):
  short, long = _horizons(arg)
  # Non-inferiority margin, in nats per token, declared before the run: 0.05, as the other
  # experiments' (about 2% of the final loss, 5x what the 32 fixed eval batches resolve).
  margin = 0.05
  paper = "Bergsma et al. 2025"
  best = dict(at_best=LR, metric="final_eval_loss", planned_seeds=5)
  return [
      claim(f"at {long} updates, linear decay to zero beats cosine to 10%, each at its best "
            "LR", paper=paper, a=COSINE, b=D2Z, where={HORIZON: long}, direction="lower",
            **best),
      noninferior(f"at {short} updates, linear decay to zero is no worse than cosine to 10%, "
                  "each at its best LR", paper=paper, a=COSINE, b=D2Z,
                  where={HORIZON: short}, margin=margin, **best),
  ]
