"""Polyphonic music: Bach chorales from the music21 corpus as 88-key piano rolls.

Each chorale becomes a binary roll [frames, 88] over MIDI 21..108 on a quarter-note grid: frame k
holds the pitches sounding at quarter k (notes shorter than a quarter that start between grid
points are not sampled). Chorales whose rolls are identical (the corpus holds some twice) count
once. The model reads frames 0..L-2 and predicts frames 1..L-1 with 88 independent sigmoids; the
metric is the negative log-likelihood per frame, summed over the 88 units, as in Chung et al. 2014
(arXiv:1412.3555; their JSB Chorales test NLL: tanh 9.10, GRU 8.54, LSTM 8.67). Their JSB set is
382 chorales split 229/76/77; this music21 set is a close cousin, not the same.

Split: the unique rolls ordered by corpus path, shuffled with `task.split_seed`, then 60% train,
20% valid, 20% test (`split`); training evaluates on valid and the test set is scored at the
parameters best on valid. The baseline is independent Bernoullis at each key's frequency in the
training frames, scored on test.

With `task.transpose="C"` every chorale is moved to C major or C minor by the key music21 finds in
it (Krumhansl-Schmuckler), as Boulanger-Lewandowski et al. 2012 did for their JSB set. With
`task.dedupe` (the default) chorales whose rolls are equal after the move count once (the first by
corpus path), so one chorale stored in two keys cannot sit in two splits; the split shuffles the
rolls that remain, so it differs from the untransposed one only where such pairs were found.

Parsing the corpus takes tens of seconds, so the rolls are cached in `task.cache_dir` under a
name keyed by a hash of the settings; the cache holds a checksum that is verified on every load,
and a damaged cache is rebuilt from the corpus.
"""

import hashlib
import io
import json
import math
import os
import warnings

import jax.numpy as jnp
import numpy as np
import optax

from gru_jax.lab import files
from gru_jax.lab.tasks.common import DataError, Task, first_of_each, flag, random_rows, require_package

# Config defaults beside gru_jax.lab.config's base (dotted keys); the splits are fixed, so no eval_size.
DEFAULTS = {"model.features": 64, "task.eval_size": 0, "train.batch_size": 16, "train.num_steps": 1500}

LOW, HIGH = 21, 108  # MIDI range of an 88-key piano
NUM_KEYS = HIGH - LOW + 1
CACHE_VERSION = 2  # 2: the cache holds each chorale's tonic
FRACTIONS = (0.6, 0.2, 0.2)


def to_roll(score) -> np.ndarray:
  """A music21 score -> uint8 roll [frames, 88] on the quarter-note grid."""
  flat = score.flatten()
  frames = int(math.ceil(float(flat.highestTime)))
  roll = np.zeros((frames, NUM_KEYS), np.uint8)
  for note in flat.notes:
    start = float(note.offset)
    end = start + float(note.quarterLength)
    first, stop = int(math.ceil(start - 1e-9)), int(math.ceil(end - 1e-9))
    for pitch in note.pitches:
      if LOW <= pitch.midi <= HIGH:
        roll[first:stop, pitch.midi - LOW] = 1
  return roll


def piece_key(roll: np.ndarray) -> str:
  """A hash of a roll's frames and shape: equal rolls, equal keys (for finding duplicates)."""
  return hashlib.sha256(np.ascontiguousarray(roll, np.uint8).tobytes() + str(roll.shape).encode()).hexdigest()


def _checksum(rolls: np.ndarray, lengths: np.ndarray, tonics: list[int]) -> str:
  return hashlib.sha256(rolls.tobytes() + lengths.astype(np.int64).tobytes() + np.asarray(tonics, np.int64).tobytes()).hexdigest()


def _parse_corpus(music21, limit: int | None) -> tuple[list[str], list[np.ndarray], list[int]]:
  names = sorted(str(n) for n in music21.corpus.chorales.Iterator(returnType="filename"))[:limit]
  if not names:
    raise DataError("the music21 corpus lists no Bach chorales; reinstall music21 (pip install --force-reinstall music21)")
  kept, rolls, tonics, seen = [], [], [], set()
  for name in names:
    score = music21.corpus.parse(name)
    roll = to_roll(score)
    key = piece_key(roll)
    if len(roll) >= 2 and key not in seen:
      seen.add(key)
      kept.append(name)
      rolls.append(roll)
      tonics.append(int(score.analyze("key").tonic.pitchClass))  # Krumhansl-Schmuckler key finding
  return kept, rolls, tonics


def to_c(roll: np.ndarray, tonic: int) -> np.ndarray:
  """The roll moved by the fewest semitones (-5..+6) that take pitch class `tonic` to C, as
  Boulanger-Lewandowski et al. 2012 transposed their chorales to C major or C minor; notes moved
  off the 88 keys are dropped."""
  shift = -(((tonic + 6) % 12) - 6)
  out = np.zeros_like(roll)
  if shift >= 0:
    out[:, shift:] = roll[:, : NUM_KEYS - shift]
  else:
    out[:, :shift] = roll[:, -shift:]
  return out


def cache_path(cache_dir: str, music21_version: str, limit: int | None = None) -> str:
  settings = {"version": CACHE_VERSION, "music21": music21_version, "grid": "quarter", "low": LOW, "high": HIGH}
  if limit is not None:
    settings["limit"] = limit
  key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(cache_dir), f"chorales-{key}.npz")


