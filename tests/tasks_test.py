"""Each task's data, loss and baseline."""

import math
import re
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gru_jax.lab import config as base
from gru_jax.lab import tasks
from gru_jax.lab.tasks import adding, copy, digits


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
  batch = {k: jnp.asarray(v) for k, v in task.test_set.items()}
  _, metrics = task.loss_and_metrics(jnp.ones_like(batch["ys"]), batch)
  assert abs(float(metrics["mse"]) - task.baseline) < 0.01
  assert task.baseline == pytest.approx(1 / 6)


@pytest.mark.slow
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


def digits_parts(**overrides):
  return digits.load(task_config("digits", **overrides))


def test_digits_split_is_fixed_disjoint_and_scaled():
  parts = digits_parts()
  train, valid, test = parts["train"], parts["valid"], parts["test"]
  assert train["xs"].shape[1:] == (64, 1) and sum(len(p["ys"]) for p in parts.values()) == 1797
  assert 0.0 <= train["xs"].min() and train["xs"].max() <= 1.0
  rows = lambda d: {r.tobytes() for r in d["xs"][:, :, 0]}
  assert (len(test["ys"]), len(valid["ys"])) == (359, 180)
  # disjoint as images (the corpus holds a few duplicate images, hence the tolerance)
  assert len(rows(train) & rows(test)) < 5 and len(rows(train) & rows(valid)) < 5
  again = digits_parts()["train"]
  np.testing.assert_array_equal(again["xs"], train["xs"])
  other = digits_parts(split_seed=1)["train"]
  assert not np.array_equal(other["ys"], train["ys"])
  permuted = digits_parts(permute=True)
  assert rows(permuted["train"]) != rows(train)  # pixels reordered ...
  np.testing.assert_allclose(np.sort(permuted["train"]["xs"], axis=1), np.sort(train["xs"], axis=1))  # ... the same pixels
  np.testing.assert_array_equal(permuted["test"]["ys"], test["ys"])  # ... and the same split


def test_shuffled_split_keeps_the_test_part_and_takes_valid_from_the_rest():
  from gru_jax.lab.tasks import common

  config = task_config("digits", split_seed=3, test_fraction=0.2, valid_fraction=0.1)
  parts = common.shuffled_split(50, config, "digits")
  assert [len(parts[k]) for k in ("train", "valid", "test")] == [35, 5, 10]
  assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(50))
  order = np.random.default_rng(3).permutation(50)
  np.testing.assert_array_equal(parts["test"], np.sort(order[:10]))  # the test rows of a train/test split
  with pytest.raises(tasks.DataError, match=r"2 rows are too few to hold out"):
    common.shuffled_split(2, config, "digits")
  with pytest.raises(ValueError, match=r"task.test_fraction \+ task.valid_fraction must be below 1"):
    common.shuffled_split(50, task_config("digits", test_fraction=0.5, valid_fraction=0.5), "digits")


def test_generated_tasks_validate_and_test_on_different_fixed_sets():
  for name in ("adding", "copy"):
    task = tasks.make(task_config(name, seq_len=6, eval_size=8))
    again = tasks.make(task_config(name, seq_len=6, eval_size=8))
    assert task.size("valid") == task.size("test") == 8
    assert not np.array_equal(task.valid_set["xs"], task.test_set["xs"])
    np.testing.assert_array_equal(task.test_set["xs"], again.test_set["xs"])
    with pytest.raises(ValueError, match=rf"split='train' is not an evaluation split of the {name} task"):
      task.held_out("train")


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
    ("adding", dict(name="addition"), re.escape(f"task.name='addition' is not a task; expected one of {sorted(tasks.TASKS)}")),
    ("adding", dict(seq_len=-3), r"task.seq_len must be a positive integer for the adding task; got -3"),
    ("adding", dict(seq_len=1), r"task.seq_len must be at least 2"),
    ("copy", dict(eval_size=0), r"task.eval_size must be a positive integer for the copy task"),
    ("digits", dict(test_fraction=1.5), r"task.test_fraction must lie in \(0, 1\)"),
    ("digits", dict(valid_fraction=0.0), r"task.valid_fraction must lie in \(0, 1\) for the digits task; got 0.0"),
    ("forecast", dict(valid_fraction=0.9), r"task.test_fraction \+ task.valid_fraction must be below 1 for the forecast task"),
  ],
)
def test_bad_task_settings_name_the_key(name, overrides, message):
  with pytest.raises(ValueError, match=message):
    tasks.make(task_config(name, **overrides))


