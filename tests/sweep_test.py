"""The sweep engine: expansion and its errors, one compilation for a grid of
schedule numbers, divergence as a result, SIGKILL + relaunch, 8 host devices,
2 processes."""
import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import REPO, kill_after_checkpoint, run_cli, tiny_config, with_devices

from warmup_research import results, sweep, workdir
from warmup_research.errors import ConfigError
from warmup_research.sweep import axis, product, zip_

TINY_EXPERIMENT = '''
from warmup_research import config as config_lib
from warmup_research.sweep import axis, product
def get_config():
  c = config_lib.default_config()
  c.model.d_model, c.model.num_layers, c.model.num_heads = 32, 1, 2
  c.data.seq_len, c.data.batch_size, c.data.name = 32, 8, "synthetic"
  c.train.total_steps, c.train.eval_every, c.train.eval_batches = {total}, {eval_every}, 1
  c.train.log_every, c.train.checkpoint_every = {log_every}, {ckpt_every}
  c.schedule.warmup_steps = 5
  return c
def get_sweep():
  return {grid}
'''
TIMING = {"step_seconds", "compile_seconds"}


def _experiment(tmp_path, name="exp", total=30, eval_every=10, log_every=5, ckpt_every=10,
                grid='product(axis("optimizer.peak_lr", [1e-3, 1e-2]), axis("seed", [0, 1]))'):
  p = tmp_path / f"{name}.py"
  p.write_text(TINY_EXPERIMENT.format(total=total, eval_every=eval_every, log_every=log_every,
                                      ckpt_every=ckpt_every, grid=grid))
  return p


def _sweep_cmd(exp, wd, *extra, procs=None, env=None, wait=True, devices=None, process=False):
  """The sweep command: in this process (`run_cli`) unless the test is of the
  process itself (`process`, a kill, several processes, devices, env)."""
  if not (procs or env or devices or process) and wait:
    return run_cli("sweep", exp, "--workdir", wd, "--no-progress", *extra)
  cmd = ([str(REPO / "launch.sh"), "--procs", str(procs)] if procs else
         [sys.executable, "-m", "warmup_research", "sweep"])
  cmd += [str(exp), "--workdir", str(wd), "--no-progress", *extra]
  # launch.sh runs the interpreter running these tests, as the 1-process side does.
  env = {**os.environ, "WR_PYTHON": sys.executable, **(env or {})}
  if devices:
    env = with_devices(devices, env)
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _runs(wd):
  with open(pathlib.Path(wd) / "runs.csv") as f:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _close_rows(a, b, rtol):
  assert [r["run_id"] for r in a] == [r["run_id"] for r in b]
  for x, y in zip(a, b):
    for k in x:
      try:
        np.testing.assert_allclose(float(x[k]), float(y[k]), rtol=rtol, err_msg=k)
      except ValueError:
        assert x[k] == y[k], k


def test_grid_helpers_and_run_ids():
  pts = product(axis("optimizer.peak_lr", [1e-3, 3e-3]),
                zip_(axis("schedule.warmup_steps", [0, 5]),
                     axis("schedule.warmup_shape", ["none", "linear"])))
  assert len(pts) == 4 and pts[1] == {"optimizer.peak_lr": 1e-3, "schedule.warmup_steps": 5,
                                      "schedule.warmup_shape": "linear"}
  ids = sweep.run_ids(pts)
  assert ids[0] == "peak_lr=0.001,warmup_steps=0,warmup_shape=none"
  assert len(set(ids)) == 4
  assert sweep.run_ids([{"model.b1": 1, "optimizer.b1": 2}]) == ["model.b1=1,optimizer.b1=2"]


@pytest.mark.parametrize("points,message", [
    ([], "get_sweep: the grid is empty"),
    ([{"optimizer.peak_rate": 1e-3}], "config.optimizer.peak_rate: no such field"),
    ([{"optimizer.peak_lr": "fast"}], "config.optimizer.peak_lr: wrong type"),
    ([{"optimizer.peak_lr": 1e-3}, {"optimizer.peak_lr": 1e-3}], "duplicate variants"),
    ([{"schedule.warmup_steps": 500}], r"must be <= train.total_steps \(20\), got 500 \(in variant warmup_steps=500\)"),
])
def test_bad_grids(points, message):
  with pytest.raises(ConfigError, match=message):
    sweep.expand(tiny_config(), points)


