"""Study 1, long memory: do gated cells keep information over spans where a tanh RNN's gradient
vanishes? The adding and copy tasks at growing T, for the GRU, LSTM and tanh RNN, at equal hidden
size and at the GRU's parameter count.

  python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory
  # the reduced grid published in docs/results/ablations/long_memory/ (see its README):
  python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory \
    --config.tasks=adding --config.lengths=50,200 --config.seeds=2 --config.num_steps=600 --jobs=2
"""

import ml_collections

from gru_jax import ablation


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "long_memory"
  c.cells = "gru,lstm,rnn"  # comma-separated config names
  c.tasks = "adding,copy"
  c.lengths = "50,100,200,400"  # task.seq_len: the adding problem's T, the copy task's delay
  c.seeds = 3
  c.num_steps = 1500
  c.features = 128  # the hidden size of every cell ("width"), and the GRU's for "params"
  c.budgets = "width,params"  # equal hidden size; equal parameter count with the GRU at c.features
  return c


def sweep(study, add):
  cells = study.cells.split(",")
  for task in study.tasks.split(","):
    for length in [int(t) for t in study.lengths.split(",")]:
      for budget in study.budgets.split(","):
        for cell in cells:
          base = {"cell": cell, "task": task, "task.seq_len": length, "train.num_steps": study.num_steps, "opt.warmup_steps": min(100, study.num_steps // 10)}
          if budget == "params":
            if cell == "gru":
              continue  # the reference: the "width" run already is the GRU at c.features
            target = ablation.count_params({**base, "cell": "gru", "model.features": study.features})
            features = ablation.features_for_params(base, target)
          else:
            features = study.features
          for seed in range(study.seeds):
            add(**base, budget=budget, **{"model.features": features, "seed": seed})
