"""Statistics that turn a grid's runs into conclusions (scipy.stats).

The unit of replication is the seed: every test here takes one paired
difference d_i = b_i - a_i per seed (seed i of both conditions: the same
init and data order), never one per (LR, seed) cell.

- `mean_ci`: a cell's mean over seeds with a 95% t interval.
- `paired_difference`: b - a pair by pair, its mean, a 95% CI (paired t, or
  a BCa paired bootstrap), a p-value and the sign count.
- `superiority`: the test of a directional claim. Continuous differences:
  the paired t (two-sided p, `ttest_1samp`) or the BCa bootstrap (its p is
  the BCa interval inverted at 0, so p < 0.05 exactly when the 95% BCa CI
  excludes 0, up to the resampling). Where a t-test cannot apply (no spread,
  or a discrete metric): the exact sign test, one-sided at 5% in the
  predicted direction (its mirror, one-sided at 5%, decides `contradicted`);
  ties are left out of the count. The t is not monotone in the evidence (one
  pair moved far in the predicted direction can widen the CI); the sign test
  is, so discrete metrics use it.
- `boundary_difference`: two arms' boundary estimates (`logistic_boundary`)
  compared by a seed bootstrap (seeds resampled, 9,999 times, a fixed
  bootstrap seed; percentile 95% CI); its p is the larger of the bootstrap
  p and the one-sided exact sign test's, so 5 seeds must all agree.
- `equivalence`: two one-sided tests against a declared margin m: the 90%
  CI inside (-m, m) is `equivalent`, outside it `not equivalent`.
- `decide`: a `Test`'s verdict: `reproduced` / `contradicted` /
  `inconclusive` (superiority: p < 0.05, on the side the paper predicts or
  the other); `equivalent` / `not equivalent` / `inconclusive`.
- `mde`: the smallest effect the paired t detects at 80% power from the
  observed paired sd (scipy's noncentral t); `seeds_needed` inverts it.
- `holm`, `benjamini_hochberg`: adjusted p-values.
- `rate_test`: Fisher's exact test of two rates (unpaired: only for runs
  with no seed to pair).
- `lr_sensitivity`: Wortsman et al. 2023's measure of how much a setting's
  final loss depends on the peak LR.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
RESAMPLES = 9999
METHODS = ("paired t", "paired bootstrap")
VERDICTS = ("reproduced", "contradicted", "inconclusive")
EQUIVALENCE_VERDICTS = ("equivalent", "not equivalent", "inconclusive")


@dataclasses.dataclass
class Interval:
  mean: float
  lo: float | None      # None: fewer than 2 values, no interval
  hi: float | None
  n: int


def mean_ci(values) -> Interval:
  """Mean and 95% t interval (None with fewer than 2 finite values)."""
  x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
  if x.size == 0:
    return Interval(math.nan, None, None, 0)
  if x.size == 1 or np.all(x == x[0]):
    return Interval(float(x.mean()), *([None, None] if x.size == 1 else [x[0], x[0]]), x.size)
  lo, hi = sps.t.interval(CONFIDENCE, x.size - 1, loc=x.mean(), scale=sps.sem(x))
  return Interval(float(x.mean()), float(lo), float(hi), int(x.size))


@dataclasses.dataclass
class PairedDifference:
  effect: float                 # mean of b - a
  ci95: tuple | None            # (lo, hi); None with fewer than 2 pairs or no spread
  n_pairs: int
  n_negative: int               # pairs with b < a
  n_positive: int               # pairs with b > a
  method: str
  p_value: float | None = None  # two-sided (None without spread)
  sd: float | None = None       # sample sd of the differences


def _finite_pairs(a, b):
  return [(x, y) for x, y in zip(a, b, strict=True)
          if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]


def paired_difference(a, b, method: str = "paired t", seed: int = 0) -> PairedDifference:
  """b - a over pairs (a[i], b[i]); pairs with a missing side are dropped.

  'paired t': the t interval of the differences; 'paired bootstrap': the
  BCa bootstrap of their mean (9,999 resamples, fixed `seed`). Without
  spread no interval exists: ci95 and p are None (`superiority` then uses
  the exact sign test)."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  d = np.asarray([y - x for x, y in _finite_pairs(a, b)], np.float64)
  n = int(d.size)
  signs = dict(n_negative=int((d < 0).sum()), n_positive=int((d > 0).sum()))
  if n == 0:
    return PairedDifference(math.nan, None, 0, method=method, **signs)
  sd = float(d.std(ddof=1)) if n > 1 else None
  if n < 2 or np.all(d == d[0]):
    return PairedDifference(float(d.mean()), None, n, method=method, sd=sd, **signs)
  if method == "paired t":
    t = sps.ttest_1samp(d, 0.0)
    ci, p = t.confidence_interval(CONFIDENCE), float(t.pvalue)
    ci = (float(ci.low), float(ci.high))
  else:
    ci, p = _bca(d, seed)
  return PairedDifference(float(d.mean()), ci, n, method=method, p_value=p, sd=sd, **signs)


