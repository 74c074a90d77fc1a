"""Trajectories cut into chunks that start from their stored carries compute what the rollout did."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import models

T, B, D, H, LENGTH = 8, 2, 3, 4, 4


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_chunks_from_stored_carries_compute_the_rollout(cell):
  layer = models.make_layer(cell, H, time_major=True)
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.normal(size=(T, B, D)), jnp.float32)
  resets = jnp.asarray(rng.random((T, B)) < 0.25)
  variables = layer.init(jax.random.key(0), xs)
  initial = jax.tree_util.tree_map(lambda z: jnp.asarray(rng.normal(size=z.shape), jnp.float32),
                                   layer.apply(variables, (B,), method="initialize_carry"))
  zeros = layer.apply(variables, (B,), method="initialize_carry")
  # the rollout: the whole stream from `initial`, episodes restarting from zeros, every carry stored
  ys, carries = layer.apply(variables, xs, initial_carry=initial, resets=resets, reset_carry=zeros, return_carries=True)
  xs_c, resets_c, starts = gj.streams.chunk(xs, resets, carries, initial, length=LENGTH)
  assert xs_c.shape == (T // LENGTH * B, LENGTH, D) and resets_c.shape == (T // LENGTH * B, LENGTH)
  fresh = jax.tree_util.tree_map(lambda z: jnp.zeros((T // LENGTH * B,) + z.shape[1:]), zeros)
  batch_major = models.make_layer(cell, H)
  ys_c = batch_major.apply(variables, xs_c, initial_carry=starts, resets=resets_c, reset_carry=fresh)
  want = jnp.moveaxis(ys.reshape(T // LENGTH, LENGTH, B, H), 2, 1).reshape(-1, LENGTH, H)
  np.testing.assert_allclose(ys_c, want, rtol=1e-5, atol=1e-5)


def test_chunk_checks_its_arguments():
  xs, resets = jnp.zeros((T, B, D)), jnp.zeros((T, B), bool)
  carries, initial = jnp.zeros((T, B, H)), jnp.zeros((B, H))
  with pytest.raises(ValueError, match=r"chunk: length must be a positive integer dividing T=8; got 3"):
    gj.streams.chunk(xs, resets, carries, initial, length=3)
  with pytest.raises(ValueError, match=r"chunk: xs must be \[T, B, \.\.\.\] with \(T, B\) = \(8, 2\) as resets"):
    gj.streams.chunk(xs[:, :1], resets, carries, initial, length=4)


@pytest.mark.parametrize("module", [gj.GRU(H), gj.Bidirectional(gj.LSTM(H), gj.LSTM(H))])
def test_packed_sequences_compute_each_sequence_alone(module):
  rng = np.random.default_rng(1)
  sequences = [rng.normal(size=(n, D)).astype(np.float32) for n in (5, 3, 7, 2, 4)]
  packed = gj.streams.pack(sequences, row_length=8)
  assert [p[0] for p in packed.places] == [0, 0, 1, 2, 2] and list(packed.lengths) == [8, 7, 6]  # first fit
  variables = module.init(jax.random.key(0), jnp.asarray(packed.xs))
  ys = module.apply(variables, jnp.asarray(packed.xs), resets=jnp.asarray(packed.resets),
                    seq_lengths=jnp.asarray(packed.lengths))
  for x, y in zip(sequences, gj.streams.unpack(ys, packed), strict=True):
    np.testing.assert_allclose(y, module.apply(variables, jnp.asarray(x)[None])[0], rtol=1e-5, atol=1e-5)
  segment_ids = np.zeros(packed.resets.shape, np.int32)
  for i, (row, start, length) in enumerate(packed.places):
    segment_ids[row, start : start + length] = i + 1
  filled = np.arange(packed.resets.shape[1])[None] < packed.lengths[:, None]  # padding is the lengths' business
  np.testing.assert_array_equal(np.asarray(gj.streams.resets_from_segments(segment_ids))[filled], packed.resets[filled])


def test_pack_checks_its_arguments():
  with pytest.raises(ValueError, match=r"pack: sequence 1 must be \[L, D\] with 1 <= L <= row_length=4 and D=3"):
    gj.streams.pack([np.zeros((2, 3)), np.zeros((5, 3))], row_length=4)
  with pytest.raises(ValueError, match="pack: row_length must be a positive integer; got 0"):
    gj.streams.pack([np.zeros((2, 3))], row_length=0)
