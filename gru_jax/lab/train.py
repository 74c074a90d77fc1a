"""Training: a pure train_step and eval_step, and train_and_evaluate(config, workdir).

A run's workdir holds config.json, metrics.jsonl (one JSON object per log or evaluation, with
"split": "train", "valid" or "test"), TensorBoard events under tb/, orbax checkpoints under
checkpoints/ and, when it ends, summary.json. Training evaluates on the task's valid set and keeps
the parameters that were best on it (in every checkpoint, beside the train state); at the end the
test set is scored once at those parameters ("at": "best_valid") and once at the final ones
("at": "final"), and a task's fixed train set, where it has one, at the former ("train_set").
Running again on the same workdir resumes from the latest checkpoint; the data and dropout keys of
step s are `fold_in(key, s)`, so a resumed run ends where an uninterrupted one would. With config.num_seeds > 1 the seeds train as one program (a leading seed axis on the
state, `jax.vmap` over it) and each seed's records and summary go to workdir/seed=<s>/.
"""

import functools
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from gru_jax import models, specs
from gru_jax.lab import checkpoints, extras, files, records, sharding, tasks
from gru_jax.lab.checkpoints import CheckpointError

try:
  import ml_collections
  import orbax.checkpoint as ocp
  import tensorboardX  # noqa: F401  (used by the writer; checked here so a missing extra fails early)
  import tqdm  # noqa: F401
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.train", e) from e


class ConfigError(ValueError):
  """A config key holds an unknown name or an impossible value."""


class NonFiniteError(FloatingPointError):
  """A loss or gradient became NaN or infinite."""


OPTIMIZERS = {
  "adam": lambda lr, opt: optax.adam(lr),
  "adamw": lambda lr, opt: optax.adamw(lr, weight_decay=opt.weight_decay),
  "rmsprop": lambda lr, opt: optax.rmsprop(lr, decay=0.9, momentum=opt.momentum or None),
  "sgd": lambda lr, opt: optax.sgd(lr, momentum=opt.momentum or None),
}


def make_schedule(opt, num_steps: int) -> optax.Schedule:
  """opt.schedule: "constant" (after a linear warmup) or "warmup_cosine" (down to 0 at num_steps)."""
  if opt.schedule == "constant":
    if not opt.warmup_steps:
      return optax.constant_schedule(opt.learning_rate)
    warmup = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
    return optax.join_schedules([warmup, optax.constant_schedule(opt.learning_rate)], [opt.warmup_steps])
  if opt.schedule == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, opt.learning_rate, opt.warmup_steps, num_steps)
  raise ConfigError(f"opt.schedule={opt.schedule!r} is not a schedule; expected one of ['constant', 'warmup_cosine']")


