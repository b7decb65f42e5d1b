"""Analysis of finished (or running) runs: every run's curves as one table,
one run's state out of its group's stacked checkpoint, and measures of it.

    df = load_metrics("results/quickstart")      # one row per (run, step, split)
    run = load_run("results/quickstart", peak_lr=1e-2, warmup_steps=75)
    run.params, run.opt_state, run.config, run.step, run.train, run.eval
    run.eval_params                         # where evals are (schedule-free: x)
    sharpness(run, batch)                   # top Hessian eigenvalue
    preconditioned_sharpness(run, batch)    # top eigenvalue of P^-1 H (Adam)
    averaged_checkpoints(wd, run_id, last=2)  # checkpoint averaging, evaluated as a run

`load_run` needs neither the original train state nor the devices that wrote
the checkpoint: the target is rebuilt from the run's config, and only the
run's rows of its group's checkpoint are read (`checkpoints.load_row`), so
a checkpoint written on 8 devices loads in a 1-device process.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pandas as pd
from jax.flatten_util import ravel_pytree

from warmup_research import (
  checkpoints,
  data,
  optimizers,
  program,
  results,
  schedules,
  sweep,
  train,
)
from warmup_research import config as config_lib
from warmup_research import mesh as mesh_lib
from warmup_research import workdir as workdir_lib
from warmup_research.errors import ConfigError
from warmup_research.workdir import write_atomic


@dataclasses.dataclass(repr=False)
class Run:
  run_id: str
  config: ml_collections.ConfigDict
  step: int                     # updates done at the loaded checkpoint
  params: Any                   # the trained params (schedule-free AdamW: y, where its
                                # gradients are taken)
  opt_state: Any
  train: pd.DataFrame           # the logged train rows: step, loss, lr, grad_norm, ...
  eval: pd.DataFrame            # the eval rows: step, eval_loss
  diverged_step: int | None
  swept: dict                   # the run's swept values (empty for a `train` run)

  @property
  def eval_params(self):
    """The params evaluations see: `params`, or schedule-free AdamW's
    average x (optimizers.eval_params); the eval rows were measured there."""
    return optimizers.eval_params(self.config.optimizer.name, self.params, self.opt_state)

  def __repr__(self) -> str:
    n = sum(x.size for x in jax.tree.leaves(self.params))
    last = self.eval["eval_loss"].iloc[-1] if len(self.eval) else float("nan")
    return (f"Run({self.run_id!r}, step={self.step}, params={n:,}, "
            f"train={len(self.train)} rows, eval={len(self.eval)} rows, "
            f"last eval loss={last:.4f}"
            + (f", diverged at {self.diverged_step}" if self.diverged_step is not None else "")
            + ")")


def list_runs(workdir):
  """runs.csv of a sweep workdir as a DataFrame."""
  return pd.read_csv(pathlib.Path(workdir) / "runs.csv")


def load_metrics(workdir) -> pd.DataFrame:
  """Every run's logged rows as one tidy DataFrame: one row per (run, step,
  split), split 'train' (loss, lr, grad_norm, ...) or 'eval' (eval_loss in
  `loss`), with the swept values as columns named as in runs.csv (dotted:
  `optimizer.peak_lr`; a `train` workdir: run_id 'run'). A finished run's
  rows come only from a whole metrics file (`results.load`)."""
  frames = []
  loaded = results.load(workdir)
  for r in loaded["record"]["runs"]:
    tidy = [dict(split="eval", step=m["step"], loss=m["eval_loss"]) if "eval_loss" in m
            else dict(split="train", **m) for m in loaded["metrics"][r["run_id"]]]
    df = pd.DataFrame(tidy)
    for field, value in reversed(r["swept"].items()):
      df.insert(0, field, value)
    df.insert(0, "run_id", r["run_id"])
    frames.append(df)
  return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def find_run(workdir, run_id: str | None = None, **values) -> str:
  """The id of the one run whose swept values (or config fields) equal
  `values` (short names like peak_lr or dotted ones; numbers compared as
  numbers). KeyError lists the candidates when none or several match."""
  return _run_entry(workdir, run_id, values)["run_id"]


def _run_entry(workdir, run_id: str | None, values: dict) -> dict:
  """`find_run`'s run, as its record entry; a workdir of one run (a `train`
  run's) gives it when asked for no id and no values."""
  runs = workdir_lib.read_record(workdir)["runs"]
  if run_id is not None or not values:
    match = [r for r in runs if r["run_id"] == run_id or (run_id is None and len(runs) == 1)]
    if not match:
      raise KeyError(f"no run {run_id!r} in {workdir}; runs: "
                     f"{', '.join(r['run_id'] for r in runs)}")
    return match[0]
  matches = [r for r in runs if all(_equal(_value_of(r, k), v) for k, v in values.items())]
  if len(matches) == 1:
    return matches[0]
  wanted = ", ".join(f"{k}={v!r}" for k, v in values.items())
  listed = [r["run_id"] for r in (matches or runs)]
  raise KeyError(f"{'several runs' if matches else 'no run'} with {wanted} in {workdir}; "
                 f"{'matching' if matches else 'runs'}: {', '.join(listed)}")


