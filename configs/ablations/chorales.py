"""Study 2, polyphonic music: the Bach chorales with parameter-matched models of about 20K
parameters in Chung et al. 2014 (tanh 100, GRU 46, LSTM 36 units), NLL per frame, to set beside
their JSB table (tanh 9.10, GRU 8.54, LSTM 8.67; a related but different split, and they trained
with RMSProp, as `--config.optimizer=rmsprop` does here).

  python -m experiments.ablate --config=configs/ablations/chorales.py --workdir=runs/chorales
"""

import ml_collections

UNITS = {"rnn": 100, "gru": 46, "lstm": 36}  # Chung et al. 2014, Table 1


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "chorales"
  c.cells = "rnn,gru,lstm"
  c.seeds = 3
  c.num_steps = 1500
  c.optimizer = "adam"  # the configs' default; "rmsprop" as Chung et al.
  return c


def sweep(study, add):
  for cell in study.cells.split(","):
    for seed in range(study.seeds):
      add(cell=cell, task="chorales", **{"model.features": UNITS[cell], "opt.name": study.optimizer,
                                           "train.num_steps": study.num_steps, "opt.warmup_steps": min(100, study.num_steps // 10), "seed": seed})
