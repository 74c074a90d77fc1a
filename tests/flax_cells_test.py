"""gru_jax.interop.from_flax / to_flax against Flax's own cells (linen and NNX), and our NNX cells
as drop-ins for Flax's NNX cells in `nnx.RNN`."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import gru_jax as gj
from gru_jax import interop

TOL = dict(rtol=1e-5, atol=1e-5)
B, T, D, H = 2, 5, 3, 4


def randomised(tree, seed):
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda p: p + 0.5 * jnp.asarray(rng.normal(size=p.shape), p.dtype), tree)


def xs(seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(B, T, D)), jnp.float32)


LINEN = {
  "GRUCell": lambda: nn.GRUCell(H),
  "LSTMCell": lambda: nn.LSTMCell(H),
  "OptimizedLSTMCell": lambda: nn.OptimizedLSTMCell(H, gate_fn=jax.nn.hard_sigmoid),
  "SimpleCell": lambda: nn.SimpleCell(H),
  "SimpleCell_residual_relu": lambda: nn.SimpleCell(H, residual=True, activation_fn=jax.nn.relu),
}


@pytest.mark.parametrize("name", LINEN)
def test_linen_round_trip_equals_flax(name):
  theirs = LINEN[name]()
  rnn = nn.RNN(theirs)
  flax_vars = randomised(rnn.init(jax.random.key(0), xs()), 1)
  cell, variables = interop.from_flax(theirs, {"params": flax_vars["params"]["cell"]})
  assert type(cell).__name__ == type(theirs).__name__  # gj.GRUCell for nn.GRUCell, ...
  ours = nn.RNN(cell)
  np.testing.assert_allclose(ours.apply({"params": {"cell": variables["params"]}}, xs(2)), rnn.apply(flax_vars, xs(2)), **TOL)
  back, back_vars = interop.to_flax(cell, variables)
  assert type(back) is type(theirs)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back_vars["params"], flax_vars["params"]["cell"])
  np.testing.assert_array_equal(nn.RNN(back).apply({"params": {"cell": back_vars["params"]}}, xs(2)),
                                rnn.apply(flax_vars, xs(2)))  # the fields came back too (gate_fn, residual, ...)


def test_our_layer_norm_free_cells_without_bias_convert_with_zero_biases():
  cell = gj.GRUCell(H, use_bias=False)
  variables = cell.init(jax.random.key(0), jnp.zeros((B, H)), jnp.zeros((B, D)))
  flax_cell, flax_vars = interop.to_flax(cell, variables)
  carry, x = jnp.full((B, H), 0.3), xs()[:, 0]
  np.testing.assert_allclose(flax_cell.apply(flax_vars, carry, x)[1], cell.apply(variables, carry, x)[1], **TOL)
  assert not np.any(flax_vars["params"]["hn"]["bias"])


NNX = {
  "GRUCell": lambda: nnx.GRUCell(D, H, rngs=nnx.Rngs(0)),
  "LSTMCell": lambda: nnx.LSTMCell(D, H, rngs=nnx.Rngs(0), carry_init=nnx.initializers.normal(1.0)),
  "OptimizedLSTMCell": lambda: nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0)),
  "SimpleCell": lambda: nnx.SimpleCell(D, H, residual=True, rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", NNX)
def test_nnx_round_trip_equals_flax(name):
  theirs = NNX[name]()
  state = nnx.state(theirs, nnx.Param)
  nnx.update(theirs, randomised(state, 3))
  ours = interop.from_flax(theirs)
  assert type(ours) is getattr(gj.nnx, name)
  np.testing.assert_allclose(nnx.RNN(ours)(xs(4)), nnx.RNN(theirs)(xs(4)), **TOL)
  back = interop.to_flax(ours)
  assert type(back) is type(theirs) and ours.carry_init is theirs.carry_init and back.carry_init is theirs.carry_init
  jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(nnx.state(back, nnx.Param)),
                         nnx.to_pure_dict(nnx.state(theirs, nnx.Param)))
  np.testing.assert_array_equal(nnx.RNN(back)(xs(4)), nnx.RNN(theirs)(xs(4)))


def test_what_flax_cannot_hold_is_refused_by_name():
  def linen(cell):
    return cell, cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(0), (B, D)), jnp.zeros((B, D)))

  with pytest.raises(ValueError, match="to_flax: GRUCell with layer_norm=True"):
    interop.to_flax(*linen(gj.GRUCell(H, layer_norm=True)))
  with pytest.raises(ValueError, match="to_flax: GRUCell with reset_after=False"):
    interop.to_flax(*linen(gj.GRUCell(H, reset_after=False)))
  with pytest.raises(ValueError, match="to_flax: MGUCell has no Flax equivalent"):
    interop.to_flax(*linen(gj.MGUCell(H)))
  with pytest.raises(TypeError, match="from_flax: expected flax.linen GRUCell.*got MGUCell"):
    interop.from_flax(nn.MGUCell(H), {"params": {}})
  with pytest.raises(ValueError, match="from_flax: a linen GRUCell needs its variables"):
    interop.from_flax(nn.GRUCell(H))
  ours = gj.nnx.GRUCell(D, H, rngs=nnx.Rngs(0))
  ours.recurrent_bias_n.set_value(jnp.ones((H,)))
  with pytest.raises(ValueError, match="nonzero recurrent_bias_n.*flax.nnx.GRUCell has no bias"):
    interop.to_flax(ours)


def test_our_nnx_cells_are_drop_ins_for_flax_nnx_cells_and_hold_no_rng_state(tmp_path):
  """Written as for nnx.GRUCell: hidden_features, carry_init at initialize_carry, nnx.RNN with
  return_carry; the module's state is its parameters only, and it checkpoints with orbax."""
  for flax_class, our_class in ((nnx.GRUCell, gj.nnx.GRUCell), (nnx.LSTMCell, gj.nnx.LSTMCell)):
    theirs = flax_class(in_features=D, hidden_features=H, rngs=nnx.Rngs(0))
    ours = our_class(in_features=D, hidden_features=H, rngs=nnx.Rngs(0))
    for name, value in interop.from_flax(theirs).params().items():  # Flax's weights, our class as written
      getattr(ours, name).set_value(value)
    results = {}
    for name, cell in (("flax", theirs), ("ours", ours)):
      carry = cell.initialize_carry((B, D), nnx.Rngs(carry=1), carry_init=nnx.initializers.normal(1.0))
      results[name] = (carry, nnx.RNN(cell, return_carry=True)(xs(), initial_carry=carry))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), results["ours"], results["flax"])
  made = gj.nnx.GRUCell(D, H, rngs=nnx.Rngs(0), carry_init=nnx.initializers.ones)  # carry_init at construction
  np.testing.assert_array_equal(made.initialize_carry((B, D), nnx.Rngs(carry=0)), jnp.ones((B, H)))
  cell = gj.nnx.LSTMCell(D, hidden_features=H, rngs=nnx.Rngs(0))
  variables = [v for _, v in nnx.graph.iter_graph(cell) if isinstance(v, nnx.Variable)]
  assert len(variables) == 3 and all(isinstance(v, nnx.Param) for v in variables)  # kernels and bias; no RngState
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "cell", nnx.state(cell))
  checkpointer.wait_until_finished()
  abstract = nnx.eval_shape(lambda: gj.nnx.LSTMCell(D, H, rngs=nnx.Rngs(7)))
  graphdef, abstract_state = nnx.split(abstract)
  restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "cell", abstract_state))
  np.testing.assert_array_equal(nnx.RNN(restored)(xs()), nnx.RNN(cell)(xs()))
  with pytest.raises(TypeError, match="features=4 and hidden_features=5 name the same size twice"):
    gj.nnx.GRUCell(D, 4, hidden_features=5, rngs=nnx.Rngs(0))


