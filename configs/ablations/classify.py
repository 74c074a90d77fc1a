"""Study 3, classification: accuracy of each cell at equal parameter count (the GRU's at
c.features) on sequential digits and tweet sentiment.

  python -m experiments.ablate --config=configs/ablations/classify.py --workdir=runs/classify
"""

import ml_collections

from gru_jax.lab import ablation


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "classify"
  c.cells = "gru,lstm,rnn,mgu,mingru,sru"
  c.tasks = "digits,sentiment"
  c.seeds = 3
  c.features = 64  # the GRU's width; the other cells get its parameter count
  return c


def sweep(study, add):
  for task in study.tasks.split(","):
    target = ablation.count_params({"cell": "gru", "task": task, "model.features": study.features})
    for cell in study.cells.split(","):
      base = {"cell": cell, "task": task}
      features = study.features if cell == "gru" else ablation.features_for_params(base, target)
      for seed in range(study.seeds):
        add(**base, **{"model.features": features, "seed": seed})
