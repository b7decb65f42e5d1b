"""Where a group's metrics go while it trains, through one writer.

`Logger.write(rows)` takes one row per variant (`{"step": s, ...}`: a train
row or an eval row) and sends it to every backend:

- the run's JSONL file (always; the source of truth, format unchanged);
- `tensorboard`: event files in `tb/RUN_ID/` (a `train` run: `tb/`), tags
  `train/KEY` and `eval/KEY` (`eval/loss`), with the run's whole config as
  its hyperparameters (hparams plugin), so `tensorboard --logdir WORKDIR/tb`
  shows curves live;
- `wandb`: one Weights & Biases run per variant (group = the sweep's
  workdir name, name = run id, config = the run's config), imported only
  when asked for; `WANDB_MODE=offline` keeps it on disk.

Rows are host copies of numbers the step already computed, so logging never
changes a metric and never recompiles. Files are not held open: rows wait in
memory and are appended, one file open at a time, at `flush()` (which the
loop calls before every checkpoint, so what a checkpoint covers is on disk),
every `FLUSH_SECONDS` (or ten times what an append took, if longer) and
every `FLUSH_ROWS` rows, so a group of any number of variants fits in
`ulimit -n`.

A resumed run (its metrics file already cut back to its checkpoint) makes a
new event file that purges (TensorBoard's SessionLog START) every event from
its checkpoint's step on, then logs again the rows the file kept from that
step (the eval after the checkpoint's updates), so TensorBoard shows each
row once; a restart from update 0 purges everything, and a run directory
without event files gets every row. In W&B it starts a new run of the same
name that logs every row the file kept, then goes on: the rows a killed run
had logged after its last flush die in W&B's buffers, and W&B cannot rewrite
a run's history (its rewind is a preview that refuses a run the server still
thinks is running).
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import secrets
import socket
import struct
import time

from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c
from tensorboardX.summary import hparams, scalar

from warmup_research import config as config_lib
from warmup_research import metrics_io
from warmup_research.errors import ConfigError

BACKENDS = ("tensorboard", "wandb")
DEFAULT = "tensorboard"
# Buffered rows are appended at least this often (live curves) and at this
# many rows (bounded memory), besides every checkpoint's flush.
FLUSH_SECONDS = 10.0
FLUSH_ROWS = 100_000


@dataclasses.dataclass(frozen=True)
class Targets:
  """Where a group's rows go besides its JSONL files: `Logger`'s arguments
  other than the files, the configs and the start (the loop has those)."""
  run_ids: list[str] | None = None    # one per variant; None: '0', '1', ...
  swepts: list[dict] | None = None    # each run's swept values; None: {} each
  tb_dirs: list | None = None         # each run's TensorBoard dir; None: no TensorBoard
  backends: tuple[str, ...] = ()      # of BACKENDS (`parse`); (): the JSONL files only
  workdir: str | pathlib.Path | None = None   # W&B's root and group name

  def logger(self, metrics_paths, cfgs, start: int) -> Logger:
    """The `Logger` of a group's variants `cfgs`, from update `start`."""
    k = len(cfgs)
    return Logger(metrics_paths, cfgs=cfgs, start=start,
                  run_ids=self.run_ids or [str(i) for i in range(k)],
                  swepts=self.swepts or [{}] * k, tb_dirs=self.tb_dirs,
                  backends=self.backends, workdir=self.workdir)


def parse(text: str) -> tuple[str, ...]:
  """'tensorboard,wandb' -> the backends; 'none' or '' -> JSONL only. Asked
  for, wandb must be able to log (`check_wandb`)."""
  names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
  bad = [n for n in names if n not in BACKENDS]
  if bad:
    raise ConfigError("--logger", f"unknown logger {bad[0]!r}; allowed: a comma list of "
                      f"{', '.join(BACKENDS)}, or none")
  if "wandb" in names:
    check_wandb()
  return names


