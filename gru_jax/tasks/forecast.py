"""Forecasting a univariate series from statsmodels' bundled data sets.

Series (`task.series`): "sunspots" (yearly sunspot activity, 1700-2008, 309 values) and "co2"
(weekly Mauna Loa CO2, 2,284 values; its 59 missing values are interpolated linearly). The
input is a window of `task.seq_len` values and the target the value `task.horizon` steps after
the window's last. The series is split in time: windows whose target lies in the last
`task.test_fraction` of the series are the test set, the others train. Values are normalised
with the mean and standard deviation of the train span only. The metric is MSE in normalised
units; the baseline is persistence (the window's last value).
"""

import jax.numpy as jnp
import numpy as np

from gru_jax.tasks.common import DataError, Task, positive_int, random_rows, require_package


def _sunspots(sm) -> np.ndarray:
  return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


def _co2(sm) -> np.ndarray:
  return sm.datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both").to_numpy(np.float64)


SERIES = {"sunspots": _sunspots, "co2": _co2}


def windows(series: np.ndarray, seq_len: int, horizon: int, test_fraction: float):
  """(train, test) dicts of xs [N, seq_len, 1] and ys [N, 1], normalised on the train span."""
  n = len(series)
  first_test = n - int(round(test_fraction * n))
  targets = np.arange(seq_len + horizon - 1, n)
  if len(targets) == 0 or targets[0] >= first_test:
    raise DataError(f"the series has {n} values: too few for windows of task.seq_len={seq_len} "
                    f"and task.horizon={horizon} with a train span of {first_test}")
  span = series[:first_test]
  mean, std = span.mean(), span.std() or 1.0
  z = ((series - mean) / std).astype(np.float32)
  xs = np.stack([z[t - horizon - seq_len + 1 : t - horizon + 1] for t in targets])[..., None]
  ys = z[targets][:, None]
  is_test = targets >= first_test
  return {"xs": xs[~is_test], "ys": ys[~is_test]}, {"xs": xs[is_test], "ys": ys[is_test]}


def loss_and_metrics(outputs, batch):
  mse = jnp.mean((outputs - batch["ys"]) ** 2)
  return mse, {"mse": mse}


def make(config) -> Task:
  """Settings: task.series, task.seq_len, task.horizon, task.test_fraction."""
  if config.series not in SERIES:
    raise ValueError(f"task.series={config.series!r} is not a series; expected one of {sorted(SERIES)}")
  if not 0.0 < config.test_fraction < 1.0:
    raise ValueError(f"task.test_fraction must lie in (0, 1) for the forecast task; got {config.test_fraction!r}")
  seq_len, horizon = positive_int(config, "seq_len", "forecast"), positive_int(config, "horizon", "forecast")
  sm = require_package("statsmodels.api", "forecast")
  train, test = windows(SERIES[config.series](sm), seq_len, horizon, float(config.test_fraction))
  if len(test["ys"]) == 0:
    raise DataError(f"task.test_fraction={config.test_fraction} leaves no test windows in the {config.series} series")
  persistence = float(np.mean((test["xs"][:, -1] - test["ys"]) ** 2))
  return Task(
    name="forecast",
    output_features=1,
    head="last",
    metric="mse",
    higher_is_better=False,
    baseline=persistence,
    baseline_note="persistence: the window's last value",
    train_batch=random_rows(train),
    eval_set=test,
    loss_and_metrics=loss_and_metrics,
  )
