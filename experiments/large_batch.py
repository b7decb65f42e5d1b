"""Ablation: large-batch training with a scaled LR and warmup (Goyal et al.
2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour").

Claim: with the LR scaled linearly with the batch size (k x batch ->
k x LR), a gradual warmup is what lets the large batch train, and train as
well as the small one at the same number of examples. Goyal et al. used SGD
with momentum; for Adam the square-root rule (sqrt(k) x LR) is the usual
counterpart, tested here too, against the unscaled LR as a control.

Run (CPU scale; results/README.md has the measured wall time; writes
results/large_batch/):

    ./launch.sh experiments/large_batch.py
    # GPU scale (d_model 512, 8 layers, seq 256; batch 32 -> 256):
    ./launch.sh experiments/large_batch.py:gpu --workdir results/large_batch_gpu

Grid, at equal examples seen (CPU: 800 x 16 = 100 x 128 sequences), 6
paired seeds, cosine decay, no weight decay or clipping:
  batch 16,  800 steps: SGD (momentum 0.9) at base LRs {0.025, 0.05, 0.1},
             no warmup (Goyal et al.'s small-batch baseline);
  batch 128, 100 steps: SGD at 8 x each base LR (linear rule) with warmup
             {0, 25%}; Adam (b2 0.95) at sqrt(8) x 3e-3 (square-root rule)
             with warmup {0, 25%} and at 3e-3 (unscaled) with 25%.
The SGD base LR is tuned, as Goyal et al. tune the small batch's: each SGD
claim compares each side at its own best base LR (leave-one-seed-out). A
first design at one base LR (0.1, so 0.8 at the large batch) failed its
premise: 9 of 10 large-batch runs diverged with or without warmup
(results/README.md).
Both batches are evaluated on 512 fixed validation sequences (32 batches of
16, 4 of 128); plots are against examples seen. Batch size, step count and
optimizer are static: four compiled programs.
"""
import math

from warmup_research import config as config_lib
from warmup_research.claims import claim, noninferior
from warmup_research.sweep import axis, product

from ._ablation import ablation_scale, seeds

K = 8                                        # large batch / small batch
SGD_LRS = [0.025, 0.05, 0.1]                 # the small batch's, tuned per claim
ADAM_LR = 3e-3
SEEDS = seeds(6)
RULE = {"sgd": K, "adam": math.sqrt(K)}      # linear for SGD, square root for Adam
PAPER = "Goyal et al. 2017"


def get_config(arg=None):
  c = ablation_scale(config_lib.default_config(), arg, steps=800, gpu_steps=8000)
  c.optimizer.b2 = 0.95
  c.optimizer.momentum = 0.9
  c.data.batch_size = 32 if arg == "gpu" else 16
  return c


def _sizes(arg):
  base = get_config(arg)
  small, steps = base.data.batch_size, base.train.total_steps
  return (dict(batch=small, steps=steps, evals=base.train.eval_batches),
          dict(batch=small * K, steps=steps // K, evals=base.train.eval_batches // K))


def _point(size, name, lr, warmup):
  return {"data.batch_size": size["batch"], "train.total_steps": size["steps"],
          "train.eval_every": size["steps"] // 4, "train.checkpoint_every": size["steps"] // 4,
          "train.eval_batches": size["evals"], "optimizer.name": name,
          "optimizer.peak_lr": float(f"{lr:.4g}"), "schedule.warmup_ratio": warmup}


def _conditions(arg):
  """Adam's conditions (one LR each) and SGD's (a list of points: one per
  base LR; the claims' sides drop the LR, which `at_best` chooses)."""
  small, large = _sizes(arg)
  out = {"sgd small w0.0": [_point(small, "sgd", lr, 0.0) for lr in SGD_LRS]}
  for w in (0.0, 0.25):
    out[f"sgd scaled w{w}"] = [_point(large, "sgd", lr * RULE["sgd"], w) for lr in SGD_LRS]
    out[f"adam scaled w{w}"] = [_point(large, "adam", ADAM_LR * RULE["adam"], w)]
  out["adam unscaled w0.25"] = [_point(large, "adam", ADAM_LR, 0.25)]
  return out


def _side(points):
  """A claim's side: the fields its points share (the SGD sides: all but the LR)."""
  return {k: v for k, v in points[0].items() if all(p[k] == v for p in points)}


def get_sweep(arg=None):
  return product([p for points in _conditions(arg).values() for p in points],
                 axis("seed", SEEDS))


def get_claims(arg=None):
  c = {name: _side(points) for name, points in _conditions(arg).items()}
  # Planned before the run: 6 seeds, the fewest at which an exact sign test can pass at 5%.
  # A diverged run counts as its initial eval loss ('cap'), so the loss claims keep the
  # failures warmup is meant to prevent instead of dropping them.
  sgd = dict(at_best="optimizer.peak_lr", failures="cap", planned_seeds=len(SEEDS))
  adam = dict(failures="cap", planned_seeds=len(SEEDS))
  # Non-inferiority margin, in nats per token, declared before any re-run: 0.05 is about 2% of
  # these models' final loss (2.2-2.8), under the 0.1-0.5-nat effects the warmup claims
  # report and 5x what the 32 fixed eval batches resolve (0.01).
  margin = 0.05
  return [
      claim("SGD, linear rule: warmup lowers the large batch's loss", paper=PAPER,
            a=c["sgd scaled w0.0"], b=c["sgd scaled w0.25"], metric="final_eval_loss",
            direction="lower", **sgd),
      claim("SGD, linear rule: without warmup the large batch fails more often", paper=PAPER,
            a=c["sgd scaled w0.25"], b=c["sgd scaled w0.0"], metric="failed",
            direction="higher", pool="mean", planned_seeds=len(SEEDS)),
      # "no worse than" is one-sided: non-inferiority within `margin`
      noninferior("SGD, linear rule + warmup: the large batch is no worse than the small one "
                  "at equal examples", paper=PAPER, a=c["sgd small w0.0"],
                  b=c["sgd scaled w0.25"], metric="final_eval_loss", margin=margin,
                  comment="the paper predicts a match", **sgd),
      claim("Adam, square-root rule + warmup beats the unscaled LR at the large batch",
            paper="(the usual Adam counterpart of the linear rule)",
            a=c["adam unscaled w0.25"], b=c["adam scaled w0.25"], metric="final_eval_loss",
            direction="lower", **adam),
      claim("Adam, square-root rule: warmup lowers the large batch's loss", paper=PAPER,
            a=c["adam scaled w0.0"], b=c["adam scaled w0.25"], metric="final_eval_loss",
            direction="lower", **adam),
  ]