def _value_of(run: dict, key: str):
  """A run's value of a field named in full or by its last part (swept
  fields first, then the config); KeyError when no field has that name."""
  for field, value in run["swept"].items():
    if key in (field, field.split(".")[-1]):
      return value
  flat = config_lib.flatten(run["config"])
  named = [key] if key in flat else [f for f in flat if f.split(".")[-1] == key]
  if len(named) != 1:
    raise KeyError(f"{key!r} names {'no' if not named else 'several'} config field(s)"
                   + (f": {', '.join(named)}" if named else "")
                   + f"; swept: {', '.join(run['swept']) or 'none'}")
  return flat[named[0]]


def _equal(x, y) -> bool:
  if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(
      x, bool) and not isinstance(y, bool):
    return math.isclose(x, y, rel_tol=1e-9)
  return x == y


def load_run(workdir, run_id: str | None = None, step: int | None = None, **values) -> Run:
  """One run's params, optimizer state, config and metrics; step=None: the
  newest valid checkpoint. Pick the run by id or by values, e.g.
  `load_run(wd, peak_lr=1e-2, warmup_steps=75, seed=0)`. ConfigError when
  the checkpoint does not hold this run where sweep.json places it (its
  recorded configs differ there, or it stacks fewer variants): never
  another variant's state."""
  run = _run_entry(workdir, run_id, values)
  where = sweep.locate(workdir, run["run_id"])
  one_device = mesh_lib.make(1, 1, jax.local_devices()[:1])   # a target's shapes, not placement
  try:
    step, one = checkpoints.load_row(where.checkpoint_dir, where.index, step, target=lambda n: (
        program.GroupProgram([where.config] * n, one_device).abstract_state))
  except IndexError as e:
    raise ConfigError(f"run {run['run_id']!r}", f"is variant {where.index} of its group in "
                      f"sweep.json, but {e}: {_LAYOUT_LOST}") from None
  _check_variants(where.checkpoint_dir, step, checkpoints.load_meta(where.checkpoint_dir, step),
                  {where.index: run})
  rows = results.load(workdir)["metrics"][run["run_id"]]   # checked
  diverged = int(one.diverged_step)
  return Run(run_id=run["run_id"], config=where.config, step=step, params=one.params,
             opt_state=one.opt_state,
             train=pd.DataFrame([m for m in rows if "eval_loss" not in m]),
             eval=pd.DataFrame([m for m in rows if "eval_loss" in m]),
             diverged_step=None if diverged < 0 else diverged, swept=run["swept"])


def checkpoint_steps(workdir, run_id: str | None = None, **values) -> list[int]:
  """The checkpoint steps (updates done) kept for a run, oldest first."""
  where = sweep.locate(workdir, _run_entry(workdir, run_id, values)["run_id"])
  return checkpoints.Checkpointer(where.checkpoint_dir, keep=10**9).steps()


