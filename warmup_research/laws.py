"""Loss-curve laws: fit a few runs' eval curves, predict any schedule's.

Two laws, each a function of the LR sequence alone. `lrs[i]` is the LR of
update i (0 = the first, as `schedules.schedule` indexes it); an eval after
`t` updates (the metrics' eval rows, t = 0 the initial model) has seen
lrs[0 .. t-1]. S1(t) = sum_{i < t} lrs[i], the forward area, includes the
warmup; the decay terms count only LR drops after the warmup ends (step
`warmup`), where both papers state their laws, and only evals at t >
`warmup` are fitted or predicted.

- `multi_power` (Luo et al. 2025, "A Multi-Power Law for Loss Curve
  Prediction Across Learning Rate Schedules"):
      L(t) = L0 + A S1(t)^-alpha - LD(t),
      LD(t) = B sum_{warmup < k < t} (lrs[k-1] - lrs[k]) G(lrs[k]^-gamma S_k(t)),
      S_k(t) = sum_{k <= i < t} lrs[i],  G(x) = 1 - (C x + 1)^-beta.
  The paper writes S1 + S_W with S1 counted from the warmup's end; S1
  here is that sum. Seven parameters.
- `momentum` (Tissue et al. 2024, "Scaling Law with Learning Rate
  Annealing"): L(t) = L0 + A S1(t)^-alpha - C S2(t), S2(t) = sum_{i < t}
  m_i, m_i = lam m_{i-1} + (lrs[i-1] - lrs[i]) after the warmup (0
  before); lam = 0.999 as in the paper, fixed. Four parameters.

Fits minimise the Huber loss (delta 1e-3) of log predicted - log observed
loss, summed over every fitted eval of every curve, by L-BFGS-B within
bounds from a small grid of starts; the best start is kept. A law is
fitted only on at least as many evals as it has parameters (ConfigError
otherwise).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import optimize, signal

from warmup_research.errors import ConfigError

HUBER_DELTA = 1e-3
MOMENTUM_DECAY = 0.999   # Tissue et al.'s lambda


@dataclasses.dataclass(frozen=True)
class Curve:
  """One run's eval curve and the LRs that made it: `lrs` per update,
  `steps` the evals' update counts, `losses` the eval losses; `warmup`
  the updates of its warmup (0: none)."""
  lrs: np.ndarray
  steps: np.ndarray
  losses: np.ndarray
  warmup: int = 0
  name: str = ""

  def fitted(self) -> np.ndarray:
    """Which evals a law fits or predicts: after the warmup, finite."""
    return (self.steps > self.warmup) & np.isfinite(self.losses)


def _prepare(lrs_T, steps_E, warmup: int) -> dict:
  """What a law needs of one schedule and its evals, fixed over a fit."""
  lrs_T = np.asarray(lrs_T, np.float64)
  steps_E = np.asarray(steps_E, np.int64)
  cum_T1 = np.concatenate([[0.0], np.cumsum(lrs_T)])   # cum[t] = sum_{i < t} lrs[i]
  after = np.arange(warmup + 1, len(lrs_T))            # LR changes after the warmup
  drop_T = np.zeros(len(lrs_T))
  drop_T[after] = lrs_T[after - 1] - lrs_T[after]
  # Tissue et al.'s momentum of the drops, m_i = lam m_{i-1} + drop_i (a linear
  # filter), and S2 its sum
  m_T = signal.lfilter([1.0], [1.0, -MOMENTUM_DECAY], drop_T)
  k_K = after[drop_T[after] != 0]                      # only where the LR moved
  # S_k(t) = cum[t] - cum[k] for a drop k before t; a later drop has not happened at t
  live_ExK = k_K[None, :] < steps_E[:, None]
  gap_K = drop_T[k_K]
  return dict(
      s1_E=np.maximum(cum_T1[steps_E], 1e-30),
      log_lr_K=np.log(np.maximum(lrs_T[k_K], 1e-30)),   # a zero LR: G at its limit, 1
      s_ExK=np.where(live_ExK, cum_T1[steps_E][:, None] - cum_T1[k_K][None, :], 0.0),
      gap_ExK=np.where(live_ExK, gap_K[None, :], 0.0),
      s2_E=np.concatenate([[0.0], np.cumsum(m_T)])[steps_E])


def _multi_power(p, prep, grad: bool = False):
  """The law's losses at the evals; with `grad`, also d loss / d p (E x 7)."""
  l0, a, alpha, b, c, beta, gamma = p
  x_ExK = np.exp(-gamma * prep["log_lr_K"])[None, :] * prep["s_ExK"]
  u_ExK = c * x_ExK + 1.0
  g_ExK = 1.0 - u_ExK ** -beta
  power_E = prep["s1_E"] ** -alpha
  pred_E = l0 + a * power_E - b * np.sum(prep["gap_ExK"] * g_ExK, axis=1)
  if not grad:
    return pred_E
  gap, dg_du = prep["gap_ExK"], beta * u_ExK ** (-beta - 1.0)
  d_Ex7 = np.stack([
      np.ones_like(pred_E), power_E, -a * power_E * np.log(prep["s1_E"]),
      -np.sum(gap * g_ExK, axis=1),
      -b * np.sum(gap * dg_du * x_ExK, axis=1),
      -b * np.sum(gap * (1.0 - g_ExK) * np.log(u_ExK), axis=1),
      b * np.sum(gap * dg_du * c * x_ExK * prep["log_lr_K"][None, :], axis=1)], axis=1)
  return pred_E, d_Ex7


