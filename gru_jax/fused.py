"""The fast path: a scan over time whose backward pass is written by hand.

For a cell whose step is `carry' = gates(xp_t, h @ W_h + b, carry)` with an elementwise `gates`
(the reset-after GRU, the LSTM, the vanilla RNN), autodiff of `lax.scan` adds the outer product
h_{t-1}^T dpre_t into a [H, G*H] gradient at every step: a skinny matmul per step and a large
loop carry. Here the backward loop carries only d(carry); it stores dpre_t, and after the loop
dW_h = H_prev^T dPre and db = sum dPre are each one large matmul / reduction over all T*B rows.

`scan` here and `gru_jax.scan.scan` with the plain step compute the same function; the tests check
that outputs and gradients agree on random inputs, with masks, reverse and initial carries.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any
Gates = Callable[[tuple, tuple, Carry], tuple[Carry, Array]]
HiddenOf = Callable[[Carry], Array]


def apply_mask(valid, new_carry, carry, y):
  """Where `valid` is False (past a sequence's length) the carry passes through and y is zero."""
  if valid is None:
    return new_carry, y
  new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(valid, n, o), new_carry, carry)
  return new_carry, jnp.where(valid, y, jnp.zeros_like(y))


def _pre_blocks(hidden_of, w_h, b, carry, num_gates):
  pre = hidden_of(carry) @ w_h + b
  return tuple(jnp.split(pre, num_gates, axis=-1))


def _forward(gates, hidden_of, unroll, w_h, b, carry, xp, valid, keep):
  """Returns (final carry, ys, residuals per step); `keep` is "none", "carries" or "all"
  (carries before each step, plus the pre-activation blocks)."""
  num_gates = len(xp)

  def body(carry, inputs):
    xp_t, valid_t = inputs
    pre = _pre_blocks(hidden_of, w_h, b, carry, num_gates)
    stepped, y = gates(xp_t, pre, carry)
    new_carry, y = apply_mask(valid_t, stepped, carry, y)
    residual = {"none": None, "carries": (carry, None), "all": (carry, pre)}[keep]
    return new_carry, (y, residual)

  final, (ys, residuals) = jax.lax.scan(body, carry, (xp, valid), unroll=unroll)
  return final, ys, residuals


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _scan(gates, hidden_of, unroll, remat, w_h, b, carry, xp, valid):
  final, ys, _ = _forward(gates, hidden_of, unroll, w_h, b, carry, xp, valid, keep="none")
  return final, ys


def _scan_fwd(gates, hidden_of, unroll, remat, w_h, b, carry, xp, valid):
  # With remat the pre-activations are recomputed in the backward loop; the carries before each
  # step and the input blocks xp are kept either way.
  final, ys, (prev, pres) = _forward(gates, hidden_of, unroll, w_h, b, carry, xp, valid, keep="carries" if remat else "all")
  return (final, ys), (w_h, b, xp, valid, prev, pres)


def _scan_bwd(gates, hidden_of, unroll, remat, residuals, cotangents):
  w_h, b, xp, valid, prev, pres = residuals
  d_final, d_ys = cotangents
  num_gates = len(xp)

  def body(d_carry, inputs):
    xp_t, valid_t, carry, dy_t, pre = inputs
    if pre is None:
      pre = _pre_blocks(hidden_of, w_h, b, carry, num_gates)
    _, gates_vjp = jax.vjp(gates, xp_t, pre, carry)
    mask = (lambda d: jnp.where(valid_t, d, jnp.zeros_like(d))) if valid_t is not None else (lambda d: d)
    d_xp, d_pre, d_carry_gates = gates_vjp((jax.tree_util.tree_map(mask, d_carry), mask(dy_t)))
    d_pre = jnp.concatenate(d_pre, axis=-1)
    _, hidden_vjp = jax.vjp(hidden_of, carry)
    (d_carry_matmul,) = hidden_vjp(d_pre @ w_h.T)
    d_prev = jax.tree_util.tree_map(jnp.add, d_carry_gates, d_carry_matmul)
    if valid_t is not None:  # a step past the length passed the carry through unchanged
      d_prev = jax.tree_util.tree_map(lambda dp, dc: dp + jnp.where(valid_t, 0, dc), d_prev, d_carry)
    return d_prev, (d_xp, d_pre)

  d_carry0, (d_xp, d_pres) = jax.lax.scan(body, d_final, (xp, valid, prev, d_ys, pres), reverse=True, unroll=unroll)
  h_prev = hidden_of(prev)
  rows = h_prev.shape[0] * h_prev.shape[1]
  d_w_h = h_prev.reshape(rows, -1).T @ d_pres.reshape(rows, -1)
  d_b = jnp.sum(d_pres, axis=(0, 1))
  return d_w_h.astype(w_h.dtype), d_b.astype(b.dtype), d_carry0, d_xp, None


_scan.defvjp(_scan_fwd, _scan_bwd)


def scan(
  gates: Gates,
  hidden_of: HiddenOf,
  w_h: Array,
  b: Array,
  carry: Carry,
  xp_blocks: tuple[Array, ...],
  valid_TxBx1: Array | None = None,
  *,
  unroll: int = 1,
  remat: bool = False,
) -> tuple[Carry, Array]:
  """Runs `carry' = gates(xp_t, blocks(hidden_of(carry) @ w_h + b), carry)` over time.

  Args:
    gates: the elementwise part of the step, `(xp_t, pre_t, carry) -> (carry, y_t)`, xp_t and
      pre_t tuples of G gate blocks [B, H]; it must not close over arrays that need gradients.
    hidden_of: picks the carry leaf that multiplies `w_h` (h; for the LSTM's (c, h), the second).
    w_h: recurrent kernel [H, G*H]; b: bias added to the recurrent matmul [G*H] (zeros if none).
    carry: initial carry, leaves [B, H].
    xp_blocks: the input projection as G time-major blocks [T, B, H].
    valid_TxBx1: optional booleans; where False the carry passes through and y is zero.
    unroll: `lax.scan` unroll of both loops.
    remat: keep the carries (and xp) for the backward pass but not the pre-activations, and
      recompute the recurrent matmul there.

  Returns:
    (final carry, ys [T, B, H]).
  """
  return _scan(gates, hidden_of, unroll, remat, w_h, b, carry, tuple(xp_blocks), valid_TxBx1)
