"""Train one model from a config.

  python -m experiments.train                                   # GRU on the adding problem
  python -m experiments.train --config=configs/lstm.py:copy --workdir=runs/lstm-copy
  python -m experiments.train --config.model.features=64 --config.train.num_steps=500

The same command with the same --workdir resumes from its latest checkpoint.
"""

import datetime
import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.cli import fail_on_bad_flags, parse_flags
from gru_jax.lab import tasks, train

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "gru.py")


try:  # config_flags reads the --config.* overrides from sys.argv as the flag is defined
  _CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Config file, optionally with :task.", lock_config=True)
except Exception as e:  # pylint: disable=broad-except
  fail_on_bad_flags(e)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; default: a fresh folder under runs/.")


def fresh_workdir(config) -> str:
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{config.model.cell}-{config.task.name}-{stamp}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = _CONFIG.value
  train.initialize_distributed(config)  # several processes: before anything else uses JAX
  workdir = _WORKDIR.value or fresh_workdir(config)
  try:
    summary = train.train_and_evaluate(config, workdir)
  except (train.ConfigError, tasks.DataError, train.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except train.NonFiniteError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt as e:
    print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
    sys.exit(130)
  if jax.process_index() == 0:
    print(one_line(summary, workdir))


def one_line(summary: dict, workdir: str) -> str:
  """The run's result in one line: one seed's test metric at its best valid step, or the mean ±
  std over seeds."""
  metric = summary["metric"]
  if "runs" in summary:  # several seeds
    test = summary["test_at_best_valid"]
    spread = f" ± {test['std']:.2g}" if test["std"] is not None else ""
    stopped = f"; stopped on a non-finite value: seeds {summary['diverged_seeds']}" if summary["diverged_seeds"] else ""
    result = (f"test {metric} {test['mean']:.4g}{spread} (mean ± std over seeds {summary['seeds']}, each at its best "
              f"valid step){stopped}")
  else:
    best = summary["best_valid"]
    result = (f"test {metric} {summary['test_at_best_valid'][metric]:.4g} at the best valid step {best['step']} "
              f"(valid {metric} {best[metric]:.4g})")
  return (f"{summary['cell']} on {summary['task']}: {result}; baseline {summary['baseline']:.4g} "
          f"({summary['baseline_note']}); "
          f"{summary['params']} params, {summary['steps']} steps; this run {summary['wall_time_s_this_run']:.0f} s; "
          f"workdir {workdir}")

if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
