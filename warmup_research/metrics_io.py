"""Metrics files: one JSON-lines file per run, read, written and cut back.

Train rows `{"step": s, "loss", "z_loss", "lr", "grad_norm", "update_norm",
"param_norm", "diverged", "update_ratio/B", "angle/B"}` are of update s
(every `log_every` updates and the last); B is a block of the params
(`train.update_sizes`: 'embed_VxD', 'blocks.0', ...; files written before
they were logged lack them), and the values of the optimizer hyperparameters
a run's config schedules ("b1", "b2", "momentum", "weight_decay";
`config.scheduled`; a run without such schedules has none). Eval rows
`{"step": n, "eval_loss"}` are after n updates (n = 0 is the initial
model). Only process 0 writes them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib

from warmup_research.errors import ConfigError
from warmup_research.workdir import Layout, write_atomic

TRAIN_KEYS = ("loss", "z_loss", "lr", "grad_norm", "update_norm", "param_norm", "diverged")


def row_keys(metrics) -> tuple[str, ...]:
  """A train row's keys in file order: TRAIN_KEYS, then the per-block
  update sizes as the step returns them (sorted)."""
  return (*TRAIN_KEYS, *sorted(k for k in metrics if k not in TRAIN_KEYS))


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


def digest(path) -> dict:
  """What a finished run records of its metrics file (its group record): the
  row count and the bytes' sha256."""
  data = pathlib.Path(path).read_bytes()
  return dict(rows=data.count(b"\n"), sha256=hashlib.sha256(data).hexdigest())


def restart_remedy(checkpoint_dir, record=None) -> str:
  """The recovery that works for a run whose curves are damaged: its rows
  cannot be rebuilt from a checkpoint, so its group trains again from 0."""
  gone = " and ".join(str(p) for p in (record, checkpoint_dir) if p is not None)
  return (f"delete {gone}, then run the sweep or train command that made it again (that "
          "group trains again from update 0; other groups are kept)")


