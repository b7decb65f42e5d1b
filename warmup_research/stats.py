"""Statistics that turn a grid's runs into conclusions (scipy.stats).

The unit of replication is the seed: every test here takes one paired
difference d_i = b_i - a_i per seed (seed i of both conditions: the same
init and data order), never one per (LR, seed) cell.

- `mean_ci`: a cell's mean over seeds with a 95% t interval.
- `paired_difference`: b - a pair by pair, its mean, a 95% CI (paired t, or
  a BCa paired bootstrap), a p-value and the sign count.
- **One convention for every directional test**: one-sided at 2.5% in the
  predicted direction (`reproduced`) and 2.5% in the other
  (`contradicted`), equivalently two-sided at 5%. Every p reported is on
  that scale (twice the one-sided p on the side the data point, at most
  1), so `p < 0.05` decides everywhere and Holm / BH pool like with like.
  Non-inferiority is one-sided at 2.5% (the 95% interval's end against the
  margin), its p doubled the same way; the TOST of an equivalence claim
  is the standard two one-sided 5% tests (its 90% interval).
- `superiority`: the test of a directional claim. Continuous differences:
  the paired t (two-sided p, `ttest_1samp`) or the BCa bootstrap (its p is
  the smallest level whose BCa interval leaves 0 out, so p < 0.05 exactly
  when the shown 95% interval excludes 0). Where a t-test cannot apply (no
  spread, or a discrete metric): the exact sign test; ties are left out of
  the count, and its floor 2 x 2^-n needs 6 untied seeds. The t is not
  monotone in the evidence (one pair moved far in the predicted direction
  can widen the CI); the sign test is, so discrete metrics use it.
- `boundary_difference`: two arms' boundary estimates (`gap_boundary`)
  compared by a seed bootstrap (seeds resampled, 9,999 times, a fixed
  bootstrap seed); its p is the larger of the bootstrap's and the exact
  sign test's, and its interval the union of theirs (none below 6 seeds),
  so the interval shown is the one the p inverts to.
- `noninferiority`: one-sided against a declared margin.
- `equivalence`: two one-sided tests against a declared margin m: the 90%
  CI inside (-m, m) is `equivalent`, outside it `not equivalent`.
- `decide`: a `Test`'s verdict: `reproduced` / `contradicted` /
  `inconclusive` (superiority: p < 0.05, on the side the paper predicts or
  the other); `equivalent` / `not equivalent` / `inconclusive`.
- `mde`: the smallest effect the paired t detects at 80% power from the
  observed paired sd (scipy's noncentral t); `seeds_needed` inverts it (a
  bisection, capped). `sign_power` / `sign_seeds_needed`: the exact
  binomial power of the sign test; `sign_floor_seeds`: the fewest seeds
  its floor lets pass.
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
  """The 95% BCa interval of mean(d) and its two-sided p, both from one
  function of the level: the interval at confidence 1 - q (scipy's BCa: z0
  from the mid-rank share of resamples below the estimate, ties counting
  half, and the jackknife acceleration), and p the smallest q whose
  interval leaves 0 out (bisection). So p < 0.05 exactly when the shown
  interval excludes 0."""
  res = sps.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                      method="BCa", rng=np.random.default_rng(seed))
  theta, boot = d.mean(), np.sort(res.bootstrap_distribution)
  share = (np.sum(boot < theta) + np.sum(boot <= theta)) / (2 * boot.size)   # as scipy
  z0 = sps.norm.ppf(np.clip(share, 1e-12, 1 - 1e-12))
  jack = (d.sum() - d) / (d.size - 1)
  u = jack.mean() - jack
  accel = (u ** 3).sum() / (6 * ((u ** 2).sum()) ** 1.5) if np.any(u) else 0.0

  def interval(q):
    ends = []
    for z in (sps.norm.ppf(q / 2), sps.norm.ppf(1 - q / 2)):
      level = sps.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
      ends.append(float(np.percentile(boot, 100 * np.clip(level, 0, 1))))
    return ends

  def excludes_0(q):
    lo, hi = interval(q)
    return lo > 0 or hi < 0

  floor = 1 / (RESAMPLES + 1)   # no p below what the resamples can resolve
  if not excludes_0(1.0 - 1e-9):
    p = 1.0
  elif excludes_0(floor):
    p = floor
  else:
    lo_q, hi_q = floor, 1.0 - 1e-9   # excludes at hi_q, not at lo_q
    for _ in range(40):
      mid = (lo_q + hi_q) / 2
      lo_q, hi_q = (lo_q, mid) if excludes_0(mid) else (mid, hi_q)
    p = hi_q
  return tuple(interval(ALPHA)), float(p)


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


def _moments(d):
  """(finite differences, n, mean, sd); mean None with none, sd with one."""
  x = _diffs(d)
  n = int(x.size)
  return (x, n, float(x.mean()) if n else None,
          float(x.std(ddof=1)) if n > 1 else None)


def sign_p(d, direction: str, shift: float = 0.0) -> float:
  """One-sided exact sign test that the differences lie `direction` of
  `shift` (ties, d == shift, left out): P(Binomial(m, 1/2) >= k)."""
  x = _diffs(d) - shift
  k = int((x < 0).sum() if direction == "lower" else (x > 0).sum())
  m = int((x != 0).sum())
  return float(sps.binom.sf(k - 1, m, 0.5)) if m else 1.0


def _signs(x: np.ndarray) -> dict:
  return dict(n_negative=int((x < 0).sum()), n_positive=int((x > 0).sum()))


def two_sided(p_one: float) -> float:
  """A one-sided p on the convention of this module: twice it, at most 1."""
  return float(min(1.0, 2 * p_one))


def exact_sign(d, direction: str) -> Test:
  """The exact sign test on the convention: its p is twice the one-sided p
  on the side the differences point (the predicted side, or the other,
  which can only say `contradicted`)."""
  x = _diffs(d)
  other = "higher" if direction == "lower" else "lower"
  p_pred, p_opp = sign_p(x, direction), sign_p(x, other)
  p, side = (p_pred, direction) if p_pred <= p_opp else (p_opp, other)
  return Test(float(x.mean()) if x.size else None, None, int(x.size),
              two_sided(p) if x.size else None, side, "exact sign test",
              float(x.std(ddof=1)) if x.size > 1 else None, **_signs(x))


def look_alphas(looks, alpha: float = ALPHA) -> list[float]:
  """The nominal two-sided alpha of each look of a group-sequential plan
  (`looks`: seeds at each look, the last the total): Lan-DeMets'
  O'Brien-Fleming-type spending, alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} /
  sqrt(t)) at information t = seeds / total, each look testing at the
  alpha spent since the last one. Adding the increments (a union bound)
  instead of solving for the exact boundaries errs on the safe side: the
  overall false-positive rate stays at most `alpha`."""
  z = sps.norm.ppf(1 - alpha / 2)
  # the tail as sf, not 1 - cdf: an early look's share (1e-18 at t = 0.05) would cancel to 0
  spent = [float(2 * sps.norm.sf(z / math.sqrt(n / looks[-1]))) for n in looks[:-1]]
  spent.append(alpha)   # the last look spends the rest, exactly
  return [b - a for a, b in zip([0.0, *spent[:-1]], spent)]


def sign_floor_seeds(alpha: float = ALPHA) -> int:
  """The fewest untied seeds at which the exact sign test can pass at
  `alpha` (on the convention: 2 * 2^-n < alpha)."""
  return max(1, math.floor(math.log2(2 / alpha)) + 1)


def sign_interval(d) -> tuple | None:
  """The distribution-free 95% interval of the median that the two-sided
  sign test inverts to: order statistics (k, n + 1 - k) for the largest k
  with 2 P(Bin(n, 1/2) < k) <= 0.05; None (every value) where none exists,
  as at n <= 5."""
  x = np.sort(_diffs(d))
  n = x.size
  ks = [k for k in range(1, n // 2 + 1) if 2 * sps.binom.cdf(k - 1, n, 0.5) <= ALPHA]
  if not ks:
    return None
  k = max(ks)
  return float(x[k - 1]), float(x[n - k])


def superiority(d, direction: str, method: str = "paired t", discrete: bool = False,
                seed: int = 0) -> Test:
  """The test of 'b - a lies `direction` of 0' over per-seed differences."""
  x = _diffs(d)
  if discrete or x.size < 2 or np.all(x == x[0]):
    t = exact_sign(x, direction)
    if not discrete and x.size >= 2:
      t.method = f"{method} (no spread: exact sign test)"
    return t
  pd = paired_difference(np.zeros_like(x), x, method, seed)
  side = "lower" if pd.effect < 0 else "higher"
  return Test(pd.effect, pd.ci95, pd.n_pairs, pd.p_value, side, method, pd.sd, pd.n_negative,
              pd.n_positive)


def boundary_difference(d, direction: str, seed: int = 0, resamples: int = RESAMPLES) -> Test:
  """Per-seed differences of two arms' boundaries: a seed bootstrap of their
  mean (fixed `seed`: the same resamples for every claim of n seeds) and
  the exact sign test, p = max(the bootstrap's two-sided p, the sign
  test's), so the verdict never weakens as one seed moves the predicted
  way and 5 seeds cannot pass. The interval is the one that p inverts to:
  the union of the bootstrap's percentile 95% interval and the sign test's
  (None where the sign test's is every value: fewer than 6 seeds)."""
  x = _diffs(d)
  if x.size < 2:
    return exact_sign(x, direction)
  picks = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
  boot = x[picks].mean(1)
  below, above = float(np.mean(boot <= 0)), float(np.mean(boot >= 0))
  side = "higher" if below < above else "lower"
  p = max(min(1.0, 2 * min(below, above)), two_sided(sign_p(x, side)))
  lo, hi = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
  signed = sign_interval(x)
  ci = None if signed is None else (min(float(lo), signed[0]), max(float(hi), signed[1]))
  return Test(float(x.mean()), ci, int(x.size), p, side,
              "seed bootstrap of the boundary, exact sign floor", float(x.std(ddof=1)),
              **_signs(x))


def noninferiority(d, margin: float, direction: str) -> Test:
  """'b is no worse than a by more than `margin`': for `direction` 'lower'
  (lower is better) the upper end of the 95% paired-t interval of b - a
  below +margin is `non-inferior`, its lower end above +margin `inferior`
  (mirrored for 'higher': the lower end above -margin). One-sided at 2.5%
  each way, so p (twice the one-sided p, the module's convention) < 0.05
  decides; `side` 'inside' (non-inferior) or 'outside' (inferior). Without
  spread, the exact sign test about the margin."""
  x, n, mean, sd = _moments(d)
  if n == 0:
    return Test(None, None, 0, None, None, "non-inferiority")
  bound = margin if direction == "lower" else -margin
  better = direction   # non-inferior: b - a lies `direction` of the bound
  worse = "higher" if direction == "lower" else "lower"
  if n < 2 or np.all(x == x[0]):
    p_in, p_out = sign_p(x, better, bound), sign_p(x, worse, bound)
    method, ci95 = "non-inferiority (no spread: exact sign test)", None
  else:
    se, df = sd / math.sqrt(n), n - 1
    t = (mean - bound) / se
    below, above = float(sps.t.cdf(t, df)), float(sps.t.sf(t, df))
    p_in, p_out = (below, above) if direction == "lower" else (above, below)
    half = sps.t.ppf(1 - ALPHA / 2, df) * se
    method, ci95 = "non-inferiority (paired t)", (mean - half, mean + half)
  p, side = (p_in, "inside") if p_in <= p_out else (p_out, "outside")
  return Test(mean, ci95, n, two_sided(p), side, method, sd, **_signs(x))


def equivalence(d, margin: float) -> Test:
  """Two one-sided tests of |b - a| < margin (paired t; the exact sign test
  when the differences have no spread). p is the TOST p (equivalence) or
  the p that the mean lies beyond the nearer margin, whichever is smaller;
  `side` says which."""
  x, n, mean, sd = _moments(d)
  if n == 0:
    return Test(None, None, 0, None, None, "TOST")
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
  `sd`; at least 3 (the fewest any verdict is drawn from); None past
  `most`. Power grows with n, so a bisection from the normal
  approximation's n finds it in a few dozen power evaluations."""
  if sd is None or not math.isfinite(sd) or effect == 0:
    return None
  if sd == 0:
    return 3
  fn = _tost_power if equivalence else _t_power
  k = abs(effect) / sd
  z = sps.norm.ppf(1 - alpha / (1 if equivalence else 2)) + sps.norm.ppf(
      1 - (1 - power) / (2 if equivalence else 1))
  lo, hi = 2, max(3, math.ceil((z / k) ** 2))   # power(lo) < power, by convention at n = 2
  while fn(hi, k, alpha) < power:
    lo, hi = hi, hi * 2
    if lo > most:
      return None
  while hi - lo > 1:   # power(lo) < power <= power(hi)
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if fn(mid, k, alpha) >= power else (mid, hi)
  return hi if hi <= most else None


def sign_power(n: int, q: float, alpha: float = ALPHA) -> float:
  """The exact power of the sign test on the convention (twice the
  one-sided p below `alpha`) at n untied seeds, each on the predicted side
  with probability q."""
  ks = [k for k in range(n + 1) if two_sided(float(sps.binom.sf(k - 1, n, 0.5))) < alpha]
  return float(sps.binom.sf(ks[0] - 1, n, q)) if ks else 0.0


def sign_seeds_needed(q: float, alpha: float = ALPHA, power: float = POWER,
                      most: int = 50) -> int | None:
  """Seeds the exact sign test needs for `power` at a per-seed chance q of
  the predicted side; None when no n <= `most` gets there."""
  for n in range(max(3, sign_floor_seeds(alpha)), most + 1):
    if sign_power(n, q, alpha) >= power:
      return n
  return None


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


def gap_boundary(log_lrs, top: int) -> float:
  """The boundary above the largest trained LR, `log_lrs[top]` (sorted):
  the midpoint in log10 of the gap to the next LR of the grid, or half the
  grid's smallest step above its highest LR. It depends on the outcomes
  only through `top`, which a failed run turned trained can only raise, so
  the boundary is monotone in the outcomes by construction (a logistic fit
  is not: a trained run below a hole can pull its 50% point down)."""
  x = np.unique(np.asarray(log_lrs, np.float64))
  at = float(np.asarray(log_lrs, np.float64)[top])
  above = x[x > at]
  return float((at + above[0]) / 2) if above.size else float(at + _half_step(x))


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
