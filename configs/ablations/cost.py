"""Study 4, cost: parameters and measured training steps per second of every cell at equal hidden
size, on the adding task (short runs: the rate, not the accuracy, is the point; results.csv has
steps_per_s and params per run).

  python -m experiments.ablate --config=configs/ablations/cost.py --workdir=runs/cost
"""

import ml_collections

from gru_jax import models


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "cost"
  c.cells = ",".join(models.CELLS)
  c.features = 128
  c.seq_len = 100
  c.num_steps = 200
  c.seeds = 1
  return c


def sweep(study, add):
  for cell in study.cells.split(","):
    for seed in range(study.seeds):
      add(cell=cell, task="adding", **{"model.features": study.features, "task.seq_len": study.seq_len,
                                         "train.num_steps": study.num_steps, "opt.warmup_steps": 10,
                                         "train.eval_every": 0, "seed": seed})
