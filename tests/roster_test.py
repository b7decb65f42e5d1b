"""The roster of a group's dead variants, without training: successive
halving's picks, when to compact, the frozen variants' kept eval losses,
and the checkpoint meta that makes a resumed run decide the same way."""
import json
import math

import pytest
from helpers import tiny_config

from warmup_research.roster import Roster
from warmup_research.train import NEVER

NAN = math.nan


def _two_sets(**kw):
  """Two comparison sets of three (e.g. three LRs at each of two warmups)."""
  return Roster(6, [[0, 1, 2], [3, 4, 5]], rungs=[10, 20], **kw)


def test_the_sets_come_from_the_configs_that_differ_only_in_prune_over():
  cfgs = [tiny_config(**{"optimizer.peak_lr": lr, "schedule.warmup_steps": w,
                         "train.prune_steps": [10], "train.compact_frozen": 0.25})
          for w in (0, 5) for lr in (1e-3, 3e-2, 1e-2)]
  mapped = Roster.of(cfgs, "map")
  assert mapped.sets == [[0, 1, 2], [3, 4, 5]] and mapped.rungs == {10}
  assert mapped.keep == pytest.approx(1 / 3)
  assert mapped.compact_at == 0.0                  # map skips a frozen variant instead
  assert Roster.of(cfgs, "vmap").compact_at == 0.25
  # over warmups too: one set of all six
  wide = [tiny_config(**{"optimizer.peak_lr": c.optimizer.peak_lr, "train.prune_steps": [10],
                         "schedule.warmup_steps": c.schedule.warmup_steps,
                         "train.prune_over": ["optimizer.peak_lr", "schedule.warmup_steps"]})
          for c in cfgs]
  assert Roster.of(wide, "map").sets == [list(range(6))]


def test_halving_keeps_the_best_share_of_each_set_and_freezes_the_rest():
  r = _two_sets()
  losses = {0: 3.0, 1: 2.0, 2: 2.5, 3: 1.0, 4: 4.0, 5: 0.5}
  assert r.prune(5, losses, list(range(6))) == ([], list(range(6)))   # not a rung
  assert r.stops == [NEVER] * 6 and r.known_eval == {}
  pruned, live = r.prune(10, losses, list(range(6)))
  assert sorted(pruned) == [0, 2, 3, 4] and live == [1, 5]   # the best of each set
  assert r.stops == [10, NEVER, 10, 10, 10, NEVER]
  assert r.known_eval == {0: 3.0, 2: 2.5, 3: 1.0, 4: 4.0}   # frozen: their losses are kept
  assert [r.pruned(i) for i in range(6)] == [True, False, True, True, True, False]
  # at the next rung, a set of one live variant keeps it (at least one)
  assert r.prune(20, losses, live) == ([], [1, 5])


def test_halving_ranks_only_the_live_non_finite_last_ties_by_index():
  r = Roster(4, [[0, 1, 2, 3]], rungs=[10], keep=0.5)
  # 3 diverged already (not live): two of the three live are kept (ceil(1.5))
  losses = {0: NAN, 1: 2.0, 2: 2.0, 3: 0.1}
  pruned, live = r.prune(10, losses, [0, 1, 2])
  assert pruned == [0] and live == [1, 2]
  r = Roster(4, [[0, 1, 2, 3]], rungs=[10], keep=0.25)
  pruned, live = r.prune(10, {0: math.inf, 1: 2.0, 2: 2.0, 3: NAN}, [0, 1, 2, 3])
  assert live == [1] and sorted(pruned) == [0, 2, 3]   # the tie goes to the lower index


def test_an_eval_keeps_the_frozen_losses_and_reuses_the_known_ones():
  r = Roster(3)
  losses, live = r.evaluated([2.0, 9.0, 3.0], [False, True, False])
  assert losses == {0: 2.0, 1: 9.0, 2: 3.0} and live == [0, 2]
  assert r.known_eval == {1: 9.0} and r.known_positions() == [1]
  # the next eval skipped variant 1 (NaN): its kept loss is reported
  losses, live = r.evaluated([1.5, NAN, 2.5], [False, True, False])
  assert losses == {0: 1.5, 1: 9.0, 2: 2.5} and live == [0, 2]


