"""Renders Chung et al. 2014's Table 2 beside our chung2014 study, from the published results.

  python -m experiments.chung2014_table --root=docs/results/ablations/chung2014

Reads <root>/<set>/final/results.csv for each of the four sets that has one and writes
<root>/table.md (the README's copy must equal it: tests/readme_test.py).
"""

import os

from absl import app, flags

from gru_jax.lab import ablation, files

_ROOT = flags.DEFINE_string("root", "docs/results/ablations/chung2014", "The published study's folder.")
STUDY = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "ablations", "chung2014.py")


def study_module():
  return ablation.load_study_file(STUDY)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not os.path.isdir(_ROOT.value):
    raise app.UsageError(f"--root={_ROOT.value!r} is not a folder")
  table = study_module().side_by_side(_ROOT.value)
  files.atomic_write(os.path.join(_ROOT.value, "table.md"), table)
  print(table)


if __name__ == "__main__":
  app.run(main)
