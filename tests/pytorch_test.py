"""gru_jax against PyTorch (the numerics oracle) through gj.interop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import gru_jax as gj
from gru_jax import models, specs

TORCH = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}
TOL = dict(rtol=1e-5, atol=1e-5)


def random_case(kind, seed):
  """A random torch module and input: sizes, layers, directions, layout, bias, lengths (with 0)."""
  rng = np.random.default_rng(seed)
  torch.manual_seed(seed)
  kwargs = dict(
    input_size=int(rng.integers(1, 6)), hidden_size=int(rng.integers(1, 7)), num_layers=int(rng.integers(1, 4)),
    bidirectional=bool(rng.integers(2)), batch_first=bool(rng.integers(2)), bias=bool(seed % 4),
  )
  if kind == "rnn":
    kwargs["nonlinearity"] = ["tanh", "relu"][seed % 2]
  module = TORCH[kind](**kwargs)
  with torch.no_grad():  # torch's biases are small at init; make every weight matter
    for p in module.parameters():
      p.normal_(0, 0.6)
  batch, steps = int(rng.integers(2, 5)), int(rng.integers(1, 8))
  lengths = rng.integers(0, steps + 1, size=batch)
  lengths[0], lengths[-1] = steps, 0
  x = torch.randn(batch, steps, kwargs["input_size"])
  dirs = 2 if kwargs["bidirectional"] else 1
  h0 = torch.randn(kwargs["num_layers"] * dirs, batch, kwargs["hidden_size"])
  hx = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
  return module, x if kwargs["batch_first"] else x.transpose(0, 1), torch.as_tensor(lengths), hx


def select(hx, index, kind):
  """The batch entries `index` of torch's h0 / (h0, c0)."""
  return tuple(h[:, index] for h in hx) if kind == "lstm" else hx[:, index]


def flat(hx, kind):
  return torch.cat([h.flatten() for h in hx]) if kind == "lstm" else hx.flatten()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TORCH))
@pytest.mark.parametrize("seed", range(4))
def test_from_torch_matches_packed_sequences(kind, seed):
  module, x, lengths, hx = random_case(kind, seed)
  bf = module.batch_first
  ours, variables = gj.interop.from_torch(module)
  ys, carries = ours.apply(
    variables, jnp.asarray(x.numpy()), seq_lengths=jnp.asarray(lengths.numpy()),
    initial_carry=gj.interop.carry_from_torch(module, hx), return_carry=True,
  )
  ys = np.asarray(ys)
  hn_ours = gj.interop.carry_to_torch(module, carries)
  nnx_ys, nnx_carries = gj.interop.from_torch(module, front_end="nnx")(  # the NNX front-end: the same
    jnp.asarray(x.numpy()), seq_lengths=jnp.asarray(lengths.numpy()),
    initial_carry=gj.interop.carry_from_torch(module, hx), return_carry=True,
  )
  np.testing.assert_allclose(nnx_ys, ys, rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(nnx_carries), jax.tree_util.tree_leaves(carries), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

  nonzero = torch.nonzero(lengths).flatten()
  x_nz = x[nonzero] if bf else x[:, nonzero]
  packed = torch.nn.utils.rnn.pack_padded_sequence(x_nz, lengths[nonzero], batch_first=bf, enforce_sorted=False)
  with torch.no_grad():
    out, hn = module(packed, select(hx, nonzero, kind))
  out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=bf, total_length=x.shape[1 if bf else 0])
  ys_nz = ys[nonzero.numpy()] if bf else ys[:, nonzero.numpy()]
  np.testing.assert_allclose(ys_nz, out.numpy(), **TOL)
  np.testing.assert_allclose(flat(select(hn_ours, nonzero, kind), kind), flat(hn, kind), **TOL)

  zero = torch.nonzero(lengths == 0).flatten()  # torch cannot pack length 0; DESIGN.md says what it means
  np.testing.assert_array_equal(ys[zero.numpy()] if bf else ys[:, zero.numpy()], 0.0)
  np.testing.assert_array_equal(flat(select(hn_ours, zero, kind), kind), flat(select(hx, zero, kind), kind))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TORCH))