def test_grouping_by_static_signature():
  vs = sweep.expand(tiny_config(), product(axis("model.norm", ["pre", "post"]),
                                           axis("optimizer.peak_lr", [1e-3, 1e-2])))
  groups = sweep.group(vs)
  assert [len(g) for g in groups] == [2, 2]
  assert {v.cfg.model.norm for v in groups[0]} == {"pre"}


COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, *a, **k: COMPILES.append(event)
    if event == "/jax/core/compile/backend_compile_duration" else None)


def _run_in_process(points, wd, **cfg_overrides):
  variants = sweep.expand(tiny_config(**cfg_overrides), points)
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, pathlib.Path(wd), progress=False)
  return results.write(wd, plots=False, tensorboard=False)


def test_24_variant_schedule_grid_compiles_the_train_step_once(tmp_path):
  points = product(axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2]),
                   axis("schedule.warmup_steps", [0, 4]),
                   axis("schedule.warmup_shape", ["linear", "cosine", "exponential", "none"]))
  assert len(points) == 24
  before = len(COMPILES)
  summary = _run_in_process(points, tmp_path / "w", **{"train.total_steps": 8,
                                                       "train.eval_every": 4})
  backend_compiles = len(COMPILES) - before
  assert summary["n_runs"] == 24 and summary["n_groups"] == 1
  assert summary["n_compiles"] == 1
  # init, train step, eval and a few tiny helpers: not one per variant
  assert backend_compiles < 12, backend_compiles
  # 3 LRs x 4 distinct schedules (warmup 0 and shape 'none' are the same schedule)
  assert len({r["final_eval_loss"] for r in summary["runs"]}) == 12


def test_divergence_is_a_result_and_leaves_the_others_unchanged(tmp_path):
  good = [{"optimizer.peak_lr": 1e-3}, {"optimizer.peak_lr": 1e-2}]
  bad = {"optimizer.peak_lr": 1e3, "schedule.warmup_shape": "none",
         "optimizer.clip_norm": 0.0}
  common = {"train.divergence_bound": 10.0}
  with_bad = _run_in_process(good + [bad], tmp_path / "a", **common)
  without = _run_in_process(good, tmp_path / "b", **common)
  rows = {r["run_id"]: r for r in with_bad["runs"]}
  bad_row = [r for r in with_bad["runs"] if r["status"] == "diverged"]
  assert len(bad_row) == 1 and bad_row[0]["diverged_step"] is not None
  assert bad_row[0]["optimizer.peak_lr"] == 1e3
  for r in without["runs"]:
    other = rows[r["run_id"]]
    assert other["status"] == "finished"
    for k in ("final_train_loss", "final_eval_loss", "best_eval_loss"):
      np.testing.assert_allclose(other[k], r[k], rtol=1e-5, err_msg=k)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_relaunch_equals_uninterrupted(tmp_path):
  # killed after the checkpoint at 100 or later: 150 updates (over 1 s) left to land in
  exp = _experiment(tmp_path, total=250, eval_every=100, log_every=25, ckpt_every=50)
  full = _sweep_cmd(exp, tmp_path / "full", process=True)
  assert full.returncode == 0, full.stderr
  proc = _sweep_cmd(exp, tmp_path / "cut", wait=False)
  kill_after_checkpoint(proc, tmp_path / "cut" / "checkpoints" / "g000", 100)
  assert not (tmp_path / "cut" / "runs.csv").exists()
  again = _sweep_cmd(exp, tmp_path / "cut", process=True)
  assert again.returncode == 0, again.stderr
  assert _runs(tmp_path / "cut") == _runs(tmp_path / "full")
  # and a third launch skips the finished group
  third = _sweep_cmd(exp, tmp_path / "cut", process=True)
  assert "already finished, skipped" in third.stderr
  assert _runs(tmp_path / "cut") == _runs(tmp_path / "full")


