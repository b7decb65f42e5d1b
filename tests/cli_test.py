"""The train command as a user runs it: a fresh run, SIGKILL + resume equal to
an uninterrupted run, and bad input: exit 2, one clear line, files untouched."""
import argparse
import csv
import errno
import hashlib
import json
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import (
  REPO,
  assert_rows_close,
  at_users_level,
  kill_after_checkpoint,
  run_cli,
  train_summary,
)

from warmup_research import analysis, checkpoints, cli, loggers, results, runtime, workdir
from warmup_research.__main__ import main

TINY = ["--config.model.d_model=32", "--config.model.num_layers=1", "--config.model.num_heads=2",
        "--config.data.seq_len=32", "--config.data.batch_size=4", "--config.data.name=synthetic",
        "--config.train.eval_batches=1", "--config.schedule.warmup_steps=2"]


def _train(workdir, *extra, config="experiments/quickstart.py", wait=True, process=False,
           env=None):
  """The train command: in this process (`run_cli`) unless the test is of the
  process itself (`process`, or a kill: `wait=False`)."""
  args = ["train", "--config", config, "--workdir", str(workdir), "--no-progress", *extra]
  if wait and not process:
    return run_cli(*args)
  cmd = [sys.executable, "-m", "warmup_research", *args]
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _digest(directory):
  h = hashlib.sha256()
  for p in sorted(directory.rglob("*")):
    if p.is_file():
      h.update(p.name.encode() + p.read_bytes())
  return h.hexdigest()


@pytest.mark.slow
def test_quickstart_config_learns_on_the_offline_corpus(tmp_path):
  r = _train(tmp_path / "q", "--config.train.total_steps=40", "--config.train.eval_every=20",
             "--config.train.checkpoint_every=20", "--config.train.eval_batches=2",
             process=True, env=at_users_level())   # the quickstart model, as a user runs it
  assert r.returncode == 0, r.stderr
  summary = train_summary(tmp_path / "q")
  assert summary["status"] == "finished" and summary["steps"] == 40
  assert 0 < summary["compile_seconds"] < summary["first_step_seconds"]
  assert summary["final_eval_loss"] < summary["initial_eval_loss"] - 1.0, summary
  assert summary["device"]["host"] == runtime.cpu_model() and summary["device"]["platform"] == "cpu"
  assert summary["code"] == workdir.code_version()
  assert "done: trained after 40 steps" in r.stdout
  assert (tmp_path / "q" / "metrics" / "run.jsonl").exists()
  assert sorted(p.name for p in (tmp_path / "q" / "checkpoints" / "g000").iterdir()) == [
      "20", "40"]


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
  args = [*TINY, "--config.train.total_steps=400", "--config.train.checkpoint_every=50",
          "--config.train.eval_every=100", "--config.train.log_every=25"]
  full = _train(tmp_path / "full", *args, process=True)   # the same program as the cut run's
  assert full.returncode == 0, full.stderr
  proc = _train(tmp_path / "cut", *args, wait=False)
  kill_after_checkpoint(proc, tmp_path / "cut" / "checkpoints" / "g000", 100)
  assert not (tmp_path / "cut" / "summary.json").exists()
  again = _train(tmp_path / "cut", *args, process=True)
  assert again.returncode == 0, again.stderr
  assert "steps run here" in again.stdout and "400 steps run here" not in again.stdout
  assert ((tmp_path / "cut" / "metrics" / "run.jsonl").read_text()
          == (tmp_path / "full" / "metrics" / "run.jsonl").read_text())
  s_full = train_summary(tmp_path / "full")
  s_cut = train_summary(tmp_path / "cut")
  for k in ("status", "final_train_loss", "final_eval_loss", "best_eval_loss", "steps"):
    assert s_full[k] == s_cut[k], k


def _damage(step_dir):
  files = [f for f in (step_dir / "state").rglob("*") if f.is_file() and f.parent.name == "d"]
  assert files
  for f in files:
    f.write_bytes(b"garbage" * 10)


@pytest.mark.slow
def test_damaged_checkpoints_are_set_aside_and_the_rerun_equals_uninterrupted(tmp_path):
  # Re-running a finished run whose newest (or every) checkpoint was damaged
  # resumes from the newest one that restores (or from scratch), saves the
  # damaged steps anew, and keeps the damaged ones aside in checkpoints.damaged/.

  args = [*TINY, "--config.train.total_steps=10", "--config.train.eval_every=5",
          "--config.train.checkpoint_every=5"]
  full = _train(tmp_path / "full", *args)
  assert full.returncode == 0, full.stderr
  for damaged in (["10"], ["10", "5"]):   # sorted as strings
    wd = tmp_path / f"damaged-{len(damaged)}"
    shutil.copytree(tmp_path / "full", wd)
    for step in damaged:
      _damage(wd / "checkpoints" / "g000" / step)
    (wd / "groups" / "g000.json").unlink()   # a finished group is skipped, as in a sweep
    r = _train(wd, *args)
    assert r.returncode == 0, r.stderr
    assert f"{5 * len(damaged)} steps run here" in r.stdout
    assert sorted(p.name for p in (wd / "checkpoints" / "g000").iterdir()) == ["10", "5"]
    assert sorted(p.name for p in (wd / "checkpoints" / "g000.damaged").iterdir()) == damaged
    assert ((wd / "metrics" / "run.jsonl").read_text()
            == (tmp_path / "full" / "metrics" / "run.jsonl").read_text())
    step, state, _ = checkpoints.load(wd / "checkpoints" / "g000")
    assert step == 10 and int(state["step"][0]) == 10


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("earlier") / "run"
  r = _train(wd, *TINY, "--config.train.total_steps=10", "--config.train.eval_every=5")
  assert r.returncode == 0, r.stderr
  return wd


