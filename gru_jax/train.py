"""Training: a pure train_step and eval_step, and train_and_evaluate(config, workdir).

A run's workdir holds config.json, metrics.jsonl (one JSON object per log or eval point),
TensorBoard events under tb/, orbax checkpoints under checkpoints/ and, when it ends,
summary.json. Running again on the same workdir resumes from the latest checkpoint; the data and
dropout keys of step s are `fold_in(key, s)`, so a resumed run ends where an uninterrupted one
would.
"""

import json
import math
import os
import signal
import sys
import threading
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state

from gru_jax import models, tasks


class ConfigError(ValueError):
  """A config key holds an unknown name or an impossible value."""


class CheckpointError(RuntimeError):
  """The workdir's checkpoint cannot be restored into this run's model."""


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

  is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
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
  require(is_int(config.seed), "seed", "an integer")
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
  example = {k: v[:1] for k, v in task.eval_set.items()}
  params = model.init(key, example["xs"], seq_lengths=example.get("seq_lengths"))["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def train_step(state, key, *, model, task, schedule, batch_size):
  """One optimizer step on the batch drawn from `key`. Pure; jit it with donate_argnums=0."""
  data_key, dropout_key = jax.random.split(key)
  batch = task.train_batch(data_key, batch_size)

  def loss_fn(params):
    outputs = model.apply(
      {"params": params}, batch["xs"], seq_lengths=batch.get("seq_lengths"),
      deterministic=False, rngs={"dropout": dropout_key},
    )
    return task.loss_and_metrics(outputs, batch)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {k: v for k, v in metrics.items() if k != "weight" and not k.startswith("_")}
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), learning_rate=schedule(state.step))
  return state.apply_gradients(grads=grads), metrics


def eval_step(params, batch, *, model, task):
  outputs = model.apply({"params": params}, batch["xs"], seq_lengths=batch.get("seq_lengths"))
  loss, metrics = task.loss_and_metrics(outputs, batch)
  return dict(metrics, loss=loss)


def evaluate(params, task: tasks.Task, eval_fn, batch_size: int) -> dict[str, float]:
  """Metrics over the whole held-out set, in chunks.

  Chunks are weighted by their number of examples, or by the metric "weight" when the task
  reports one (e.g. the number of valid frames, for metrics averaged per frame).
  """
  totals: dict[str, float] = {}
  total_weight = 0.0
  for start in range(0, task.eval_size, batch_size):
    chunk = {k: v[start : start + batch_size] for k, v in task.eval_set.items()}
    metrics = jax.device_get(eval_fn(params, chunk))
    weight = float(metrics.pop("weight", len(chunk["xs"])))
    total_weight += weight
    for name, value in metrics.items():
      totals[name] = totals.get(name, 0.0) + float(value) * weight
  return task.finalize({name: total / total_weight for name, total in totals.items()})


class MetricWriter:
  """metrics.jsonl plus TensorBoard events; `truncate_after` drops records a killed run wrote."""

  def __init__(self, workdir: str):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tb = SummaryWriter(os.path.join(workdir, "tb"))

  def records(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    """Drops the records after `step`, written by a run killed after its last checkpoint."""
    kept = [r for r in self.records() if r["step"] <= step]
    _atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, "split": split, **metrics}) + "\n")
    for name, value in metrics.items():
      self.tb.add_scalar(f"{split}/{name}", value, step)

  def close(self) -> None:
    self.tb.close()


def _atomic_write(path: str, text: str) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _checkpoint_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), "checkpoints"), options=options, item_handlers=ocp.StandardCheckpointHandler()
  )


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
  """{"params/rnn/layer_0/bias": shape, ...} for a state or a checkpoint's metadata tree."""
  name = lambda k: str(next(getattr(k, a) for a in ("key", "name", "idx") if hasattr(k, a)))
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {"/".join(name(k) for k in path): tuple(np.shape(leaf)) for path, leaf in flat}