def _momentum(p, prep, grad: bool = False):
  l0, a, alpha, c = p
  power_E = prep["s1_E"] ** -alpha
  pred_E = l0 + a * power_E - c * prep["s2_E"]
  if not grad:
    return pred_E
  return pred_E, np.stack([np.ones_like(pred_E), power_E,
                           -a * power_E * np.log(prep["s1_E"]), -prep["s2_E"]], axis=1)


@dataclasses.dataclass(frozen=True)
class Law:
  name: str
  params: tuple[str, ...]
  fn: object
  bounds: tuple
  starts: tuple   # per parameter, values tried (their product), scaled by `_start`


LAWS = {
    "multi_power": Law(
        "multi_power", ("L0", "A", "alpha", "B", "C", "beta", "gamma"), _multi_power,
        bounds=((0, None), (0, None), (0, 10), (0, None), (0, None), (0, 10), (0, 10)),
        starts=((0.9,), (1.0,), (0.3, 0.6), (0.1, 1.0), (1.0,), (0.5,), (0.5,))),
    "momentum": Law(
        "momentum", ("L0", "A", "alpha", "C"), _momentum,
        bounds=((0, None), (0, None), (0, 10), (0, None)),
        starts=((0.9,), (1.0,), (0.3, 0.6), (0.1, 1.0))),
}


@dataclasses.dataclass(frozen=True)
class Fit:
  """A fitted law: its parameters (by name), the objective at them, the
  evals it was fitted on and their residuals (log predicted - log
  observed), per curve."""
  law: str
  params: dict
  objective: float
  n_points: int
  residuals: dict

  def predict(self, lrs, steps, warmup: int = 0) -> np.ndarray:
    """The law's eval loss after each of `steps` updates of schedule `lrs`."""
    return predict(self, lrs, steps, warmup)

  def to_json(self) -> dict:
    return dict(law=self.law, params=self.params, objective=self.objective,
                n_points=self.n_points,
                residuals={k: [float(x) for x in v] for k, v in self.residuals.items()})


def law(name: str) -> Law:
  if name not in LAWS:
    raise ConfigError("--law", f"unknown law {name!r}; allowed: {', '.join(LAWS)}")
  return LAWS[name]


def predict(fit: Fit, lrs, steps, warmup: int = 0) -> np.ndarray:
  lw = law(fit.law)
  p = [fit.params[k] for k in lw.params]
  return lw.fn(p, _prepare(lrs, steps, int(warmup)))


