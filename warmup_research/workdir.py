"""Run directories: checked before any compute, never clobbered silently.

A workdir holds `config.json` (the run's full config). Re-running the same
config there resumes; a different config is refused unless `overwrite`.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile

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


def prepare(path, config_json: str, *, overwrite: bool = False, field: str = "--workdir",
            record_name: str = "config.json", write: bool = True,
            upgrade=lambda record: record) -> pathlib.Path:
  """Creates/validates `path` and records `config_json` in it as `record_name`.

  `write=False` (the non-zero processes of a multi-process run) only checks.
  `upgrade(recorded)` is compared instead of the recorded JSON (fills fields
  a record predates).
  """
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise ConfigError(field, f"{path} is a file; give a directory")
  if write:
    try:
      path.mkdir(parents=True, exist_ok=True)
      with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
        pass
    except OSError as e:
      raise ConfigError(field, f"{path} is not a writable directory ({e.strerror})") from e
  recorded = path / record_name
  if recorded.exists():
    try:
      diff = differences(upgrade(json.loads(recorded.read_text())), json.loads(config_json))
    except json.JSONDecodeError:
      diff = [f"{record_name} (unreadable)"]
    same = not diff
    if not same and not overwrite:
      shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
      raise ConfigError(field, f"{path} holds a {'grid' if 'sweep' in record_name else 'run'} "
                        f"with a different config (differs in: {shown}); use another "
                        "--workdir, or --overwrite to replace it")
    if not same and write:
      for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
  if write:
    write_atomic(recorded, config_json)
  return path


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


def write_atomic(path, text: str) -> None:
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
