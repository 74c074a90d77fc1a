"""Run a cell's step over time with `jax.lax.scan`: masks, reverse, remat, unroll.

Everything here is time-major and has one flat batch axis: xp [T, B, G], carry leaves [B, H].
The layers reshape to and from the user's layout.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any
Step = Callable[[Carry, Array], tuple[Carry, Array]]


def reverse_padded(x_TxB: Array, lengths_B: Array) -> Array:
  """Reverses each sequence within its own length; steps past the length stay where they are.

  x_TxB is [T, B, ...] and lengths_B is [B]. Applying it twice gives back x_TxB.
  """
  t = jnp.arange(x_TxB.shape[0])[:, None]
  idx_TxB = jnp.where(t < lengths_B[None, :], lengths_B[None, :] - 1 - t, t)
  idx = idx_TxB.reshape(idx_TxB.shape + (1,) * (x_TxB.ndim - 2))
  return jnp.take_along_axis(x_TxB, idx, axis=0)


def scan(
  step: Step,
  carry: Carry,
  xp_TxBxG: Array,
  *,
  seq_lengths: Array | None = None,
  reverse: bool = False,
  unroll: int = 1,
  remat: bool = False,
) -> tuple[Carry, Array]:
  """Runs `step` over the leading (time) axis of `xp_TxBxG`.

  Args:
    step: `(carry, xp_t) -> (carry, y_t)`, with xp_t [B, G] and y_t [B, H].
    carry: initial carry, a pytree of [B, H] arrays.
    xp_TxBxG: projected inputs, time-major.
    seq_lengths: optional [B] integers. The carry stops changing after each sequence's last valid
      step, outputs past it are zeros, and a length of 0 returns the initial carry. Lengths above T
      act as T and negative lengths as 0 (the layers reject both when the lengths are concrete).
    reverse: process each sequence from its last valid step back to its first; outputs are
      returned aligned with the inputs.
    unroll: passed to `jax.lax.scan`.
    remat: recompute each step in the backward pass instead of storing its intermediates
      (`jax.checkpoint` around the step), so memory grows with T only through the carries.

  Returns:
    (final carry, ys [T, B, H]).
  """
  body = jax.checkpoint(step, prevent_cse=False) if remat else step
  if seq_lengths is None:
    return jax.lax.scan(body, carry, xp_TxBxG, reverse=reverse, unroll=unroll)

  if reverse:
    xp_TxBxG = reverse_padded(xp_TxBxG, seq_lengths)

  def masked(carry, inputs):
    xp, t = inputs
    valid_B = t < seq_lengths
    new_carry, y = body(carry, xp)
    keep = lambda new, old: jnp.where(valid_B[:, None], new, old)
    new_carry = jax.tree_util.tree_map(keep, new_carry, carry)
    return new_carry, jnp.where(valid_B[:, None], y, jnp.zeros_like(y))

  steps = jnp.arange(xp_TxBxG.shape[0])
  carry, ys = jax.lax.scan(masked, carry, (xp_TxBxG, steps), unroll=unroll)
  if reverse:
    ys = reverse_padded(ys, seq_lengths)
  return carry, ys


def python_loop(step: Step, carry: Carry, xp_TxBxG: Array) -> tuple[Carry, Array]:
  """The readable reference for `scan` without masks: a Python for-loop over time."""
  ys = []
  for t in range(xp_TxBxG.shape[0]):
    carry, y = step(carry, xp_TxBxG[t])
    ys.append(y)
  return carry, jnp.stack(ys)
