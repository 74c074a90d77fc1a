"""One time step of each recurrent cell, as pure functions.

Every step has the `jax.lax.scan` signature once its params are bound:
`step(params, carry, xp) -> (new_carry, y)`, where `xp = project(params, x)` is the input
projection, computed for all time steps at once by the layers (one matmul outside the loop).
Most steps split into `pre = recurrent_pre(params, h)`, the one matmul with the recurrent kernel,
and an elementwise `*_gates(xp, pre, carry)` that takes xp and pre as tuples of gate blocks;
`gru_jax.fused` uses that split for its fast path, which keeps the blocks as separate arrays
(slicing a fused [B, G*H] block inside the loop costs more than the matmul saves on a CPU).
(The reset-before GRU multiplies r ⊙ h by W_hn and does not split so.)

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


def project_blocks(params: dict[str, Array], x: Array, num_gates: int) -> tuple[Array, ...]:
  """`project` as G separate blocks [..., H], one matmul per gate (the fast path's layout)."""
  kernels = jnp.split(params["input_kernel"], num_gates, axis=-1)
  biases = jnp.split(params["bias"], num_gates) if "bias" in params else [None] * num_gates
  return tuple(x @ k if b is None else x @ k + b for k, b in zip(kernels, biases))


def gru_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], h: Array) -> tuple[Array, Array]:
  """The elementwise part of a reset-after GRU step, per gate block.

  Given xp = (x_r, x_z, x_n), the blocks of the input projection, and pre = (h_r, h_z, h_n), the
  blocks of h @ W_h + [0, 0, b_hn]:
  r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h' = (1 - z) ⊙ n + z ⊙ h.
  """
  x_r, x_z, x_n = xp
  h_r, h_z, h_n = pre
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + r * h_n)
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


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
  if reset_after:
    return gru_gates(gate_blocks(xp, 3), gate_blocks(recurrent_pre(params, h), 3), h)
  w_h = params["recurrent_kernel"]
  hidden = h.shape[-1]
  x_r, x_z, x_n = gate_blocks(xp, 3)
  h_r, h_z = gate_blocks(h @ w_h[:, : 2 * hidden], 2)
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + (r * h) @ w_h[:, 2 * hidden :])
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


def gate_blocks(x: Array, num_gates: int) -> tuple[Array, ...]:
  """Splits the last axis [..., G*H] into G blocks [..., H]."""
  return tuple(jnp.split(x, num_gates, axis=-1))


def recurrent_bias(params: dict[str, Array], width: int, dtype) -> Array | None:
  """The bias added to h @ W_h: [0, 0, b_hn] for the reset-after GRU, None for the other cells."""
  if "recurrent_bias_n" not in params:
    return None
  b_hn = params["recurrent_bias_n"]
  return jnp.concatenate([jnp.zeros((width - b_hn.shape[-1],), dtype), b_hn.astype(dtype)])


def recurrent_pre(params: dict[str, Array], h: Array) -> Array:
  """pre = h @ W_h (+ the recurrent bias): the only place a step uses the recurrent kernel."""
  pre = h @ params["recurrent_kernel"]
  bias = recurrent_bias(params, pre.shape[-1], pre.dtype)
  return pre if bias is None else pre + bias


def lstm_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array]) -> tuple[tuple[Array, Array], Array]:
  """The elementwise part of an LSTM step, per gate block (i, f, g, o) of xp and pre = h @ W_h."""
  c, _ = carry
  i, f, g, o = (x + p for x, p in zip(xp, pre))
  new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
  return (new_c, new_h), new_h


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
  return lstm_gates(gate_blocks(xp, 4), gate_blocks(recurrent_pre(params, carry[1]), 4), carry)


def rnn_gates(xp: tuple[Array], pre: tuple[Array], h: Array, *, activation: str = "tanh") -> tuple[Array, Array]:
  """The elementwise part of a vanilla RNN step, given the one block of xp and of pre = h @ W_h."""
  del h
  new_h = activation_fn(activation)(xp[0] + pre[0])
  return new_h, new_h


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
  return rnn_gates((xp,), (recurrent_pre(params, h),), h, activation=activation)
