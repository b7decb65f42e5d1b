"""Run directories: a guarded resource, checked before any compute.

A workdir belongs to one sweep, or one `train` run (a sweep of one point),
is written by one process at a time (an OS lock), and holds a marker that
names its kind, its record's hash and what the project may write there:
only that is ever deleted. Re-running the same config resumes; a different
one is refused unless `overwrite`. `Layout` names its files; `read_record`
reads its record.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import pathlib
import shutil
import subprocess
import tempfile

from warmup_research import config as config_lib
from warmup_research.errors import ConfigError

CODE_PATHS = ("warmup_research", "experiments", "benchmarks", "requirements.txt",
              "pyproject.toml")


def code_version(root: str | os.PathLike | None = None) -> str:
  """The git commit of the checkout at `root` (default: the one this package
  runs from) as a short hash, '+dirty' when its code (not its results)
  differs from that commit; 'unknown' outside a git checkout. Recorded
  beside results so a table names the code that made it."""
  root = pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parents[1]
  git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True,
                                  text=True, timeout=30)
  try:
    top = git("rev-parse", "--show-toplevel")
    head = git("rev-parse", "--short", "HEAD")
    # an installed copy (site-packages) is no checkout, even inside one
    if head.returncode or pathlib.Path(top.stdout.strip()).resolve() != root.resolve():
      return "unknown"
    dirty = git("status", "--porcelain", "--", *CODE_PATHS).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return head.stdout.strip() + ("+dirty" if dirty else "")


RECORD = "sweep.json"         # the record of a sweep, and of a `train` run since it is one
LEGACY_RECORD = "config.json"  # a `train` workdir's record before that: its one config
LEGACY_GROUP = "g000"         # the group id of a legacy `train` workdir's one run


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where a workdir's files are; every module asks this for their names.

  A sweep, and a `train` run (one run, id 'run', swept over nothing), hold

      sweep.json            the record: run ids, swept values, configs, claims
      groups/GID.json       a finished group's record: its runs, timings, device
      metrics/RUN_ID.jsonl  per-step curves;  checkpoints/GID/  orbax, per group
      tb/RUN_ID/            TensorBoard events
      runs.csv  summary.md  summary.json  plots/  analysis.csv   the tables

  A `train` workdir made before runs were sweeps (`legacy`) holds
  config.json (its config), metrics.jsonl, checkpoints/, tb/ and summary.json
  (the run's record, which stands for its group's): it is read and resumed
  in place, in that layout, so no user's file is moved or rewritten."""
  root: pathlib.Path
  legacy: bool = False

  @classmethod
  def of(cls, path) -> Layout:
    """The layout of the workdir at `path` (a new or empty one: a sweep's)."""
    root = pathlib.Path(path)
    return cls(root, legacy=(root / LEGACY_RECORD).is_file() and not (root / RECORD).exists())

  @property
  def record(self) -> pathlib.Path:
    return self.root / (LEGACY_RECORD if self.legacy else RECORD)

  def metrics(self, run_id: str) -> pathlib.Path:
    return self.root / "metrics.jsonl" if self.legacy else self.root / "metrics" / f"{run_id}.jsonl"

  def checkpoints(self, gid: str) -> pathlib.Path:
    return self.root / "checkpoints" if self.legacy else self.root / "checkpoints" / gid

  def group_record(self, gid: str) -> pathlib.Path:
    return self.root / "summary.json" if self.legacy else self.root / "groups" / f"{gid}.json"

  def group_records(self) -> list[tuple[str, pathlib.Path]]:
    """(group id, path) of every finished group's record."""
    if self.legacy:
      path = self.group_record(LEGACY_GROUP)
      return [(LEGACY_GROUP, path)] if path.is_file() else []
    return [(p.stem, p) for p in sorted((self.root / "groups").glob("*.json"))]

  def tb(self, run_id: str) -> pathlib.Path:
    return self.root / "tb" if self.legacy else self.root / "tb" / run_id

  @property
  def summary(self) -> pathlib.Path | None:
    """The summary.json the tables write; None in a legacy `train` workdir,
    where that name holds the run's own record."""
    return None if self.legacy else self.root / "summary.json"

  def make_dirs(self) -> None:
    """The directories a run writes into."""
    if not self.legacy:
      for sub in ("groups", "metrics", "checkpoints"):
        (self.root / sub).mkdir(exist_ok=True)

  def record_text(self, record_json: str) -> str:
    """How the record `record_json` (a sweep.json) is written here: a legacy
    `train` workdir keeps its one config, as config.json always held it."""
    record = json.loads(record_json)
    runs = record.get("runs") if isinstance(record, dict) else None
    if not (self.legacy and isinstance(runs, list) and len(runs) == 1):
      return record_json
    return json.dumps(runs[0]["config"], sort_keys=True)


