"""The NNX front-end: equal to the linen modules, converts both ways, works inside flax.nnx.RNN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import linen as nn
from flax import nnx

import gru_jax as gj
from gru_jax import models, specs

TOL = dict(rtol=1e-5, atol=1e-5)
B, T, D, H = 2, 5, 3, 4
# Every cell, with the options that change its parameters or equations.
VARIANTS = [(name, {}) for name in specs.SPECS] + [
  ("gru", {"reset_after": False}), ("gru", {"layer_norm": True}), ("lstm", {"layer_norm": True}),
  ("sru", {"version": 2018}), ("gru", {"use_bias": False}),
]
NNX_LAYERS = gj.nnx.LAYER_CLASSES


def inputs(seed=0, features=D):
  rng = np.random.default_rng(seed)
  xs = jnp.asarray(rng.normal(size=(B, T, features)), jnp.float32)
  return xs, jnp.asarray([T, 2])


def randomize(module, seed=1):
  """Every parameter random (zeros at init would hide a misplaced bias or peephole)."""
  state = nnx.state(module, nnx.Param)
  leaves, treedef = jax.tree_util.tree_flatten(nnx.to_pure_dict(state))
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]))
  nnx.update(module, state)
  return module


def test_every_cell_has_an_nnx_layer_and_cell_named_as_the_linen_ones():
  assert list(NNX_LAYERS) == list(specs.SPECS) == list(models.CELLS)
  for name, layer in NNX_LAYERS.items():
    assert layer.__name__ == models.CELLS[name].__name__ and layer is getattr(gj.nnx, layer.__name__)
    assert layer.cell_class is gj.nnx.CELL_CLASSES[name] is getattr(gj.nnx, models.CELLS[name].cell_class.__name__)


@pytest.mark.parametrize("cell,options", VARIANTS)
def test_nnx_layer_equals_its_linen_twin_and_converts_back(cell, options):
  xs, lengths = inputs()
  layer = randomize(NNX_LAYERS[cell](D, H, rngs=nnx.Rngs(0), **options))
  ys, carry = layer(xs, seq_lengths=lengths, return_carry=True)
  linen_layer, variables = gj.nnx.to_linen(layer)
  assert type(linen_layer).__name__ == type(layer).__name__
  ys_linen, carry_linen = linen_layer.apply(variables, xs, seq_lengths=lengths, return_carry=True)
  np.testing.assert_allclose(ys, ys_linen, **TOL)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(carry_linen), strict=True):
    np.testing.assert_allclose(a, b, **TOL)
  back = gj.nnx.from_linen(linen_layer, variables)
  np.testing.assert_array_equal(back(xs, seq_lengths=lengths), ys)


def test_gradients_equal_across_front_ends():
  xs, lengths = inputs()
  layer = randomize(gj.nnx.LSTM(D, H, rngs=nnx.Rngs(0), learn_initial_carry=True))
  linen_layer, variables = gj.nnx.to_linen(layer)
  grads = nnx.grad(lambda m: jnp.sum(m(xs, seq_lengths=lengths) ** 2))(layer)
  linen_grads = jax.grad(lambda v: jnp.sum(linen_layer.apply(v, xs, seq_lengths=lengths) ** 2))(variables)
  for a, b in zip(jax.tree_util.tree_leaves(nnx.to_pure_dict(grads)), jax.tree_util.tree_leaves(linen_grads["params"]), strict=True):
    np.testing.assert_allclose(a, b, **TOL)


def test_a_linen_checkpoint_loads_into_nnx_and_back():
  xs, _ = inputs()
  linen_stack = gj.Stacked(gj.GRU(H, layer_norm=True), num_layers=2, bidirectional=True)
  variables = linen_stack.init(jax.random.key(3), xs)
  stack = gj.nnx.from_linen(linen_stack, variables)
  np.testing.assert_allclose(stack(xs), linen_stack.apply(variables, xs), **TOL)
  _, again = gj.nnx.to_linen(stack)
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, jax.device_get(variables))
  with pytest.raises(ValueError, match=r"load_linen_variables: the parameters differ .*layer_1"):
    bad = jax.tree_util.tree_map(lambda x: x, variables)
    bad["params"]["layer_1"]["forward_rnn"]["input_kernel"] = jnp.zeros((5, 3 * H))
    gj.nnx.load_linen_variables(stack, bad)


@pytest.mark.parametrize("cell_class", [gj.nnx.GRUCell, gj.nnx.LSTMCell, gj.nnx.SRUCell, gj.nnx.PeepholeLSTMCell])
def test_nnx_cells_run_in_flax_nnx_rnn_and_equal_the_layer(cell_class):
  xs, lengths = inputs()
  cell = randomize(cell_class(D, H, rngs=nnx.Rngs(0)))
  ys = nnx.RNN(cell)(xs, seq_lengths=lengths)
  layer = gj.nnx.from_linen(*_as_layer(cell))
  np.testing.assert_allclose(ys[0], layer(xs)[0], **TOL)  # full length: nnx.RNN keeps outputs past the end
  np.testing.assert_allclose(ys[1, :2], layer(xs, seq_lengths=lengths)[1, :2], **TOL)
  both = nnx.Bidirectional(nnx.RNN(cell), nnx.RNN(randomize(cell_class(D, H, rngs=nnx.Rngs(1)))))
  assert both(xs).shape == (B, T, 2 * H)
  linen_cell, variables = gj.nnx.to_linen(cell)
  np.testing.assert_allclose(nn.RNN(linen_cell).apply({"params": {"cell": variables["params"]}}, xs), ys, **TOL)


def _as_layer(cell):
  """The linen layer of a cell, with the cell's parameters."""
  linen_cell, variables = gj.nnx.to_linen(cell)
  layer_class = {c.cell_class: c for c in models.CELLS.values()}[type(linen_cell)]
  return layer_class(**{f: getattr(linen_cell, f) for f in ("features", "kernel_init", "bias_init", "use_bias")}), variables


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_from_torch_to_nnx_equals_torch(kind):
  torch.manual_seed(0)
  module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[kind](D, H, num_layers=2, bidirectional=True, batch_first=True)
  xs, _ = inputs()
  ours = gj.interop.from_torch(module, front_end="nnx")
  assert isinstance(ours, gj.nnx.Stacked)
  with torch.no_grad():
    out, _ = module(torch.from_numpy(np.array(xs)))
    back, _ = gj.interop.to_torch(ours)(torch.from_numpy(np.array(xs)))
  np.testing.assert_allclose(ours(xs), out.numpy(), **TOL)
  np.testing.assert_allclose(back.numpy(), out.numpy(), **TOL)


