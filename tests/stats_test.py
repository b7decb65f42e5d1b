"""Statistics over a grid's runs, against hand-computed values."""
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


def test_differences_without_spread_need_the_sign_test():
  # 4 equal positive pairs: the t interval would be a point, but a sign test
  # gives p = 2 / 2**4 = 0.125: no verdict. 6 of them: p = 0.03125.
  four = stats.paired_difference([0.0] * 4, [0.5] * 4)
  assert four.ci95 is None and "sign test, p = 0.125" in four.method
  assert stats.verdict(four.ci95, "higher") == "inconclusive"
  six = stats.paired_difference([0.0] * 6, [0.5] * 6)
  assert six.ci95 == (0.5, 0.5) and stats.verdict(six.ci95, "higher") == "reproduced"


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
