"""Statistics that turn a grid's runs into conclusions (scipy.stats).

- `mean_ci`: a cell's mean over seeds with a 95% t interval.
- `paired_difference`: condition B minus condition A, pair by pair (seed i
  of A against seed i of B: the same init and data order), its mean with a
  95% CI (paired t, or a paired bootstrap), and the sign count.
- `rate_test`: two conditions' stall or divergence rates, Fisher's exact test.
- `verdict`: the rule fixed before the run: `reproduced` when the 95% CI
  excludes 0 in the direction the paper predicts, `contradicted` when it
  excludes 0 the other way, `inconclusive` otherwise.
- `lr_sensitivity`: Wortsman et al. 2023's measure of how much a setting's
  final loss depends on the peak LR.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
METHODS = ("paired t", "paired bootstrap")
VERDICTS = ("reproduced", "contradicted", "inconclusive")


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
  ci95: tuple | None            # (lo, hi); None with fewer than 2 pairs
  n_pairs: int
  n_negative: int               # pairs with b < a
  n_positive: int               # pairs with b > a
  method: str


def paired_difference(a, b, method: str = "paired t", seed: int = 0) -> PairedDifference:
  """b - a over pairs (a[i], b[i]); pairs with a missing side are dropped.

  'paired t': the t interval of the differences (scipy.stats.ttest_rel);
  'paired bootstrap': the BCa bootstrap of their mean (scipy.stats.bootstrap,
  9,999 resamples, fixed `seed`)."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  pairs = [(x, y) for x, y in zip(a, b, strict=True)
           if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
  d = np.asarray([y - x for x, y in pairs], np.float64)
  n = int(d.size)
  signs = dict(n_negative=int((d < 0).sum()), n_positive=int((d > 0).sum()))
  if n == 0:
    return PairedDifference(math.nan, None, 0, method=method, **signs)
  if n < 2:
    return PairedDifference(float(d.mean()), None, n, method=method, **signs)
  if np.all(d == d[0]):   # no spread (a discrete metric): no t interval exists
    # the sign test decides: n equal signs are significant when 2 * 0.5**n < 0.05
    p = sps.binomtest(n if d[0] != 0 else 0, n).pvalue
    ci = (float(d[0]), float(d[0])) if d[0] != 0 and p < 1 - CONFIDENCE else None
    return PairedDifference(float(d[0]), ci, n, method=f"{method} (no spread: sign test, "
                            f"p = {p:.3g})", **signs)
  if method == "paired t":
    ci = sps.ttest_rel([y for _, y in pairs], [x for x, _ in pairs]).confidence_interval(
        CONFIDENCE)
  else:
    ci = sps.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, n_resamples=9999,
                       method="BCa", rng=np.random.default_rng(seed)).confidence_interval
  return PairedDifference(float(d.mean()), (float(ci.low), float(ci.high)), n, method=method,
                          **signs)


def verdict(ci95, direction: str) -> str:
  """`direction`: 'lower' (the paper predicts b - a < 0) or 'higher'."""
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


def rate_verdict(t: RateTest, direction: str, alpha: float = 1 - CONFIDENCE) -> str:
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
