"""What every task provides: data, loss, metrics and the baseline it reports against."""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, Any]  # "xs" [B, T, D], "ys" targets, optionally "seq_lengths" [B]

# Held-out data of the generated tasks comes from this seed, whatever the run's seed, so every run
# is evaluated on the same examples.
EVAL_SEED = 2**31 - 1


class DataError(ValueError):
  """A data set could not be loaded or does not fit the task's settings."""


@dataclasses.dataclass(frozen=True)
class Task:
  """A supervised sequence task.

  Attributes:
    name: registry name.
    output_features: width of the model's output.
    head: "last" (one output per sequence, at its last valid step) or "each" (one per step).
    metric: name of the task metric in `loss_and_metrics`' output.
    higher_is_better: direction of `metric`.
    baseline: the metric a trivial predictor reaches; `baseline_note` says which.
    train_batch: `(key, batch_size) -> Batch`, pure and jittable; the data order of a run is a
      function of the step alone, so a resumed run sees what an uninterrupted one would.
    eval_set: the fixed held-out data, numpy arrays.
    loss_and_metrics: `(outputs, batch) -> (loss, {name: value})`, batch means; an optional
      "weight" entry (e.g. the number of valid frames) weights the batch in evaluation, and
      entries whose names start with "_" are totals for `finalize`, not logged during training.
    vocab_size: for token inputs (xs integer ids [B, T]), the number of ids; None for float inputs.
    finalize: turns the evaluation's averaged metrics into the reported ones (e.g. F1 from
      true/false positive fractions).
    vocab: for token tasks, token -> id (ids 0 and 1 are padding and unknown); used to sample.
  """

  name: str
  output_features: int
  head: str
  metric: str
  higher_is_better: bool
  baseline: float
  baseline_note: str
  train_batch: Callable[[jax.Array, int], Batch]
  eval_set: Batch
  loss_and_metrics: Callable[[jax.Array, Batch], tuple[jax.Array, dict[str, jax.Array]]]
  vocab_size: int | None = None
  finalize: Callable[[dict[str, float]], dict[str, float]] = lambda metrics: metrics
  vocab: dict[str, int] | None = None

  @property
  def eval_size(self) -> int:
    return int(np.shape(self.eval_set["xs"])[0])


def positive_int(config: Any, key: str, owner: str) -> int:
  value = config[key]
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
    raise ValueError(f"task.{key} must be a positive integer for the {owner} task; got {value!r}")
  return int(value)


def require_package(module: str, task: str, extra: str = "data"):
  """Imports `module`, or raises a DataError with the exact install command."""
  import importlib  # pylint: disable=g-import-not-at-top

  try:
    return importlib.import_module(module)
  except ImportError as e:
    package = {"sklearn": "scikit-learn"}.get(module.split(".")[0], module.split(".")[0])
    raise DataError(f"the {task} task needs {package}: pip install {package} (or: pip install -e '.[{extra}]')") from e


def random_rows(arrays: Batch) -> Callable[[jax.Array, int], Batch]:
  """A `train_batch` that draws batch_size rows, with replacement, of the same-length `arrays`."""
  on_device = {k: jnp.asarray(v) for k, v in arrays.items()}
  num_rows = next(iter(on_device.values())).shape[0]

  def train_batch(key, batch_size):
    idx = jax.random.randint(key, (batch_size,), 0, num_rows)
    return {k: v[idx] for k, v in on_device.items()}

  return train_batch
