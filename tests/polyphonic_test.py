"""The four polyphonic sets shipped in the package: counts, baselines, checksums, batches."""

import pathlib
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from gru_jax.lab import config as base
from gru_jax.lab import tasks
from gru_jax.lab.tasks import chorales, polyphonic

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "polyphonic"
# Pieces and frames per split, as published (Boulanger-Lewandowski et al. 2012; ../shared/data/polyphonic/SOURCE.md).
PUBLISHED = {
  "jsb_chorales": {"train": (229, 13807), "valid": (76, 4602), "test": (77, 4725)},
  "nottingham": {"train": (694, 176561), "valid": (173, 45513), "test": (170, 44463)},
  "musedata": {"train": (524, 245202), "valid": (135, 82755), "test": (124, 64339)},
  "piano_midi": {"train": (87, 75911), "valid": (12, 8540), "test": (25, 19036)},
}
# Test NLL per frame of the independent-Bernoulli baseline (train frequencies, deduplicated train),
# computed once from the shipped files; a change here means the data or the baseline changed.
BASELINES = {"jsb_chorales": 11.0595, "nottingham": 10.2518, "musedata": 11.5101, "piano_midi": 11.0456}


@pytest.mark.parametrize("name", sorted(polyphonic.SETS))
def test_published_counts_dedupe_and_baseline(name):
  pieces = polyphonic.load(name)
  assert {s: (len(r), sum(map(len, r))) for s, r in pieces.items()} == PUBLISHED[name]
  assert all(r.dtype == np.uint8 and r.shape[1] == 88 and r.max() <= 1 for rolls in pieces.values() for r in rolls)
  clean = polyphonic.dedupe(pieces)
  dropped = 2 if name == "nottingham" else 0  # one of its train pieces is in valid, one in test
  assert len(clean["train"]) == len(pieces["train"]) - dropped
  assert [len(clean[s]) for s in ("valid", "test")] == [len(pieces[s]) for s in ("valid", "test")]
  keys = {s: {chorales.piece_key(r) for r in clean[s]} for s in clean}
  assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
  assert polyphonic.bernoulli_baseline(clean["train"], clean["test"]) == pytest.approx(BASELINES[name], abs=1e-4)


def test_jsb_task_predicts_every_frame_once():
  task = tasks.make(base.get_config("jsb_chorales").task)
  assert task.output_features == 88 and task.head == "each" and task.metric == "nll"
  for split, (pieces, frames) in PUBLISHED["jsb_chorales"].items():
    held = task.held_out(split)
    assert held["xs"].shape[0] == pieces and int(held["seq_lengths"].sum()) == frames
    np.testing.assert_array_equal(held["xs"][:, 0], 0)  # a zero frame first, so frame 0 is predicted too
    np.testing.assert_array_equal(held["xs"][:, 1:], held["ys"][:, :-1])
  assert task.baseline == pytest.approx(BASELINES["jsb_chorales"], abs=1e-4)
  # the baseline equals the loss of logits at the training frequencies, through the task's own loss
  train = np.concatenate(polyphonic.load("jsb_chorales")["train"])
  p = np.clip(train.mean(0), 1e-6, 1 - 1e-6)
  logits = np.broadcast_to(np.log(p / (1 - p)).astype(np.float32), task.test_set["ys"].shape)
  _, metrics = task.loss_and_metrics(logits, task.test_set)
  assert float(metrics["nll"]) == pytest.approx(task.baseline, rel=1e-5)


def test_bytes_round_trip_and_damaged_files(tmp_path):
  rng = np.random.default_rng(0)
  pieces = {s: [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in (3, 7)] for s in ("train", "valid", "test")}
  back = polyphonic.from_bytes(polyphonic.to_bytes(pieces))
  for split in pieces:
    for a, b in zip(pieces[split], back[split]):
      np.testing.assert_array_equal(a, b)
  with pytest.raises(tasks.DataError, match="0/1 array"):
    polyphonic.to_bytes({**pieces, "train": [np.full((2, 88), 2)]})
  for name in ("jsb_chorales.npz", "SHA256SUMS"):
    shutil.copy(polyphonic.DATA_DIR / name, tmp_path / name)
  data = bytearray((tmp_path / "jsb_chorales.npz").read_bytes())
  data[100] ^= 1
  (tmp_path / "jsb_chorales.npz").write_bytes(bytes(data))
  with pytest.raises(tasks.DataError, match=r"jsb_chorales\.npz is damaged"):
    polyphonic.load("jsb_chorales", tmp_path)
  with pytest.raises(tasks.DataError, match=r"nottingham\.npz is missing"):
    polyphonic.load("nottingham", tmp_path)


@pytest.mark.skipif(not SHARED.exists(), reason="the source .mat files are not on this machine")
def test_the_shipped_files_equal_the_source_files():
  for name, mat in polyphonic.MAT_FILES.items():
    source = polyphonic.read_mat(SHARED / mat)
    shipped = polyphonic.load(name)
    for split in source:
      assert len(source[split]) == len(shipped[split])
      for a, b in zip(source[split], shipped[split]):
        np.testing.assert_array_equal(a, b)


def test_training_windows_are_slices_of_pieces():
  rng = np.random.default_rng(1)
  rolls = [(rng.random((n, 88)) < 0.3).astype(np.uint8) for n in (4, 9, 30)]
  whole = jax.device_get(polyphonic.random_windows(rolls, 0)(jax.random.key(0), 64))
  assert whole["xs"].shape == (64, 30, 88)
  windowed = jax.device_get(polyphonic.random_windows(rolls, 6)(jax.random.key(1), 64))
  assert windowed["xs"].shape == (64, 6, 88)
  for batch, steps in ((whole, 30), (windowed, 6)):
    for xs, ys, length in zip(batch["xs"], batch["ys"], batch["seq_lengths"]):
      np.testing.assert_array_equal(xs[1:length], ys[: length - 1])  # teacher forcing: x_t = y_{t-1}
      assert not xs[length:].any() and not ys[length:].any()
      # ys[:length] is a run of consecutive frames of one piece, starting where xs[0] ends
      matches = [(r, s) for r in rolls for s in range(len(r) - length + 1)
                 if np.array_equal(r[s : s + length], ys[:length])
                 and np.array_equal(xs[0], r[s - 1] if s else np.zeros(88))]
      assert matches, "a window is not a slice of a piece"
      r, s = matches[0]
      assert length == min(steps, len(r) - s)
  assert sorted(set(whole["seq_lengths"].tolist())) == [4, 9, 30]  # whole pieces, every one drawn
  assert set(windowed["seq_lengths"].tolist()) <= {4, 6}


@pytest.mark.parametrize("key,value", [("window", -1), ("window", 2.5), ("dedupe", "yes")])
def test_bad_settings_name_the_key(key, value):
  config = ml_collections.ConfigDict({**base.get_config("jsb_chorales").task.to_dict(), key: value})
  with pytest.raises(ValueError, match=f"task.{key}"):
    tasks.make(config)
