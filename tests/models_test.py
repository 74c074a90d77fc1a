"""The sequence model around the recurrent stack."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import models, specs


def test_last_valid_picks_each_sequences_last_step():
  ys = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)
  np.testing.assert_array_equal(models.last_valid(ys, jnp.array([2, 4]))[:, 0], [1.0, 7.0])
  np.testing.assert_array_equal(models.last_valid(ys, None)[:, 0], [3.0, 7.0])


@pytest.mark.slow
@pytest.mark.parametrize("cell", sorted(models.CELLS))
@pytest.mark.parametrize("head,shape", [("last", (2, 3)), ("each", (2, 5, 3))])
def test_model_heads(cell, head, shape):
  model = models.SequenceModel(output_features=3, head=head, cell=cell, features=4, num_layers=2, bidirectional=True)
  xs = jnp.ones((2, 5, 2))
  variables = model.init(jax.random.key(0), xs)
  assert model.apply(variables, xs, seq_lengths=jnp.array([5, 2])).shape == shape
  assert isinstance(model.template(), models.CELLS[cell])


def test_cell_kwargs_reach_the_cell():
  model = models.SequenceModel(output_features=1, cell="gru", features=4, cell_kwargs={"reset_after": False})
  params = model.init(jax.random.key(0), jnp.ones((1, 3, 2)))["params"]
  assert "recurrent_bias_n" not in params["rnn"]["layer_0"]
  assert models.cell_options("lstm") == ["chrono_init", "forget_bias", "layer_norm"]


@pytest.mark.parametrize(
  "kwargs,message",
  [
    (dict(cell="gruu"), re.escape(f"model.cell='gruu' is not a cell; expected one of {sorted(specs.SPECS)}")),
    (dict(cell="lstm", cell_kwargs={"reset_after": True}), r"\['reset_after'\], not options of the lstm cell"),
    (dict(head="middle"), r"head='middle' is not supported"),
    (dict(features=0), r"features must be a positive integer"),
    (dict(kernel_init="xavier"), r"model.kernel_init='xavier' is not an initializer; expected '' \(the default\) or one of"),
    (dict(cell="mingru", recurrent_kernel_init="orthogonal"), r"the mingru cell has no recurrent kernel"),
  ],
)
def test_bad_model_settings(kwargs, message):
  with pytest.raises(ValueError, match=message):
    models.SequenceModel(output_features=1, **kwargs)


@pytest.mark.parametrize("front_end", ["linen", "nnx"])
def test_named_initializers_reach_every_gate_block(front_end):
  """glorot_uniform per [H, H] block of the recurrent kernel, in place of orthogonal: each block is
  the initializer's draw for that block (so not orthogonal), and the default stays orthogonal."""
  xs = jnp.ones((1, 3, 2))

  def recurrent(**kwargs):
    model = models.SequenceModel(output_features=1, cell="gru", features=8, front_end=front_end, **kwargs)
    return np.asarray(model.init(jax.random.key(0), xs)["params"]["rnn"]["layer_0"]["recurrent_kernel"])

  default, glorot = recurrent(), recurrent(recurrent_kernel_init="glorot_uniform")
  for block in np.split(default, 3, axis=1):
    np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)
  limit = np.sqrt(6.0 / 16)
  assert np.abs(glorot).max() <= limit and np.abs(glorot).max() > 0.8 * limit
  assert not np.allclose(np.split(glorot, 3, axis=1)[0].T @ np.split(glorot, 3, axis=1)[0], np.eye(8), atol=1e-2)
  kernel = models.SequenceModel(output_features=1, cell="gru", features=8, front_end=front_end, kernel_init="orthogonal")
  input_kernel = np.asarray(kernel.init(jax.random.key(0), jnp.ones((1, 3, 8)))["params"]["rnn"]["layer_0"]["input_kernel"])
  np.testing.assert_allclose(input_kernel[:, :8] @ input_kernel[:, :8].T, np.eye(8), atol=1e-5)


