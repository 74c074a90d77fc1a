"""Uncertainty over seeds: t intervals for a mean, and Welch's t-test for an ordering of two means."""

import math

import numpy as np

try:
  from scipy import stats as _scipy_stats
except ImportError as e:  # scipy comes with the lab extra
  from gru_jax.lab import extras

  raise extras.lab_missing("gru_jax.lab.stats", e) from e

LEVEL = 0.95  # confidence level of every interval
ALPHA = 0.05  # two-sided significance level of every ordering


def interval(values, level: float = LEVEL) -> tuple[float, float]:
  """The `level` confidence interval of the mean of `values` (Student's t, sample std); needs at
  least 2 values."""
  values = np.asarray(values, np.float64)
  if values.size < 2:
    raise ValueError(f"an interval needs at least 2 values; got {values.size}")
  half = _scipy_stats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
  return float(values.mean() - half), float(values.mean() + half)


def welch(a, b) -> tuple[float, float]:
  """(t, two-sided p) of Welch's t-test that the means of `a` and `b` differ (unequal variances)."""
  result = _scipy_stats.ttest_ind(np.asarray(a, np.float64), np.asarray(b, np.float64), equal_var=False)
  return float(result.statistic), float(result.pvalue)


def verdict(a, b, higher_is_better: bool, alpha: float = ALPHA) -> tuple[str, float, float]:
  """("better", "worse" or "not resolved", t, p): `a` against `b` by Welch's test at `alpha`;
  better is lower unless `higher_is_better`."""
  t, p = welch(a, b)
  if not math.isfinite(p) or p >= alpha:
    return "not resolved", t, p
  return ("better" if (np.mean(a) > np.mean(b)) == higher_is_better else "worse"), t, p


def ordering(name_a: str, a, name_b: str, b, higher_is_better: bool, alpha: float = ALPHA) -> str:
  """"A better than B (p = ...)" when Welch's test resolves the difference at `alpha`, else
  "A vs B: not resolved (p = ...)"; better is lower unless `higher_is_better`."""
  found, t, p = verdict(a, b, higher_is_better, alpha)
  if found == "not resolved":
    return f"{name_a} vs {name_b}: not resolved (Welch's t = {t:.2f}, p = {p:.2g})"
  first, second = (name_a, name_b) if found == "better" else (name_b, name_a)
  return f"{first} better than {second} (Welch's t = {abs(t):.2f}, p = {p:.2g})"


def mean_std_ci(values, digits: int = 2) -> str:
  """"mean ± sample std [low, high]" (the `LEVEL` t interval) of `values`; "x (1 seed)" for one
  value, "not run yet" for none."""
  values = list(values)
  if len(values) < 2:
    return f"{values[0]:.{digits}f} (1 seed)" if values else "not run yet"
  low, high = interval(values)
  return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
