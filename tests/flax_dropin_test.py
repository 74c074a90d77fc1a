"""Our linen cells in programs written for Flax's cells, with only the class name changed."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gru_jax as gj

PAIRS = [(nn.GRUCell, gj.GRUCell), (nn.LSTMCell, gj.LSTMCell), (nn.SimpleCell, gj.SimpleCell)]
IDS = ["GRUCell", "LSTMCell", "SimpleCell"]


class Seq2seq(nn.Module):
  """As Flax's examples/seq2seq: an encoder over the question, and a decoder cell built with
  features = the vocabulary size, stepped by hand from the encoder's (wider) carry."""

  cell: type
  hidden: int = 16
  vocab: int = 6

  @nn.compact
  def __call__(self, question, answer_in):
    carry, _ = nn.RNN(self.cell(features=self.hidden), return_carry=True, name="encoder")(question)
    decoder, readout = self.cell(features=self.vocab, name="decoder"), nn.Dense(self.vocab, name="readout")
    logits = []
    for t in range(answer_in.shape[1]):
      carry, y = decoder(carry, answer_in[:, t])
      logits.append(readout(y))
    return jnp.stack(logits, axis=1)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


@pytest.mark.parametrize("flax_cell, our_cell", PAIRS, ids=IDS)
def test_flax_seq2seq_runs_with_our_cell_and_trains(flax_cell, our_cell):
  rng = np.random.default_rng(0)
  question = jnp.asarray(rng.normal(size=(8, 7, 6)), jnp.float32)
  answer = rng.integers(0, 6, size=(8, 4))
  answer_in = jax.nn.one_hot(np.concatenate([np.zeros((8, 1), int), answer[:, :-1]], 1), 6)
  losses, sizes = {}, {}
  for name, cell in (("flax", flax_cell), ("ours", our_cell)):
    model = Seq2seq(cell)
    params = model.init(jax.random.key(0), question, answer_in)
    sizes[name] = count(params)
    tx = optax.adam(0.01)
    opt = tx.init(params)
    loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(p, question, answer_in), answer).mean()

    @jax.jit
    def step(p, o):
      loss, grads = jax.value_and_grad(loss_fn)(p)
      updates, o = tx.update(grads, o, p)
      return optax.apply_updates(p, updates), o, loss

    history = []
    for _ in range(30):
      params, opt, loss = step(params, opt)
      history.append(float(loss))
    losses[name] = history
  assert sizes["ours"] == sizes["flax"]  # the decoder has the carry's width (16 units), not features=6
  assert losses["ours"][-1] < 0.7 * losses["ours"][0] and np.all(np.isfinite(losses["ours"]))


@pytest.mark.parametrize("flax_cell, our_cell", PAIRS, ids=IDS)
def test_in_nn_rnn_with_mixed_precision_lengths_and_return_carry(flax_cell, our_cell):
  xs = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5, 4)), jnp.float32)
  lengths = jnp.array([5, 2, 1])
  results = {}
  # Flax's own SimpleCell fails here (its bf16 step returns a bf16 carry into a float32 scan):
  # ours is compared with the float32 carry and outputs the GRU and LSTM cells of both give.
  for name, cell in (("flax", nn.GRUCell if flax_cell is nn.SimpleCell else flax_cell), ("ours", our_cell)):
    rnn = nn.RNN(cell(features=8, dtype=jnp.bfloat16, param_dtype=jnp.float32), return_carry=True)
    variables = rnn.init(jax.random.key(0), xs, seq_lengths=lengths)
    carry, ys = rnn.apply(variables, xs, seq_lengths=lengths)
    results[name] = (carry, ys)
  (flax_carry, flax_ys), (carry, ys) = results["flax"], results["ours"]
  assert jax.tree_util.tree_map(lambda c: (c.shape, c.dtype), carry) == jax.tree_util.tree_map(
    lambda c: (c.shape, c.dtype), flax_carry)  # the carry stays float32 under bf16 compute
  assert ys.shape == flax_ys.shape and ys.dtype == flax_ys.dtype
  h = jax.tree_util.tree_leaves(carry)[-1]
  np.testing.assert_allclose(h, ys[jnp.arange(3), lengths - 1], rtol=1e-2)  # the carry stops at each length
  bidirectional = nn.Bidirectional(nn.RNN(our_cell(features=8)), nn.RNN(our_cell(features=8)))
  assert bidirectional.apply(bidirectional.init(jax.random.key(0), xs), xs).shape == (3, 5, 16)