def averaged_checkpoints(workdir, run_id: str | None = None, *, steps=None, last: int = 2,
                         **values) -> dict:
  """Checkpoint averaging (an alternative to a cooldown; Tian et al. 2025):
  the uniform mean of the run's eval params (`Run.eval_params`) at
  checkpoint `steps` (default: its `last` kept ones), evaluated on the
  run's fixed eval batches as its evals are (the mean eval loss over
  `train.eval_batches`). Returns dict(run_id, steps, eval_loss,
  last_eval_loss: the newest of those checkpoints alone, on the same
  batches). Keep the checkpoints to average with `train.checkpoint_steps`
  (or `train.keep_checkpoints`)."""
  rid = _run_entry(workdir, run_id, values)["run_id"]
  kept = checkpoint_steps(workdir, rid)
  steps = sorted(kept[-last:] if steps is None else steps)
  missing = [s for s in steps if s not in kept]
  if not steps or missing or last < 1:
    raise ConfigError("steps", f"must name kept checkpoints of run {rid!r}, got "
                      f"{steps or 'none'} (last={last}); kept: {kept}")
  runs = [load_run(workdir, rid, step=s) for s in steps]
  cfg = runs[0].config
  mean = jax.tree.map(lambda *xs: sum(xs) / len(xs), *[r.eval_params for r in runs])
  batches, trainer, hp = data.Batches(cfg), train.Trainer(cfg), train.hparams(cfg)
  loss = jax.jit(trainer.eval_step)
  evals = [jnp.asarray(batches.eval(i)) for i in range(cfg.train.eval_batches)]

  def on_evals(params):
    return float(np.mean([np.asarray(loss(params, b, hp)) for b in evals]))

  return dict(run_id=rid, steps=steps, eval_loss=on_evals(mean),
              last_eval_loss=on_evals(runs[-1].eval_params))


# What a checkpoint that holds other variants than sweep.json places there means.
_LAYOUT_LOST = ("sweep.json's grouping of the runs is not the one this checkpoint was written "
                "with (a grid that grew in place keeps it in sweep.json's `groups`, which "
                "was lost or changed); restore sweep.json from a copy")


def _check_variants(checkpoint_dir, step: int, meta: dict, runs: dict[int, dict],
                    n_stacked: int | None = None) -> None:
  """Refuses a checkpoint whose recorded configs (`meta['configs']`, in
  stacked order) differ from the runs' recorded configs at their indices,
  or (`n_stacked`: its variant axis) that stacks too few: `runs` maps an
  index on the stacked axis to the run's record entry."""
  for index, run in runs.items():
    if n_stacked is not None and index >= n_stacked:
      raise ConfigError(f"run {run['run_id']!r}", f"is variant {index} of its group in "
                        f"sweep.json, but checkpoint step {step} in {checkpoint_dir} stacks "
                        f"{n_stacked} variant(s): {_LAYOUT_LOST}")
  configs = meta.get("configs")
  if configs is None:   # saved before checkpoints recorded their configs
    return
  for index, run in runs.items():
    if index >= len(configs) or not _same_config(configs[index], run["config"]):
      raise ConfigError(f"run {run['run_id']!r}", f"is variant {index} of its group in "
                        f"sweep.json, but checkpoint step {step} in {checkpoint_dir} holds "
                        f"{'another config there' if index < len(configs) else 'no such variant'}"
                        f" ({len(configs)} variant(s)): {_LAYOUT_LOST}")


def _same_config(saved: dict, recorded: dict) -> bool:
  """Two saved configs are the same run's: equal in every field both have,
  and a field only one has is one added after the other was saved."""
  a, b = (config_lib.flatten(json.loads(json.dumps(c))) for c in (saved, recorded))
  added = set(config_lib.ADDED_FIELDS)
  return (all(a[k] == b[k] for k in a.keys() & b.keys())
          and (a.keys() ^ b.keys()) <= added)


def _skip_damaged(gid: str, step: int, ckpt_dir: pathlib.Path, e: Exception) -> None:
  print(f"[analyze] warning: checkpoint step {step} of group {gid} in {ckpt_dir} could not "
        f"be restored ({type(e).__name__}: {str(e)[:200]}); skipped, the other steps are "
        "measured", file=sys.stderr, flush=True)


CSV_ERRORS = (ValueError, TypeError, KeyError, csv.Error)   # a torn analysis.csv, read