def _huber(x):
  ax = np.abs(x)
  return np.where(ax <= HUBER_DELTA, 0.5 * x * x, HUBER_DELTA * (ax - 0.5 * HUBER_DELTA))


def _start(lw: Law, factors, *, low, high, s1, peak, updates) -> list[float]:
  """A start of the fit from `factors` (one per parameter) and the data's
  scales: L0 a share of the lowest loss; A so the power term spans the
  losses at the first fitted area; the decay term's amplitude so a full
  drop of the LR moves the loss by a share of the losses' range (B: LD <=
  B x peak; momentum C: S2 <= about peak x updates)."""
  p = dict(zip(lw.params, factors))
  p["L0"] *= low
  p["A"] *= max(high - p["L0"], 1e-6) * max(s1, 1e-30) ** p["alpha"]
  if "B" in p:
    p["B"] *= (high - low) / peak
  else:
    p["C"] *= (high - low) / (peak * updates)
  return [p[k] for k in lw.params]


def fit(curves: list[Curve], name: str = "multi_power") -> Fit:
  """The law `name` fitted jointly to `curves` (their evals after the
  warmup). ConfigError when they hold fewer evals than the law has
  parameters, or a non-positive loss (the fit is in log loss)."""
  lw = law(name)
  parts = []
  for cv in curves:
    keep = cv.fitted()
    steps_E = np.asarray(cv.steps, np.int64)[keep]
    loss_E = np.asarray(cv.losses, np.float64)[keep]
    if steps_E.size and (steps_E.max() > len(cv.lrs)):
      raise ConfigError("--fit-on", f"run {cv.name!r} has an eval after {steps_E.max()} "
                        f"updates but only {len(cv.lrs)} LRs")
    if np.any(loss_E <= 0):
      raise ConfigError("--fit-on", f"run {cv.name!r} has a non-positive eval loss; the laws "
                        "are fitted to log losses")
    parts.append((cv, np.asarray(cv.lrs, np.float64), steps_E, np.log(loss_E),
                  _prepare(cv.lrs, steps_E, cv.warmup)))
  n = sum(p[2].size for p in parts)
  if n < len(lw.params):
    raise ConfigError("--fit-on", f"the {name} law has {len(lw.params)} parameters but the "
                      f"runs given hold {n} evals after their warmup; fit it on more runs or "
                      "more evals (train.eval_every)")

  def objective(theta):   # in log parameters: all positive, and better scaled
    total, p = 0.0, np.exp(theta)
    grad = np.zeros_like(theta)
    for *_, log_loss, prep in parts:
      pred, d_pred = lw.fn(p, prep, grad=True)
      if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
        return 1e10, np.zeros_like(theta)
      r = np.log(pred) - log_loss
      total += float(np.sum(_huber(r)))
      # d huber(r) / d theta = huber'(r) / pred x d pred / d p x p
      grad += (np.clip(r, -HUBER_DELTA, HUBER_DELTA) / pred) @ d_pred * p
    return total, grad

  scale = dict(
      low=min(float(np.exp(p[3]).min()) for p in parts if p[3].size),
      high=max(float(np.exp(p[3]).max()) for p in parts if p[3].size),
      s1=min(float(p[4]["s1_E"].min()) for p in parts if p[2].size),
      peak=max(float(np.max(p[1])) for p in parts),
      updates=max(len(p[1]) for p in parts))
  log_bounds = [(-40.0, math.log(hi) if hi else 40.0) for _, hi in lw.bounds]
  best = None
  for start in itertools.product(*lw.starts):
    theta0 = np.log(_start(lw, start, **scale))
    r = optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=log_bounds,
                          options=dict(maxiter=2000, ftol=1e-12, gtol=1e-10))
    if best is None or r.fun < best.fun:
      best = r
  params = {k: float(v) for k, v in zip(lw.params, np.exp(best.x))}
  residuals = {cv.name: np.log(lw.fn(np.exp(best.x), prep)) - log_loss
               for cv, *_, log_loss, prep in parts}
  return Fit(name, params, float(best.fun), n, residuals)


