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


CODE_PATHS = ("warmup_research", "experiments", "requirements.txt")


def code_version(root: str | os.PathLike | None = None) -> str:
  """The git commit of the checkout at `root` (default: the one this package
  runs from) as a short hash, '+dirty' when its code (not its results)
  differs from that commit; 'unknown' outside a git checkout. Recorded
  beside results so a table names the code that made it."""
  root = pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parents[1]
  git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True,
                                  text=True, timeout=30)
  try:
    head = git("rev-parse", "--short", "HEAD")
    if head.returncode:
      return "unknown"
    dirty = git("status", "--porcelain", "--", *CODE_PATHS).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return head.stdout.strip() + ("+dirty" if dirty else "")


def prepare(path, config_json: str, *, overwrite: bool = False, field: str = "--workdir",
            record_name: str = "config.json", write: bool = True) -> pathlib.Path:
  """Creates/validates `path` and records `config_json` in it as `record_name`.

  `write=False` (the non-zero processes of a multi-process run) only checks.
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
      same = json.loads(recorded.read_text()) == json.loads(config_json)
    except json.JSONDecodeError:
      same = False
    if not same and not overwrite:
      raise ConfigError(field, f"{path} holds a {'grid' if 'sweep' in record_name else 'run'} "
                        "with a different config; use another --workdir, or --overwrite to "
                        "replace it")
    if not same and write:
      for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
  if write:
    write_atomic(recorded, config_json)
  return path


def write_atomic(path, text: str) -> None:
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
