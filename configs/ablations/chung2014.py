"""Chung et al. 2014 (arXiv:1412.3555), the music table: tanh RNN, GRU and LSTM at about 20K
parameters on the Bach chorales, following their protocol as far as the data here allow.

Two phases, one command each (docs/results/ablations/run.sh has the published ones):

  # 1. learning rate: 10 log-uniform samples in [e^-12, e^-6] per cell, seed 0, picked on valid
  python -m experiments.ablate --config=configs/ablations/chung2014.py --workdir=runs/chung2014-search --jobs=2
  # 2. the picked rate of each cell (best valid NLL in phase 1's results.csv), 5 seeds as one program
  python -m experiments.ablate --config=configs/ablations/chung2014.py --config.phase=final \
    --config.search_dir=runs/chung2014-search --workdir=runs/chung2014 --jobs=2

As in the paper: tanh RNN 100 units, GRU 46 with the reset gate before the recurrent matmul
(reset_after=False), LSTM 36 with peepholes, a sigmoid read-out of the 88 keys (parameters counted
with it); RMSProp, gradient norm clipped to 1, weight noise of std 0.075, a constant learning rate
chosen on valid from 10 log-uniform samples in [e^-12, e^-6], early stopping on valid, NLL per
frame summed over the keys; the chorales transposed to C major / C minor.

Not as in the paper (written next to the published results too): the music21 chorales (a seeded
60/20/20 split of the unique chorales, not Boulanger-Lewandowski's 229/76/77 JSB split, which no
package installable here ships), on a quarter-note grid; the key each chorale is moved by is
music21's analysis; the same 10 rate samples for every cell (drawn once with `rate_seed`);
minibatches of 16 chorales; a step budget with patience (`num_steps`, `patience`) in place of the
paper's unstated stopping rule; RMSProp as optax's (decay 0.9, eps 1e-8).
"""

import csv
import os

import ml_collections
import numpy as np

UNITS = {"rnn": 100, "gru": 46, "peephole_lstm": 36}  # Chung et al. 2014, Table 1
OPTIONS = {"gru": {"model.cell_kwargs.reset_after": False}}


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "chung2014"
  c.phase = "search"  # "search" (the learning rates, seed 0) or "final" (the picked rate, c.seeds seeds)
  c.search_dir = ""  # phase "final": the workdir of the search phase, whose results.csv picks each cell's rate
  c.cells = "rnn,gru,peephole_lstm"
  c.num_rates = 10
  c.rate_seed = 2014  # draws the learning-rate samples
  c.seeds = 5
  c.num_steps = 20000  # the most steps; early stopping usually ends a run before
  c.eval_every = 250
  c.patience = 8  # evaluations without a better valid NLL before a seed stops
  c.weight_noise = 0.075
  c.batch_size = 16
  return c


def learning_rates(study) -> list[float]:
  """`num_rates` samples, log-uniform in [e^-12, e^-6], rounded to 3 significant digits."""
  rng = np.random.default_rng(study.rate_seed)
  return [float(f"{r:.3g}") for r in np.exp(rng.uniform(-12.0, -6.0, study.num_rates))]


def picked_rates(search_dir: str) -> dict[str, float]:
  """Each cell's learning rate with the best (lowest) valid NLL in the search phase's results."""
  path = os.path.join(search_dir, "results.csv")
  if not os.path.exists(path):
    raise ValueError(f"search_dir: {path} does not exist; run the search phase first (see configs/ablations/chung2014.py)")
  best: dict[str, tuple[float, float]] = {}
  with open(path) as f:
    for row in csv.DictReader(f):
      if row["status"] == "done" and row["valid"]:
        valid, rate = float(row["valid"]), float(row["opt.learning_rate"])
        if row["cell"] not in best or valid < best[row["cell"]][0]:
          best[row["cell"]] = (valid, rate)
  return {cell: rate for cell, (_, rate) in best.items()}


def sweep(study, add):
  if study.phase not in ("search", "final"):
    raise ValueError(f"phase={study.phase!r}; expected 'search' or 'final'")
  rates = picked_rates(study.search_dir) if study.phase == "final" else None
  for cell in study.cells.split(","):
    fixed = {"model.features": UNITS[cell], **OPTIONS.get(cell, {}), "task.transpose": "C", "opt.name": "rmsprop",
             "opt.schedule": "constant", "opt.warmup_steps": 0, "opt.clip_norm": 1.0,
             "opt.weight_noise": study.weight_noise, "train.num_steps": study.num_steps,
             "train.eval_every": study.eval_every, "train.checkpoint_every": study.eval_every,
             "train.early_stopping": study.patience, "train.batch_size": study.batch_size}
    if study.phase == "search":
      for rate in learning_rates(study):
        add(cell=cell, task="chorales", **{"opt.learning_rate": rate, **fixed, "seed": 0})
    else:
      if cell not in rates:
        raise ValueError(f"search_dir: no finished run of {cell} in {study.search_dir}/results.csv")
      for seed in range(study.seeds):
        add(cell=cell, task="chorales", **{"opt.learning_rate": rates[cell], **fixed, "seed": seed})