def _bca(d: np.ndarray, seed: int) -> tuple[tuple, float]:
  """The 95% BCa interval of mean(d) (scipy.stats.bootstrap) and its
  two-sided p: the level at which the BCa interval's end reaches 0, from
  the same resamples and the same bias and acceleration."""
  res = sps.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                      method="BCa", rng=np.random.default_rng(seed))
  theta, boot = d.mean(), res.bootstrap_distribution
  z0 = sps.norm.ppf(np.clip(np.mean(boot < theta), 1e-12, 1 - 1e-12))
  jack = (d.sum() - d) / (d.size - 1)
  u = jack.mean() - jack
  accel = (u ** 3).sum() / (6 * ((u ** 2).sum()) ** 1.5) if np.any(u) else 0.0
  # BCa takes the bootstrap quantile Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for level Phi(z);
  # solving that quantile = the share of resamples below 0 gives the level at which 0 is an end
  w = sps.norm.ppf(np.clip(np.mean(boot <= 0), 1e-12, 1 - 1e-12)) - z0
  z = w / (1 + accel * w) - z0
  # no p below what the resamples can resolve
  p = float(np.clip(2 * min(sps.norm.cdf(z), sps.norm.sf(z)), 1 / (RESAMPLES + 1), 1.0))
  ci = res.confidence_interval
  return (float(ci.low), float(ci.high)), p


@dataclasses.dataclass
class Test:
  """One claim's test over per-seed differences (or of one level of it)."""
  effect: float | None          # mean of the per-seed differences b - a
  ci95: tuple | None
  n: int                        # seeds
  p: float | None               # the deciding test's p (None: nothing to test)
  side: str | None              # where the deciding test points: 'lower' / 'higher'
                                # (equivalence: 'inside' / 'outside' the margin)
  method: str
  sd: float | None = None
  n_negative: int = 0
  n_positive: int = 0
  ci90: tuple | None = None     # equivalence: the TOST interval


def _diffs(d) -> np.ndarray:
  return np.asarray([x for x in d if x is not None and math.isfinite(x)], np.float64)


def sign_p(d, direction: str, shift: float = 0.0) -> float:
  """One-sided exact sign test that the differences lie `direction` of
  `shift` (ties, d == shift, left out): P(Binomial(m, 1/2) >= k)."""
  x = _diffs(d) - shift
  k = int((x < 0).sum() if direction == "lower" else (x > 0).sum())
  m = int((x != 0).sum())
  return float(sps.binom.sf(k - 1, m, 0.5)) if m else 1.0


def _signs(x: np.ndarray) -> dict:
  return dict(n_negative=int((x < 0).sum()), n_positive=int((x > 0).sum()))


def exact_sign(d, direction: str) -> Test:
  """The exact sign test, one-sided: the predicted side's p if it is the
  smaller, else its mirror's (which can only say `contradicted`)."""
  x = _diffs(d)
  other = "higher" if direction == "lower" else "lower"
  p_pred, p_opp = sign_p(x, direction), sign_p(x, other)
  p, side = (p_pred, direction) if p_pred <= p_opp else (p_opp, other)
  return Test(float(x.mean()) if x.size else None, None, int(x.size), p if x.size else None,
              side, "exact sign test (one-sided)", float(x.std(ddof=1)) if x.size > 1 else None,
              **_signs(x))


