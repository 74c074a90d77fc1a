"""The fast path: a scan over time whose backward pass is written by hand.

For a cell whose step is `carry' = gates(xp_t, h @ W_h + b, carry)` with an elementwise `gates`
(the reset-after GRU, the LSTM, the vanilla RNN), autodiff of `lax.scan` adds the outer product
h_{t-1}^T dpre_t into a [H, G*H] gradient at every step: a skinny matmul per step and a large
loop carry. Here the backward loop carries only d(carry); it stores dpre_t, and after the loop
dW_h = H_prev^T dPre and db = sum dPre are each one large matmul / reduction over all T*B rows.

The options ride along: a variational recurrent-dropout mask [B, H] multiplies h where it enters
the matmul (`hidden_mask`); zoneout is part of `gates` (its per-step draws are `aux`, inputs that
are not differentiated); layer normalisation is part of `gates` too, for both x @ W_x and h @ W_h
(normalising each step's slice in cache costs far less than extra passes over the whole [T, B, G*H]
projection), with its scales and the biases after it as `gate_params`, small vectors whose
gradients the backward loop sums over the steps. The layer-normalised cells hand this scan kernels
whose gate blocks are centred (`gru_jax.cells.centre_blocks`), so the normalisation skips its mean.

`scan` here and `gru_jax.scan.scan` with the plain step compute the same function; the tests check
that outputs and gradients agree on random inputs, with masks, reverse and initial carries.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gru_jax import cells

Array = jax.Array
Carry = Any
Gates = Callable[[tuple, tuple, Carry], tuple[Carry, Array]]
HiddenOf = Callable[[Carry], Array]


def reset(reset_t, initial, carry):
  """The carry a step starts from: `initial` where `reset_t` ([B, 1] booleans) is True, else `carry`."""
  if reset_t is None:
    return carry
  return jax.tree_util.tree_map(lambda c0, c: jnp.where(reset_t, c0, c), initial, carry)


def apply_mask(valid, new_carry, carry, y):
  """Where `valid` is False (past a sequence's length) the carry passes through and y is zero."""
  if valid is None:
    return new_carry, y
  new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(valid, n, o), new_carry, carry)
  return new_carry, jnp.where(valid, y, jnp.zeros_like(y))


class Split(NamedTuple):
  """A step split for the fused scan: `step(c, x) == gates(x, blocks(hidden_of(c) * hidden_mask
  @ w_h + b), c, *gate_params)`, with x the per-step inputs (the gate blocks of the input
  projection, or any pytree `gates` reads) and `gates` elementwise over the batch."""

  gates: Callable
  hidden_of: HiddenOf
  w_h: Array
  b: Array
  gate_params: tuple = ()
  hidden_mask: Array | None = None
  with_aux: bool = False  # the inputs given to `gru_jax.scan.scan` are (xp, aux): see `scan`


