"""gru_jax against Keras 3 (JAX backend, CPU) through gru_jax.keras3."""

import os

os.environ["KERAS_BACKEND"] = "jax"

import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx as flax_nnx  # noqa: E402

import keras  # noqa: E402  (in the test extra: CI installs it)

from gru_jax import layers
from gru_jax.interop import keras3  # noqa: E402
from gru_jax import nnx as gj_nnx  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)
B, T, D, H = 2, 5, 3, 4


def inits(seed, use_bias=True):
  """Random-normal initialisers (Keras' biases start at zero; make every weight matter)."""
  normal = lambda s: keras.initializers.RandomNormal(0.0, 0.6, seed=seed + s)
  out = dict(kernel_initializer=normal(0), recurrent_initializer=normal(1), use_bias=use_bias)
  return {**out, "bias_initializer": normal(2)} if use_bias else out


def xs(seed=0):
  return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


def built(layer):
  layer.build((B, T, D))
  return layer


CASES = {
  "gru": lambda: keras.layers.GRU(H, return_sequences=True, **inits(0)),
  "gru_reset_before": lambda: keras.layers.GRU(H, reset_after=False, return_sequences=True, **inits(1)),
  "gru_no_bias": lambda: keras.layers.GRU(H, return_sequences=True, **inits(2, use_bias=False)),
  "gru_hard_sigmoid_relu": lambda: keras.layers.GRU(
    H, recurrent_activation="hard_sigmoid", activation="relu", return_sequences=True, **inits(3)),
  "lstm": lambda: keras.layers.LSTM(H, return_sequences=True, **inits(4)),
  "lstm_no_bias": lambda: keras.layers.LSTM(H, return_sequences=True, **inits(5, use_bias=False)),
  "rnn_tanh": lambda: keras.layers.SimpleRNN(H, return_sequences=True, **inits(6)),
  "rnn_relu": lambda: keras.layers.SimpleRNN(H, activation="relu", return_sequences=True, **inits(7)),
  "rnn_sigmoid": lambda: keras.layers.SimpleRNN(H, activation="sigmoid", return_sequences=True, **inits(11)),
  "rnn_linear": lambda: keras.layers.RNN(keras.layers.SimpleRNNCell(H, activation="linear", **inits(8)),
                                         return_sequences=True),
  "bi_gru": lambda: keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, **inits(9))),
  "bi_lstm_sum": lambda: keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True, **inits(10)),
                                                    merge_mode="sum"),
  "bi_rnn_mul": lambda: keras.layers.Bidirectional(keras.layers.SimpleRNN(H, return_sequences=True, **inits(12)),
                                                   merge_mode="mul"),
  "bi_gru_ave": lambda: keras.layers.Bidirectional(keras.layers.GRU(H, return_sequences=True, **inits(13)),
                                                   merge_mode="ave"),
}


def weights(layer):
  return [np.asarray(w.value) for w in layer.weights]