def read_finished(path, recorded: dict | None, remedy: str) -> list[dict]:
  """The rows of a finished run, only if its file is whole: every line
  decodes and, where the run recorded one (`digest`), the bytes match it.
  Otherwise one ConfigError names the file and `remedy`."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(str(path), f"is missing, but its run is recorded as finished; {remedy}")
  data = path.read_bytes()
  lines = data.count(b"\n")
  if recorded and hashlib.sha256(data).hexdigest() != recorded.get("sha256"):
    what = (f"has {lines} lines, not the {recorded['rows']} its finished run recorded"
            if lines != recorded.get("rows") else "differs from the bytes its finished run "
            "recorded")
    raise ConfigError(str(path), f"{what}: it was damaged or replaced; {remedy}")
  rows = []
  for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      raise ConfigError(str(path), f"line {number} is not JSON, but its run is recorded as "
                        f"finished; {remedy}") from None
  if not data.endswith(b"\n") or not any("eval_loss" in r for r in rows):
    raise ConfigError(str(path), f"ends before its run's last eval (a torn or empty file), "
                      f"but its run is recorded as finished; {remedy}")
  return rows


def write(path, rows) -> None:
  """Replaces the file with `rows`, atomically."""
  write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def truncate(path, step: int) -> None:
  """Keeps train rows of updates < step and eval rows after <= step updates."""
  write(path, [r for r in read(path)   # rows written after update `step`: evals, rungs
               if (r["step"] <= step if "eval_loss" in r or "pruned" in r
                   else r["step"] < step)])


def check_covers(path, step: int, t_cfg, remedy: str) -> None:
  """A resumed run's file must hold the train row of the last update before
  `step` (the checkpoint's) that the loop logs; otherwise it was damaged or
  replaced, and resuming would leave a hole in the curves (or, for a
  finished run, report from nothing). `remedy`: what to do then."""
  want = next((s for s in range(step - 1, -1, -1)
               if s % t_cfg.log_every == 0 or s == t_cfg.total_steps - 1), None)
  rows = read(path)
  if want is not None and not any(r["step"] == want and "loss" in r for r in rows):
    last = max((r["step"] for r in rows if "loss" in r), default=None)
    raise ConfigError(str(path), f"has {len(rows)} readable rows (last train step: {last}), "
                      f"but the checkpoint is at step {step}, so it should reach update "
                      f"{want}: the file was damaged or replaced; {remedy}")


OUTCOMES = ("trained", "slow", "stalled", "diverged", "pruned")
FAILED = ("stalled", "diverged")   # the outcomes that count as a failed run
STALL_MARGINS = (0.1, 0.25, 0.5)   # failure verdicts are also reported at each of these
STALL_WINDOW = 0.5   # stalled: flat on the plateau over this last share of training
SLOW_DROP = 0.02     # nats: a fall over the window larger than this is still learning
RISE_TOL = 0.05      # nats: an eval this far above the initial one, after the warmup, diverged


def outcome(status: str, evals: list[tuple[int, float]], plateau_loss: float | None,
            total_steps: int | None = None, warmup_end: int = 0) -> str:
  """A run's outcome from its status and eval trajectory [(step, eval_loss)]
  (step 0: the initial model), in this order:

  - 'diverged' or 'pruned': the status says so (a step's loss was
    non-finite or above `train.divergence_bound`; stopped by successive
    halving, so unknown); else 'diverged' when an eval after the warmup (step >=
    `warmup_end`, > 0) is non-finite or above the initial eval loss by more
    than `RISE_TOL` (5x what 32 fixed eval batches resolve: a model at the
    initial loss on data it cannot learn is not diverging);
  - 'trained': the final eval loss is at or below `plateau_loss` (the
    data's unigram entropy minus `train.stall_margin`), or no plateau is
    known;
  - 'slow': above it, but still falling: the final eval lies more than
    `SLOW_DROP` below the reference, the last eval (after step 0) at or
    before the start of the last `STALL_WINDOW` of training (or, when none
    is, the eval before the final one);
  - 'stalled': above it and not falling so (a run that regressed onto the
    plateau from below is stalled too); a run whose only evals are the
    initial and the final one has no reference and is stalled.
  A non-finite eval at any step is divergence.
  A slow run is not a failure: it is short of updates, not unstable."""
  if status in ("diverged", "pruned"):   # the loop's own verdicts; a pruned run is unknown
    return status
  if evals:
    init = evals[0][1]
    if any(not math.isfinite(e) or (s >= warmup_end and s > 0 and not e <= init + RISE_TOL)
           for s, e in evals[1:]):
      return "diverged"
  if plateau_loss is None or not evals or evals[-1][1] <= plateau_loss:
    return "trained"
  last = evals[-1][0]
  start = last - STALL_WINDOW * (total_steps if total_steps else last)
  # the reference is a trained eval, never the initial one (about ln V, far above any plateau)
  later = evals[1:-1]
  before = [e for s, e in later if s <= start] or [e for _, e in later]
  if before and before[-1] - evals[-1][1] > SLOW_DROP:
    return "slow"
  return "stalled"


def summarize(rows: list[dict], entropy: float | None = None, *, stall_margin: float = 0.25,
              total_steps: int | None = None, warmup_end: int = 0,
              tokens_per_byte: float | None = None, target: float = 0.0) -> dict:
  """A run's status, outcome and losses from its rows; `outcomes`: its
  outcome at each of `STALL_MARGINS` (where the entropy is known), which
  failure verdicts are re-read at. Losses are nats per token; the `*_bpb`
  ones are bits per byte of the validation text (`bits_per_byte`), None
  where the data's tokens per byte is unknown (the copy task, old records).
  `updates_to_target`: the updates done at the first eval whose loss is at
  most `target` (0: no target; never reached: None), pruned runs before their
  rung; an eval after the update that diverged is never one (a frozen
  variant's evals repeat its last params)."""
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
  for name in ("final", "best"):
    summary[f"{name}_eval_bpb"] = bits_per_byte(summary[f"{name}_eval_loss"], tokens_per_byte)
  curve = [(r["step"], r["eval_loss"]) for r in evals]
  last = diverged[0] if diverged else math.inf
  summary["updates_to_target"] = next((s for s, e in curve if s <= last and e <= target),
                                      None) if target else None
  read = lambda margin: outcome(summary["status"], curve,
                                None if entropy is None else entropy - margin,
                                total_steps, warmup_end)
  summary["outcome"] = read(stall_margin)
  summary["outcomes"] = {m: read(m) for m in STALL_MARGINS} if entropy is not None else None
  return summary


def bits_per_byte(loss: float | None, tokens_per_byte: float | None) -> float | None:
  """Nats per token -> bits per byte: loss * tokens / (bytes * ln 2), with the
  tokenizer's tokens per byte of the validation text (data.Batches)."""
  if loss is None or tokens_per_byte is None:
    return None
  return loss * tokens_per_byte / math.log(2)


def finished_group(layout, gid: str) -> dict:
  """A finished group's record (`Layout.group_record`: sweep.py writes it;
  a legacy `train` run's summary.json reads as one); one ConfigError, with
  the remedy that re-runs the group, if it is unreadable."""
  path = layout.group_record(gid)
  try:
    record = json.loads(path.read_text())
    if not isinstance(record, dict):
      raise ValueError
    if layout.legacy and "run_ids" not in record:
      record = _legacy_group(record)
    if not isinstance(record.get("run_ids"), list):
      raise ValueError
  except (OSError, ValueError):
    raise ConfigError(str(path), "is not a readable group record; " + restart_remedy(
        layout.checkpoints(gid), path)) from None
  return record


def _legacy_group(s: dict) -> dict:
  """A legacy `train` run's summary.json (the run's summary, timings and
  device) as the record of its group."""
  return dict(group="run", run_ids=["run"], compile_seconds=s.get("compile_seconds"),
              step_seconds=s.get("step_seconds"), unigram_entropy=s.get("unigram_entropy"),
              tokens_per_byte=s.get("tokens_per_byte"),
              device=s.get("device") or {}, command=s.get("command", "warmup-research train"),
              code=s.get("code"), finished_at=s.get("finished_at", "see summary.json"),
              metrics={"run": s.get("metrics_digest")},
              train_step_compiles=int(s.get("compile_seconds") is not None))


def finished_runs(workdir) -> tuple[dict[str, dict], dict[str, list[dict]]]:
  """(finished group records by gid, rows by run id of their runs) of a
  workdir: a group is trusted only if every run's metrics file is whole
  (the digest its record holds); otherwise one ConfigError names the file
  and the remedy that re-runs the group."""
  layout = Layout.of(workdir)
  records, rows = {}, {}
  for gid, _ in layout.group_records():
    records[gid] = record = finished_group(layout, gid)
    rows.update(finished_rows(layout, gid, record["run_ids"], record))
  return records, rows


def finished_rows(layout, gid: str, run_ids, record: dict | None = None) -> dict[str, list]:
  """{run id: rows} of runs of the finished group `gid` (its record read
  unless given), each file checked whole against the record's digest."""
  record = record or finished_group(layout, gid)
  remedy = restart_remedy(layout.checkpoints(gid), layout.group_record(gid))
  return {run_id: read_finished(layout.metrics(run_id),
                                (record.get("metrics") or {}).get(run_id), remedy)
          for run_id in run_ids}