def _pre_blocks(w_h, b, hidden):
  pre = hidden @ w_h + b
  return tuple(jnp.split(pre, w_h.shape[-1] // w_h.shape[0], axis=-1))


def _with_aux(gates, aux_t):
  """`gates` reading the per-step inputs (xp_t, aux_t), as a function of the differentiated ones."""
  return gates if aux_t is None else (lambda xp_t, *args: gates((xp_t, aux_t), *args))


def _forward(gates, hidden_of, unroll, w_h, b, gate_params, mask, carry, xp, aux, valid, resets, initial, keep):
  """Returns (final carry, ys, residuals per step); `keep` is "none", "carries" or "all"
  (the carries each step starts from, after any reset, plus the pre-activation blocks)."""

  def body(carry, inputs):
    xp_t, aux_t, valid_t, reset_t = inputs
    start = reset(reset_t, initial, carry)
    pre = _pre_blocks(w_h, b, cells.masked_hidden(hidden_of(start), mask))
    stepped, y = _with_aux(gates, aux_t)(xp_t, pre, start, *gate_params)
    new_carry, y = apply_mask(valid_t, stepped, carry, y)
    residual = {"none": None, "carries": (start, None), "all": (start, pre)}[keep]
    return new_carry, (y, residual)

  final, (ys, residuals) = jax.lax.scan(body, carry, (xp, aux, valid, resets), unroll=unroll)
  return final, ys, residuals


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _scan(gates, hidden_of, unroll, remat, w_h, b, gate_params, mask, carry, xp, aux, valid, resets, initial):
  final, ys, _ = _forward(gates, hidden_of, unroll, w_h, b, gate_params, mask, carry, xp, aux, valid, resets, initial,
                          keep="none")
  return final, ys


def _scan_fwd(gates, hidden_of, unroll, remat, w_h, b, gate_params, mask, carry, xp, aux, valid, resets, initial):
  # With remat the pre-activations are recomputed in the backward loop; the carries each step
  # starts from and the inputs xp are kept either way.
  final, ys, (prev, pres) = _forward(gates, hidden_of, unroll, w_h, b, gate_params, mask, carry, xp, aux, valid,
                                     resets, initial, keep="carries" if remat else "all")
  return (final, ys), (w_h, b, gate_params, mask, xp, aux, valid, resets, initial, prev, pres)


def _scan_bwd(gates, hidden_of, unroll, remat, residuals, cotangents):
  w_h, b, gate_params, mask, xp, aux, valid, resets, initial, prev, pres = residuals
  d_final, d_ys = cotangents

  def body(acc, inputs):
    d_carry, d_gate_params, d_initial = acc
    xp_t, aux_t, valid_t, reset_t, carry, dy_t, pre = inputs
    if pre is None:
      pre = _pre_blocks(w_h, b, cells.masked_hidden(hidden_of(carry), mask))
    _, gates_vjp = jax.vjp(_with_aux(gates, aux_t), xp_t, pre, carry, *gate_params)
    keep_valid = (lambda d: jnp.where(valid_t, d, jnp.zeros_like(d))) if valid_t is not None else (lambda d: d)
    d_xp, d_pre, d_carry_gates, *d_params = gates_vjp((jax.tree_util.tree_map(keep_valid, d_carry), keep_valid(dy_t)))
    d_pre = jnp.concatenate(d_pre, axis=-1)
    _, hidden_vjp = jax.vjp(hidden_of, carry)
    (d_carry_matmul,) = hidden_vjp(cells.masked_hidden(d_pre @ w_h.T, mask))
    d_start = jax.tree_util.tree_map(jnp.add, d_carry_gates, d_carry_matmul)  # of the carry the step started from
    if reset_t is None:
      d_prev = d_start
    else:  # a reset step started from `initial`, not from the previous carry
      d_prev = jax.tree_util.tree_map(lambda d: jnp.where(reset_t, 0, d), d_start)
      d_initial = jax.tree_util.tree_map(lambda acc_i, d: acc_i + jnp.where(reset_t, d, 0), d_initial, d_start)
    if valid_t is not None:  # a step past the length passed the carry through unchanged
      d_prev = jax.tree_util.tree_map(lambda dp, dc: dp + jnp.where(valid_t, 0, dc), d_prev, d_carry)
    return (d_prev, jax.tree_util.tree_map(jnp.add, d_gate_params, tuple(d_params)), d_initial), (d_xp, d_pre)

  zeros = jax.tree_util.tree_map(jnp.zeros_like, gate_params)
  d_initial0 = jax.tree_util.tree_map(jnp.zeros_like, initial)
  (d_carry0, d_gate_params, d_initial), (d_xp, d_pres) = jax.lax.scan(
    body, (d_final, zeros, d_initial0), (xp, aux, valid, resets, prev, d_ys, pres), reverse=True, unroll=unroll
  )
  h_prev = cells.masked_hidden(hidden_of(prev), mask)
  rows = h_prev.shape[0] * h_prev.shape[1]
  d_w_h = h_prev.reshape(rows, -1).T @ d_pres.reshape(rows, -1)
  d_b = jnp.sum(d_pres, axis=(0, 1))
  return d_w_h.astype(w_h.dtype), d_b.astype(b.dtype), d_gate_params, None, d_carry0, d_xp, None, None, None, d_initial


_scan.defvjp(_scan_fwd, _scan_bwd)


def scan(
  gates: Gates,
  hidden_of: HiddenOf,
  w_h: Array,
  b: Array,
  carry: Carry,
  xp: Any,
  valid_TxBx1: Array | None = None,
  *,
  unroll: int = 1,
  remat: bool = False,
  gate_params: tuple = (),
  hidden_mask: Array | None = None,
  aux: Any = None,
  resets_TxBx1: Array | None = None,
  reset_carry: Carry | None = None,
) -> tuple[Carry, Array]:
  """Runs `carry' = gates(xp_t, blocks(hidden_of(carry) @ w_h + b), carry, *gate_params)` over time.

  Args:
    gates: the elementwise part of the step, `(xp_t, pre_t, carry, *gate_params) -> (carry, y_t)`,
      pre_t a tuple of G gate blocks [B, H]; it must not close over arrays that need gradients
      (pass those as gate_params).
    hidden_of: picks the carry leaf that multiplies `w_h` (h; for the LSTM's (c, h), the second).
    w_h: recurrent kernel [H, G*H]; b: bias added to the recurrent matmul [G*H] (zeros if none).
    carry: initial carry, leaves [B, H].
    xp: the per-step inputs, time-major: the G gate blocks [T, B, H] of the input projection, or
      any pytree of [T, ...] arrays that `gates` reads (e.g. the blocks and zoneout's draws).
    valid_TxBx1: optional booleans; where False the carry passes through and y is zero.
    unroll: `lax.scan` unroll of both loops.
    remat: keep the carries (and xp) for the backward pass but not the pre-activations, and
      recompute the recurrent matmul there.
    gate_params: arrays `gates` takes after the carry (e.g. layer-norm scales), differentiated.
    hidden_mask: optional [B, H] multiplying h where it enters the matmul (recurrent dropout, one
      mask per sequence); not differentiated.
    aux: optional per-step inputs [T, ...] that are not differentiated (zoneout's draws); with
      them, `gates` takes (xp_t, aux_t) as its first argument.
    resets_TxBx1: optional booleans; where True the step starts from `reset_carry` instead of the
      previous carry (a new episode).
    reset_carry: the carry a reset step starts from (leaves [B, H]; default: `carry`), differentiated.

  Returns:
    (final carry, ys [T, B, H]).
  """
  xp = tuple(xp) if isinstance(xp, list) else xp
  initial = None if resets_TxBx1 is None else (carry if reset_carry is None else reset_carry)
  return _scan(gates, hidden_of, unroll, remat, w_h, b, tuple(gate_params), hidden_mask, carry, xp, aux, valid_TxBx1,
               resets_TxBx1, initial)
