"""Statistics over a grid's runs, against hand-computed values."""
import itertools
import time

import numpy as np
import pytest

from warmup_research import stats


def test_lr_sensitivity_hand_computed():
  # capped losses [3.0, 2.5, 5.0 (diverged -> initial), 5.0 (above initial)]
  s = stats.lr_sensitivity([1e-3, 1e-2, 1e-1, 1.0], [3.0, 2.5, float("nan"), 6.0], 5.0)
  assert s == pytest.approx((3.0 + 2.5 + 5.0 + 5.0) / 4 - 2.5)
  assert stats.lr_sensitivity([1, 2], [2.0, 2.0], 5.0) == 0.0


T_975_4 = 2.7764451051977987   # the 97.5% quantile of Student's t with 4 degrees of freedom


def test_mean_ci_is_the_t_interval_not_the_normal_one():
  x = [2.1, 2.3, 2.0, 2.4, 2.2]   # mean 2.2, sample sd sqrt(0.025)
  half = T_975_4 * (0.025 ** 0.5) / 5 ** 0.5   # 0.1963; a z interval (1.96) would be 0.1386
  ci = stats.mean_ci(x)
  assert ci.n == 5 and ci.mean == pytest.approx(2.2)
  assert (ci.lo, ci.hi) == (pytest.approx(2.2 - half, abs=1e-12), pytest.approx(2.2 + half,
                                                                              abs=1e-12))
  one = stats.mean_ci([3.0, None, float("nan")])
  assert one.n == 1 and one.lo is None and one.hi is None


def test_paired_difference_t_sign_count_and_verdict():
  a = [3.0, 3.1, 2.9, 3.2, 3.0]
  gains = [0.1, 0.12, 0.08, 0.11, 0.09]          # b is lower in every pair
  b = [x - g for x, g in zip(a, gains)]
  d = stats.paired_difference(a, b)
  half = T_975_4 * (0.00025 ** 0.5) / 5 ** 0.5   # sd of the differences: sqrt(0.00025)
  assert d.method == "paired t" and d.n_pairs == 5
  assert (d.n_negative, d.n_positive) == (5, 0)
  assert d.effect == pytest.approx(-0.1)
  assert d.ci95 == (pytest.approx(-0.1 - half, abs=1e-12), pytest.approx(-0.1 + half, abs=1e-12))
  assert stats.verdict(d.ci95, "lower") == "reproduced"
  assert stats.verdict(d.ci95, "higher") == "contradicted"
  assert stats.verdict((-0.05, 0.02), "lower") == "inconclusive"
  assert stats.verdict(None, "lower") == "inconclusive"
  # unpaired spread would hide it: the conditions' own intervals overlap
  ia, ib = stats.mean_ci(a), stats.mean_ci(b)
  assert ib.hi > ia.lo


def test_paired_bootstrap_is_named_and_brackets_the_mean():
  a = [3.0, 3.1, 2.9, 3.2, 3.0, 3.05]
  b = [2.9, 2.98, 2.82, 3.09, 2.91, 2.9]
  d = stats.paired_difference(a, b, method="paired bootstrap")
  diffs = [y - x for x, y in zip(a, b)]
  assert d.method == "paired bootstrap" and d.n_pairs == 6
  assert min(diffs) <= d.ci95[0] < d.effect < d.ci95[1] <= max(diffs)
  assert d.ci95 == stats.paired_difference(a, b, method="paired bootstrap").ci95  # fixed seed
  with pytest.raises(ValueError):
    stats.paired_difference(a, b, method="z")


def test_pairs_with_a_missing_side_are_dropped():
  d = stats.paired_difference([1.0, None, 2.0, 3.0], [0.5, 1.0, float("inf"), 2.0])
  assert d.n_pairs == 2 and d.effect == pytest.approx(-0.75)


def test_rate_test_is_fishers_exact_test():
  # 1 of 5 vs 5 of 5: hypergeometric tables as or more extreme are k = 1 and
  # k = 5, each C(6,1) / C(10,5) = 6 / 252, so p = 12 / 252.
  t = stats.rate_test(1, 5, 5, 5)
  assert t.p_value == pytest.approx(12 / 252)
  assert stats.rate_verdict(t, "higher") == "reproduced"
  assert stats.rate_verdict(t, "lower") == "contradicted"
  assert stats.rate_verdict(stats.rate_test(1, 5, 2, 5), "higher") == "inconclusive"