def superiority(d, direction: str, method: str = "paired t", discrete: bool = False,
                seed: int = 0) -> Test:
  """The test of 'b - a lies `direction` of 0' over per-seed differences."""
  x = _diffs(d)
  if discrete or x.size < 2 or np.all(x == x[0]):
    t = exact_sign(x, direction)
    if not discrete and x.size >= 2:
      t.method = f"{method} (no spread: exact sign test, one-sided)"
    return t
  pd = paired_difference(np.zeros_like(x), x, method, seed)
  side = "lower" if pd.effect < 0 else "higher"
  return Test(pd.effect, pd.ci95, pd.n_pairs, pd.p_value, side, method, pd.sd, pd.n_negative,
              pd.n_positive)


def boundary_difference(d, direction: str, seed: int = 0, resamples: int = RESAMPLES) -> Test:
  """Per-seed differences of two arms' boundaries: a seed bootstrap of their
  mean (fixed `seed`: the same resamples for every claim of n seeds), its
  percentile 95% CI and p = max(bootstrap two-sided p, exact sign test's p
  on the same side), so the verdict never weakens as one seed moves the
  predicted way."""
  x = _diffs(d)
  if x.size < 2:
    return exact_sign(x, direction)
  picks = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
  boot = x[picks].mean(1)
  below, above = float(np.mean(boot <= 0)), float(np.mean(boot >= 0))
  side = "higher" if below < above else "lower"
  p = max(min(1.0, 2 * min(below, above)), sign_p(x, side))
  lo, hi = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
  return Test(float(x.mean()), (float(lo), float(hi)), int(x.size), p, side,
              "seed bootstrap of the boundary", float(x.std(ddof=1)), **_signs(x))


def equivalence(d, margin: float) -> Test:
  """Two one-sided tests of |b - a| < margin (paired t; the exact sign test
  when the differences have no spread). p is the TOST p (equivalence) or
  the p that the mean lies beyond the nearer margin, whichever is smaller;
  `side` says which."""
  x = _diffs(d)
  n = int(x.size)
  if n == 0:
    return Test(None, None, 0, None, None, "TOST")
  sd = float(x.std(ddof=1)) if n > 1 else None
  mean = float(x.mean())
  if n < 2 or np.all(x == x[0]):
    p_in = max(sign_p(x, "higher", -margin), sign_p(x, "lower", margin))
    p_out = sign_p(x, "higher", margin) if mean > 0 else sign_p(x, "lower", -margin)
    method, ci95, ci90 = "TOST (no spread: exact sign tests)", None, None
  else:
    se, df = sd / math.sqrt(n), n - 1
    p_in = max(sps.t.sf((mean + margin) / se, df), sps.t.cdf((mean - margin) / se, df))
    p_out = sps.t.sf((mean - margin) / se, df) if mean > 0 else sps.t.cdf((mean + margin) / se,
                                                                           df)
    half95, half90 = (sps.t.ppf(1 - q / 2, df) * se for q in (ALPHA, 2 * ALPHA))
    method = "TOST (paired t)"
    ci95, ci90 = (float(mean - half95), float(mean + half95)), (float(mean - half90),
                                                                float(mean + half90))
  p, side = (float(p_in), "inside") if p_in <= p_out else (float(p_out), "outside")
  return Test(mean, ci95, n, p, side, method, sd, **_signs(x), ci90=ci90)


def decide(p: float | None, side: str | None, direction: str | None,
           alpha: float = ALPHA) -> str:
  """A verdict from a p-value and the side its test points to: `direction`
  'lower' / 'higher' (superiority) or None (equivalence)."""
  if direction is None:
    if p is None or p >= alpha:
      return "inconclusive"
    return "equivalent" if side == "inside" else "not equivalent"
  if direction not in ("lower", "higher"):
    raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
  if p is None or p >= alpha:
    return "inconclusive"
  return "reproduced" if side == direction else "contradicted"