def unreadable_csv(workdir, e: Exception) -> ConfigError:
  """The error of a torn analysis.csv, with its remedy."""
  return ConfigError(str(pathlib.Path(workdir) / "analysis.csv"), f"is unreadable "
                     f"({type(e).__name__}: {str(e)[:160]}); re-make it (warmup-research "
                     f"analyze {workdir}, without --runs: every run measured again), or "
                     "delete it")


def _earlier_rows(workdir: pathlib.Path, wanted: set, order: dict) -> list[dict]:
  """The rows of an earlier analysis.csv that `analyze` keeps: the other
  runs' (re-measuring some runs, or the runs a grown grid added, keeps the
  rest). A torn file is refused, unless every run is measured again."""
  if set(order) <= wanted:
    return []
  try:
    earlier = results.read_analysis(workdir)
  except CSV_ERRORS as e:
    raise unreadable_csv(workdir, e) from None
  return [r for run_id, rs in earlier.items() if run_id not in wanted and run_id in order
          for r in rs]


# ------------------------------------------------------------------ measures


def top_eigenvalue(matvec: Callable, like, *, iters: int = 20, seed: int = 0):
  """Largest (algebraic) eigenvalue of a symmetric linear map on pytrees.

  Lanczos: `iters` steps (at most the dimension) from a fixed random start,
  with full reorthogonalisation, then the top eigenvalue of the tridiagonal
  matrix. Unlike power iteration it finds the top eigenvalue even when
  larger negative ones exist (common away from a minimum), and converges
  in tens of matrix-vector products. If the Krylov space closes early (an
  invariant subspace), the remaining rows are padded below the spectrum.
  """
  flat, unravel = ravel_pytree(like)
  n = flat.size
  k = min(iters, n)
  mv = lambda x: ravel_pytree(matvec(unravel(x)))[0].astype(jnp.float32)
  v = jax.random.normal(jax.random.key(seed), (n,), jnp.float32)
  v = v / jnp.linalg.norm(v)

  def body(i, carry):
    basis, alpha, beta, valid, v, v_prev, b_prev, done = carry
    basis = basis.at[i].set(jnp.where(done, 0.0, v))
    w = mv(v)
    scale = jnp.linalg.norm(w)
    a = jnp.vdot(w, v)
    w = w - a * v - b_prev * v_prev
    w = w - basis.T @ (basis @ w)  # twice: one pass leaves float32 residue
    w = w - basis.T @ (basis @ w)
    b = jnp.linalg.norm(w)
    alpha = alpha.at[i].set(jnp.where(done, 0.0, a))
    valid = valid.at[i].set(~done)
    closes = b <= 1e-6 * scale + 1e-30
    beta = beta.at[i].set(jnp.where(done | closes, 0.0, b))
    v_next = jnp.where(done | closes, v, w / jnp.where(closes, 1.0, b))
    return (basis, alpha, beta, valid, v_next, v, jnp.where(done | closes, 0.0, b),
            done | closes)

  init = (jnp.zeros((k, n), jnp.float32), jnp.zeros(k), jnp.zeros(k), jnp.zeros(k, bool),
          v, jnp.zeros(n, jnp.float32), jnp.zeros(()), jnp.zeros((), bool))
  _, alpha, beta, valid, *_ = jax.lax.fori_loop(0, k, body, init)
  off = beta[:-1]
  radius = jnp.abs(jnp.concatenate([off, jnp.zeros(1)])) + jnp.abs(
      jnp.concatenate([jnp.zeros(1), off]))
  floor = jnp.min(jnp.where(valid, alpha - radius, jnp.inf)) - 1.0
  t = jnp.diag(jnp.where(valid, alpha, floor)) + jnp.diag(off, 1) + jnp.diag(off, -1)
  return jnp.linalg.eigvalsh(t)[-1]


def hvp(f: Callable, params):
  """v -> H v, the Hessian of f at params times v (forward-over-reverse)."""
  return lambda v: jax.jvp(jax.grad(f), (params,), (v,))[1]