def test_differences_without_spread_take_the_exact_sign_test_at_two_sided_5_percent():
  # 5 equal positive pairs: a t interval would be a point; the sign test, on the one
  # convention (2.5% each way, p twice the one-sided p), gives 2 / 32 (no verdict) and 6 of
  # them 2 / 64
  five = stats.superiority([0.5] * 5, "higher")
  assert five.p == pytest.approx(2 / 32) and stats.decide(five.p, five.side, "higher") == (
      "inconclusive")
  six = stats.superiority([0.5] * 6, "higher")
  assert six.p == pytest.approx(2 / 64) and "exact sign test" in six.method
  assert stats.decide(six.p, six.side, "higher") == "reproduced"
  assert stats.decide(six.p, six.side, "lower") == "contradicted"
  assert stats.paired_difference([0.0] * 4, [0.5] * 4).ci95 is None
  # ties are left out of the count: 4 higher and 1 tie is 4 of 4 (one-sided 1/16)
  assert stats.sign_p([0.5, 0.5, 0.5, 0.5, 0.0], "higher") == pytest.approx(1 / 16)
  assert stats.sign_floor_seeds() == 6 and stats.sign_floor_seeds(0.05 / 4) == 8


def test_one_convention_for_every_directional_test():
  # the paired t's p, the sign test's and the boundary's all decide at two-sided 5%: the
  # same 6-seed evidence gives each a p on one scale, never a one-sided 5% beside a
  # two-sided one
  d = [0.5, 0.6, 0.4, 0.55, 0.45, 0.5]
  t = stats.superiority(d, "higher")
  assert t.p == pytest.approx(stats.sps.ttest_1samp(d, 0).pvalue)
  sign = stats.superiority(d, "higher", discrete=True)
  assert sign.p == pytest.approx(2 * 0.5 ** 6)
  boundary = stats.boundary_difference(d, "higher")
  assert boundary.p == pytest.approx(2 * 0.5 ** 6)   # the sign floor binds, two-sided too
  # non-inferiority: one-sided 2.5%, the upper end of the 95% interval against the margin
  ni = stats.noninferiority([0.01, 0.03, -0.02, 0.02, 0.0], 0.1, "lower")
  upper = stats.paired_difference([0.0] * 5, [0.01, 0.03, -0.02, 0.02, 0.0]).ci95[1]
  assert ni.ci95[1] == pytest.approx(upper) and upper < 0.1 and ni.side == "inside"
  assert ni.p < 0.05
  x = np.array([0.01, 0.03, -0.02, 0.02, 0.0])
  one_sided = stats.sps.t.cdf((x.mean() - 0.1) / (x.std(ddof=1) / np.sqrt(5)), 4)
  assert ni.p == pytest.approx(2 * one_sided)


def test_every_test_gives_a_p_that_agrees_with_its_interval():
  d = [-0.1, -0.12, -0.08, -0.11, -0.09, 0.02]
  t = stats.paired_difference([0.0] * 6, d)
  assert t.p_value == pytest.approx(stats.sps.ttest_1samp(d, 0).pvalue)
  # the BCa p is the interval inverted at 0: at the level p the interval's end is 0
  boot = stats.paired_difference([0.0] * 6, d, method="paired bootstrap")
  assert boot.ci95[1] < 0 and boot.p_value < 0.05
  near = [-0.1, 0.05, -0.08, 0.04, -0.09, 0.02]
  wide = stats.paired_difference([0.0] * 6, near, method="paired bootstrap")
  assert wide.ci95[0] < 0 < wide.ci95[1] and wide.p_value > 0.05


def test_mde_and_seeds_needed_match_the_published_power_of_the_paired_t():
  # Cohen's d = 1 (two-sided 5%, 80% power) needs 10 pairs (power 0.803), d = 0.5 needs 34
  # (0.808): the paired t's noncentral-t power, as G*Power's table gives it
  assert stats.seeds_needed(0.1, 0.1) == 10 and stats.seeds_needed(0.2, 0.1) == 34
  assert stats.seeds_needed(0.1, 1.0) == 3   # never fewer than 3 seeds
  # and the MDE inverts it: at 10 pairs 80% power is reached just below d = 1
  assert 0.9 < stats.mde(1.0, 10) < 1.0 and stats.mde(1.0, 9) > 1.0
  assert stats.mde(None, 5) is None and stats.mde(0.1, 1) is None
  # equivalence: the smallest margin the TOST establishes at a true difference of 0
  m = stats.mde(0.1, 5, equivalence=True)
  assert stats.seeds_needed(0.1, m * 1.001, equivalence=True) == 5
  assert stats.seeds_needed(0.1, m * 0.9, equivalence=True) > 5


