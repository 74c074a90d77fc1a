"""One time step of each recurrent cell, as pure functions.

Every step has the `jax.lax.scan` signature once its params are bound:
`step(params, carry, xp) -> (new_carry, y)`, where `xp = project(params, x)` is the input
projection, computed for all time steps at once by the layers (one matmul outside the loop).

Parameter layout, shared by every cell (H = features, D = input features, G = gate blocks):
  input_kernel      [D, G*H]   the input matmuls of all gates, fused
  recurrent_kernel  [H, G*H]   the recurrent matmuls of all gates, fused
  bias              [G*H]      the input and recurrent biases of each gate, folded into one
  recurrent_bias_n  [H]        GRU with reset_after only: b_hn, which sits inside r * (...) and
                               so cannot be folded
Gate blocks follow PyTorch's order, so weights map to `torch.nn.GRU/LSTM/RNN` by transposition.
"""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def activation_fn(name: str) -> Callable[[Array], Array]:
  """Returns the activation called `name`, or raises a ValueError listing the valid names."""
  if name not in ACTIVATIONS:
    raise ValueError(f"activation={name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def project(params: dict[str, Array], x: Array) -> Array:
  """Input projection `x @ input_kernel + bias`: [..., D] -> [..., G*H]."""
  xp = x @ params["input_kernel"]
  if "bias" in params:
    xp = xp + params["bias"]
  return xp


def gru_step(params: dict[str, Array], h: Array, xp: Array, *, reset_after: bool = True) -> tuple[Array, Array]:
  """One GRU step. z is the *keep* gate: z near 1 keeps the past.

  reset_after=True (PyTorch nn.GRU, cuDNN, flax.linen.GRUCell, Keras reset_after=True):
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 - z) ⊙ n + z ⊙ h
  reset_after=False (Cho et al. 2014 v3, Chung et al. 2014, Keras reset_after=False):
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h)), with no recurrent biases.
  The two are different functions of the same weights, not reparameterisations of each other.

  Args:
    params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks r, z, n), optional bias [3H]
      (b_ir + b_hr, b_iz + b_hz, b_in) and, for reset_after, recurrent_bias_n [H].
    h: carry [B, H].
    xp: `project(params, x)`, [B, 3H].

  Returns:
    (h', h'), each [B, H].
  """
  w_h = params["recurrent_kernel"]
  hidden = h.shape[-1]
  x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
  if reset_after:
    h_r, h_z, h_n = jnp.split(h @ w_h, 3, axis=-1)
    if "recurrent_bias_n" in params:
      h_n = h_n + params["recurrent_bias_n"]
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
  else:
    h_r, h_z = jnp.split(h @ w_h[:, : 2 * hidden], 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + (r * h) @ w_h[:, 2 * hidden :])
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


def lstm_step(params: dict[str, Array], carry: tuple[Array, Array], xp: Array) -> tuple[tuple[Array, Array], Array]:
  """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gate; PyTorch nn.LSTM form).

    i  = σ(W_ii x + W_hi h + b_i)     f = σ(W_if x + W_hf h + b_f)
    g  = tanh(W_ig x + W_hg h + b_g)  o = σ(W_io x + W_ho h + b_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

  Args:
    params: input_kernel [D, 4H], recurrent_kernel [H, 4H] (blocks i, f, g, o), optional bias [4H].
    carry: (c, h), each [B, H], as in flax.linen.
    xp: `project(params, x)`, [B, 4H].

  Returns:
    ((c', h'), h').
  """
  c, h = carry
  gates = xp + h @ params["recurrent_kernel"]
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
  return (new_c, new_h), new_h


def rnn_step(params: dict[str, Array], h: Array, xp: Array, *, activation: str = "tanh") -> tuple[Array, Array]:
  """One vanilla (Elman) RNN step, PyTorch nn.RNN form: h' = act(W_ih x + b_ih + W_hh h + b_hh).

  Args:
    params: input_kernel [D, H], recurrent_kernel [H, H], optional bias [H] (b_ih + b_hh).
    h: carry [B, H].
    xp: `project(params, x)`, [B, H].
    activation: "tanh" (default) or "relu".

  Returns:
    (h', h').
  """
  new_h = activation_fn(activation)(xp + h @ params["recurrent_kernel"])
  return new_h, new_h