BAD_INPUTS = [
    (["--config.schedule.warmup_steps=999"],
     "config.schedule.warmup_steps: must be <= train.total_steps (10)"),
    (["--config.schedule.warmup_steps=None", "--config.schedule.warmup_ratio=2.0"],
     "config.schedule.warmup_ratio: must be a number in [0, 1]"),
    (["--config.schedule.warmup_ratio=0.1"], "not both"),
    (["--config.optimizer.peak_lr=0"], "config.optimizer.peak_lr: must be a number > 0"),
    (["--config.schedule.warmup_shape=zigzag"], "config.schedule.warmup_shape: unknown value 'zigzag'"),
    (["--config.schedule.decay_shape=step"], "config.schedule.decay_shape: unknown value 'step'"),
    (["--config.optimizer.name=adagrad"], "config.optimizer.name: unknown value 'adagrad'"),
    (["--config.model.num_heads=3"], "config.model.num_heads: must divide model.d_model (32)"),
    (["--config.data.name=no_such_set"], "config.data.name: unknown dataset 'no_such_set'"),
    (["--config.data.name=bytes", "--config.data.corpus_dir=/nonexistent/dir"],
     "config.data.corpus_dir: not a directory"),
    (["--config.optimizer.peak_rate=1"], "config.optimizer.peak_rate: no such field"),
    (["--config.optimizer.peak_lr=fast"], "config.optimizer.peak_lr: wrong type"),
    (["--config.seed=18446744073709551616"], "config.seed: must be an integer >= 0 and <= "),
    (["--config.train.total_steps=2147483648", "--config.schedule.warmup_steps=2"],
     "config.train.total_steps: must be an integer >= 1 and <= 2147483646"),
    (["--config.model.vocab_size=1e8"], "config.model: the model needs about"),
    (["--config.data.name=bytes", "--config.data.data_dir=/proc/wr-test"],
     "config.data.data_dir: cannot write the dataset under /proc/wr-test"),
    (["--config.model.mlp_ratio=2.5", "--config.seed=-1"], "config.seed: must be"),  # 2.5 is fine
    (["--config.model.block=gpt3"],
     "config.model.block: unknown value 'gpt3'; allowed: gpt2, llama"),
    (["--config.train.grad_accum=3"], "config.train.grad_accum: must divide data.batch_size"),
    (["--config.optimizer.name=schedule_free_adamw", "--config.optimizer.momentum=0.5"],
     "config.optimizer.momentum: is not used by optimizer.name='schedule_free_adamw'"),
    (["--config.optimizer.name=muon", "--config.optimizer.nesterov=True"],
     "config.optimizer.nesterov: is not used by optimizer.name='muon'"),
]


@pytest.mark.slow
@pytest.mark.parametrize("extra,message", BAD_INPUTS, ids=lambda x: str(x)[:50])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(earlier_run, extra, message):
  before = _digest(earlier_run)
  r = _train(earlier_run, *TINY, "--config.train.total_steps=10", "--config.train.eval_every=5",
             *extra)
  assert r.returncode == 2, (r.stdout, r.stderr)
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], r.stderr
  assert "Traceback" not in r.stderr
  assert _digest(earlier_run) == before


