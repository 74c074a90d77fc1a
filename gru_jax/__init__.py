"""gru_jax: gated recurrent networks in JAX/Flax. See README.md."""

from gru_jax import cells, interop, nnx, parallel, recurrent, scan, specs
from gru_jax.layers import (
  GRU,
  LSTM,
  MGU,
  SRU,
  Bidirectional,
  CellOptions,
  CIFGLSTM,
  CIFGLSTMCell,
  GRUCell,
  GRUNoReset,
  GRUNoResetCell,
  LSTMCell,
  OptimizedLSTMCell,
  MGUCell,
  MinGRU,
  MinGRUCell,
  MinLSTM,
  MinLSTMCell,
  PeepholeLSTM,
  PeepholeLSTMCell,
  Recurrent,
  RecurrentCell,
  SimpleRNN,
  SimpleCell,
  SimpleRNNCell,
  SRUCell,
  Scanned,
  Stacked,
)

__version__ = "0.1.0"

__all__ = [
  "GRU", "LSTM", "SimpleRNN", "GRUCell", "LSTMCell", "OptimizedLSTMCell", "SimpleRNNCell", "SimpleCell", "Bidirectional", "Stacked", "Scanned",
  "Recurrent", "RecurrentCell", "CellOptions", "cells", "interop", "parallel", "nnx", "recurrent", "scan", "specs",
  "GRUNoReset", "GRUNoResetCell", "MGU", "MGUCell", "CIFGLSTM", "CIFGLSTMCell", "PeepholeLSTM", "PeepholeLSTMCell",
  "MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell", "SRU", "SRUCell",
]
