"""Training end to end at tiny sizes: configs, resume, checkpoints, errors, signals."""

import glob
import importlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gru_jax import specs
from gru_jax.lab import train

ROOT = pathlib.Path(__file__).resolve().parent.parent
CELLS = sorted(specs.SPECS)
# Every task with the three main cells; the variants run one task each (tests/variants_test.py),
# since the task code does not depend on the cell.


def tiny(cell="gru", task="adding", **overrides):
  """The config of `cell` on `task` (configs/<cell>.py where there is one, else configs/default.py)
  at a size that runs in seconds."""
  if (ROOT / "configs" / f"{cell}.py").exists():
    c = importlib.import_module(f"configs.{cell}").get_config(task)
  else:
    c = importlib.import_module("configs.default").get_config(f"cell={cell},task={task}")
  c.model.features = 8
  c.task.seq_len = 6
  c.task.eval_size = 32
  c.train.update(num_steps=4, batch_size=4, eval_batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
  c.opt.warmup_steps = 1
  for key, value in overrides.items():  # section__name=value, or a top-level key (seed, num_seeds)
    section, _, name = key.rpartition("__")
    (c[section] if section else c)[name] = value
  return c


def read_jsonl(path):
  return [json.loads(line) for line in open(path)]


@pytest.mark.slow
# The GRU config on every task; the LSTM and RNN configs on two each (the same code path; every
# config file's task branches are checked in configs_test).
@pytest.mark.parametrize(
  "config_file, task",
  [("gru", t) for t in ("adding", "copy", "digits", "chorales", "forecast", "sentiment", "char_lm")]
  + [("lstm", "copy"), ("lstm", "chorales"), ("rnn", "adding"), ("rnn", "char_lm")],
)
def test_every_config_runs_a_few_steps(tmp_path, config_file, task):
  config = tiny(config_file, task)
  if task == "chorales":
    config.task.update(limit=12, cache_dir=str(tmp_path / "cache"))
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["finished"] and summary["steps"] == 4
  metric = summary["metric"]
  assert np.isfinite(summary["test_at_best_valid"][metric]) and np.isfinite(summary["test_final"][metric])
  assert summary["best_valid"]["step"] in (2, 4) and summary["test_at_best_valid"]["step"] == summary["best_valid"]["step"]
  run = tmp_path / "run"
  assert json.load(open(run / "config.json"))["model"]["cell"] == config_file
  records = read_jsonl(run / "metrics.jsonl")
  assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
  assert [r["step"] for r in records if r["split"] == "valid"] == [2, 4]
  assert [r["at"] for r in records if r["split"] == "test"] == ["best_valid", "final"]
  has_train_set = task in ("digits", "chorales", "forecast", "sentiment")  # the tasks with a fixed train set
  assert [r["step"] for r in records if r["split"] == "train_set"] == ([summary["best_valid"]["step"]] if has_train_set else [])
  assert (summary["train_at_best_valid"] is not None) == has_train_set
  assert {"loss", "grad_norm", "learning_rate", "steps_per_s"} <= set(records[0])
  assert "weight" not in records[0]
  assert glob.glob(str(run / "tb" / "events.out.tfevents.*"))
  assert json.load(open(run / "summary.json"))["test_at_best_valid"] == summary["test_at_best_valid"]


@pytest.mark.slow
@pytest.mark.parametrize("config_file", CELLS)
def test_one_train_step_changes_every_parameter(config_file):
  task, model, tx, schedule = train.build(tiny(config_file, opt__schedule="constant", opt__warmup_steps=0))
  state = train.create_train_state(model, tx, task, jax.random.key(0))
  before = jax.device_get(state.params)
  state, _ = train.train_step(state, jax.random.key(1), model=model, task=task, schedule=schedule, batch_size=4)
  after = jax.device_get(state.params)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(before)[0], jax.tree_util.tree_leaves(after)):
    name = jax.tree_util.keystr(path)
    if config_file == "sru":
      # The SRU's r gate and highway see the current input only, so at the "last" head their
      # weights get gradient from the last step's input alone, where the adding task's marker
      # feature is 0: those rows rightly stay. Every array must still move.
      assert np.any(a != b), f"{config_file}: {name} did not change"
    else:
      assert np.all(a != b), f"{config_file}: {name} did not change in every entry"


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path):
  config = tiny(train__num_steps=6, train__checkpoint_every=2, train__eval_every=2, model__dropout=0.1, model__num_layers=2)
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  part = train.train_and_evaluate(config, str(tmp_path / "parts"), steps_this_run=3)
  assert part == {"step": 3, "finished": False}
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  for key in ("valid", "best_valid", "test_at_best_valid", "test_final"):
    assert resumed[key] == whole[key], key
  assert resumed["train"]["loss"] == whole["train"]["loss"]
  records = read_jsonl(tmp_path / "parts" / "metrics.jsonl")
  held_out = lambda rs: [r for r in rs if r["split"] != "train"]  # the stopped run also logged step 3
  assert held_out(records) == held_out(read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
  again = train.train_and_evaluate(config, str(tmp_path / "parts"))  # a finished run, run again, tests again
  assert again["test_at_best_valid"] == whole["test_at_best_valid"]
  assert [r["at"] for r in read_jsonl(tmp_path / "parts" / "metrics.jsonl") if r["split"] == "test"] == ["best_valid", "final"]


@pytest.mark.slow
def test_the_nnx_front_end_trains_and_its_checkpoint_is_a_linen_one(tmp_path):
  config = tiny(model__front_end="nnx", model__num_layers=2, model__dropout=0.1, model__recurrent_dropout=0.1)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["test_at_best_valid"]["loss"])
  task, nnx_model, item, step = train.restore(config, str(tmp_path))
  assert step == 4
  config.model.front_end = "linen"
  _, linen_model, _, _ = train.restore(config, str(tmp_path))
  params = {"params": jax.tree_util.tree_map(lambda x: x[0], item["best_params"])}  # seed axis
  xs = task.valid_set["xs"][:8]
  np.testing.assert_allclose(nnx_model.apply(params, xs), linen_model.apply(params, xs), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_bfloat16_training_tracks_float32_with_float32_state(tmp_path):
  """Mixed precision end to end: losses within 5% of the float32 run's after 4 steps; parameters
  and optimizer state stay float32."""
  f32 = train.train_and_evaluate(tiny(), str(tmp_path / "f32"))
  bf16 = train.train_and_evaluate(tiny(model__dtype="bfloat16"), str(tmp_path / "bf16"))
  np.testing.assert_allclose(bf16["train"]["loss"], f32["train"]["loss"], rtol=5e-2)
  np.testing.assert_allclose(bf16["test_at_best_valid"]["mse"], f32["test_at_best_valid"]["mse"], rtol=5e-2)
  state = train.restore(tiny(model__dtype="bfloat16"), str(tmp_path / "bf16"))[2]["state"]
  assert {x.dtype for x in jax.tree_util.tree_leaves((state.params, state.opt_state)) if x.dtype != jnp.int32} == {jnp.dtype("float32")}


def valid_records(path):
  return [r for r in read_jsonl(path) if r["split"] == "valid"]


@pytest.mark.slow
def test_test_is_scored_at_the_parameters_best_on_valid(tmp_path):
  # A constant, too-high learning rate makes the valid curve bounce, so the best step is not the last.
  config = tiny(train__num_steps=12, train__eval_every=1, train__checkpoint_every=0, opt__schedule="constant",
                opt__warmup_steps=0, opt__learning_rate=0.3)
  summary = train.train_and_evaluate(config, str(tmp_path / "long"))
  valid = valid_records(tmp_path / "long" / "metrics.jsonl")
  best = min(valid, key=lambda r: r["mse"])
  assert summary["best_valid"]["step"] == best["step"] < 12, [r["mse"] for r in valid]
  assert summary["best_valid"]["mse"] == best["mse"]
  # The same run stopped at the best step: its final parameters are the ones selected above.
  config.train.num_steps = best["step"]
  short = train.train_and_evaluate(config, str(tmp_path / "short"))
  assert short["test_final"]["mse"] == pytest.approx(summary["test_at_best_valid"]["mse"], rel=1e-6)
  assert summary["test_final"]["mse"] != summary["test_at_best_valid"]["mse"]


@pytest.mark.slow
def test_best_valid_counts_evaluations_from_before_a_resume(tmp_path):
  config = tiny(train__num_steps=6, train__checkpoint_every=2, train__eval_every=2)
  train.train_and_evaluate(config, str(tmp_path), steps_this_run=3)
  path = tmp_path / "metrics.jsonl"
  records = read_jsonl(path)
  for r in records:  # make the step-2 evaluation the best one the run will ever see
    if r["split"] == "valid":
      r["mse"] = -1.0
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  resumed = train.train_and_evaluate(config, str(tmp_path))
  assert resumed["best_valid"]["step"] == 2 and resumed["best_valid"]["mse"] == -1.0
  assert resumed["test_at_best_valid"]["step"] == 2


@pytest.mark.slow
def test_vmapped_seeds_equal_separate_runs(tmp_path):
  config = tiny(train__num_steps=6, train__eval_every=2, model__dropout=0.1, model__num_layers=2)
  config.num_seeds = 2
  together = train.train_and_evaluate(config, str(tmp_path / "together"))
  assert together["seeds"] == [0, 1] and len(together["test_at_best_valid"]["values"]) == 2
  losses = set()
  for seed, run in zip((0, 1), together["runs"]):
    alone = train.train_and_evaluate(tiny(train__num_steps=6, train__eval_every=2, model__dropout=0.1, model__num_layers=2,
                                          seed=seed), str(tmp_path / f"alone{seed}"))
    folder = tmp_path / "together" / f"seed={seed}"
    assert json.load(open(folder / "summary.json")) == run and json.load(open(folder / "config.json"))["seed"] == seed
    assert run["best_valid"]["step"] == alone["best_valid"]["step"]
    for key in ("best_valid", "test_at_best_valid", "test_final", "train"):
      for name in ("loss", "mse"):
        assert run[key][name] == pytest.approx(alone[key][name], rel=1e-5, abs=1e-7), (seed, key, name)
    records, alone_records = read_jsonl(folder / "metrics.jsonl"), read_jsonl(tmp_path / f"alone{seed}" / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in records] == [(r["step"], r["split"]) for r in alone_records]
    losses.add(run["train"]["loss"])
  assert len(losses) == 2  # the seeds really differ


def poison_seed(monkeypatch, seed):
  """Makes the initial parameters of `seed` NaN (the init runs under vmap, so the seed is found by its key)."""
  create = train.create_train_state
  target = jax.random.key_data(jax.random.split(jax.random.key(seed))[0])

  def poisoned(model, tx, task, key):
    state = create(model, tx, task, key)
    bad = jnp.all(jax.random.key_data(key) == target)
    return state.replace(params=jax.tree_util.tree_map(lambda p: jnp.where(bad, jnp.nan, p), state.params))

  monkeypatch.setattr(train, "create_train_state", poisoned)


@pytest.mark.slow
def test_a_seed_with_a_nonfinite_loss_stops_and_the_others_go_on(tmp_path, monkeypatch):
  poison_seed(monkeypatch, 1)
  config = tiny(train__num_steps=4, train__eval_every=2)
  config.num_seeds = 3
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result["diverged_seeds"] == [1]
  stopped = result["runs"][1]
  assert stopped["stopped"]["step"] == 1 and stopped["stopped"]["metric"] in ("loss", "grad_norm")
  assert stopped["best_valid"] is None and stopped["test_at_best_valid"] is None
  assert [r["split"] for r in read_jsonl(tmp_path / "seed=1" / "metrics.jsonl")] == ["stopped", "test"]
  for run in (result["runs"][0], result["runs"][2]):
    assert run["stopped"] is None and np.isfinite(run["test_at_best_valid"]["mse"])
  alone = train.train_and_evaluate(tiny(train__num_steps=4, train__eval_every=2, seed=2), str(tmp_path / "alone"))
  assert result["runs"][2]["test_at_best_valid"]["mse"] == pytest.approx(alone["test_at_best_valid"]["mse"], rel=1e-5)


@pytest.mark.slow
def test_weight_noise_takes_the_gradient_at_noisy_weights():
  config = tiny(opt__weight_noise=0.075)
  task, model, tx, schedule = train.build(config)
  state = train.create_train_state(model, tx, task, jax.random.key(0))
  key = jax.random.key(5)
  _, noisy = train.train_step(state, key, model=model, task=task, schedule=schedule, batch_size=4, weight_noise=0.075)
  _, clean = train.train_step(state, key, model=model, task=task, schedule=schedule, batch_size=4)
  assert noisy["loss"] != clean["loss"]
  batch = task.train_batch(jax.random.split(key)[0], 4)
  perturbed = train.add_noise(state.params, jax.random.fold_in(key, 2), 0.075)
  outputs = model.apply({"params": perturbed}, batch["xs"])
  assert float(noisy["loss"]) == pytest.approx(float(task.loss_and_metrics(outputs, batch)[0]), rel=1e-5)
  deltas = [np.std(np.asarray(a - b)) for a, b in zip(jax.tree_util.tree_leaves(perturbed), jax.tree_util.tree_leaves(state.params))
            if a.size > 50]
  assert all(0.05 < d < 0.1 for d in deltas), deltas


@pytest.mark.slow
def test_early_stopping_stops_each_seed_after_its_patience_and_resumes(tmp_path):
  config = tiny(train__num_steps=40, train__eval_every=1, train__checkpoint_every=5, train__early_stopping=3,
                opt__schedule="constant", opt__warmup_steps=0, opt__learning_rate=0.3, num_seeds=2)
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
  for run in whole["runs"]:
    stop = run["stopped"]
    assert "no better valid mse in 3 evaluations" in stop["reason"] and "metric" not in stop
    assert stop["last_step"] == run["steps_run"] == run["best_valid"]["step"] + 3 < 40
    assert run["test_final"]["step"] == run["steps_run"]
  steps = [r["steps_run"] for r in whole["runs"]]
  part = train.train_and_evaluate(config, str(tmp_path / "parts"), steps_this_run=min(steps) - 1)
  assert not part["finished"]
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  for a, b in zip(resumed["runs"], whole["runs"]):
    for key in ("stopped", "best_valid", "test_at_best_valid", "test_final"):
      assert a[key] == b[key], key
  with pytest.raises(train.ConfigError, match=r"train.early_stopping needs train.eval_every > 0"):
    train.train_and_evaluate(tiny(train__early_stopping=2, train__eval_every=0), str(tmp_path / "bad"))


@pytest.mark.slow
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = tiny(train__num_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  blown = tiny(train__num_steps=40, opt__learning_rate=1e30, opt__schedule="constant")
  with pytest.raises(train.NonFiniteError, match=r"(loss|grad_norm) is (nan|inf) at step \d+; stopped \(the last good checkpoint is step \d+"):
    train.train_and_evaluate(blown, str(tmp_path))
  _, _, restored, _ = train.restore(blown, str(tmp_path))
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(jax.device_get(restored)))


@pytest.mark.slow
def test_checkpoint_of_another_model_is_an_error_and_the_run_is_kept(tmp_path):
  train.train_and_evaluate(tiny(), str(tmp_path))
  config_before = (tmp_path / "config.json").read_text()
  with pytest.raises(train.CheckpointError, match=r"written by another model or optimizer \(state/params/.*checkpoint \(\d+, \d+\), model"):
    train.train_and_evaluate(tiny(model__features=16), str(tmp_path))
  with pytest.raises(train.CheckpointError, match=r"recurrent_bias_n: not in the model"):
    train.train_and_evaluate(tiny(model__cell_kwargs={"reset_after": False}), str(tmp_path))
  assert (tmp_path / "config.json").read_text() == config_before
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]


