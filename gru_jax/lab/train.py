"""Training runs: train_and_evaluate(config, workdir), resumable, over one seed or many.

The run is built from its config by `gru_jax.lab.build` and steps with the pure functions of
`gru_jax.lab.steps` (both reachable from here); this module holds the loop, its records and its
checkpoints.

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

from gru_jax import models
from gru_jax.lab import extras

try:
  import ml_collections
  import orbax.checkpoint as ocp
  import tensorboardX  # noqa: F401  (used by the writer; checked here so a missing extra fails early)
  import tqdm  # noqa: F401
except ImportError as e:
  raise extras.lab_missing("gru_jax.lab.train", e) from e

# After the check, so that a missing extra is named for this module, not for one it imports.
from gru_jax.lab import checkpoints, files, records, sharding, tasks  # noqa: E402
from gru_jax.lab.checkpoints import CheckpointError  # noqa: E402
# train is the lab's entry point: the building and the steps are reachable from here as well.
from gru_jax.lab.build import (OPTIMIZERS, ConfigError, build, check_config, create_train_state,  # noqa: E402,F401
                               initialize_distributed, make_mesh, make_optimizer, make_schedule, split_time)
from gru_jax.lab.steps import (add_noise, eval_step, evaluate, gate_statistics_fn, train_step, train_steps,  # noqa: E402,F401
                              where_seeds)


class NonFiniteError(FloatingPointError):
  """A loss or gradient became NaN or infinite."""


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
  return _Run(config, workdir, dirs, task, model, schedule, ckpt, manager, latest, steps_this_run, mesh).run()


def _write_config(config, folder: str, **overrides) -> None:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.update(overrides)
  files.atomic_write(os.path.join(folder, "config.json"), config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def _copy(tree):
  """Fresh buffers: the train step donates the state's, so kept parameters must not share them."""
  return jax.tree_util.tree_map(lambda x: x.copy(), tree)


