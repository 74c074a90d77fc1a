"""gru_jax: gated recurrent networks in JAX/Flax. See README.md."""

from gru_jax import cells, interop, scan
from gru_jax.layers import (
  GRU,
  LSTM,
  Bidirectional,
  CellOptions,
  GRUCell,
  LSTMCell,
  Recurrent,
  RecurrentCell,
  SimpleRNN,
  SimpleRNNCell,
  Stacked,
)

__version__ = "0.1.0"

__all__ = [
  "GRU", "LSTM", "SimpleRNN", "GRUCell", "LSTMCell", "SimpleRNNCell", "Bidirectional", "Stacked",
  "Recurrent", "RecurrentCell", "CellOptions", "cells", "interop", "scan",
]
