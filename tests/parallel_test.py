"""Parallel scans == the sequential loop, for the scans alone and for every linear-recurrence cell,
with lengths, initial states and reverse; the log-space scan's gradients stay finite at T=4096."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import parallel, specs

KEY = jax.random.key(0)


def coefficients(rng, t, b, h):
  a = jnp.asarray(rng.uniform(0.05, 1.0, size=(t, b, h)), jnp.float32)
  bb = jnp.asarray(rng.uniform(0.01, 2.0, size=(t, b, h)), jnp.float32)
  h0 = jnp.asarray(rng.normal(size=(b, h)), jnp.float32)
  return a, bb, h0


def test_sequential_reference_is_the_recurrence(rng):
  a, b, h0 = coefficients(rng, 4, 2, 3)
  h, expected = np.asarray(h0, np.float64), []
  for t in range(4):
    h = np.asarray(a[t]) * h + np.asarray(b[t])
    expected.append(h)
  np.testing.assert_allclose(parallel.sequential_scan(a, b, h0), np.stack(expected), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("t", [1, 7, 64])
def test_linear_and_log_space_scans_equal_the_loop(rng, t):
  a, b, h0 = coefficients(rng, t, 2, 3)
  want = parallel.sequential_scan(a, b, h0)
  np.testing.assert_allclose(parallel.linear_scan(a, b, h0), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(parallel.log_space_scan(jnp.log(a), jnp.log(b), h0), want, rtol=1e-4, atol=1e-5)
  b_signed = b * jnp.asarray(rng.choice([-1.0, 1.0], size=b.shape), jnp.float32)  # the SRU's values have any sign
  np.testing.assert_allclose(
    parallel.linear_scan(a, b_signed, h0), parallel.sequential_scan(a, b_signed, h0), rtol=1e-5, atol=1e-5
  )


@pytest.mark.slow
def test_scans_have_the_loops_gradients(rng):
  a, b, h0 = coefficients(rng, 9, 2, 3)
  loss = lambda scan: lambda a, b, h0: jnp.sum(jnp.sin(scan(a, b, h0)))
  want = jax.grad(loss(parallel.sequential_scan), argnums=(0, 1, 2))(a, b, h0)
  log_scan = lambda a, b, h0: parallel.log_space_scan(jnp.log(a), jnp.log(b), h0)
  for scan in (parallel.linear_scan, log_scan):
    got = jax.grad(loss(scan), argnums=(0, 1, 2))(a, b, h0)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)


# Every cell of the registry with a parallel path (at its default options: the SRU's is 2017's).
PARALLEL_LAYERS = {name: functools.partial(gj.layers.LAYER_CLASSES[name], 4) for name, spec in specs.SPECS.items()
                   if spec(features=4).parallel_fn() is not None}


def test_the_parallel_cells_are_the_linear_recurrences():
  assert sorted(PARALLEL_LAYERS) == ["mingru", "minlstm", "sru"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARALLEL_LAYERS))
@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_layer_equals_its_step_by_step_path(rng, name, reverse, monkeypatch):
  monkeypatch.setattr(specs, "CHUNK", 4)  # T=9: two full chunks and a padded one
  make = PARALLEL_LAYERS[name]
  fast, slow = make(parallel=True), make(parallel=False)
  b, t, d = 4, 9, 3
  xs = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
  params = fast.init(KEY, xs)["params"]
  params = jax.tree_util.tree_map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
  lengths = jnp.array([t, 0, 4, 1])
  h0 = jnp.asarray(rng.normal(size=(b, 4)), jnp.float32)
  kwargs = dict(seq_lengths=lengths, initial_carry=h0, return_carry=True, reverse=reverse)
  ys, carry = fast.apply({"params": params}, xs, **kwargs)
  ys_ref, carry_ref = slow.apply({"params": params}, xs, **kwargs)
  np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry, carry_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(carry[1], h0[1])  # length 0 returns the initial state
  np.testing.assert_array_equal(ys[2, 4:], 0.0)  # outputs past the length are zeros

  loss = lambda layer: lambda p, x, h: jnp.sum(jnp.sin(layer.apply({"params": p}, x, seq_lengths=lengths, initial_carry=h, reverse=reverse)))
  got = jax.grad(loss(fast), argnums=(0, 1, 2))(params, xs, h0)
  want = jax.grad(loss(slow), argnums=(0, 1, 2))(params, xs, h0)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("layer", [gj.MinGRU(4, parallel=True), gj.MinLSTM(4, parallel=True), gj.SRU(4, parallel=True)])
def test_parallel_scan_gradients_are_finite_at_T_4096(rng, layer):
  xs = jnp.asarray(rng.normal(size=(2, 4096, 3)) * 3.0, jnp.float32)
  params = layer.init(KEY, xs)["params"]
  grads = jax.jit(jax.grad(lambda p: jnp.mean(layer.apply({"params": p}, xs) ** 2)))(params)
  for g in jax.tree_util.tree_leaves(grads):
    assert np.all(np.isfinite(g)) and np.any(g != 0)
  ys = jax.jit(layer.apply)({"params": params}, xs)
  ys_ref = jax.jit(layer.clone(parallel=False).apply)({"params": params}, xs)
  np.testing.assert_allclose(ys, ys_ref, rtol=2e-4, atol=1e-5)  # chunked: no error growing with T


@pytest.mark.slow
@pytest.mark.parametrize("t,chunk", [(10, 4), (12, 4), (64, 16), (5, 8)])
def test_chunked_log_space_scan_equals_the_loop(rng, t, chunk):
  a, b, h0 = coefficients(rng, t, 2, 3)
  got = parallel.log_space_scan(jnp.log(a), jnp.log(b), h0, chunk=chunk)
  np.testing.assert_allclose(got, parallel.sequential_scan(a, b, h0), rtol=1e-5, atol=1e-6)
  grad = lambda scan: jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.sin(scan(a, b))), argnums=(0, 1)))(a, b)
  got_grads = grad(lambda a, b: parallel.log_space_scan(jnp.log(a), jnp.log(b), h0, chunk=chunk))
  for g, w in zip(got_grads, grad(lambda a, b: parallel.sequential_scan(a, b, h0))):
    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)



def signed_coefficients(rng, t, h0_kind, b=2, h=3):
  """Any signs: a in (-1.1, 1.1), b normal, h0 zero, negative or either."""
  a = jnp.asarray(rng.uniform(-1.1, 1.1, size=(t, b, h)), jnp.float32)
  bb = jnp.asarray(rng.normal(size=(t, b, h)), jnp.float32)
  h0 = {"zero": np.zeros((b, h)), "negative": -1.0 - np.abs(rng.normal(size=(b, h))),
        "random": rng.normal(size=(b, h))}[h0_kind]
  return a, bb, jnp.asarray(h0, jnp.float32)


@pytest.mark.parametrize("custom_vjp", [False, True])
@pytest.mark.parametrize("t,chunk,h0_kind", [(12, 4, "random"), (10, 4, "negative"), (10, 3, "zero"), (5, 8, "random"),
                                             (5, 5, "negative"), (7, 1, "random"), (1, 4, "zero")])
def test_chunked_scan_equals_the_loop(rng, t, chunk, h0_kind, custom_vjp):
  """T divisible by the chunk or not, chunk >= T, chunk = 1; values and gradients, both backward passes."""
  a, b, h0 = signed_coefficients(rng, t, h0_kind)
  scan = lambda a, b, h0: parallel.chunked_scan(a, b, h0, chunk=chunk, custom_vjp=custom_vjp)
  np.testing.assert_allclose(jax.jit(scan)(a, b, h0), parallel.sequential_scan(a, b, h0), rtol=1e-5, atol=1e-6)
  loss = lambda scan: lambda a, b, h0: jnp.sum(jnp.sin(scan(a, b, h0)))
  value_and_grads = lambda scan: jax.jit(jax.value_and_grad(loss(scan), argnums=(0, 1, 2)))(a, b, h0)
  (got_loss, got), (want_loss, want) = value_and_grads(scan), value_and_grads(parallel.sequential_scan)
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_chunked_scan_options(rng):
  """The sequential carry scan and unrolling give the same states; chunk < 1 is refused."""
  a, b, h0 = signed_coefficients(rng, 11, "random")
  want = parallel.sequential_scan(a, b, h0)
  for kwargs in (dict(carry_scan=parallel.sequential_scan), dict(unroll=True), dict(unroll=2, custom_vjp=True)):
    np.testing.assert_allclose(parallel.chunked_scan(a, b, h0, chunk=3, **kwargs), want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="chunk"):
    parallel.chunked_scan(a, b, h0, chunk=0)


@pytest.mark.parametrize("coefficients", ["mingru", "minlstm"])
def test_chunked_scan_from_logs_equals_the_log_space_scan(rng, coefficients):
  """exp of the cells' log coefficients, with large pre-activations (a near 0 and 1, b large, one
  candidate at 1e30), stays finite and gives the log-space scan's states."""
  h = 3
  num_blocks, log_fn = {"mingru": (2, gj.cells.mingru_log_coefficients),
                        "minlstm": (3, gj.cells.minlstm_log_coefficients)}[coefficients]
  xp = rng.normal(size=(9, 2, num_blocks * h)) * 30.0
  xp[3, 1, -1] = 1e30  # the candidate block comes last
  log_a, log_b = log_fn(jnp.asarray(xp, jnp.float32))
  h0 = jnp.asarray(rng.normal(size=(2, h)), jnp.float32)
  got = parallel.chunked_scan_from_logs(log_a, log_b, h0, chunk=4)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, parallel.log_space_scan(log_a, log_b, h0), rtol=1e-5, atol=1e-6)