def check_wandb() -> None:
  """Refuses wandb before anything is written if a run could not log: not
  installed, or online without credentials (wandb.init would fail, or wait
  at a login prompt, only once the workdir is made). Reads what wandb itself
  reads (its settings files and WANDB_* variables, WANDB_API_KEY, the
  netrc that `wandb login` writes), offline."""
  try:
    import wandb  # optional: only a run that asks for it needs it installed
    from wandb import env  # optional and heavy, as above
    from wandb.errors import AuthenticationError  # optional and heavy, as above
    from wandb.sdk.lib import wbauth  # optional and heavy, as above
  except ImportError as e:
    raise ConfigError("--logger", "wandb is not installed (pip install wandb)") from e
  try:
    settings = wandb.Settings()
    settings.settings_system = str(pathlib.Path(
        os.getenv(env.CONFIG_DIR) or "~/.config/wandb").expanduser() / "settings")
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
  except ValueError as e:   # a WANDB_* value wandb refuses
    raise ConfigError("--logger", "wandb's settings are invalid: " + " ".join(str(e).split())) \
        from None
  if settings.mode in ("offline", "dryrun", "disabled"):
    return
  remedy = ("set WANDB_API_KEY, run `wandb login`, or set WANDB_MODE=offline (to log "
            "into WORKDIR/wandb and `wandb sync` later)")
  key = os.getenv(env.API_KEY)
  if key and os.getenv(env.IDENTITY_TOKEN_FILE):
    raise ConfigError("--logger", f"wandb: set WANDB_API_KEY or {env.IDENTITY_TOKEN_FILE}, "
                      "not both")
  if key and (problem := wbauth.check_api_key(key)):
    raise ConfigError("--logger", f"wandb: WANDB_API_KEY is invalid: {problem} Fix it: {remedy}")
  try:
    found = bool(key or os.getenv(env.IDENTITY_TOKEN_FILE) or settings.api_key
                 or wbauth.read_netrc_auth(host=settings.base_url))
  except AuthenticationError as e:   # a netrc entry of the wrong format
    raise ConfigError("--logger", f"wandb: the netrc key is invalid: {e} Fix it: {remedy}") \
        from None
  if not found:
    raise ConfigError("--logger", f"wandb has no API key for {settings.base_url} (mode "
                      f"{settings.mode}): {remedy}")


def hparams_of(cfg, swept: dict | None = None) -> dict:
  """The run's hyperparameters for TensorBoard's hparams table: every field
  of its config (and of `swept`, the fields its sweep sets), scalars as they
  are, the rest (lists, None) as JSON, so every run shows every column."""
  out = config_lib.flatten(cfg.to_dict()) | dict(swept or {})
  return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
          for k, v in out.items()}


def _record(event: Event) -> bytes:
  """One event as a TFRecord: length, its masked CRC-32C, data, its CRC."""
  data = event.SerializeToString()
  head = struct.pack("<Q", len(data))
  return (head + struct.pack("<I", masked_crc32c(head)) + data
          + struct.pack("<I", masked_crc32c(data)))


def _event_file_name(directory: pathlib.Path) -> str:
  """events.out.tfevents.TIME.HOST.PID, TIME past every event file already
  there: TensorBoard reads a run's files in name order, and a purge must
  come after the events it purges, even when attempts start in one second."""
  taken = [int(m.group(1)) for p in directory.iterdir()
           if (m := re.fullmatch(r"events\.out\.tfevents\.(\d{10})\..*", p.name))]
  t = max([int(time.time()), *(s + 1 for s in taken)])
  return f"events.out.tfevents.{t:010d}.{socket.gethostname()}.{os.getpid()}"


class EventFile:
  """One attempt's TensorBoard event file of a run. Events wait in memory
  and `flush()` appends them (open, write, close), so no file stays open; it
  starts with a SessionLog START at `purge_step`, which makes TensorBoard drop
  what earlier files logged from that step on (at 0: all of it)."""

  def __init__(self, directory, purge_step: int = 0):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    self.path = directory / _event_file_name(directory)
    self.pending: list[bytes] = []
    self.unsynced = False   # appended since the last fsync
    now = time.time()
    self.pending.append(_record(Event(wall_time=now, file_version="brain.Event:2")))
    self.pending.append(_record(Event(wall_time=now, step=purge_step,
                                      session_log=SessionLog(status=SessionLog.START))))

  def add_summary(self, summary, step: int = 0) -> None:
    self.pending.append(_record(Event(wall_time=time.time(), step=step, summary=summary)))

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    self.add_summary(scalar(tag, value), step)

  def flush(self, sync: bool = True) -> None:
    """Appends the waiting events; `sync`: and fsyncs the file."""
    if not self.pending and not (sync and self.unsynced):
      return
    with open(self.path, "ab") as f:
      f.write(b"".join(self.pending))
      if sync:
        f.flush()
        os.fsync(f.fileno())
    self.pending.clear()
    self.unsynced = not sync

  def close(self) -> None:
    self.flush()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def tensorboard_writer(directory, cfg, swept: dict, start: int = 0) -> EventFile:
  """An event file for one run from update `start`: a new run (start 0) gets
  its hyperparameters; what earlier files logged from `start` on is purged."""
  w = EventFile(directory, purge_step=start)
  if start == 0:
    for summary in hparams(hparams_of(cfg, swept), {"eval/loss": 0.0}):
      w.add_summary(summary)
  return w


