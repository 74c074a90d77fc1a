"""Any cell on any task: the defaults of gru_jax.lab.config with the cell and task named in the :arg.

  python -m experiments.train --config=configs/default.py                          # GRU, adding problem
  python -m experiments.train --config=configs/default.py:cell=mgu,task=copy       # a variant on a task
  python -m experiments.train --config=configs/default.py:cell=gru,task=jsb_chorales  # a published music set
  python -m experiments.train --config=configs/default.py:cell=sru --config.model.cell_kwargs.version=2018

The :arg is `key=value` pairs separated by commas, keys `cell` (gru, lstm, rnn, gru_no_reset, mgu,
cifg_lstm, peephole_lstm, mingru, minlstm, sru; default gru) and `task` (adding, copy, digits,
chorales, jsb_chorales, nottingham, musedata, piano_midi, forecast, sentiment, text_classify,
char_lm; default adding); anything else is an error.
Every option of the cell is in model.cell_kwargs. configs/gru.py, lstm.py and rnn.py give the
same configs for the three main cells, with the results their defaults reach.
"""

from gru_jax.lab import config as base

KEYS = {"cell": "gru", "task": "adding"}


def parse(arg: str) -> dict[str, str]:
  """`cell=…,task=…` -> {"cell": …, "task": …}, with the defaults for what is left out; an
  unknown key, a part without "=" or a key given twice raises a ValueError."""
  values = dict(KEYS)
  seen = set()
  for part in filter(None, (p.strip() for p in arg.split(","))):
    key, sep, value = part.partition("=")
    if not sep or key not in KEYS or key in seen or not value:
      raise ValueError(f"configs/default.py:{arg}: expected cell=<cell>,task=<task> (each at most once); got {part!r}")
    seen.add(key)
    values[key] = value
  return values


def get_config(arg: str = ""):
  values = parse(arg)
  return base.for_cell(values["cell"], values["task"])
