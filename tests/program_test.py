"""The stacked, sharded program of a compile group: map and vmap over
variants agree, one variant per device skips the map, and the train program
compiled from shapes alone runs the initialised state; skipping frozen
variants changes no live number, on one device or with the batch split;
accumulated microbatches on two data shards give the whole batch's step."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.extend.core
import numpy as np
import pytest
from helpers import ACROSS_PROGRAMS, assert_rows_close, tiny_config, with_devices

from warmup_research import mesh, program

MESH = mesh.make(1, 1)  # the in-process tests see one CPU device


# muon: Newton-Schulz of each variant's matrices under vmap, as map runs them one
# by one; schedule_free_adamw: its eval (at x, read from the optimizer state).
@pytest.mark.parametrize("name", ["adamw", "muon", "schedule_free_adamw"])
def test_map_and_vmap_over_variants_give_the_same_numbers(name):
  from warmup_research import data
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr, "seed": i, "optimizer.name": name})
          for i, lr in enumerate((1e-3, 3e-3, 1e-2))]
  batch = data.Batches(cfgs[0])
  out = {}
  for how in ("map", "vmap"):
    prog = program.GroupProgram(cfgs, MESH, how=how)
    assert prog.how == how
    state = prog.init(prog.keys, prog.hp)
    for t in range(3):
      state, metrics = prog.step(state, prog.train_batch(batch, t), prog.hp)
    out[how] = (metrics, prog.eval_losses(state, [prog.put_batch(batch.eval(0))]))
  for k in out["map"][0]:
    np.testing.assert_allclose(out["map"][0][k], out["vmap"][0][k], rtol=1e-5, err_msg=k)
  np.testing.assert_allclose(out["map"][1], out["vmap"][1], rtol=1e-5)
  assert out["map"][1].shape == (3,)


def _primitives(jaxpr) -> set:
  names = set()
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      names |= _primitives(sub)
  return names


def test_one_variant_per_device_skips_the_map_with_the_same_numbers():
  from warmup_research import data
  batches = data.Batches(tiny_config())
  out = {}
  for k in (1, 2):   # 2: mapped, the reference
    cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-2, 1e-3)[:k]]
    prog = program.GroupProgram(cfgs, MESH, how="map")
    state = prog.init(prog.keys, prog.hp)
    batch = prog.train_batch(batches, 0)
    loops = {"scan", "while"} & _primitives(prog.step.trace(state, batch, prog.hp).jaxpr.jaxpr)
    assert bool(loops) == (k > 1)
    for t in range(3):
      state, metrics = prog.step(state, prog.train_batch(batches, t), prog.hp)
    out[k] = (metrics, prog.eval_losses(state, [prog.put_batch(batches.eval(0))]))
  for key in out[1][0]:
    assert out[1][0][key].shape == (1,)
    np.testing.assert_allclose(out[1][0][key], out[2][0][key][:1], rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(out[1][1], out[2][1][:1], rtol=1e-5)


def test_train_program_compiled_from_shapes_runs_the_initialised_state():
  # What run_group compiles in its thread, from the state's shapes alone, for
  # optimizers whose states differ; the compiled program takes the real state.
  from warmup_research import data
  for name in ("adamw", "sgd", "lion"):   # three state structures (radam: as adamw)
    cfg = tiny_config(**{"optimizer.name": name})
    prog = program.GroupProgram([cfg], MESH)
    batches = prog.put_batches(data.Batches(cfg).train_steps(0, 2))
    compiled, seconds = prog.compile_steps(batches)
    assert seconds > 0
    state = prog.init(prog.keys, prog.hp)
    got = [(a.shape, a.dtype, a.weak_type) for a in jax.tree.leaves(state)]
    want = [(a.shape, a.dtype, a.weak_type) for a in jax.tree.leaves(prog.abstract_state)]
    assert got == want, name
    new_state, metrics = compiled(state, batches, prog.hp)
    assert metrics["loss"].shape == (2, 1) and np.all(np.isfinite(metrics["loss"])), name
    assert int(new_state.step[0]) == 2


def test_a_frozen_variant_is_skipped_and_the_others_are_bit_identical(tmp_path):

  from warmup_research import loop
  # 3 variants mapped on one device; the third diverges at once (lr 1e3, no clipping)
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr, "train.divergence_bound": 10.0,
                         "schedule.warmup_shape": "none", "optimizer.clip_norm": 0.0})
          for lr in (1e-3, 1e-2, 1e3)]
  rows = {}
  for skip in (True, False):
    paths = [tmp_path / f"{skip}{i}.jsonl" for i in range(3)]
    loop.run_group(cfgs, metrics_paths=paths, checkpoint_dir=tmp_path / f"ck{skip}", mesh=MESH,
                   progress=False, skip_frozen=skip)
    rows[skip] = [[json.loads(x) for x in p.read_text().splitlines()] for p in paths]
  # the live variants: every number of every row (two programs: ACROSS_PROGRAMS)
  for a, b in zip(rows[True][:2], rows[False][:2]):
    assert_rows_close(a, b)
  dead = [r for r in rows[True][2] if "loss" in r]
  first = next(i for i, r in enumerate(dead) if r["diverged"])
  after = dead[first + 1:]
  assert after and all(r["diverged"] == 1 and np.isnan(r["loss"]) and np.isnan(r["grad_norm"])
                       for r in after)   # skipped: nothing computed
  masked = [r for r in rows[False][2] if "loss" in r][first + 1:]
  assert all(np.isfinite(r["param_norm"]) for r in masked)   # before: computed, then masked
  # its eval loss, computed once frozen and then kept, equals the one computed each time
  evals = {skip: [r for r in rows[skip][2] if "eval_loss" in r] for skip in (True, False)}
  assert evals[True] == evals[False] and len(evals[True]) == 3


def test_an_eval_whose_loss_is_known_is_skipped_under_map_only():
  from warmup_research import data
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-3, 1e-2, 3e-2)]
  batches = data.Batches(cfgs[0])
  for how, skip in (("map", True), ("map", False), ("vmap", True)):
    prog = program.GroupProgram(cfgs, MESH, how=how, skip_frozen=skip)
    state = prog.init(prog.keys, prog.hp)
    evals = [prog.put_batch(batches.eval(i)) for i in range(2)]
    every = prog.eval_losses(state, evals)
    some = prog.eval_losses(state, evals, known=[1])
    assert np.all(np.isfinite(every)) and every.shape == (3,)
    np.testing.assert_allclose(some[[0, 2]], every[[0, 2]], rtol=ACROSS_PROGRAMS)
    # skipped (NaN) only where a cond runs one branch: map, skipping frozen
    assert np.isnan(some[1]) == (how == "map" and skip), (how, skip)


_SKIP_ON_TWO_DATA_SHARDS = '''
import json, os
from helpers import tiny_config   # tests/ is on PYTHONPATH
from warmup_research import data, mesh, program, runtime
runtime.enable_compilation_cache(os.environ["WARMUP_RESEARCH_JAX_CACHE"])   # the suite's
cfgs = [tiny_config(**{"optimizer.peak_lr": lr, "train.divergence_bound": 10.0,
                       "schedule.warmup_shape": "none", "optimizer.clip_norm": 0.0})
        for lr in (1e-3, 1e3, 1e-2)]
batches = data.Batches(cfgs[0])
out = {}
for skip in (True, False):
  prog = program.GroupProgram(cfgs, mesh.make(1, 2), how="map", skip_frozen=skip)
  state = prog.init(prog.keys, prog.hp)
  rows = []
  for t in range(6):
    state, m = prog.step(state, prog.train_batch(batches, t), prog.hp)
    rows.append({k: [float(x) for x in v] for k, v in m.items()})
  out[str(skip)] = rows
print(json.dumps(out))
'''


@pytest.mark.slow
def test_skipping_with_the_batch_split_over_two_devices_changes_no_live_number():
  # Each device loops over the variants it computes, with the gradient
  # all-reduce of the `data` axis inside the loop: every shard must take the
  # same trips (a mismatch would hang or mix variants).
  tests = pathlib.Path(__file__).parent
  env = with_devices(2, {"PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])})
  r = subprocess.run([sys.executable, "-c", _SKIP_ON_TWO_DATA_SHARDS], env=env,
                     cwd=tests.parent, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.splitlines()[-1])
  skipped, computed = out["True"], out["False"]
  first = next(t for t, row in enumerate(skipped) if row["diverged"][1])
  assert first < 5   # lr 1e3 diverges at once, so most steps skip variant 1
  for t, (s, c) in enumerate(zip(skipped, computed)):
    for key in s:
      np.testing.assert_allclose([s[key][0], s[key][2]], [c[key][0], c[key][2]],
                                 rtol=ACROSS_PROGRAMS, atol=0, err_msg=f"{key} at {t}")
    assert s["diverged"] == c["diverged"]
    if t > first:
      assert np.isnan(s["param_norm"][1]) and np.isfinite(c["param_norm"][1])


_ACCUM_ON_TWO_DATA_SHARDS = '''
import json, os
from helpers import tiny_config   # tests/ is on PYTHONPATH
from warmup_research import data, mesh, program, runtime
runtime.enable_compilation_cache(os.environ["WARMUP_RESEARCH_JAX_CACHE"])   # the suite's
out = {}
for how in ("map", "vmap"):
  for accum in (1, 4):
    cfgs = [tiny_config(**{"optimizer.peak_lr": lr, "data.batch_size": 8,
                           "train.grad_accum": accum}) for lr in (1e-3, 1e-2)]
    batches = data.Batches(cfgs[0])
    prog = program.GroupProgram(cfgs, mesh.make(1, 2), how=how)
    state = prog.init(prog.keys, prog.hp)
    rows = []
    for t in range(3):
      state, m = prog.step(state, prog.train_batch(batches, t), prog.hp)
      rows.append({k: [float(x) for x in v] for k, v in m.items()})
    out[f"{how}{accum}"] = rows
print(json.dumps(out))
'''


@pytest.mark.slow
def test_accumulating_on_two_data_shards_gives_the_whole_batchs_metrics():
  # Each shard's 4 rows split into 4 microbatches of one row (rows i, i + 4 of
  # the batch): the scan must see every shard's share of each microbatch.
  # Tolerance: sums in another order (see train_test's ACCUM_RTOL).
  tests = pathlib.Path(__file__).parent
  path = os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])
  env = with_devices(2, {"PYTHONPATH": path})
  r = subprocess.run([sys.executable, "-c", _ACCUM_ON_TWO_DATA_SHARDS], env=env,
                     cwd=tests.parent, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.splitlines()[-1])
  for how in ("map", "vmap"):
    for t, (a, b) in enumerate(zip(out[f"{how}4"], out[f"{how}1"])):
      for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=f"{how} {key} at {t}")
