"""Intervals and orderings over seeds, against the textbook formulas."""

import math

import numpy as np
import pytest

from gru_jax.lab import stats


def test_interval_is_students_t_over_the_values():
  values = [8.0, 9.0, 8.5, 8.2, 8.9]
  low, high = stats.interval(values)
  half = 2.7764451051977987 * np.std(values, ddof=1) / math.sqrt(5)  # t(0.975, 4)
  assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half), rel=1e-12)
  with pytest.raises(ValueError, match="at least 2 values"):
    stats.interval([1.0])


def test_welch_matches_the_formula_and_orderings_say_which_is_better():
  a, b = np.array([1.0, 1.2, 0.9, 1.1]), np.array([2.0, 2.5, 1.8, 2.2, 2.4])
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  t, p = stats.welch(a, b)
  assert t == pytest.approx((a.mean() - b.mean()) / math.sqrt(va + vb))
  assert 0 < p < 0.01
  assert stats.ordering("A", a, "B", b, higher_is_better=False).startswith("A better than B")
  assert stats.ordering("A", a, "B", b, higher_is_better=True).startswith("B better than A")
  assert "not resolved" in stats.ordering("A", a, "C", a + 0.01, higher_is_better=False)


def test_mean_std_ci_formats_the_interval():
  values = [8.0, 9.0, 8.5, 8.2, 8.9]
  low, high = stats.interval(values)
  assert stats.mean_std_ci(values) == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f} [{low:.2f}, {high:.2f}]"
  assert stats.mean_std_ci([8.123], digits=1) == "8.1 (1 seed)" and stats.mean_std_ci([]) == "not run yet"


def test_verdict_says_which_way_a_resolved_difference_goes():
  a, b = [1.0, 1.2, 0.9, 1.1], [2.0, 2.5, 1.8, 2.2, 2.4]
  assert stats.verdict(a, b, higher_is_better=False)[0] == "better"
  assert stats.verdict(a, b, higher_is_better=True)[0] == "worse"
  assert stats.verdict(a, [x + 0.01 for x in a], higher_is_better=False)[0] == "not resolved"
