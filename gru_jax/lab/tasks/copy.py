"""The copy (memory) task (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016).

Input: 10 symbols drawn from {1..8}, then T - 1 blanks (0), a delimiter (9), and 10 more blanks;
T + 20 steps in all, one-hot over 10 categories. Target: blanks for T + 10 steps, then the 10
symbols. The loss is the cross-entropy averaged over every step. Predicting blanks and then a
uniform guess over the 8 symbols gives 10 ln 8 / (T + 20), the baseline.
"""

import math

import jax
import jax.numpy as jnp
import optax

from gru_jax.lab.tasks.common import Task, generated_held_out, positive_int

# Config defaults beside gru_jax.lab.config's base (dotted keys).
DEFAULTS = {"task.seq_len": 20, "model.features": 128, "train.num_steps": 2000}

NUM_SYMBOLS, COPY_LENGTH, DELIMITER, NUM_CATEGORIES = 8, 10, 9, 10


def baseline(delay: int) -> float:
  return COPY_LENGTH * math.log(NUM_SYMBOLS) / (delay + 2 * COPY_LENGTH)


def generate(key: jax.Array, batch_size: int, delay: int) -> dict[str, jax.Array]:
  """xs [B, T+20, 10] one-hot inputs and ys [B, T+20] integer targets in 0..8."""
  symbols = jax.random.randint(key, (batch_size, COPY_LENGTH), 1, NUM_SYMBOLS + 1)
  blanks = lambda n: jnp.zeros((batch_size, n), jnp.int32)
  delimiter = jnp.full((batch_size, 1), DELIMITER, jnp.int32)
  inputs = jnp.concatenate([symbols, blanks(delay - 1), delimiter, blanks(COPY_LENGTH)], axis=1)
  targets = jnp.concatenate([blanks(delay + COPY_LENGTH), symbols], axis=1)
  return {"xs": jax.nn.one_hot(inputs, NUM_CATEGORIES), "ys": targets}


def loss_and_metrics(outputs, batch):
  xent = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, batch["ys"]))
  tail = jnp.argmax(outputs[:, -COPY_LENGTH:], axis=-1) == batch["ys"][:, -COPY_LENGTH:]
  return xent, {"xent": xent, "symbol_accuracy": jnp.mean(tail)}


def make(config) -> Task:
  """Settings: task.seq_len (the delay T between the symbols and the delimiter), task.eval_size (examples in
  each of the fixed valid and test sets)."""
  delay = positive_int(config, "seq_len", "copy")
  valid_set, test_set = generated_held_out(lambda key, n: generate(key, n, delay), positive_int(config, "eval_size", "copy"))
  return Task(
    name="copy",
    output_features=NUM_SYMBOLS + 1,
    head="each",
    metric="xent",
    higher_is_better=False,
    baseline=baseline(delay),
    baseline_note="blanks, then a uniform guess over the 8 symbols: 10 ln 8 / (T + 20)",
    train_batch=lambda key, batch_size: generate(key, batch_size, delay),
    valid_set=valid_set,
    test_set=test_set,
    loss_and_metrics=loss_and_metrics,
  )