def test_simple_cell_options_survive_the_stack_and_the_nnx_front_end():
  """SimpleCell's residual (a cell option) and Stacked's residual (between layers) are different
  options of the same name; both reach the NNX stack."""
  stack = gj.Stacked(gj.SimpleRNN(D, residual=True, activation_fn=jax.nn.soft_sign), num_layers=2, residual=True)
  variables = randomised(stack.init(jax.random.key(0), xs()), 5)
  twin = gj.nnx.from_linen(stack, variables)
  assert twin.layer_0.spec.residual and twin.residual
  np.testing.assert_allclose(twin(xs(6)), stack.apply(variables, xs(6)), **TOL)
  plain = stack.clone(layer=gj.SimpleRNN(D))
  assert not np.allclose(plain.apply(variables, xs(6)), stack.apply(variables, xs(6)))


def test_carry_init_crosses_the_linen_nnx_converters():
  init = nn.initializers.normal(1.0)
  for linen_cell, want in ((gj.GRUCell(H, carry_init=init), init), (gj.GRUCell(H), None)):
    variables = linen_cell.init(jax.random.key(0), jnp.zeros((B, H)), jnp.zeros((B, D)))
    twin = gj.nnx.from_linen(linen_cell, variables)
    assert twin.carry_init is want
    back, _ = gj.nnx.to_linen(twin)
    assert back.carry_init is (want or gj.GRUCell.carry_init)