RECORD_REMEDY = ("it records the grid: restore it from a copy; or, if the grid never grew "
                 "in place, delete it and re-run the sweep that made it, which writes it "
                 "again (a grown grid's group layout is only in this file)")


def unreadable(e: Exception, remedy: str) -> str:
  return f"is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:160]}); {remedy}"


def read_record(path, field: str = "WORKDIR") -> dict:
  """A workdir's record, the one reader of it: its sweep.json, or a legacy
  `train` workdir's config.json as a grid of one run ('run', swept over
  nothing). One ConfigError names a missing or unreadable record."""
  layout = Layout.of(path)
  if not layout.record.is_file():
    raise ConfigError(field, f"{layout.root} holds no sweep or train run (no {RECORD})")
  try:
    record = json.loads(layout.record.read_text())
    if layout.legacy:
      if not isinstance(record, dict):
        raise ValueError("not a config")
      return dict(experiment=f"train run {layout.root}",
                  runs=[dict(run_id="run", swept={}, config=record)])
    if not isinstance(record, dict) or not all(
        {"run_id", "config", "swept"} <= set(r) for r in record["runs"]):
      raise ValueError("not a grid of runs (run_id, config, swept)")
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(str(layout.record), unreadable(e, RECORD_REMEDY)) from None
  return record


MARKER = ".warmup_research.json"   # kind, record hash, and what the project may write here
LOCK = ".lock"
# Everything the project writes into a workdir: --overwrite deletes these and nothing else.
WRITTEN = ("config.json", "sweep.json", "metrics.jsonl", "metrics", "checkpoints",
           "checkpoints.damaged", "groups", "tb", "plots", "runs.csv", "summary.md",
           "summary.json", "analysis.csv", "laws.json", "wandb", MARKER, LOCK)
# The kind of a workdir made before markers, by the record it holds.
KINDS = {"run": LEGACY_RECORD, "sweep": RECORD}
# --overwrite deletes what says "finished" first and what says "whose" last, so
# a kill part-way leaves neither finished-looking runs nor an unclaimed directory.
DELETE_FIRST = ("groups", "summary.json", "summary.md", "runs.csv", "analysis.csv")
DELETE_LAST = ("config.json", "sweep.json", MARKER)
RUNS = ("checkpoints", "groups", "metrics")   # a sweep's runs live here

_held_locks: dict = {}   # resolved path -> its open lock file, held until the process exits


def check_path(raw, field: str = "--workdir") -> pathlib.Path:
  """Refuses paths that must never be a workdir: '', '.', '~', '/', the home
  directory, a git checkout's root."""
  text = str(raw)
  if text.strip() in ("", ".", "..", "~", "/"):
    raise ConfigError(field, f"{text!r} is not allowed as a workdir (it would hold, and "
                      "--overwrite could delete, files that are not this run's); give a new "
                      "or empty directory, e.g. workdirs/NAME")
  path = pathlib.Path(text).expanduser()
  resolved = path.resolve()
  if resolved == pathlib.Path(resolved.anchor) or resolved == pathlib.Path.home().resolve():
    raise ConfigError(field, f"{text!r} is the filesystem root or your home directory; give "
                      "a new or empty directory, e.g. workdirs/NAME")
  if (resolved / ".git").exists():
    raise ConfigError(field, f"{text!r} is the root of a git checkout; give a new or empty "
                      "directory, e.g. workdirs/NAME")
  return path


# How the experiment file was spelled on the command line names no setting.
NOT_COMPARED = ("experiment",)


def _comparable(record):
  if isinstance(record, dict):
    return {k: v for k, v in record.items() if k not in NOT_COMPARED}
  return record


def record_hash(record_json: str) -> str:
  """The hash a marker keeps of a record (fields added later at their legacy
  value left out: `config.canonical`). A grown grid's group layout is left
  out too: it says how the runs were split into programs, not which runs,
  so a fresh clone re-runs a grown grid as one grid."""
  record = json.loads(record_json)
  record.pop("groups", None)
  return hashlib.sha256(json.dumps(_comparable(config_lib.canonical(record)),
                                   sort_keys=True).encode()).hexdigest()


def read_marker(path: pathlib.Path) -> dict | None:
  try:
    marker = json.loads((path / MARKER).read_text())
  except (OSError, json.JSONDecodeError):
    return None
  return marker if isinstance(marker, dict) and marker.get("kind") in KINDS else None


RELABELLED = ("relabelled_from", "relabelled_claims")


