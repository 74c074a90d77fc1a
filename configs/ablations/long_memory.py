"""Study 1, long memory: do gated cells keep information over spans where a tanh RNN's gradient
vanishes? The adding and copy tasks at growing T, for the GRU, LSTM and tanh RNN, at equal hidden
size and at the GRU's parameter count, with the gated cells' default initialisation (the LSTM's
forget bias 1, the GRU's zero biases) and with chrono initialisation (Tallec & Ollivier 2018,
T_max = T).

The protocol of Arjovsky et al. 2016 (arXiv:1511.06464): 128 units, RMSProp at 1e-3 (constant),
gradient norm clipped to 1, minibatches of 50; 20K steps for T <= 200 and 40K for T >= 400 (their
LSTM sits at the baseline for ~5K steps at T=200 and solves it by ~15K). A seed counts as solved
when its valid metric goes below `solved_below` (MSE for adding, cross-entropy per step for copy);
the results give the fraction of seeds that solved each point and the steps they needed.

  python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory --jobs=2
  # a CPU-sized slice (what docs/results/ablations/run.sh ran on the 2-core machine; labelled there):
  python -m experiments.ablate --config=configs/ablations/long_memory.py --workdir=runs/long_memory \
    --config.tasks=adding --config.lengths=100,200 --config.max_steps=5000 --jobs=2

Differences from Arjovsky et al.: our RMSProp is optax's (decay 0.9, eps 1e-8); valid and test
are fixed sets of `task.eval_size` sequences; a `max_steps` below the published budget is a
reduced run and is labelled so.
"""

import ml_collections

from gru_jax.lab import ablation

CHRONO_CELLS = ("gru", "lstm")  # the cells with a keep/forget gate whose bias chrono_init sets


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "long_memory"
  c.cells = "gru,lstm,rnn"  # comma-separated config names
  c.tasks = "adding,copy"
  c.lengths = "100,200,400,750"  # task.seq_len: the adding problem's T, the copy task's delay
  c.seeds = 3
  c.max_steps = 0  # 0: the published budget (20K steps for T <= 200, 40K above); else at most this many
  c.features = 128  # the hidden size of every cell ("width"), and the GRU's for "params"
  c.budgets = "width,params"  # equal hidden size; equal parameter count with the GRU at c.features
  c.inits = "default,chrono"  # chrono: model.cell_kwargs.chrono_init = T (GRU and LSTM only)
  c.batch_size = 50
  c.learning_rate = 1e-3
  c.eval_every = 500
  c.solved_below = 0.01  # a seed is "solved" once its valid metric is below this
  return c


def num_steps(study, length: int) -> int:
  published = 20000 if length <= 200 else 40000
  return min(published, study.max_steps) if study.max_steps else published


def sweep(study, add):
  cells = study.cells.split(",")
  for task in study.tasks.split(","):
    for length in [int(t) for t in study.lengths.split(",")]:
      steps = num_steps(study, length)
      for budget in study.budgets.split(","):
        for init in study.inits.split(","):
          for cell in cells:
            if init == "chrono" and cell not in CHRONO_CELLS:
              continue
            base = {"cell": cell, "task": task, "task.seq_len": length, "train.num_steps": steps,
                    "train.batch_size": study.batch_size, "opt.name": "rmsprop", "opt.learning_rate": study.learning_rate,
                    "opt.schedule": "constant", "opt.warmup_steps": 0, "opt.clip_norm": 1.0,
                    "train.eval_every": study.eval_every, "train.checkpoint_every": study.eval_every}
            if init == "chrono":
              base["model.cell_kwargs.chrono_init"] = length
            if budget == "params":
              if cell == "gru":
                continue  # the reference: the "width" run already is the GRU at c.features
              target = ablation.count_params({**base, "cell": "gru", "model.features": study.features})
              features = ablation.features_for_params(base, target)
            else:
              features = study.features
            for seed in range(study.seeds):
              add(**base, budget=budget, init=init, **{"model.features": features, "seed": seed})
