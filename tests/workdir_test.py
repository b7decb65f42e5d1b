"""Workdirs: the code version beside results, the guard (refused paths,
foreign files, run vs sweep, committed results), --overwrite deleting only
the project's files, and one writer at a time."""
import json
import shutil
import signal
import subprocess
import sys
import time

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


@pytest.mark.parametrize("raw", ["", ".", "..", "~", "/", "  "])
def test_paths_that_must_never_be_a_workdir_are_refused(raw):
  from warmup_research.errors import ConfigError
  with pytest.raises(ConfigError, match="--workdir: .* is not allowed as a workdir"):
    workdir.prepare(raw, "{}")


def test_a_git_checkout_root_and_foreign_files_are_refused_and_untouched(tmp_path):
  from warmup_research.errors import ConfigError
  repo = tmp_path / "repo"
  _git(tmp_path, "init", "-q", str(repo))
  (repo / "code.py").write_text("keep\n")
  with pytest.raises(ConfigError, match="root of a git checkout"):
    workdir.prepare(repo, "{}", overwrite=True)
  other = tmp_path / "other"
  other.mkdir()
  (other / "config.json").write_text("{}")   # another tool's files
  (other / "notes.txt").write_text("mine\n")
  with pytest.raises(ConfigError, match=r"holds files this project did not write \(notes.txt\)"):
    workdir.prepare(other, '{"seed": 1}', overwrite=True)
  assert (other / "notes.txt").read_text() == "mine\n" and (repo / "code.py").exists()
  assert sorted(p.name for p in other.iterdir()) == ["config.json", "notes.txt"]


def test_overwrite_deletes_only_what_the_project_wrote_never_through_a_link(tmp_path):
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "precious.txt").write_text("keep\n")
  wd = tmp_path / "w"
  workdir.prepare(wd, '{"seed": 0}')
  (wd / "metrics.jsonl").write_text("old\n")
  (wd / "checkpoints").mkdir()
  (wd / "plots").symlink_to(outside, target_is_directory=True)
  (wd / "notes.txt").write_text("the user's, added later\n")
  workdir.prepare(wd, '{"seed": 1}', overwrite=True)
  assert (outside / "precious.txt").read_text() == "keep\n"
  assert sorted(p.name for p in wd.iterdir()) == [
      ".lock", ".warmup_research.json", "notes.txt", "sweep.json"]
  assert json.loads((wd / "sweep.json").read_text()) == {"seed": 1}


def test_a_run_and_a_sweep_never_share_a_workdir(tmp_path):
  from warmup_research.errors import ConfigError
  workdir.prepare(tmp_path / "w", '{"seed": 0}', kind="run")
  with pytest.raises(ConfigError, match="holds a run, not a sweep"):
    workdir.prepare(tmp_path / "w", '{"runs": []}', kind="sweep", overwrite=True)


def test_results_committed_without_their_record_refuse_a_changed_grid(tmp_path):
  # results/<experiment>/ is committed with its marker but not sweep.json
  from warmup_research.errors import ConfigError
  wd = tmp_path / "results" / "exp"
  grid = json.dumps({"experiment": "e.py", "runs": [{"run_id": "a"}]})
  workdir.prepare(wd, grid, kind="sweep")
  (wd / "sweep.json").unlink()
  (wd / "runs.csv").write_text("committed\n")
  with pytest.raises(ConfigError, match="differs in: the grid recorded in .warmup_research.json"):
    workdir.prepare(wd, json.dumps({"experiment": "e.py", "runs": [{"run_id": "b"}]}),
                    kind="sweep")
  assert (wd / "runs.csv").read_text() == "committed\n"
  workdir.prepare(wd, grid, kind="sweep")   # the same grid: re-made in place


def test_one_writer_per_workdir_and_no_stale_lock_after_a_kill(tmp_path):

  from warmup_research.errors import ConfigError
  wd = tmp_path / "w"
  code = ("import sys, time\nfrom warmup_research import workdir\n"
          f"workdir.prepare({str(wd)!r}, '{{}}')\nprint('locked', flush=True)\ntime.sleep(60)\n")
  holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.time()
    with pytest.raises(ConfigError, match=f"in use by another warmup-research process \\(pid "
                                          f"{holder.pid}\\)"):
      workdir.prepare(wd, "{}")
    assert time.time() - t0 < 5   # refused at once
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  workdir.prepare(wd, "{}")   # the OS released the killed holder's lock


