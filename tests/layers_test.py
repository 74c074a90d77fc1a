"""The Flax modules: equal to flax.linen, cells inside flax.linen.RNN, options and bad input."""

import dataclasses
import inspect
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import models, specs

B, T, D, H = 2, 5, 3, 4
KEY = jax.random.key(0)


def xs_of(rng, *shape):
  return jnp.asarray(rng.normal(size=shape).astype(np.float32))


def fuse(flax_params, input_names, recurrent_names):
  """Fused gru_jax params from flax.linen's per-gate Dense params (biases folded)."""
  dense = lambda n: flax_params[n]
  bias = lambda n: dense(n).get("bias", jnp.zeros(dense(n)["kernel"].shape[-1]))
  return {
    "input_kernel": jnp.concatenate([dense(n)["kernel"] for n in input_names], -1),
    "recurrent_kernel": jnp.concatenate([dense(n)["kernel"] for n in recurrent_names], -1),
    "bias": jnp.concatenate([bias(i) + bias(h) for i, h in zip(input_names, recurrent_names)]),
  }


def flax_gru_to_ours(p):
  ours = fuse(p, ["ir", "iz", "in"], ["hr", "hz", "hn"])
  # b_hn sits inside r * (...): unfold it from the folded bias again.
  ours["bias"] = ours["bias"].at[2 * H :].add(-p["hn"]["bias"])
  ours["recurrent_bias_n"] = p["hn"]["bias"]
  return ours


FLAX_PEERS = {
  "gru": (gj.GRU(H), nn.GRUCell(H), flax_gru_to_ours),
  "lstm": (gj.LSTM(H), nn.LSTMCell(H), lambda p: fuse(p, ["ii", "if", "ig", "io"], ["hi", "hf", "hg", "ho"])),
  "rnn": (gj.SimpleRNN(H), nn.SimpleCell(H), lambda p: fuse(p, ["i"], ["h"])),
}


def randomize(variables, seed=1):
  """Random values in every parameter (the default biases are zero and would hide bugs)."""
  leaves, tree = jax.tree_util.tree_flatten(variables)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [jax.random.normal(k, x.shape) * 0.5 for k, x in zip(keys, leaves)])


@pytest.mark.parametrize("name", sorted(FLAX_PEERS))
def test_layer_equals_flax_linen(rng, name):
  ours, flax_cell, convert = FLAX_PEERS[name]
  xs = xs_of(rng, B, T, D)
  flax_rnn = nn.RNN(flax_cell, return_carry=True)
  flax_vars = randomize(flax_rnn.init(KEY, xs))
  flax_carry, flax_ys = flax_rnn.apply(flax_vars, xs)
  ys, carry = ours.apply({"params": convert(flax_vars["params"]["cell"])}, xs, return_carry=True)
  np.testing.assert_allclose(ys, flax_ys, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(flax_carry)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


CELLS = {"gru": (gj.GRUCell(H), gj.GRU(H)), "gru_reset_before": (gj.GRUCell(H, reset_after=False), gj.GRU(H, reset_after=False)),
         "lstm": (gj.LSTMCell(H), gj.LSTM(H)), "rnn": (gj.SimpleRNNCell(H, activation="relu"), gj.SimpleRNN(H, activation="relu"))}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_in_flax_rnn_equals_layer_with_same_params(rng, name):
  cell, layer = CELLS[name]
  xs = xs_of(rng, B, T, D)
  lengths = jnp.array([T, 2])
  flax_rnn = nn.RNN(cell)
  variables = randomize(flax_rnn.init(KEY, xs))
  expected = flax_rnn.apply(variables, xs, seq_lengths=lengths)
  got = layer.apply({"params": variables["params"]["cell"]}, xs, seq_lengths=lengths)
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[1, :2], expected[1, :2], rtol=1e-5, atol=1e-6)


def test_cells_work_in_flax_bidirectional(rng):
  xs = xs_of(rng, B, T, D)
  bi = nn.Bidirectional(nn.RNN(gj.GRUCell(H)), nn.RNN(gj.LSTMCell(H)))
  assert bi.apply(bi.init(KEY, xs), xs).shape == (B, T, 2 * H)


def test_cell_initialize_carry():
  assert gj.GRUCell(H).initialize_carry(KEY, (B, 7, D)).shape == (B, 7, H)
  c, h = gj.LSTMCell(H).initialize_carry(KEY, (B, D))
  assert c.shape == h.shape == (B, H)
  assert gj.GRUCell(H).num_feature_axes == 1


