"""The group loop: K variants together equal each alone; resume equals an
uninterrupted run; metrics files are cut back to the checkpoint."""
import json
import shutil
import threading

import jax
import numpy as np
import pytest
from helpers import ACROSS_PROGRAMS, assert_rows_close, tiny_config

from warmup_research import checkpoints, loop, mesh

MESH = mesh.make(1, 1)  # the in-process tests see one CPU device


def _rows(path):
  return [json.loads(l) for l in open(path)]


def _killed_after(tmp_path, name: str, cut: int, k: int, keep: float = 1.0):
  """A copy of the run `name` (checkpoints every 5 of 20 updates, metrics
  files name0.jsonl ...) as if killed after its checkpoint at `cut`, with
  the first `keep` share of each metrics file written; returns the copy's
  (checkpoint dir, metrics paths)."""
  ckpt = tmp_path / f"{name}_cut{cut}"
  shutil.copytree(tmp_path / name, ckpt)
  for step in range(cut + 5, 25, 5):
    shutil.rmtree(ckpt / str(step))
  # the copy really was cut: its newest checkpoint is `cut`, so the run resumes from there
  assert max(int(d.name) for d in ckpt.iterdir() if d.name.isdigit()) == cut
  paths = [tmp_path / f"{name}_cut{cut}_{i}.jsonl" for i in range(k)]
  for i, p in enumerate(paths):
    text = (tmp_path / f"{name}{i}.jsonl").read_text()
    p.write_text(text[: int(len(text) * keep)])
  return ckpt, paths


def test_group_of_two_equals_each_alone(tmp_path):
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-3, 1e-2)]
  both = loop.run_group(cfgs, metrics_paths=[tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
                        checkpoint_dir=tmp_path / "ck2", mesh=MESH, progress=False)
  loop.run_group(cfgs[1:], metrics_paths=[tmp_path / "b1.jsonl"],
                         checkpoint_dir=tmp_path / "ck1", mesh=MESH, progress=False)
  assert both.summaries[0] != both.summaries[1]
  for x, y in zip(_rows(tmp_path / "b.jsonl"), _rows(tmp_path / "b1.jsonl")):
    assert x.keys() == y.keys() and x["step"] == y["step"]
    for k in x:
      np.testing.assert_allclose(x[k], y[k], rtol=2e-5, atol=1e-7, err_msg=k)


def test_seeds_are_replicates_each_on_its_own_data_in_one_group(tmp_path):
  # seed drives init AND data order; in one group each variant trains on its
  # own stream and equals its run alone; data.seed set apart changes the data only.
  short = {"train.total_steps": 10}
  cfgs = [tiny_config(seed=0, **short), tiny_config(seed=1, **short),
          tiny_config(**{"seed": 1, "data.seed": 0}, **short)]
  group = loop.run_group(cfgs, metrics_paths=[tmp_path / f"{i}.jsonl" for i in range(3)],
                         checkpoint_dir=tmp_path / "ck", mesh=MESH, progress=False)
  for i in (1, 2):
    loop.run_group([cfgs[i]], metrics_paths=[tmp_path / f"alone{i}.jsonl"],
                   checkpoint_dir=tmp_path / f"ck{i}", mesh=MESH, progress=False)
    for x, y in zip(_rows(tmp_path / f"{i}.jsonl"), _rows(tmp_path / f"alone{i}.jsonl"),
                    strict=True):
      for k in x:
        np.testing.assert_allclose(x[k], y[k], rtol=2e-5, atol=1e-7, err_msg=k)
  losses = [[r["loss"] for r in _rows(tmp_path / f"{i}.jsonl") if "loss" in r] for i in range(3)]
  assert losses[0] != losses[1] and losses[1] != losses[2] and losses[0] != losses[2]
  assert group.summaries[0]["initial_eval_loss"] != group.summaries[1]["initial_eval_loss"]


def test_steps_per_call_divides_every_eval_checkpoint_and_the_end():
  from ml_collections import ConfigDict
  for (total, ev, ck), n in {(20, 10, 5): 5, (150, 25, 50): 5, (1000, 100, 200): 5,
                             (300, 300, 300): 6, (16, 16, 16): 8, (7, 7, 7): 7,
                             (299, 299, 299): 1, (64, 8, 12): 4}.items():
    t_cfg = ConfigDict(dict(total_steps=total, eval_every=ev, checkpoint_every=ck))
    assert loop.steps_per_call(t_cfg) == n, (total, ev, ck)
  t_cfg = ConfigDict(dict(total_steps=16, eval_every=16, checkpoint_every=16,
                          checkpoint_steps=[2, 6]))
  assert loop.steps_per_call(t_cfg) == 2


def test_checkpoint_steps_are_saved_and_kept(tmp_path):
  from warmup_research import checkpoints
  cfg = tiny_config(**{"train.checkpoint_every": 10, "train.keep_checkpoints": 1,
                       "train.checkpoint_steps": [2, 4, 14]})
  loop.run_group([cfg], metrics_paths=[tmp_path / "m.jsonl"], checkpoint_dir=tmp_path / "ck",
                 mesh=MESH, progress=False)
  assert checkpoints.Checkpointer(tmp_path / "ck", keep=1).steps() == [2, 4, 14, 20]


def test_several_updates_per_call_equal_one_per_call(tmp_path):
  # tiny_config: 20 updates, eval every 10, checkpoint every 5 -> 5 per call;
  # two variants (mapped), rows logged every update
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr}) for lr in (1e-3, 3e-2)]
  assert loop.steps_per_call(cfgs[0].train) == 5
  rows = {}
  for per_call in (loop.STEPS_PER_CALL, 1):
    paths = [tmp_path / f"{per_call}_{i}.jsonl" for i in range(2)]
    r = loop.run_group(cfgs, metrics_paths=paths, checkpoint_dir=tmp_path / f"ck{per_call}",
                       mesh=MESH, progress=False, max_steps_per_call=per_call)
    assert r.steps_run == 20
    rows[per_call] = [_rows(p) for p in paths]
  assert [r["step"] for r in rows[1][0] if "loss" in r] == list(range(20))
  for a, b in zip(rows[loop.STEPS_PER_CALL], rows[1], strict=True):   # two programs
    assert_rows_close(a, b)


