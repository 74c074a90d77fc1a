"""The pure steps of training and evaluation: one optimizer step, one for every seed, evaluation.

Each is a pure function of the train state (or parameters) and a key or batch, to be jitted by
the run (`gru_jax.lab.train`); the seeds of a run are a leading axis, advanced with `jax.vmap`.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gru_jax import models
from gru_jax.lab import sharding, tasks


def train_step(state, key, *, model, task, schedule, batch_size, weight_noise=0.0, mesh=None):
  """One optimizer step on the batch drawn from `key`. Pure; jit it with donate_argnums=0.

  weight_noise > 0 adds Gaussian noise of that std to every parameter for this step's forward and
  backward pass (one draw per step, Graves 2011); the gradient, taken at the noisy weights,
  updates the clean ones. With a `mesh` the batch is split over its data axis
  (`gru_jax.lab.sharding`); the result is the same, up to the order of the float sums.
  """
  data_key, dropout_key = jax.random.split(key)
  batch = task.train_batch(data_key, batch_size)
  if mesh is not None:
    batch = sharding.shard_batch(batch, mesh)

  def loss_fn(params):
    if weight_noise:
      params = add_noise(params, jax.random.fold_in(key, 2), weight_noise)
    outputs = model.apply(
      {"params": params}, batch["xs"], seq_lengths=batch.get("seq_lengths"),
      deterministic=False, rngs={"dropout": dropout_key},
    )
    return task.loss_and_metrics(outputs, batch)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {k: v for k, v in metrics.items() if k != "weight" and not k.startswith("_")}
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), learning_rate=schedule(state.step))
  return state.apply_gradients(grads=grads), metrics


def add_noise(params, key: jax.Array, std: float):
  """`params` plus independent N(0, std^2) noise on every entry."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(key, len(leaves))
  noisy = [p + std * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
  return jax.tree_util.tree_unflatten(treedef, noisy)


def train_steps(state, step_keys, stopped_at, step, *, model, task, schedule, batch_size, weight_noise=0.0, mesh=None):
  """One optimizer step for every seed of `state` (a leading seed axis), each on its own batch.

  Seed i draws its batch and dropout from `fold_in(step_keys[i], step)`, as a run of that seed
  alone would. A seed whose loss or gradient norm is not finite keeps its state, and `stopped_at`
  (-1 while training) records the step; a stopped seed stays stopped. Pure; jit it with
  donate_argnums=0.
  """
  keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(step_keys, step)
  step_one = functools.partial(train_step, model=model, task=task, schedule=schedule, batch_size=batch_size,
                               weight_noise=weight_noise, mesh=mesh)
  new, metrics = jax.vmap(step_one)(state, keys)
  live = (stopped_at < 0) & jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
  stopped_at = jnp.where((stopped_at < 0) & ~live, step + 1, stopped_at)
  return where_seeds(live, new, state), stopped_at, metrics


def where_seeds(mask, new, old):
  """Per seed (the leading axis of every leaf): `new` where mask, else `old`."""
  pick = lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)
  return jax.tree_util.tree_map(pick, new, old)


def eval_step(params, batch, *, model, task):
  outputs = model.apply({"params": params}, batch["xs"], seq_lengths=batch.get("seq_lengths"))
  loss, metrics = task.loss_and_metrics(outputs, batch)
  return dict(metrics, loss=loss)


def evaluate(params, task: tasks.Task, eval_fn, batch_size: int, split: str = "valid") -> list[dict[str, float]]:
  """Metrics over the whole "valid" or "test" set, in chunks, for each seed of `params`.

  `params` has a leading seed axis and `eval_fn(params, chunk)` returns metrics with one (e.g.
  `jax.vmap(eval_step, in_axes=(0, None))`). Chunks are weighted by their number of examples, or
  by the metric "weight" when the task reports one (e.g. the number of valid frames, for metrics
  averaged per frame).
  """
  totals: dict[str, np.ndarray] = {}
  total_weight = 0.0
  held_out = task.held_out(split)
  for start in range(0, task.size(split), batch_size):
    chunk = {k: v[start : start + batch_size] for k, v in held_out.items()}
    metrics = {k: np.asarray(v, np.float64) for k, v in jax.device_get(eval_fn(params, chunk)).items()}
    weight = metrics.pop("weight", np.full(len(metrics["loss"]), float(len(chunk["xs"]))))
    total_weight = total_weight + weight
    for name, value in metrics.items():
      totals[name] = totals.get(name, 0.0) + value * weight
  num_seeds = len(total_weight)
  return [task.finalize({name: float(total[i] / total_weight[i]) for name, total in totals.items()}) for i in range(num_seeds)]


def gate_statistics_fn(model: models.SequenceModel, task: tasks.Task, count: int, mesh=None) -> Callable:
  """`params (leading seed axis) -> {name: [seeds]}`: each layer's gate statistics
  (`gru_jax.insight.gate_statistics`) on the first `count` valid examples, jitted. Imported only
  when train.log_gates is on."""
  from gru_jax import insight  # pylint: disable=g-import-not-at-top

  linen = model.clone(front_end="linen", sequence_axis=None)  # the same parameters, on the reference path
  batch = {k: v[:count] for k, v in task.held_out("valid").items()}
  stats = lambda p: insight.gate_statistics(insight.trace(linen, p, batch["xs"], seq_lengths=batch.get("seq_lengths"))[1])
  return jax.jit(jax.vmap(stats), out_shardings=None if mesh is None else sharding.replicated(mesh))