@pytest.mark.parametrize("name", sorted(CELLS))
def test_any_number_of_leading_batch_axes(rng, name):
  _, layer = CELLS[name]
  xs = xs_of(rng, 2, 3, T, D)
  lengths = jnp.array([[T, 0, 2], [1, 3, T]])
  variables = layer.init(KEY, xs)
  ys, carry = layer.apply(variables, xs, seq_lengths=lengths, return_carry=True)
  flat_ys, flat_carry = layer.apply(variables, xs.reshape(6, T, D), seq_lengths=lengths.reshape(6), return_carry=True)
  np.testing.assert_allclose(ys.reshape(6, T, H), flat_ys, rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(flat_carry)):
    assert a.shape == (2, 3, H)
    np.testing.assert_allclose(a.reshape(6, H), b, rtol=1e-6)
  # no batch axis at all
  one = layer.apply(variables, xs[1, 2])
  np.testing.assert_allclose(one, ys[1, 2], rtol=1e-5, atol=1e-6)


def test_zero_length_returns_initial_carry_and_zero_outputs(rng):
  layer = gj.LSTM(H)
  xs = xs_of(rng, B, T, D)
  h0 = (xs_of(rng, B, H), xs_of(rng, B, H))
  variables = layer.init(KEY, xs)
  ys, (c, h) = layer.apply(variables, xs, seq_lengths=jnp.array([0, T]), initial_carry=h0, return_carry=True)
  np.testing.assert_array_equal(c[0], h0[0][0])
  np.testing.assert_array_equal(h[0], h0[1][0])
  np.testing.assert_array_equal(ys[0], 0.0)
  assert np.abs(np.asarray(ys[1])).min() > 0


def test_time_major_equals_batch_major(rng):
  xs = xs_of(rng, B, T, D)
  lengths = jnp.array([3, T])
  variables = gj.GRU(H).init(KEY, xs)
  ys = gj.GRU(H).apply(variables, xs, seq_lengths=lengths)
  ys_tm = gj.GRU(H, time_major=True).apply(variables, jnp.swapaxes(xs, 0, 1), seq_lengths=lengths)
  np.testing.assert_allclose(jnp.swapaxes(ys_tm, 0, 1), ys, rtol=1e-6)


