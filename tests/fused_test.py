"""The hand-written backward pass against autodiff through lax.scan (the readable reference)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import gru_jax as gj
from gru_jax import cells, fused, specs
from gru_jax import scan as scan_lib

T, B, H, D = 6, 3, 4, 3

SPLITS = {
  "gru": (cells.gru_gates, lambda c: c, 3, lambda h: h),
  "lstm": (cells.lstm_gates, lambda c: c[1], 4, lambda h: (h * 0.7, h)),
  "rnn": (functools.partial(cells.rnn_gates, activation="tanh"), lambda c: c, 1, lambda h: h),
  "rnn_relu": (functools.partial(cells.rnn_gates, activation="relu"), lambda c: c, 1, lambda h: h),
}


def inputs(rng, gates):
  w_h = jnp.asarray(rng.normal(size=(H, gates * H)) * 0.5, jnp.float32)
  b = jnp.asarray(rng.normal(size=(gates * H,)) * 0.5, jnp.float32)
  h0 = jnp.asarray(rng.normal(size=(B, H)), jnp.float32)
  xp = jnp.asarray(rng.normal(size=(T, B, gates * H)), jnp.float32)
  return w_h, b, h0, xp


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPLITS))
@pytest.mark.parametrize("lengths", [None, (T, 0, 2)])
@pytest.mark.parametrize("remat", [False, True])
def test_fused_equals_autodiff_values_and_gradients(rng, name, lengths, remat):
  gates, hidden_of, num_gates, make_carry = SPLITS[name]
  w_h, b, h0, xp = inputs(rng, num_gates)
  lengths = None if lengths is None else jnp.asarray(lengths)
  cot_y = jnp.asarray(rng.normal(size=(T, B, H)), jnp.float32)
  cot_c = jax.tree_util.tree_map(lambda c: jnp.asarray(rng.normal(size=c.shape), jnp.float32), make_carry(h0))

  def loss(w_h, b, h0, xp, fast):
    blocks = lambda a: cells.gate_blocks(a, num_gates)
    step = lambda c, x: gates(blocks(x), blocks(hidden_of(c) @ w_h + b), c)
    split = (gates, hidden_of, w_h, b) if fast else None
    carry, ys = scan_lib.scan(step, make_carry(h0), blocks(xp) if fast else xp, seq_lengths=lengths, remat=remat, split=split, unroll=2)
    return jnp.sum(ys * cot_y) + sum(jnp.sum(c * k) for c, k in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(cot_c)))

  fast = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(w_h, b, h0, xp, True)
  slow = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(w_h, b, h0, xp, False)
  for a, e in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow), strict=True):
    np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5)


def test_fused_gradients_numerically(rng):
  gates, hidden_of, num_gates, _ = SPLITS["gru"]
  with jax.enable_x64(True):
    w_h, b, h0, xp = (x.astype(jnp.float64) for x in inputs(rng, num_gates))
    valid = jnp.asarray(np.arange(T)[:, None, None] < np.array([T, 1, 3])[None, :, None])
    f = lambda w_h, b, h0, xp: jnp.sum(jnp.sin(fused.scan(gates, hidden_of, w_h, b, h0, cells.gate_blocks(xp, 3), valid)[1]))
    check_grads(f, (w_h, b, h0, xp), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# Every option on the fast path: layer normalisation, recurrent dropout and zoneout (in training,
# with their random draws, and in evaluation, with zoneout's expectation), alone and together.
OPTION_LAYERS = [
  gj.GRU(H, layer_norm=True), gj.LSTM(H, layer_norm=True), gj.GRU(H, recurrent_dropout=0.3), gj.LSTM(H, recurrent_dropout=0.3),
  gj.SimpleRNN(H, recurrent_dropout=0.3), gj.GRU(H, zoneout=0.2), gj.LSTM(H, zoneout=0.2),
  gj.GRU(H, layer_norm=True, recurrent_dropout=0.3, zoneout=0.2), gj.LSTM(H, layer_norm=True, recurrent_dropout=0.3, zoneout=0.2),
  gj.LSTM(H, layer_norm=True, use_bias=False),
]


@pytest.mark.slow
@pytest.mark.parametrize("layer", [gj.GRU(H), gj.LSTM(H), gj.SimpleRNN(H, activation="relu"), gj.GRU(H, learn_initial_carry=True),
                                   gj.SimpleRNN(H, residual=True, activation_fn=jax.nn.soft_sign)]
                         + OPTION_LAYERS)
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_custom_vjp_equals_autodiff(rng, layer, reverse):
  xs = jnp.asarray(rng.normal(size=(2, B, T, D)), jnp.float32)
  lengths = jnp.array([[T, 0, 3], [1, T, 5]])
  variables = layer.init(jax.random.key(0), xs)
  variables = jax.tree_util.tree_map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape), p.dtype), variables)
  training = dict(deterministic=False, rngs={"dropout": jax.random.key(3)}) if reverse else {}  # evaluation too

  def loss(variables, xs, layer):
    ys, carry = layer.apply(variables, xs, seq_lengths=lengths, reverse=reverse, return_carry=True, **training)
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree_util.tree_leaves(carry))

  fast = jax.value_and_grad(loss, argnums=(0, 1))(variables, xs, layer)
  slow = jax.value_and_grad(loss, argnums=(0, 1))(variables, xs, layer.clone(custom_vjp=False))
  for a, e in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow), strict=True):
    np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("layer", OPTION_LAYERS, ids=repr)
def test_options_take_the_fused_path(layer):
  """The options no longer leave the fast path: in training, the layer runs gru_jax.fused's scan
  (a custom_vjp), and with custom_vjp=False it does not."""
  xs = jnp.ones((B, T, D))
  variables = layer.init(jax.random.key(0), xs)
  jaxpr = lambda layer: str(jax.make_jaxpr(
    lambda v: layer.apply(v, xs, deterministic=False, rngs={"dropout": jax.random.key(1)}))(variables))
  assert "custom_vjp_call" in jaxpr(layer)
  assert "custom_vjp_call" not in jaxpr(layer.clone(custom_vjp=False))


def test_reset_before_gru_has_no_split_and_still_runs():
  assert gj.GRUCell(H, reset_after=False).spec().gates_fn() is None
  layer = gj.GRU(H, reset_after=False)
  xs = jnp.ones((B, T, D))
  grads = jax.grad(lambda v: jnp.sum(layer.apply(v, xs)))(layer.init(jax.random.key(0), xs))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


# Every cell of the registry whose step splits for the fast path (its spec has a gates_fn).
FAST_CELLS = [name for name, spec in specs.SPECS.items() if spec(features=H).gates_fn() is not None]


@pytest.mark.parametrize("cell", FAST_CELLS)
def test_every_fast_cell_of_the_registry_equals_its_reference_path(rng, cell):
  layer = gj.layers.LAYER_CLASSES[cell](H)
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  lengths = jnp.array([T, 0, 3])
  variables = layer.init(jax.random.key(0), xs)
  variables = jax.tree_util.tree_map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape), p.dtype), variables)

  def loss(variables, xs, layer):
    ys, carry = layer.apply(variables, xs, seq_lengths=lengths, return_carry=True)
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree_util.tree_leaves(carry))

  fast = jax.value_and_grad(loss, argnums=(0, 1))(variables, xs, layer)
  slow = jax.value_and_grad(loss, argnums=(0, 1))(variables, xs, layer.clone(custom_vjp=False))
  for a, e in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow), strict=True):
    np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5)