def test_resume_from_a_checkpoint_equals_uninterrupted(tmp_path):
  cfg = tiny_config(**{"train.keep_checkpoints": 5})
  full = loop.run_group([cfg], metrics_paths=[tmp_path / "full0.jsonl"],
                        checkpoint_dir=tmp_path / "full", mesh=MESH, progress=False)
  assert full.steps_run == 20
  # An interrupted run: the checkpoint at 10, metrics already written past it
  # (and a torn last line), later checkpoints lost.
  ckpt, paths = _killed_after(tmp_path, "full", 10, 1, keep=0.8)
  resumed = loop.run_group([cfg], metrics_paths=paths, checkpoint_dir=ckpt, mesh=MESH,
                           progress=False)
  assert resumed.steps_run == 10
  assert _rows(paths[0]) == _rows(tmp_path / "full0.jsonl")
  assert resumed.summaries == full.summaries


def test_in_background_returns_the_value_and_raises_the_error_in_the_caller():
  assert loop.in_background(lambda a, b: (a + b, threading.current_thread().name), 2, 3
                            ).result()[0] == 5
  assert loop.in_background(threading.current_thread).result() is not threading.main_thread()
  with pytest.raises(ZeroDivisionError):
    loop.in_background(lambda: 1 / 0).result()


def test_compaction_drops_frozen_variants_and_resumes_exactly(tmp_path):
  # 5 vmapped variants; two diverge at once (lr 1e3, no clipping). With
  # compact_frozen 0.25 the group re-packs to 3 after the first eval (update 10).
  def cfgs(compact):
    return [tiny_config(**{"optimizer.peak_lr": lr, "train.divergence_bound": 10.0,
                           "schedule.warmup_shape": "none", "optimizer.clip_norm": 0.0,
                           "mesh.variant_loop": "vmap", "train.compact_frozen": compact,
                           "train.keep_checkpoints": 5})
            for lr in (1e-3, 1e3, 1e-2, 1e3, 3e-3)]
  runs = {}
  for name, compact in (("plain", 0.0), ("compact", 0.25)):
    paths = [tmp_path / f"{name}{i}.jsonl" for i in range(5)]
    runs[name] = loop.run_group(cfgs(compact), metrics_paths=paths, mesh=MESH,
                                checkpoint_dir=tmp_path / name, progress=False)
  assert runs["plain"].train_step_compiles == 1 and runs["compact"].train_step_compiles == 2
  plain = [_rows(tmp_path / f"plain{i}.jsonl") for i in range(5)]
  compact = [_rows(tmp_path / f"compact{i}.jsonl") for i in range(5)]
  for i in (0, 2, 4):   # the survivors: a vmap of 3 instead of 5 lanes (another program)
    assert_rows_close(compact[i], plain[i])
  # the survivors' states themselves (the final checkpoints' rows)
  (_, compact_state, _), (_, plain_state, _) = (checkpoints.load(tmp_path / name)
                                                for name in ("compact", "plain"))
  rows = np.asarray([0, 2, 4])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a)[rows], np.asarray(b)[rows], rtol=ACROSS_PROGRAMS, atol=1e-12),
      compact_state, plain_state)
  for i in (1, 3):      # the frozen: the same eval loss; rows say frozen after update 10
    for x, y in zip([r for r in compact[i] if "eval_loss" in r],
                    [r for r in plain[i] if "eval_loss" in r], strict=True):
      assert x["step"] == y["step"]
      np.testing.assert_allclose(x["eval_loss"], y["eval_loss"], rtol=ACROSS_PROGRAMS)
    after = [r for r in compact[i] if "loss" in r and r["step"] >= 10]
    assert after and all(r["diverged"] == 1 and np.isnan(r["loss"]) for r in after)
  for c, p in zip(runs["compact"].summaries, runs["plain"].summaries, strict=True):
    assert {k: v for k, v in c.items() if not isinstance(v, float)} == {
        k: v for k, v in p.items() if not isinstance(v, float)}
    for key in ("initial_eval_loss", "final_eval_loss", "best_eval_loss"):
      np.testing.assert_allclose(c[key], p[key], rtol=ACROSS_PROGRAMS, err_msg=key)
  # SIGKILL after the checkpoint at 10 (saved while compacted: the resumed run
  # re-packs from the checkpoint's record) or at 5 (before the compaction: it
  # compacts again at 10); both end the same, bit for bit.
  for cut in (10, 5):
    ckpt, paths = _killed_after(tmp_path, "compact", cut, 5, keep=0.7)
    resumed = loop.run_group(cfgs(0.25), metrics_paths=paths, mesh=MESH, checkpoint_dir=ckpt,
                             progress=False)
    # the compile count is the whole run's: the sizes compiled before the kill count too
    assert resumed.steps_run == 20 - cut and resumed.train_step_compiles == 2
    assert [_rows(p) for p in paths] == compact


