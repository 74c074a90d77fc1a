"""Forecasting a univariate series from statsmodels' bundled data sets.

Series (`task.series`): "sunspots" (yearly sunspot activity, 1700-2008, 309 values) and "co2"
(weekly Mauna Loa CO2, 2,284 values; its 59 missing values are interpolated linearly). The
input is a window of `task.seq_len` values and the target the value `task.horizon` steps after
the window's last. The series is split in time: windows whose target lies in the last
`task.test_fraction` of the series are the test set, those whose target lies in the
`task.valid_fraction` before it the valid set, the others train. Values are normalised with the
mean and standard deviation of the train span only. The metric is MSE in normalised
units; the baseline is persistence (the window's last value).
"""

import jax.numpy as jnp
import numpy as np

from gru_jax.lab.tasks.common import DataError, Task, positive_int, random_rows, require_package, split_fractions

# Config defaults beside gru_jax.lab.config's base (dotted keys); the splits are fixed, so no eval_size.
DEFAULTS = {"model.features": 32, "task.seq_len": 20, "task.eval_size": 0, "train.batch_size": 32, "train.num_steps": 1000}


def _sunspots(sm) -> np.ndarray:
  return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


def _co2(sm) -> np.ndarray:
  return sm.datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both").to_numpy(np.float64)


SERIES = {"sunspots": _sunspots, "co2": _co2}


def windows(series: np.ndarray, seq_len: int, horizon: int, valid_fraction: float, test_fraction: float):
  """{"train", "valid", "test"}: dicts of xs [N, seq_len, 1] and ys [N, 1], normalised on the train
  span; a window belongs to the part its target lies in."""
  n = len(series)
  first_test = n - int(round(test_fraction * n))
  first_valid = first_test - int(round(valid_fraction * n))
  targets = np.arange(seq_len + horizon - 1, n)
  if len(targets) == 0 or targets[0] >= first_valid:
    raise DataError(f"the series has {n} values: too few for windows of task.seq_len={seq_len} "
                    f"and task.horizon={horizon} with a train span of {first_valid}")
  span = series[:first_valid]
  mean, std = span.mean(), span.std() or 1.0
  z = ((series - mean) / std).astype(np.float32)
  xs = np.stack([z[t - horizon - seq_len + 1 : t - horizon + 1] for t in targets])[..., None]
  ys = z[targets][:, None]
  part = np.where(targets >= first_test, 2, np.where(targets >= first_valid, 1, 0))
  return {name: {"xs": xs[part == i], "ys": ys[part == i]} for i, name in enumerate(("train", "valid", "test"))}


def loss_and_metrics(outputs, batch):
  mse = jnp.mean((outputs - batch["ys"]) ** 2)
  return mse, {"mse": mse}


def make(config) -> Task:
  """Settings: task.series, task.seq_len, task.horizon, task.valid_fraction, task.test_fraction."""
  if config.series not in SERIES:
    raise ValueError(f"task.series={config.series!r} is not a series; expected one of {sorted(SERIES)}")
  test_fraction, valid_fraction = split_fractions(config, "forecast")
  seq_len, horizon = positive_int(config, "seq_len", "forecast"), positive_int(config, "horizon", "forecast")
  sm = require_package("statsmodels.api", "forecast")
  parts = windows(SERIES[config.series](sm), seq_len, horizon, valid_fraction, test_fraction)
  for name, key in (("test", "test_fraction"), ("valid", "valid_fraction")):
    if len(parts[name]["ys"]) == 0:
      raise DataError(f"task.{key}={config[key]} leaves no {name} windows in the {config.series} series")
  train, test = parts["train"], parts["test"]
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
    train_set=train,
    valid_set=parts["valid"],
    test_set=test,
    loss_and_metrics=loss_and_metrics,
  )
