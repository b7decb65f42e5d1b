"""Who runs in a compile group: the host-side record of its dead variants.

A group's K variants start live. A variant freezes when it diverges (the
compiled step decides that, on the device) or when successive halving
prunes it at a rung (decided here, from eval losses). A frozen variant's
eval loss cannot change, so it is kept (`known_eval`) and later evals reuse
it. Under vmap, once a share `compact_frozen` of the running variants is
frozen after an eval, the group runs on as a smaller program of the live
ones (`active`). `Roster` holds these decisions; the loop asks it and the
program executes them (docs/sweeps.md, "What the runner does").

A checkpoint's meta records them (`to_json`: `active`, `stops`,
`known_eval`, at its top level beside the loop's own keys), so a resumed
run decides the same way and writes the same numbers; `from_json` reads it
back, including the meta of checkpoints that predate some of these keys.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

from warmup_research import config as config_lib
from warmup_research.train import NEVER


class Roster:
  """The variants 0 .. k-1 of one group: which run (`active`), which are
  pruned and from which update (`stops`, each variant's `hp.stop_step`,
  `NEVER` if not pruned), and the eval losses of the frozen (`known_eval`).

  `sets`: successive halving's comparison sets (lists of variants); `rungs`:
  the updates it prunes at, keeping the best `keep` share of each set's
  live variants (at least one); `compact_at`: the frozen share of the
  running variants at which an eval compacts (0: never)."""

  def __init__(self, k: int, sets: Sequence[Sequence[int]] | None = None,
               rungs: Iterable[int] = (), keep: float = 1 / 3, compact_at: float = 0.0):
    self.k = k
    self.sets = [list(s) for s in sets] if sets is not None else [list(range(k))]
    self.rungs = frozenset(rungs)
    self.keep = keep
    self.compact_at = compact_at
    self.active = list(range(k))       # the variants the running program runs
    self.stops = [NEVER] * k           # each variant's hp.stop_step: the rung that pruned it
    self.known_eval: dict[int, float] = {}   # the eval loss of a variant frozen at an eval

  @classmethod
  def of(cls, cfgs, how: str) -> Roster:
    """The roster of a group's configs run by `how` ('vmap' or 'map'):
    comparison sets of the variants whose configs differ only in
    `train.prune_over`; compaction only under vmap (under map a frozen
    variant's update is skipped instead)."""
    t_cfg = cfgs[0].train
    sets: dict[str, list[int]] = {}
    for i, c in enumerate(cfgs):
      flat = config_lib.flatten(c.to_dict())
      sets.setdefault(json.dumps({f: v for f, v in flat.items()
                                  if f not in t_cfg.get("prune_over", ())}, sort_keys=True),
                      []).append(i)
    return cls(len(cfgs), list(sets.values()), t_cfg.get("prune_steps", ()), t_cfg.prune_keep,
               t_cfg.get("compact_frozen", 0.0) if how == "vmap" else 0.0)

  def known_positions(self) -> list[int]:
    """The positions in `active` of the variants whose eval loss is known
    (an eval may skip them)."""
    return [j for j, i in enumerate(self.active) if i in self.known_eval]

  def evaluated(self, computed: Sequence[float], frozen: Sequence[bool]):
    """After an eval, from the running program's eval losses (`computed`,
    NaN where skipped) and frozen flags, both per `active` variant: (eval
    loss of every variant, the live ones). The frozen keep their loss from
    here on; a loss already known wins over a computed one."""
    losses = dict(zip(self.active, map(float, computed))) | self.known_eval
    live = [i for i, f in zip(self.active, frozen) if not f]
    self.known_eval.update({i: losses[i] for i in self.active if i not in live})
    return losses, live

  def prune(self, step: int, losses: dict[int, float], live: list[int]):
    """Successive halving after the eval at `step`, if it is a rung: in each
    comparison set, keep the best `keep` share (at least one) of the
    variants `live` by eval loss (non-finite last, then by index) and
    freeze the rest from `step` on. Returns (the pruned, the still live)."""
    if step not in self.rungs:
      return [], live
    out, alive = [], set(live)
    for members in self.sets:
      ranked = sorted((i for i in members if i in alive),
                      key=lambda i: (not math.isfinite(losses[i]), losses[i], i))
      out += ranked[max(1, math.ceil(self.keep * len(ranked))):]
    for i in out:
      self.stops[i] = step
      self.known_eval[i] = losses[i]   # frozen from here on
    return out, [i for i in live if i not in out]

  def compaction(self, live: list[int]) -> list[int] | None:
    """After an eval: the variants to compact to (`live`) once the frozen
    share of the running ones reached `compact_at`; else None."""
    if self.compact_at <= 0 or not live:
      return None
    return live if (len(self.active) - len(live)) / len(self.active) >= self.compact_at else None

  def unknown_evals(self, keep: list[int]) -> list[int]:
    """The variants a compaction to `keep` would drop whose eval loss is not
    known (a checkpoint from before `known_eval` was recorded): the caller
    computes them (`know`) before it compacts."""
    return [i for i in set(self.active) - set(keep) if i not in self.known_eval]

  def know(self, losses: dict[int, float]) -> None:
    self.known_eval.update(losses)

  def compact(self, keep: list[int]) -> list[int]:
    """Runs only `keep` from here on; returns the variants dropped (frozen,
    their eval losses known)."""
    if missing := self.unknown_evals(keep):
      raise ValueError(f"compacting out variants {missing} whose eval loss is not known")
    dropped = list(set(self.active) - set(keep))
    self.active = list(keep)
    return dropped

  def active_stops(self) -> list[int]:
    """`stops` of the `active` variants, in their order (a compacted program's)."""
    return [self.stops[i] for i in self.active]

  def pruned(self, i: int) -> bool:
    return self.stops[i] != NEVER

  def to_json(self) -> dict:
    """The checkpoint meta of these decisions (JSON-ready; losses as exact hex)."""
    return dict(active=list(self.active), stops=list(self.stops),
                known_eval={str(i): x.hex() for i, x in self.known_eval.items()})

  def from_json(self, meta: dict) -> list[int] | None:
    """Takes the pruning and known eval losses recorded in a checkpoint's
    `meta` (keys it lacks keep their start values). Returns the variants
    that ran when it was saved if the group was compacted then (the caller
    compacts to them: `unknown_evals`, `know`, `compact`), else None."""
    self.stops = list(meta.get("stops", self.stops))
    self.known_eval = {int(i): float.fromhex(x) for i, x in meta.get("known_eval", {}).items()}
    ran = meta.get("active", self.active)
    return list(ran) if ran != self.active else None
