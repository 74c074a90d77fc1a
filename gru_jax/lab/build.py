"""Building a run from its config: the checks, the task, the model, the optimizer, the mesh.

Every value no run could use is a `ConfigError` naming its config key.
"""

import jax
import optax
from flax.training import train_state

from gru_jax import models, specs
from gru_jax.lab import sharding, tasks


class ConfigError(ValueError):
  """A config key holds an unknown name or an impossible value."""


OPTIMIZERS = {
  "adam": lambda lr, opt: optax.adam(lr),
  "adamw": lambda lr, opt: optax.adamw(lr, weight_decay=opt.weight_decay),
  "rmsprop": lambda lr, opt: optax.rmsprop(lr, decay=0.9, momentum=opt.momentum or None),
  "sgd": lambda lr, opt: optax.sgd(lr, momentum=opt.momentum or None, nesterov=opt.nesterov),
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
  require(isinstance(config.opt.nesterov, bool), "opt.nesterov", "True or False")
  if config.opt.nesterov and not (config.opt.name == "sgd" and config.opt.momentum > 0):
    raise ConfigError(f"opt.nesterov=True needs opt.name='sgd' and opt.momentum > 0; got opt.name={config.opt.name!r}, "
                      f"opt.momentum={config.opt.momentum}")
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
