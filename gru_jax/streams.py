"""Streams of episodes: trajectories cut into chunks that start from the carries stored with them.

An agent's rollout runs a layer step by step (or over the rollout with `return_carries=True`) and
stores, with each step's observation and `done`, the carry after it. Training then cuts the
trajectories into chunks of `length` steps and runs each chunk from the carry stored just before
its first step, with the stored `done`s as `resets` and a fresh carry (zeros, or the layer's
`initialize_carry`) as `reset_carry`: each chunk then computes what the rollout computed, and the
chunks are independent rows of one batch.

    xs_c, resets_c, carries_c = gj.streams.chunk(xs, resets, carries, initial_carry, length=16)
    ys = layer.apply(variables, xs_c, resets=resets_c, initial_carry=carries_c, reset_carry=zeros)

Everything here is time-major, as rollouts are: xs [T, B, ...], resets [T, B], carries leaves
[T, B, H] (the carry after each step) and initial_carry leaves [B, H] (the carry before step 0).
"""

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Carry = Any


def chunk(xs: Array, resets: Array, carries: Carry, initial_carry: Carry, *, length: int
          ) -> tuple[Array, Array, Carry]:
  """Cuts T steps of B streams into T / length chunks of `length` steps, as a batch of N * B rows.

  Args:
    xs: [T, B, ...] per-step inputs; resets: [T, B] booleans (True where an episode starts).
    carries: the carry after each step, leaves [T, B, H] (a layer's `return_carries` in time-major
      layout); initial_carry: the carry before step 0, leaves [B, H].
    length: steps per chunk; must divide T.

  Returns:
    (xs [N * B, length, ...], resets [N * B, length], start carries, leaves [N * B, H]), batch-major
    (rows chunk-major: chunk 0 of every stream, then chunk 1, ...), each row's start carry the one
    stored just before its first step.
  """
  num_steps, batch = resets.shape
  if not isinstance(length, int) or isinstance(length, bool) or length < 1 or num_steps % length:
    raise ValueError(f"chunk: length must be a positive integer dividing T={num_steps}; got {length!r}")
  if xs.shape[:2] != (num_steps, batch):
    raise ValueError(f"chunk: xs must be [T, B, ...] with (T, B) = {(num_steps, batch)} as resets; got {xs.shape}")
  count = num_steps // length

  def rows(x):  # [T, B, ...] -> [N * B, length, ...]
    x = x.reshape((count, length) + x.shape[1:])
    return jnp.moveaxis(x, 2, 1).reshape((count * batch, length) + x.shape[3:])

  def starts(stored, first):  # the carry before steps 0, length, 2 length, ...: [N * B, H]
    before = jnp.concatenate([first[None], stored[length - 1 : num_steps - 1 : length]])
    return before.reshape((count * batch,) + before.shape[2:])

  return rows(xs), rows(resets), jax.tree_util.tree_map(starts, carries, initial_carry)