def errors(fit_: Fit, curves: list[Curve]) -> dict[str, dict]:
  """Per held-out curve: the law's prediction error at its evals after the
  warmup (predicted - observed, in the losses' units): final, mean
  absolute and largest absolute."""
  out = {}
  for cv in curves:
    keep = cv.fitted()
    steps, obs = np.asarray(cv.steps)[keep], np.asarray(cv.losses, np.float64)[keep]
    d = fit_.predict(cv.lrs, steps, cv.warmup) - obs
    out[cv.name] = dict(final=float(d[-1]) if d.size else math.nan,
                        mean_abs=float(np.mean(np.abs(d))) if d.size else math.nan,
                        max_abs=float(np.max(np.abs(d))) if d.size else math.nan)
  return out


def run_curve(config, rows, name: str = "") -> Curve:
  """The Curve of one run from its config (a ConfigDict, or the dict a
  record saves) and its metrics rows (eval rows `{"step", "eval_loss"}`):
  the LRs of its schedule as the train step computes them."""
  from warmup_research import config as config_lib  # jax: only to compute a schedule
  from warmup_research import schedules, train  # jax: only to compute a schedule
  cfg = config_lib.from_saved(config) if isinstance(config, dict) else config
  warmup, _ = config_lib.durations(cfg)
  total = cfg.train.total_steps
  lrs = np.asarray(schedules.curve(total, train.hparams(cfg).schedule), np.float64)
  # a run frozen (diverged, or pruned) stops there: its later evals repeat its last
  # params' loss while its schedule goes on, which no law describes
  stop = min([r["step"] for r in rows if r.get("pruned") or r.get("diverged")], default=total)
  evals = [r for r in rows if "eval_loss" in r and r["step"] <= stop]
  return Curve(lrs, np.array([r["step"] for r in evals], np.int64),
               np.array([r["eval_loss"] for r in evals], np.float64),
               warmup if cfg.schedule.warmup_shape != "none" else 0, name)


def workdir_curves(workdir, loaded: dict, run_ids, field: str = "--fit-on") -> list[Curve]:
  """The Curves of runs of a workdir, by run id (ConfigError names an
  unknown one, as `field`); `loaded`: the workdir as `results.load` read it
  (the caller reads it: results imports this module)."""
  runs = {r["run_id"]: r for r in loaded["record"]["runs"]}
  missing = [rid for rid in run_ids if rid not in runs]
  if missing:
    raise ConfigError(field, f"no run {', '.join(map(repr, missing))} in {workdir}; "
                      f"its runs: {', '.join(list(runs)[:8])}{' ...' if len(runs) > 8 else ''}")
  return [run_curve(runs[rid]["config"], loaded["metrics"][rid], rid) for rid in run_ids]


def schedule_curve(base_config, spec: str, steps) -> Curve:
  """The (loss-less) Curve of `base_config` with its schedule changed by
  `spec`, 'FIELD=VALUE,...' over config.schedule (e.g.
  'decay_shape=wsd,cooldown_ratio=0.2'), at eval steps `steps`."""
  from warmup_research import config as config_lib  # jax: only to compute a schedule
  cfg = config_lib.from_saved(base_config) if isinstance(base_config, dict) else base_config
  overrides = {}
  for item in filter(None, spec.split(",")):
    field, eq, value = item.partition("=")
    if not eq or not field.strip():
      raise ConfigError("--schedule", f"{item!r} is not FIELD=VALUE (a field of "
                        "config.schedule, e.g. decay_shape=wsd)")
    overrides[f"schedule.{field.strip()}"] = value.strip()
  try:
    cfg = config_lib.apply_overrides(cfg, overrides)
    config_lib.validate(cfg)
  except ConfigError as e:
    raise ConfigError("--schedule", str(e)) from None
  return run_curve(cfg, [dict(step=int(s), eval_loss=math.nan) for s in steps], spec)


