"""Analysis: sharpness against quadratics with known Hessians, LR sensitivity
against a hand-computed case, and load_run of a checkpoint written on 8
devices, in this 1-device process."""
import copy
import csv
import json
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import REPO, run_cli, tiny_config, with_devices

from warmup_research import analysis, data, results, stats, sweep, train, workdir
from warmup_research.errors import ConfigError
from warmup_research.sweep import axis, product

EXPERIMENT = '''
from warmup_research import config as config_lib
from warmup_research.sweep import axis
def get_config():
  c = config_lib.default_config()
  c.model.d_model, c.model.num_layers, c.model.num_heads = 32, 1, 2
  c.data.seq_len, c.data.batch_size, c.data.name = 32, 8, "synthetic"
  c.train.total_steps, c.train.eval_every, c.train.eval_batches = 20, 10, 2
  c.train.log_every, c.train.checkpoint_every = 5, 10
  c.schedule.warmup_steps = 5
  return c
def get_sweep():
  return axis("optimizer.peak_lr", [1e-3, 3e-3, 1e-2])
'''


def _quadratic(n=12, seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  eig = np.linspace(0.1, 7.0, n)
  a = (q * eig) @ q.T
  return jnp.asarray(a, jnp.float32), eig


def test_sharpness_of_a_quadratic_is_its_top_eigenvalue():
  a, eig = _quadratic()
  f = lambda p: 0.5 * p["x"] @ a @ p["x"] + 0.0 * jnp.sum(p["y"] ** 2)
  params = {"x": jnp.ones(12), "y": jnp.zeros(3)}
  lam = analysis.top_eigenvalue(analysis.hvp(f, params), params, iters=20)
  np.testing.assert_allclose(lam, eig.max(), rtol=1e-4)


def test_top_eigenvalue_when_the_largest_magnitude_is_negative():
  a, eig = _quadratic(seed=2)
  a = a - 9.0 * jnp.eye(12)          # spectrum 0.1-9 .. 7-9 = [-8.9, -2]: top is -2
  f = lambda p: 0.5 * p["x"] @ a @ p["x"]
  params = {"x": jnp.ones(12)}
  lam = analysis.top_eigenvalue(analysis.hvp(f, params), params, iters=20)
  np.testing.assert_allclose(lam, eig.max() - 9.0, rtol=1e-4)
  b = a + 10.0 * jnp.diag(jnp.arange(12) == 0)   # one positive direction among negatives
  g = lambda p: 0.5 * p["x"] @ b @ p["x"]
  expected = np.linalg.eigvalsh(np.asarray(b)).max()
  lam = analysis.top_eigenvalue(analysis.hvp(g, params), params, iters=20)
  np.testing.assert_allclose(lam, expected, rtol=1e-4)


def test_top_eigenvalue_in_few_steps_of_a_large_operator():
  """2000 dimensions, a separated top eigenvalue below larger negative ones:
  30 Lanczos steps find it (power iteration would find -50)."""
  rng = np.random.default_rng(3)
  eig = np.concatenate([[-50.0, -40.0], rng.uniform(-1.0, 1.0, 1997), [5.0]])
  d = jnp.asarray(rng.permutation(eig), jnp.float32)
  lam = analysis.top_eigenvalue(lambda v: {"x": d * v["x"]}, {"x": jnp.ones(2000)}, iters=30)
  np.testing.assert_allclose(lam, 5.0, rtol=1e-3)


def test_preconditioned_sharpness_of_a_quadratic():
  a, _ = _quadratic(seed=1)
  p_diag = jnp.linspace(0.5, 4.0, 12)
  f = lambda p: 0.5 * p["x"] @ a @ p["x"]
  params = {"x": jnp.ones(12)}
  lam = analysis.preconditioned_sharpness_of(f, params, {"x": p_diag}, iters=300)
  expected = np.max(np.real(np.linalg.eigvals(np.diag(1 / np.asarray(p_diag)) @ np.asarray(a))))
  np.testing.assert_allclose(lam, expected, rtol=1e-3)


@pytest.fixture(scope="module")
def eight_device_sweep(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("a8")
  (tmp / "exp.py").write_text(EXPERIMENT)
  env = with_devices(8)
  r = subprocess.run([sys.executable, "-m", "warmup_research", "sweep", str(tmp / "exp.py"),
                      "--workdir", str(tmp / "w"), "--no-progress"], cwd=REPO, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  return tmp / "w"


@pytest.mark.slow
def test_load_run_written_on_8_devices_in_a_1_device_process(eight_device_sweep):
  assert jax.device_count() == 1
  wd = eight_device_sweep
  runs = analysis.list_runs(wd)
  assert len(runs) == 3
  with open(wd / "runs.csv") as f:
    row = [r for r in csv.DictReader(f) if r["run_id"] == "peak_lr=0.003"][0]
  run = analysis.load_run(wd, "peak_lr=0.003")
  assert run.step == 20 and run.diverged_step is None
  assert run.config.optimizer.peak_lr == 3e-3
  assert {"loss", "lr"} <= set(run.train.columns) and list(run.eval.columns) == [
      "step", "eval_loss"]
  # the loaded params reproduce the run's final eval loss
  batches = data.Batches(run.config)
  trainer, hp = train.Trainer(run.config), train.hparams(run.config)
  losses = [float(trainer.eval_step(run.params, jnp.asarray(batches.eval(i)), hp))
            for i in range(run.config.train.eval_batches)]
  np.testing.assert_allclose(np.mean(losses), float(row["final_eval_loss"]), rtol=1e-4)
  # an earlier step, and the optimizer state as optax objects
  early = analysis.load_run(wd, "peak_lr=0.003", step=10)
  assert early.step == 10
  assert int(analysis._find(early.opt_state, lambda s: hasattr(s, "nu")).count) == 10
  with pytest.raises(KeyError, match="no run 'nope'"):
    analysis.load_run(wd, "nope")


@pytest.mark.slow
def test_a_run_saved_before_model_attention_existed_loads_as_it_ran(eight_device_sweep,
                                                                     tmp_path):
  wd = tmp_path / "old"
  shutil.copytree(eight_device_sweep, wd)
  record = json.loads((wd / "sweep.json").read_text())
  for r in record["runs"]:
    del r["config"]["model"]["attention"]  # as written before the field existed
  (wd / "sweep.json").write_text(json.dumps(record))
  old = analysis.load_run(wd, "peak_lr=0.003")
  assert old.config.model.attention == "xla"  # the path the code then had
  new = analysis.load_run(eight_device_sweep, "peak_lr=0.003")
  assert new.config.model.attention == "einsum"
  batch = jnp.asarray(data.Batches(old.config).eval(0))
  losses = [float(train.Trainer(r.config).eval_step(r.params, batch, train.hparams(r.config)))
            for r in (old, new)]
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


@pytest.mark.slow
def test_sharpness_measures_on_a_loaded_run(eight_device_sweep):
  run = analysis.load_run(eight_device_sweep, "peak_lr=0.01")
  batch = data.Batches(run.config).eval(0)
  s = analysis.sharpness(run, batch, iters=10)
  ps = analysis.preconditioned_sharpness(run, batch, iters=10)
  assert np.isfinite(s) and s > 0
  assert np.isfinite(ps) and ps > 0


@pytest.mark.slow
def test_lr_sensitivity_is_in_the_sweep_summary(eight_device_sweep):
  summary = json.loads((eight_device_sweep / "summary.json").read_text())
  (sens,) = summary["lr_sensitivity"]
  assert sens["n_lrs"] == 3
  runs = summary["runs"]
  initial = np.mean([r["initial_eval_loss"] for r in runs])
  expected = stats.lr_sensitivity([r["optimizer.peak_lr"] for r in runs],
                                  [r["final_eval_loss"] for r in runs], initial)
  assert sens["lr_sensitivity"] == pytest.approx(expected)
  assert "LR sensitivity" in (eight_device_sweep / "summary.md").read_text()


@pytest.mark.slow
def test_analyze_command_writes_csv_and_plot(eight_device_sweep):
  wd = eight_device_sweep
  # in this process (one device) on checkpoints written on 8
  r = run_cli("analyze", wd, "--runs", "peak_lr=0.001", "--runs", "peak_lr=0.01", "--every", "10",
              "--iters", "5")
  assert r.returncode == 0, r.stderr
  with open(wd / "analysis.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(x["run_id"], x["step"]) for x in rows] == [
      ("peak_lr=0.001", "10"), ("peak_lr=0.001", "20"), ("peak_lr=0.01", "10"),
      ("peak_lr=0.01", "20")]
  for x in rows:
    assert float(x["sharpness"]) > 0 and float(x["preconditioned_sharpness"]) > 0
    assert float(x["nu_max"]) >= float(x["nu_mean"]) > 0
    assert 0 < float(x["update_ratio/blocks.0"]) < 1
    lr = float(x["lr"])
    assert float(x["stability_ratio"]) == pytest.approx(
        float(x["preconditioned_sharpness"]) * lr * (1 - 0.9) / (2 * 1.9), rel=1e-5)
  # lr is the schedule's value for the next update, as training logged it
  # (step 10; step 20 is the end of training, with no update logged after it)
  for x in rows:
    logged = [json.loads(l) for l in open(wd / "metrics" / f"{x['run_id']}.jsonl")]
    lrs = [r["lr"] for r in logged if "lr" in r and r["step"] == int(x["step"])]
    assert len(lrs) == (1 if x["step"] == "10" else 0)
    for lr in lrs:
      assert float(x["lr"]) == pytest.approx(lr, rel=1e-6)
  assert (wd / "plots" / "sharpness_vs_step.png").stat().st_size > 10_000
  # measuring one more run keeps the rows of the two measured before, as they were
  before = (wd / "analysis.csv").read_text().splitlines()
  r = subprocess.run([sys.executable, "-m", "warmup_research", "analyze", str(wd), "--runs",
                      "peak_lr=0.003", "--every", "10", "--iters", "5"],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  after = (wd / "analysis.csv").read_text().splitlines()
  assert [line.split(",")[0] for line in after[1:]] == [
      "peak_lr=0.001"] * 2 + ["peak_lr=0.003"] * 2 + ["peak_lr=0.01"] * 2
  assert set(before[1:]) <= set(after[1:])
  bad = subprocess.run([sys.executable, "-m", "warmup_research", "analyze", str(wd), "--runs",
                        "nope"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "error: --runs: no run 'nope'" in bad.stderr


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
  """2 warmups x 2 LRs of the tiny model, 10 updates, in this process."""
  variants = sweep.expand(tiny_config(**{"train.total_steps": 10, "train.eval_every": 5,
                                         "train.checkpoint_every": 5}),
                          product(axis("schedule.warmup_steps", [0, 5]),
                                  axis("optimizer.peak_lr", [1e-3, 1e-2])))
  wd = tmp_path_factory.mktemp("small") / "w"
  workdir.prepare(wd, sweep.sweep_record("inline", variants), kind="sweep")
  sweep.run(variants, wd, progress=False)
  results.write(wd, plots=False, tensorboard=False)
  return wd


def test_load_metrics_is_one_tidy_frame_of_every_run(small_sweep):
  df = analysis.load_metrics(small_sweep)
  # named as runs.csv names them
  assert list(df.columns[:5]) == ["run_id", "optimizer.peak_lr", "schedule.warmup_steps",
                                  "split", "step"]
  assert {"optimizer.peak_lr", "schedule.warmup_steps"} <= set(analysis.list_runs(small_sweep))
  assert df["run_id"].nunique() == 4 and set(df["split"]) == {"train", "eval"}
  ev = df[(df.split == "eval") & (df.step == 10)].set_index("run_id")["loss"]
  runs = analysis.list_runs(small_sweep).set_index("run_id")["final_eval_loss"]
  np.testing.assert_allclose(ev.sort_index(), runs.sort_index(), rtol=1e-6)
  assert df[df.split == "eval"]["lr"].isna().all()   # eval rows carry no train columns


def test_load_run_by_values_and_its_short_repr(small_sweep):
  run = analysis.load_run(small_sweep, peak_lr=0.01, warmup_steps=5)
  assert run.run_id == analysis.find_run(small_sweep, **{"optimizer.peak_lr": 1e-2,
                                                          "schedule.warmup_steps": 5})
  assert run.swept == {"schedule.warmup_steps": 5, "optimizer.peak_lr": 0.01}
  assert run.step == 10 and len(run.eval) == 3 and "eval_loss" not in run.train
  assert analysis.load_run(small_sweep, run.run_id).step == 10   # the id still works
  assert analysis.find_run(small_sweep, peak_lr=1e-2, warmup_steps=5.0, seed=0) == run.run_id
  text = repr(run)
  assert text.startswith(f"Run({run.run_id!r}, step=10") and len(text) < 200, text
  with pytest.raises(KeyError, match="several runs with peak_lr=0.01 .*matching: "):
    analysis.load_run(small_sweep, peak_lr=0.01)
  with pytest.raises(KeyError, match="no run with peak_lr=0.5 .*runs: warmup_steps=0"):
    analysis.load_run(small_sweep, peak_lr=0.5)
  with pytest.raises(KeyError, match="'lr_peak' names no config field"):
    analysis.load_run(small_sweep, lr_peak=0.01)


def test_load_run_and_analyze_never_take_another_variants_rows(small_sweep, tmp_path):
  # Issue 30: a grown grid whose sweep.json lost its layout (`groups`) puts a
  # new run in g000 with the recorded ones. Past the checkpoint's 4 rows, jax
  # clamped the index and load_run returned the last run's params with only
  # a warning; before them, every recorded run was read from its neighbour's row.

  wd = tmp_path / "w"
  shutil.copytree(small_sweep, wd)
  record = json.loads((wd / "sweep.json").read_text())
  runs = record["runs"]
  new = copy.deepcopy(runs[0])
  new["run_id"] = "warmup_steps=0,peak_lr=0.003"
  new["swept"]["optimizer.peak_lr"] = new["config"]["optimizer"]["peak_lr"] = 3e-3
  ckpt = rf"checkpoint step (5|10) in {re.escape(str(wd / 'checkpoints' / 'g000'))}"
  for order, run_id, index, why in [
      (runs + [new], new["run_id"], 4, f"(row 4 is outside {ckpt}, which stacks 4 variant|"
                                       f"{ckpt} stacks 4 variant)"),
      ([new] + runs, runs[0]["run_id"], 1, f"{ckpt} holds another config there")]:
    (wd / "sweep.json").write_text(json.dumps(dict(record, runs=order)))
    message = (f"run '{run_id}': is variant {index} of its group in sweep.json, but .*{why}.*"
               "restore sweep.json from a copy")
    with pytest.raises(ConfigError, match=message):
      analysis.load_run(wd, run_id)
    with pytest.raises(ConfigError, match=message):
      analysis.analyze(wd, [run_id], iters=2)
  assert not (wd / "analysis.csv").exists()
  (wd / "sweep.json").write_text(json.dumps(record))   # its layout back: each run loads
  assert analysis.load_run(wd, runs[3]["run_id"]).config.optimizer.peak_lr == 1e-2


def test_checkpoint_averaging_is_evaluated_as_the_runs_evals_are(small_sweep):
  rid = analysis.find_run(small_sweep, **{"optimizer.peak_lr": 1e-2,
                                          "schedule.warmup_steps": 5})
  final = float(analysis.list_runs(small_sweep).set_index("run_id").loc[rid, "final_eval_loss"])
  assert analysis.checkpoint_steps(small_sweep, rid) == [5, 10]
  alone = analysis.averaged_checkpoints(small_sweep, rid, steps=[10])
  np.testing.assert_allclose(alone["eval_loss"], final, rtol=1e-5)   # one checkpoint: the run
  avg = analysis.averaged_checkpoints(small_sweep, rid, last=2)
  assert avg["steps"] == [5, 10]
  np.testing.assert_allclose(avg["last_eval_loss"], final, rtol=1e-5)
  # the mean of the two checkpoints' params, evaluated on the same fixed batches
  a, b = (analysis.load_run(small_sweep, rid, step=s) for s in (5, 10))
  mean = jax.tree.map(lambda x, y: (np.asarray(x) + np.asarray(y)) / 2, a.params, b.params)
  batches, trainer, hp = data.Batches(a.config), train.Trainer(a.config), train.hparams(a.config)
  want = np.mean([float(trainer.eval_step(mean, jnp.asarray(batches.eval(i)), hp))
                  for i in range(a.config.train.eval_batches)])
  np.testing.assert_allclose(avg["eval_loss"], want, rtol=1e-5)
  assert abs(avg["eval_loss"] - final) > 1e-4   # not the last checkpoint's loss
  with pytest.raises(ConfigError, match=r"steps: must name kept checkpoints .* kept: \[5, 10\]"):
    analysis.averaged_checkpoints(small_sweep, rid, steps=[7])
