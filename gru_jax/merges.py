"""How a Bidirectional layer merges its two directions' outputs, for both front-ends
(`gru_jax.layers.Bidirectional`, `gru_jax.nnx.Bidirectional`) and the Keras converter; the names
are Keras's `merge_mode`s."""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

MERGES: dict[str, Callable[[Array, Array], Array]] = {
  "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),  # [..., 2H], PyTorch's layout
  "sum": jnp.add, "mul": jnp.multiply, "ave": lambda f, b: (f + b) / 2,
}


def check_merge(merge: str) -> Callable[[Array, Array], Array]:
  """The merge function called `merge`, or a ValueError listing the names."""
  if merge not in MERGES:
    raise ValueError(f"Bidirectional: merge={merge!r} is not supported; expected one of {list(MERGES)}")
  return MERGES[merge]