def relabelled(marker: dict | None, sha: str) -> dict:
  """The relabelling record of a marker (which claims were rewritten after
  the run, and the hash they were run under), kept while the grid it
  describes, `sha`, is the one recorded: a re-run of the same grid must not
  erase that its claims were read after the fact."""
  if not marker or marker.get("record_sha256") != sha:
    return {}
  return {k: marker[k] for k in RELABELLED if k in marker}


def _ours(name: str) -> bool:
  return (name in WRITTEN or name.startswith(".write-probe-")
          or (name.startswith(".") and name.endswith(".tmp")))


def _kind_of(path: pathlib.Path, field: str) -> str | None:
  """The kind of an existing workdir (None: empty); foreign files are refused."""
  marker = read_marker(path)
  if marker:
    return marker["kind"]
  foreign = [e.name for e in path.iterdir() if not _ours(e.name)]
  if foreign:
    shown = ", ".join(sorted(foreign)[:3]) + (" ..." if len(foreign) > 3 else "")
    raise ConfigError(field, f"{path} holds files this project did not write ({shown}); "
                      "give a new or empty directory")
  kinds = [k for k, name in KINDS.items() if (path / name).exists()]
  if len(kinds) > 1:
    raise ConfigError(field, f"{path} holds both a run (config.json) and a sweep (sweep.json)")
  return kinds[0] if kinds else None   # made before markers existed: adopted


def lock(path: pathlib.Path, field: str = "--workdir") -> None:
  """An exclusive advisory lock on `path`, held by this process until it
  exits (the OS releases it when the process dies, so a killed run leaves
  no stale lock). A second writer is refused at once, with the holder's pid."""
  key = str(path.resolve())
  if key in _held_locks:   # this process holds it already
    return
  f = open(path / LOCK, "a")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = _lock_holder(path / LOCK)
    f.close()
    raise ConfigError(field, f"{path} is in use by another warmup-research process (pid "
                      f"{holder}); wait for it to finish, or use another --workdir") from None
  _held_locks[key] = f


def _lock_holder(lock_file: pathlib.Path) -> str:
  """The pid holding a flock on `lock_file`, from /proc/locks (Linux); the
  lock file itself stays empty, so taking the lock changes no file."""
  try:
    inode = os.stat(lock_file).st_ino
    for line in open("/proc/locks"):
      parts = line.split()
      if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
        return parts[4]
  except OSError:
    pass
  return "unknown"


def prepare(path, record_json: str, *, kind: str = "run", overwrite: bool = False,
            field: str = "--workdir", write: bool = True,
            upgrade=lambda record: record, grows=lambda old, new: False) -> Layout:
  """Checks, locks and claims a workdir for a run or a sweep, records
  `record_json` (a sweep.json) in it and returns its `Layout`.

  Refused, before anything is written: paths `check_path` refuses; a
  directory with files the project did not write; one that holds the other
  kind; one that holds a different record, unless `overwrite` (which then
  deletes only what the project wrote: `WRITTEN`, never through a symlink).
  A legacy `train` workdir is resumed in its own layout (`Layout.record_text`).
  `write=False` (the non-zero processes of a multi-process run) only checks.
  `upgrade(recorded)` is compared instead of the recorded JSON (fills fields
  a record predates). `grows(old, new)`: the new record extends the old
  (a grid grown in place), so nothing is deleted and the record is replaced.
  """
  path = check_path(path, field)
  if path.exists() and not path.is_dir():
    raise ConfigError(field, f"{path} is a file; give a directory")
  existing = _kind_of(path, field) if path.is_dir() else None
  if existing is not None and existing != kind:
    raise ConfigError(field, f"{path} holds a {existing}, not a {kind}: a workdir is one or "
                      "the other; use another --workdir")
  layout = Layout.of(path)
  check = lambda: _refuse_a_different_record(layout, layout.record_text(record_json), kind,
                                             overwrite, field, upgrade, grows)
  check()
  if write:
    try:
      path.mkdir(parents=True, exist_ok=True)
      with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
        pass
    except OSError as e:
      raise ConfigError(field, f"{path} is not a writable directory ({e.strerror})") from e
    lock(path, field)
  diff = check()   # again, now that this process holds the lock
  if diff and write:
    middle = [n for n in WRITTEN if n not in DELETE_FIRST + DELETE_LAST]
    for name in (*DELETE_FIRST, *middle, *DELETE_LAST):
      child = path / name
      if name == LOCK or not (child.exists() or child.is_symlink()):
        continue
      if child.is_dir() and not child.is_symlink():
        shutil.rmtree(child)
      else:
        child.unlink()
    layout = Layout(path)   # what replaces a legacy run is written in today's layout
  if write:   # unchanged files are left as they are: re-running changes nothing
    text = layout.record_text(record_json)
    grown = "groups" in json.loads(record_json)   # its layout is in the record alone
    sha = record_hash(text)
    earlier = read_marker(path) or {}
    # an earlier marker's list is kept (--overwrite deletes today's WRITTEN either way):
    # a name added to WRITTEN must not rewrite every existing workdir's marker
    marker = json.dumps(dict(kind=kind, record_sha256=sha,
                             written=earlier.get("written", list(WRITTEN)),
                             **({"grown": True} if grown else {}),
                             **relabelled(earlier or None, sha)), indent=1)
    for file, content in ((layout.record, text), (path / MARKER, marker)):
      if not file.exists() or file.read_text() != content and not (
          file == layout.record and _same_record(file.read_text(), content)):
        write_atomic(file, content)
  return layout


