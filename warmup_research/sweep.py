"""Grids of variants: expand, validate, group by static signature, run.

An experiment file's `get_sweep()` returns a list of points, each a dict of
`{dotted.field: value}`, built with `axis`, `product` and `zip_`:

    product(axis("optimizer.peak_lr", [1e-3, 3e-3]),
            zip_(axis("schedule.warmup_steps", [0, 100]),
                 axis("schedule.warmup_shape", ["none", "linear"])),
            axis("seed", [0, 1]))

`expand` applies each point to the base config (after the command line's
`--config.*` overrides; overriding a swept field is refused, since the grid's
values would replace it), validates every variant before any compute, and
names each run by its swept values
(`run_id`, e.g. `peak_lr=0.003,warmup_steps=100,seed=0`). `group` splits the
variants by their static signature (`config.static_signature`): each group is
one compiled, vmapped program (`loop.run_group`); `locate` finds a run's
files by its id.

A grid grows in place (`grow`): re-running a sweep whose grid gained points
keeps every recorded run and its group, and puts the new runs in new groups
after them (recorded in sweep.json's `groups`; a grid that never grew has
none, and its groups are `group`'s, in grid order).

A `sweep` command decides once what it will do (`Plan`: its grid, groups,
what is done, what grows, the cost), and its run and `--dry-run` read that.

The workdir's files are named by `workdir.Layout` (`results.py` reads
them; `report` rebuilds tables from them); sweep.json is the expanded grid
(run ids, swept values, configs, claims; `groups`: run ids per group, once
the grid has grown). A `train` run is a sweep of one point (`one_point`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import pathlib
import sys
import time
import urllib.parse

import jax

from warmup_research import branches, data, loggers, loop, metrics_io
from warmup_research import config as config_lib
from warmup_research import mesh as mesh_lib
from warmup_research import model as model_lib
from warmup_research import workdir as workdir_lib
from warmup_research.errors import ConfigError
from warmup_research.progress import Progress


@dataclasses.dataclass
class Variant:
  run_id: str
  cfg: object                 # ml_collections.ConfigDict
  swept: dict                 # {dotted.field: value}


def axis(field: str, values) -> list[dict]:
  return [{field: v} for v in values]


def product(*axes: list[dict]) -> list[dict]:
  return [dict(itertools.chain.from_iterable(p.items() for p in combo))
          for combo in itertools.product(*axes)]


def zip_(*axes: list[dict]) -> list[dict]:
  if len({len(a) for a in axes}) > 1:
    raise ConfigError("get_sweep", f"zip_ of axes of different lengths {[len(a) for a in axes]}")
  return [dict(itertools.chain.from_iterable(p.items() for p in combo)) for combo in zip(*axes)]


def ladder(base, sizes: list[dict], *, steps=None, tokens_per_param=None) -> list[dict]:
  """Grid points of a size ladder at every rung of a horizon ladder: each
  size (fields of one rung, e.g. {"model.d_model": 64, "model.num_layers":
  2}) at each horizon, given as `steps` (total updates) or as
  `tokens_per_param`, tokens of the whole budget per non-embedding
  parameter of that size's model on `base` (Chinchilla's compute-optimal
  is about 20): total_steps = ceil(tpp * N / (batch_size * seq_len)).
  Every (size, horizon) is its own compile group; runs.csv records N and
  the tokens per parameter of each run (`results.ladder_position`)."""
  if (steps is None) == (tokens_per_param is None):
    raise ConfigError("ladder", "give its horizons as steps or as tokens_per_param (one)")
  horizons = list(steps if steps is not None else tokens_per_param)
  if not horizons or not all(isinstance(h, (int, float)) and not isinstance(h, bool) and h > 0
                             for h in horizons) or (steps is not None and not all(
                                 isinstance(h, int) for h in horizons)):
    raise ConfigError("ladder", f"{'steps' if steps is not None else 'tokens_per_param'} must "
                      f"be a non-empty list of numbers > 0 (steps: integers), got {horizons!r}")
  if not sizes or not all(isinstance(z, dict) and z for z in sizes):
    raise ConfigError("ladder", f"sizes must be a non-empty list of non-empty dicts of "
                      f"{{'model.field': value}}, got {sizes!r}")
  points = []
  for size in sizes:
    cfg = config_lib.apply_overrides(base, size)
    per_update = cfg.data.batch_size * cfg.data.seq_len
    n = model_lib.non_embedding_params(model_lib.ModelConfig.from_config(cfg))
    for h in horizons:
      total = h if steps is not None else math.ceil(h * n / per_update)
      points.append({**size, "train.total_steps": total})
  return points


SAFE = "._-+"          # besides letters and digits, kept as they are in ids
MAX_ID_BYTES = 200     # run_id + '.jsonl' stays under the 255-byte file-name limit


def _fmt(value) -> str:
  """A value as it appears in a run id: numbers in the shortest form that
  reads back as the same number, anything else percent-escaped
  (reversibly: `urllib.parse.unquote`) where unsafe in a file name."""
  if isinstance(value, float) and not isinstance(value, bool):
    text = f"{value:g}" if float(f"{value:g}") == value else repr(value)
  elif isinstance(value, (str, int, bool)) or value is None:
    text = str(value)
  else:
    text = json.dumps(value, sort_keys=True)
  return urllib.parse.quote(text, safe=SAFE)


def run_ids(points: list[dict]) -> list[str]:
  """Readable, unique ids from swept values (`peak_lr=0.003,seed=0`); a field
  is named by its last part unless two swept fields share it; an id over
  MAX_ID_BYTES is cut and ends in a hash of the whole."""
  fields = list(dict.fromkeys(f for p in points for f in p))
  short = {f: f.split(".")[-1] for f in fields}
  clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
  name = {f: (f if short[f] in clashes else short[f]) for f in fields}
  ids = [",".join(f"{name[f]}={_fmt(v)}" for f, v in p.items()) or "base" for p in points]
  return [i if len(i.encode()) <= MAX_ID_BYTES else
          f"{i.encode()[:MAX_ID_BYTES - 13].decode(errors='ignore')}~"
          f"{hashlib.sha1(i.encode()).hexdigest()[:12]}" for i in ids]


def expand(base, points: list[dict], overridden=()) -> list[Variant]:
  """Validated variants of a grid; every bad point fails here, by name.

  `overridden`: the fields the command line set in `base`; one the grid
  sweeps is an error (its override would silently have no effect)."""
  if isinstance(points, (str, bytes, dict)) or not hasattr(points, "__iter__"):
    raise ConfigError("get_sweep", f"must return a list of points (dicts of "
                      f"{{'section.field': value}}), got {type(points).__name__}")
  points = list(points)   # a tuple or a generator is a grid too
  if not points:
    raise ConfigError("get_sweep", "the grid is empty; return a non-empty list of points "
                      "(dicts of {'section.field': value})")
  for point in points:
    if not isinstance(point, dict) or not all(isinstance(k, str) for k in point):
      raise ConfigError("get_sweep", f"each point must be a dict of {{'section.field': "
                        f"value}} with string keys, got {point!r}")
  for field in overridden:
    values = [p[field] for p in points if isinstance(p, dict) and field in p]
    if values:
      raise ConfigError(f"--config.{field}", f"is swept by get_sweep() (values: "
                        f"{', '.join(map(repr, dict.fromkeys(values)))}), so an override "
                        "would have no effect; allowed: fields the grid does not sweep "
                        "(change the grid, or run one variant with `train`)")
  variants, seen, ids = [], {}, {}
  for point, run_id in zip(points, run_ids(points)):
    try:
      cfg = config_lib.apply_overrides(base, point)
      config_lib.validate(cfg)
    except ConfigError as e:
      raise ConfigError(e.field, f"{str(e)[len(e.field) + 2:]} (in variant {run_id})") from e
    key = config_lib.to_json(cfg)
    if key in seen:
      raise ConfigError("get_sweep", f"duplicate variants: {seen[key]!r} and {run_id!r} "
                        "have the same config")
    seen[key] = run_id
    if run_id in ids:   # different configs that would share a file
      raise ConfigError("get_sweep", f"two points get the same run id {run_id!r}: "
                        f"{ids[run_id]!r} and {point!r}")
    ids[run_id] = point
    variants.append(Variant(run_id, cfg, dict(point)))
  branches.trunks(variants)   # every cooldown branch has a trunk that saves its branch point
  return variants


def group(variants: list[Variant]) -> list[list[Variant]]:
  """Compile groups: variants with equal static signatures, in grid order,
  the groups of cooldown branches after the others (their trunks run first)."""
  groups: dict[str, list[Variant]] = {}
  for v in variants:
    groups.setdefault(config_lib.static_signature(v.cfg), []).append(v)
  return sorted(groups.values(), key=lambda members: members[0].cfg.train.branch_at > 0)


def groups_of(variants: list[Variant], layout: list[list[str]] | None = None
              ) -> list[tuple[str, list[Variant]]]:
  """(group id, members) of every group: `layout` (sweep.json's `groups`,
  run ids per group) when the grid has grown, else `group`'s."""
  if layout is None:
    return [(group_id(i), members) for i, members in enumerate(group(variants))]
  by_id = {v.run_id: v for v in variants}
  return [(group_id(i), [by_id[r] for r in ids]) for i, ids in enumerate(layout)]