def test_compaction_once_the_frozen_share_is_reached():
  r = Roster(5, compact_at=0.25)
  assert r.compaction([0, 1, 2, 3, 4]) is None
  assert r.compaction([0, 1, 2, 4]) is None          # 1 of 5 frozen: 0.2 < 0.25
  assert r.compaction([0, 2, 4]) == [0, 2, 4]        # 2 of 5: 0.4
  assert r.compaction([]) is None                     # nothing left to run
  assert Roster(5).compaction([0]) is None            # compaction off
  # a compaction drops only variants whose eval loss is known
  assert sorted(r.unknown_evals([0, 2, 4])) == [1, 3]
  with pytest.raises(ValueError, match=r"variants \[1, 3\]"):
    r.compact([0, 2, 4])
  r.know({1: 7.0, 3: 8.0})
  assert sorted(r.compact([0, 2, 4])) == [1, 3] and r.active == [0, 2, 4]
  # from now on the share is of the 3 that run
  assert r.compaction([0, 2]) == [0, 2] and r.compaction([0, 2, 4]) is None
  r.stops[2] = 10
  assert r.active_stops() == [NEVER, 10, NEVER]
  assert r.known_positions() == []


def test_the_meta_round_trips_exactly_and_a_resume_decides_the_same():
  def decided():
    r = _two_sets(compact_at=0.5)
    losses = {0: 0.25, 1: 1 + 0.1 + 0.2, 2: 2.5, 3: 1.0, 4: 4.0, 5: 0.5}
    _, live = r.prune(10, losses, list(range(6)))
    r.compact(r.compaction(live))
    return r
  before = decided()
  meta = json.loads(json.dumps({"step": 10, **before.to_json()}))   # as a checkpoint stores it
  assert meta["active"] == [0, 5] and meta["stops"] == [NEVER, 10, 10, 10, 10, NEVER]
  assert meta["known_eval"]["3"] == (1.0).hex()
  resumed = _two_sets(compact_at=0.5)
  assert resumed.from_json(meta) == [0, 5]   # the caller compacts to them
  assert resumed.known_eval == before.known_eval and resumed.stops == before.stops
  assert resumed.known_eval[1] == 1 + 0.1 + 0.2   # exact (hex), every bit
  resumed.compact([0, 5])
  assert resumed.to_json() == before.to_json()
  # the next eval (variant 5 diverged since, above the bound) and rung decide alike
  after = [r.evaluated([1.0, 50.0], [False, True]) for r in (before, resumed)]
  assert after[0] == after[1] == (
      {0: 1.0, 5: 50.0, 1: 1 + 0.1 + 0.2, 2: 2.5, 3: 1.0, 4: 4.0}, [0])
  assert resumed.prune(20, after[1][0], [0]) == before.prune(20, after[0][0], [0]) == ([], [0])
  assert resumed.to_json() == before.to_json() and resumed.known_eval[5] == 50.0


def test_the_meta_of_earlier_checkpoints_is_read():
  # As the loop wrote it before the roster (the same keys at the meta's top level)
  old = {"step": 10, "finished": False, "active": [0, 1, 2], "stops": [NEVER, 10, NEVER],
         "known_eval": {"1": (2.5).hex()}, "compiled_sizes": [3], "device_counts": [1]}
  r = Roster(3, rungs=[10])
  assert r.from_json(old) is None   # all ran: nothing to compact
  assert r.stops == [NEVER, 10, NEVER] and r.known_eval == {1: 2.5}
  assert r.to_json() == {k: old[k] for k in ("active", "stops", "known_eval")}
  # older still: before halving (no stops) and before kept eval losses
  r = Roster(3, compact_at=0.25)
  assert r.from_json({"step": 5, "active": [0, 2]}) == [0, 2]
  assert r.stops == [NEVER] * 3 and r.known_eval == {}
  assert r.unknown_evals([0, 2]) == [1]   # the loop computes it before it compacts
  r = Roster(2)
  assert r.from_json({"step": 5}) is None and r.stops == [NEVER] * 2