def sharpness(run: Run, batch_BxL1, *, iters: int = 20) -> float:
  """Top eigenvalue of the loss Hessian at the run's params, on `batch`."""
  return float(_jitted(run.config)["sharpness"](run.params, jnp.asarray(batch_BxL1),
                                                train.hparams(run.config), iters=iters))


_JITTED: dict = {}


def _jitted(cfg) -> dict:
  """Jitted measures of one model/optimizer (static signature), compiled once
  and reused across checkpoints and runs: params, batch and hp are arguments
  (`iters`, the Lanczos length, is static). 'measure' is every measure of
  one variant; 'measure_many' the same vmapped over a leading variant axis."""
  key = config_lib.static_signature(cfg)
  if key not in _JITTED:
    trainer = train.Trainer(cfg)
    name = cfg.optimizer.name

    def f_of(batch, hp):
      return lambda params: trainer.loss_fn(params, batch, hp)[0]

    def sharp(params, batch, hp, iters):
      return top_eigenvalue(hvp(f_of(batch, hp), params), params, iters=iters)

    def psharp(params, precond, batch, hp, iters):
      return preconditioned_sharpness_of(f_of(batch, hp), params, precond, iters=iters)

    def update_norms(params, opt_state, batch, hp):
      grads = jax.grad(f_of(batch, hp))(params)
      updates, _ = trainer.optimizer(hp).update(grads, opt_state, params)
      return _per_layer(updates, params)

    def measure_one(params, opt_state, batch, hp, iters):
      loss, grads = jax.value_and_grad(f_of(batch, hp))(params)
      out = dict(loss=loss, grad_norm=optax.tree.norm(grads),
                 sharpness=sharp(params, batch, hp, iters))
      if _second_moment(opt_state) is not None:
        precond = _preconditioner(opt_state, name, hp.opt.b2, hp.opt.eps)
        out["preconditioned_sharpness"] = psharp(params, precond, batch, hp, iters)
        nu_hat = jnp.concatenate([jnp.ravel((p - hp.opt.eps) ** 2)
                                  for p in jax.tree.leaves(precond)])
        out.update(nu_mean=nu_hat.mean(), nu_median=jnp.median(nu_hat), nu_max=nu_hat.max())
      out.update({f"update_ratio/{k}": v
                  for k, v in update_norms(params, opt_state, batch, hp).items()})
      return out

    def many(params, opt_state, batch, hp, iters):
      one = lambda p, o, h: measure_one(p, o, batch, h, iters)
      return jax.vmap(one)(params, opt_state, hp)

    _JITTED[key] = dict(sharpness=jax.jit(sharp, static_argnames="iters"),
                        preconditioned=jax.jit(psharp, static_argnames="iters"),
                        update_norms=jax.jit(update_norms),
                        measure=jax.jit(measure_one, static_argnames="iters"),
                        measure_many=jax.jit(many, static_argnames="iters"))
  return _JITTED[key]


def _per_layer(updates, params) -> dict:
  """||update|| / ||params|| per block (`train.update_sizes`'s blocks:
  embeddings, each transformer block, the final norm)."""
  return {k.removeprefix("update_ratio/"): v for k, v in train.update_sizes(params, updates).items()
          if k.startswith("update_ratio/")}


def adam_preconditioner(opt_state, config) -> Any:
  """P = sqrt(nu_hat) + eps, Adam's diagonal preconditioner, with nu_hat the
  second moment as the optimizer divides by it: bias-corrected for Adam and
  gi_adam_bc, as kept for gi_adam (nu starts at g0^2, no correction)."""
  if _second_moment(opt_state) is None:
    raise ValueError("the run's optimizer keeps no second moment (not an Adam-family run)")
  o = config.optimizer
  return _preconditioner(opt_state, o.name, o.b2, o.eps)


def _second_moment(opt_state):
  return _find(opt_state, lambda s: hasattr(s, "nu") and hasattr(s, "count"))


def _preconditioner(opt_state, name: str, b2, eps):
  adam = _second_moment(opt_state)
  correction = 1 - b2 ** jnp.maximum(adam.count, 1).astype(jnp.float32)
  if name == "gi_adam":
    correction = jnp.ones([])
  return jax.tree.map(lambda nu: jnp.sqrt(nu / correction) + eps, adam.nu)


