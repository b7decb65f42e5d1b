"""Do loss-curve laws fitted on two schedules predict held-out schedules
within the seed spread? (Luo et al. 2025, "A Multi-Power Law for Loss
Curve Prediction Across Learning Rate Schedules"; Tissue et al. 2024,
"Scaling Law with Learning Rate Annealing".)

Claims (fixed before the run): per seed, each law fitted on that seed's
constant-LR and cosine runs predicts the final eval loss of its WSD
(linear and 1-sqrt cooldowns) and linear-to-zero runs within 0.05 nats, by
two one-sided tests per held-out schedule (`claims.predicts`; each
schedule's seed sd of its final loss is shown beside its error). The
margin is declared, not read off the runs: 0.05 nats is the other
experiments' margin and about the seed sd of final losses at this scale
(wsd.py at 3e-3: 0.03-0.07).

Run (CPU scale: 25 runs x 300 updates = 7,500 run-steps, one compiled
program; writes results/loss_laws/; `warmup-research predict` on the same
workdir prints any one fit and its predictions):

    ./launch.sh experiments/loss_laws.py
    # GPU scale (d_model 512, 8 layers, seq 256, 3000 updates):
    ./launch.sh experiments/loss_laws.py:gpu --workdir results/loss_laws_gpu

Grid: decay {constant, cosine to 10%, WSD with a 20% linear cooldown to 0,
WSD with a 20% 1-sqrt cooldown to 0, linear to 0} after a 10% linear
warmup, peak LR 3e-3, x 5 paired seeds (fresh: 600..604); AdamW b2 0.95,
no weight decay or clipping, the 4-layer CPU-scale model, an eval every 20
updates (16 evals per run, 14 after the warmup: the multi-power law has 7
parameters, fitted on 28 evals per seed). Not done here: the schedule that
minimises the fitted law, trained against cosine and WSD (issue 34).
"""
from warmup_research.claims import predicts
from warmup_research.sweep import axis, product, zip_

from ._ablation import adam_scale, seeds

SEEDS = seeds(5, first=600)
FIT_ON = {"schedule.decay_shape": ["constant", "cosine"]}
HELD_OUT = {"schedule.decay_shape": ["wsd", "linear"]}


def get_config(arg=None):
  c = adam_scale(arg, steps=300, gpu_steps=3000)
  c.optimizer.name = "adamw"
  c.optimizer.peak_lr = 3e-3
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.1
  c.schedule.cooldown_ratio = 0.2
  c.train.eval_every = 200 if arg == "gpu" else 20
  return c


def get_sweep(arg=None):
  del arg
  decays = zip_(axis("schedule.decay_shape", ["constant", "cosine", "wsd", "wsd", "linear"]),
                axis("schedule.cooldown_shape", ["linear", "linear", "linear", "1-sqrt",
                                                 "linear"]),
                axis("schedule.final_frac", [0.1, 0.1, 0.0, 0.0, 0.0]))
  return product(decays, axis("seed", SEEDS))


def get_claims(arg=None):
  del arg
  margin = 0.05   # nats per token, declared before the run (the module docstring)
  return [
      predicts("the multi-power law, fitted on constant and cosine runs, predicts WSD and "
               "linear-to-zero runs' final loss within 0.05 nats", paper="Luo et al. 2025",
               fit_on=FIT_ON, held_out=HELD_OUT, law="multi_power", margin=margin,
               planned_seeds=5),
      predicts("the momentum law, fitted on constant and cosine runs, predicts WSD and "
               "linear-to-zero runs' final loss within 0.05 nats", paper="Tissue et al. 2024",
               fit_on=FIT_ON, held_out=HELD_OUT, law="momentum", margin=margin,
               planned_seeds=5),
  ]
