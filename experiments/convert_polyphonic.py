"""Converts Boulanger-Lewandowski's four polyphonic sets from the .mat files into the package.

  python -m experiments.convert_polyphonic --source=../shared/data/polyphonic

Reads JSB_Chorales.mat, Nottingham.mat, MuseData.mat and Piano_midi.mat (MATLAB v5, keys
traindata / validdata / testdata, each a 1 x N object array of [frames, 88] 0/1 arrays; needs
scipy), checks each against the source folder's SHA256SUMS and the published piece counts, and
writes gru_jax/lab/tasks/polyphonic_data/<task>.npz (`polyphonic.to_bytes`, lossless) and its
SHA256SUMS. SOURCE.md and LICENSE there are written by hand.
"""

import hashlib
import pathlib

from absl import app, flags

from gru_jax.lab.tasks import polyphonic

_SOURCE = flags.DEFINE_string("source", "../shared/data/polyphonic", "Folder holding the four .mat files and SHA256SUMS.")
_OUT = flags.DEFINE_string("out", str(polyphonic.DATA_DIR), "Folder the .npz files and their SHA256SUMS are written to.")


def main(argv):
  del argv
  source, out = pathlib.Path(_SOURCE.value), pathlib.Path(_OUT.value)
  sums = polyphonic.checksums(source)
  lines = []
  for task, mat in polyphonic.MAT_FILES.items():
    raw = (source / mat).read_bytes()
    if hashlib.sha256(raw).hexdigest() != sums.get(mat):
      raise SystemExit(f"{source / mat}: its sha256 differs from {source / 'SHA256SUMS'}")
    pieces = polyphonic.read_mat(source / mat)
    counts = {split: len(rolls) for split, rolls in pieces.items()}
    if counts != polyphonic.SETS[task][1]:
      raise SystemExit(f"{source / mat}: {counts} pieces, expected the published {polyphonic.SETS[task][1]}")
    data = polyphonic.to_bytes(pieces)
    name = polyphonic.SETS[task][0]
    (out / name).write_bytes(data)
    lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    print(f"{task}: {counts}, {len(data):,} bytes")
  (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  app.run(main)