def _plain(x):
  return json.loads(json.dumps(x, sort_keys=True))


def grow(old: dict, spec: str, variants: list[Variant], claims=(), heatmaps=()) -> str | None:
  """sweep.json for `variants` grown from the recorded grid `old` (upgraded
  by `config.upgrade_record`): every recorded run kept in its group, the new
  runs grouped after them (a grid that grew before and gained nothing keeps
  its layout). None when it is no growth: a recorded run left the grid or
  changed, the claims changed, or a grid that never grew gained nothing."""
  recorded = {r["run_id"]: r for r in old["runs"]}
  now = {v.run_id: v for v in variants}
  if (not set(recorded) <= set(now) or (set(recorded) == set(now) and "groups" not in old)
      or _plain(old.get("claims", [])) != _plain(list(claims))):
    return None
  for run_id, r in recorded.items():
    v = now[run_id]
    if _plain(r["swept"]) != _plain(v.swept) or _plain(r["config"]) != _plain(v.cfg.to_dict()):
      return None
  if set(now) > set(recorded) and any(v.cfg.train.get("prune_steps") for v in variants):
    # halving ranks within a group; new runs in new groups would never meet the old ones
    raise ConfigError("get_sweep", "this grid uses successive halving (train.prune_steps) and "
                      "gained points; grown in place, its new runs would be ranked apart from "
                      "the recorded ones and the statuses would differ from a fresh run of "
                      "the same grid; run the grown grid in a new --workdir")
  layout = [[v.run_id for v in members] for _, members in
            groups_of(variants_of(old), old.get("groups"))]
  layout += [[v.run_id for v in members]
             for members in group([v for v in variants if v.run_id not in recorded])]
  return sweep_record(spec, variants, claims, layout, heatmaps)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What one `sweep` command does, decided once (`cli._plan`): the run, its
  `--dry-run` and `workdir.prepare`'s test of a grown grid all read it, so
  `grow` runs once. `record` is the sweep.json it writes: `grown` when the
  grid grows the one `recorded` in `workdir`, else the grid's own. What is
  done, and so the cost, is read from the workdir's files on first use."""
  spec: str                     # the experiment file, experiments/NAME.py[:arg]
  variants: list[Variant]       # the expanded grid, every variant validated
  claims: list
  heatmaps: list
  workdir: pathlib.Path
  record: str
  recorded: dict | None = None  # workdir's sweep.json, upgraded; None: none, or it failed
  grown: str | None = None      # `grow(recorded, ...)`; None: this grid does not grow it

  @property
  def layout(self) -> list[list[str]] | None:
    return json.loads(self.record).get("groups")

  @functools.cached_property
  def groups(self) -> list[tuple[str, list[Variant]]]:
    return groups_of(self.variants, self.layout)

  def grows(self, old: dict, new: dict) -> bool:
    """`workdir.prepare`'s test that the record `new` grows the recorded grid
    `old`. `grow` depends on `old` alone besides the plan, so its answer for
    `recorded` is kept; another grid (a rate source's in another directory,
    or a sweep.json rewritten since) is grown here."""
    same = self.recorded is not None and (
        json.dumps(old, sort_keys=True) == json.dumps(self.recorded, sort_keys=True))
    grown = self.grown if same else grow(old, self.spec, self.variants, self.claims,
                                         self.heatmaps)
    return new == json.loads(grown or "null")

  @functools.cached_property
  def replaced(self) -> bool:
    """Whether `workdir` holds another grid: `sweep` refuses it, or with
    --overwrite deletes its runs."""
    return self.workdir.is_dir() and bool(workdir_lib.differences_from(
        self.workdir, self.record, kind="sweep", upgrade=config_lib.upgrade_record,
        grows=self.grows))

  @property
  def keeps_runs(self) -> bool:
    """Whether `sweep` keeps the runs recorded in `workdir` (the same grid, or
    one it grows), so it will read their files."""
    return self.workdir.is_dir() and not self.replaced

  @functools.cached_property
  def done(self) -> dict[str, int]:
    """group id -> updates it has run: all once its groups/GID.json is
    written, else its last checkpoint's step; none where it is replaced (a
    cooldown branch's group counts from its branch point: its trunk ran those)."""
    def updates(gid, total, branch_at):
      if self.replaced:
        return branch_at
      layout = workdir_lib.Layout.of(self.workdir)
      if layout.group_record(gid).is_file():
        return total
      ckpt = layout.checkpoints(gid)
      saved = [int(c.name) for c in ckpt.iterdir() if c.name.isdigit()] if ckpt.is_dir() else []
      return max(saved, default=branch_at)
    return {gid: updates(gid, members[0].cfg.train.total_steps, members[0].cfg.train.branch_at)
            for gid, members in self.groups}

  @functools.cached_property
  def left(self) -> dict[str, int]:
    """group id -> run-steps (updates times runs) it has left to run (a
    cooldown branch's from its branch point: its trunk ran the rest)."""
    return {gid: (members[0].cfg.train.total_steps - self.done[gid]) * len(members)
            for gid, members in self.groups}

  @property
  def steps_to_run(self) -> int:
    return sum(self.left.values())

  @property
  def steps_in_grid(self) -> int:
    return sum(v.cfg.train.total_steps - v.cfg.train.branch_at for v in self.variants)

  @property
  def compiles(self) -> int:
    """Train-step compilations: one per group with updates left."""
    return sum(left > 0 for left in self.left.values())


