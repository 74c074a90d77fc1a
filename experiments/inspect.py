"""See the gates work and the gradient vanish, in a trained run or in fresh models.

  python -m experiments.inspect --workdir=runs/gru-adding
  python -m experiments.inspect --workdir=runs/gru-sentiment --text="Amazing! This box of cereal ..."
  python -m experiments.inspect --cells=rnn,gru,gru:chrono_init=100,lstm --out=runs/inspect-init   # fresh models
  python -m experiments.inspect --cells=rnn,gru,lstm --config=configs/default.py:task=copy --config.task.seq_len=200
  python -m experiments.inspect --compare=runs/rnn-adding,runs/gru-adding --out=runs/compared   # trained runs

With --workdir it rebuilds the run from its config.json and checkpoint (the parameters best on
valid, of the first seed; --params=final for the last ones, init for the initial ones) and writes
into <workdir>/inspect/ (or --out):
- gradient_flow.png: ||dLoss/dh_t|| over t for every recurrent layer (`gru_jax.insight`), on the
  first --examples examples of the valid set, log scale;
- jacobians.png: for the first layer and the first of those examples, the largest singular values
  of dh_{t+1}/dh_t and ||dh_T/dh_t|| (the whole carry; (c, h) for the LSTM);
- gates.png: the gates of the first layer over the steps of that example (or of --text, with its
  tokens and the model's prediction), and gate_statistics.json: each layer's and gate's mean and
  fractions below 0.05 and above 0.95 over those examples;
- index.md listing them.
With --cells it builds each cell fresh (the --config's model and task, seeds --seed) and compares
their gradient flow and ||dh_T/dh_t|| in one plot each, into --out; --compare does the same for
trained runs (each on its own valid examples). Both front-ends' runs work: an
NNX run's parameters are the linen model's.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gru_jax.lab import insight_report, tasks, train

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's folder.")
_CELLS = flags.DEFINE_list("cells", None, "Fresh models of these cells, compared (instead of --workdir); options as "
                           "cell:key=value[:key=value], e.g. gru:chrono_init=100.")
_COMPARE = flags.DEFINE_list("compare", None, "Trained runs' folders, compared in one plot (instead of --workdir).")
_CONFIG = config_flags.DEFINE_config_file("config", None, "With --cells: the model and task (default: the adding task).")
_TEXT = flags.DEFINE_string("text", None, "For a text-classification run: a text to show the gates on, with the prediction.")
_EXAMPLES = flags.DEFINE_integer("examples", 16, "Valid examples the gradient flow and gate statistics average over.")
_PARAMS = flags.DEFINE_enum("params", "best", ["best", "final", "init"], "With --workdir: which parameters.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default: <workdir>/inspect).")
_SEED = flags.DEFINE_integer("seed", 0, "With --cells: the initialisation seed.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    if sum(bool(v) for v in (_WORKDIR.value, _CELLS.value, _COMPARE.value)) > 1:
      raise train.ConfigError("give one of --workdir (a run), --compare (runs) or --cells (fresh models)")
    if _EXAMPLES.value < 1:
      raise train.ConfigError(f"--examples must be >= 1; got {_EXAMPLES.value}")
    if _CELLS.value:
      if not _OUT.value:
        raise train.ConfigError("--cells needs --out, the folder to write into")
      index = insight_report.compare_cells(_CONFIG.value, _CELLS.value, _OUT.value, seed=_SEED.value, examples=_EXAMPLES.value)
    elif _COMPARE.value:
      if not _OUT.value:
        raise train.ConfigError("--compare needs --out, the folder to write into")
      index = insight_report.compare_runs(_COMPARE.value, _OUT.value, which=_PARAMS.value, examples=_EXAMPLES.value)
    elif _WORKDIR.value:
      out = _OUT.value or os.path.join(_WORKDIR.value, "inspect")
      index = insight_report.inspect_run(_WORKDIR.value, out, which=_PARAMS.value, examples=_EXAMPLES.value, text=_TEXT.value)
    else:
      raise train.ConfigError("give --workdir=RUN (a training run's folder), --compare=RUN,RUN,... or --cells=rnn,gru,lstm "
                              "with --out")
  except (train.ConfigError, tasks.DataError, train.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {index}")


if __name__ == "__main__":
  app.run(main)
