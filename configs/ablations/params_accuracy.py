"""GRU against LSTM at equal parameter counts: is the GRU's edge (3 gate blocks to the LSTM's 4)
a matter of parameters? Each cell at a ladder of parameter counts (`budgets`, the whole model's,
read-out and embedding included), on the Bach chorales (NLL per frame) and a character language
model of the BBC News articles (bits per character), 3 seeds per point trained as one program,
selected on valid.

  python -m experiments.ablate --config=configs/ablations/params_accuracy.py --workdir=runs/params_accuracy --jobs=2

The width of each point is the one whose parameter count is closest to the budget
(`ablation.features_for_params`); the table gives the exact count. Training: the configs'
defaults (Adam, warmup and cosine decay over `num_steps`), with early stopping on valid.
"""

import ml_collections

from gru_jax.lab import ablation

# Parameter budgets per task, doubling (chorales) or quadrupling (characters) from a few thousand.
# Both are dominated by the recurrent layer: the chorales' read-out is 88 keys wide and the
# characters' embedding and read-out about 100 symbols.
BUDGETS = {"chorales": "6000,12000,24000,48000,96000", "char_lm": "12000,48000,192000"}


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "params_accuracy"
  c.cells = "gru,lstm"
  c.tasks = "chorales,char_lm"
  c.chorales_budgets = BUDGETS["chorales"]
  c.char_lm_budgets = BUDGETS["char_lm"]
  c.seeds = 3
  c.num_steps = 3000
  c.eval_every = 250
  c.patience = 4  # evaluations without a better valid metric before a seed stops
  return c


def sweep(study, add):
  for task in study.tasks.split(","):
    for budget in [int(b) for b in study[f"{task}_budgets"].split(",")]:
      for cell in study.cells.split(","):
        base = {"cell": cell, "task": task, "train.num_steps": study.num_steps, "train.eval_every": study.eval_every,
                "train.checkpoint_every": study.eval_every, "train.early_stopping": study.patience,
                "opt.warmup_steps": min(100, study.num_steps // 10)}
        features = ablation.features_for_params(base, budget)
        for seed in range(study.seeds):
          add(**base, budget=budget, **{"model.features": features, "seed": seed})
