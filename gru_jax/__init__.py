"""gru_jax: gated recurrent networks in JAX/Flax. See README.md.

Every cell of the registry (`gru_jax.specs.SPECS`) is exported as its linen cell and layer
(`GRUCell`, `GRU`, ...; `gru_jax.layers`); `gru_jax.nnx` holds the NNX ones under the same names.
"""

from gru_jax import cells, interop, layers, nnx, parallel, recurrent, scan, specs, streams
from gru_jax.layers import (
  Bidirectional,
  CellOptions,
  OptimizedLSTMCell,
  Recurrent,
  RecurrentCell,
  Scanned,
  SimpleCell,
  Stacked,
)

_CELL_EXPORTS = {c.__name__: c for c in [*layers.CELL_CLASSES.values(), *layers.LAYER_CLASSES.values()]}
globals().update(_CELL_EXPORTS)

__version__ = "0.1.0"

__all__ = [
  *_CELL_EXPORTS, "OptimizedLSTMCell", "SimpleCell", "Bidirectional", "Stacked", "Scanned", "Recurrent", "RecurrentCell",
  "CellOptions", "cells", "interop", "layers", "parallel", "nnx", "recurrent", "scan", "specs", "streams",
]