def verdict(ci95, direction: str) -> str:
  """The CI rule: `direction` 'lower' (the paper predicts b - a < 0) or
  'higher'; `reproduced` when the 95% CI excludes 0 on that side."""
  if direction not in ("lower", "higher"):
    raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
  if ci95 is None:
    return "inconclusive"
  lo, hi = ci95
  below, above = hi < 0, lo > 0
  if (below and direction == "lower") or (above and direction == "higher"):
    return "reproduced"
  if below or above:
    return "contradicted"
  return "inconclusive"


def _t_power(n: int, delta_over_sd: float, alpha: float) -> float:
  """Power of the two-sided paired t of n pairs at a true effect of
  `delta_over_sd` paired sds (noncentral t)."""
  df, nc = n - 1, delta_over_sd * math.sqrt(n)
  tc = sps.t.ppf(1 - alpha / 2, df)
  power = float(sps.nct.sf(tc, df, nc) + sps.nct.cdf(-tc, df, nc))
  return 1.0 if math.isnan(power) else power   # nct's tails fail far past any detectable effect


def _tost_power(n: int, margin_over_sd: float, alpha: float) -> float:
  """A lower bound of the TOST's power at a true difference of 0 (each
  one-sided test misses with probability nct.cdf(t_crit))."""
  df, nc = n - 1, margin_over_sd * math.sqrt(n)
  miss = float(sps.nct.cdf(sps.t.ppf(1 - alpha, df), df, nc))
  return 1.0 if math.isnan(miss) else max(0.0, 1 - 2 * miss)


def mde(sd: float | None, n: int, alpha: float = ALPHA, power: float = POWER,
        equivalence: bool = False) -> float | None:
  """The smallest |b - a| the paired t detects with `power` from n seeds of
  paired sd `sd` (equivalence: the smallest margin the TOST establishes
  at a true difference of 0); None without an sd or with n < 2."""
  if sd is None or n < 2 or not math.isfinite(sd):
    return None
  if sd == 0:
    return 0.0
  fn = _tost_power if equivalence else _t_power
  if fn(n, 30.0, alpha) < power:   # n seeds cannot reach the power at any plausible effect
    return None
  k = optimize.brentq(lambda k: fn(n, k, alpha) - power, 1e-6, 30.0)
  return float(k * sd)


def seeds_needed(sd: float | None, effect: float, alpha: float = ALPHA, power: float = POWER,
                 equivalence: bool = False, most: int = 100_000) -> int | None:
  """Seeds the paired t needs to detect |effect| (equivalence: to establish
  the margin `effect` at a true difference of 0) with `power`, paired sd
  `sd`; at least 3 (the fewest any verdict is drawn from)."""
  if sd is None or not math.isfinite(sd) or effect == 0:
    return None
  if sd == 0:
    return 3
  fn = _tost_power if equivalence else _t_power
  k = abs(effect) / sd
  n = 3
  while fn(n, k, alpha) < power:
    n += 1
    if n > most:
      return None
  return n


def holm(ps) -> list:
  """Holm's step-down adjusted p-values (None stays None, out of the family)."""
  idx = [i for i, p in enumerate(ps) if p is not None]
  out, running = list(ps), 0.0
  for rank, i in enumerate(sorted(idx, key=lambda i: ps[i])):
    running = max(running, min(1.0, (len(idx) - rank) * ps[i]))
    out[i] = running
  return out


def benjamini_hochberg(ps) -> list:
  """Benjamini-Hochberg adjusted p-values (None stays None, out of the family)."""
  idx = sorted((i for i, p in enumerate(ps) if p is not None), key=lambda i: ps[i])
  out, running, m = list(ps), 1.0, len(idx)
  for rank in range(m, 0, -1):
    i = idx[rank - 1]
    running = min(running, m * ps[i] / rank)
    out[i] = running
  return out