@pytest.mark.slow
def test_long_unlogged_stretches_on_two_cpu_devices_do_not_deadlock(tmp_path):
  # 299 steps with nothing read back until the end, steps slower than their
  # dispatch, and (PJRT_NPROC=1) as many XLA:CPU client threads as devices,
  # as on a 2-core machine. Without loop.SYNC_EVERY this aborted in the
  # gradient all-gather 4 times in 4 (and once in CI, in test_sigkill_... above).
  # 299 is prime to every n <= 8, so the loop makes one call per update
  # (loop.steps_per_call): 299 launches, as many as before calls held several.
  exp = _experiment(tmp_path, total=299, eval_every=299, log_every=299, ckpt_every=299,
                    grid='axis("optimizer.peak_lr", [1e-3, 1e-2])')
  # at users' XLA level (not the suite's level 0: these steps are compute, not compiles)
  flags = "--xla_cpu_collective_call_terminate_timeout_seconds=15"
  r = _sweep_cmd(exp, tmp_path / "wd", "--config.model.d_model=64", "--config.model.num_layers=2",
                 "--config.data.seq_len=64", "--config.data.batch_size=32", devices=2,
                 env={"PJRT_NPROC": "1", "XLA_FLAGS": flags})
  assert r.returncode == 0, r.stderr[-3000:]
  g = json.loads((tmp_path / "wd" / "groups" / "g000.json").read_text())
  assert g["device"]["n_devices"] == 2 and g["device"]["mesh"] == {"variant": 1, "data": 2}
  assert len(_runs(tmp_path / "wd")) == 2


@pytest.mark.slow
def test_eight_host_devices_shard_variants_or_batch_and_match_one_device(tmp_path):
  exp = _experiment(tmp_path, grid='product(axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2]), '
                                   'axis("seed", [0, 1]))')
  one = _sweep_cmd(exp, tmp_path / "one")   # in this process: one device
  eight = _sweep_cmd(exp, tmp_path / "eight", devices=8)
  forced = _sweep_cmd(exp, tmp_path / "forced", "--config.mesh.variant=8", devices=8)
  vmapped = _sweep_cmd(exp, tmp_path / "vmapped", "--config.mesh.variant_loop=vmap", devices=8)
  for r in (one, eight, forced, vmapped):
    assert r.returncode == 0, r.stderr
  g8 = json.loads((tmp_path / "eight" / "groups" / "g000.json").read_text())
  assert g8["device"]["n_devices"] == 8
  assert g8["variant_loop"] == "map"   # 'auto' on CPU: variants mapped, the batch sharded
  assert g8["device"]["mesh"] == {"variant": 1, "data": 8}
  gv = json.loads((tmp_path / "vmapped" / "groups" / "g000.json").read_text())
  assert gv["variant_loop"] == "vmap"  # vmapped: the fewest padded variants
  assert gv["device"]["mesh"] == {"variant": 2, "data": 4}
  assert gv["state_sharding"] == "P('variant',)"
  gf = json.loads((tmp_path / "forced" / "groups" / "g000.json").read_text())
  assert gf["device"]["mesh"] == {"variant": 8, "data": 1}   # 6 variants padded to 8
  assert gf["state_sharding"] == "P('variant',)"
  g1 = json.loads((tmp_path / "one" / "groups" / "g000.json").read_text())
  assert g1["device"]["mesh"] == {"variant": 1, "data": 1}
  _close_rows(_runs(tmp_path / "one"), _runs(tmp_path / "forced"), rtol=1e-5)
  _close_rows(_runs(tmp_path / "one"), _runs(tmp_path / "eight"), rtol=1e-4)
  _close_rows(_runs(tmp_path / "one"), _runs(tmp_path / "vmapped"), rtol=1e-4)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
  exp = _experiment(tmp_path)
  one = _sweep_cmd(exp, tmp_path / "one", devices=2)
  two = _sweep_cmd(exp, tmp_path / "two", procs=2, devices=1)
  assert one.returncode == 0, one.stderr
  assert two.returncode == 0, two.stderr
  g = json.loads((tmp_path / "two" / "groups" / "g000.json").read_text())
  assert g["device"]["n_processes"] == 2 and g["device"]["n_devices"] == 2
  assert _runs(tmp_path / "one") == _runs(tmp_path / "two")