def scalars(row: dict) -> dict:
  """A metrics row's values as TensorBoard / W&B tags: `eval_KEY` ->
  `eval/KEY`, any other key -> `train/KEY`."""
  return {f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}": v
          for k, v in row.items() if k != "step" and v is not None}


class Logger:
  """The writer of one group's K variants (process 0 only), from update
  `start`: their metrics files are already cut back to it."""

  def __init__(self, metrics_paths, *, run_ids, cfgs, swepts, tb_dirs=None, start: int = 0,
               backends=(DEFAULT,), workdir=None):
    self.paths = [pathlib.Path(p) for p in metrics_paths]
    self.lines: list[list[str]] = [[] for _ in self.paths]   # JSONL rows not yet appended
    self.waiting = 0   # rows written since the last append
    self.flushed_at = time.monotonic()
    self.every = FLUSH_SECONDS
    tensorboard = "tensorboard" in backends and tb_dirs is not None
    kept = ([metrics_io.read(p) for p in self.paths] if tensorboard or "wandb" in backends
            else None)
    self.tb = []
    if tensorboard:
      for d, cfg, swept, rows in zip(tb_dirs, cfgs, swepts, kept):
        d = pathlib.Path(d)
        # From `start` (what earlier files hold before it stays), or all of the
        # file where there are none (removed, or TensorBoard not logged before).
        since = start if d.is_dir() and any(d.glob("events.out.tfevents.*")) else 0
        w = tensorboard_writer(d, cfg, swept, since)
        for row in rows:
          if row["step"] >= since:   # purged, but kept in the metrics file: again
            self._add(w, row)
        self.tb.append(w)
    self.wandb = []
    if "wandb" in backends:
      try:
        import wandb  # optional: only a run that asks for it needs it installed
      except ImportError as e:
        raise ConfigError("--logger", "wandb is not installed (pip install wandb)") from e
      root = pathlib.Path(workdir).resolve()
      for run_id, cfg, rows in zip(run_ids, cfgs, kept):
        # A new W&B run per attempt (ids of one run share their prefix) with
        # every row up to the checkpoint: see the module docstring.
        prefix = hashlib.sha1(f"{root}/{run_id}".encode()).hexdigest()[:16]
        run = wandb.init(project="warmup-research", group=root.name, name=run_id,
                         id=f"{prefix}-{secrets.token_hex(4)}", config=cfg.to_dict(),
                         dir=str(root), reinit="create_new")
        for row in rows:
          run.log(scalars(row), step=row["step"])
        self.wandb.append(run)
    # A run that raises is not closed: its rows still reach its files at exit,
    # as they did from files held open.
    atexit.register(self._append)

  @staticmethod
  def _add(w: EventFile, row: dict) -> None:
    for k, v in scalars(row).items():
      w.add_scalar(k, v, row["step"])

  def write(self, rows_per_variant) -> None:
    for i, row in enumerate(rows_per_variant):
      if row is None:   # no row for this variant
        continue
      self.lines[i].append(json.dumps(row) + "\n")
      self.waiting += 1
      if self.tb:
        self._add(self.tb[i], row)
      if self.wandb:
        self.wandb[i].log(scalars(row), step=row["step"])
    if self.waiting >= FLUSH_ROWS or time.monotonic() - self.flushed_at >= self.every:
      self._append(sync=False)

  def _append(self, sync: bool = False) -> None:
    """Appends the waiting rows to each file, one file open at a time."""
    t = time.monotonic()
    for path, lines in zip(self.paths, self.lines):
      if lines:
        with open(path, "a") as f:
          f.write("".join(lines))
        lines.clear()
    for w in self.tb:
      w.flush(sync)
    self.waiting = 0
    self.flushed_at = time.monotonic()
    # At most a tenth of the time in appends, however many files a group has.
    self.every = max(FLUSH_SECONDS, 10 * (self.flushed_at - t))

  def flush(self) -> None:
    """Everything written so far on disk (the loop: before a checkpoint)."""
    self._append(sync=True)

  def close(self) -> None:
    self.flush()
    atexit.unregister(self._append)
    for run in self.wandb:
      run.finish()
