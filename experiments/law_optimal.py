"""The schedule that minimises a fitted loss-curve law, trained for real
against cosine and WSD (Luo et al. 2025, "A Multi-Power Law for Loss Curve
Prediction Across Learning Rate Schedules": the schedule that minimises
the fitted law is WSD-like and beats WSD and cosine).

The schedule was chosen before this grid ran, by the multi-power law
fitted on results/loss_laws's constant and cosine runs (seeds 600..604,
pooled): the lowest predicted final loss among 189 WSD-like schedules
(cooldown share {0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9} x shape {linear,
1-sqrt, cosine} x final LR {0, 0.1, ..., 0.8} of the peak) is a 1-sqrt
decay from the end of the warmup to 0.7 of the peak (predicted 2.329,
against 2.363 for WSD with a 20% linear cooldown to 0 and 2.407 for
cosine to 10%). The search and its command: results/loss_laws/law_search.md.

Claims (fixed before the run): the law's schedule beats cosine and beats
WSD (each by the paired seed difference of the final eval loss), and the
law, fitted per seed on this grid's constant and cosine runs, predicts the
final loss of both WSD-like schedules within 0.05 nats.

Run (CPU scale: 20 runs x 300 updates = 6,000 run-steps, one compiled
program; writes results/law_optimal/):

    ./launch.sh experiments/law_optimal.py
    # GPU scale: fit loss_laws.py:gpu first and search again; its optimum may differ
    ./launch.sh experiments/law_optimal.py:gpu --workdir results/law_optimal_gpu

Grid: loss_laws.py's config (AdamW b2 0.95, peak LR 3e-3, a 10% linear
warmup, 300 updates, an eval every 20) x decay {constant, cosine to 10%,
WSD 20% linear to 0, the law's schedule} x 5 paired seeds (fresh: 700..704).
"""
from warmup_research.claims import claim, predicts
from warmup_research.sweep import axis, product, zip_

from . import loss_laws
from ._ablation import seeds

SEEDS = seeds(5, first=700)
COSINE = {"schedule.decay_shape": "cosine"}
WSD = {"schedule.decay_shape": "wsd", "schedule.cooldown_ratio": 0.2}
LAW = {"schedule.decay_shape": "wsd", "schedule.cooldown_ratio": 0.9}   # the law's minimiser


def get_config(arg=None):
  return loss_laws.get_config(arg)


def get_sweep(arg=None):
  del arg
  decays = zip_(axis("schedule.decay_shape", ["constant", "cosine", "wsd", "wsd"]),
                axis("schedule.cooldown_ratio", [0.2, 0.2, 0.2, 0.9]),
                axis("schedule.cooldown_shape", ["linear", "linear", "linear", "1-sqrt"]),
                axis("schedule.final_frac", [0.1, 0.1, 0.0, 0.7]))
  return product(decays, axis("seed", SEEDS))


def get_claims(arg=None):
  del arg
  paper = "Luo et al. 2025"
  final = dict(metric="final_eval_loss", direction="lower", planned_seeds=5)
  return [
      claim("the schedule minimising the fitted multi-power law beats cosine to 10%",
            paper=paper, a=COSINE, b=LAW, **final),
      claim("the schedule minimising the fitted multi-power law beats WSD (20% linear "
            "cooldown to 0)", paper=paper, a=WSD, b=LAW, **final),
      predicts("the multi-power law, fitted on constant and cosine runs, predicts the final "
               "loss of WSD and of its own optimum within 0.05 nats", paper=paper,
               fit_on=loss_laws.FIT_ON, held_out={"schedule.decay_shape": "wsd"},
               law="multi_power", margin=0.05, planned_seeds=5),
  ]