def test_registry_layers_are_the_public_ones():
  assert list(models.CELLS) == list(specs.SPECS)
  for name, spec_class in specs.SPECS.items():
    layer = models.CELLS[name]
    assert layer is getattr(gj, specs.layer_name(spec_class)) is getattr(gj.layers, layer.__name__)
    assert layer.cell_class is getattr(gj, spec_class.cell_name) and layer.cell_class.spec_class is spec_class


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [
  dict(cell="lstm", num_layers=2, bidirectional=True, cell_kwargs={"layer_norm": True}),
  dict(cell="sru", head="each"),
  dict(cell="rnn", num_layers=2, residual=True, cell_kwargs={"residual": True}),  # the cell's and the stack's
  dict(cell="gru", learn_initial_carry=True, zoneout=0.1, residual=True, num_layers=2, features=3),
  dict(cell="gru", input_vocab=7, embed_features=3),
])
def test_nnx_front_end_has_the_linen_parameters_outputs_and_gradients(kwargs):
  rng = np.random.default_rng(0)
  vocab = kwargs.get("input_vocab")
  xs = jnp.asarray(rng.integers(0, 7, (2, 5))) if vocab else jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
  lengths = jnp.array([5, 3])
  kwargs = {"features": 4, **kwargs}
  linen = models.SequenceModel(output_features=2, **kwargs)
  nnx = models.SequenceModel(output_features=2, front_end="nnx", **kwargs)
  variables = linen.init(jax.random.key(0), xs, seq_lengths=lengths)
  nnx_variables = nnx.init(jax.random.key(0), xs, seq_lengths=lengths)
  assert jax.tree_util.tree_map(jnp.shape, nnx_variables) == jax.tree_util.tree_map(jnp.shape, variables)
  loss = lambda model: lambda v: jnp.sum(model.apply(v, xs, seq_lengths=lengths) ** 2)
  np.testing.assert_allclose(nnx.apply(variables, xs, seq_lengths=lengths), linen.apply(variables, xs, seq_lengths=lengths), rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(nnx))(variables)), jax.tree_util.tree_leaves(jax.grad(loss(linen))(variables)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with_dropout = models.SequenceModel(output_features=2, front_end="nnx", dropout=0.5, num_layers=2, features=4)
  v = with_dropout.init(jax.random.key(0), xs if not vocab else jnp.ones((2, 5, 3)))
  run = lambda key: with_dropout.apply(v, jnp.ones((2, 5, 3)), deterministic=False, rngs={"dropout": key})
  assert not np.allclose(run(jax.random.key(1)), run(jax.random.key(2)))


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "mingru"])
def test_bfloat16_compute_keeps_float32_parameters_and_is_close_to_float32(cell):
  """Mixed precision: bf16 matmuls and activations (on the fused fast path for gru and lstm), f32
  parameters and outputs. Tolerance: 3e-2 relative to the output scale, about 4 bf16 roundings."""
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.normal(size=(4, 12, 3)), jnp.float32)
  f32 = models.SequenceModel(output_features=2, cell=cell, features=16, head="each")
  bf16 = models.SequenceModel(output_features=2, cell=cell, features=16, head="each", dtype="bfloat16")
  variables = f32.init(jax.random.key(0), xs)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(bf16.init(jax.random.key(0), xs)))
  out32, out16 = f32.apply(variables, xs), bf16.apply(variables, xs)
  assert out16.dtype == jnp.float32
  scale = float(jnp.max(jnp.abs(out32)))
  np.testing.assert_allclose(out16, out32, atol=3e-2 * scale)
  loss = lambda model: lambda v: jnp.mean(model.apply(v, xs) ** 2)
  g32, g16 = jax.grad(loss(f32))(variables), jax.grad(loss(bf16))(variables)
  for a, b in zip(jax.tree_util.tree_leaves(g16), jax.tree_util.tree_leaves(g32), strict=True):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, atol=5e-2 * float(jnp.max(jnp.abs(b))) + 1e-6)
  with pytest.raises(ValueError, match=r"model.dtype='float16' is not supported; expected one of \['float32', 'bfloat16'\]"):
    models.SequenceModel(output_features=2, dtype="float16")