def load_rolls(cache_dir: str, limit: int | None = None) -> tuple[list[str], list[np.ndarray], list[int]]:
  """(corpus paths, rolls, tonic pitch classes) of the unique chorales, from the cache or parsed
  (and then cached).

  `limit` keeps only the first chorales by corpus path (for tests); it is part of the cache key.
  """
  music21 = require_package("music21", "chorales")
  path = cache_path(cache_dir, music21.__version__, limit)
  if os.path.exists(path):
    try:
      with np.load(path, allow_pickle=False) as data:
        flat, lengths, names, checksum = data["rolls"], data["lengths"], list(data["names"]), str(data["checksum"])
        tonics = [int(t) for t in data["tonics"]]
      if _checksum(flat, lengths, tonics) != checksum:
        raise ValueError("checksum mismatch")
      return names, np.split(flat, np.cumsum(lengths)[:-1]), tonics
    except Exception as e:  # pylint: disable=broad-except
      warnings.warn(f"the chorale cache {path} is damaged ({e}); rebuilding it from the music21 corpus")
  names, rolls, tonics = _parse_corpus(music21, limit)
  flat, lengths = np.concatenate(rolls), np.array([len(r) for r in rolls])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buffer = io.BytesIO()
  np.savez_compressed(buffer, rolls=flat, lengths=lengths, names=np.array(names), tonics=np.array(tonics),
                      checksum=_checksum(flat, lengths, tonics))
  files.atomic_write(path, buffer.getvalue())
  return names, rolls, tonics


def split(names: list[str], rolls: list[np.ndarray], split_seed: int) -> dict[str, list[int]]:
  """Indices of the train / valid / test chorales (60/20/20 after a seeded shuffle)."""
  order = np.random.default_rng(split_seed).permutation(len(rolls))
  n_train = int(round(FRACTIONS[0] * len(rolls)))
  n_valid = int(round(FRACTIONS[1] * len(rolls)))
  return {"train": sorted(order[:n_train]), "valid": sorted(order[n_train : n_train + n_valid]),
          "test": sorted(order[n_train + n_valid :])}


def pad(rolls: list[np.ndarray]) -> dict[str, np.ndarray]:
  """xs = frames 0..L-2, ys = frames 1..L-1, padded to the longest, with seq_lengths = L-1."""
  longest = max(len(r) for r in rolls)
  padded = np.zeros((len(rolls), longest, NUM_KEYS), np.float32)
  for i, r in enumerate(rolls):
    padded[i, : len(r)] = r
  return {"xs": padded[:, :-1], "ys": padded[:, 1:], "seq_lengths": np.array([len(r) - 1 for r in rolls], np.int32)}


def loss_and_metrics(outputs, batch):
  frames = jnp.arange(outputs.shape[1])[None, :] < batch["seq_lengths"][:, None]
  nll_per_frame = jnp.sum(optax.sigmoid_binary_cross_entropy(outputs, batch["ys"]), axis=-1)
  weight = jnp.maximum(jnp.sum(frames), 1)
  nll = jnp.sum(jnp.where(frames, nll_per_frame, 0.0)) / weight
  return nll, {"nll": nll, "weight": weight}


def bernoulli_baseline(train: dict, test: dict) -> float:
  """Test NLL per frame of independent Bernoullis at the train frames' key frequencies."""
  valid = lambda d: np.arange(d["ys"].shape[1])[None, :] < d["seq_lengths"][:, None]
  p = np.clip(train["ys"][valid(train)].mean(0), 1e-6, 1 - 1e-6)
  y = test["ys"][valid(test)]
  return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1).mean())


def make(config) -> Task:
  """Settings: task.split_seed, task.cache_dir, task.limit (0: every chorale), task.transpose
  ("" as written, or "C": each chorale moved to C major / C minor by its analysed key),
  task.dedupe (equal rolls after the move count once)."""
  if not isinstance(config.limit, int) or config.limit < 0 or config.limit == 1:
    raise ValueError(f"task.limit must be 0 (every chorale) or an integer >= 2; got {config.limit!r}")
  if config.transpose not in ("", "C"):
    raise ValueError(f"task.transpose={config.transpose!r} is not supported; expected '' (as written) or 'C'")
  dedupe = flag(config, "dedupe", "chorales")
  names, rolls, tonics = load_rolls(config.cache_dir, config.limit or None)
  if config.transpose == "C":
    rolls = [to_c(roll, tonic) for roll, tonic in zip(rolls, tonics)]
    if dedupe:  # two keys of one chorale are equal now
      kept = first_of_each([piece_key(roll) for roll in rolls])
      names, rolls = [names[i] for i in kept], [rolls[i] for i in kept]
  if len(rolls) < 3:
    raise DataError(f"task.limit={config.limit} leaves {len(rolls)} unique chorales; the split needs at least 3")
  parts = split(names, rolls, int(config.split_seed))
  train, valid, test = (pad([rolls[i] for i in parts[k]]) for k in ("train", "valid", "test"))
  return Task(
    name="chorales",
    output_features=NUM_KEYS,
    head="each",
    metric="nll",
    higher_is_better=False,
    baseline=bernoulli_baseline(train, test),
    baseline_note="independent Bernoullis at the training key frequencies",
    train_batch=random_rows(train),
    train_set=train,
    valid_set=valid,
    test_set=test,
    loss_and_metrics=loss_and_metrics,
  )
