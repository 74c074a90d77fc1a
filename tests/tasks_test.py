"""Each task's data, loss and baseline."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import base
from gru_jax import tasks
from gru_jax.tasks import adding, copy, digits


def task_config(task_name, **overrides):
  c = base.get_config(task_name).task
  c.update(overrides)
  return c


def test_adding_batches_follow_the_definition():
  batch = jax.device_get(adding.generate(jax.random.key(0), 64, 10))
  values, markers = batch["xs"][..., 0], batch["xs"][..., 1]
  assert batch["xs"].shape == (64, 10, 2) and batch["ys"].shape == (64, 1)
  assert ((values >= 0) & (values < 1)).all()
  np.testing.assert_array_equal(markers[:, :5].sum(1), 1)  # one marker in each half
  np.testing.assert_array_equal(markers[:, 5:].sum(1), 1)
  np.testing.assert_allclose(batch["ys"][:, 0], (values * markers).sum(1), rtol=1e-6)


def test_adding_baseline_is_what_predicting_one_scores():
  task = tasks.make(task_config("adding", seq_len=20, eval_size=20000))
  batch = {k: jnp.asarray(v) for k, v in task.eval_set.items()}
  _, metrics = task.loss_and_metrics(jnp.ones_like(batch["ys"]), batch)
  assert abs(float(metrics["mse"]) - task.baseline) < 0.01
  assert task.baseline == pytest.approx(1 / 6)


def test_copy_layout_and_baseline():
  delay = 7
  batch = jax.device_get(copy.generate(jax.random.key(1), 8, delay))
  inputs, targets = batch["xs"].argmax(-1), batch["ys"]
  assert inputs.shape == targets.shape == (8, delay + 20)
  symbols = inputs[:, :10]
  assert ((symbols >= 1) & (symbols <= 8)).all()
  np.testing.assert_array_equal(inputs[:, 10 : 10 + delay - 1], 0)
  np.testing.assert_array_equal(inputs[:, delay + 9], copy.DELIMITER)
  np.testing.assert_array_equal(targets[:, : delay + 10], 0)
  np.testing.assert_array_equal(targets[:, -10:], symbols)
  # the baseline is the loss of: certain blanks, then uniform over the 8 symbols
  logits = np.full((8, delay + 20, 9), -1e9, np.float32)
  logits[:, : delay + 10, 0] = 0
  logits[:, -10:, 1:] = 0
  loss, _ = copy.loss_and_metrics(jnp.asarray(logits), {k: jnp.asarray(v) for k, v in batch.items()})
  assert float(loss) == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-5)
  assert tasks.make(task_config("copy", seq_len=delay)).baseline == pytest.approx(10 * math.log(8) / (delay + 20))


def test_digits_split_is_fixed_disjoint_and_scaled():
  train, test = digits.load(split_seed=0, test_fraction=0.2, permute=False)
  assert train["xs"].shape[1:] == (64, 1) and len(train["ys"]) + len(test["ys"]) == 1797
  assert 0.0 <= train["xs"].min() and train["xs"].max() <= 1.0
  rows = lambda d: {r.tobytes() for r in d["xs"][:, :, 0]}
  assert len(test["ys"]) == 359
  again, _ = digits.load(split_seed=0, test_fraction=0.2, permute=False)
  np.testing.assert_array_equal(again["xs"], train["xs"])
  other, _ = digits.load(split_seed=1, test_fraction=0.2, permute=False)
  assert not np.array_equal(other["ys"], train["ys"])
  permuted, permuted_test = digits.load(split_seed=0, test_fraction=0.2, permute=True)
  assert rows(permuted) != rows(train)  # pixels reordered ...
  np.testing.assert_allclose(np.sort(permuted["xs"], axis=1), np.sort(train["xs"], axis=1))  # ... the same pixels
  np.testing.assert_array_equal(permuted_test["ys"], test["ys"])  # ... and the same split


def test_train_batches_are_a_function_of_the_key():
  for name in ("adding", "copy", "digits"):
    task = tasks.make(task_config(name, seq_len=6, eval_size=8))
    a, b = task.train_batch(jax.random.key(3), 4), task.train_batch(jax.random.key(3), 4)
    c = task.train_batch(jax.random.key(4), 4)
    np.testing.assert_array_equal(a["xs"], b["xs"])
    assert not np.array_equal(a["xs"], c["xs"])


@pytest.mark.parametrize(
  "name,overrides,message",
  [
    ("adding", dict(name="addition"), r"task.name='addition' is not a task; expected one of \['adding', 'copy', 'digits'\]"),
    ("adding", dict(seq_len=-3), r"task.seq_len must be a positive integer for the adding task; got -3"),
    ("adding", dict(seq_len=1), r"task.seq_len must be at least 2"),
    ("copy", dict(eval_size=0), r"task.eval_size must be a positive integer for the copy task"),
    ("digits", dict(test_fraction=1.5), r"task.test_fraction must lie in \(0, 1\)"),
  ],
)
def test_bad_task_settings_name_the_key(name, overrides, message):
  with pytest.raises(ValueError, match=message):
    tasks.make(task_config(name, **overrides))


def test_unknown_task_in_config_arg():
  with pytest.raises(ValueError, match=r"unknown task 'cpy' after ':'"):
    base.get_config("cpy")
  assert isinstance(base.get_config("copy"), ml_collections.ConfigDict)