def test_unknown_task_in_config_arg():
  with pytest.raises(ValueError, match=r"unknown task 'cpy'; expected one of \['adding', 'copy'"):
    base.get_config("cpy")
  assert isinstance(base.get_config("copy"), ml_collections.ConfigDict)


# Polyphonic music and forecasting: the real packages, small slices.


class _Note:
  def __init__(self, offset, length, midis):
    self.offset, self.quarterLength = offset, length
    self.pitches = [type("P", (), {"midi": m})() for m in midis]


class _Score:
  def __init__(self, notes, highest):
    self.notes, self.highestTime = notes, highest

  def flatten(self):
    return self


def test_roll_on_the_quarter_note_grid():
  from gru_jax.lab.tasks import chorales

  score = _Score([_Note(0.0, 2.0, [60, 64]), _Note(2.5, 0.5, [62]), _Note(2.0, 1.0, [20, 109, 108])], 3.0)
  roll = chorales.to_roll(score)
  assert roll.shape == (3, 88)
  assert set(np.nonzero(roll[0])[0] + 21) == {60, 64} and set(np.nonzero(roll[1])[0] + 21) == {60, 64}
  assert set(np.nonzero(roll[2])[0] + 21) == {108}  # 20 and 109 are off the keyboard; 62 starts between grid points


def test_chorales_rolls_split_and_cache(tmp_path):
  from gru_jax.lab.tasks import chorales

  import music21  # pylint: disable=g-import-not-at-top

  names, rolls, tonics = chorales.load_rolls(str(tmp_path), limit=8)
  assert len(tonics) == len(rolls) and all(0 <= t < 12 for t in tonics)
  lengths = [len(r) for r in rolls]
  assert 2 <= len(rolls) <= 8 and min(lengths) >= 2
  assert all(r.shape[1] == 88 and r.max() == 1 for r in rolls)
  parts = chorales.split(names, rolls, 0)
  assert sorted(sum(parts.values(), [])) == list(range(len(rolls)))  # disjoint and complete
  assert parts == chorales.split(names, rolls, 0)
  path = chorales.cache_path(str(tmp_path), music21.__version__, limit=8)
  assert pathlib.Path(path).exists()
  again_names, again, again_tonics = chorales.load_rolls(str(tmp_path), limit=8)  # from the cache
  assert again_names == names and again_tonics == tonics and all(np.array_equal(a, b) for a, b in zip(again, rolls))
  with np.load(path) as data:  # damage it: the loader notices and rebuilds
    damaged = dict(data)
  damaged["rolls"] = damaged["rolls"].copy()
  damaged["rolls"][0, 0] ^= 1
  np.savez(path[: -len(".npz")], **damaged)
  with pytest.warns(UserWarning, match="is damaged"):
    _, rebuilt, _ = chorales.load_rolls(str(tmp_path), limit=8)
  assert all(np.array_equal(a, b) for a, b in zip(rebuilt, rolls))


