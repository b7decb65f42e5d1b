"""Cooldowns branched from one trunk (WSD-S, Hägele et al. 2024): a run
that starts from another run's checkpoint instead of from update 0.

A branch is a variant with `train.branch_at = S > 0`. Its trunk is the
grid's variant with `branch_at = 0` whose config equals the branch's in
every field a cooldown may change (`FREE`: the LR schedule, the
hyperparameter schedules, `train.total_steps`, and the checkpoint and
report fields) and whose LR and scheduled hyperparameters at updates
0 .. S - 1 are the branch's, float32 for float32 (checked, not assumed).
Batches are a function of (data seed, update), so the trunk's state after
S updates is the state the branch itself would reach: the branch resumes
from it as from its own checkpoint and, like any resumed run, ends with the
numbers of a run trained from update 0 (tests/branches_test.py checks it).
The trunk is trained once; a constant-LR trunk with WSD branches is WSD-S,
and a WSD trunk can be the longest budget's run itself.

The trunk must save its state at S: S is one of its `train.checkpoint_steps`
(kept for good). A branch's metrics file starts as its trunk's rows before
S (with the branch's own hyperparameter columns), so tables, plots and law
fits read a whole curve; live loggers see it from S on.

Branches with one S and one length form a compile group (vmapped together,
each row from its own trunk's row); another S is another group, since a
group's variants run in lockstep from one update. `sweep.group` puts every
group of branches after the groups of trunks, so a trunk has run first.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np

from warmup_research import checkpoints, metrics_io, optimizers, train
from warmup_research import config as config_lib
from warmup_research import mesh as mesh_lib
from warmup_research.errors import ConfigError

# Fields a branch may set apart from its trunk: what a cooldown changes, and
# what only decides where and how often its files are written.
FREE = ("train.total_steps", "train.branch_at", "train.checkpoint_steps",
        "train.checkpoint_every", "train.keep_checkpoints", "train.target_eval_loss",
        "train.stall_margin", *config_lib.HP_SCHEDULE_FIELDS)


def _free(field: str) -> bool:
  return field.startswith("schedule.") or field in FREE


def _rest(cfg) -> str:
  """The fields a branch shares with its trunk, as JSON."""
  flat = config_lib.flatten(cfg.to_dict())
  return json.dumps({k: v for k, v in flat.items() if not _free(k)}, sort_keys=True)


def _first_difference(trunk, branch, n: int) -> str | None:
  """Where the trunk's LR or hyperparameters leave the branch's before update
  n ('lr at update 12: 0.001 vs 0.0009'), or None if they never do."""
  ours, theirs = train.logged_values(branch, n), train.logged_values(trunk, n)
  for key, values in ours.items():
    bad = np.flatnonzero(values != theirs[key])
    if bad.size:
      t = int(bad[0])
      return f"{key} at update {t}: {theirs[key][t]:.6g} vs the branch's {values[t]:.6g}"
  return None


def trunks(variants) -> dict[str, str]:
  """{branch run id: its trunk's run id} of a grid (`sweep.Variant`s, each
  validated). ConfigError, naming `train.branch_at` and the variant, for a
  branch with no trunk, one beyond its trunk, or one at a step its trunk
  does not checkpoint. Among equal trunks the first in grid order wins."""
  candidates: dict[str, list] = {}
  for v in variants:
    if not v.cfg.train.branch_at:
      candidates.setdefault(_rest(v.cfg), []).append(v)
  out = {}
  for v in variants:
    s = v.cfg.train.branch_at
    if not s:
      continue
    where = f"(in variant {v.run_id})"
    same = candidates.get(_rest(v.cfg), [])
    if not same:
      raise ConfigError("config.train.branch_at", f"is {s}, but the grid has no trunk for "
                        f"it {where}: a trunk is a variant with train.branch_at=0 and the "
                        "branch's config but for the schedule (schedule.*, the "
                        "optimizer.H_start/_end/_warmup_steps/_cooldown_steps), "
                        "train.total_steps and the checkpoint and report fields")
    reach = [c for c in same if s <= c.cfg.train.total_steps]
    if not reach:
      raise ConfigError("config.train.branch_at", f"is {s}, beyond its trunk {where}: "
                        f"{same[0].run_id!r} runs {same[0].cfg.train.total_steps} updates; "
                        "allowed: at most the trunk's train.total_steps")
    follow = [c for c in reach if _first_difference(c.cfg, v.cfg, s) is None]
    if not follow:
      raise ConfigError("config.train.branch_at", f"is {s}, but the branch's schedule "
                        f"leaves its trunk's before update {s} {where}: against "
                        f"{reach[0].run_id!r}, {_first_difference(reach[0].cfg, v.cfg, s)}; "
                        "a branch must follow its trunk's schedule until it branches")
    saved = [c for c in follow if s in c.cfg.train.checkpoint_steps]
    if not saved:
      raise ConfigError("config.train.branch_at", f"is {s}, off its trunk's checkpoints "
                        f"{where}: {follow[0].run_id!r} has train.checkpoint_steps="
                        f"{list(follow[0].cfg.train.checkpoint_steps)}; allowed: one of "
                        "them (add it to the trunk's checkpoint_steps)")
    out[v.run_id] = saved[0].run_id
  return out


@dataclasses.dataclass(frozen=True)
class Start:
  """Where a group of branches starts: update `step`, each branch's row of
  its trunk's checkpoints (`rows`: the trunk group's checkpoint directory and
  the trunk's place on its stacked axis), and each trunk's metrics rows
  (`trunk_rows`: read from a finished group, its digest checked)."""
  step: int
  rows: list[tuple[pathlib.Path, int]]     # per branch: (trunk's checkpoint dir, its row)
  trunk_rows: list[list[dict]]             # per branch: its trunk's metrics rows

  def state(self, abstract_state):
    """The branches' stacked state at `step`, shaped and sharded like
    `abstract_state` (padded rows repeat the last branch's trunk)."""
    k_pad = jax.tree.leaves(abstract_state)[0].shape[0]
    rows = list(self.rows) + [self.rows[-1]] * (k_pad - len(self.rows))
    parts = []   # per trunk checkpoint directory: its rows, each read once
    for d in dict.fromkeys(d for d, _ in rows):
      saved = self._saved_step(d)
      part = checkpoints.load_rows(d, saved, [i for e, i in rows if e == d], abstract_state)
      if saved != self.step:   # a trunk group that stopped early (every variant diverged) is
        # frozen: its rows count from `step`, so the branch logs its own schedule from there
        part = part.replace(step=np.full_like(part.step, self.step))
      parts.append((d, part))
    at = {d: [j for j, (e, _) in enumerate(rows) if e == d] for d, _ in parts}
    order = np.argsort(np.concatenate([at[d] for d, _ in parts]))
    stacked = jax.tree.map(lambda *xs: np.concatenate(xs)[order], *(p for _, p in parts))
    return jax.tree.map(lambda x, a: mesh_lib.to_global(x, a.sharding), stacked, abstract_state)

  def _saved_step(self, directory) -> int:
    """`step`, or the trunk group's last checkpoint when it stopped before it
    because every variant diverged (its branches then start diverged)."""
    saved = checkpoints.saved_steps(directory)
    if self.step in saved:
      return self.step
    if saved and saved[-1] < self.step and checkpoints.load_meta(directory, saved[-1]).get(
        "finished"):
      return saved[-1]
    raise ConfigError(str(directory), f"has no checkpoint at update {self.step} for the "
                      f"branches that start there (saved: {saved or 'none'}); its trunk group "
                      "must run first: re-run the sweep, which runs trunks before branches")

  def write_metrics(self, cfgs, metrics_paths) -> None:
    """Each branch's metrics file: its trunk's rows before `step`, as the
    branch itself would have logged them (train rows every `log_every`,
    evals every `eval_every`: not the trunk's last update and final eval
    when `step` is its end), with the branch's hyperparameter columns."""
    for cfg, trunk, path in zip(cfgs, self.trunk_rows, metrics_paths):
      t = cfg.train
      logged = {"lr", *config_lib.scheduled(cfg)}
      curves = train.logged_values(cfg, self.step)
      rows = []
      for r in trunk:
        s = r["step"]
        if "eval_loss" in r:
          if s <= self.step and s % t.eval_every == 0:
            rows.append(r)
        elif s < self.step and s % t.log_every == 0:
          row = {k: x for k, x in r.items() if k not in optimizers.SCHEDULED}
          rows.append(row | {k: float(curves[k][s]) for k in logged})
      metrics_io.write(path, rows)