def _mismatches(stored: dict, wanted: dict, most: int = 3) -> list[str]:
  problems = [f"{k}: checkpoint {stored[k]}, model {wanted[k]}" for k in sorted(set(stored) & set(wanted)) if stored[k] != wanted[k]]
  problems += [f"{k}: not in the checkpoint" for k in sorted(set(wanted) - set(stored))]
  problems += [f"{k}: not in the model" for k in sorted(set(stored) - set(wanted))]
  problems.sort(key=lambda p: not p.startswith("params/"))  # the model's own arrays first
  return problems[:most] + ([f"and {len(problems) - most} more"] if len(problems) > most else [])


def _restore(manager: ocp.CheckpointManager, state, step: int):
  """Restores `step` into the structure of `state`; anything that does not fit is a CheckpointError.

  Shapes are compared against the checkpoint's metadata first, so a checkpoint of another model
  is named as such and never partly read.
  """
  where = os.path.join(str(manager.directory), str(step))
  advice = "use another --workdir, or remove that checkpoint to start over"
  try:
    metadata = manager.item_metadata(step)
    stored = _leaf_shapes(getattr(metadata, "tree", metadata))
  except Exception as e:  # orbax raises several types for missing or unreadable files
    raise CheckpointError(f"the checkpoint {where} is damaged ({type(e).__name__}: {_first_sentence(e)}); {advice}") from e
  problems = _mismatches(stored, _leaf_shapes(state))
  if not stored or problems:
    detail = "; ".join(problems) or "it holds no arrays"
    raise CheckpointError(f"the checkpoint {where} was written by another model or optimizer ({detail}); {advice}")
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(state))
  except Exception as e:
    raise CheckpointError(f"the checkpoint {where} is damaged ({type(e).__name__}: {_first_sentence(e)}); {advice}") from e


