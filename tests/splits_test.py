"""No example sits in two splits, for every task with a fixed data set."""

import hashlib

import ml_collections
import numpy as np
import pytest

from gru_jax.lab import config as base
from gru_jax.lab import tasks
from gru_jax.lab.tasks import char_lm, chorales, sentiment, text_classify
from gru_jax.lab.tasks.common import SPLITS

# Tasks whose examples are drawn afresh (adding, copy) or cut from one series by time (forecast:
# its valid and test spans follow the train span) have no fixed examples to repeat.
GENERATED = {"adding", "copy", "forecast"}


def example_keys(batch) -> list[str]:
  """A hash per example of a task's arrays: its steps up to seq_lengths (padding ignored) and its
  target."""
  keys = []
  for i in range(len(batch["xs"])):
    length = int(batch["seq_lengths"][i]) if "seq_lengths" in batch else None
    parts = [np.ascontiguousarray(batch[k][i][:length] if np.ndim(batch[k][i]) else batch[k][i]).tobytes()
             for k in sorted(batch) if k != "seq_lengths"]
    keys.append(hashlib.sha256(b"|".join(parts)).hexdigest())
  return keys


def assert_disjoint(parts: dict):
  """parts: split -> keys of its examples."""
  for i, a in enumerate(SPLITS):
    for b in SPLITS[i + 1 :]:
      common = set(parts[a]) & set(parts[b])
      assert not common, f"{len(common)} examples in both {a} and {b}"


def text_parts(name):
  config = base.get_config(name).task
  if name == "char_lm":
    return char_lm.split_articles(config)
  texts, labels = text_classify.load_table(sentiment.csv_path(), "text", "sentiment", ",", config.encoding_errors)
  return {split: part_texts for split, (part_texts, _) in text_classify.split_rows(texts, labels, config, name).items()}


def test_every_fixed_data_task_is_checked():
  assert set(tasks.TASKS) - GENERATED == {*ARRAY_TASKS, "sentiment", "char_lm", "text_classify"}


ARRAY_TASKS = {"digits": {}, "jsb_chorales": {}, "nottingham": {}, "musedata": {}, "piano_midi": {},
               "chorales": {"limit": 40, "transpose": "C"}}


@pytest.mark.parametrize("name", sorted(ARRAY_TASKS))
def test_no_example_in_two_splits(name):
  config = base.get_config(name).task
  config.update(ARRAY_TASKS[name])
  task = tasks.make(config)
  assert_disjoint({split: example_keys(task.held_out(split)) for split in SPLITS})


@pytest.mark.parametrize("name", ["sentiment", "char_lm"])
def test_no_text_in_two_splits(name):
  parts = text_parts(name)
  assert_disjoint(parts)
  assert all(len(set(part)) == len(part) for part in parts.values())  # nor twice in one
  assert sum(len(part) for part in parts.values()) == {"sentiment": 37213, "char_lm": 2127}[name]


def test_the_published_polyphonic_splits_share_pieces_without_dedupe():
  # the check above can fail: Nottingham's published train set holds a valid and a test piece
  config = base.get_config("nottingham").task
  config.dedupe = False
  task = tasks.make(config)
  keys = {split: example_keys(task.held_out(split)) for split in SPLITS}
  with pytest.raises(AssertionError, match="examples in both train and"):
    assert_disjoint(keys)


def test_equal_texts_count_once_under_the_majority_label():
  texts = ["a", "b", "a", "c", "a", "b", "d", "d"]
  labels = ["x", "y", "z", "x", "z", "x", "y", "y"]
  assert text_classify.unique_rows(texts, labels) == (["a", "c", "d"], ["z", "x", "y"])  # "b" ties: dropped


def test_text_classify_dedupe_is_a_setting(tmp_path):
  path = tmp_path / "rows.csv"
  rows = [("same words", "pos")] * 30 + [(f"text {i}", "pos" if i % 2 else "neg") for i in range(40)]
  path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
  config = base.get_config("text_classify").task
  config.update(path=str(path), seq_len=4, vocab_size=50)
  assert sum(tasks.make(config).size(s) for s in ("valid", "test")) == round(0.2 * 41) + round(0.1 * 41)
  config.dedupe = False
  assert sum(tasks.make(config).size(s) for s in ("valid", "test")) == round(0.2 * 70) + round(0.1 * 70)
  with pytest.raises(ValueError, match="task.dedupe must be True or False for the text_classify task"):
    tasks.make(ml_collections.ConfigDict({**config.to_dict(), "dedupe": "no"}))


def test_a_chorale_in_two_keys_counts_once_after_transposition(monkeypatch):
  roll = np.zeros((4, 88), np.uint8)
  roll[np.arange(4), [39, 43, 46, 51]] = 1  # C4 E4 G4 C5 (MIDI 60 64 67 72)
  in_d = np.roll(roll, 2, axis=1)  # the same chorale two semitones up, in D
  others = [np.eye(88, dtype=np.uint8)[i : i + 3] for i in range(5, 10)]
  rolls, tonics = [roll, in_d, *others], [0, 2] + [0] * 5
  monkeypatch.setattr(chorales, "load_rolls", lambda cache_dir, limit: ([f"c{i}" for i in range(7)], rolls, tonics))
  config = base.get_config("chorales").task
  config.transpose = "C"
  task = tasks.make(config)
  assert sum(task.size(s) for s in SPLITS) == 6
  assert_disjoint({split: example_keys(task.held_out(split)) for split in SPLITS})
  config.transpose = ""  # as written, the two are different rolls
  assert sum(tasks.make(config).size(s) for s in SPLITS) == 7
