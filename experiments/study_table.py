"""Renders a published study's table from its results: the study file's `table(root)`.

  python -m experiments.study_table --config=configs/ablations/chung2014.py --root=docs/results/ablations/chung2014
  python -m experiments.study_table --config=configs/ablations/greff2017.py --root=docs/results/ablations/greff2017

Writes <root>/table.md and prints it (the README's copy must equal it: tests/readme_test.py).
"""

import os

from absl import app, flags

from gru_jax.lab import ablation, files

_CONFIG = flags.DEFINE_string("config", None, "The study file, e.g. configs/ablations/chung2014.py.", required=True)
_ROOT = flags.DEFINE_string("root", None, "The published study's folder.", required=True)


def render(study_file: str, root: str) -> str:
  """The study's table of the results under `root`; a UsageError when the study has no `table`."""
  study = ablation.load_study_file(study_file)
  if not hasattr(study, "table"):
    raise app.UsageError(f"--config={study_file!r} defines no table(root); only studies with a published table do")
  return study.table(root)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not os.path.isdir(_ROOT.value):
    raise app.UsageError(f"--root={_ROOT.value!r} is not a folder")
  table = render(_CONFIG.value, _ROOT.value)
  files.atomic_write(os.path.join(_ROOT.value, "table.md"), table)
  print(table)


if __name__ == "__main__":
  app.run(main)