class _Run:
  """One call of train_and_evaluate's training loop, from a created or restored checkpoint item:
  the state, each seed's history and writer, and the steps that log, validate, checkpoint, test
  and summarise."""

  def __init__(self, config, workdir, dirs, task, model, schedule, ckpt, manager, latest, steps_this_run, mesh):
    self.config, self.cfg, self.workdir, self.dirs, self.task, self.model = config, config.train, workdir, dirs, task, model
    self.schedule, self.manager, self.mesh = schedule, manager, mesh
    self.seeds = run_seeds(config)
    self.state, self.best_params, self.stopped_at = ckpt["state"], ckpt["best_params"], ckpt["stopped_at"]
    self.num_params = sum(int(np.prod(p.shape[1:])) for p in jax.tree_util.tree_leaves(self.state.params))
    self.step_keys = sharding.replicate(seed_keys(config)[1], mesh)  # a global array, as the state is
    self.start = latest or 0
    self.main = jax.process_index() == 0  # in a multi-process run, only the first process writes and prints
    self.writers = [records.MetricWriter(d, enabled=self.main) for d in dirs]
    for writer in self.writers:
      writer.truncate_after(self.start)
    if self.start:
      self.say(f"resumed from the checkpoint at step {self.start} in {workdir}")
    self.step_fn, self.eval_fn, self.select, self.gates_fn = self._compile()
    self.end = self.cfg.num_steps if steps_this_run is None else min(self.cfg.num_steps, self.start + steps_this_run)
    self.pending: list[tuple[int, dict]] = []  # device metrics not yet fetched: no host sync per step
    self.last_good = latest
    self.histories = [{"valid": None, "best_valid": None, "train": None, "stopped": None} for _ in self.seeds]
    self.better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    for i, writer in enumerate(self.writers):  # a resumed run continues the history of the records it kept
      for record in writer.records():
        self.remember(i, record["step"], record["split"], {k: v for k, v in record.items() if k not in ("step", "split")})
    self.alive = [h["stopped"] is None for h in self.histories]
    self.timer = {"t": time.perf_counter(), "step": self.start}
    self.run_start = time.perf_counter()
    self.bar = None

  def say(self, *args) -> None:
    if self.main:
      print(*args)

  def name(self, i: int) -> str:
    return "" if len(self.seeds) == 1 else f"seed {self.seeds[i]}: "

  def _compile(self):
    """The jitted training steps, held-out evaluation, best-parameter selection and gate statistics."""
    cfg, model, task, mesh = self.cfg, self.model, self.task, self.mesh
    step_fn = jax.jit(
      lambda s, k, stop, n: train_steps(s, k, stop, n, model=model, task=task, schedule=self.schedule,
                                        batch_size=cfg.batch_size, weight_noise=self.config.opt.weight_noise, mesh=mesh),
      donate_argnums=0,
      # The state keeps its layout from step to step (split over fsdp); the rest is replicated.
      out_shardings=(sharding.state_shardings(self.state, mesh, skip=1), sharding.replicated(mesh), sharding.replicated(mesh)),
    )
    # Each chunk of a held-out set is split over the mesh like a training batch (when it divides evenly).
    eval_seeds = jax.vmap(lambda p, b: eval_step(p, b, model=model, task=task), in_axes=(0, None))
    eval_fn = jax.jit(lambda p, b: eval_seeds(p, sharding.shard_batch(b, mesh)), out_shardings=sharding.replicated(mesh))
    gates_fn = gate_statistics_fn(model, task, cfg.batch_size, mesh) if cfg.log_gates else None
    return step_fn, eval_fn, jax.jit(where_seeds), gates_fn

  def remember(self, i: int, step: int, split: str, metrics: dict[str, Any]) -> bool:
    """Records seed i's latest metrics of `split`; True when a valid evaluation is its best so far."""
    history = self.histories[i]
    history[split] = dict(metrics, step=step) if split == "stopped" else metrics
    best = history["best_valid"]
    if split == "valid" and (best is None or self.better(metrics[self.task.metric], best[self.task.metric])):
      history["best_valid"] = dict(metrics, step=step)
      return True
    return False

  def stop(self, i: int, step: int, record: dict[str, Any]) -> None:
    """Seed i stops at `step` (a non-finite value, or early stopping), with a record saying why."""
    self.alive[i] = False
    self.remember(i, step, "stopped", record)
    self.writers[i].write(step, "stopped", record, tb=False)

  def _stop_non_finite(self, fetched) -> None:
    """Stops each seed at its first non-finite loss or gradient norm; every seed: NonFiniteError."""
    for s, metrics in fetched:
      for i in range(len(self.seeds)):
        bad = [n for n in ("loss", "grad_norm") if self.alive[i] and not math.isfinite(float(metrics[n][i]))]
        if bad:
          record = {"metric": bad[0], "value": float(metrics[bad[0]][i]), "last_step": s}
          self.stop(i, s + 1, record)
          if any(self.alive):
            self.say(f"{self.name(i)}{bad[0]} is {record['value']} at step {s + 1}; this seed stops there, the others go on")
    if all(h["stopped"] is not None and "metric" in h["stopped"] for h in self.histories):  # every seed diverged
      good = f"the last good checkpoint is step {self.last_good}" if self.last_good is not None else "no checkpoint was written"
      why = "; ".join(f"{self.name(i)}{h['stopped']['metric']} is {h['stopped']['value']} at step {h['stopped']['step']}"
                      for i, h in enumerate(self.histories))
      raise NonFiniteError(f"{why}; stopped ({good}, in {self.workdir})")

  def flush(self, step: int) -> None:
    """Fetches pending metrics, stops seeds at non-finite values, logs the latest."""
    if not self.pending:
      return
    fetched = jax.device_get(self.pending)
    self.pending.clear()
    self._stop_non_finite(fetched)
    now = time.perf_counter()
    rate = (step - self.timer["step"]) / max(now - self.timer["t"], 1e-9)
    self.timer.update(t=now, step=step)
    latest_metrics = fetched[-1][1]
    if self.gates_fn is not None:
      latest_metrics = dict(latest_metrics, **jax.device_get(self.gates_fn(self.state.params)))
    logged = []
    for i in range(len(self.seeds)):
      if self.alive[i]:
        metrics = dict({k: float(v[i]) for k, v in latest_metrics.items()}, steps_per_s=rate)
        self.remember(i, step, "train", metrics)
        self.writers[i].write(step, "train", metrics)
        logged.append(metrics)
    if not logged:  # every seed has stopped
      return
    if self.bar is not None:
      self.bar.set_postfix(loss=f"{np.mean([m['loss'] for m in logged]):.4g}")
    elif len(self.seeds) == 1:
      self.say(f"step {step}/{self.cfg.num_steps} {_format(logged[0])}")
    else:
      self.say(f"step {step}/{self.cfg.num_steps} {_format(_mean(logged))} (mean of {len(logged)} seeds)")

  def validate(self, step: int) -> None:
    """Scores valid, keeps each seed's best parameters, and stops seeds without progress (early stopping)."""
    cfg = self.cfg
    results = evaluate(self.state.params, self.task, self.eval_fn, cfg.eval_batch_size, "valid")
    improved = np.zeros(len(self.seeds), bool)
    shown = [m for i, m in enumerate(results) if self.alive[i]]
    for i, metrics in enumerate(results):
      if self.alive[i]:
        improved[i] = self.remember(i, step, "valid", metrics)
        self.writers[i].write(step, "valid", metrics)
    if improved.any():
      self.best_params = self.select(improved, self.state.params, self.best_params)
    patience = cfg.early_stopping
    for i, history in enumerate(self.histories):
      if self.alive[i] and patience and step - history["best_valid"]["step"] >= patience * cfg.eval_every:
        self.stopped_at = self.stopped_at.at[i].set(step)  # this seed's state stays as it is from here on
        self.stop(i, step, {"reason": f"no better valid {self.task.metric} in {patience} evaluations", "last_step": step})
        self.say(f"{self.name(i)}early stopping at step {step} (best valid at step {history['best_valid']['step']})")
    seeds_note = "" if len(self.seeds) == 1 else f" (mean of {len(shown)} seeds)"
    self.say(f"valid step {step}: {_format(_mean(shown))}{seeds_note} (baseline {self.task.metric} {self.task.baseline:.4g})")

  def save(self, step: int) -> None:
    self.flush(step)  # notes every non-finite step before the state is written
    if self.manager.latest_step() != step:
      item = {"state": self.state, "best_params": self.best_params, "stopped_at": self.stopped_at}
      self.manager.save(step, args=ocp.args.StandardSave(item))
      self.manager.wait_until_finished()
    self.last_good = step

  def loop(self) -> None:
    """The training steps from `start` to `end`, with logs, evaluations and checkpoints."""
    cfg = self.cfg
    if not any(self.alive):  # every seed had stopped by the checkpoint this run resumed from
      self.end = self.start
    with _StopRequests() as requests:
      for step in range(self.start, self.end):
        self.state, self.stopped_at, metrics = self.step_fn(self.state, self.step_keys, self.stopped_at, np.int32(step))
        self.pending.append((step, metrics))
        done = step + 1
        if self.bar is not None:
          self.bar.update(1)
        if done % cfg.log_every == 0:
          self.flush(done)
        if done == cfg.num_steps or (cfg.eval_every and done % cfg.eval_every == 0):
          self.flush(done)
          self.validate(done)  # before the checkpoint of this step, which keeps the best parameters
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
          self.save(done)
        if requests.signal is not None:
          self.save(done)
          raise KeyboardInterrupt(f"stopped by signal {requests.signal} after step {done}; checkpoint saved")
        if not any(self.alive):  # every seed stopped early
          self.end = done
          break
      self.flush(self.end)
      self.save(self.end)

  def test(self) -> list[dict[str, Any]]:
    """Each seed's test scores at its best-valid and its final parameters (and the train set at the
    former, where the task has one), written to its records."""
    batch_size = self.cfg.eval_batch_size
    at_best = evaluate(self.best_params, self.task, self.eval_fn, batch_size, "test")
    at_final = evaluate(self.state.params, self.task, self.eval_fn, batch_size, "test")
    on_train = None if self.task.train_set is None else evaluate(self.best_params, self.task, self.eval_fn, batch_size, "train")
    tested = []
    for i, (history, writer) in enumerate(zip(self.histories, self.writers)):
      final_step = self.end if history["stopped"] is None else history["stopped"]["last_step"]
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
        self.say(f"{self.name(i)}test at the best valid step {tests['best_valid']['step']}: {_format(tests['best_valid'])}")
    return tested

  def run(self) -> dict[str, Any]:
    """Trains, tests and writes the summaries; {"step", "finished": False} when steps_this_run ends it early."""
    self.bar = _progress(self.cfg.num_steps, self.start)
    try:
      self.loop()
      if self.end < self.cfg.num_steps and any(self.alive):
        return {"step": self.end, "finished": False}
      tested = self.test()
    finally:
      for writer in self.writers:
        writer.close()
      if self.bar is not None:
        self.bar.close()
    return self.summarise(tested, time.perf_counter() - self.run_start)

  def summarise(self, tested: list[dict[str, Any]], wall_time: float) -> dict[str, Any]:
    """Each seed's summary.json, and with several seeds the run's, which this returns."""
    config, cfg, task = self.config, self.cfg, self.task
    summaries = []
    for i, (history, d) in enumerate(zip(self.histories, self.dirs)):
      summary = {
        "task": task.name, "cell": config.model.cell, "features": config.model.features,
        "num_layers": config.model.num_layers, "params": self.num_params, "steps": cfg.num_steps, "seed": self.seeds[i],
        "metric": task.metric, "higher_is_better": task.higher_is_better,
        "baseline": task.baseline, "baseline_note": task.baseline_note, "train": history["train"],
        "valid": history["valid"], "best_valid": history["best_valid"],
        "test_at_best_valid": tested[i].get("best_valid"), "test_final": tested[i]["final"],
        "train_at_best_valid": tested[i].get("train"), "stopped": history["stopped"],
        "steps_run": tested[i]["final"]["step"],
        "wall_time_s_this_run": wall_time, "num_seeds_in_program": len(self.seeds), "workdir": d, "finished": True,
      }
      if self.main:
        files.atomic_write(os.path.join(d, "summary.json"), json.dumps(summary, indent=2) + "\n")
      summaries.append(summary)
    if len(self.seeds) == 1:
      return summaries[0]
    values = [s["test_at_best_valid"][task.metric] for s in summaries if s["test_at_best_valid"] is not None]
    overall = {
      "task": task.name, "cell": config.model.cell, "seeds": self.seeds, "metric": task.metric, "params": self.num_params,
      "steps": cfg.num_steps, "baseline": task.baseline,
      "test_at_best_valid": {"mean": float(np.mean(values)) if values else None,
                             "std": float(np.std(values, ddof=1)) if len(values) > 1 else None, "values": values},
      "diverged_seeds": [s["seed"] for s in summaries if s["stopped"] is not None and "metric" in s["stopped"]],
      "baseline_note": task.baseline_note,
      "runs": summaries, "wall_time_s_this_run": wall_time, "workdir": self.workdir, "finished": True,
    }
    if self.main:
      files.atomic_write(os.path.join(self.workdir, "summary.json"), json.dumps(overall, indent=2) + "\n")
    return overall


def _mean(metrics: list[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]} if metrics else {}