def _same_record(old: str, new: str) -> bool:
  """Whether two records differ only by fields added since, at their legacy
  values: the old file is then kept as it is (re-running changes nothing)."""
  try:
    return config_lib.canonical(json.loads(old)) == config_lib.canonical(json.loads(new))
  except ValueError:
    return False


def _refuse_a_different_record(layout, record_json, kind, overwrite, field, upgrade,
                               grows) -> list[str]:
  diff = (_differences(layout, record_json, kind, upgrade, grows) if layout.root.is_dir()
          else [])
  if diff and not overwrite:
    shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
    raise ConfigError(field, f"{layout.root} holds a {'grid' if kind == 'sweep' else 'run'} "
                      f"with a different config (differs in: {shown}); use another "
                      "--workdir, or --overwrite to replace it")
  return diff


def differences_from(path, record_json: str, *, kind: str, upgrade=lambda r: r,
                     grows=lambda old, new: False) -> list[str]:
  """How `record_json` differs from the grid or run recorded in `path` ([]:
  the same, or a growth of it), as `prepare` decides it."""
  layout = Layout.of(path)
  return _differences(layout, layout.record_text(record_json), kind, upgrade, grows)


def _compared(record, kind: str):
  """What of a record is compared: a run's one config (so a difference is
  named by its field, `train.total_steps`, in either layout), or a grid."""
  if kind == "run" and isinstance(record, dict) and len(record.get("runs") or []) == 1:
    return _comparable(record["runs"][0].get("config"))
  return _comparable(record)


def _differences(layout, record_json, kind, upgrade, grows) -> list[str]:
  """How `record_json` differs from what the workdir holds: its recorded
  file, or (results committed without it) the record hash in its marker."""
  recorded, path = layout.record, layout.root
  if recorded.exists():
    try:
      old, new = upgrade(json.loads(recorded.read_text())), json.loads(record_json)
      return [] if grows(old, new) else differences(_compared(old, kind), _compared(new, kind))
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError):
      return [f"{recorded.name} (unreadable, or not this project's)"]
  marker = read_marker(path) if path.is_dir() else None
  if marker and marker.get("record_sha256") not in (None, record_hash(record_json)):
    return [f"the grid recorded in {MARKER} (its {recorded.name} is not here)"]
  if marker and marker.get("grown") and any(
      (path / d).is_dir() and any((path / d).iterdir()) for d in RUNS):
    # regrouping would put other runs at the recorded runs' places in their groups
    return [f"its {recorded.name} is missing, and the grid grew in place, so which group "
            "each run belongs to is lost (restore that file to keep the runs)"]
  return []


def differences(a, b, prefix: str = "") -> list[str]:
  """Dotted paths where two JSON values differ (lists of equal length
  compared item by item, `runs[2].config.model.d_model`)."""
  if isinstance(a, dict) and isinstance(b, dict):
    return [d for k in sorted(set(a) | set(b), key=str)
            for d in (differences(a.get(k), b.get(k), f"{prefix}{k}.") if k in a and k in b
                      else [f"{prefix}{k}"])]
  if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
    return [d for i, (x, y) in enumerate(zip(a, b))
            for d in differences(x, y, f"{prefix.rstrip('.')}[{i}].")]
  return [] if a == b else [prefix.rstrip(".") or "(the whole record)"]


def strict_json(obj, **kw) -> str:
  """JSON with null for NaN and infinities (never the bare NaN Python writes)."""
  def clean(x):
    if isinstance(x, float) and not math.isfinite(x):
      return None
    if isinstance(x, dict):
      return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
      return [clean(v) for v in x]
    return x
  return json.dumps(clean(obj), allow_nan=False, **kw)


def write_atomic(path, text: str) -> None:
  """Writes `text` to `path` by a rename (never a torn file); an unchanged
  file is left untouched, so re-making a finished run's files changes none."""
  path = pathlib.Path(path)
  if path.is_file() and path.read_text() == text:
    return
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
