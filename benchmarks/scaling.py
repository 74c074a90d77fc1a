"""Data-parallel training throughput against the number of devices on the mesh's data axis.

  python -m benchmarks.scaling                         # 1, 2, 4 simulated CPU devices
  python -m benchmarks.scaling --device_counts=1,8     # on a machine with 8 accelerators
  python -m benchmarks.scaling --quick                 # tiny sizes (seconds; what the test runs)

Without accelerators the script gives the CPU 4 simulated devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`, set before jax starts unless XLA_FLAGS is
set already). They share the same cores, so on a CPU this measures the overhead of the sharded
program (the partitioned step and its all-reduce), not a speed-up. For each device count the jitted
train step of the same config (GRU, adding problem, T=100, H=128, batch 64) is compiled, warmed
up and timed over --scaling_steps steps; examples/s = batch * steps / seconds. Results go to --out
(default benchmarks/results/scaling-<backend>-<date>) as JSON and markdown, with device, versions
and date.
"""

import os
import time

if "XLA_FLAGS" not in os.environ:  # before jax starts: 4 simulated CPU devices (no effect on GPUs)
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from benchmarks import report, speed  # noqa: E402  (speed: its environment(); its --quick and --out flags)
from gru_jax.lab import config as config_lib  # noqa: E402
from gru_jax.lab import train  # noqa: E402

_COUNTS = flags.DEFINE_list("device_counts", ["1", "2", "4"], "Devices on the data axis, one measurement each.")
_STEPS = flags.DEFINE_integer("scaling_steps", 30, "Timed training steps per device count.")


def case_config(quick: bool):
  config = config_lib.for_cell("gru", "adding")
  config.model.features, config.task.seq_len, config.train.batch_size = 128, 100, 64
  if quick:
    config.model.features, config.task.seq_len, config.train.batch_size = 8, 6, 8
  return config


def measure(config, count: int, steps: int) -> dict:
  """Examples/s of the jitted data-parallel train step on `count` devices, and its final loss."""
  config.mesh.data = count
  task, model, tx, schedule = train.build(config)
  mesh = train.make_mesh(config)
  ckpt = train.initial_checkpoint_on(mesh, config, task, model, tx)()
  _, step_keys = train.seed_keys(config)
  step_fn = jax.jit(
    lambda s, k, stop, n: train.train_steps(s, k, stop, n, model=model, task=task, schedule=schedule,
                                            batch_size=config.train.batch_size, mesh=mesh),
    donate_argnums=0,
  )
  state, stopped = ckpt["state"], ckpt["stopped_at"]
  start = time.perf_counter()
  state, stopped, metrics = step_fn(state, step_keys, stopped, np.int32(0))
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  for n in range(1, 3):  # warm-up
    state, stopped, metrics = step_fn(state, step_keys, stopped, np.int32(n))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for n in range(3, 3 + steps):
    state, stopped, metrics = step_fn(state, step_keys, stopped, np.int32(n))
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {"devices": count, "batch_size": config.train.batch_size, "steps": steps, "seconds": seconds,
          "compile_s": compile_s, "examples_per_s": config.train.batch_size * steps / seconds,
          "final_loss": float(metrics["loss"][0])}


def markdown(results: list[dict], env: dict) -> str:
  base = results[0]["examples_per_s"]
  lines = [
    f"Data-parallel training step against devices on the data axis: {env['device']} x {len(jax.devices())} "
    f"({env['cpu']}, {env['cores']} cores); jax {env['jax']}, flax {env['flax']}; XLA_FLAGS={env['xla_flags']!r}; "
    f"{env['date']}. GRU, adding problem; ratio = examples/s against the first row, same process.",
    "",
    "| devices | batch | steps timed | examples/s | ratio | compile (s) | loss after the timed steps |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in results:
    lines.append(f"| {r['devices']} | {r['batch_size']} | {r['steps']} | {r['examples_per_s']:.0f} | "
                 f"{r['examples_per_s'] / base:.2f}x | {r['compile_s']:.1f} | {r['final_loss']:.4g} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  quick = flags.FLAGS.quick
  steps = 3 if quick else _STEPS.value
  counts = [int(c) for c in _COUNTS.value]
  results = [measure(case_config(quick), count, steps) for count in counts]
  env = speed.environment()
  out = flags.FLAGS.out or os.path.join("benchmarks", "results", f"scaling-{env['backend']}-{env['date']}")
  report.write(out, env, results, markdown(results, env))


if __name__ == "__main__":
  app.run(main)