def test_successive_halving_prunes_per_comparison_set_and_resumes_exactly(tmp_path):
  # two comparison sets (warmup 0 and 5) of three peak LRs; at the rung (update
  # 10) each keeps its best third: one variant, by eval loss at the rung.
  def cfgs(prune, **extra):
    return [tiny_config(**{"optimizer.peak_lr": lr, "schedule.warmup_steps": w,
                           "train.eval_every": 5, "train.keep_checkpoints": 5,
                           "train.prune_steps": [10] if prune else [], **extra})
            for w in (0, 5) for lr in (1e-3, 3e-2, 1e-2)]
  def run(name, prune, **extra):
    paths = [tmp_path / f"{name}{i}.jsonl" for i in range(6)]
    result = loop.run_group(cfgs(prune, **extra), metrics_paths=paths, mesh=MESH,
                            checkpoint_dir=tmp_path / name, progress=False)
    return result, [_rows(p) for p in paths]
  full, full_rows = run("full", False)
  pruned, rows = run("pruned", True)
  at_rung = [next(r["eval_loss"] for r in v if r["step"] == 10 and "eval_loss" in r)
             for v in full_rows]
  kept = [min(range(3), key=at_rung.__getitem__), min(range(3, 6), key=at_rung.__getitem__)]
  for i, s in enumerate(pruned.summaries):
    if i in kept:   # a survivor: its run unchanged (the dropped ones were skipped)
      assert rows[i] == full_rows[i] and s["outcome"] != "pruned"
    else:
      assert s["outcome"] == "pruned" and s["status"] == "pruned" and s["pruned_step"] == 10
      assert s["final_eval_loss"] == at_rung[i] and s["diverged_step"] is None
      assert {"step": 10, "pruned": 1.0} in rows[i]
      assert all(np.isnan(r["loss"]) and r["diverged"] == 0 for r in rows[i]
                 if "loss" in r and r["step"] >= 10)   # frozen, skipped, never diverged
  # killed after the checkpoint at the rung, or before it: the same rows
  for cut in (10, 5):
    ckpt, paths = _killed_after(tmp_path, "pruned", cut, 6)
    resumed = loop.run_group(cfgs(True), metrics_paths=paths, mesh=MESH, checkpoint_dir=ckpt,
                             progress=False)
    assert resumed.steps_run == 20 - cut and [_rows(p) for p in paths] == rows
  # under vmap, compaction then drops the four pruned variants
  vmapped, vrows = run("vmap", True, **{"mesh.variant_loop": "vmap",
                                        "train.compact_frozen": 0.5})
  assert vmapped.train_step_compiles == 2
  assert [s["outcome"] == "pruned" for s in vmapped.summaries] == [
      s["outcome"] == "pruned" for s in pruned.summaries]
  for i in kept:
    assert_rows_close(vrows[i], rows[i])