def test_full_length_unpacked_and_round_trip(kind):
  module, x, _, _ = random_case(kind, 7)
  ours, variables = gj.interop.from_torch(module)
  with torch.no_grad():
    out, _ = module(x)
    back, _ = gj.interop.to_torch(ours, variables)(x)
  np.testing.assert_allclose(np.asarray(ours.apply(variables, jnp.asarray(x.numpy()))), out.numpy(), **TOL)
  np.testing.assert_allclose(back.numpy(), out.numpy(), **TOL)


def test_to_torch_from_a_fresh_layer(rng):
  layer = gj.LSTM(5)
  xs = jnp.asarray(rng.normal(size=(2, 4, 3)).astype(np.float32))
  variables = layer.init(jax.random.key(0), xs)
  module = gj.interop.to_torch(layer, variables)
  with torch.no_grad():
    out, _ = module(torch.from_numpy(np.array(xs)))
  np.testing.assert_allclose(out.numpy(), np.asarray(layer.apply(variables, xs)), **TOL)


def test_unconvertible_modules_say_why():
  with pytest.raises(ValueError, match="proj_size=2 is not supported"):
    gj.interop.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
  with pytest.raises(TypeError, match="expected torch.nn.GRU, LSTM or RNN; got Linear"):
    gj.interop.from_torch(torch.nn.Linear(3, 4))
  layer = gj.GRU(4, reset_after=False)
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 2, 3)))
  with pytest.raises(ValueError, match="only the reset_after=True form"):
    gj.interop.to_torch(layer, variables)
  with pytest.raises(ValueError, match="to_torch: the variables hold no 'params'"):
    gj.interop.to_torch(gj.GRU(4), variables["params"])
  with pytest.raises(ValueError, match="to_torch: a linen module needs its variables"):
    gj.interop.to_torch(gj.GRU(4))


# Every cell with its default options, and each option that changes the equations or the
# parameters; with whether torch.nn can hold it.
CONVERTIBLE = [
  ("gru", {}), ("lstm", {}), ("rnn", {}), ("rnn", {"activation": "relu"}),
  ("gru", {"chrono_init": 10}), ("lstm", {"chrono_init": 10}), ("lstm", {"forget_bias": 0.0}),
]
REFUSED = [(cell, {}) for cell in specs.SPECS if cell not in {c for c, _ in CONVERTIBLE}] + [
  ("gru", {"layer_norm": True}), ("lstm", {"layer_norm": True}),
  ("gru", {"reset_after": False}), ("rnn", {"activation": "identity"}), ("gru", {"learn_initial_carry": True}),
  ("lstm", {"recurrent_dropout": 0.1}), ("rnn", {"zoneout": 0.2}), ("rnn", {"residual": True}),
  ("rnn", {"activation_fn": jax.nn.relu}),
]


@pytest.mark.slow
@pytest.mark.parametrize("cell,options,stacked", [(c, o, s) for c, o in CONVERTIBLE for s in (False, True)]
                         + [(c, o, s) for c, o in REFUSED for s in (False,)] + [REFUSED[0] + (True,)])
def test_to_torch_equals_or_refuses_every_variant(cell, options, stacked, rng):
  layer = models.make_layer(cell, 4, **options)
  module = gj.Stacked(layer, num_layers=2, bidirectional=True) if stacked else layer
  xs = jnp.asarray(rng.normal(size=(2, 5, 3)).astype(np.float32))
  variables = module.init(jax.random.key(1), xs)
  if (cell, options) in REFUSED:
    with pytest.raises(ValueError, match=r"^to_torch: \w+ (with|has no torch)[^\n]*$"):
      gj.interop.to_torch(module, variables)
    return
  with torch.no_grad():
    out, _ = gj.interop.to_torch(module, variables)(torch.from_numpy(np.array(xs)))
  np.testing.assert_allclose(out.numpy(), np.asarray(module.apply(variables, xs)), **TOL)