def test_chunked_scan_keeps_float32_precision_at_T_4096(rng):
  """Against a float64 loop: within a few times the float32 loop's own error (random signs)."""
  t, b, h = 4096, 2, 8
  a = rng.uniform(-1.0, 1.0, size=(t, b, h)).astype(np.float32)
  bb = rng.normal(size=(t, b, h)).astype(np.float32)
  h0 = rng.normal(size=(b, h)).astype(np.float32)
  want, state = np.empty((t, b, h)), h0.astype(np.float64)
  for i in range(t):
    state = a[i] * state + bb[i]
    want[i] = state
  loop_error = np.max(np.abs(np.asarray(parallel.sequential_scan(a, bb, h0)) - want))
  for custom_vjp in (False, True):
    got = jax.jit(lambda a, b, h0: parallel.chunked_scan(a, b, h0, chunk=64, custom_vjp=custom_vjp))(a, bb, h0)
    assert np.max(np.abs(np.asarray(got) - want)) <= 4 * loop_error + 1e-6


def test_parallel_path_without_custom_vjp_allows_forward_mode(rng):
  """custom_vjp=False differentiates the chunked scan with autodiff, so jax.jvp goes through it
  (the hand-written backward pass is reverse mode only); both give the step-by-step path's values."""
  xs = jnp.asarray(rng.normal(size=(2, 150, 3)), jnp.float32)  # past CHUNK=64: the chunks run
  for layer in (gj.MinGRU(4, parallel=True, custom_vjp=False), gj.SRU(4, parallel=True, custom_vjp=False)):
    params = layer.init(KEY, xs)
    f = lambda x, layer=layer, params=params: layer.apply(params, x)
    ys, tangent = jax.jvp(f, (xs,), (jnp.ones_like(xs),))
    np.testing.assert_allclose(ys, layer.clone(parallel=False).apply(params, xs), rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(tangent)) and np.any(tangent != 0)
    with pytest.raises(TypeError):
      jax.jvp(lambda x, layer=layer, params=params: layer.clone(custom_vjp=True).apply(params, x), (xs,), (xs,))
