"""Warmup vs the optimizer's stabilisers (Wortsman et al. 2023, "Small-scale
proxies for large-scale Transformer training instabilities").

Wortsman et al. report that some interventions, QK-layernorm first among
them, let a model train at LRs that otherwise fail, reducing what warmup is
needed for; and that Adam's epsilon matters once gradients are small
(1e-15 in place of 1e-8). Tested here: at peak LRs where Adam without
warmup fails (stalls on the unigram plateau) in this model, does each
stabiliser, without warmup, (a) lower the final loss, and (b) reach the
loss that warmup reaches without it?

Run (CPU scale: 100 runs x 200 updates = 20,000 run-steps; see
results/README.md for the measured wall time; writes results/stabilisers/):

    ./launch.sh experiments/stabilisers.py
    # GPU scale (d_model 512, 8 layers, seq 256, 4000 updates):
    ./launch.sh experiments/stabilisers.py:gpu --workdir results/stabilisers_gpu

Grid: {baseline (Adam, eps 1e-8, no clipping, no QK-layernorm), eps 1e-15,
eps 1e-6, global-norm clipping at 1.0, QK-layernorm} x linear warmup {0,
25% of training} x peak LR {3e-2, 1e-1} x 5 paired seeds; the shared
CPU-scale model (6 layers, d_model 64), b2 0.95, cosine decay, no weight
decay. Claims pool the two LRs (pairs: LR x seed). QK-layernorm is static:
two compiled programs (80 and 20 variants).
"""
from warmup_research import config as config_lib
from warmup_research.claims import claim
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, ablation_scale

PAPER = "Wortsman et al. 2023"
LRS = [3e-2, 1e-1]
BASE = {"optimizer.eps": 1e-8, "optimizer.clip_norm": 0.0, "model.qk_norm": False}
STABILISERS = {
    "eps 1e-15": dict(BASE, **{"optimizer.eps": 1e-15}),
    "eps 1e-6": dict(BASE, **{"optimizer.eps": 1e-6}),
    "global-norm clipping at 1.0": dict(BASE, **{"optimizer.clip_norm": 1.0}),
    "QK-layernorm": dict(BASE, **{"model.qk_norm": True}),
}
WARMUP = "schedule.warmup_ratio"


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=200, gpu_steps=4000)
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.schedule.warmup_ratio = 0.0
  return c


def get_sweep(arg=None):
  del arg
  return product([BASE, *STABILISERS.values()], axis(WARMUP, [0.0, 0.25]),
                 axis("optimizer.peak_lr", LRS), axis("seed", SEEDS))


def get_claims(arg=None):
  del arg
  cold = lambda setting: dict(setting, **{WARMUP: 0.0})
  warm = dict(BASE, **{WARMUP: 0.25})
  out = [claim("at these LRs, warmup lowers the baseline's final loss (the premise)",
               paper=PAPER, a=cold(BASE), b=warm, metric="final_eval_loss",
               direction="lower")]
  for name, setting in STABILISERS.items():
    out += [
        claim(f"without warmup, {name} lowers the final loss", paper=PAPER, a=cold(BASE),
              b=cold(setting), metric="final_eval_loss", direction="lower"),
        claim(f"{name} without warmup is no worse than warmup without it", paper=PAPER,
              a=warm, b=cold(setting), metric="final_eval_loss", direction="lower",
              comment="a match predicts 'inconclusive'; 'contradicted': warmup still wins"),
    ]
  return out