@pytest.mark.slow
def test_damaged_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
  train.train_and_evaluate(tiny(), str(tmp_path))
  for path in (tmp_path / "checkpoints" / "4").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  with pytest.raises(train.CheckpointError, match=r"checkpoints/4 is damaged"):
    train.train_and_evaluate(tiny(), str(tmp_path))


@pytest.mark.parametrize(
  "overrides,message",
  [
    (dict(opt__name="lamb"), r"opt.name='lamb' is not an optimizer; expected one of \['adam', 'adamw', 'rmsprop', 'sgd'\]"),
    (dict(opt__schedule="linear"), r"opt.schedule='linear' is not a schedule"),
    (dict(model__cell="gruu"), r"model.cell='gruu' is not a cell"),
    (dict(model__dtype="float16"), r"model.dtype='float16' is not supported"),
    (dict(model__front_end="haiku"), r"model.front_end='haiku' is not a front-end; expected one of \['linen', 'nnx'\]"),
    (dict(model__features=0), r"model.features must be a positive integer; got 0"),
    (dict(model__dropout=1.0), r"model.dropout must be in \[0, 1\); got 1.0"),
    (dict(train__batch_size=-1), r"train.batch_size must be a positive integer; got -1"),
    (dict(opt__warmup_steps=10), r"opt.warmup_steps \(10\) must be smaller than train.num_steps \(4\)"),
    (dict(task__seq_len=0), r"task.seq_len must be a positive integer for the adding task; got 0"),
    (dict(opt__learning_rate=0.0), r"opt.learning_rate must be positive"),
    (dict(opt__nesterov=True), r"opt.nesterov=True needs opt.name='sgd' and opt.momentum > 0; got opt.name='adam'"),
  ],
)
def test_bad_config_values_name_the_key(tmp_path, overrides, message):
  with pytest.raises(train.ConfigError, match=message):
    train.train_and_evaluate(tiny(**overrides), str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,schedule", [("adamw", "constant"), ("rmsprop", "warmup_cosine"), ("sgd", "constant")])
def test_optimizers_and_schedules(tmp_path, optimizer, schedule):
  summary = train.train_and_evaluate(tiny(opt__name=optimizer, opt__schedule=schedule, opt__momentum=0.9), str(tmp_path))
  assert np.isfinite(summary["train"]["loss"])


def test_nesterov_momentum_is_optax_nesterov_sgd():
  opt = tiny(opt__name="sgd", opt__momentum=0.9, opt__nesterov=True, opt__clip_norm=0.0, opt__schedule="constant",
             opt__warmup_steps=0).opt
  tx, _ = train.make_optimizer(opt, 10)
  params, grads = jnp.ones(3), jnp.asarray([1.0, -2.0, 0.5])
  state, want_state = tx.init(params), optax.sgd(opt.learning_rate, 0.9, nesterov=True).init(params)
  for _ in range(3):
    updates, state = tx.update(grads, state)
    want, want_state = optax.sgd(opt.learning_rate, 0.9, nesterov=True).update(grads, want_state)
    np.testing.assert_allclose(updates, want, rtol=1e-6)
  plain, _ = optax.sgd(opt.learning_rate, 0.9).update(grads, optax.sgd(opt.learning_rate, 0.9).init(params))
  first, _ = tx.update(grads, tx.init(params))
  assert not np.allclose(first, plain)


@pytest.mark.slow
def test_adding_problem_learns_at_a_tiny_size(tmp_path):
  config = tiny(model__features=32, task__seq_len=10, task__eval_size=500, opt__learning_rate=1e-2, opt__warmup_steps=20)
  config.train.update(num_steps=400, batch_size=32, log_every=100, eval_every=0, checkpoint_every=0)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["test_at_best_valid"]["mse"] < summary["baseline"] / 5, summary["test_at_best_valid"]


def cli(workdir, *overrides):
  args = [f"--workdir={workdir}", "--config.task.seq_len=6", "--config.model.features=8", "--config.opt.warmup_steps=1",
          "--config.task.eval_size=16", "--config.train.batch_size=4", *overrides]
  return [sys.executable, "-m", "experiments.train", *args]


def finished_checkpoints(workdir):
  """Steps of the finished checkpoints (orbax writes into a *-tmp folder and renames it when done)."""
  folder = workdir / "checkpoints"
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def wait_for_checkpoint(workdir, process, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps = finished_checkpoints(workdir)
    if steps:
      return max(steps)
    assert process.poll() is None, process.communicate()
    time.sleep(0.02)
  raise AssertionError("no checkpoint appeared")


LONG = ["--config.train.num_steps=2000", "--config.train.checkpoint_every=100", "--config.train.log_every=100",
        "--config.train.eval_every=0"]


@pytest.mark.slow
def test_cli_killed_with_sigkill_and_restarted_ends_like_an_uninterrupted_run(tmp_path):
  killed = subprocess.Popen(cli(tmp_path / "killed", *LONG), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  wait_for_checkpoint(tmp_path / "killed", killed)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed; make it longer"
  restarted = subprocess.run(cli(tmp_path / "killed", *LONG), cwd=ROOT, capture_output=True, text=True)
  assert restarted.returncode == 0, restarted.stderr
  assert "resumed from the checkpoint at step" in restarted.stdout
  whole = subprocess.run(cli(tmp_path / "whole", *LONG), cwd=ROOT, capture_output=True, text=True)
  assert whole.returncode == 0, whole.stderr
  final = lambda d: json.load(open(tmp_path / d / "summary.json"))
  assert final("killed")["test_at_best_valid"] == final("whole")["test_at_best_valid"]
  assert final("killed")["train"]["loss"] == final("whole")["train"]["loss"]


@pytest.mark.slow
def test_cli_ctrl_c_saves_a_checkpoint_before_exiting(tmp_path):
  run = subprocess.Popen(cli(tmp_path, *LONG), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  first = wait_for_checkpoint(tmp_path, run)
  time.sleep(0.3)
  run.send_signal(signal.SIGINT)
  _, err = run.communicate(timeout=120)
  assert run.returncode == 130, err
  stopped = int(re.search(r"after step (\d+); checkpoint saved", err).group(1))
  assert stopped > first
  assert finished_checkpoints(tmp_path)[-1] == stopped  # saved at the step where it stopped


@pytest.mark.parametrize(
  "flag,message",
  [
    ("--config.model.featurs=3", "error: bad flag or config override: no such config key featurs"),
    ("--config=configs/gru.py:cpy", "error: bad flag or config override: ValueError: unknown task 'cpy'"),
    ("--config.opt.name=lamb", "error: opt.name='lamb' is not an optimizer; expected one of"),
  ],
)
@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path, flag, message):
  result = subprocess.run(cli(tmp_path, flag), cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.strip().startswith(message), result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_cli_trains_several_seeds_as_one_program(tmp_path):
  result = subprocess.run(cli(tmp_path, "--config.num_seeds=2", "--config.train.num_steps=4", "--config.train.eval_every=2"),
                          cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  last = result.stdout.strip().splitlines()[-1]
  assert re.search(r"gru on adding: test mse \S+ ± \S+ \(mean ± std over seeds \[0, 1\], each at its best valid step\)", last), last
  for seed in (0, 1):
    assert json.load(open(tmp_path / f"seed={seed}" / "summary.json"))["seed"] == seed
  assert json.load(open(tmp_path / "config.json"))["num_seeds"] == 2 and (tmp_path / "checkpoints").is_dir()


def _fixture_module(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "data" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_a_checkpoint_of_an_earlier_release_restores_and_resumes(tmp_path):
  # tests/data/checkpoint-v1: written by commit 3bd390e's train.py (tests/data/make_checkpoint.py)
  fixture = _fixture_module("make_checkpoint")
  workdir = tmp_path / "run"
  shutil.copytree(ROOT / "tests" / "data" / "checkpoint-v1", workdir)
  stored = np.load(workdir / "outputs.npz")
  _, model, item, step = train.restore(fixture.config(), str(workdir))
  assert step == int(stored["step"]) == 2
  params = jax.tree_util.tree_map(lambda x: x[0], item["state"].params)
  np.testing.assert_allclose(model.apply({"params": params}, fixture.inputs()), stored["outputs"], rtol=1e-6, atol=1e-6)
  longer = fixture.config()
  longer.train.num_steps = 4
  summary = train.train_and_evaluate(longer, str(workdir))
  assert summary["finished"] and [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "train"][-1] == 4
