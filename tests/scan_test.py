"""scan against a Python loop; masks, reverse, remat and unroll."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_params
from gru_jax import cells
from gru_jax import scan as scan_lib

T, B, D, H = 7, 3, 3, 4

CELLS = {
  "gru": (functools.partial(cells.gru_step, reset_after=True), 3, lambda z: z),
  "gru_reset_before": (functools.partial(cells.gru_step, reset_after=False), 3, lambda z: z),
  "lstm": (cells.lstm_step, 4, lambda z: (z, z)),
  "rnn": (cells.rnn_step, 1, lambda z: z),
}


def setup(rng, name):
  step, gates, make_carry = CELLS[name]
  p = random_params(rng, D, H, gates, gru_bias_n=name == "gru")
  xp = cells.project(p, rng.normal(size=(T, B, D)).astype(np.float32))
  carry = make_carry(jnp.asarray(rng.normal(size=(B, H)).astype(np.float32)))
  return functools.partial(step, p), carry, xp


def assert_trees_close(a, b, **kw):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **kw)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_scan_equals_python_loop(rng, name):
  step, carry, xp = setup(rng, name)
  assert_trees_close(scan_lib.scan(step, carry, xp), scan_lib.python_loop(step, carry, xp), rtol=1e-5, atol=1e-6)


def reference(step, carry, xp):
  """The Python loop over one truncated sequence; no steps leave the carry as it was."""
  return scan_lib.python_loop(step, carry, xp) if xp.shape[0] else (carry, None)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_seq_lengths_semantics(rng, name):
  step, carry, xp = setup(rng, name)
  lengths = np.array([T, 0, 3])
  final, ys = scan_lib.scan(step, carry, xp, seq_lengths=jnp.asarray(lengths))
  for b, length in enumerate(lengths):
    one = lambda tree: jax.tree_util.tree_map(lambda c: c[b : b + 1], tree)
    ref_carry, ref_ys = reference(step, one(carry), xp[:length, b : b + 1])
    assert_trees_close(one(final), ref_carry, rtol=1e-5, atol=1e-6)  # length 0: the initial carry
    if length:
      np.testing.assert_allclose(ys[:length, b : b + 1], ref_ys, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ys[length:, b], 0.0)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_reverse_starts_at_each_last_valid_step(rng, name):
  step, carry, xp = setup(rng, name)
  lengths = np.array([T, 2, 0])
  final, ys = scan_lib.scan(step, carry, xp, seq_lengths=jnp.asarray(lengths), reverse=True)
  for b, length in enumerate(lengths):
    one = lambda tree: jax.tree_util.tree_map(lambda c: c[b : b + 1], tree)
    ref_carry, ref_ys = reference(step, one(carry), xp[:length, b : b + 1][::-1])
    assert_trees_close(one(final), ref_carry, rtol=1e-5, atol=1e-6)
    if length:
      np.testing.assert_allclose(ys[:length, b : b + 1], ref_ys[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ys[length:, b], 0.0)


def test_reverse_without_lengths_equals_full_length_reverse(rng):
  step, carry, xp = setup(rng, "gru")
  a = scan_lib.scan(step, carry, xp, reverse=True)
  b = scan_lib.scan(step, carry, xp, reverse=True, seq_lengths=jnp.full((B,), T))
  assert_trees_close(a, b, rtol=1e-6, atol=1e-6)


def test_reverse_padded_is_an_involution(rng):
  x = jnp.asarray(rng.normal(size=(T, B, 2)))
  lengths = jnp.array([T, 3, 0])
  np.testing.assert_array_equal(scan_lib.reverse_padded(scan_lib.reverse_padded(x, lengths), lengths), x)
  np.testing.assert_array_equal(scan_lib.reverse_padded(x, lengths)[:3, 1], x[:3, 1][::-1])


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(remat=True), dict(unroll=3), dict(remat=True, unroll=2)])
def test_remat_and_unroll_change_nothing(rng, options):
  step_of = lambda p, c, x: CELLS["gru"][0](p, c, x)
  p = random_params(rng, D, H, 3, gru_bias_n=True)
  xs = jnp.asarray(rng.normal(size=(T, B, D)).astype(np.float32))
  lengths = jnp.array([T, 4, 1])

  def loss(p, **kw):
    _, ys = scan_lib.scan(functools.partial(step_of, p), jnp.zeros((B, H)), cells.project(p, xs), seq_lengths=lengths, **kw)
    return jnp.sum(ys**2)

  assert_trees_close(jax.value_and_grad(loss)(p, **options), jax.value_and_grad(loss)(p), rtol=1e-5, atol=1e-6)
