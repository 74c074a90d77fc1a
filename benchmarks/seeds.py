"""N seeds as one vmapped program against N separate runs: the wall time a study pays per point.

  python -m benchmarks.seeds                                   # the default cases, 5 seeds
  python -m benchmarks.seeds --num_seeds=3 --steps=100 --cases=gru:chorales
  python -m benchmarks.seeds --quick                           # tiny sizes (seconds; what the test runs)

Each case is a config (`configs/<cell>.py:<task>` with its defaults, or the sizes of a published
study) trained for --steps steps with evaluation and checkpoints at the end only. It is trained
twice, in this order, in one process: once as one program with `num_seeds=N` (seeds 0..N-1), then
as N separate runs of one seed each, one after the other, as `--vmap_seeds=false` runs a study.
Both wall times include compiling, the final evaluations and the checkpoint, as a study pays them.
The per-seed test metrics of the two ways are recorded too (they agree up to float rounding).
Results go to --out as JSON and markdown, with device, versions and date.
"""

import contextlib
import datetime
import os
import platform
import tempfile
import time

import flax
import jax
from absl import app, flags, logging

from benchmarks import report
from gru_jax.lab import config as config_lib
from gru_jax.lab import train

_CASES = flags.DEFINE_list("cases", ["gru:chorales", "gru:adding", "lstm:digits"], "cell:task pairs.")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 5, "Seeds per case.")
_STEPS = flags.DEFINE_integer("steps", 300, "Training steps per seed.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny models and 4 steps (for the test).")
_OUT = flags.DEFINE_string("out", None, "Output path without extension (default: benchmarks/results/seeds-<device>-<date>).")

# The sizes the studies use: Chung et al.'s 20K-parameter GRU on the chorales; the adding problem
# at T=100 with 128 units; digits at the config's default width.
SIZES = {"chorales": {"model.features": 46}, "adding": {"task.seq_len": 100}}


def case_config(case: str, steps: int, quick: bool):
  cell, task = case.split(":")
  config = config_lib.for_cell(cell, task)
  for key, value in SIZES.get(task, {}).items():
    section, name = key.split(".")
    config[section][name] = value
  config.train.update(num_steps=steps, eval_every=0, checkpoint_every=0, log_every=steps)
  config.opt.warmup_steps = min(config.opt.warmup_steps, steps // 10)
  if quick:
    config.model.features = 8
    config.train.batch_size = 4
    if task in ("adding", "copy"):
      config.task.update(seq_len=6, eval_size=16)
  return config


def timed(config, workdir: str) -> tuple[float, dict]:
  start = time.perf_counter()
  with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
    summary = train.train_and_evaluate(config, workdir)
  return time.perf_counter() - start, summary


def run_case(case: str, num_seeds: int, steps: int, quick: bool) -> dict:
  config = case_config(case, steps, quick)
  metric = None
  with tempfile.TemporaryDirectory() as tmp:
    config.num_seeds = num_seeds
    together_s, together = timed(config, os.path.join(tmp, "together"))
    metric = together["metric"]
    separate_s, separate_values = 0.0, []
    for seed in range(num_seeds):
      config.seed, config.num_seeds = seed, 1
      seconds, summary = timed(config, os.path.join(tmp, f"seed{seed}"))
      separate_s += seconds
      separate_values.append(summary["test_at_best_valid"][metric])
  return {
    "case": case, "params": together["params"], "steps": steps, "num_seeds": num_seeds,
    "batch_size": config.train.batch_size, "features": config.model.features, "metric": metric,
    "vmapped_s": together_s, "separate_s": separate_s, "speedup": separate_s / together_s,
    "test_vmapped": together["test_at_best_valid"]["values"], "test_separate": separate_values,
  }


def environment() -> dict:
  device = jax.devices()[0]
  return {"device": device.device_kind, "platform": device.platform, "cpu": platform.processor() or platform.machine(),
          "cores": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
          "flax": flax.__version__, "date": datetime.date.today().isoformat()}


def markdown(results: list[dict], env: dict) -> str:
  lines = [
    f"Seeds as one program: {env['device']} ({env['cpu']}, {env['cores']} cores); jax {env['jax']}, flax {env['flax']}; "
    f"{env['date']}. Wall time of a whole training run (compile, steps, final evaluation, checkpoint); speed-up = N "
    "separate runs / one vmapped program, same process.",
    "",
    "| case | params | batch | steps | seeds | vmapped (s) | separate (s) | speed-up | max rel. diff of test metric |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in results:
    diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r["test_vmapped"], r["test_separate"]))
    lines.append(f"| {r['case']} | {r['params']:,} | {r['batch_size']} | {r['steps']} | {r['num_seeds']} | "
                 f"{r['vmapped_s']:.1f} | {r['separate_s']:.1f} | {r['speedup']:.2f}x | {diff:.1e} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  steps = 4 if _QUICK.value else _STEPS.value
  results = [run_case(case, _NUM_SEEDS.value, steps, _QUICK.value) for case in _CASES.value]
  env = environment()
  out = _OUT.value or os.path.join("benchmarks", "results", f"seeds-{env['platform']}-{env['date']}")
  report.write(out, env, results, markdown(results, env))


if __name__ == "__main__":
  app.run(main)
