"""Warmup across model size: LR sensitivity and the largest trainable LR
with and without warmup on a size ladder, and how the warmup's effect
changes with size (Wortsman et al. 2023, "Small-scale proxies for
large-scale Transformer training instabilities": the trend with size is
what transfers; LR sensitivity grows with size, and a longer warmup
lowers it; Kalra & Barkeshli 2024: warmup raises the largest trainable LR).

Claims (fixed before the run):
- at each rung, a 10% warmup lowers LR sensitivity, and lowers the final
  loss at each one's best LR;
- the warmup's reduction of LR sensitivity grows with size (the slope of
  its effect on log10 non-embedding parameters is negative), and so does
  its rise of the largest trainable LR (positive slope).

Run (CPU scale: 360 runs, 71,640 run-steps, a compiled program per rung
and LR block; writes results/scale_warmup/):

    ./launch.sh experiments/scale_warmup.py

Ladder: the llama block on English prose under a BPE of 1,024 tokens
(`data.name='prose'`), widths 32 / 48 / 64 with 2 / 3 / 4 layers (head
size 16): 24,672, 83,280 and 196,672 non-embedding parameters (8.0x; 57k,
132k and 262k in all), each trained for 2 tokens per non-embedding
parameter (49, 163 and 385 updates of 16 x 64 tokens). Grid: warmup
{none, 10% linear} x peak LR {2e-3 .. 9.05e-2, 12 points, 2 per octave} x 5
paired seeds (fresh: 900..904); Adam b2 0.95, cosine to 10%, no weight
decay or clipping. Not here (issue 35): a second horizon (4x), a long
warmup, and the GPU-scale ladder.
"""
from warmup_research import config as config_lib
from warmup_research.claims import claim, trend
from warmup_research.sweep import axis, ladder, product

from ._ablation import ablation_scale, seeds

LR = "optimizer.peak_lr"
WARMUP = "schedule.warmup_ratio"
SEEDS = seeds(5, first=900)
SIZES = [{"model.d_model": d, "model.num_layers": n, "model.num_heads": d // 16}
         for d, n in ((32, 2), (48, 3), (64, 4))]
# 2e-3 .. 9.05e-2 in half-octaves. The grid first ran to 2.26e-2 (k < 8) and nothing diverged,
# so the largest trainable LR was censored at its top; it grew in place to k = 11 (same claims).
LRS = [round(2e-3 * 2 ** (k / 2), 6) for k in range(12)]
NONE, TEN = {WARMUP: 0.0}, {WARMUP: 0.1}


def get_config(arg=None):
  del arg
  c = ablation_scale(config_lib.default_config(), None, steps=384, gpu_steps=384)
  c.data.name, c.data.tokenizer, c.model.vocab_size = "prose", "bpe:1024", 1024
  c.model.block = "llama"
  c.optimizer.name = "adam"
  c.optimizer.b2 = 0.95
  c.schedule.warmup_steps = None
  c.schedule.warmup_ratio = 0.1
  c.schedule.final_frac = 0.1
  return c


def grid(lrs, seeds):
  """The ladder at 2 tokens per parameter x warmup {none, 10%} x `lrs` x
  `seeds` (scale_boundary runs it over higher LRs)."""
  rungs = ladder(get_config(), SIZES, tokens_per_param=[2])
  return product(rungs, axis(WARMUP, [0.0, 0.1]), axis(LR, lrs), axis("seed", seeds))


def get_sweep(arg=None):
  del arg
  return grid(LRS, SEEDS)


def get_claims(arg=None):
  del arg
  w, kb = "Wortsman et al. 2023", "Kalra & Barkeshli 2024"
  planned = dict(planned_seeds=5)
  return [
      claim("at each size, a 10% warmup lowers LR sensitivity", paper=w, a=NONE, b=TEN,
            metric="lr_sensitivity", direction="lower", **planned),
      claim("at each size, a 10% warmup lowers the final loss, each at its best LR", paper=w,
            a=NONE, b=TEN, metric="final_eval_loss", direction="lower", at_best=LR, **planned),
      trend("the warmup's reduction of LR sensitivity grows with size", paper=w, a=NONE,
            b=TEN, metric="lr_sensitivity", x="non_embedding_params", direction="lower",
            **planned),
      trend("the warmup's rise of the largest trainable LR grows with size", paper=kb, a=NONE,
            b=TEN, metric="max_trained_lr", x="non_embedding_params", direction="higher",
            **planned),
  ]