def test_another_tools_config_json_is_refused_without_a_traceback(tmp_path):
  from warmup_research import config as config_lib
  from warmup_research.errors import ConfigError
  other = tmp_path / "other"
  other.mkdir()
  (other / "config.json").write_text('["not", "ours"]')
  with pytest.raises(ConfigError, match="differs in: config.json \\(unreadable, or not this "):
    workdir.prepare(other, '{"seed": 0}', upgrade=config_lib.upgrade_record)
  assert (other / "config.json").read_text() == '["not", "ours"]'


def test_the_experiment_path_as_spelled_is_not_part_of_the_grid(tmp_path):
  runs = [{"run_id": "a", "config": {"seed": 0}}]
  workdir.prepare(tmp_path / "w", json.dumps({"experiment": "experiments/e.py", "runs": runs}),
                  kind="sweep")
  workdir.prepare(tmp_path / "w", json.dumps({"experiment": "./experiments/e.py", "runs": runs}),
                  kind="sweep")
  assert workdir.record_hash(json.dumps({"experiment": "x", "runs": runs})) == \
      workdir.record_hash(json.dumps({"experiment": "y", "runs": runs}))


def test_a_grown_grids_marker_matches_the_same_grid_run_fresh():
  # a fresh clone has the marker but no sweep.json: the grid, run as one, is the same grid
  runs = [{"run_id": r, "config": {"seed": i}} for i, r in enumerate("ab")]
  fresh = {"experiment": "e", "runs": runs}
  grown = dict(fresh, groups=[["a"], ["b"]])
  assert workdir.record_hash(json.dumps(grown)) == workdir.record_hash(json.dumps(fresh))
  other = dict(fresh, runs=runs[:1])
  assert workdir.record_hash(json.dumps(other)) != workdir.record_hash(json.dumps(fresh))


def test_an_overwrite_killed_part_way_leaves_no_finished_looking_run(tmp_path, monkeypatch):
  # --overwrite deletes the records of finished groups first, so a kill
  # after any one deletion never leaves a finished group without its curves.
  wd = tmp_path / "w"
  workdir.prepare(wd, json.dumps({"experiment": "e", "runs": [{"run_id": "a"}]}), kind="sweep")
  for d in ("groups", "metrics", "checkpoints"):
    (wd / d).mkdir()
    (wd / d / "x.json").write_text("{}")
  deleted = []

  def killed(path, *a, **k):
    deleted.append(path.name)
    raise KeyboardInterrupt   # the first deletion is the last thing it does

  monkeypatch.setattr(shutil, "rmtree", killed)
  with pytest.raises(KeyboardInterrupt):
    workdir.prepare(wd, json.dumps({"experiment": "e", "runs": [{"run_id": "b"}]}),
                    kind="sweep", overwrite=True)
  assert deleted == ["groups"]
  assert (wd / "sweep.json").is_file() and (wd / workdir.MARKER).is_file()   # still claimed


def test_a_grown_grid_whose_record_is_lost_is_refused_not_regrouped(tmp_path):
  from warmup_research.errors import ConfigError
  runs = [{"run_id": r, "config": {"seed": i}} for i, r in enumerate("abc")]
  fresh = {"experiment": "e", "runs": runs}
  wd = tmp_path / "w"
  workdir.prepare(wd, json.dumps(dict(fresh, groups=[["a", "b"], ["c"]])), kind="sweep")
  (wd / "sweep.json").unlink()
  (wd / "checkpoints" / "g000").mkdir(parents=True)
  with pytest.raises(ConfigError, match="sweep.json is missing, and the grid grew in place"):
    workdir.prepare(wd, json.dumps(fresh), kind="sweep")
  assert (wd / "checkpoints" / "g000").is_dir()
  (wd / "checkpoints" / "g000").rmdir()
  workdir.prepare(wd, json.dumps(fresh), kind="sweep")   # no runs (a fresh clone): re-made
