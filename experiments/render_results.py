"""Rewrites a published study's results.md from its results.csv, with the current tables: mean ±
std, the 95% interval over seeds and Welch's t-test orderings (gru_jax.lab.ablation.markdown).

  python -m experiments.render_results --config=configs/ablations/classify.py \
    --dir=docs/results/ablations/classify

The title and `solved_below` come from the study file; the runs are not needed.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from gru_jax.lab import ablation, files

_CONFIG = config_flags.DEFINE_config_file("config", None, "The study file (configs/ablations/<study>.py).")
_DIR = flags.DEFINE_string("dir", None, "The folder holding results.csv; results.md is written beside it.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None or not _DIR.value:
    raise app.UsageError("--config=configs/ablations/<study>.py and --dir=<folder with results.csv> are required")
  path = os.path.join(_DIR.value, "results.csv")
  if not os.path.exists(path):
    raise app.UsageError(f"--dir: {path} does not exist")
  study = _CONFIG.value
  rows = ablation.read_csv(path)
  files.atomic_write(os.path.join(_DIR.value, "results.md"),
                     ablation.markdown(rows, f"Study {study.name}", study.get("solved_below")))


if __name__ == "__main__":
  app.run(main)
