"""The adding problem (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016).

Each input step has two channels: a value drawn from U[0, 1] and a marker. Exactly one marker is
set in the first half of the sequence and one in the second; the target is the sum of the two
marked values. Predicting 1 whatever the input gives MSE Var(U1 + U2) = 1/6 ≈ 0.167, the baseline.
"""

import jax
import jax.numpy as jnp

from gru_jax.lab.tasks.common import Task, generated_held_out, positive_int

# Config defaults beside gru_jax.lab.config's base, which is this task's already.
DEFAULTS: dict = {}

BASELINE_MSE = 1.0 / 6.0


def generate(key: jax.Array, batch_size: int, seq_len: int) -> dict[str, jax.Array]:
  """xs [B, T, 2] (value, marker) and ys [B, 1] (the sum of the two marked values)."""
  k_values, k_first, k_second = jax.random.split(key, 3)
  values = jax.random.uniform(k_values, (batch_size, seq_len))
  half = seq_len // 2
  first = jax.random.randint(k_first, (batch_size,), 0, half)
  second = jax.random.randint(k_second, (batch_size,), half, seq_len)
  markers = jax.nn.one_hot(first, seq_len) + jax.nn.one_hot(second, seq_len)
  xs = jnp.stack([values, markers], axis=-1)
  ys = jnp.sum(values * markers, axis=-1, keepdims=True)
  return {"xs": xs, "ys": ys}


def loss_and_metrics(outputs, batch):
  mse = jnp.mean((outputs - batch["ys"]) ** 2)
  return mse, {"mse": mse}


def make(config) -> Task:
  """Settings: task.seq_len (T >= 2), task.eval_size (examples in
  each of the fixed valid and test sets)."""
  seq_len = positive_int(config, "seq_len", "adding")
  if seq_len < 2:
    raise ValueError(f"task.seq_len must be at least 2 for the adding task (one marker per half); got {seq_len}")
  valid_set, test_set = generated_held_out(lambda key, n: generate(key, n, seq_len), positive_int(config, "eval_size", "adding"))
  return Task(
    name="adding",
    output_features=1,
    head="last",
    metric="mse",
    higher_is_better=False,
    baseline=BASELINE_MSE,
    baseline_note="predict 1 always: Var(U1 + U2) = 1/6",
    train_batch=lambda key, batch_size: generate(key, batch_size, seq_len),
    valid_set=valid_set,
    test_set=test_set,
    loss_and_metrics=loss_and_metrics,
  )
