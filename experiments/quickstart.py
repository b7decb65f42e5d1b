"""Quickstart: a small byte-level LM on the offline corpus (Python's stdlib).

Run (sets up .venv on first use):

    ./launch.sh
    # or, in the venv:
    python -m warmup_research train --config experiments/quickstart.py \
        --workdir workdirs/quickstart [--config.optimizer.peak_lr=3e-3 ...]

d_model 128, 2 layers, 4 heads, seq 128, batch 32 (446k parameters), AdamW,
linear warmup over 10% of 600 steps, then cosine decay to 10% of the peak.
"""
from warmup_research import config as config_lib


def get_config():
  c = config_lib.default_config()
  c.train.total_steps = 600
  c.train.eval_every = 100
  c.train.eval_batches = 4
  c.train.log_every = 10
  c.train.checkpoint_every = 100
  c.schedule.warmup_shape = "linear"
  c.schedule.warmup_ratio = 0.1
  c.schedule.decay_shape = "cosine"
  c.optimizer.name = "adamw"
  c.optimizer.peak_lr = 3e-3
  return c