@pytest.mark.slow
def test_bad_sweep_inputs_exit_2_and_keep_earlier_results(tmp_path):
  exp = _experiment(tmp_path, total=10, eval_every=5)
  ok = _sweep_cmd(exp, tmp_path / "w")
  assert ok.returncode == 0, ok.stderr
  before = (tmp_path / "w" / "runs.csv").read_text()
  cases = [
      (_experiment(tmp_path, "empty", grid="[]"), [], "get_sweep: the grid is empty"),
      (_experiment(tmp_path, "unknown", grid='axis("optimizer.peak_rate", [1.0])'), [],
       "config.optimizer.peak_rate: no such field"),
      (_experiment(tmp_path, "wrongtype", grid='axis("optimizer.peak_lr", ["big"])'), [],
       "config.optimizer.peak_lr: wrong type"),
      (_experiment(tmp_path, "dup", grid='axis("optimizer.peak_lr", [1e-3, 1e-3])'), [],
       "duplicate variants"),
      (exp, ["--config.mesh.variant=3"], "config.mesh: variant=3 does not divide"),
      (exp, ["--config.optimizer.peak_lr=0.5"],
       "--config.optimizer.peak_lr: is swept by get_sweep() (values: 0.001, 0.01)"),
      (exp, ["--config.train.total_steps=12"], "holds a grid with a different config"),
  ]
  for experiment, extra, message in cases:
    r = _sweep_cmd(experiment, tmp_path / "w", *extra)
    assert r.returncode == 2, (message, r.stderr)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert (tmp_path / "w" / "runs.csv").read_text() == before
  r = subprocess.run([str(REPO / "launch.sh"), "--procs", "0", "sweep", str(exp)], cwd=REPO,
                     capture_output=True, text=True)
  assert r.returncode == 2 and "error: --procs: must be an integer >= 1" in r.stderr
  r = subprocess.run([str(REPO / "launch.sh"), "sweep", str(exp)], cwd=REPO, capture_output=True,
                     text=True, env={**os.environ, "WR_PYTHON": str(tmp_path / "no-python")})
  assert r.returncode == 2 and "error: WR_PYTHON: must be a Python 3.10+" in r.stderr
  over = _sweep_cmd(exp, tmp_path / "w", "--config.train.total_steps=12", "--overwrite")
  assert over.returncode == 0, over.stderr


@pytest.mark.slow
def test_report_rebuilds_the_same_tables(tmp_path):
  exp = _experiment(tmp_path, total=10, eval_every=5)
  assert _sweep_cmd(exp, tmp_path / "w").returncode == 0
  first = (tmp_path / "w" / "runs.csv").read_text()
  (tmp_path / "w" / "runs.csv").unlink()
  r = run_cli("report", tmp_path / "w")
  assert r.returncode == 0, r.stderr
  assert (tmp_path / "w" / "runs.csv").read_text() == first
  for p in ("loss_curves.png", "lr_schedules.png", "loss_vs_peak_lr.png"):
    assert (tmp_path / "w" / "plots" / p).stat().st_size > 10_000
  assert list((tmp_path / "w" / "tb").glob("*/events.out.tfevents.*"))
  md = (tmp_path / "w" / "summary.md").read_text()
  assert "★" in md and "± " in md and "command:" in md and "hardware:" in md
  from warmup_research.runtime import cpu_model
  from warmup_research.workdir import code_version
  assert f"at code {code_version()}" in md  # the commit the runs were made at
  assert f" x cpu (cpu) on {cpu_model()}, 1 process(es)" in md   # and the CPU


def test_run_ids_round_trip_values_and_never_collide():
  import urllib.parse
  values = [1e-3, 1.0000001e-3, 3e-3, 0.1 + 0.2]
  ids = sweep.run_ids([{"optimizer.peak_lr": v} for v in values])
  assert ids[0] == "peak_lr=0.001" and len(set(ids)) == 4
  assert [float(i.split("=")[1]) for i in ids] == values   # the exact number, read back
  names = ["a/b", "a_b", "a b", "a,b", "a=b", "ä"]
  ids = sweep.run_ids([{"data.name": n} for n in names])
  assert len(set(ids)) == len(names)
  assert [urllib.parse.unquote(i.split("=", 1)[1]) for i in ids] == names
  assert all("/" not in i and " " not in i and i.count(",") == 0 for i in ids)
  long = sweep.run_ids([{"data.corpus_dir": "x" * 300}, {"data.corpus_dir": "x" * 301}])
  assert long[0] != long[1] and all(len(i.encode()) <= sweep.MAX_ID_BYTES for i in long)


