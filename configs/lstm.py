"""LSTM (gate order i, f, g, o; forget-gate bias 1).

  python -m experiments.train --config=configs/lstm.py            # adding problem, T=100
  python -m experiments.train --config=configs/lstm.py:copy
  python -m experiments.train --config=configs/lstm.py:digits

Results: docs/results/reference.md, made by `python -m experiments.reference`.
"""

from configs import base


def get_config(task: str = "adding"):
  c = base.get_config(task)
  c.model.cell = "lstm"
  c.model.cell_kwargs.forget_bias = 1.0  # initial forget-gate bias
  return c
