"""Conversions between gru_jax and PyTorch, Flax and Keras, and between gru_jax's two front-ends.

  PyTorch     `from_torch`, `to_torch`, `carry_from_torch`, `carry_to_torch`: torch.nn.GRU, LSTM
              and RNN (`gru_jax.interop.pytorch`).
  Flax cells  `from_flax`, `to_flax`: Flax's linen and NNX GRUCell, LSTMCell, OptimizedLSTMCell and
              SimpleCell (`gru_jax.interop.flax_cells`).
  Keras 3     `from_keras`, `to_keras`, `carry_from_keras`, `carry_to_keras`: GRU, LSTM, SimpleRNN,
              Bidirectional and Sequential stacks (`gru_jax.interop.keras3`).
  linen, NNX  `from_linen`, `to_linen`, `linen_variables`, `load_linen_variables`: gru_jax's linen
              modules as `gru_jax.nnx` modules and back (`gru_jax.interop.linen_nnx`).

Each `from_*` takes `front_end="linen"` (a module and its variables) or `"nnx"` (a module holding
its parameters); each `to_*` takes either. What the other library cannot hold exactly raises one
ValueError naming the option and why (`gru_jax.interop.common.refuse`). PyTorch and Keras are
imported only when their converters run.
"""

from gru_jax.interop.flax_cells import from_flax, to_flax
from gru_jax.interop.keras3 import carry_from_keras, carry_to_keras, from_keras, to_keras
from gru_jax.interop.linen_nnx import from_linen, linen_variables, load_linen_variables, to_linen
from gru_jax.interop.pytorch import carry_from_torch, carry_to_torch, from_torch, to_torch

__all__ = [
  "carry_from_keras", "carry_from_torch", "carry_to_keras", "carry_to_torch", "from_flax", "from_keras",
  "from_linen", "from_torch", "linen_variables", "load_linen_variables", "to_flax", "to_keras", "to_linen",
  "to_torch",
]