def _find(tree, pred):
  if pred(tree):
    return tree
  if isinstance(tree, (tuple, list)):
    for t in tree:
      found = _find(t, pred)
      if found is not None:
        return found
  return None


def preconditioned_sharpness_of(f: Callable, params, precond, *, iters: int = 20):
  """Top eigenvalue of P^-1 H, via the similar symmetric P^-1/2 H P^-1/2."""
  inv_sqrt = jax.tree.map(lambda p: 1.0 / jnp.sqrt(p), precond)
  h = hvp(f, params)
  scale = lambda v: jax.tree.map(jnp.multiply, inv_sqrt, v)
  return top_eigenvalue(lambda v: scale(h(scale(v))), params, iters=iters)


def preconditioned_sharpness(run: Run, batch_BxL1, *, iters: int = 20) -> float:
  """Kalra & Barkeshli 2024: top eigenvalue of P^-1 H with P from Adam's nu."""
  precond = adam_preconditioner(run.opt_state, run.config)
  return float(_jitted(run.config)["preconditioned"](
      run.params, precond, jnp.asarray(batch_BxL1), train.hparams(run.config), iters=iters))


def update_ratios(run: Run, batch_BxL1) -> dict[str, float]:
  """||update|| / ||params|| per layer group (embeddings, each block, final LN)
  for the optimizer update the run would take next, on `batch`."""
  ratios = _jitted(run.config)["update_norms"](
      run.params, run.opt_state, jnp.asarray(batch_BxL1), train.hparams(run.config))
  return {k: float(ratios[k]) for k in sorted(ratios, key=_layer_order)}


def _layer_order(name: str):
  return (name.startswith("blocks."), int(name.split(".")[1]) if "." in name else 0, name)


def second_moment_stats(run: Run) -> dict[str, float]:
  """Mean, median and max of Adam's second moment nu_hat (Adam-family runs)."""
  try:
    p = adam_preconditioner(run.opt_state, run.config)
  except ValueError:
    return {}
  eps = run.config.optimizer.eps
  nu = np.concatenate([np.ravel((np.asarray(x) - eps) ** 2) for x in jax.tree.leaves(p)])
  return dict(nu_mean=float(nu.mean()), nu_median=float(np.median(nu)), nu_max=float(nu.max()))


def measure(run: Run, batch_BxL1, *, iters: int = 20) -> dict:
  """Every measure of one loaded checkpoint, on one fixed batch: loss,
  gradient norm, sharpness, and for Adam-family runs preconditioned
  sharpness, nu_hat's mean/median/max and the stability ratio; update ratios
  per layer group."""
  out = _jitted(run.config)["measure"](run.params, run.opt_state, jnp.asarray(batch_BxL1),
                                       train.hparams(run.config), iters=iters)
  return _row(run.step, {k: float(v) for k, v in out.items()}, run.config)


def _row(step: int, measured: dict, cfg) -> dict:
  ratios = sorted((k for k in measured if k.startswith("update_ratio/")),
                  key=lambda k: _layer_order(k.split("/", 1)[1]))
  row = dict(step=step, **{k: v for k, v in measured.items() if k not in ratios})
  row.update({k: measured[k] for k in ratios})
  row.update(_stability(step, cfg, row.get("preconditioned_sharpness")))
  return row


def stability(run: Run, preconditioned: float | None) -> dict:
  """The LR of the run's next update (schedule(step), step = updates done)
  and, for Adam-family runs, preconditioned sharpness / Adam's stability
  threshold 2 (1 + b1) / ((1 - b1) lr) (Cohen et al. 2022; 38 / lr at
  b1 = 0.9). A ratio above 1: the next step is locally unstable."""
  return _stability(run.step, run.config, preconditioned)


def _stability(step: int, cfg, preconditioned: float | None) -> dict:
  lr = float(schedules.schedule(jnp.asarray(step), train.hparams(cfg).schedule))
  out = dict(lr=lr)
  if preconditioned is not None and lr > 0:
    b1 = cfg.optimizer.b1
    out["stability_ratio"] = preconditioned * lr * (1 - b1) / (2 * (1 + b1))
  return out


