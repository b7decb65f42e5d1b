"""Where a group's metrics go while it trains, through one writer.

`Logger.write(rows)` takes one row per variant (`{"step": s, ...}`: a train
row or an eval row) and sends it to every backend:

- the run's JSONL file (always; the source of truth, format unchanged);
- `tensorboard`: event files in `tb/RUN_ID/` (a `train` run: `tb/`), tags
  `eval_loss` and `train/KEY`, with the run's hyperparameters attached
  (hparams plugin), so `tensorboard --logdir WORKDIR/tb` shows curves live;
- `wandb`: one Weights & Biases run per variant (group = the sweep's
  workdir name, name = run id, config = the run's config), imported only
  when asked for; `WANDB_MODE=offline` keeps it on disk.

Rows are host copies of numbers the step already computed, so logging never
changes a metric and never recompiles. A resumed run restarts the event
files at its checkpoint (TensorBoard's purge step) and resumes its W&B run.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import hparams, scalar

from warmup_research import config as config_lib
from warmup_research.errors import ConfigError

BACKENDS = ("tensorboard", "wandb")
DEFAULT = "tensorboard"
# Shown as hparams columns for every run, besides its swept fields.
HEADLINE = ("optimizer.name", "optimizer.peak_lr", "optimizer.b2", "schedule.warmup_steps",
            "schedule.warmup_shape", "schedule.decay_shape", "model.norm", "seed")


def parse(text: str) -> tuple[str, ...]:
  """'tensorboard,wandb' -> the backends; 'none' or '' -> JSONL only."""
  names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
  bad = [n for n in names if n not in BACKENDS]
  if bad:
    raise ConfigError("--logger", f"unknown logger {bad[0]!r}; allowed: a comma list of "
                      f"{', '.join(BACKENDS)}, or none")
  return names


def hparams_of(cfg, swept: dict) -> dict:
  """The numbers and names TensorBoard's hparams table shows for one run."""
  flat = config_lib.flatten(cfg.to_dict())
  out = {f: flat[f] for f in HEADLINE if f in flat}
  out.update({f: v for f, v in swept.items()})
  return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
          for k, v in out.items() if v is not None}


class EventFile:
  """One run's TensorBoard event file, written synchronously: tensorboardX's
  SummaryWriter queues events for a thread, so its flush is no barrier and a
  run killed after a checkpoint could lose rows logged before it."""

  def __init__(self, directory, purge_step: int | None = None):
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
    self.writer = EventsWriter(os.path.join(str(directory), "events"), f".{os.getpid()}")
    if purge_step:   # TensorBoard drops what earlier files logged from this step on
      self.writer.write_event(Event(wall_time=time.time(), step=purge_step,
                                    session_log=SessionLog(status=SessionLog.START)))

  def add_summary(self, summary, step: int = 0) -> None:
    self.writer.write_event(Event(wall_time=time.time(), step=step, summary=summary))

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    self.add_summary(scalar(tag, value), step)

  def flush(self) -> None:
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def tensorboard_writer(directory, cfg, swept: dict, start: int = 0) -> EventFile:
  """An event file for one run; a new run (start 0) gets its
  hyperparameters, a resumed one purges what was logged after `start`."""
  w = EventFile(directory, purge_step=start or None)
  if start == 0:
    for summary in hparams(hparams_of(cfg, swept), {"eval_loss": 0.0}):
      w.add_summary(summary)
  return w


def scalars(row: dict) -> dict:
  """A metrics row's values as TensorBoard / W&B tags."""
  return {k if k == "eval_loss" else f"train/{k}": v for k, v in row.items()
          if k != "step" and v is not None}


class Logger:
  """The writer of one group's K variants (process 0 only)."""

  def __init__(self, metrics_paths, *, run_ids, cfgs, swepts, tb_dirs=None, start: int = 0,
               backends=(DEFAULT,), workdir=None):
    self.files = [open(p, "a") for p in metrics_paths]
    self.tb = [tensorboard_writer(d, cfg, swept, start)
               for d, cfg, swept in zip(tb_dirs, cfgs, swepts)
               ] if "tensorboard" in backends and tb_dirs is not None else []
    self.wandb = []
    if "wandb" in backends:
      try:
        import wandb  # optional: only a run that asks for it needs it installed
      except ImportError as e:
        raise ConfigError("--logger", "wandb is not installed (pip install wandb)") from e
      root = pathlib.Path(workdir).resolve()
      for run_id, cfg in zip(run_ids, cfgs):
        stable = hashlib.sha1(f"{root}/{run_id}".encode()).hexdigest()[:16]  # resumes
        self.wandb.append(wandb.init(
            project="warmup-research", group=root.name, name=run_id, id=stable,
            config=cfg.to_dict(), dir=str(root), resume="allow", reinit="create_new"))

  def write(self, rows_per_variant) -> None:
    for i, row in enumerate(rows_per_variant):
      if row is None:   # no row for this variant
        continue
      self.files[i].write(json.dumps(row) + "\n")
      tags = scalars(row)
      if self.tb:
        for k, v in tags.items():
          self.tb[i].add_scalar(k, v, row["step"])
      if self.wandb:
        self.wandb[i].log(tags, step=row["step"])

  def flush(self) -> None:
    for f in self.files:
      f.flush()
    for w in self.tb:
      w.flush()

  def close(self) -> None:
    for f in self.files:
      f.close()
    for w in self.tb:
      w.close()
    for run in self.wandb:
      run.finish()