@pytest.mark.parametrize("flax_cell, our_cell", PAIRS, ids=IDS)
def test_initialize_carry_and_num_feature_axes_as_flax(flax_cell, our_cell):
  init = nn.initializers.normal(1.0)
  key = jax.random.key(3)
  ours = our_cell(features=5, carry_init=init).initialize_carry(key, (2, 7))
  theirs = flax_cell(features=5, carry_init=init).initialize_carry(key, (2, 7))
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs), strict=True):
    np.testing.assert_array_equal(a, b)
  assert our_cell(features=5).num_feature_axes == flax_cell(features=5).num_feature_axes == 1


def test_a_carry_of_the_wrong_structure_is_named_as_the_carry():
  with pytest.raises(ValueError, match=r"LSTMCell: carry must have shapes \(\(2, 4\), \(2, 4\)\)"):
    gj.LSTMCell(4).init(jax.random.key(0), jnp.zeros((2, 4)), jnp.zeros((2, 3)))


def hard_tanh(x):
  return jnp.clip(x, -1.0, 1.0)


@pytest.mark.parametrize("flax_cell, our_cell", PAIRS[:2] + [(nn.OptimizedLSTMCell, gj.OptimizedLSTMCell)],
                         ids=IDS[:2] + ["OptimizedLSTMCell"])
def test_gate_fn_and_activation_fn_are_honoured_as_in_flax(flax_cell, our_cell, rng):
  """With Flax's fields set to other functions, our cell computes Flax's cell's step (Flax's
  parameters converted by `from_flax`), and the layer takes the reference path."""
  kwargs = dict(gate_fn=jax.nn.hard_sigmoid, activation_fn=hard_tanh)
  x = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  theirs = flax_cell(features=5, **kwargs)
  carry = jax.tree_util.tree_map(lambda c: c + 0.5, theirs.initialize_carry(jax.random.key(0), x.shape))
  flax_vars = theirs.init(jax.random.key(1), carry, x)
  ours, variables = gj.interop.from_flax(theirs, flax_vars)
  assert type(ours) is our_cell
  new, y = ours.apply(variables, carry, x)
  want_new, want_y = theirs.apply(flax_vars, carry, x)
  for a, b in zip(jax.tree_util.tree_leaves((new, y)), jax.tree_util.tree_leaves((want_new, want_y)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert ours.spec().gates_fn() is None and our_cell(features=5).spec().gates_fn() is not None
  layer = (gj.GRU if our_cell is gj.GRUCell else gj.LSTM)(5, **kwargs)
  xs = jnp.ones((2, 3, 4))
  fast = layer.clone(gate_fn=jax.nn.sigmoid, activation_fn=jnp.tanh)
  variables = layer.init(jax.random.key(0), xs)
  assert not np.allclose(layer.apply(variables, xs), fast.apply(variables, xs))  # the functions are used
  with pytest.raises(ValueError, match="gate_fn and activation_fn other than sigmoid and tanh"):
    gj.CIFGLSTMCell(4, gate_fn=jax.nn.hard_sigmoid)


@pytest.mark.parametrize("flax_cell, our_cell", PAIRS, ids=IDS)
def test_in_a_hand_written_nn_scan_as_flax_documents_it(flax_cell, our_cell):
  """`nn.scan` over the cell class, as Flax's docs write it, gives nn.RNN's outputs, for ours as
  for Flax's."""
  xs = jnp.asarray(np.random.default_rng(2).normal(size=(3, 5, 4)), jnp.float32)
  for cls in (flax_cell, our_cell):
    scanned = nn.scan(cls, variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1)(features=6)
    carry = cls(features=6).initialize_carry(jax.random.key(0), xs[:, 0].shape)
    variables = scanned.init(jax.random.key(1), carry, xs)
    _, ys = scanned.apply(variables, carry, xs)
    assert ys.shape == (3, 5, 6)
    np.testing.assert_allclose(ys, nn.RNN(cls(features=6)).apply({"params": {"cell": variables["params"]}}, xs), atol=1e-6)
