"""Streams of episodes: packed sequences, and trajectories cut into chunks that start from the
carries stored with them.

Packing puts several variable-length sequences into one row, one after the other, with `resets`
at each one's first step, so that no row is mostly padding; the layers then run each sequence as
if alone (forward, and backward from its own end in `Bidirectional`):

    packed = gj.streams.pack([seq_a, seq_b, seq_c], row_length=64)      # each [L_i, D]
    ys = layer.apply(variables, packed.xs, resets=packed.resets, seq_lengths=packed.lengths)
    outs = gj.streams.unpack(ys, packed)                                 # [L_i, H] each

`resets_from_segments` turns the segment ids of other packers (1, 1, 2, 2, 2, 0 for padding) into
`resets`.

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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


class Packed(NamedTuple):
  """Sequences packed into rows: xs [R, row_length, D] (zeros past each row's length), resets
  [R, row_length] (True at each sequence's first step), lengths [R] (the filled steps of each row)
  and where each sequence went: `places[i] = (row, start, length)`."""

  xs: np.ndarray
  resets: np.ndarray
  lengths: np.ndarray
  places: tuple[tuple[int, int, int], ...]


def pack(sequences, row_length: int) -> Packed:
  """Packs sequences ([L_i, D] arrays, 1 <= L_i <= row_length) into rows of `row_length` steps:
  each goes, in order, into the first row with room left (first fit), else a new row."""
  if not isinstance(row_length, int) or isinstance(row_length, bool) or row_length < 1:
    raise ValueError(f"pack: row_length must be a positive integer; got {row_length!r}")
  sequences = [np.asarray(x) for x in sequences]
  if not sequences:
    raise ValueError("pack: no sequences given")
  for i, x in enumerate(sequences):
    if x.ndim != 2 or not 1 <= len(x) <= row_length or x.shape[1] != sequences[0].shape[1]:
      raise ValueError(f"pack: sequence {i} must be [L, D] with 1 <= L <= row_length={row_length} and D="
                       f"{sequences[0].shape[1]}; got shape {x.shape}")
  filled, places = [], []
  for x in sequences:
    row = next((r for r, used in enumerate(filled) if used + len(x) <= row_length), len(filled))
    if row == len(filled):
      filled.append(0)
    places.append((row, filled[row], len(x)))
    filled[row] += len(x)
  xs = np.zeros((len(filled), row_length, sequences[0].shape[1]), sequences[0].dtype)
  resets = np.zeros((len(filled), row_length), bool)
  for x, (row, start, length) in zip(sequences, places):
    xs[row, start : start + length] = x
    resets[row, start] = True
  return Packed(xs, resets, np.asarray(filled, np.int32), tuple(places))


def unpack(ys: Array, packed: Packed) -> list[Array]:
  """The outputs of each packed sequence, in the order given to `pack`: [L_i, ...] each."""
  return [ys[row, start : start + length] for row, start, length in packed.places]


def resets_from_segments(segment_ids: Array) -> Array:
  """`resets` of packed rows given as segment ids [..., T] (a new id starts a sequence; 0 is
  padding, which needs `seq_lengths` or is left to the caller): True where the id changes, and at
  step 0."""
  segment_ids = jnp.asarray(segment_ids)
  first = jnp.ones(segment_ids.shape[:-1] + (1,), bool)
  return jnp.concatenate([first, segment_ids[..., 1:] != segment_ids[..., :-1]], axis=-1)