def test_scheduled_hyperparameters_are_logged_only_in_the_rows_of_runs_that_vary_them(tmp_path):
  plain = tiny_config()
  ramped = tiny_config(**{"optimizer.b1": 0.9, "optimizer.b1_start": 0.5,
                          "optimizer.b1_warmup_steps": 4, "optimizer.weight_decay_end": 0.0,
                          "optimizer.weight_decay_cooldown_steps": 0})   # 0 steps: not varied
  paths = [tmp_path / "plain.jsonl", tmp_path / "ramped.jsonl"]
  loop.run_group([plain, ramped], metrics_paths=paths, checkpoint_dir=tmp_path / "ck",
                 mesh=MESH, progress=False)
  train_rows = [[r for r in _rows(p) if "loss" in r] for p in paths]
  for r in train_rows[0]:   # the keys of a run before schedules: its file is as it was
    assert not {"b1", "b2", "momentum", "weight_decay"} & set(r), r
  for r in train_rows[1]:
    assert "b1" in r and not {"b2", "momentum", "weight_decay"} & set(r), r
    s = r["step"]
    np.testing.assert_allclose(r["b1"], 0.5 + 0.4 * s / 4 if s < 4 else 0.9, rtol=1e-6)
  assert [sorted(set(r) - {"b1"}) for r in train_rows[1]] == [sorted(r) for r in train_rows[0]]


def test_a_compacted_out_variants_rows_hold_its_scheduled_values():
  from warmup_research.roster import Roster  # only this test builds the loop's rows by hand
  cfgs = [tiny_config(), tiny_config(**{"optimizer.b2_end": 0.5,
                                        "optimizer.b2_cooldown_steps": 10})]
  rows = loop._Rows(None, cfgs, Roster(2))
  rows.keys = (*rows.keys, "b1", "b2", "momentum", "weight_decay")   # as the step returns them
  plain, cooled = rows._frozen_row(0, 15), rows._frozen_row(1, 15)
  assert not {"b1", "b2", "momentum", "weight_decay"} & set(plain)
  assert set(cooled) - set(plain) == {"b2"}
  np.testing.assert_allclose(cooled["b2"], 0.95 + (0.5 - 0.95) * 5 / 10, rtol=1e-6)
  assert cooled["lr"] == plain["lr"]