def make_optimizer(opt, num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """optax chain: global-norm clipping (when opt.clip_norm > 0), then the named optimizer."""
  if opt.name not in OPTIMIZERS:
    raise ConfigError(f"opt.name={opt.name!r} is not an optimizer; expected one of {sorted(OPTIMIZERS)}")
  schedule = make_schedule(opt, num_steps)
  parts = [optax.clip_by_global_norm(opt.clip_norm)] if opt.clip_norm > 0 else []
  return optax.chain(*parts, OPTIMIZERS[opt.name](schedule, opt)), schedule


def check_config(config) -> None:
  """Raises ConfigError, naming the key, for values no run could use."""

  def require(ok: bool, key: str, expected: str):
    if not ok:
      value = config
      for part in key.split("."):
        value = value[part]
      raise ConfigError(f"{key} must be {expected}; got {value!r}")

  is_int = specs.is_int
  for key in ("model.features", "model.num_layers", "model.embed_features", "train.num_steps", "train.batch_size", "train.log_every",
              "train.eval_batch_size", "train.keep_checkpoints"):
    section, name = key.split(".")
    require(is_int(config[section][name]) and config[section][name] > 0, key, "a positive integer")
  for key in ("train.eval_every", "train.checkpoint_every", "opt.warmup_steps"):
    section, name = key.split(".")
    require(is_int(config[section][name]) and config[section][name] >= 0, key, "an integer >= 0 (0: never)")
  for key in ("dropout", "recurrent_dropout", "zoneout"):
    rate = config.model[key]
    require(isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0.0 <= rate < 1.0, f"model.{key}", "in [0, 1)")
  require(config.opt.learning_rate > 0, "opt.learning_rate", "positive")
  require(config.opt.clip_norm >= 0, "opt.clip_norm", ">= 0 (0: no clipping)")
  require(config.opt.weight_noise >= 0, "opt.weight_noise", ">= 0 (0: none)")
  require(is_int(config.train.early_stopping) and config.train.early_stopping >= 0, "train.early_stopping",
          "an integer >= 0 (0: never)")
  if config.train.early_stopping and not config.train.eval_every:
    raise ConfigError("train.early_stopping needs train.eval_every > 0 (it counts evaluations on valid)")
  require(isinstance(config.train.log_gates, bool), "train.log_gates", "True or False")
  require(is_int(config.seed), "seed", "an integer")
  require(is_int(config.num_seeds) and config.num_seeds > 0, "num_seeds", "a positive integer")
  if config.opt.warmup_steps >= config.train.num_steps:
    raise ConfigError(
      f"opt.warmup_steps ({config.opt.warmup_steps}) must be smaller than train.num_steps ({config.train.num_steps})"
    )


def build(config) -> tuple[tasks.Task, models.SequenceModel, optax.GradientTransformation, optax.Schedule]:
  """The task, model and optimizer a config describes; every bad value is a ConfigError."""
  check_config(config)
  try:
    task = tasks.make(config.task)
    model_kwargs = config.model.to_dict()
    model = models.SequenceModel(
      **model_kwargs, output_features=task.output_features, head=task.head, input_vocab=task.vocab_size
    )
    tx, schedule = make_optimizer(config.opt, config.train.num_steps)
  except tasks.DataError:
    raise
  except (ValueError, TypeError) as e:
    raise ConfigError(str(e)) from e
  return task, model, tx, schedule


def create_train_state(model, tx, task: tasks.Task, key: jax.Array) -> train_state.TrainState:
  example = {k: v[:1] for k, v in task.valid_set.items()}
  params = model.init(key, example["xs"], seq_lengths=example.get("seq_lengths"))["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


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
  return _where_seeds(live, new, state), stopped_at, metrics


def _where_seeds(mask, new, old):
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


class _StopRequests:
  """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and exits. A second SIGINT aborts."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _progress(total: int, initial: int):
  """A tqdm bar on a terminal; None (plain log lines) otherwise."""
  if not sys.stderr.isatty():
    return None
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _format(metrics: dict[str, float]) -> str:
  return " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if not k.startswith("gates/"))


def gate_statistics_fn(model: models.SequenceModel, task: tasks.Task, count: int, mesh=None) -> Callable:
  """`params (leading seed axis) -> {name: [seeds]}`: each layer's gate statistics
  (`gru_jax.insight.gate_statistics`) on the first `count` valid examples, jitted. Imported only
  when train.log_gates is on."""
  from gru_jax import insight  # pylint: disable=g-import-not-at-top

  linen = model.clone(front_end="linen", sequence_axis=None)  # the same parameters, on the reference path
  batch = {k: v[:count] for k, v in task.held_out("valid").items()}
  stats = lambda p: insight.gate_statistics(insight.trace(linen, p, batch["xs"], seq_lengths=batch.get("seq_lengths"))[1])
  return jax.jit(jax.vmap(stats), out_shardings=None if mesh is None else sharding.replicated(mesh))


def run_seeds(config) -> list[int]:
  """The seeds a config trains: config.seed, config.seed + 1, ..., config.num_seeds of them."""
  return [config.seed + i for i in range(config.num_seeds)]


def seed_keys(config) -> tuple[jax.Array, jax.Array]:
  """(init keys, step keys), one per seed: `split(key(seed))`, as a run of that seed alone."""
  pairs = [jax.random.split(jax.random.key(s)) for s in run_seeds(config)]
  return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


def default_seed_dirs(config, workdir: str) -> list[str]:
  """Where each seed's records and summary go: the workdir for one seed, workdir/seed=<s> for several."""
  seeds = run_seeds(config)
  return [workdir] if len(seeds) == 1 else [os.path.join(workdir, f"seed={s}") for s in seeds]


def initial_checkpoint(config, task, model, tx) -> dict[str, Any]:
  """The checkpointed item of a fresh run, every leaf with a leading seed axis: the train state,
  the parameters best on valid so far, and the step at which each seed stopped (-1: training)."""
  init_keys, _ = seed_keys(config)
  state = jax.vmap(lambda key: create_train_state(model, tx, task, key))(init_keys)
  return {"state": state, "best_params": _copy(state.params), "stopped_at": jnp.full((config.num_seeds,), -1, jnp.int32)}


def initial_checkpoint_on(mesh: jax.sharding.Mesh, config, task, model, tx) -> Callable[[], dict[str, Any]]:
  """A jitted nullary function creating `initial_checkpoint` directly in its layout on `mesh`
  (replicated over data, split over fsdp past the seed axis; `sharding.state_shardings`), so no
  device ever holds more than its part. `jax.eval_shape` of it is the layout to restore into."""
  fresh = lambda: initial_checkpoint(config, task, model, tx)
  return jax.jit(fresh, out_shardings=sharding.state_shardings(jax.eval_shape(fresh), mesh, skip=1))


def restore(config, workdir: str) -> tuple[tasks.Task, models.SequenceModel, dict[str, Any], int]:
  """(task, model, checkpointed item, step) of the latest checkpoint of the run of `config` in
  `workdir`; CheckpointError when there is none or it does not fit."""
  task, model, tx, _ = build(config)
  manager = checkpoints.manager(workdir, config.train.keep_checkpoints)
  try:
    step = manager.latest_step()
    if step is None:
      raise CheckpointError(f"{workdir} has no checkpoint")
    return task, model, checkpoints.restore(manager, initial_checkpoint(config, task, model, tx), step), step
  finally:
    manager.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, steps_this_run: int | None = None,
                       seed_dirs: list[str] | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns a summary.

  The config.num_seeds seeds config.seed, config.seed + 1, ... train as one jit-compiled program:
  the train state has a leading seed axis and each step advances every seed (`train_steps`). Each
  seed's initialisation, data and dropout keys are those of a run with that seed alone, so its
  results equal a separate run's up to float rounding. A seed that meets a non-finite loss or
  gradient stops there (its parameters stay at the last finite step) and the others go on; when no
  seed is left, NonFiniteError. With train.early_stopping = p > 0 a seed also stops once p
  evaluations in a row have not improved its best valid metric; the run ends when every seed has
  stopped or at train.num_steps.

  Args:
    config: see gru_jax/lab/config.py.
    workdir: where config.json and the checkpoints go (and, for one seed, everything else).
    steps_this_run: stop (after a checkpoint) once this many steps have run in this call,
      for time-sliced jobs; None runs to config.train.num_steps.
    seed_dirs: each seed's folder for its metrics.jsonl, TensorBoard events, config.json and
      summary.json; default `default_seed_dirs(config, workdir)`.

  Returns:
    For one seed, the summary also written to its summary.json (only when the run reached
    num_steps): "valid" (the last evaluation on valid), "best_valid" (the best one, with its
    "step"), "test_at_best_valid" (test metrics at those parameters, with their "step"),
    "test_final" (test metrics at the final parameters), "train_at_best_valid" (the whole train set
    at the best-on-valid parameters, for tasks with a fixed one; else None), "train" (the last
    logged training metrics) and "stopped" (None; or, for a seed stopped by a non-finite value, its "step",
    "metric" and "value"; for one stopped early, its "step" and "reason"; both with "last_step",
    the step of its final parameters). For several seeds,
    {"runs": [each seed's summary], "test_at_best_valid": {"mean", "std", "values"}, ...}, also
    written to workdir/summary.json.

  Raises:
    ConfigError, tasks.DataError, CheckpointError, NonFiniteError; KeyboardInterrupt after
    saving a checkpoint when interrupted by SIGINT or SIGTERM.
  """
  task, model, tx, schedule = build(config)
  mesh = make_mesh(config)
  model = split_time(config, task, model, mesh)
  dirs = default_seed_dirs(config, workdir) if seed_dirs is None else list(seed_dirs)
  if len(dirs) != config.num_seeds:
    raise ConfigError(f"{len(dirs)} seed folders for num_seeds={config.num_seeds}")
  for d in [workdir, *dirs]:
    os.makedirs(d, exist_ok=True)
  manager = checkpoints.manager(workdir, config.train.keep_checkpoints)
  with jax.set_mesh(mesh):
    try:
      return _start(config, workdir, dirs, task, model, tx, schedule, manager, steps_this_run, mesh)
    finally:
      manager.close()


def _start(config, workdir, dirs, task, model, tx, schedule, manager, steps_this_run, mesh):
  """Creates or restores the checkpointed item in its layout on the mesh, then trains."""
  create = initial_checkpoint_on(mesh, config, task, model, tx)
  latest = manager.latest_step()
  ckpt = create() if latest is None else checkpoints.restore(manager, jax.eval_shape(create), latest)  # read in this layout
  # Written only once the workdir's checkpoint (if any) is known to fit this config.
  if jax.process_index() == 0:
    _write_config(config, workdir)
    for i, d in enumerate(dirs):
      if d != workdir:  # what a run of this seed alone would be
        _write_config(config, d, seed=config.seed + i, num_seeds=1)
  return _run(config, workdir, dirs, task, model, schedule, ckpt, manager, latest, steps_this_run, mesh)


def _write_config(config, folder: str, **overrides) -> None:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.update(overrides)
  files.atomic_write(os.path.join(folder, "config.json"), config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def _copy(tree):
  """Fresh buffers: the train step donates the state's, so kept parameters must not share them."""
  return jax.tree_util.tree_map(lambda x: x.copy(), tree)


def initialize_distributed(config) -> bool:
  """Starts JAX's distributed runtime when config.distributed (or JAX_COORDINATOR_ADDRESS) names a
  coordinator; call it before anything else touches JAX. Every process then runs the same program
  on the global mesh; only process 0 writes records, summaries and config.json."""
  d = config.distributed
  return sharding.initialize(d.coordinator_address, d.num_processes, d.process_id)


def make_mesh(config) -> jax.sharding.Mesh:
  """The device mesh of `config.mesh`, checked against the batch size (ConfigError naming the key)."""
  try:
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.seq)
    sharding.check_batch(mesh, config.train.batch_size)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  return mesh


def split_time(config, task: tasks.Task, model: models.SequenceModel, mesh: jax.sharding.Mesh) -> models.SequenceModel:
  """`model` with its layers splitting time over the mesh's "seq" axis when it has more than one
  device (sequence parallelism: the same parameters and results). ConfigError naming mesh.seq
  unless the cell's recurrence is linear in the carry and every sequence (train, valid, test)
  splits evenly."""
  shards = mesh.shape[sharding.SEQ]
  if shards == 1:
    return model
  try:
    model = model.clone(sequence_axis=sharding.SEQ)
  except ValueError as e:
    raise ConfigError(f"mesh.seq={shards} splits time over devices, which needs a cell whose recurrence is linear in the "
                      f"carry (mingru, minlstm, sru with version 2017) and model.zoneout=0; got model.cell="
                      f"{config.model.cell!r}, model.zoneout={config.model.zoneout}") from e
  train_steps = jax.eval_shape(lambda k: task.train_batch(k, 1), jax.random.key(0))["xs"].shape[1]
  lengths = {"train": train_steps, **{split: task.held_out(split)["xs"].shape[1] for split in ("valid", "test")}}
  uneven = {split: steps for split, steps in lengths.items() if steps % shards}
  if uneven:
    raise ConfigError(f"mesh.seq={shards} must divide the sequence length (time steps {uneven}); change mesh.seq or the "
                      "task's length (e.g. task.seq_len)")
  return model


def _run(config, workdir, dirs, task, model, schedule, ckpt, manager, latest, steps_this_run, mesh):
  """The training loop of train_and_evaluate, from a created or restored checkpoint item."""
  cfg = config.train
  seeds = run_seeds(config)
  state, best_params, stopped_at = ckpt["state"], ckpt["best_params"], ckpt["stopped_at"]
  num_params = sum(int(np.prod(p.shape[1:])) for p in jax.tree_util.tree_leaves(state.params))
  _, step_keys = seed_keys(config)
  step_keys = sharding.replicate(step_keys, mesh)  # a global array, as the state is
  start = latest or 0
  main = jax.process_index() == 0  # in a multi-process run, only the first process writes and prints
  writers = [records.MetricWriter(d, enabled=main) for d in dirs]
  for writer in writers:
    writer.truncate_after(start)
  say = print if main else (lambda *args: None)
  name = (lambda i: "") if len(seeds) == 1 else (lambda i: f"seed {seeds[i]}: ")
  if start:
    say(f"resumed from the checkpoint at step {start} in {workdir}")

  step_fn = jax.jit(
    lambda s, k, stop, n: train_steps(s, k, stop, n, model=model, task=task, schedule=schedule, batch_size=cfg.batch_size,
                                      weight_noise=config.opt.weight_noise, mesh=mesh),
    donate_argnums=0,
    # The state keeps its layout from step to step (split over fsdp); the rest is replicated.
    out_shardings=(sharding.state_shardings(state, mesh, skip=1), sharding.replicated(mesh), sharding.replicated(mesh)),
  )
  # Each chunk of a held-out set is split over the mesh like a training batch (when it divides evenly).
  eval_seeds = jax.vmap(lambda p, b: eval_step(p, b, model=model, task=task), in_axes=(0, None))
  eval_fn = jax.jit(lambda p, b: eval_seeds(p, sharding.shard_batch(b, mesh)), out_shardings=sharding.replicated(mesh))
  select = jax.jit(_where_seeds)
  gates_fn = gate_statistics_fn(model, task, cfg.batch_size, mesh) if cfg.log_gates else None
  end = cfg.num_steps if steps_this_run is None else min(cfg.num_steps, start + steps_this_run)

  pending: list[tuple[int, dict]] = []  # device metrics not yet fetched: no host sync per step
  last_good = latest
  histories = [{"valid": None, "best_valid": None, "train": None, "stopped": None} for _ in seeds]
  better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)

  def remember(i: int, step: int, split: str, metrics: dict[str, Any]) -> bool:
    """Records seed i's latest metrics of `split`; True when a valid evaluation is its best so far."""
    history = histories[i]
    history[split] = dict(metrics, step=step) if split == "stopped" else metrics
    best = history["best_valid"]
    if split == "valid" and (best is None or better(metrics[task.metric], best[task.metric])):
      history["best_valid"] = dict(metrics, step=step)
      return True
    return False

  for i, writer in enumerate(writers):  # a resumed run continues the history of the records it kept
    for record in writer.records():
      remember(i, record["step"], record["split"], {k: v for k, v in record.items() if k not in ("step", "split")})
  alive = [h["stopped"] is None for h in histories]
  timer = {"t": time.perf_counter(), "step": start}
  run_start = time.perf_counter()

  def flush(step: int) -> None:
    """Fetches pending metrics, stops seeds at non-finite values, logs the latest."""
    if not pending:
      return
    fetched = jax.device_get(pending)
    pending.clear()
    for s, metrics in fetched:
      for i in range(len(seeds)):
        bad = [n for n in ("loss", "grad_norm") if alive[i] and not math.isfinite(float(metrics[n][i]))]
        if bad:
          alive[i] = False
          record = {"metric": bad[0], "value": float(metrics[bad[0]][i]), "last_step": s}
          remember(i, s + 1, "stopped", record)
          writers[i].write(s + 1, "stopped", record, tb=False)
          if any(alive):
            say(f"{name(i)}{bad[0]} is {record['value']} at step {s + 1}; this seed stops there, the others go on")
    if all(h["stopped"] is not None and "metric" in h["stopped"] for h in histories):  # every seed diverged
      good = f"the last good checkpoint is step {last_good}" if last_good is not None else "no checkpoint was written"
      why = "; ".join(f"{name(i)}{h['stopped']['metric']} is {h['stopped']['value']} at step {h['stopped']['step']}"
                      for i, h in enumerate(histories))
      raise NonFiniteError(f"{why}; stopped ({good}, in {workdir})")
    now = time.perf_counter()
    rate = (step - timer["step"]) / max(now - timer["t"], 1e-9)
    timer.update(t=now, step=step)
    latest_metrics = fetched[-1][1]
    if gates_fn is not None:
      latest_metrics = dict(latest_metrics, **jax.device_get(gates_fn(state.params)))
    logged = []
    for i in range(len(seeds)):
      if alive[i]:
        metrics = dict({k: float(v[i]) for k, v in latest_metrics.items()}, steps_per_s=rate)
        remember(i, step, "train", metrics)
        writers[i].write(step, "train", metrics)
        logged.append(metrics)
    if not logged:  # every seed has stopped
      return
    if bar is not None:
      bar.set_postfix(loss=f"{np.mean([m['loss'] for m in logged]):.4g}")
    elif len(seeds) == 1:
      say(f"step {step}/{cfg.num_steps} {_format(logged[0])}")
    else:
      say(f"step {step}/{cfg.num_steps} {_format(_mean(logged))} (mean of {len(logged)} seeds)")

  def validate(step: int) -> None:
    nonlocal best_params, stopped_at
    results = evaluate(state.params, task, eval_fn, cfg.eval_batch_size, "valid")
    improved = np.zeros(len(seeds), bool)
    shown = [m for i, m in enumerate(results) if alive[i]]
    for i, metrics in enumerate(results):
      if alive[i]:
        improved[i] = remember(i, step, "valid", metrics)
        writers[i].write(step, "valid", metrics)
    if improved.any():
      best_params = select(improved, state.params, best_params)
    patience = cfg.early_stopping
    for i, history in enumerate(histories):
      if alive[i] and patience and step - history["best_valid"]["step"] >= patience * cfg.eval_every:
        alive[i] = False  # early stopping: this seed's state stays as it is from here on
        stopped_at = stopped_at.at[i].set(step)
        record = {"reason": f"no better valid {task.metric} in {patience} evaluations", "last_step": step}
        remember(i, step, "stopped", record)
        writers[i].write(step, "stopped", record, tb=False)
        say(f"{name(i)}early stopping at step {step} (best valid at step {history['best_valid']['step']})")
    seeds_note = "" if len(seeds) == 1 else f" (mean of {len(shown)} seeds)"
    say(f"valid step {step}: {_format(_mean(shown))}{seeds_note} (baseline {task.metric} {task.baseline:.4g})")

  def save(step: int) -> None:
    nonlocal last_good
    flush(step)  # notes every non-finite step before the state is written
    if manager.latest_step() != step:
      manager.save(step, args=ocp.args.StandardSave({"state": state, "best_params": best_params, "stopped_at": stopped_at}))
      manager.wait_until_finished()
    last_good = step

  bar = _progress(cfg.num_steps, start)
  if not any(alive):  # every seed had stopped by the checkpoint this run resumed from
    end = start
  try:
    with _StopRequests() as stop:
      for step in range(start, end):
        state, stopped_at, metrics = step_fn(state, step_keys, stopped_at, np.int32(step))
        pending.append((step, metrics))
        done = step + 1
        if bar is not None:
          bar.update(1)
        if done % cfg.log_every == 0:
          flush(done)
        if done == cfg.num_steps or (cfg.eval_every and done % cfg.eval_every == 0):
          flush(done)
          validate(done)  # before the checkpoint of this step, which keeps the best parameters
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
          save(done)
        if stop.signal is not None:
          save(done)
          raise KeyboardInterrupt(f"stopped by signal {stop.signal} after step {done}; checkpoint saved")
        if not any(alive):  # every seed stopped early
          end = done
          break
      flush(end)
      save(end)
    if end < cfg.num_steps and any(alive):
      return {"step": end, "finished": False}
    at_best = evaluate(best_params, task, eval_fn, cfg.eval_batch_size, "test")
    at_final = evaluate(state.params, task, eval_fn, cfg.eval_batch_size, "test")
    on_train = None if task.train_set is None else evaluate(best_params, task, eval_fn, cfg.eval_batch_size, "train")
    tested = []
    for i, (history, writer) in enumerate(zip(histories, writers)):
      final_step = end if history["stopped"] is None else history["stopped"]["last_step"]
      tests = {"final": dict(at_final[i], step=final_step)}
      if history["best_valid"] is not None:  # None: the seed stopped before its first evaluation
        tests["best_valid"] = dict(at_best[i], step=history["best_valid"]["step"])
        if on_train is not None:  # the whole train set at the selected parameters
          tests["train"] = dict(on_train[i], step=history["best_valid"]["step"])
          writer.write(tests["train"]["step"], "train_set", on_train[i], at="best_valid")
      for at in ("best_valid", "final"):
        if at in tests:
          writer.write(tests[at]["step"], "test", {k: v for k, v in tests[at].items() if k != "step"}, at=at)
      tested.append(tests)
      if "best_valid" in tests:
        say(f"{name(i)}test at the best valid step {tests['best_valid']['step']}: {_format(tests['best_valid'])}")
  finally:
    for writer in writers:
      writer.close()
    if bar is not None:
      bar.close()

  wall_time = time.perf_counter() - run_start
  summaries = []
  for i, (history, d) in enumerate(zip(histories, dirs)):
    summary = {
      "task": task.name, "cell": config.model.cell, "features": config.model.features,
      "num_layers": config.model.num_layers, "params": num_params, "steps": cfg.num_steps, "seed": seeds[i],
      "metric": task.metric, "higher_is_better": task.higher_is_better,
      "baseline": task.baseline, "baseline_note": task.baseline_note, "train": history["train"],
      "valid": history["valid"], "best_valid": history["best_valid"],
      "test_at_best_valid": tested[i].get("best_valid"), "test_final": tested[i]["final"],
      "train_at_best_valid": tested[i].get("train"), "stopped": history["stopped"],
      "steps_run": tested[i]["final"]["step"],
      "wall_time_s_this_run": wall_time, "num_seeds_in_program": len(seeds), "workdir": d, "finished": True,
    }
    if main:
      files.atomic_write(os.path.join(d, "summary.json"), json.dumps(summary, indent=2) + "\n")
    summaries.append(summary)
  if len(seeds) == 1:
    return summaries[0]
  values = [s["test_at_best_valid"][task.metric] for s in summaries if s["test_at_best_valid"] is not None]
  overall = {
    "task": task.name, "cell": config.model.cell, "seeds": seeds, "metric": task.metric, "params": num_params,
    "steps": cfg.num_steps, "baseline": task.baseline,
    "test_at_best_valid": {"mean": float(np.mean(values)) if values else None,
                           "std": float(np.std(values, ddof=1)) if len(values) > 1 else None, "values": values},
    "diverged_seeds": [s["seed"] for s in summaries if s["stopped"] is not None and "metric" in s["stopped"]],
    "baseline_note": task.baseline_note,
    "runs": summaries, "wall_time_s_this_run": wall_time, "workdir": workdir, "finished": True,
  }
  if main:
    files.atomic_write(os.path.join(workdir, "summary.json"), json.dumps(overall, indent=2) + "\n")
  return overall


def _mean(metrics: list[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]} if metrics else {}