@pytest.mark.parametrize("points,message", [
    ("peak_lr", "get_sweep: must return a list of points .* got str"),
    ({"optimizer.peak_lr": 1e-3}, "got dict"),
    ([1e-3], "each point must be a dict .* got 0.001"),
    ([{1: 1e-3}], "with string keys"),
])
def test_a_grid_of_the_wrong_type_is_named(points, message):
  with pytest.raises(ConfigError, match=message):
    sweep.expand(tiny_config(), points)


def test_a_tuple_or_a_generator_is_a_grid():
  as_list = sweep.expand(tiny_config(), [{"seed": 0}, {"seed": 1}])
  for points in (({"seed": 0}, {"seed": 1}), ({"seed": s} for s in (0, 1))):
    assert [v.run_id for v in sweep.expand(tiny_config(), points)] == \
        [v.run_id for v in as_list]


@pytest.mark.slow
def test_a_grid_grows_in_place_and_only_its_new_runs_run(tmp_path):
  two = 'product(axis("optimizer.peak_lr", [1e-3, 1e-2]), axis("seed", [0, 1]))'
  exp = _experiment(tmp_path, total=10, eval_every=5, grid=two)
  wd = tmp_path / "w"
  assert _sweep_cmd(exp, wd).returncode == 0
  old = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (wd / "metrics").iterdir()}
  old |= {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (wd / "checkpoints").rglob("*")
          if p.is_file()}
  _experiment(tmp_path, total=10, eval_every=5, grid=two.replace("1e-2]", "1e-2, 3e-2]"))
  files = sorted(p for p in wd.rglob("*"))
  dry = _sweep_cmd(exp, wd, "--dry-run")
  assert dry.returncode == 0, dry.stderr
  assert "group g000: 4 runs x 10 updates, finished" in dry.stdout
  assert "group g001: 2 runs x 10 updates, new" in dry.stdout
  assert "train-step compilations: 1; cost: 20 run-steps to run (60 in the whole grid)" in dry.stdout
  assert sorted(p for p in wd.rglob("*")) == files   # a dry run writes nothing
  # another grid there: refused as `sweep` refuses it; with --overwrite, counted from scratch
  dry = _sweep_cmd(exp, wd, "--dry-run", "--config.train.total_steps=12")
  assert dry.returncode == 2 and "holds a grid with a different config" in dry.stderr
  dry = _sweep_cmd(exp, wd, "--dry-run", "--overwrite", "--config.train.total_steps=12")
  assert dry.returncode == 0 and "group g000: 6 runs x 12 updates, new" in dry.stdout
  assert "--overwrite would first delete the other grid's runs" in dry.stdout
  assert sorted(p for p in wd.rglob("*")) == files
  r = _sweep_cmd(exp, wd)
  assert r.returncode == 0, r.stderr
  assert "group g000: 4 runs already finished, skipped" in r.stderr
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in old} == old   # untouched
  assert json.loads((wd / "groups" / "g001.json").read_text())["run_ids"] == [
      "peak_lr=0.03,seed=0", "peak_lr=0.03,seed=1"]
  assert len(_runs(wd)) == 6 and json.loads((wd / "sweep.json").read_text())["groups"][0] == [
      "peak_lr=0.001,seed=0", "peak_lr=0.001,seed=1", "peak_lr=0.01,seed=0",
      "peak_lr=0.01,seed=1"]
  # a finished, grown grid re-run changes no file but its log
  before = {p: p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != ".lock"}
  assert _sweep_cmd(exp, wd).returncode == 0
  assert {p: p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != ".lock"} == before
  # ... and so does --overwrite: it replaces only a different grid
  assert _sweep_cmd(exp, wd, "--overwrite").returncode == 0
  assert {p: p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != ".lock"} == before
  # a changed base config is still refused, and keeps every run
  bad = _sweep_cmd(exp, wd, "--config.model.d_model=64", "--config.model.num_heads=2")
  assert bad.returncode == 2 and "different config" in bad.stderr
  assert len(_runs(wd)) == 6
  # report --compare: the 2-LR and 3-LR grids side by side, matched by peak_lr
  exp_small = _experiment(tmp_path, name="small", total=10, eval_every=5, grid=two)
  assert _sweep_cmd(exp_small, tmp_path / "w2").returncode == 0
  cmp = run_cli("report", tmp_path / "w2", "--compare", wd)
  assert cmp.returncode == 0, cmp.stderr
  lines = [l for l in cmp.stdout.splitlines() if l.startswith("| 0.0")]
  assert len(lines) == 3 and lines[2].startswith("| 0.03 | — |")
  assert lines[0].endswith("| +0.0000 |")   # the same runs on both sides