def group_id(index: int) -> str:
  """The id of the `index`-th compile group (`group`'s order): its record and
  checkpoint directory are named by it."""
  return f"g{index:03d}"


@dataclasses.dataclass
class RunFiles:
  """Where one run of a workdir lives."""
  config: object                # ml_collections.ConfigDict, as saved
  checkpoint_dir: pathlib.Path  # its group's orbax directory
  index: int                    # its place on the group's stacked `variant` axis
  metrics_path: pathlib.Path


def locate(workdir, run_id: str) -> RunFiles:
  """The files of `run_id` in a workdir (a `train` workdir's run: 'run').
  KeyError names the runs there."""
  layout = workdir_lib.Layout.of(workdir)
  record = workdir_lib.read_record(layout.root)
  for gid, members in groups_of(variants_of(record), record.get("groups")):
    for index, v in enumerate(members):
      if v.run_id == run_id:
        return RunFiles(v.cfg, layout.checkpoints(gid), index, layout.metrics(run_id))
  raise KeyError(f"no run {run_id!r} in {layout.root}; runs: "
                 f"{', '.join(r['run_id'] for r in record['runs'])}")


def variants_of(record: dict) -> list[Variant]:
  """The variants a workdir's record holds, configs as saved (`from_saved`)."""
  return [Variant(r["run_id"], config_lib.from_saved(r["config"]), r["swept"])
          for r in record["runs"]]