def _first_sentence(e: Exception) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return text.split(". ")[0]


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
  return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, steps_this_run: int | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns a summary.

  Args:
    config: see configs/base.py.
    workdir: where config.json, metrics, TensorBoard events and checkpoints go.
    steps_this_run: stop (after a checkpoint) once this many steps have run in this call,
      for time-sliced jobs; None runs to config.train.num_steps.

  Returns:
    The summary also written to workdir/summary.json (only when the run reached num_steps).

  Raises:
    ConfigError, tasks.DataError, CheckpointError, NonFiniteError; KeyboardInterrupt after
    saving a checkpoint when interrupted by SIGINT or SIGTERM.
  """
  task, model, tx, schedule = build(config)
  cfg = config.train
  os.makedirs(workdir, exist_ok=True)
  root = jax.random.key(config.seed)
  init_key, step_key = jax.random.split(root)
  state = create_train_state(model, tx, task, init_key)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(state.params))
  manager = _checkpoint_manager(workdir, cfg.keep_checkpoints)
  try:
    latest = manager.latest_step()
    if latest is not None:
      state = _restore(manager, state, latest)
    # Written only once the workdir's checkpoint (if any) is known to fit this config.
    _atomic_write(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    return _run(config, workdir, task, model, schedule, state, manager, latest, num_params, step_key, steps_this_run)
  finally:
    manager.close()


def _run(config, workdir, task, model, schedule, state, manager, latest, num_params, step_key, steps_this_run):
  """The training loop of train_and_evaluate, from a created or restored state."""
  cfg = config.train
  start = int(state.step)
  writer = MetricWriter(workdir)
  writer.truncate_after(start)
  say = print
  if start:
    say(f"resumed from the checkpoint at step {start} in {workdir}")

  step_fn = jax.jit(
    lambda s, k: train_step(s, k, model=model, task=task, schedule=schedule, batch_size=cfg.batch_size),
    donate_argnums=0,
  )
  eval_fn = jax.jit(lambda p, b: eval_step(p, b, model=model, task=task))
  end = cfg.num_steps if steps_this_run is None else min(cfg.num_steps, start + steps_this_run)

  pending: list[tuple[int, dict]] = []  # device metrics not yet fetched: no host sync per step
  last_good = latest
  history: dict[str, Any] = {"eval": None, "best_eval": None, "train": None}
  better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)

  def remember(step: int, split: str, metrics: dict[str, float]) -> None:
    history[split] = metrics
    if split == "eval" and (history["best_eval"] is None or better(metrics[task.metric], history["best_eval"][task.metric])):
      history["best_eval"] = dict(metrics, step=step)

  for record in writer.records():  # a resumed run continues the history of the records it kept
    remember(record["step"], record["split"], {k: v for k, v in record.items() if k not in ("step", "split")})
  timer = {"t": time.perf_counter(), "step": start}
  run_start = time.perf_counter()

  def flush(step: int) -> None:
    """Fetches pending metrics, stops on a non-finite value, logs the latest."""
    if not pending:
      return
    fetched = jax.device_get(pending)
    pending.clear()
    for s, metrics in fetched:
      for name in ("loss", "grad_norm"):
        if not math.isfinite(float(metrics[name])):
          good = f"the last good checkpoint is step {last_good}" if last_good is not None else "no checkpoint was written"
          raise NonFiniteError(f"{name} is {float(metrics[name])} at step {s + 1}; stopped ({good}, in {workdir})")
    now = time.perf_counter()
    metrics = {k: float(v) for k, v in fetched[-1][1].items()}
    metrics["steps_per_s"] = (step - timer["step"]) / max(now - timer["t"], 1e-9)
    timer.update(t=now, step=step)
    remember(step, "train", metrics)
    writer.write(step, "train", metrics)
    if bar is None:
      say(f"step {step}/{cfg.num_steps} {_format(metrics)}")
    else:
      bar.set_postfix(loss=f"{metrics['loss']:.4g}")

  def run_eval(step: int) -> None:
    metrics = evaluate(state.params, task, eval_fn, cfg.eval_batch_size)
    remember(step, "eval", metrics)
    writer.write(step, "eval", metrics)
    say(f"eval step {step}: {_format(metrics)} (baseline {task.metric} {task.baseline:.4g})")

  def save(step: int) -> None:
    nonlocal last_good
    flush(step)  # never checkpoint a state that followed a non-finite step
    if manager.latest_step() != step:
      manager.save(step, args=ocp.args.StandardSave(state))
      manager.wait_until_finished()
    last_good = step

  bar = _progress(cfg.num_steps, start)
  try:
    with _StopRequests() as stop:
      for step in range(start, end):
        state, metrics = step_fn(state, jax.random.fold_in(step_key, step))
        pending.append((step, metrics))
        done = step + 1
        if bar is not None:
          bar.update(1)
        if done % cfg.log_every == 0:
          flush(done)
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.num_steps:
          flush(done)
          run_eval(done)
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
          save(done)
        if stop.signal is not None:
          save(done)
          raise KeyboardInterrupt(f"stopped by signal {stop.signal} after step {done}; checkpoint saved")
      flush(end)
      save(end)
  except BaseException:
    writer.close()
    raise
  finally:
    if bar is not None:
      bar.close()

  if end < cfg.num_steps:
    writer.close()
    return {"step": end, "finished": False}
  try:
    run_eval(cfg.num_steps)  # written to TensorBoard too, so the writer closes after it
  finally:
    writer.close()
  summary = {
    "task": task.name, "cell": config.model.cell, "features": config.model.features,
    "num_layers": config.model.num_layers, "params": num_params, "steps": cfg.num_steps,
    "metric": task.metric, "higher_is_better": task.higher_is_better,
    "baseline": task.baseline, "baseline_note": task.baseline_note,
    "eval": history["eval"], "best_eval": history["best_eval"], "train": history["train"],
    "wall_time_s_this_run": time.perf_counter() - run_start, "workdir": workdir, "finished": True,
  }
  _atomic_write(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=2) + "\n")
  return summary
