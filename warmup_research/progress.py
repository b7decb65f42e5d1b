"""One progress display for a whole sweep (or one `train` run).

The bar counts run-steps (one variant's update), so its rate and ETA hold
across groups of different sizes; its label says which group of how many
runs, and its postfix shows the best and the worst live variant's train
loss at the last logged update (a mean would mix LRs that diverge with
ones that learn). Frozen (diverged or pruned) variants are left out.
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm


class Progress:
  """`groups`: [(gid, variants, run-steps planned)] of the groups to come;
  the plan is corrected as each group starts (a resume has fewer left) and
  ends (one whose variants all diverged stops early)."""

  def __init__(self, groups, *, enabled: bool = True):
    self.groups = {gid: (k, planned) for gid, k, planned in groups}
    self.done = 0
    self.bar = tqdm(total=sum(p for _, p in self.groups.values()), unit="run-step",
                    file=sys.stderr, disable=not enabled, dynamic_ncols=True, unit_scale=True)
    self._left, self._from = 0, 0   # the running group's run-steps left, and bar.n at its start

  def start(self, gid: str, left: int) -> None:
    """Group `gid` starts with `left` run-steps to run."""
    k, planned = self.groups[gid]
    self.bar.total += left - planned
    self._left, self._from = left, self.bar.n
    self.bar.set_description(f"group {self.done + 1}/{len(self.groups)} ({gid}, {k} runs)")

  def advance(self, run_steps: int, losses=None, diverged=None) -> None:
    """`run_steps` more done; `losses`: the last logged update's, one per running variant."""
    if losses is not None:
      live = np.asarray(losses, np.float64)
      live = live[np.isfinite(live) & ~np.asarray(diverged, bool)]
      if live.size:
        self.bar.set_postfix_str(f"live train loss {live.min():.4f}..{live.max():.4f} "
                                 f"({live.size} live)", refresh=False)
    self.bar.update(run_steps)

  def finish(self) -> None:
    """The running group ended; steps it did not run (all diverged) leave the total."""
    self.done += 1
    self.bar.total -= max(0, self._from + self._left - self.bar.n)
    self.bar.refresh()

  def close(self) -> None:
    self.bar.close()
