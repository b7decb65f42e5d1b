"""Workdir helpers: the code version recorded beside results."""
import shutil
import subprocess

import pytest

from warmup_research import workdir

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args):
  return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                        text=True).stdout.strip()


def test_code_version_is_the_commit_and_dirty_only_for_code(tmp_path):
  assert workdir.code_version(tmp_path) == "unknown"  # not a git checkout
  _git(tmp_path, "init", "-q")
  (tmp_path / "warmup_research").mkdir()
  (tmp_path / "warmup_research" / "m.py").write_text("x = 1\n")
  (tmp_path / "results").mkdir()
  (tmp_path / "results" / "t.md").write_text("old\n")
  _git(tmp_path, "add", ".")
  _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  head = _git(tmp_path, "rev-parse", "--short", "HEAD")
  assert workdir.code_version(tmp_path) == head
  (tmp_path / "results" / "t.md").write_text("new results\n")  # what a run writes
  assert workdir.code_version(tmp_path) == head
  (tmp_path / "warmup_research" / "m.py").write_text("x = 2\n")
  assert workdir.code_version(tmp_path) == head + "+dirty"


def test_a_different_config_is_refused_naming_what_differs(tmp_path):
  import json

  from warmup_research.errors import ConfigError
  a = {"model": {"d_model": 32, "norm": "pre"}, "seed": 0}
  workdir.prepare(tmp_path / "w", json.dumps(a))
  (tmp_path / "w" / "metrics.jsonl").write_text("earlier results\n")
  b = {"model": {"d_model": 64, "norm": "pre", "attention": "einsum"}, "seed": 0}
  with pytest.raises(ConfigError, match=r"differs in: model.attention, model.d_model\)"):
    workdir.prepare(tmp_path / "w", json.dumps(b))
  assert (tmp_path / "w" / "metrics.jsonl").read_text() == "earlier results\n"
  workdir.prepare(tmp_path / "w", json.dumps(a))  # the same config: accepted (resume)


def test_differences_descend_into_lists_of_runs():
  old = {"runs": [{"config": {"lr": 1}}, {"config": {"lr": 2}}]}
  assert workdir.differences(old, {"runs": [{"config": {"lr": 1}}, {"config": {"lr": 3}}]}) \
      == ["runs[1].config.lr"]
  assert workdir.differences(old, {"runs": old["runs"][:1]}) == ["runs"]
  assert workdir.differences(old, old) == []
