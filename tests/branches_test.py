"""Cooldown branches: a branch equals its schedule trained from update 0, the
trunk runs once, resume works on both sides of the branch point, and bad
branches fail by name before anything is written."""
import json
import shutil

import pytest
from helpers import assert_rows_close, run_cli, tiny_config

from warmup_research import metrics_io, results, schedules, sweep, train, workdir
from warmup_research.errors import ConfigError
from warmup_research.sweep import axis, product

# A WSD trunk of 20 updates (cooldown over its last 4) saves update 10; the
# branch cools down over updates 10 .. 13 (a budget of 14), and `scratch` is
# the same schedule trained from update 0.
WSD = {"schedule.decay_shape": "wsd", "schedule.cooldown_steps": 4, "schedule.final_frac": 0.0}
TRUNK = {"train.total_steps": 20, "train.checkpoint_steps": [10]}
BRANCH = {"train.total_steps": 14, "train.branch_at": 10, "train.checkpoint_every": 2}
SCRATCH = {"train.total_steps": 14, "train.checkpoint_every": 2}


def _grid(*arms, seeds=(0, 1)):
  return product([dict(a) for a in arms], axis("seed", list(seeds)))


def _variants(*arms, seeds=(0, 1), **base):
  return sweep.expand(tiny_config(**WSD, **base), _grid(*arms, seeds=seeds))


def _rows(wd, run_id):
  return metrics_io.read(workdir.Layout.of(wd).metrics(run_id))


def _run(variants, wd):
  return sweep.run(variants, wd, progress=False)["groups"]


def _id(variants, arm, seed):
  return next(v.run_id for v in variants if v.swept == {**arm, "seed": seed})


def test_a_branch_equals_its_schedule_trained_from_update_0_and_its_trunk_runs_once(tmp_path):
  variants = _variants(TRUNK, BRANCH, SCRATCH)
  assert sweep.branches.trunks(variants) == {   # each seed's branch from its own trunk
      _id(variants, BRANCH, s): _id(variants, TRUNK, s) for s in (0, 1)}
  groups = _run(variants, tmp_path)
  by_steps = {g["steps_run"]: g for g in groups}
  assert sorted(by_steps) == [4, 14, 20]   # the branch group ran only its cooldown
  assert groups[-1] is by_steps[4]          # after its trunk's group
  for seed in (0, 1):
    ours = _rows(tmp_path, _id(variants, BRANCH, seed))
    theirs = _rows(tmp_path, _id(variants, SCRATCH, seed))
    # the trunk's rows before update 10, then the branch's own: a whole curve, and the
    # numbers of the run trained from 0 (other programs: to ACROSS_PROGRAMS)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    assert_rows_close(ours, theirs)
  ckpts = workdir.Layout.of(tmp_path).checkpoints(groups[-1]["group"])
  assert min(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) > 10


def test_a_branch_at_its_trunks_end_copies_only_the_rows_it_would_have_logged(tmp_path):
  # the constant trunk's last update (19) and final eval (20) are logged because they end
  # it; a run of 24 updates logs every 3rd and evals every 8th
  trunk = {"schedule.decay_shape": "constant", "train.total_steps": 20,
           "train.checkpoint_steps": [20]}
  branch = {**WSD, "train.total_steps": 24, "train.branch_at": 20}
  scratch = {**WSD, "train.total_steps": 24}
  grid = [trunk, branch, scratch]
  variants = sweep.expand(tiny_config(**{"train.log_every": 3, "train.eval_every": 8}), grid)
  _run(variants, tmp_path)
  ours, theirs = (_rows(tmp_path, variants[i].run_id) for i in (1, 2))
  assert [r["step"] for r in ours] == [r["step"] for r in theirs]
  assert_rows_close(ours, theirs)