def test_a_sweep_command_grows_its_grid_once_and_its_plan_counts_the_cost(tmp_path,
                                                                          monkeypatch):
  # Issue 32: a sweep command decides its plan once (`cli._plan`, a `sweep.Plan`):
  # `sweep.grow` runs once in a dry run and once in a sweep of a grown grid, and
  # the plan's cost is what a count of the workdir by hand gives.
  from warmup_research import cli
  point = '{{"optimizer.peak_lr": {}}}'
  two = ", ".join(point.format(lr) for lr in (1e-3, 1e-2))
  exp = _experiment(tmp_path, total=10, eval_every=5, ckpt_every=5, grid=f"[{two}]")
  wd = tmp_path / "w"
  assert _sweep_cmd(exp, wd).returncode == 0
  grown = f'[{two}, {point.format(3e-2)}, {{"optimizer.peak_lr": 3e-2, "model.d_model": 64}}]'
  _experiment(tmp_path, total=10, eval_every=5, ckpt_every=5, grid=grown)
  calls, plans, grow, plan = [], [], sweep.grow, cli._plan
  monkeypatch.setattr(sweep, "grow", lambda *a, **k: calls.append(a) or grow(*a, **k))
  monkeypatch.setattr(cli, "_plan", lambda *a: plans.append(plan(*a)) or plans[-1])
  (wd / "checkpoints" / "g001" / "5").mkdir(parents=True)   # as if stopped after update 5
  dry = _sweep_cmd(exp, wd, "--dry-run")
  assert dry.returncode == 0, dry.stderr
  assert len(calls) == 1 and "group g001: 1 runs x 10 updates, from update 5" in dry.stdout
  # by hand: g000's 2 runs finished; g001 (the new LR) 5 of its 10 updates left;
  # g002 (a wider model: another program) all 10; 4 runs x 10 in the grid
  (p,) = plans
  assert p.done == {"g000": 10, "g001": 5, "g002": 0} and p.left == {
      "g000": 0, "g001": 5, "g002": 10}
  assert (p.steps_to_run, p.steps_in_grid, p.compiles) == (15, 40, 2)
  assert "compilations: 2; cost: 15 run-steps to run (40 in the whole grid)" in dry.stdout
  (wd / "checkpoints" / "g001" / "5").rmdir()
  calls.clear()
  r = _sweep_cmd(exp, wd)
  assert r.returncode == 0, r.stderr
  assert len(calls) == 1 and len(plans) == 2 and len(_runs(wd)) == 4


def test_heatmaps_of_an_experiment_and_of_report_any_two_numeric_fields(tmp_path):
  grid = ('product(axis("schedule.warmup_steps", [0, 5]), axis("optimizer.peak_lr", '
          '[1e-3, 1e-2, 1e-1]), axis("seed", [0, 1]))')
  exp = _experiment(tmp_path, total=10, eval_every=5, grid=grid)
  exp.write_text(exp.read_text() + "def get_heatmaps():\n"
                 "  return [('schedule.warmup_steps', 'optimizer.peak_lr')]\n")
  wd = tmp_path / "w"
  r = _sweep_cmd(exp, wd)
  assert r.returncode == 0, r.stderr
  assert json.loads((wd / "sweep.json").read_text())["heatmaps"] == [
      {"x": "schedule.warmup_steps", "y": "optimizer.peak_lr"}]
  assert (wd / "plots" / "heatmap_warmup_steps_peak_lr.png").stat().st_size > 10_000
  md = (wd / "summary.md").read_text()
  assert "Best peak_lr per warmup_steps" in md and "| 5 | " in md
  report = lambda spec: run_cli("report", wd, "--heatmap", spec)
  r = report("x=optimizer.peak_lr,y=schedule.warmup_steps")
  assert r.returncode == 0, r.stderr
  assert "| peak_lr | best warmup_steps | 95% interval | seeds |" in r.stdout
  assert (wd / "plots" / "heatmap_peak_lr_warmup_steps.png").is_file()
  before = (wd / "runs.csv").read_text()
  for spec, message in [
      ("x=model.d_model,y=optimizer.peak_lr", "--heatmap: 'model.d_model' is not a swept "
       "numeric field with 2 or more values; allowed: optimizer.peak_lr, "
       "schedule.warmup_steps, seed"),
      ("warmup", "--heatmap: must be x=FIELD,y=FIELD"),
      ("x=seed,y=seed", "--heatmap: x and y are both 'seed'")]:
    r = report(spec)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and message in errors[0], r.stderr
  assert (wd / "runs.csv").read_text() == before


