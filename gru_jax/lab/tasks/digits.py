"""Sequential digits: scikit-learn's 1,797 8x8 digit images read pixel by pixel (T = 64).

The pixels (0..16, scaled to [0, 1]) enter one per step, in raster order or in a fixed random
permutation (`task.permute`). A fixed seeded split (`task.split_seed`) holds out
`task.test_fraction` of the images as test (the same images as before a valid split existed) and
`task.valid_fraction` as valid; the metric is accuracy. Chance is 1/10; logistic regression on the
flat images gets about 97%.
"""

import jax.numpy as jnp
import numpy as np
import optax

from gru_jax.lab.tasks.common import Task, random_rows, require_package, shuffled_split

# Config defaults beside gru_jax.lab.config's base (dotted keys); the splits are fixed, so no eval_size.
DEFAULTS = {"model.features": 64, "task.eval_size": 0, "train.num_steps": 1000}


def load(config) -> dict[str, dict[str, np.ndarray]]:
  """{"train", "valid", "test"}: dicts of xs [N, 64, 1] float32 and ys [N] int32.

  Settings: task.split_seed, task.test_fraction, task.valid_fraction, task.permute.
  """
  digits = require_package("sklearn.datasets", "digits").load_digits()
  images = (digits.data / 16.0).astype(np.float32)
  labels = digits.target.astype(np.int32)
  parts = shuffled_split(len(labels), config, "digits", "images")
  if config.permute:  # its own generator, so the split is the same with and without permutation
    images = images[:, np.random.default_rng([int(config.split_seed), 1]).permutation(images.shape[1])]
  return {name: {"xs": images[idx, :, None], "ys": labels[idx]} for name, idx in parts.items()}


def loss_and_metrics(outputs, batch):
  xent = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, batch["ys"]))
  return xent, {"xent": xent, "accuracy": jnp.mean(jnp.argmax(outputs, -1) == batch["ys"])}


def make(config) -> Task:
  """Settings: task.permute, task.split_seed, task.test_fraction, task.valid_fraction."""
  parts = load(config)
  train, test = parts["train"], parts["test"]
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
    train_set=train,
    valid_set=parts["valid"],
    test_set=test,
    loss_and_metrics=loss_and_metrics,
  )