def test_holm_and_benjamini_hochberg_hand_computed():
  ps = [0.01, 0.04, None, 0.03]
  assert stats.holm(ps) == pytest.approx([0.03, 0.06, None, 0.06])   # x3, then max(x1, x2)
  assert stats.benjamini_hochberg(ps) == pytest.approx([0.03, 0.04, None, 0.04])


def test_equivalence_is_two_one_sided_tests():
  same = stats.equivalence([0.01, -0.02, 0.03, 0.0, 0.01], 0.05)
  assert same.side == "inside" and stats.decide(same.p, same.side, None) == "equivalent"
  assert -0.05 < same.ci90[0] < same.ci90[1] < 0.05
  # the TOST p is the larger one-sided p: against -margin and against +margin
  d = np.array([0.01, -0.02, 0.03, 0.0, 0.01])
  se = d.std(ddof=1) / np.sqrt(5)
  p_hi = stats.sps.t.cdf((d.mean() - 0.05) / se, 4)
  p_lo = stats.sps.t.sf((d.mean() + 0.05) / se, 4)
  assert same.p == pytest.approx(max(p_hi, p_lo))
  far = stats.equivalence([0.3, 0.2, 0.25, 0.28, 0.31], 0.05)
  assert stats.decide(far.p, far.side, None) == "not equivalent"
  wide = stats.equivalence([0.1, -0.12, 0.05, -0.02, 0.09], 0.05)
  assert stats.decide(wide.p, wide.side, None) == "inconclusive"


def test_the_boundary_is_the_middle_of_the_gap_above_the_largest_trained_lr():
  x = np.log10([1e-3, 3e-3, 1e-2, 3e-2])
  assert stats.gap_boundary(x, 1) == pytest.approx(np.log10(np.sqrt(3e-3 * 1e-2)))
  # at the grid's top: half its smallest step above it
  assert stats.gap_boundary(x, 3) == pytest.approx(x[3] + (x[1] - x[0]) / 2, abs=1e-2)
  assert stats.censored_bounds(x) == pytest.approx((x[0] - (x[1] - x[0]) / 2,
                                                    x[3] + (x[1] - x[0]) / 2), abs=1e-2)


RANK = {"contradicted": 0, "inconclusive": 1, "reproduced": 2}


@pytest.mark.parametrize("test", ["sign", "boundary"])
def test_a_verdict_never_weakens_as_one_seed_moves_the_predicted_way(test):
  # every set of 3 per-seed differences on a grid of half-decade steps (and 100 each of 4
  # and 5),
  # each pair moved one step the predicted way ('higher'): the verdict never goes down
  steps = [-1.0, -0.5, 0.0, 0.5, 1.0]
  if test == "sign":
    fn = lambda d: stats.superiority(d, "higher", discrete=True)   # noqa: E731
  else:
    fn = lambda d: stats.boundary_difference(d, "higher", resamples=999)   # noqa: E731
  memo = {}

  def rank(d):
    if tuple(d) not in memo:
      t = fn(d)
      memo[tuple(d)] = RANK[stats.decide(t.p, t.side, "higher")]
    return memo[tuple(d)]

  rng = np.random.default_rng(0)
  sets = [list(s) for s in itertools.product(steps, repeat=3)]
  sets += [list(rng.choice(steps, n)) for n in (4, 5, 6, 7) for _ in range(100)]
  sets += [[-0.5] * 6, [-1.0, -0.5, -0.5, -1.0, -0.5, -0.5], [0.5] * 6 + [0.0]]
  seen = set()
  for d in sets:
    before = rank(d)
    for i in range(len(d)):
      if d[i] < steps[-1]:
        moved = d[:i] + [d[i] + 0.5] + d[i + 1:]
        assert rank(moved) >= before, (d, moved)
        seen.add((before, rank(moved)))
  assert (1, 2) in seen and (0, 1) in seen   # the property is not vacuous


def test_the_t_is_not_monotone_which_is_why_discrete_metrics_do_not_use_it():
  tight = [0.5, 0.5, 0.5, 0.5, 0.5, 1.0]
  far = [0.5, 0.5, 0.5, 0.5, 0.5, 3.0]   # one seed moved further the predicted way
  assert stats.superiority(tight, "higher").p < 0.05 < stats.superiority(far, "higher").p
  assert stats.superiority(far, "higher", discrete=True).p == pytest.approx(2 / 64)