@pytest.mark.slow
def test_sigkill_after_a_compaction_then_relaunch_equals_uninterrupted(tmp_path):
  # 4 vmapped variants, 2 diverge at once: compacted after the eval at 100,
  # killed after the checkpoint at 200 (saved from the compacted program), relaunched.
  exp = _experiment(tmp_path, total=300, eval_every=100, log_every=50, ckpt_every=100,
                    grid='axis("optimizer.peak_lr", [1e-3, 1e3, 1e-2, 3e3])')
  extra = ["--config.mesh.variant_loop=vmap", "--config.train.compact_frozen=0.25",
           "--config.train.divergence_bound=10.0", "--config.optimizer.clip_norm=0.0",
           "--config.schedule.warmup_shape=none", "--config.mesh.variant=1"]
  full = _sweep_cmd(exp, tmp_path / "full", *extra, process=True)
  assert full.returncode == 0, full.stderr
  assert "compacted to 2" in full.stderr
  assert json.loads((tmp_path / "full" / "groups" / "g000.json").read_text())[
      "train_step_compiles"] == 2
  proc = _sweep_cmd(exp, tmp_path / "cut", *extra, wait=False)
  kill_after_checkpoint(proc, tmp_path / "cut" / "checkpoints" / "g000", 200)
  again = _sweep_cmd(exp, tmp_path / "cut", *extra, process=True)
  assert again.returncode == 0, again.stderr
  assert "compacted to 2" in again.stderr   # re-packed from the checkpoint's record
  assert _runs(tmp_path / "cut") == _runs(tmp_path / "full")
  outcomes = [r["outcome"] for r in _runs(tmp_path / "full")]
  assert outcomes.count("diverged") == 2


def test_a_finished_run_is_reported_only_from_a_whole_metrics_file(tmp_path):
  # A finished group records its files' digests; report and the sweep check
  # them, and the remedy their error gives, followed, finishes the grid.

  from warmup_research import analysis
  points = [{"optimizer.peak_lr": 1e-3}, {"optimizer.peak_lr": 1e-2}]
  short = {"train.total_steps": 10, "train.eval_every": 5}
  wd = tmp_path / "w"
  first = _run_in_process(points, wd, **short)
  variants = sweep.expand(tiny_config(**short), points)
  path = wd / "metrics" / "peak_lr=0.001.jsonl"
  whole = path.read_text()
  lines = whole.splitlines(keepends=True)
  damaged = {"an undecodable line in the middle": "".join(lines[:3] + ["{torn\n"] + lines[3:]),
             "a torn last line": whole[:-6], "the last row lost": "".join(lines[:-1]),
             "deleted (or an --overwrite killed part-way)": None}
  for what, text in damaged.items():
    path.unlink() if text is None else path.write_text(text)
    for call in (lambda: results.write(wd, plots=False, tensorboard=False),
                 lambda: sweep.run(variants, wd, progress=False),
                 lambda: analysis.load_run(wd, "peak_lr=0.001"),
                 lambda: analysis.load_metrics(wd)):
      with pytest.raises(ConfigError) as e:
        call()
      assert str(e.value).startswith(f"{path}: ") and str(wd / "groups" / "g000.json") in str(
          e.value), what
    path.write_text(whole)
  assert results.write(wd, plots=False, tensorboard=False)["runs"] == first["runs"]
  path.write_text(whole[:-6])   # follow the remedy: the group trains again, to the same rows
  (wd / "groups" / "g000.json").unlink()
  shutil.rmtree(wd / "checkpoints" / "g000")
  sweep.run(variants, wd, progress=False)
  assert path.read_text() == whole
  again = results.write(wd, plots=False, tensorboard=False)["runs"]
  assert [{k: v for k, v in r.items() if k not in TIMING} for r in again] == [
      {k: v for k, v in r.items() if k not in TIMING} for r in first["runs"]]


