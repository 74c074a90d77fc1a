"""What every task provides: data, loss, metrics and the baseline it reports against."""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import specs

Batch = dict[str, Any]  # "xs" [B, T, D], "ys" targets, optionally "seq_lengths" [B]

# Held-out data of the generated tasks comes from these seeds, whatever the run's seed, so every run
# is validated and tested on the same examples (the test seed is the one used before a valid split
# existed, so earlier test figures stay comparable).
TEST_SEED = 2**31 - 1
VALID_SEED = 2**31 - 2
SPLITS = ("train", "valid", "test")


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
    valid_set: the fixed validation data, numpy arrays: training evaluates on it and selects the
      checkpoint that is best on it.
    test_set: the fixed test data, numpy arrays: evaluated once, at the end, at the parameters
      that were best on valid (and at the final step). `baseline` is scored on it.
    loss_and_metrics: `(outputs, batch) -> (loss, {name: value})`, batch means; an optional
      "weight" entry (e.g. the number of valid frames) weights the batch in evaluation, and
      entries whose names start with "_" are totals for `finalize`, not logged during training.
    vocab_size: for token inputs (xs integer ids [B, T]), the number of ids; None for float inputs.
    finalize: turns the evaluation's averaged metrics into the reported ones (e.g. F1 from
      true/false positive fractions).
    vocab: for token tasks, token -> id (ids 0 and 1 are padding and unknown); used to sample
      and to inspect a text.
    classes: for classification tasks, the name of each output class (in output order).
    train_set: the whole training data, for tasks that draw batches from a fixed set (None for
      generated data and for text read in random windows); scored at the end, at the parameters
      best on valid, so that train and test can be compared.
  """

  name: str
  output_features: int
  head: str
  metric: str
  higher_is_better: bool
  baseline: float
  baseline_note: str
  train_batch: Callable[[jax.Array, int], Batch]
  valid_set: Batch
  test_set: Batch
  loss_and_metrics: Callable[[jax.Array, Batch], tuple[jax.Array, dict[str, jax.Array]]]
  vocab_size: int | None = None
  finalize: Callable[[dict[str, float]], dict[str, float]] = lambda metrics: metrics
  vocab: dict[str, int] | None = None
  train_set: Batch | None = None
  classes: tuple[str, ...] | None = None

  def held_out(self, split: str) -> Batch:
    """The "valid" or "test" set, or the fixed "train" set where the task has one."""
    sets = {"train": self.train_set, "valid": self.valid_set, "test": self.test_set}
    if sets.get(split) is None:
      raise ValueError(f"split={split!r} is not an evaluation split of the {self.name} task; expected one of "
                       f"{[k for k in SPLITS if sets[k] is not None]}")
    return sets[split]

  def size(self, split: str) -> int:
    return int(np.shape(self.held_out(split)["xs"])[0])


def positive_int(config: Any, key: str, owner: str) -> int:
  value = config[key]
  if not specs.is_int(value) or value <= 0:
    raise ValueError(f"task.{key} must be a positive integer for the {owner} task; got {value!r}")
  return int(value)


def fraction(config: Any, key: str, owner: str) -> float:
  value = config[key]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
    raise ValueError(f"task.{key} must lie in (0, 1) for the {owner} task; got {value!r}")
  return float(value)


def flag(config: Any, key: str, owner: str) -> bool:
  value = config[key]
  if not isinstance(value, bool):
    raise ValueError(f"task.{key} must be True or False for the {owner} task; got {value!r}")
  return value


def first_of_each(keys: list) -> list[int]:
  """Indices of the first item with each key, in order: equal keys, one item."""
  seen, kept = set(), []
  for i, key in enumerate(keys):
    if key not in seen:
      seen.add(key)
      kept.append(i)
  return kept


def split_fractions(config: Any, owner: str) -> tuple[float, float]:
  """(task.test_fraction, task.valid_fraction), each in (0, 1), summing to less than 1."""
  test_fraction, valid_fraction = fraction(config, "test_fraction", owner), fraction(config, "valid_fraction", owner)
  if test_fraction + valid_fraction >= 1.0:
    raise ValueError(f"task.test_fraction + task.valid_fraction must be below 1 for the {owner} task; got "
                     f"{test_fraction} + {valid_fraction}")
  return test_fraction, valid_fraction


def shuffled_split(n: int, config: Any, owner: str, what: str = "rows") -> dict[str, np.ndarray]:
  """Sorted indices of the train / valid / test parts of n items after a seeded shuffle.

  The shuffle is `task.split_seed`'s permutation; its first `task.test_fraction` is test (the same
  test items as before a valid split existed), the next `task.valid_fraction` valid, the rest train.
  Every part must be non-empty.
  """
  test_fraction, valid_fraction = split_fractions(config, owner)
  order = np.random.default_rng(int(config.split_seed)).permutation(n)
  num_test = max(1, int(round(test_fraction * n)))
  num_valid = max(1, int(round(valid_fraction * n)))
  if num_test + num_valid >= n:
    raise DataError(f"{n} {what} are too few to hold out task.test_fraction={test_fraction} and "
                    f"task.valid_fraction={valid_fraction} and train on the rest")
  return {"train": np.sort(order[num_test + num_valid :]), "valid": np.sort(order[num_test : num_test + num_valid]),
          "test": np.sort(order[:num_test])}


def generated_held_out(generate: Callable[[jax.Array, int], Batch], size: int) -> tuple[Batch, Batch]:
  """(valid, test) sets of `size` examples of a generated task, from VALID_SEED and TEST_SEED."""
  draw = lambda seed: {k: np.asarray(v) for k, v in generate(jax.random.key(seed), size).items()}
  return draw(VALID_SEED), draw(TEST_SEED)


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