@pytest.mark.slow
def test_bad_paths_exit_2(earlier_run, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  a_file = tmp_path / "file.txt"
  a_file.write_text("x")
  r = _train(a_file, *TINY)
  assert r.returncode == 2 and "error: --workdir: " in r.stderr and "is a file" in r.stderr
  r = _train("/proc/warmup-research-test", *TINY)
  assert r.returncode == 2 and "error: --workdir: " in r.stderr and "not a writable" in r.stderr
  r = _train(tmp_path / "w", *TINY, "--config.data.name=bytes", f"--config.data.corpus_dir={empty}")
  assert r.returncode == 2 and "config.data.corpus_dir: no text files" in r.stderr
  r = _train(tmp_path / "w", config=str(tmp_path / "missing.py"))
  assert r.returncode == 2 and "error: --config: no such config file" in r.stderr
  # a different config in an existing run dir is refused, the run kept
  before = _digest(earlier_run)
  r = _train(earlier_run, *TINY, "--config.train.total_steps=12")
  assert r.returncode == 2 and "holds a run with a different config" in r.stderr
  assert "differs in: train.eval_every, train.total_steps)" in r.stderr
  assert _digest(earlier_run) == before


@pytest.mark.slow
def test_a_damaged_metrics_file_is_refused_and_the_run_kept(earlier_run, tmp_path):
  # A finished checkpoint with an unreadable metrics file: resuming would
  # report (and overwrite summary.json) from nothing.
  wd = tmp_path / "run"
  shutil.copytree(earlier_run, wd)
  rows = (wd / "metrics" / "run.jsonl").read_text().splitlines()
  (wd / "metrics" / "run.jsonl").write_text("\n".join(rows[:2] + ["garbage"] + rows[2:]) + "\n")
  before = _digest(wd)
  r = _train(wd, *TINY, "--config.train.total_steps=10", "--config.train.eval_every=5")
  assert r.returncode == 2, r.stderr
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  # refused as a sweep refuses a finished group's damaged file: by its recorded digest
  assert len(errors) == 1 and "run.jsonl: has 6 lines, not the 5 its finished run recorded" in (
      errors[0]), r.stderr
  assert "it was damaged or replaced" in errors[0]
  assert _digest(wd) == before


@pytest.mark.slow
def test_a_run_saved_before_model_attention_resumes_with_the_old_path(earlier_run, tmp_path):
  wd = tmp_path / "old"
  shutil.copytree(earlier_run, wd)
  saved = json.loads((wd / "sweep.json").read_text())
  del saved["runs"][0]["config"]["model"]["attention"]  # as written before the field existed
  (wd / "sweep.json").write_text(json.dumps(saved))
  same = [*TINY, "--config.train.total_steps=10", "--config.train.eval_every=5"]
  r = _train(wd, *same)  # today's default ('einsum') is not what it ran with
  assert r.returncode == 2 and "differs in: model.attention" in r.stderr
  r = _train(wd, *same, "--config.model.attention=xla")
  assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_every_cli_process_runs_with_the_gc_thresholds(tmp_path):
  # In a fresh interpreter (this one's conftest sets them too); a bad workdir
  # makes `report` exit 2 after main has set up the process.
  code = ("import gc\nfrom warmup_research.__main__ import main\ntry:\n"
          f"  main(['report', {str(tmp_path / 'missing')!r}])\n"
          "except SystemExit as e:\n  print(e.code, gc.get_threshold())\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
  assert out.stdout.split(None, 1) == ["2", f"{runtime.GC_THRESHOLDS}\n"], out.stderr
  assert runtime.GC_THRESHOLDS != (700, 10, 10)   # not Python's defaults


@pytest.mark.slow
def test_an_empty_workdir_in_a_checkout_is_refused_and_deletes_nothing(tmp_path):
  # Issue 20, case 1: `--workdir ""` meant the current directory, and
  # --overwrite with a changed config then deleted everything in it.
  clone = tmp_path / "clone"
  subprocess.run(["git", "init", "-q", str(clone)], check=True)
  (clone / "notes.md").write_text("keep\n")
  before = _digest(clone)
  quickstart = str(REPO / "experiments" / "quickstart.py")
  for extra in ([], ["--config.seed=1", "--overwrite"]):
    r = subprocess.run([sys.executable, "-m", "warmup_research", "train", "--config", quickstart,
                        "--workdir", "", *TINY, *extra], cwd=clone, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --workdir: '' is not allowed")
  assert _digest(clone) == before and (clone / ".git").is_dir()


@pytest.mark.slow
def test_rerunning_a_finished_run_changes_no_file(earlier_run):
  before = {p: p.read_bytes() for p in earlier_run.rglob("*") if p.is_file()}
  summary = train_summary(earlier_run)
  r = _train(earlier_run, *TINY, "--config.train.total_steps=10", "--config.train.eval_every=5")
  assert r.returncode == 0, r.stderr
  assert "already finished" in r.stdout
  after = {p: p.read_bytes() for p in earlier_run.rglob("*") if p.is_file()}
  assert after == before
  assert summary["compile_seconds"] > 0 and summary["step_seconds"] is not None


@pytest.mark.slow
def test_report_on_a_train_workdir_and_its_rerun_changes_nothing(earlier_run, tmp_path):
  wd = tmp_path / "run"
  shutil.copytree(earlier_run, wd)
  report = [sys.executable, "-m", "warmup_research", "report", str(wd)]
  r = subprocess.run(report, cwd=REPO, capture_output=True, text=True)
  assert r.returncode == 0, r.stderr
  md = (wd / "summary.md").read_text()
  assert "| 1 | 0/1 | 0/1 |" in md or "| 1 | 1/1 | 0/1 |" in md
  assert "command: `python -m warmup_research train --config experiments/quickstart.py" in md
  assert (wd / "plots" / "loss_curves.png").stat().st_size > 10_000
  assert json.loads((wd / "summary.json").read_text()) == json.loads(
      (earlier_run / "summary.json").read_text())   # the run's own summary is kept
  before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in wd.rglob("*") if p.is_file()}
  assert subprocess.run(report, cwd=REPO, capture_output=True).returncode == 0
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in wd.rglob("*") if p.is_file()
          } == before


@pytest.mark.slow
def test_a_train_workdir_is_a_sweep_of_one_point(earlier_run, tmp_path):

  wd = tmp_path / "run"
  shutil.copytree(earlier_run, wd)
  (run,) = json.loads((wd / "sweep.json").read_text())["runs"]
  assert run["run_id"] == "run" and run["swept"] == {}
  assert json.loads((wd / "groups" / "g000.json").read_text())["run_ids"] == ["run"]
  assert (wd / "metrics" / "run.jsonl").is_file() and (wd / "checkpoints" / "g000").is_dir()
  assert json.loads((wd / "summary.json").read_text())["n_runs"] == 1   # the sweep's summary
  r = run_cli("analyze", wd, "--runs", "run", "--iters", "2")
  assert r.returncode == 0, r.stderr
  with open(wd / "analysis.csv") as f:
    assert [(x["run_id"], x["step"]) for x in csv.DictReader(f)] == [("run", "10")]
  assert run_cli("report", wd).returncode == 0
  assert analysis.find_run(wd) == "run" and analysis.load_run(wd, "run").step == 10
  assert len(analysis.load_metrics(wd)) == len(results.load(wd)["metrics"]["run"])
  # killed after its group record, before its tables: the re-run makes them, trains nothing
  tables = {n: (wd / n).read_bytes() for n in ("runs.csv", "summary.md")}
  for n in ("summary.json", *tables):
    (wd / n).unlink()
  again = _train(wd, *TINY, "--config.train.total_steps=10", "--config.train.eval_every=5")
  assert again.returncode == 0 and "unchanged but for its tables" in again.stdout, again.stderr
  assert {n: (wd / n).read_bytes() for n in tables} == tables
  assert json.loads((wd / "summary.json").read_text())["n_runs"] == 1


LEGACY = REPO / "tests" / "data" / "legacy_train"   # a finished `train` workdir made by 75d1481


def _legacy_args(wd) -> list[str]:
  """The train command that made tests/data/legacy_train, on `wd`."""
  argv = shlex.split(json.loads((LEGACY / "summary.json").read_text())["command"])[3:]
  at = argv.index("--workdir")
  return [*argv[:at], "--workdir", str(wd), *argv[at + 2:], "--no-progress"]


@pytest.mark.slow
def test_a_legacy_train_workdir_reads_reports_analyzes_and_resumes_in_its_layout(tmp_path):
  # Made before a train run was a sweep of one point: config.json, metrics.jsonl,
  # checkpoints/{5,10}, summary.json. Nothing there is moved or rewritten.

  old = tmp_path / "old"
  shutil.copytree(LEGACY, old)
  kept = {n: (old / n).read_bytes() for n in ("config.json", "metrics.jsonl", "summary.json")}
  loaded = results.load(old)
  assert [r["run_id"] for r in loaded["record"]["runs"]] == ["run"]
  assert loaded["metrics"]["run"] == [json.loads(x) for x in kept["metrics.jsonl"].splitlines()]
  assert run_cli("report", old).returncode == 0
  with open(old / "runs.csv") as f:
    (row,) = csv.DictReader(f)
  assert row["run_id"] == "run" and row["status"] == "finished"
  r = run_cli("analyze", old, "--iters", "2")
  assert r.returncode == 0, r.stderr
  with open(old / "analysis.csv") as f:
    assert [(x["run_id"], x["step"]) for x in csv.DictReader(f)] == [("run", "5"), ("run", "10")]
  assert analysis.load_run(old).step == 10 and analysis.load_run(old, "run", step=5).step == 5
  r = run_cli(*_legacy_args(old))   # finished: nothing runs
  assert r.returncode == 0 and "done: already finished" in r.stdout, r.stderr
  assert {n: (old / n).read_bytes() for n in kept} == kept
  assert not any((old / n).exists() for n in ("sweep.json", "metrics", "groups"))
  # killed after its first checkpoint: resumed in place, in its layout
  cut = tmp_path / "cut"
  shutil.copytree(LEGACY, cut)
  shutil.rmtree(cut / "checkpoints" / "10")
  (cut / "summary.json").unlink()
  r = run_cli(*_legacy_args(cut))
  assert r.returncode == 0 and "5 steps run here" in r.stdout, r.stderr
  # the fixture was made at XLA's default level, the suite runs at 0 (helpers.TEST_XLA_FLAGS);
  # it predates the per-block update sizes, which the resumed train rows add
  resumed = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
  assert all(("angle/blocks.0" in x) == ("loss" in x and x["step"] >= 5) for x in resumed)
  assert_rows_close([{k: v for k, v in x.items() if "/" not in k} for x in resumed],
                    [json.loads(x) for x in kept["metrics.jsonl"].splitlines()])
  assert (cut / "config.json").read_bytes() == kept["config.json"]
  assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["10", "5"]
  assert not any((cut / n).exists() for n in ("sweep.json", "metrics", "groups"))
  assert results.load(cut)["groups"][0]["run_ids"] == ["run"]


def test_every_subcommand_help_shows_defaults_and_config_overrides():
  p = cli.parser()
  sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
  for name, parser in sub.choices.items():
    text = parser.format_help()
    assert "--config.SECTION.FIELD=VALUE" in text, name
    for action in parser._actions:
      if action.option_strings and action.dest != "help":
        shown = parser._get_formatter()._get_help_string(action)
        assert action.help and ("(default: " in shown or action.default is None), (
            name, action.dest)
  assert "(default: 20)" in sub.choices["analyze"].format_help()
  args, rest = p.parse_known_args(["sweep", "--config", "experiments/quickstart.py",
                                   "--config.train.total_steps=5"])
  assert cli._experiment(args) == "experiments/quickstart.py"
  assert cli.split_overrides(rest) == {"train.total_steps": "5"}
  with pytest.raises(cli.ConfigError, match="give the experiment once"):
    cli._experiment(p.parse_args(["sweep", "a.py", "--config", "b.py"]))


_HELP_IMPORTS = """
import contextlib, io, json, sys
from warmup_research import __main__, cli
cli.parser()
seen = {"parser": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)}
for command in ("", "train", "sweep", "report", "plan", "analyze", "predict", "schedules"):
  with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    __main__.main([command, "--help"] if command else ["--help"])
  seen[command or "--help"] = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps(seen))
"""


def test_the_cli_and_every_help_import_no_jax_or_scipy():
  # Each command imports the heavy modules it needs, so `--help` answers at
  # once. In a fresh interpreter: this one has jax imported. (No timing here:
  # performance is measured in benchmarks, not asserted in tests.)
  heavy = ("jax", "jaxlib", "scipy", "orbax", "tensorflow_datasets", "matplotlib", "flax",
           "optax", "tensorboardX", "pandas")
  r = subprocess.run([sys.executable, "-c", f"HEAVY = {heavy!r}\n" + _HELP_IMPORTS], cwd=REPO,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr
  seen = json.loads(r.stdout.splitlines()[-1])
  assert len(seen) == 9 and seen == {name: [] for name in seen}, seen
  assert cli.LOGGER_DEFAULT == loggers.DEFAULT   # the parser's copy, kept without the import
  assert cli.parser().parse_args(["train", "--config", "c", "--workdir", "w"]).logger == (
      loggers.DEFAULT)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_stops_with_the_resume_command_and_the_run_resumes(tmp_path, sig, code):
  args = [*TINY, "--config.train.total_steps=1000", "--config.train.checkpoint_every=100",
          "--config.train.eval_every=500", "--config.train.log_every=100"]
  proc = _train(tmp_path / "w", *args, wait=False)
  deadline = time.time() + 240
  while time.time() < deadline and not list((tmp_path / "w" / "checkpoints" / "g000").glob("[0-9]*")):
    time.sleep(0.05)
  proc.send_signal(getattr(signal, sig))
  t0 = time.time()
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == code, err
  assert time.time() - t0 < 10
  last = err.decode().strip().splitlines()[-1]
  assert last.startswith(f"interrupted ({sig}); re-run the same command to resume: "
                         "warmup-research train"), err.decode()
  assert "Traceback" not in err.decode()
  again = _train(tmp_path / "w", *args)
  assert again.returncode == 0 and "done: trained after 1000 steps" in again.stdout, again.stderr


@pytest.mark.slow
def test_two_processes_whose_configs_differ_both_stop_at_once(tmp_path):
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()
  procs = []
  t0 = time.time()
  for i, extra in enumerate([[], ["--config.optimizer.peak_lr=-1"]]):
    env = {**__import__("os").environ, "WR_COORDINATOR": f"127.0.0.1:{port}",
           "WR_NUM_PROCESSES": "2", "WR_PROCESS_ID": str(i)}
    cmd = [sys.executable, "-m", "warmup_research", "train", "--config",
           "experiments/quickstart.py", "--workdir", str(tmp_path / "w"), "--no-progress",
           *TINY, *extra]
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=120) for p in procs]
  assert time.time() - t0 < 60
  assert [p.returncode for p in procs] == [2, 2], outs
  assert "error: --procs: process(es) 1 stopped on bad input" in outs[0][1]
  assert "error: config.optimizer.peak_lr: must be a number > 0" in outs[1][1]
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_full_disk_is_one_error_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):

  args = ["train", "--config", str(REPO / "experiments" / "quickstart.py"), "--workdir",
          str(tmp_path / "w"), "--no-progress", *TINY, "--config.train.total_steps=20",
          "--config.train.eval_every=10"]
  real_save = checkpoints.Checkpointer.save

  def full_disk(self, step, *a, **k):
    if step >= 10:
      raise OSError(errno.ENOSPC, "No space left on device", str(self.directory))
    return real_save(self, step, *a, **k)

  monkeypatch.setattr(checkpoints.Checkpointer, "save", full_disk)
  with pytest.raises(SystemExit) as e:
    main(args)
  assert e.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("error: no space left on the device; free some space, then re-run")
  monkeypatch.setattr(checkpoints.Checkpointer, "save", real_save)
  main(args)   # space freed: the same command resumes and finishes
  summary = train_summary(tmp_path / "w")
  assert summary["steps"] == 20 and summary["outcome"] in ("trained", "stalled")


