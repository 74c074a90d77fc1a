"""GRU (reset-after form, as PyTorch/cuDNN).

  python -m experiments.train --config=configs/gru.py             # adding problem, T=100
  python -m experiments.train --config=configs/gru.py:copy        # copy task, delay 20
  python -m experiments.train --config=configs/gru.py:digits      # sequential digits

Results: docs/results/reference.md, made by `python -m experiments.reference`.
"""

from configs import base


def get_config(task: str = "adding"):
  c = base.get_config(task)
  c.model.cell = "gru"
  c.model.cell_kwargs.reset_after = True  # False: the Cho et al. 2014 v3 form
  return c