def test_jit_vmap_grad_compose(rng):
  layer = gj.GRU(H)
  xs = xs_of(rng, 3, B, T, D)
  variables = layer.init(KEY, xs[0])
  lengths = jnp.array([[T, 2]] * 3)

  def loss(variables, xs, lengths):
    return jnp.mean(layer.apply(variables, xs, seq_lengths=lengths) ** 2)

  per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(variables, xs, lengths)
  direct = jax.grad(loss)(variables, xs[1], lengths[1])
  for a, b in zip(jax.tree_util.tree_leaves(per_example), jax.tree_util.tree_leaves(direct)):
    np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-7)
  # traced lengths under jit skip the concrete range check and still mask
  jitted = jax.jit(lambda v, x, n: layer.apply(v, x, seq_lengths=n))(variables, xs[0], lengths[0])
  np.testing.assert_allclose(jitted, layer.apply(variables, xs[0], seq_lengths=lengths[0]), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
def test_bf16_compute_stays_finite(rng, name):
  _, layer = CELLS[name]
  layer = layer.clone(dtype=jnp.bfloat16)
  xs = xs_of(rng, B, 64, D) * 3
  variables = layer.init(KEY, xs)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
  ys = layer.apply(variables, xs)
  grads = jax.grad(lambda v: jnp.sum(layer.apply(v, xs).astype(jnp.float32)))(variables)
  assert ys.dtype == jnp.bfloat16
  assert bool(jnp.all(jnp.isfinite(ys.astype(jnp.float32))))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_param_dtype_respected(rng):
  variables = gj.GRU(H, param_dtype=jnp.bfloat16).init(KEY, xs_of(rng, B, T, D))
  assert all(p.dtype == jnp.bfloat16 for p in jax.tree_util.tree_leaves(variables))


def test_default_initialisers():
  variables = gj.LSTM(H).init(KEY, jnp.zeros((B, T, D)))["params"]
  bias = np.asarray(variables["bias"])
  np.testing.assert_array_equal(bias[H : 2 * H], 1.0)  # forget gate
  np.testing.assert_array_equal(np.delete(bias, np.s_[H : 2 * H]), 0.0)
  assert (np.asarray(gj.LSTM(H, forget_bias=0.0).init(KEY, jnp.zeros((B, T, D)))["params"]["bias"]) == 0).all()
  w_h = np.asarray(gj.GRU(H).init(KEY, jnp.zeros((B, T, D)))["params"]["recurrent_kernel"])
  for block in np.split(w_h, 3, axis=-1):  # each gate's block is orthogonal on its own
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


def test_custom_initialisers_and_no_bias():
  layer = gj.GRU(H, kernel_init=nn.initializers.ones, recurrent_kernel_init=nn.initializers.zeros, use_bias=False)
  params = layer.init(KEY, jnp.zeros((B, T, D)))["params"]
  assert set(params) == {"input_kernel", "recurrent_kernel"}
  assert (params["input_kernel"] == 1).all() and (params["recurrent_kernel"] == 0).all()


def test_learned_initial_carry(rng):
  layer = gj.GRU(H, learn_initial_carry=True)
  xs = xs_of(rng, B, T, D)
  variables = layer.init(KEY, xs)
  assert variables["params"]["initial_carry"].shape == (H,)
  grads = jax.grad(lambda v: jnp.sum(layer.apply(v, xs) ** 2))(variables)
  assert np.abs(np.asarray(grads["params"]["initial_carry"])).sum() > 0
  moved = jax.tree_util.tree_map(lambda x: x, variables)
  moved["params"]["initial_carry"] = jnp.ones(H)
  _, carry = layer.apply(moved, xs, seq_lengths=jnp.array([0, T]), return_carry=True)
  np.testing.assert_array_equal(carry[0], 1.0)
  lstm = gj.LSTM(H, learn_initial_carry=True)
  c, h = lstm.init(KEY, xs)["params"]["initial_carry"]
  assert c.shape == h.shape == (H,)


def test_bidirectional_backward_starts_at_each_last_valid_step(rng):
  xs = xs_of(rng, B, T, D)
  lengths = jnp.array([T, 3])
  bi = gj.Bidirectional(gj.GRU(H), gj.GRU(H))
  variables = randomize(bi.init(KEY, xs))
  ys, (_, carry_b) = bi.apply(variables, xs, seq_lengths=lengths, return_carry=True)
  backward = {"params": variables["params"]["backward_rnn"]}
  # sequence 1 on its own, truncated to its length and reversed by hand
  ref_ys, ref_carry = gj.GRU(H).apply(backward, xs[1, :3][::-1], return_carry=True)
  np.testing.assert_allclose(ys[1, :3, H:], ref_ys[::-1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry_b[1], ref_carry, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(ys[1, 3:], 0.0)
  summed = gj.Bidirectional(gj.GRU(H), gj.GRU(H), merge="sum").apply(variables, xs, seq_lengths=lengths)
  np.testing.assert_allclose(summed, ys[..., :H] + ys[..., H:], rtol=1e-6)


@pytest.mark.slow
def test_stacked_dropout_residual_and_carries(rng):
  xs = xs_of(rng, B, T, H)
  stack = gj.Stacked(gj.GRU(H), num_layers=3, dropout=0.5)
  variables = stack.init(KEY, xs)
  assert sorted(variables["params"]) == ["layer_0", "layer_1", "layer_2"]
  eval_a, eval_b = stack.apply(variables, xs), stack.apply(variables, xs)
  np.testing.assert_array_equal(eval_a, eval_b)
  train = stack.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(3)})
  assert np.abs(np.asarray(train - eval_a)).max() > 1e-4
  ys, carries = stack.apply(variables, xs, return_carry=True)
  assert len(carries) == 3
  residual = gj.Stacked(gj.GRU(H), num_layers=1, residual=True)
  layer_0 = {"params": variables["params"]["layer_0"]}
  np.testing.assert_allclose(
    residual.apply({"params": {"layer_0": layer_0["params"]}}, xs), gj.GRU(H).apply(layer_0, xs) + xs, rtol=1e-6
  )


BAD_INPUTS = [
  (lambda: gj.GRU(0), ValueError, r"GRU: features must be a positive integer; got 0"),
  (lambda: gj.GRUCell(-2), ValueError, r"GRUCell: features must be a positive integer"),
  (lambda: gj.SimpleRNN(H, activation="sigmoid"), ValueError, r"activation='sigmoid'.*\['identity', 'relu', 'tanh'\]"),
  (lambda: gj.LSTM(H, unroll=0), ValueError, r"unroll must be a positive integer"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros(D)), ValueError, r"xs must have shape \[\.\.\., T, D\].*got \(3,\)"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D), jnp.int32)), TypeError, r"xs must be floating point"),
  (lambda: gj.GRU(H).apply(gj.GRU(H).init(KEY, jnp.zeros((B, T, D))), jnp.zeros((B, T, D + 1))), ValueError,
   r"inputs have 4 features .* parameters expect 3"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D)), seq_lengths=jnp.array([1, T + 1])), ValueError,
   r"seq_lengths must lie in \[0, T=5\]; got values from 1 to 6"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D)), seq_lengths=jnp.array([-1, 2])), ValueError, r"seq_lengths must lie"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D)), seq_lengths=jnp.array([2])), ValueError,
   r"seq_lengths must have the batch shape \(2,\)"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D)), seq_lengths=jnp.array([2.0, 1.0])), TypeError, r"seq_lengths must be integers"),
  (lambda: gj.GRU(H).init(KEY, jnp.zeros((B, T, D)), initial_carry=jnp.zeros((1, H))), ValueError,
   r"initial_carry must have shapes \(2, 4\); got \(1, 4\)"),
  (lambda: gj.LSTM(H).init(KEY, jnp.zeros((B, T, D)), initial_carry=jnp.zeros((B, H))), ValueError,
   r"initial_carry must have shapes \(\(2, 4\), \(2, 4\)\)"),
  (lambda: gj.Stacked(gj.GRU(H), num_layers=0).init(KEY, jnp.zeros((B, T, D))), ValueError, r"num_layers must be a positive"),
  (lambda: gj.Stacked(gj.GRU(H), dropout=1.0).init(KEY, jnp.zeros((B, T, D))), ValueError, r"dropout must lie in \[0, 1\)"),
  (lambda: gj.Bidirectional(gj.GRU(H), gj.GRU(H), merge="max").init(KEY, jnp.zeros((B, T, D))), ValueError,
   r"merge='max' is not supported"),
]