def expand_specs(specs) -> list[str]:
  """Schedule specs with alternatives ('cooldown_ratio=0.1|0.2,
  cooldown_shape=linear|1-sqrt') as every combination, in order, each once:
  a family of schedules to predict, whose lowest final prediction is the
  one the law prefers."""
  out = []
  for spec in specs:
    items = [item.partition("=") for item in filter(None, spec.split(","))]
    choices = [[f"{field.strip()}={v.strip()}" for v in value.split("|")] if eq
               else [field] for field, eq, value in items]
    out += [",".join(combo) for combo in itertools.product(*choices)]
  return list(dict.fromkeys(out))


def report(workdir, loaded: dict, fit_on, law_name: str = "multi_power", held_out=(),
           specs=()) -> dict:
  """`warmup-research predict`: the law fitted on runs `fit_on` of a
  workdir (`loaded`: as `results.load` read it), its prediction of each
  `held_out` run (errors against the observed curve) and of each schedule
  spec (`schedule_curve`, on the first fitted run's config and evals); as
  a dict that laws.json holds."""
  law(law_name)   # an unknown law, before any run is read
  runs = {r["run_id"]: r for r in loaded["record"]["runs"]}
  fitting = workdir_curves(workdir, loaded, list(fit_on))
  fitted = fit(fitting, law_name)
  held = workdir_curves(workdir, loaded, list(held_out), "--held-out")
  first = fitting[0]
  out = dict(law=law_name, fit_on=list(fit_on), fit=fitted.to_json(),
             held_out={}, schedules={})
  for cv, (name, e) in zip(held, errors(fitted, held).items()):
    keep = cv.fitted()
    out["held_out"][name] = dict(
        e, steps=[int(s) for s in cv.steps[keep]],
        observed=[float(x) for x in cv.losses[keep]],
        predicted=[float(x) for x in fitted.predict(cv.lrs, cv.steps[keep], cv.warmup)])
  for spec in expand_specs(specs):
    cv = schedule_curve(runs[fit_on[0]]["config"], spec, first.steps)
    keep = cv.steps > cv.warmup
    out["schedules"][spec] = dict(steps=[int(s) for s in cv.steps[keep]], predicted=[
        float(x) for x in fitted.predict(cv.lrs, cv.steps[keep], cv.warmup)])
  return out


def markdown(out: dict) -> str:
  """The lines `predict` prints: the fit, then each prediction."""
  fit_ = out["fit"]
  rms = math.sqrt(np.mean(np.concatenate([np.square(r) for r in fit_["residuals"].values()])))
  lines = [f"{out['law']} law fitted on {', '.join(out['fit_on'])} ({fit_['n_points']} evals; "
           f"residual RMS {rms:.2e} in log loss): "
           + ", ".join(f"{k}={v:.4g}" for k, v in fit_["params"].items())]
  if out["held_out"]:
    lines += ["", "| held-out run | final observed | final predicted | error | mean abs error |",
              "|---|---|---|---|---|"]
    for name, h in out["held_out"].items():
      lines.append(f"| {name} | {h['observed'][-1]:.4f} | {h['predicted'][-1]:.4f} | "
                   f"{h['final']:+.4f} | {h['mean_abs']:.4f} |")
  if out["schedules"]:
    final = {k: s["predicted"][-1] for k, s in out["schedules"].items()}
    best = min(final, key=lambda k: final[k] if math.isfinite(final[k]) else math.inf)
    lines += ["", "| schedule | final step | final predicted | |", "|---|---|---|---|"]
    for spec, s in out["schedules"].items():
      lines.append(f"| {spec} | {s['steps'][-1]} | {s['predicted'][-1]:.4f} | "
                   f"{'★ lowest' if spec == best else ''} |")
  return "\n".join(lines)
