"""Ablation: layer-norm placement (Xiong et al. 2020, "On Layer Normalization
in the Transformer Architecture").

Claim: post-LN transformers need learning-rate warmup at peak LRs where
pre-LN transformers train fine without it; the effect grows with depth, so
the model here is deep and narrow (12 layers, d_model 64).

Run (CPU scale, about 20 minutes on 2 cores; writes results/ln_placement/):

    ./launch.sh experiments/ln_placement.py
    # GPU scale (d_model 512, 16 layers, seq 256, 3000 steps):
    ./launch.sh experiments/ln_placement.py:gpu --workdir results/ln_placement_gpu

Grid: norm {pre, post} x warmup {0, 100} of 250 steps (linear) x peak LR
{3e-4, 1e-3, 3e-3, 1e-2} x 5 paired seeds; Adam (b2 0.98, no weight decay,
no clipping, so nothing hides the instability), cosine decay. `norm` is
static: two compiled programs of 40 variants each.
"""
from warmup_research import config as config_lib
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import SEEDS, ablation_scale

PAPER = "Xiong et al. 2020"


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=250, gpu_steps=3000)
  c.model.num_layers = 16 if arg == "gpu" else 12
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.98
  return c


def get_sweep(arg=None):
  warmups = [0, 1000] if arg == "gpu" else [0, 100]
  return product(axis("model.norm", ["pre", "post"]),
                 axis("schedule.warmup_steps", warmups),
                 axis("optimizer.peak_lr", [3e-4, 1e-3, 3e-3, 1e-2]),
                 axis("seed", SEEDS))


def get_claims(arg=None):
  warmup = 1000 if arg == "gpu" else 100
  none, some = {"schedule.warmup_steps": 0}, {"schedule.warmup_steps": warmup}
  post, pre = {"model.norm": "post"}, {"model.norm": "pre"}
  # Non-inferiority margin, in nats per token, declared before any re-run: 0.05 is about 2% of
  # these models' final loss (2.2-2.8), under the 0.1-0.5-nat effects the warmup claims
  # report and 5x what the 32 fixed eval batches resolve (0.01).
  margin = 0.05
  pooled = dict(pool="mean", planned_seeds=5)   # the mean over the 4 LRs, per seed
  return [
      claim("post-LN: warmup lowers the final loss (paired over LRs and seeds)", paper=PAPER,
            a=none, b=some, where=post, metric="final_eval_loss", direction="lower", **pooled),
      claim("without warmup, pre-LN reaches a lower loss than post-LN", paper=PAPER,
            a=post, b=pre, where=none, metric="final_eval_loss", direction="lower", **pooled),
      claim("post-LN: warmup raises the largest LR that trains", paper=PAPER,
            a=none, b=some, where=post, metric="max_trained_lr", direction="higher",
            planned_seeds=5),
      claim("post-LN without warmup fails (stalls or diverges) more often", paper=PAPER,
            a=some, b=none, where=post, metric="failed", direction="higher", **pooled),
      # "as good as ... can be removed" is one-sided (removing warmup costs at most
      # `margin`): non-inferiority, not equivalence
      noninferior("pre-LN without warmup is as good as with it at its best LR (the paper: "
                  "warmup can be removed)", paper=PAPER, a=some, b=none, where=pre,
                  at_best="optimizer.peak_lr", metric="final_eval_loss", margin=margin,
                  planned_seeds=5),
  ]