def test_transposing_to_c_moves_the_tonic_by_the_fewest_semitones():
  from gru_jax.lab.tasks import chorales

  roll = np.zeros((2, 88), np.uint8)
  roll[0, 67 - 21] = roll[1, 71 - 21] = 1  # G4, then B4
  up = chorales.to_c(roll, tonic=7)  # G: up 5 semitones to C
  assert np.nonzero(up[0])[0][0] + 21 == 72 and np.nonzero(up[1])[0][0] + 21 == 76
  down = chorales.to_c(roll, tonic=5)  # F: down 5
  assert np.nonzero(down[0])[0][0] + 21 == 62
  np.testing.assert_array_equal(chorales.to_c(roll, tonic=0), roll)
  edge = np.zeros((1, 88), np.uint8)
  edge[0, 87] = 1
  assert chorales.to_c(edge, tonic=6).sum() == 0  # F#: up 6, off the keyboard
  # against music21's own transposition of a real chorale, whose key then analyses as C
  import music21  # pylint: disable=g-import-not-at-top

  name = sorted(str(n) for n in music21.corpus.chorales.Iterator(returnType="filename"))[1]
  score = music21.corpus.parse(name)
  tonic = int(score.analyze("key").tonic.pitchClass)
  moved = score.transpose(-(((tonic + 6) % 12) - 6))
  np.testing.assert_array_equal(chorales.to_c(chorales.to_roll(score), tonic), chorales.to_roll(moved))
  assert moved.analyze("key").tonic.name == "C"
  with pytest.raises(ValueError, match=r"task.transpose='D' is not supported"):
    tasks.make(task_config("chorales", transpose="D"))


def test_chorales_nll_is_per_valid_frame():
  from gru_jax.lab.tasks import chorales

  batch = chorales.pad([np.ones((3, 88), np.uint8), np.ones((5, 88), np.uint8)])
  assert batch["xs"].shape == (2, 4, 88) and list(batch["seq_lengths"]) == [2, 4]
  logits = jnp.zeros((2, 4, 88))  # p = 1/2 on every key: ln 2 per key per frame
  nll, metrics = chorales.loss_and_metrics(logits, {k: jnp.asarray(v) for k, v in batch.items()})
  assert float(nll) == pytest.approx(88 * math.log(2), rel=1e-5)
  assert int(metrics["weight"]) == 6


def test_forecast_windows_normalise_on_the_train_span_only():
  from gru_jax.lab.tasks import forecast

  series = np.arange(20, dtype=np.float64)
  parts = forecast.windows(series, seq_len=3, horizon=2, valid_fraction=0.25, test_fraction=0.25)
  train, valid, test = parts["train"], parts["valid"], parts["test"]
  span = series[:10]  # the last 5 values are test, the 5 before them valid
  z = (series - span.mean()) / span.std()
  np.testing.assert_allclose(train["xs"][0, :, 0], z[0:3], rtol=1e-6)
  np.testing.assert_allclose(train["ys"][0, 0], z[4], rtol=1e-6)  # 2 steps after the window's last
  assert len(test["ys"]) == 5 and test["ys"][0, 0] == pytest.approx(z[15])
  assert len(valid["ys"]) == 5 and valid["ys"][0, 0] == pytest.approx(z[10])
  assert train["ys"][-1, 0] == pytest.approx(z[9])
  with pytest.raises(tasks.DataError, match="too few"):
    forecast.windows(series, seq_len=30, horizon=1, valid_fraction=0.1, test_fraction=0.25)


@pytest.mark.parametrize("series", ["sunspots", "co2"])
def test_forecast_series_load(series):
  task = tasks.make(task_config("forecast", series=series))
  assert np.isfinite(task.test_set["xs"]).all() and np.isfinite(task.valid_set["xs"]).all() and task.baseline > 0
  with pytest.raises(ValueError, match=r"task.series='nile' is not a series"):
    tasks.make(task_config("forecast", series="nile"))


def test_missing_data_package_names_the_install_command(monkeypatch):
  from gru_jax.lab.tasks import common

  monkeypatch.setitem(sys.modules, "statsmodels", None)
  monkeypatch.setitem(sys.modules, "statsmodels.api", None)
  with pytest.raises(tasks.DataError, match=r"needs statsmodels: pip install statsmodels \(or: pip install -e '.\[data\]'\)"):
    common.require_package("statsmodels.api", "forecast")