def one_point(cfg) -> list[Variant]:
  """The grid of a `train` run: one variant, 'run', swept over nothing."""
  return [Variant("run", cfg, {})]


def swept_fields(variants: list[Variant]) -> list[str]:
  return list(dict.fromkeys(f for v in variants for f in v.swept))


def swept_values(variants: list[Variant]) -> dict[str, list]:
  """Each swept field's value in every variant (its effective value where a
  point of the grid leaves it out)."""
  flat = [config_lib.flatten(v.cfg.to_dict()) for v in variants]
  return {f: [x[f] for x in flat] for f in swept_fields(variants)}


def sweep_record(spec: str, variants: list[Variant], claims=(), layout=None,
                 heatmaps=()) -> str:
  """sweep.json: the expanded grid, its claims (fixed before the run), the
  heatmaps its tables draw and, once it has grown, its group layout."""
  record = dict(experiment=spec, runs=[
      dict(run_id=v.run_id, swept=v.swept, config=v.cfg.to_dict()) for v in variants])
  if claims:
    record["claims"] = list(claims)
  if heatmaps:
    record["heatmaps"] = list(heatmaps)
  if layout is not None:
    record["groups"] = layout
  return json.dumps(record, sort_keys=True)


def run(variants: list[Variant], workdir: pathlib.Path, *, progress: bool = True,
        command: str = "", layout=None, backends=(loggers.DEFAULT,)) -> dict:
  """Runs every unfinished group (resuming from checkpoints), logging to
  `backends` (`loggers`) as it goes; returns timings."""
  writer = jax.process_index() == 0
  code = workdir_lib.code_version()  # the code that made these results
  files = workdir_lib.Layout.of(workdir)
  files.make_dirs()
  summary = []
  finished, _ = metrics_io.finished_runs(workdir)   # checked before any compute
  groups = groups_of(variants, layout)
  for gid, members in groups:
    if gid in finished and finished[gid]["run_ids"] != [v.run_id for v in members]:
      raise ConfigError(str(files.group_record(gid)), "lists other runs than the "
                        "grid's group layout in sweep.json; restore the sweep.json that made "
                        "these runs, or run the grid in a new --workdir")
  bar = Progress([(gid, len(members), len(members) * (members[0].cfg.train.total_steps
                                                      - members[0].cfg.train.branch_at))
                  for gid, members in groups if gid not in finished],
                 enabled=progress and writer)
  parents = branches.trunks(variants)
  gid_of = {v.run_id: gid for gid, members in groups for v in members}
  row_of = {v.run_id: (files.checkpoints(gid), i)
            for gid, members in groups for i, v in enumerate(members)}
  for gid, members in groups:
    marker = files.group_record(gid)
    cfg0 = members[0].cfg
    if gid in finished:
      print(f"[sweep] group {gid}: {len(members)} runs already finished, skipped", file=sys.stderr)
      summary.append(finished[gid])
      continue
    paths = [files.metrics(v.run_id) for v in members]
    mesh = mesh_lib.make(*mesh_lib.group_shape([v.cfg for v in members]))
    batches = data.Batches(cfg0)
    trunk = None
    if cfg0.train.branch_at:   # its trunks' groups ran before it: their files are checked
      ids = [parents[v.run_id] for v in members]
      if missing := [r for r in ids if not files.group_record(gid_of[r]).is_file()]:
        raise ConfigError(str(files.root), f"group {gid}'s branches start from runs that have "
                          f"not finished ({', '.join(missing[:3])}); re-run the sweep")
      whole = {}
      for g in dict.fromkeys(gid_of[r] for r in ids):
        whole.update(metrics_io.finished_rows(files, g, [r for r in ids if gid_of[r] == g]))
      trunk = branches.Start(cfg0.train.branch_at, [row_of[r] for r in ids],
                             [whole[r] for r in ids])
    t0 = time.perf_counter()
    result = loop.run_group(
        [v.cfg for v in members], mesh=mesh, batches=batches, progress=bar,
        metrics_paths=paths,
        checkpoint_dir=files.checkpoints(gid), trunk=trunk,
        desc=gid,
        log=loggers.Targets(run_ids=[v.run_id for v in members],
                            swepts=[v.swept for v in members],
                            tb_dirs=[files.tb(v.run_id) for v in members],
                            backends=backends, workdir=workdir))
    record = dict(group=gid, run_ids=[v.run_id for v in members],
                  metrics={v.run_id: metrics_io.digest(p) for v, p in zip(members, paths)}
                  if writer else {},
                  compile_seconds=result.compile_seconds,
                  step_seconds=result.step_seconds,
                  steps_run=result.steps_run, wall_seconds=time.perf_counter() - t0,
                  first_step_seconds=result.first_step_seconds,
                  train_step_compiles=result.train_step_compiles if result.steps_run else 0,
                  device_counts=result.device_counts,
                  n_variants=len(members), state_sharding=result.state_sharding,
                  variant_loop=result.variant_loop, unigram_entropy=result.unigram_entropy,
                  tokens_per_byte=result.tokens_per_byte,
                  device=mesh_lib.describe(mesh), command=command,
                  code=code, finished_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    if writer:
      workdir_lib.write_atomic(marker, workdir_lib.strict_json(record, indent=1))
      n_div = sum(s["outcome"] == "diverged" for s in result.summaries)
      n_stall = sum(s["outcome"] == "stalled" for s in result.summaries)
      best = min((s["final_eval_loss"] for s in result.summaries
                  if s["final_eval_loss"] is not None and math.isfinite(s["final_eval_loss"])),
                 default=float("nan"))
      print(f"[sweep] group {gid}: {len(members)} runs done in {record['wall_seconds']:.0f}s "
            f"(compile {result.compile_seconds:.1f}s, {n_div} diverged, {n_stall} stalled, "
            f"best final eval loss {best:.4f})", file=sys.stderr)
    summary.append(record)
  bar.close()
  return dict(groups=summary)
