"""Metrics files: one JSON-lines file per run, read, written and cut back.

Train rows `{"step": s, "loss", "z_loss", "lr", "grad_norm", "update_norm",
"param_norm", "diverged"}` are of update s (every `log_every` updates and the
last); eval rows `{"step": n, "eval_loss"}` are after n updates (n = 0 is
the initial model). Only process 0 writes them.
"""
from __future__ import annotations

import json
import math
import os

from warmup_research.errors import ConfigError
from warmup_research.workdir import write_atomic

TRAIN_KEYS = ("loss", "z_loss", "lr", "grad_norm", "update_norm", "param_norm", "diverged")


def read(path) -> list[dict]:
  """Rows of a metrics file; a torn last line (a killed write) is dropped."""
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          break
  return rows


def write(path, rows) -> None:
  """Replaces the file with `rows`, atomically."""
  write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def truncate(path, step: int) -> None:
  """Keeps train rows of updates < step and eval rows after <= step updates."""
  write(path, [r for r in read(path)   # rows written after update `step`: evals, rungs
               if (r["step"] <= step if "eval_loss" in r or "pruned" in r
                   else r["step"] < step)])


def check_covers(path, step: int, t_cfg) -> None:
  """A resumed run's file must hold the train row of the last update before
  `step` (the checkpoint's) that the loop logs; otherwise it was damaged or
  replaced, and resuming would leave a hole in the curves (or, for a
  finished run, report from nothing)."""
  want = next((s for s in range(step - 1, -1, -1)
               if s % t_cfg.log_every == 0 or s == t_cfg.total_steps - 1), None)
  rows = read(path)
  if want is not None and not any(r["step"] == want and "loss" in r for r in rows):
    last = max((r["step"] for r in rows if "loss" in r), default=None)
    raise ConfigError(str(path), f"has {len(rows)} readable rows (last train step: {last}), "
                      f"but the checkpoint is at step {step}, so it should reach update "
                      f"{want}: the file was damaged or replaced; re-run with --overwrite "
                      "(or into a new workdir) to start again")


OUTCOMES = ("trained", "stalled", "diverged", "pruned")


def outcome(summary: dict, plateau_loss: float | None) -> str:
  """'diverged' (a step's loss was non-finite or above the bound), 'pruned'
  (stopped by successive halving; its final loss is its rung's), 'stalled'
  (the final eval loss stayed above `plateau_loss`: the data's unigram
  entropy minus `train.stall_margin`), or 'trained'."""
  if summary["status"] in ("diverged", "pruned"):
    return summary["status"]
  final = summary["final_eval_loss"]
  if plateau_loss is not None and final is not None and not final <= plateau_loss:
    return "stalled"
  return "trained"


def summarize(rows: list[dict], plateau_loss: float | None = None) -> dict:
  """A run's status, outcome and losses from its rows."""
  pruned = next((r["step"] for r in rows if r.get("pruned")), None)
  if pruned is not None:   # its rows after the rung are those of frozen params
    rows = [r for r in rows if r["step"] <= pruned if "loss" not in r or r["step"] < pruned]
  train_rows = [r for r in rows if "loss" in r]
  evals = [r for r in rows if "eval_loss" in r]
  diverged = [r["step"] for r in train_rows if r["diverged"]]
  finite_evals = [r["eval_loss"] for r in evals if math.isfinite(r["eval_loss"])]
  summary = dict(
      status="diverged" if diverged else "pruned" if pruned is not None else "finished",
      diverged_step=diverged[0] if diverged else None, pruned_step=pruned,
      final_train_loss=train_rows[-1]["loss"] if train_rows else None,
      initial_eval_loss=evals[0]["eval_loss"] if evals else None,
      final_eval_loss=evals[-1]["eval_loss"] if evals else None,
      best_eval_loss=min(finite_evals) if finite_evals else None,
      steps=evals[-1]["step"] if evals else 0)
  summary["outcome"] = outcome(summary, plateau_loss)
  return summary