def test_branches_of_a_trunk_group_that_all_diverged_are_diverged_on_their_own_schedule(
    tmp_path):
  # every trunk diverges at once; its group stops at its first checkpoint (10), before the
  # branch point (20): the branch starts frozen there and logs its own cooldown's LRs
  base = tiny_config(**{"optimizer.peak_lr": 1e4, "train.checkpoint_every": 10,
                        "train.divergence_bound": 10.0})
  trunk = {"schedule.decay_shape": "constant", "train.total_steps": 20,
           "train.checkpoint_steps": [20]}
  branch = {**WSD, "train.total_steps": 24, "train.branch_at": 20}
  variants = sweep.expand(base, [trunk, branch])
  workdir.prepare(tmp_path, sweep.sweep_record("inline", variants), kind="sweep")
  groups = _run(variants, tmp_path)
  assert groups[0]["steps_run"] == 10   # the trunk group stopped early
  rows = _rows(tmp_path, variants[1].run_id)
  own = {r["step"]: r for r in rows if "loss" in r and r["step"] >= 20}
  assert sorted(own) == [20, 21, 22, 23] and all(r["diverged"] == 1.0 for r in own.values())
  hp = train.hparams(variants[1].cfg).schedule
  for t, r in own.items():   # the branch's cooldown, not the trunk's frozen step
    assert r["lr"] == pytest.approx(float(schedules.schedule(t, hp)), rel=1e-6)
  _, table = results.run_rows(results.load(tmp_path))   # the outcomes the tables show
  assert [r["outcome"] for r in table] == ["diverged", "diverged"]


def test_a_branch_resumes_on_both_sides_of_its_first_checkpoint(tmp_path):
  variants = _variants(TRUNK, BRANCH, seeds=(3,))
  _run(variants, tmp_path)
  layout = workdir.Layout.of(tmp_path)
  branch = _id(variants, BRANCH, 3)
  done = _rows(tmp_path, branch)
  gid = sweep.groups_of(variants)[-1][0]
  ckpts = layout.checkpoints(gid)
  # killed after its first own checkpoint (12): resumes from it
  layout.group_record(gid).unlink()
  shutil.rmtree(ckpts / "14")
  _run(variants, tmp_path)
  assert _rows(tmp_path, branch) == done   # the same program: bit for bit
  # killed before it: starts again from the trunk's checkpoint at 10
  layout.group_record(gid).unlink()
  shutil.rmtree(ckpts)
  layout.metrics(branch).write_text("")
  (record,) = [g for g in _run(variants, tmp_path) if g["group"] == gid]
  assert record["steps_run"] == 4
  assert _rows(tmp_path, branch) == done


@pytest.mark.parametrize("arms, message", [
    ([BRANCH], "train.branch_at: is 10, but the grid has no trunk for it"),
    ([TRUNK, {**BRANCH, "train.branch_at": 8}], "off its trunk's checkpoints"),
    ([{**TRUNK, "train.total_steps": 9, "train.checkpoint_steps": [9]}, BRANCH],
     "beyond its trunk"),
    ([TRUNK, {**BRANCH, "schedule.warmup_steps": 3}],
     "leaves its trunk's before update 10"),
    ([TRUNK, {**BRANCH, "train.prune_steps": [10]}],
     "cannot be combined with train.prune_steps"),
])
def test_a_bad_branch_is_named(arms, message):
  with pytest.raises(ConfigError, match="train.branch_at") as e:
    _variants(*arms)
  assert message in str(e.value)


def test_a_bad_branch_exits_2_and_writes_nothing(tmp_path):
  exp = tmp_path / "branch.py"
  exp.write_text(f'''
from helpers import tiny_config
from warmup_research.sweep import axis
def get_config():
  return tiny_config(**{WSD!r})
def get_sweep():
  return [{TRUNK!r}, {{**{BRANCH!r}, "train.branch_at": 8}}]
''')
  r = run_cli("sweep", exp, "--workdir", tmp_path / "w", "--no-progress")
  errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
  assert r.returncode == 2 and len(errors) == 1 and "off its trunk's checkpoints" in errors[0]
  assert not (tmp_path / "w").exists()
  cfg = tmp_path / "one.py"
  cfg.write_text(f"from helpers import tiny_config\ndef get_config():\n"
                 f"  return tiny_config(**{json.dumps({**WSD, **BRANCH})})\n")
  r = run_cli("train", "--config", cfg, "--workdir", tmp_path / "t", "--no-progress")
  assert r.returncode == 2 and "no trunk for it" in r.stderr and not (tmp_path / "t").exists()