def test_growing_a_grid_with_successive_halving_is_refused():
  def grid(lrs):
    return sweep.expand(tiny_config(**{"train.prune_steps": [10]}),
                        product(axis("optimizer.peak_lr", lrs), axis("seed", [0])))
  old = json.loads(sweep.sweep_record("e.py", grid([1e-3, 1e-2])))
  with pytest.raises(ConfigError, match="successive halving .* new --workdir"):
    sweep.grow(old, "e.py", grid([1e-3, 1e-2, 3e-2]))
  assert sweep.grow(old, "e.py", grid([1e-3, 1e-2])) is None   # unchanged: no growth


def test_a_grid_over_tokenizers_splits_into_groups_and_compares_in_bits_per_byte(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for i in range(60):
    (corpus / f"f{i}.txt").write_text(f"Story {i}: the warmup ends and the loss falls. " * 60)
  summary = _run_in_process(
      [{"data.tokenizer": t} for t in ("bytes", "bpe:300")], tmp_path / "w",
      **{"data.name": "text", "data.corpus_dir": str(corpus), "model.vocab_size": 300,
         "train.total_steps": 4, "train.eval_every": 2, "schedule.warmup_steps": 2})
  assert summary["n_groups"] == 2   # the tokenizer is static: a program each
  per_byte = {}
  for g in (tmp_path / "w" / "groups").glob("*.json"):
    record = json.loads(g.read_text())
    per_byte.update({rid: record["tokens_per_byte"] for rid in record["run_ids"]})
  rows = {r["data.tokenizer"]: r for r in summary["runs"]}
  assert per_byte[rows["bytes"]["run_id"]] == 1.0 and per_byte[rows["bpe:300"]["run_id"]] < 0.9
  for r in rows.values():
    assert r["final_eval_bpb"] == pytest.approx(
        r["final_eval_loss"] * per_byte[r["run_id"]] / np.log(2))


def test_a_ladder_is_sizes_at_horizons_in_steps_or_tokens_per_parameter():
  base = tiny_config()
  sizes = [{"model.d_model": 32, "model.num_layers": 1}, {"model.d_model": 64,
                                                         "model.num_layers": 2}]
  points = sweep.ladder(base, sizes, tokens_per_param=[0.5, 2])
  variants = sweep.expand(base, points)
  assert len(variants) == 4 and len(sweep.group(variants)) == 4   # each rung its own program
  per_update = base.data.batch_size * base.data.seq_len
  for v, tpp in zip(variants, [0.5, 2, 0.5, 2]):   # each size at each horizon, in order
    at = results.ladder_position(v.cfg.to_dict())
    m = v.cfg.model
    assert at["non_embedding_params"] == m.num_layers * (12 * m.d_model ** 2 + 4 * m.d_model) \
        + 2 * m.d_model   # gpt2 blocks: 4D^2 attention, 8D^2 MLP, 2 LayerNorms; a final one
    # the horizon in tokens per parameter, rounded up to whole updates
    assert tpp <= at["tokens_per_param"] < tpp + per_update / at["non_embedding_params"]
  assert [p["train.total_steps"] for p in sweep.ladder(base, sizes, steps=[10, 40])] == [
      10, 40, 10, 40]
  for kw, message in ((dict(), "as steps or as tokens_per_param"),
                      (dict(steps=[10], tokens_per_param=[1]), "as steps or as tokens_per_param"),
                      (dict(steps=[1.5]), "steps: integers"),
                      (dict(tokens_per_param=[]), "non-empty list of numbers > 0")):
    with pytest.raises(ConfigError, match=re.escape(message)):
      sweep.ladder(base, sizes, **kw)
  with pytest.raises(ConfigError, match="sizes must be a non-empty list"):
    sweep.ladder(base, [], steps=[10])
