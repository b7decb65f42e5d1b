"""Statistics over a grid's runs, against hand-computed values."""
import pytest

from warmup_research import stats


def test_lr_sensitivity_hand_computed():
  # capped losses [3.0, 2.5, 5.0 (diverged -> initial), 5.0 (above initial)]
  s = stats.lr_sensitivity([1e-3, 1e-2, 1e-1, 1.0], [3.0, 2.5, float("nan"), 6.0], 5.0)
  assert s == pytest.approx((3.0 + 2.5 + 5.0 + 5.0) / 4 - 2.5)
  assert stats.lr_sensitivity([1, 2], [2.0, 2.0], 5.0) == 0.0
