"""Quickstart: warmup length x peak LR on a small byte-level LM, offline corpus.

Run (sets up .venv on first use; writes results/quickstart/):

    ./launch.sh
    # the same, in the venv:
    python -m warmup_research sweep experiments/quickstart.py
    # one run of the base config:
    python -m warmup_research train --config experiments/quickstart.py \
        --workdir workdirs/quickstart [--config.optimizer.peak_lr=3e-3 ...]

Model: d_model 128, 2 layers, 4 heads, seq 128, batch 32 (443,648 parameters),
AdamW (b2 0.95, weight decay 0.1, clip 1.0), linear warmup, cosine decay to
10% of the peak, 150 updates on Python's standard library source (bytes).
Grid: warmup {0, 25, 75} steps x peak LR {3e-3, 1e-2}, seed 0: 6 runs, one
compiled program.
"""
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product


def get_config():
  c = config_lib.default_config()
  c.train.total_steps = 150
  c.train.eval_every = 25
  c.train.eval_batches = 4
  c.train.log_every = 10
  c.train.checkpoint_every = 50
  c.schedule.warmup_shape = "linear"
  c.schedule.warmup_steps = 25
  c.schedule.decay_shape = "cosine"
  c.optimizer.name = "adamw"
  c.optimizer.peak_lr = 3e-3
  return c


def get_sweep():
  return product(axis("schedule.warmup_steps", [0, 25, 75]),
                 axis("optimizer.peak_lr", [3e-3, 1e-2]))