def test_schedules_refuses_a_run_of_no_steps(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["schedules", "--total-steps", "0", "--out", str(tmp_path / "s.png")])
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == "error: --total-steps: must be an integer >= 1, got 0"
  assert not (tmp_path / "s.png").exists()


# ------------------------------------------------------------ issue 30: one line, not a traceback

SWEEP_EXPERIMENT = '''
from warmup_research import config as config_lib
from warmup_research.sweep import axis
def get_config():
  c = config_lib.default_config()
  c.model.d_model, c.model.num_layers, c.model.num_heads = 32, 1, 2
  c.data.seq_len, c.data.batch_size, c.data.name = 32, 4, "synthetic"
  c.train.total_steps, c.train.eval_every, c.train.eval_batches = 10, 5, 1
  c.train.log_every, c.train.checkpoint_every = 5, 5
  c.schedule.warmup_steps = 2
  return c
def get_sweep():
  return axis("optimizer.peak_lr", {lrs})
'''


def _cli(*args, wrap=()):
  """`python -m warmup_research ARGS` inside the command prefix `wrap`, or
  without one in this process (`run_cli`: these tests make dozens of calls)."""
  if wrap:
    return subprocess.run([*wrap, sys.executable, "-m", "warmup_research", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  return run_cli(*args)


def _one_line(r, code, *fragments):
  """`r` exited `code` with one line on stderr holding every fragment."""
  lines = [line for line in r.stderr.splitlines() if line.strip()]
  assert r.returncode == code and len(lines) == 1, (r.returncode, r.stderr)
  assert all(f in lines[0] for f in fragments), lines[0]
  return lines[0]


def _unshare(script):
  """A command prefix that runs in new user and mount namespaces after the
  shell `script` (mounts there need no privilege, and vanish with it)."""
  if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
    pytest.skip("needs unprivileged user namespaces (unshare -rm)")
  return ["unshare", "-rm", "sh", "-c", f'{script} && exec "$@"', "sh"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
  """A finished 2-run sweep (checkpoints at updates 5 and 10) and its
  analysis.csv; tests copy it."""
  tmp = tmp_path_factory.mktemp("finished")
  exp = tmp / "exp.py"
  exp.write_text(SWEEP_EXPERIMENT.format(lrs=[1e-3, 1e-2]))
  r = _cli("sweep", exp, "--workdir", tmp / "w", "--no-progress")
  assert r.returncode == 0, r.stderr
  r = _cli("analyze", tmp / "w", "--iters", "2")
  assert r.returncode == 0, r.stderr
  return exp, tmp / "w"


def _copy(finished_sweep, tmp_path):
  exp, wd = finished_sweep
  shutil.copytree(wd, tmp_path / "w")
  return exp, tmp_path / "w"


@pytest.mark.slow
@pytest.mark.parametrize("command,body,code,message", [
    ("sweep", "import sys\nsys.exit(0)\n", 2, "exp.py: called sys.exit(0) at import"),
    ("train", "import sys\ndef get_config():\n  sys.exit(0)\n", 2,
     "exp.py: get_config() called sys.exit(0)"),
    ("sweep", "import sys\nfrom warmup_research import config\ndef get_config():\n"
     "  return config.default_config()\ndef get_sweep():\n  sys.exit(1)\n", 2,
     "exp.py: get_sweep() called sys.exit(1)"),
    ("sweep", "from warmup_research import config\ndef get_config():\n"
     "  return config.default_config()\ndef get_sweep():\n  raise KeyboardInterrupt\n", 130,
     "interrupted (KeyboardInterrupt); re-run the same command"),
], ids=["sweep-exit-at-import", "train-exit-in-get_config", "sweep-exit-in-get_sweep",
        "sweep-KeyboardInterrupt-in-get_sweep"])
def test_an_experiment_file_that_exits_or_interrupts_stops_with_one_line(tmp_path, command, body,
                                                                         code, message):
  # Issue 30: sys.exit(0) in an experiment file made `sweep` / `train` exit 0
  # having done nothing; a KeyboardInterrupt printed a traceback.
  exp = tmp_path / "exp.py"
  exp.write_text(body)
  args = ([command, exp] if command == "sweep" else [command, "--config", exp])
  r = _cli(*args, "--workdir", tmp_path / "w")
  line = _one_line(r, code, message)
  assert code == 130 or line.startswith("error: --config: ")
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_report_and_analyze_on_a_read_only_workdir_are_one_line(finished_sweep, tmp_path):
  # Issue 30: both take a lock file and write tables there: a traceback.
  _, wd = _copy(finished_sweep, tmp_path)
  read_only = _unshare(f"mount --bind {wd} {wd} && mount -o remount,bind,ro {wd} {wd}")
  before = _digest(wd)
  for command in ("report", "analyze"):
    r = _cli(command, wd, wrap=read_only)
    _one_line(r, 2, f"error: WORKDIR: {wd} is not writable (Read-only file system)",
              "make it writable, or run on a copy")
  r = _cli("report", wd, "--compare", wd, wrap=read_only)   # writes nothing: allowed
  assert r.returncode == 0 and "| 0.01 |" in r.stdout, r.stderr
  assert _digest(wd) == before


def _truncate(path):
  path.write_bytes(path.read_bytes()[:len(path.read_bytes()) * 2 // 3])


UNREADABLE = [   # (file, damage, the commands refused, what the line says, its remedy)
    ("sweep.json", _truncate, ["report", "analyze", "sweep", "dry-run"], "is unreadable (",
     "delete"),
    ("sweep.json", lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes()), ["report", "sweep"],
     "is unreadable (", "delete"),
    ("analysis.csv", _truncate, ["report", "analyze-some"], "is unreadable (", "analyze"),
    ("groups/g000.json", lambda p: p.write_text('{"group": "g0'),
     ["report", "sweep", "dry-run", "analyze"], "is not a readable group record", "restart"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,damage,commands,says,remedy", UNREADABLE,
                         ids=["sweep.json-truncated", "sweep.json-not-utf8", "analysis.csv-torn",
                              "group-record-corrupt"])
def test_an_unreadable_workdir_file_is_one_line_naming_it_and_a_remedy_that_works(
    finished_sweep, tmp_path, name, damage, commands, says, remedy):
  # Issue 30: report, analyze and sweep met these with a traceback (analyze
  # after its compute), and a dry run not at all.
  exp, wd = _copy(finished_sweep, tmp_path)
  damage(wd / name)
  before = _digest(wd)
  argv = {"report": ["report", wd], "analyze": ["analyze", wd, "--iters", "2"],
          "analyze-some": ["analyze", wd, "--runs", "peak_lr=0.01", "--iters", "2"],
          "sweep": ["sweep", exp, "--workdir", wd, "--no-progress"],
          "dry-run": ["sweep", exp, "--workdir", wd, "--dry-run"]}
  for command in commands:
    line = _one_line(_cli(*argv[command]), 2, f"error: {wd / name}: {says}")
    assert _digest(wd) == before, command
  # the remedy it gives works: then the same commands run
  if remedy == "delete":   # a never-grown grid's sweep.json is written again
    assert "if the grid never grew in place, delete it and re-run the sweep" in line
    (wd / name).unlink()
    r = _cli(*argv["sweep"])
  elif remedy == "restart":   # the group trains again
    assert f"delete {wd / name} and {wd / 'checkpoints' / 'g000'}, then run the sweep" in line
    (wd / name).unlink()
    shutil.rmtree(wd / "checkpoints" / "g000")
    r = _cli(*argv["sweep"])
  else:
    assert f"re-make it (warmup-research analyze {wd}, without --runs" in line
    r = _cli(*argv["analyze"])
  assert r.returncode == 0, r.stderr
  for command in commands:
    assert _cli(*argv[command]).returncode == 0, command
  assert (wd / name).read_bytes() != b""


@pytest.mark.slow
def test_analyze_skips_a_damaged_checkpoint_step_with_one_warning(finished_sweep, tmp_path):
  # Issue 30: one damaged step stopped `analyze` with a traceback and no
  # analysis.csv, though resuming skips such a step.
  _, wd = _copy(finished_sweep, tmp_path)
  _damage(wd / "checkpoints" / "g000" / "5")
  r = _cli("analyze", wd, "--iters", "2")
  _one_line(r, 0, "[analyze] warning: checkpoint step 5 of group g000 in "
            f"{wd / 'checkpoints' / 'g000'} could not be restored (",
            "skipped, the other steps are measured")
  with open(wd / "analysis.csv") as f:
    assert [(x["run_id"], x["step"]) for x in csv.DictReader(f)] == [
        ("peak_lr=0.001", "10"), ("peak_lr=0.01", "10")]


@pytest.mark.slow
def test_a_real_full_disk_is_one_line_alone_and_the_run_resumes(tmp_path):
  # Issue 30: orbax and absl logged 318-346 lines of tracebacks around the
  # one line. A 200 KiB tmpfs fills at the first checkpoint; grown to 64 MiB
  # (space freed), the same command resumes.
  disk, out = tmp_path / "disk", tmp_path / "out"
  disk.mkdir()
  out.mkdir()
  train = ["train", "--config", REPO / "experiments" / "quickstart.py", "--workdir", disk / "w",
           "--no-progress", *TINY, "--config.train.total_steps=20",
           "--config.train.eval_every=10", "--config.train.checkpoint_every=10"]
  cmd = shlex.join([sys.executable, "-m", "warmup_research", *map(str, train)])
  script = (f"mount -t tmpfs -o size=200k tmpfs {disk} && "
            f"{{ {cmd} > {out}/1.out 2> {out}/1.err; echo $? > {out}/1.rc; }} && "
            f"mount -o remount,size=64m tmpfs {disk} && {cmd} > {out}/2.out 2> {out}/2.err")
  r = subprocess.run([*_unshare(script), "true"], cwd=REPO, capture_output=True, text=True,
                     timeout=600)
  first = subprocess.CompletedProcess([], int((out / "1.rc").read_text()),
                                      stderr=(out / "1.err").read_text())
  _one_line(first, 1, "error: no space left on the device; free some space, then re-run the "
            "same command to resume: warmup-research train")
  assert r.returncode == 0, (out / "2.err").read_text()
  assert "done: " in (out / "2.out").read_text() and "steps run here" in (out / "2.out").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("extra,message", [
    (["--config.mesh.variant=7"], "error: config.mesh: variant=7 does not divide the"),
    (["--config.data.name=no_such_set"], "error: config.data.name: unknown dataset 'no_such_set'"),
    (["--config.data.name=bytes", "--config.data.corpus_dir=/nonexistent/dir"],
     "error: config.data.corpus_dir: not a directory"),
    (["--config.model.vocab_size=100000000"], "error: config.model: the model needs about"),
], ids=["mesh", "data-name", "corpus-dir", "memory"])
def test_a_dry_run_refuses_what_the_run_refuses(tmp_path, extra, message):
  # Issue 30: `sweep --dry-run` accepted a data name and a mesh the real run
  # refuses (and never checked the memory estimate).
  exp = tmp_path / "exp.py"
  exp.write_text(SWEEP_EXPERIMENT.format(lrs=[1e-3, 1e-2]))
  for dry in (["--dry-run"], []):
    r = _cli("sweep", exp, "--workdir", tmp_path / "w", "--no-progress", *dry, *extra)
    _one_line(r, 2, message)
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_dry_run_estimates_the_wall_time_from_a_recorded_rate(finished_sweep, tmp_path):
  # Issue 30: the dry run gave no time. A grown grid's new group is timed by
  # the finished group of its signature; a fresh workdir has no rate.
  exp, wd = _copy(finished_sweep, tmp_path)
  grown = tmp_path / "exp.py"
  grown.write_text(SWEEP_EXPERIMENT.format(lrs=[1e-3, 1e-2, 3e-2]))
  record = json.loads((wd / "groups" / "g000.json").read_text())
  before = _digest(wd)
  r = _cli("sweep", grown, "--workdir", wd, "--dry-run")
  assert r.returncode == 0, r.stderr
  assert "group g001: 1 runs x 10 updates, new" in r.stdout
  seconds = 10 * record["step_seconds"] / 2   # 10 run-steps at g000's rate per run
  assert (f"wall time: about {cli._duration(seconds)} of training (compilation not counted), at "
          "the rate per run (seconds per update / runs) recorded by group g000 "
          f"({record['step_seconds']:.3g} s per update of 2 runs on cpu x"
          f"{record['device']['n_devices']}) in {wd / 'groups' / 'g000.json'}") in r.stdout
  assert _digest(wd) == before
  r = _cli("sweep", grown, "--workdir", tmp_path / "fresh", "--dry-run")
  assert r.returncode == 0, r.stderr
  assert ("wall time: no rate recorded (no finished group of this signature in "
          f"{tmp_path / 'fresh'} or results/exp), so no estimate") in r.stdout
  assert not (tmp_path / "fresh").exists()


def _text_corpus(root):
  root.mkdir()
  for i in range(60):
    (root / f"f{i}.txt").write_text(f"Text file {i} tells a short story about warmup. " * 80)
  return root


def test_a_bpe_run_reports_its_loss_in_bits_per_byte(tmp_path):
  corpus = _text_corpus(tmp_path / "corpus")
  wd = tmp_path / "run"
  r = _train(wd, *TINY, "--config.data.name=text", f"--config.data.corpus_dir={corpus}",
             "--config.data.tokenizer=bpe:300", "--config.model.vocab_size=300",
             "--config.train.total_steps=4", "--config.train.eval_every=2")
  assert r.returncode == 0, r.stderr
  s = train_summary(wd)
  assert 0 < s["tokens_per_byte"] < 1
  assert f"{s['final_eval_bpb']:.4f} bits/byte" in r.stdout
  assert s["final_eval_bpb"] == pytest.approx(
      s["final_eval_loss"] * s["tokens_per_byte"] / 0.6931471805599453)
  r = run_cli("report", wd)
  assert r.returncode == 0, r.stderr
  with open(wd / "runs.csv") as f:
    (row,) = csv.DictReader(f)
  assert float(row["final_eval_bpb"]) == pytest.approx(s["final_eval_bpb"])


@pytest.mark.parametrize("extra,message", [
    (["--config.data.tokenizer=/no/such/tokenizer.json"],
     "config.data.tokenizer: no such file: /no/such/tokenizer.json; allowed: 'bytes', 'bpe:N'"),
    (["--config.data.tokenizer=bpe:512"], "config.model.vocab_size: must be >= the tokenizer's"),
    (["--config.data.tokenizer=words"], "config.data.tokenizer: unknown value 'words'"),
    (["--config.data.corpus_dir=EMPTY"], "config.data.corpus_dir: no text files"),
], ids=["missing-tokenizer", "too-large", "unknown", "empty-dir"])
def test_bad_text_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, extra, message):
  (tmp_path / "empty").mkdir()
  corpus = _text_corpus(tmp_path / "corpus")
  extra = [e.replace("EMPTY", str(tmp_path / "empty")) for e in extra]
  r = _train(tmp_path / "run", *TINY, "--config.data.name=text",
             f"--config.data.corpus_dir={corpus}", f"--config.data.data_dir={tmp_path / 'd'}",
             *extra)
  assert r.returncode == 2, (r.stdout, r.stderr)
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], r.stderr
  assert not (tmp_path / "run").exists() and not (tmp_path / "d").exists()
