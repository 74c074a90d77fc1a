"""Vanilla tanh RNN, the ungated control.

  python -m experiments.train --config=configs/rnn.py             # adding problem, T=100
  python -m experiments.train --config=configs/rnn.py:copy
  python -m experiments.train --config=configs/rnn.py:digits

Results: docs/results/reference.md, made by `python -m experiments.reference`.
"""

from configs import base


def get_config(task: str = "adding"):
  c = base.get_config(task)
  c.model.cell = "rnn"
  c.model.cell_kwargs.activation = "tanh"  # or "relu"
  return c