def logistic_boundary(log_lrs, trained) -> float:
  """The log10 LR where P(trained) = 1/2 on a logistic fit in log10 LR, by
  Firth's penalised likelihood (finite where trained and failed LRs are
  separated, as on a coarse grid they almost always are). Needs both a
  trained and a failed LR; the fit is clipped to half a grid step past the
  grid's ends."""
  x, y = np.asarray(log_lrs, np.float64), np.asarray(trained, np.float64)
  if y.min() == y.max():
    raise ValueError("needs a trained and a failed LR")
  centre, scale = x.mean(), max(x.std(), 1e-12)
  X = np.stack([np.ones_like(x), (x - centre) / scale], 1)

  def penalised(beta):
    eta = X @ beta
    prob = 1 / (1 + np.exp(-eta))
    info = X.T @ (X * (prob * (1 - prob))[:, None])
    loglik = np.sum(y * eta - np.logaddexp(0, eta))
    return -(loglik + 0.5 * np.linalg.slogdet(info)[1])

  beta = optimize.minimize(penalised, np.zeros(2), method="Nelder-Mead",
                           options=dict(xatol=1e-8, fatol=1e-10, maxiter=4000)).x
  half = _half_step(x)
  if beta[1] == 0:
    return float(centre)
  return float(np.clip(centre - scale * beta[0] / beta[1], x.min() - half, x.max() + half))


def _half_step(x) -> float:
  steps = np.diff(np.unique(x))
  return float(steps.min() / 2) if steps.size else 0.25


def censored_bounds(log_lrs) -> tuple[float, float]:
  """Where a boundary outside the grid is placed: half a grid step below its
  lowest LR (never trained) or above its highest (trained at every LR)."""
  x = np.asarray(log_lrs, np.float64)
  half = _half_step(x)
  return float(x.min() - half), float(x.max() + half)


@dataclasses.dataclass
class RateTest:
  k_a: int
  n_a: int
  k_b: int
  n_b: int
  p_value: float    # Fisher's exact test, two-sided


def rate_test(k_a: int, n_a: int, k_b: int, n_b: int) -> RateTest:
  """Fisher's exact test of k_a / n_a against k_b / n_b."""
  table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
  return RateTest(k_a, n_a, k_b, n_b, float(sps.fisher_exact(table).pvalue))


def rate_verdict(t: RateTest, direction: str, alpha: float = ALPHA) -> str:
  """'lower': the paper predicts b's rate below a's."""
  if t.p_value >= alpha or t.n_a == 0 or t.n_b == 0 or t.k_a * t.n_b == t.k_b * t.n_a:
    return "inconclusive"
  lower = t.k_b * t.n_a < t.k_a * t.n_b
  return "reproduced" if lower == (direction == "lower") else "contradicted"


def lr_sensitivity(lrs, final_losses, initial_loss: float) -> float:
  """Wortsman et al. 2023: E over the swept LRs of min(loss(lr), loss at init)
  minus the best loss. Diverged or missing runs (NaN/inf) count as the
  initial loss. The LRs are the grid's (log-spaced grids weigh each equally)."""
  losses = np.asarray(final_losses, np.float64)
  losses = np.where(np.isfinite(losses), losses, initial_loss)
  del lrs
  capped = np.minimum(losses, initial_loss)
  return float(np.mean(capped) - np.min(capped))


def best_value_ci(values, losses_SxV, resamples: int = 2000, seed: int = 0):
  """The value with the lowest mean loss over seeds, and a 95% interval of
  it from a bootstrap over seeds (rows resampled whole, so a seed's runs
  stay paired), as (best, lo, hi, n_seeds); lo = hi = None with one seed.

  `losses_SxV[s, v]`: seed s's loss at `values[v]` (`values` sorted), every
  one finite: the caller decides what a diverged run counts as. The interval
  is the 2.5 and 97.5 percentiles of the resampled best values, by rank in
  `values`, so its ends are grid values."""
  x = np.asarray(losses_SxV, np.float64)
  if not np.all(np.isfinite(x)):
    raise ValueError("losses_SxV must be finite")
  best = values[int(np.argmin(x.mean(0)))]
  if x.shape[0] < 2:
    return best, None, None, x.shape[0]
  rng = np.random.default_rng(seed)
  picks_RxS = rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))
  ranks = np.argmin(x[picks_RxS].mean(1), axis=1)
  lo, hi = np.percentile(ranks, [2.5, 97.5], method="inverted_cdf")
  return best, values[int(lo)], values[int(hi)], x.shape[0]
