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