def analyze(workdir, run_ids=None, *, every: int = 1, iters: int = 20) -> list[dict]:
  """`measure` over the saved checkpoints (steps divisible by `every`) of runs
  of a sweep workdir; writes analysis.csv (the other runs' rows of an earlier
  one kept), then re-makes the tables and plots (`results.write`: with
  plots/sharpness_vs_step.png and the claims on analysis columns); returns
  the rows it measured.

  Each group's checkpoint is read once per step (only the chosen variants'
  rows, `checkpoints.load_rows`) and those variants measured together
  (vmapped; the variant axis split over the local devices, so 2 CPU
  devices measure two variants at a time). Every variant is
  measured on the same fixed batch (eval batch 0). A damaged step is
  skipped with one warning line, as resuming skips it; a checkpoint whose
  recorded configs are not the runs sweep.json places there is refused
  (ConfigError), never measured as them."""
  layout = workdir_lib.Layout.of(workdir)
  record = workdir_lib.read_record(layout.root)
  wanted = set(run_ids or [r["run_id"] for r in record["runs"]])
  order = {r["run_id"]: i for i, r in enumerate(record["runs"])}
  kept = _earlier_rows(layout.root, wanted, order)   # a torn file stops before any compute
  entries = {r["run_id"]: r for r in record["runs"]}
  # every device on the variant axis: the chosen variants split evenly over them
  mesh = mesh_lib.make(jax.device_count(), 1)
  split, _, whole = mesh_lib.shardings(mesh)
  rows = []
  for gid, members in sweep.groups_of(sweep.variants_of(record), record.get("groups")):
    chosen = [i for i, v in enumerate(members) if v.run_id in wanted]
    if not chosen:
      continue
    cfg = members[0].cfg
    # the chosen variants' program: their hp padded to the mesh, and the stacked
    # state's structure (the names of its arrays), built once, not per checkpoint
    prog = program.GroupProgram([members[i].cfg for i in chosen], mesh)
    padded = chosen + chosen[-1:] * (prog.k_pad - len(chosen))
    batch = jax.device_put(jnp.asarray(data.Batches(cfg).eval(0)), whole)
    ckpt_dir = layout.checkpoints(gid)
    stacked = prog.abstract_state
    for step in [s for s in checkpoints.Checkpointer(ckpt_dir, keep=10**9).steps()
                 if s % every == 0]:
      # A damaged step is skipped, with one line, as resuming skips it; the others
      # are measured. A checkpoint of other variants than sweep.json's stops it.
      try:
        meta = checkpoints.load_meta(ckpt_dir, step)
        n_stacked = checkpoints.stacked_size(ckpt_dir, step, stacked)
      except Exception as e:
        _skip_damaged(gid, step, ckpt_dir, e)
        continue
      _check_variants(ckpt_dir, step, meta, {i: entries[members[i].run_id] for i in chosen},
                      n_stacked)
      try:
        state = checkpoints.load_rows(ckpt_dir, step, padded, stacked)
      except Exception as e:
        _skip_damaged(gid, step, ckpt_dir, e)
        continue
      params, opt_state = jax.device_put((state.params, state.opt_state), split)
      out = jax.device_get(_jitted(cfg)["measure_many"](params, opt_state, batch, prog.hp,
                                                        iters=iters))
      new = [dict(run_id=members[i].run_id,
                  **_row(step, {k: float(x[j]) for k, x in out.items()}, members[i].cfg))
             for j, i in enumerate(chosen)]
      rows += new
      print(f"[analyze] group {gid} step {step}: {len(new)} runs, sharpness "
            f"{min(r['sharpness'] for r in new):.3g} .. {max(r['sharpness'] for r in new):.3g}",
            flush=True)
  table = sorted(kept + rows, key=lambda r: (order[r["run_id"]], r["step"]))
  columns = list(dict.fromkeys(k for r in table for k in r))
  write_atomic(layout.root / "analysis.csv", results.to_csv(columns, table))
  results.write(layout.root)   # the sharpness plot, and claims on analysis columns (peak:...)
  return rows
