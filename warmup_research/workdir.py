"""Run directories: checked before any compute, never clobbered silently.

A workdir holds `config.json` (the run's full config). Re-running the same
config there resumes; a different config is refused unless `overwrite`.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

from warmup_research.errors import ConfigError


def prepare(path, config_json: str, *, overwrite: bool = False,
            field: str = "--workdir") -> pathlib.Path:
  """Creates/validates `path` and records `config_json` in it."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise ConfigError(field, f"{path} is a file; give a directory")
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
      pass
  except OSError as e:
    raise ConfigError(field, f"{path} is not a writable directory ({e.strerror})") from e
  recorded = path / "config.json"
  if recorded.exists():
    try:
      same = json.loads(recorded.read_text()) == json.loads(config_json)
    except json.JSONDecodeError:
      same = False
    if not same and not overwrite:
      raise ConfigError(field, f"{path} holds a run with a different config; use another "
                        "--workdir, or --overwrite to replace it")
    if not same:
      for child in path.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
  write_atomic(recorded, config_json)
  return path


def write_atomic(path, text: str) -> None:
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