@pytest.mark.parametrize("make,error,message", BAD_INPUTS)
def test_bad_input_gives_a_clear_error(make, error, message):
  with pytest.raises(error, match=message):
    make()


@pytest.mark.parametrize("cell", sorted(models.CELLS))
def test_scanned_cell_is_its_named_layer(cell, rng):
  xs = jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
  lengths = jnp.array([5, 2])
  named = models.CELLS[cell](4)
  scanned = gj.Scanned(named.make_cell(parent=None))
  variables = named.init(jax.random.key(0), xs)
  variables = jax.tree_util.tree_map(lambda p: p + 0.3, variables)  # zero biases would hide a swap
  np.testing.assert_array_equal(scanned.apply(variables, xs, seq_lengths=lengths), named.apply(variables, xs, seq_lengths=lengths))
  stack, named_stack = gj.Stacked(scanned, num_layers=2, bidirectional=True), gj.Stacked(named, num_layers=2, bidirectional=True)
  stack_variables = named_stack.init(jax.random.key(1), xs)
  np.testing.assert_array_equal(stack.apply(stack_variables, xs), named_stack.apply(stack_variables, xs))


def test_scanned_refuses_other_cells():
  with pytest.raises(TypeError, match="Scanned: cell must be a gru_jax cell .*; got GRUCell"):
    gj.Scanned(nn.GRUCell(4))
  with pytest.raises(ValueError, match="Scanned: recurrent_dropout needs a cell with a recurrent kernel"):
    gj.Scanned(gj.MinGRUCell(4), recurrent_dropout=0.1)


@pytest.mark.parametrize("name", sorted(specs.SPECS))
def test_every_front_end_class_shows_and_documents_its_cells_options(name):
  # help() and editors list the spec's options as real arguments of the linen and NNX cells and layers
  spec_class = specs.SPECS[name]
  every = [f.name for f in dataclasses.fields(spec_class)]
  for module in (gj.layers.CELL_CLASSES[name], gj.layers.LAYER_CLASSES[name], gj.nnx.CELL_CLASSES[name],
                 gj.nnx.LAYER_CLASSES[name]):
    signature = inspect.signature(module)
    assert set(every) <= set(signature.parameters), (module, sorted(set(every) - set(signature.parameters)))
    assert not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()), module
    for option in specs.options(spec_class):
      assert option in module.__doc__, (module, option)


def test_parameter_trees_initial_values_and_outputs_are_those_of_earlier_releases():
  # tests/data/params-v1.npz: each cell's layer (D=3, H=2) as built by the hand-written classes of
  # commit 3bd390e, before the front-ends were derived from the specs (tests/data/make_params.py)
  golden = np.load(pathlib.Path(__file__).parent / "data" / "params-v1.npz")
  xs = jnp.asarray(golden["inputs"])
  names = sorted({key.split("/")[0] for key in golden.files if key != "inputs"})
  assert len(names) == 10 and set(names) <= set(specs.SPECS)
  for name in names:
    layer = models.CELLS[name](2)
    params = layer.init(jax.random.key(0), xs)["params"]
    paths = {f"{name}/params/{jax.tree_util.keystr(p)}": leaf for p, leaf in jax.tree_util.tree_leaves_with_path(params)}
    assert sorted(paths) == sorted(k for k in golden.files if k.startswith(f"{name}/params/")), name
    for key, leaf in paths.items():
      np.testing.assert_allclose(leaf, golden[key], rtol=1e-6, atol=1e-7, err_msg=key)  # to an ulp: conftest.py sets XLA flags
    restored = jax.tree_util.tree_map_with_path(lambda p, _: jnp.asarray(golden[f"{name}/params/{jax.tree_util.keystr(p)}"]), params)
    np.testing.assert_allclose(layer.apply({"params": restored}, xs), golden[f"{name}/outputs"], rtol=1e-6, atol=1e-6)