def params_close(a, b):
  close = lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=1e-7)
  jax.tree_util.tree_map(close, a, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_from_keras_and_back(case):
  layer, x = CASES[case](), xs()
  want = np.asarray(layer(x))
  module, variables = keras3.from_keras(layer)
  assert not getattr(module, "time_major", False)
  np.testing.assert_allclose(np.asarray(module.apply(variables, jnp.asarray(x))), want, **TOL)

  back = keras3.to_keras(module, variables)
  assert type(back) is (keras.layers.SimpleRNN if case == "rnn_linear" else type(layer))
  np.testing.assert_allclose(np.asarray(back(x)), want, **TOL)
  _, again = keras3.from_keras(back)
  params_close(again, variables)  # gru_jax -> Keras -> gru_jax is exact
  if not (case.startswith(("gru", "bi_gru")) and "no_bias" not in case and "before" not in case):
    # Keras -> gru_jax -> Keras too, where nothing is folded (the reset-after GRU folds the r, z recurrent biases).
    for w, v in zip(weights(layer), weights(back), strict=True):
      np.testing.assert_allclose(w, v, rtol=1e-6, atol=1e-7)


def test_reset_after_bias_folding():
  layer = CASES["gru"]()
  built(layer)
  _, variables = keras3.from_keras(layer)
  b_in, b_rec = np.asarray(layer.cell.bias.value)
  p = variables["params"]
  z, r, n = np.split(b_in + b_rec, 3)
  np.testing.assert_allclose(p["bias"], np.concatenate([r, z, np.split(b_in, 3)[2]]), rtol=1e-6)
  np.testing.assert_allclose(p["recurrent_bias_n"], np.split(b_rec, 3)[2], rtol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_states_and_last_output(bidirectional):
  """return_sequences=False / return_state=True: Keras' outputs from the module's ys and carry."""
  rnn = keras.layers.LSTM(H, return_sequences=False, return_state=True, **inits(11))
  layer = keras.layers.Bidirectional(rnn) if bidirectional else rnn
  built(layer)
  module, variables = keras3.from_keras(layer)
  x = xs(1)
  rng = np.random.default_rng(2)
  states0 = [rng.normal(size=(B, H)).astype(np.float32) for _ in range(4 if bidirectional else 2)]
  last, *states = [np.asarray(o) for o in layer(x, initial_state=states0)]
  ys, carry = module.apply(variables, jnp.asarray(x), initial_carry=keras3.carry_from_keras(layer, states0),
                           return_carry=True)
  ys = np.asarray(ys)
  ours_last = np.concatenate([ys[:, -1, :H], ys[:, 0, H:]], -1) if bidirectional else ys[:, -1]
  np.testing.assert_allclose(ours_last, last, **TOL)
  for ours, theirs in zip(keras3.carry_to_keras(layer, carry), states, strict=True):
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_nnx_front_end():
  layer, x = CASES["bi_gru"](), xs(3)
  want = np.asarray(layer(x))
  module = keras3.from_keras(layer, front_end="nnx")
  assert isinstance(module, gj_nnx.Bidirectional)
  np.testing.assert_allclose(np.asarray(module(jnp.asarray(x))), want, **TOL)
  np.testing.assert_allclose(np.asarray(keras3.to_keras(module)(x)), want, **TOL)


def test_stacked_is_a_sequential():
  module = layers.Stacked(layers.GRU(H, reset_after=False), num_layers=2, bidirectional=True, dropout=0.25)
  x = jnp.asarray(xs(4))
  variables = module.init(jax.random.key(0), x)
  model = keras3.to_keras(module, variables)
  assert isinstance(model, keras.Sequential)
  assert [type(s).__name__ for s in model.layers] == ["Bidirectional", "Dropout", "Bidirectional"]
  np.testing.assert_allclose(np.asarray(model(np.asarray(x))), np.asarray(module.apply(variables, x)), **TOL)
  again, again_vars = keras3.from_keras(model)
  assert (again.num_layers, again.bidirectional, again.dropout, again.layer.reset_after) == (2, True, 0.25, False)
  params_close(again_vars, variables)


def test_sequential_refusals():
  seq = lambda *subs: keras.Sequential([keras.Input((None, D)), *subs])
  gru = lambda: keras.layers.GRU(H, return_sequences=True)
  cases = {
    "differs from the first": seq(gru(), keras.layers.LSTM(H)),
    "Dropout rates between layers differ": seq(gru(), keras.layers.Dropout(0.1), gru(), keras.layers.Dropout(0.2), gru()),
    "is not one plain Dropout": seq(gru(), keras.layers.Dropout(0.1), keras.layers.Dropout(0.1), gru()),
  }
  for message, model in cases.items():
    with pytest.raises(ValueError, match=message):
      keras3.from_keras(model)


def test_activations_equal_keras():
  grid = np.linspace(-8.0, 8.0, 1601, dtype=np.float32)
  for name, fn in keras3.ACTIVATIONS.items():
    np.testing.assert_allclose(np.asarray(fn(grid)), np.asarray(keras.activations.get(name)(grid)), rtol=1e-6,
                               atol=1e-7, err_msg=name)
  # Keras 3's hard_sigmoid is clip(x / 6 + 1/2, 0, 1) (jax.nn's), not Keras 2's clip(0.2 x + 0.5, 0, 1).
  hard = np.asarray(keras.activations.hard_sigmoid(grid))
  np.testing.assert_allclose(hard, np.clip(grid / 6 + 0.5, 0, 1), atol=1e-7)
  assert not np.allclose(hard, np.clip(0.2 * grid + 0.5, 0, 1))


def test_training_options():
  layer = built(keras.layers.SimpleRNN(H, recurrent_dropout=0.3))
  module, _ = keras3.from_keras(layer)
  assert module.recurrent_dropout == 0.3
  assert keras3.to_keras(*keras3.from_keras(layer)).cell.recurrent_dropout == 0.3
  layer = built(keras.layers.GRU(H, dropout=0.2, recurrent_dropout=0.1, kernel_regularizer="l2"))
  module, _ = keras3.from_keras(layer, drop_training_options=True)
  assert module.recurrent_dropout == 0.0


def test_dtype_policy():
  layer = built(keras.layers.GRU(H, dtype="mixed_bfloat16"))
  module, variables = keras3.from_keras(layer)
  assert (module.dtype, module.param_dtype) == (jnp.bfloat16, jnp.float32)
  assert variables["params"]["input_kernel"].dtype == jnp.float32
  assert keras3.to_keras(module, variables).dtype_policy.name == "mixed_bfloat16"


REFUSED = {
  "stateful=True": lambda: keras.layers.GRU(H, stateful=True),
  "go_backwards=True": lambda: keras.layers.LSTM(H, go_backwards=True),
  "activation=gelu": lambda: keras.layers.GRU(H, activation="gelu"),
  "recurrent_activation=softmax": lambda: keras.layers.LSTM(H, recurrent_activation="softmax"),
  "dropout=0.2": lambda: keras.layers.GRU(H, dropout=0.2),
  "recurrent_dropout=0.2": lambda: keras.layers.LSTM(H, recurrent_dropout=0.2),
  "kernel_regularizer=": lambda: keras.layers.GRU(H, kernel_regularizer="l2"),
  "recurrent_constraint=": lambda: keras.layers.SimpleRNN(H, recurrent_constraint="non_neg"),
  "merge_mode=None": lambda: keras.layers.Bidirectional(keras.layers.GRU(H), merge_mode=None),
  "dtype='int8_from_float32'": lambda: keras.layers.GRU(H, dtype="int8_from_float32"),
}


@pytest.mark.parametrize("attribute", sorted(REFUSED))
def test_from_keras_refusals(attribute):
  with pytest.raises(ValueError, match=f"from_keras: .* with {attribute}"):
    keras3.from_keras(built(REFUSED[attribute]()))


def test_from_keras_refuses_other_layers():
  with pytest.raises(ValueError, match="built=False"):
    keras3.from_keras(keras.layers.GRU(H))
  with pytest.raises(TypeError, match="got Dense"):
    keras3.from_keras(built(keras.layers.Dense(H)))
  with pytest.raises(TypeError, match="cell StackedRNNCells"):
    keras3.from_keras(built(keras.layers.RNN([keras.layers.GRUCell(H), keras.layers.GRUCell(H)])))
  with pytest.raises(ValueError, match="front_end"):
    keras3.from_keras(built(keras.layers.GRU(H)), front_end="haiku")


TO_KERAS_REFUSED = {
  "layer_norm=True": layers.GRU(H, layer_norm=True),
  "zoneout=0.1": layers.LSTM(H, zoneout=0.1),
  "learn_initial_carry=True": layers.GRU(H, learn_initial_carry=True),
  "time_major=True": layers.SimpleRNN(H, time_major=True),
  "recurrent_dropout=0.1": layers.GRU(H, recurrent_dropout=0.1),
  "gate_fn='<lambda>'": layers.LSTM(H, gate_fn=lambda v: jax.nn.sigmoid(2 * v)),
  "PeepholeLSTM has no Keras equivalent": layers.PeepholeLSTM(H),
  "residual=True": layers.Stacked(layers.GRU(H), num_layers=2, residual=True),
  "SimpleRNN with residual=True": layers.SimpleRNN(H, residual=True),
  "num_layers > 1 and return_state=True": layers.Stacked(layers.GRU(H), num_layers=2),
}


@pytest.mark.parametrize("attribute", sorted(TO_KERAS_REFUSED))
def test_to_keras_refusals(attribute):
  module = TO_KERAS_REFUSED[attribute]
  x = jnp.zeros((T, B, D) if getattr(module, "time_major", False) else (B, T, D))
  variables = module.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=f"to_keras: .*{attribute}"):
    keras3.to_keras(module, variables, return_state="return_state" in attribute)


def test_to_keras_needs_variables_and_a_layer():
  with pytest.raises(ValueError, match="needs its variables"):
    keras3.to_keras(layers.GRU(H))
  with pytest.raises(TypeError, match="the cell GRUCell"):
    keras3.to_keras(gj_nnx.GRUCell(D, H, rngs=flax_nnx.Rngs(0)))


def test_missing_keras_names_the_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "keras", None)
  with pytest.raises(ImportError, match="pip install keras"):
    keras3.from_keras(None)