def test_dropout_and_zoneout_follow_train_and_eval():
  xs, _ = inputs()
  layer = randomize(gj.nnx.GRU(D, H, rngs=nnx.Rngs(0, dropout=1), recurrent_dropout=0.5, zoneout=0.3))
  first, second = layer(xs), layer(xs)
  assert not np.allclose(first, second)  # a new mask per call, from the dropout stream
  layer.eval()
  linen_layer, variables = gj.nnx.to_linen(layer)
  np.testing.assert_allclose(layer(xs), linen_layer.apply(variables, xs), **TOL)  # deterministic: expectation
  layer.train()
  assert not np.allclose(layer(xs), linen_layer.apply(variables, xs))
  no_rngs = gj.nnx.GRU(D, H, rngs=nnx.Rngs(0), zoneout=0.3)
  no_rngs.rngs = None
  with pytest.raises(ValueError, match="GRU: recurrent_dropout / zoneout in training need rngs"):
    no_rngs(xs)


def test_options_are_checked_and_named():
  with pytest.raises(TypeError, match=r"GRU: \['forget_bias'\] are not options of this cell; expected some of \['activation_fn', 'chrono_init', 'gate_fn', 'layer_norm', 'reset_after'\]"):
    gj.nnx.GRU(D, H, rngs=nnx.Rngs(0), forget_bias=1.0)
  with pytest.raises(ValueError, match="GRUCell: layer_norm is implemented for reset_after=True only"):
    gj.nnx.GRU(D, H, rngs=nnx.Rngs(0), layer_norm=True, reset_after=False)
  with pytest.raises(ValueError, match="MinGRU: recurrent_dropout needs a cell with a recurrent kernel"):
    gj.nnx.MinGRU(D, H, rngs=nnx.Rngs(0), recurrent_dropout=0.1)
  with pytest.raises(ValueError, match=r"GRU: inputs have 5 features .* expect 3"):
    gj.nnx.GRU(D, H, rngs=nnx.Rngs(0))(jnp.ones((B, T, 5)))


def test_sharding_annotations_reach_the_parameters():
  mesh = jax.make_mesh((1,), ("model",))
  with jax.set_mesh(mesh):
    layer = gj.nnx.GRU(D, H, rngs=nnx.Rngs(0), sharding={"input_kernel": (None, "model"), "bias": ("model",)})
  partition = nnx.get_partition_spec(nnx.state(layer, nnx.Param))
  assert partition["input_kernel"].get_value() == jax.sharding.PartitionSpec(None, "model")
  assert partition["bias"].get_value() == jax.sharding.PartitionSpec("model")
  with pytest.raises(ValueError, match=r"GRU: sharding names \['kernel'\], which are not parameters"):
    gj.nnx.GRU(D, H, rngs=nnx.Rngs(0), sharding={"kernel": (None, "model")})


def test_the_front_ends_are_siblings_and_the_converters_live_in_interop():
  import ast  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  imported = {alias.name for node in ast.walk(ast.parse(inspect.getsource(gj.nnx))) if isinstance(node, ast.ImportFrom)
              for alias in node.names}
  assert "layers" not in imported and imported >= {"specs", "recurrent"}
  for name in ("to_linen", "from_linen", "linen_variables", "load_linen_variables"):
    assert getattr(gj.nnx, name) is getattr(gj.interop, name)
  with pytest.raises(AttributeError, match="gru_jax.nnx' has no attribute 'to_torch'"):
    gj.nnx.to_torch  # noqa: B018  pylint: disable=pointless-statement
