"""Sequential digits: scikit-learn's 1,797 8x8 digit images read pixel by pixel (T = 64).

The pixels (0..16, scaled to [0, 1]) enter one per step, in raster order or in a fixed random
permutation (`task.permute`). A fixed split (`task.split_seed`, `task.test_fraction`) holds out
the test images; the metric is test accuracy. Chance is 1/10; logistic regression on the flat
images gets about 97%.
"""

import jax.numpy as jnp
import numpy as np
import optax

from gru_jax.tasks.common import Task, random_rows, require_package


def load(split_seed: int, test_fraction: float, permute: bool):
  """(train, test) dicts of xs [N, 64, 1] float32 and ys [N] int32, split with `split_seed`."""
  digits = require_package("sklearn.datasets", "digits").load_digits()
  images = (digits.data / 16.0).astype(np.float32)
  labels = digits.target.astype(np.int32)
  if permute:  # its own generator, so the split is the same with and without permutation
    images = images[:, np.random.default_rng([split_seed, 1]).permutation(images.shape[1])]
  order = np.random.default_rng(split_seed).permutation(len(labels))
  num_test = int(round(test_fraction * len(labels)))
  test, train = order[:num_test], order[num_test:]
  pack = lambda idx: {"xs": images[idx, :, None], "ys": labels[idx]}
  return pack(train), pack(test)


def loss_and_metrics(outputs, batch):
  xent = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, batch["ys"]))
  return xent, {"xent": xent, "accuracy": jnp.mean(jnp.argmax(outputs, -1) == batch["ys"])}


def make(config) -> Task:
  """Settings: task.permute, task.split_seed, task.test_fraction (in (0, 1))."""
  if not 0.0 < config.test_fraction < 1.0:
    raise ValueError(f"task.test_fraction must lie in (0, 1) for the digits task; got {config.test_fraction!r}")
  train, test = load(int(config.split_seed), float(config.test_fraction), bool(config.permute))
  majority = float(np.bincount(test["ys"]).max() / len(test["ys"]))
  return Task(
    name="digits",
    output_features=10,
    head="last",
    metric="accuracy",
    higher_is_better=True,
    baseline=majority,
    baseline_note="always the test set's most common class",
    train_batch=random_rows(train),
    eval_set=test,
    loss_and_metrics=loss_and_metrics,
  )