def test_best_value_ci_is_the_argmin_of_the_seed_mean_with_a_seed_bootstrap():
  values = [1e-3, 1e-2, 1e-1]
  # every seed agrees on 1e-2: the interval is that one value
  agree_SxV = [[3.0, 2.0, 4.0], [3.1, 2.1, 4.2], [2.9, 1.9, 3.9]]
  assert stats.best_value_ci(values, agree_SxV) == (1e-2, 1e-2, 1e-2, 3)
  # seeds split between 1e-3 and 1e-2: the mean picks 1e-2, the interval spans both
  split_SxV = [[2.0, 2.5, 4.0], [3.0, 2.0, 4.0], [3.0, 2.0, 4.0]]
  best, lo, hi, n = stats.best_value_ci(values, split_SxV)
  assert (best, lo, hi, n) == (1e-2, 1e-3, 1e-2, 3)
  assert stats.best_value_ci(values, agree_SxV[:1]) == (1e-2, None, None, 1)
  with pytest.raises(ValueError):
    stats.best_value_ci(values, [[1.0, float("nan"), 2.0]])


def test_bca_p_and_interval_agree_and_ties_count_half_as_in_scipy():
  # the review's cases where the old p (its own z0, ties counted one way) disagreed with
  # scipy's interval
  for d in ([0.408, 1.078, -0.299, 0.755, 0.59], [-0.119, -0.232, 0.084, 1.202, 0.652, 0.706]):
    t = stats.paired_difference([0.0] * len(d), d, method="paired bootstrap")
    assert (t.ci95[0] > 0 or t.ci95[1] < 0) == (t.p_value < 0.05), d
    ref = stats.sps.bootstrap((np.asarray(d),), np.mean, n_resamples=stats.RESAMPLES,
                              method="BCa", rng=np.random.default_rng(0)).confidence_interval
    assert t.ci95 == pytest.approx((ref.low, ref.high), rel=1e-6)


def test_the_boundarys_interval_is_the_one_its_p_inverts_to():
  # 4 higher and a tie: the bootstrap's percentile interval excludes 0, but p (the sign
  # floor) cannot pass, so no 95% interval is shown that would say otherwise
  t = stats.boundary_difference([0.5, 0.5, 0.5, 0.5, 0.0], "higher")
  assert t.p >= 0.05 and t.ci95 is None
  t = stats.boundary_difference([0.5, 0.3, 0.5, 0.2, 0.4, 0.5, 0.6], "higher")
  assert t.p < 0.05 and t.ci95[0] > 0


def test_seeds_needed_is_fast_and_capped_and_the_sign_tests_power_is_exact():
  start = time.perf_counter()
  assert stats.seeds_needed(1.0, 0.002) is None   # about 2 million seeds: past the cap
  assert stats.seeds_needed(1.0, 0.02) == pytest.approx(19625, abs=5)
  assert time.perf_counter() - start < 2
  # the sign test at 6 seeds passes only at 6 of 6: power q^6
  assert stats.sign_power(6, 0.9) == pytest.approx(0.9 ** 6)
  assert stats.sign_power(5, 1.0) == 0.0   # the floor 2 / 32 never passes
  assert stats.sign_seeds_needed(0.5) is None   # no n <= 50 at a coin flip


def test_look_alphas_spend_obrien_fleming_and_add_up_to_alpha():
  from scipy import stats as sps  # the hand computation's normal distribution
  # two looks at 3 and 6 seeds: t = 1/2 spends 2 - 2 Phi(1.95996 / sqrt(0.5)) = 0.00557
  first, last = stats.look_alphas([3, 6])
  assert first == pytest.approx(2 - 2 * sps.norm.cdf(1.959964 / 0.5 ** 0.5), rel=1e-5)
  assert first == pytest.approx(0.00557, abs=1e-5)
  assert first + last == pytest.approx(0.05)
  assert stats.look_alphas([6]) == [stats.ALPHA]   # one look: the plain test, exactly
  # a very early look spends a tiny share, never 0 (1 - cdf cancels there; sf does not)
  early, rest = stats.look_alphas([3, 100])
  assert 0 < early < 1e-12 and rest == pytest.approx(0.05)
  # an earlier look spends less: O'Brien-Fleming keeps the early bar high
  assert stats.look_alphas([2, 6])[0] < first
