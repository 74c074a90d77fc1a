"""Each cell's step against its equation written out by hand, and numerical gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from conftest import random_params
from gru_jax import cells

D, H, B = 3, 4, 2


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def gate_blocks(p, num_gates):
  """Splits fused params into per-gate (W_i, W_h, b) as the equations name them."""
  w_i = np.split(p["input_kernel"], num_gates, axis=-1)
  w_h = np.split(p["recurrent_kernel"], num_gates, axis=-1)
  b = np.split(p["bias"], num_gates)
  return w_i, w_h, b


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_step_matches_equations(rng, reset_after):
  p = random_params(rng, D, H, 3, gru_bias_n=reset_after)
  x, h = rng.normal(size=(B, D)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
  (w_ir, w_iz, w_in), (w_hr, w_hz, w_hn), (b_r, b_z, b_in) = gate_blocks(p, 3)
  r = sigmoid(x @ w_ir + b_r + h @ w_hr)
  z = sigmoid(x @ w_iz + b_z + h @ w_hz)
  if reset_after:  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    n = np.tanh(x @ w_in + b_in + r * (h @ w_hn + p["recurrent_bias_n"]))
  else:  # n = tanh(W_in x + b_in + W_hn (r * h))
    n = np.tanh(x @ w_in + b_in + (r * h) @ w_hn)
  expected = (1 - z) * n + z * h  # z keeps the past
  got, y = cells.gru_step(p, h, cells.project(p, x), reset_after=reset_after)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got, y)


def test_gru_variants_differ_with_same_weights(rng):
  p = random_params(rng, D, H, 3, gru_bias_n=True)
  x, h = rng.normal(size=(B, D)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
  after, _ = cells.gru_step(p, h, cells.project(p, x), reset_after=True)
  before, _ = cells.gru_step(p, h, cells.project(p, x), reset_after=False)
  assert np.abs(np.asarray(after) - np.asarray(before)).max() > 1e-3


def test_gru_keep_gate_saturated_keeps_state(rng):
  p = random_params(rng, D, H, 3, gru_bias_n=True)
  p["bias"][H : 2 * H] = 50.0  # z = σ(large) = 1: h' = h
  h = rng.normal(size=(B, H)).astype(np.float32)
  got, _ = cells.gru_step(p, h, cells.project(p, rng.normal(size=(B, D)).astype(np.float32)))
  np.testing.assert_allclose(got, h, atol=1e-6)


def test_lstm_step_matches_equations(rng):
  p = random_params(rng, D, H, 4)
  x = rng.normal(size=(B, D)).astype(np.float32)
  c, h = rng.normal(size=(B, H)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
  w_i, w_h, b = gate_blocks(p, 4)
  pre = [x @ w_i[k] + h @ w_h[k] + b[k] for k in range(4)]
  i, f, g, o = sigmoid(pre[0]), sigmoid(pre[1]), np.tanh(pre[2]), sigmoid(pre[3])
  c_new = f * c + i * g
  h_new = o * np.tanh(c_new)
  (got_c, got_h), y = cells.lstm_step(p, (c, h), cells.project(p, x))
  np.testing.assert_allclose(got_c, c_new, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_h, h_new, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(y, got_h)


@pytest.mark.parametrize("activation,fn", [("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0))])
def test_rnn_step_matches_equation(rng, activation, fn):
  p = random_params(rng, D, H, 1)
  x, h = rng.normal(size=(B, D)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
  expected = fn(x @ p["input_kernel"] + p["bias"] + h @ p["recurrent_kernel"])
  got, _ = cells.rnn_step(p, h, cells.project(p, x), activation=activation)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unknown_activation_lists_choices():
  with pytest.raises(ValueError, match=r"activation='gelu'.*\['identity', 'relu', 'tanh'\]"):
    cells.activation_fn("gelu")


STEPS = {
  "gru": (functools.partial(cells.gru_step, reset_after=True), 3, True, lambda h: h),
  "gru_reset_before": (functools.partial(cells.gru_step, reset_after=False), 3, False, lambda h: h),
  "lstm": (cells.lstm_step, 4, False, lambda h: (h * 0.5, h)),
  "rnn": (cells.rnn_step, 1, False, lambda h: h),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_gradients_numerically(rng, name):
  step, gates, bias_n, make_carry = STEPS[name]
  with jax.enable_x64(True):
    p = random_params(rng, D, H, gates, gru_bias_n=bias_n, dtype=np.float64)
    x = rng.normal(size=(B, D))
    h = rng.normal(size=(B, H))

    def loss(p, x, h):
      carry, y = step(p, make_carry(h), cells.project(p, x))
      return jnp.sum(jnp.sin(y)) + sum(jnp.sum(c**2) for c in jax.tree_util.tree_leaves(carry))

    check_grads(loss, (p, x, h), order=2, modes=["rev"], atol=1e-6, rtol=1e-6)
