"""Keras 3 <-> gru_jax weight conversion for keras.layers.GRU, LSTM, SimpleRNN and Bidirectional.

`from_keras(layer)` returns `(module, variables)`: the matching gru_jax layer (`GRU`, `LSTM`,
`SimpleRNN`; a `Bidirectional` of two for `keras.layers.Bidirectional`; a `Stacked` for a
`keras.Sequential` of such layers), batch-major as Keras is, whose outputs equal the Keras
layer's with `return_sequences=True`. `to_keras` goes back. Kernels are [D, G*H] and [H, G*H] on
both sides, so only the gate blocks and the biases move:

  GRU   Keras blocks (z, r, h), z the update gate with h' = z*h + (1-z)*hh: z is gru_jax's keep
        gate, so the blocks are only reordered to (r, z, n). reset_after=True: Keras' bias
        [2, 3H] is an input row and a recurrent row; gru_jax folds them into `bias` for r and z,
        keeps the input one for n, and the recurrent n block becomes `recurrent_bias_n`.
        reset_after=False: Keras' bias [3H] is the input bias only, as gru_jax's.
  LSTM  Keras blocks (i, f, c, o) are gru_jax's (i, f, g, o); one bias [4H] on both sides.
        (unit_forget_bias only initialises it: the converted layer has forget_bias=0.0.)
  RNN   kernel, recurrent_kernel, bias: the same.

Options: Keras' activation / recurrent_activation become gru_jax's activation_fn / gate_fn when
they are one of `ACTIVATIONS` (the JAX function equal to Keras 3's; SimpleRNN: tanh, relu,
linear by name, the others of `ACTIVATIONS` as activation_fn), use_bias is use_bias, Bidirectional merge_mode "concat", "sum", "mul" and "ave" are merge, the dtype
policy gives dtype and param_dtype, SimpleRNN's recurrent_dropout (one mask per sequence on h
where it enters the matmul, as gru_jax's) is recurrent_dropout, and Dropout layers between the
layers of a Sequential are Stacked's dropout. Initialisers, seed, unroll, use_cudnn and
implementation do not change the function and are left. Everything else that changes it raises a
ValueError naming the Keras attribute and its value: stateful=True, go_backwards=True (except in
the backward half of a Bidirectional: gru_jax's `reverse` keeps outputs aligned, Keras' reverses
them), other activations, merge_mode None (two outputs). The training-only options that
gru_jax's layers lack (input dropout, the GRU's and LSTM's recurrent_dropout, whose Keras masks
differ per gate, regularizers and constraints) are refused too, unless
`drop_training_options=True`, which leaves them out (evaluation outputs are unchanged).

Outputs and carries: the gru_jax module always returns the full sequence, as Keras with
return_sequences=True; `module.apply(v, xs, return_carry=True)` adds the final carry, which
`carry_to_keras` turns into Keras' return_state states ([h], or [h, c] for the LSTM, forward
then backward for Bidirectional; gru_jax's LSTM carry is (c, h)). Keras' return_sequences=False
output is the last h of each direction: `ys[:, -1]`, or for Bidirectional (concat)
`concat([ys[:, -1, :H], ys[:, 0, H:]])`. A Keras mask (from `Embedding(mask_zero=True)`, say) is
gru_jax's `seq_lengths` when it masks a suffix; gru_jax's outputs past the length are zeros
(Keras' zero_output_for_mask=True, which Bidirectional sets).
"""

import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import cells, layers, merges, nnx
from gru_jax.interop import common, linen_nnx

_INSTALL = "pip install keras==3.15.1 (Keras 3 with its JAX backend; TensorFlow is not needed)"


# The identity: Keras' "linear" activation as a gru_jax gate_fn / activation_fn (the same function
# object as gru_jax's named "identity", so either converts).
linear = cells.ACTIVATIONS["identity"]


# Keras 3 activation name -> the JAX function equal to it (Keras' JAX backend calls these; the tests
# compare each with Keras' on a grid). Keras 3's hard_sigmoid is relu6(x + 3) / 6, jax.nn's, not
# Keras 2's clip(0.2 x + 0.5, 0, 1).
ACTIVATIONS = {
  "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "hard_sigmoid": jax.nn.hard_sigmoid, "relu": jax.nn.relu,
  "linear": linear, "relu6": jax.nn.relu6, "elu": jax.nn.elu, "selu": jax.nn.selu, "softplus": jax.nn.softplus,
  "softsign": jax.nn.soft_sign, "silu": jax.nn.silu, "hard_silu": jax.nn.hard_silu, "hard_tanh": jax.nn.hard_tanh,
  "exponential": jnp.exp, "log_sigmoid": jax.nn.log_sigmoid,
}
# Keras SimpleRNN activation name <-> gru_jax SimpleRNN activation.
_RNN_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "linear": "identity"}
_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
_CONSTRAINTS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")


def _keras():
  if "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ and not _configured_backend():
    # Keras 3 defaults to TensorFlow, which gru_jax does not need; JAX is always installed.
    os.environ["KERAS_BACKEND"] = "jax"
  try:
    import keras  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"gru_jax.interop's Keras converters need Keras 3: {_INSTALL} ({e})") from e
  if not keras.__version__.startswith("3."):
    raise ImportError(f"gru_jax.interop's Keras converters need Keras 3; found keras {keras.__version__}: {_INSTALL}")
  return keras


def _configured_backend() -> bool:
  """Whether ~/.keras/keras.json (or $KERAS_HOME's) names a backend, which Keras then uses."""
  home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
  try:
    with open(os.path.join(home, "keras.json")) as f:
      return "backend" in json.load(f)
  except (OSError, ValueError):
    return False


def _kind(keras, layer) -> str:
  """"gru" / "lstm" / "rnn" for a keras.layers.RNN whose cell is Keras' GRUCell, LSTMCell or SimpleRNNCell."""
  kl = keras.layers
  if isinstance(layer, kl.RNN):
    for kind, cls in (("gru", kl.GRUCell), ("lstm", kl.LSTMCell), ("rnn", kl.SimpleRNNCell)):
      if type(layer.cell) is cls:  # pylint: disable=unidiomatic-typecheck
        return kind
    raise TypeError(f"from_keras: {layer.name} has cell {type(layer.cell).__name__}; only Keras' GRUCell, LSTMCell "
                    "and SimpleRNNCell convert")
  raise TypeError(f"from_keras: expected keras.layers.GRU, LSTM, SimpleRNN, Bidirectional of one, or a Sequential of "
                  f"them; got {type(layer).__name__}")


def _activation_name(keras, fn, names) -> str | None:
  return next((n for n in names if fn is keras.activations.get(n)), None)


def _dtypes(owner: str, name: str, policy) -> dict[str, Any]:
  """gru_jax's dtype and param_dtype for a Keras dtype policy."""
  common.refuse(owner, name, [(getattr(policy, "quantization_mode", None),
                         f"dtype={policy.name!r} (quantized layers have no gru_jax equivalent)")])
  compute, variable = jnp.dtype(policy.compute_dtype), jnp.dtype(policy.variable_dtype)
  return dict(dtype=None if compute == variable else compute, param_dtype=variable)


def _numpy(keras, variable) -> np.ndarray:
  return np.asarray(keras.ops.convert_to_numpy(variable.value), np.float64)


def _swap_zr(a: np.ndarray, hidden: int) -> np.ndarray:
  """Swaps the first two gate blocks of the last axis: Keras' (z, r, h) <-> gru_jax's (r, z, n)."""
  return np.concatenate([a[..., hidden : 2 * hidden], a[..., :hidden], a[..., 2 * hidden :]], axis=-1)


def _layer_from_keras(keras, layer, drop: bool, backward: bool = False) -> tuple[layers.Recurrent, dict[str, Any]]:
  """(gru_jax layer, its params) equal to one Keras RNN layer (`backward`: a Bidirectional's backward half)."""
  kind = _kind(keras, layer)
  cell, owner, name = layer.cell, "from_keras", f"keras.layers.{type(layer).__name__} {layer.name!r}"
  gate = _activation_name(keras, cell.recurrent_activation, ACTIVATIONS) if kind != "rnn" else None
  act = _activation_name(keras, cell.activation, ACTIVATIONS)
  fn_name = lambda fn: getattr(fn, "__name__", repr(fn))
  common.refuse(owner, name, [
    (not layer.built, "built=False (build it, or call it once, so that it has weights)"),
    (layer.stateful, "stateful=True (gru_jax layers take the carry as initial_carry instead)"),
    (layer.go_backwards != backward,
     f"go_backwards={layer.go_backwards} (gru_jax's reverse=True keeps the outputs aligned with the inputs; Keras "
     "reverses them in time)"),
    (act is None, f"activation={fn_name(cell.activation)} (supported: {sorted(ACTIVATIONS)})"),
    (kind != "rnn" and gate is None,
     f"recurrent_activation={fn_name(getattr(cell, 'recurrent_activation', None))} (supported: {sorted(ACTIVATIONS)})"),
  ])
  if not drop:
    why = " (training only: gru_jax's layers have none; drop_training_options=True leaves it out)"
    common.refuse(owner, name, [
      (cell.dropout, f"dropout={cell.dropout}{why}"),
      (kind != "rnn" and cell.recurrent_dropout,
       f"recurrent_dropout={cell.recurrent_dropout} (training only: Keras draws one mask per gate, gru_jax one for "
       "all; drop_training_options=True leaves it out)"),
      *[(getattr(cell, a), f"{a}={getattr(cell, a)!r}{why}") for a in _REGULARIZERS + _CONSTRAINTS],
      (layer.activity_regularizer, f"activity_regularizer={layer.activity_regularizer!r}{why}"),
    ])
  hidden = cell.units
  shared = dict(features=hidden, use_bias=cell.use_bias, **_dtypes(owner, name, layer.dtype_policy))
  if kind == "gru":
    fns = dict(gate_fn=ACTIVATIONS[gate], activation_fn=ACTIVATIONS[act])
    module = layers.GRU(**shared, reset_after=cell.reset_after, **fns)
  elif kind == "lstm":
    fns = dict(gate_fn=ACTIVATIONS[gate], activation_fn=ACTIVATIONS[act])
    module = layers.LSTM(**shared, forget_bias=0.0, **fns)
  else:
    # A name gru_jax's SimpleRNN knows, else the function (as flax.linen.SimpleCell's activation_fn).
    named = dict(activation=_RNN_ACTIVATIONS[act]) if act in _RNN_ACTIVATIONS else dict(activation_fn=ACTIVATIONS[act])
    module = layers.SimpleRNN(**shared, **named, recurrent_dropout=cell.recurrent_dropout)

  p = {"input_kernel": _numpy(keras, cell.kernel), "recurrent_kernel": _numpy(keras, cell.recurrent_kernel)}
  bias = _numpy(keras, cell.bias) if cell.use_bias else None
  if kind == "gru":
    p = {k: _swap_zr(v, hidden) for k, v in p.items()}
    if bias is not None and cell.reset_after:
      bias, p["recurrent_bias_n"] = common.fold_gru_biases(_swap_zr(bias[0], hidden), _swap_zr(bias[1], hidden), hidden)
    elif bias is not None:
      bias = _swap_zr(bias, hidden)
  if bias is not None:
    p["bias"] = bias
  return module, {k: jnp.asarray(v, module.param_dtype) for k, v in p.items()}


def _bidirectional_from_keras(keras, layer, drop: bool) -> tuple[layers.Bidirectional, dict[str, Any]]:
  common.refuse("from_keras", f"keras.layers.Bidirectional {layer.name!r}", [
    (layer.merge_mode not in merges.MERGES,
     f"merge_mode={layer.merge_mode!r} (gru_jax's Bidirectional merges by {list(merges.MERGES)})"),
    (layer.forward_layer.go_backwards, "a forward_layer with go_backwards=True (gru_jax runs the first layer forward)"),
    (not drop and layer.activity_regularizer,
     f"activity_regularizer={layer.activity_regularizer!r} (training only; drop_training_options=True leaves it out)"),
  ])
  forward, p_f = _layer_from_keras(keras, layer.forward_layer, drop)
  backward, p_b = _layer_from_keras(keras, layer.backward_layer, drop, backward=True)
  return layers.Bidirectional(forward, backward, merge=layer.merge_mode), {"forward_rnn": p_f, "backward_rnn": p_b}


def _stacked_from_keras(keras, model, drop: bool) -> tuple[layers.Stacked, dict[str, Any]]:
  """A Sequential of equal recurrent layers (with one equal Dropout between each two, or none) -> Stacked."""
  owner = f"from_keras: Sequential {model.name!r}"
  rnns, rates, gap = [], [], None  # gap: the rate of the Dropout since the last recurrent layer
  for i, sub in enumerate(model.layers):
    if isinstance(sub, keras.layers.Dropout):
      if not rnns or gap is not None or sub.noise_shape is not None:
        raise ValueError(f"{owner}: layer {i} ({sub.name!r}, Dropout rate={sub.rate}, noise_shape={sub.noise_shape}) "
                         "is not one plain Dropout between two recurrent layers, which is all Stacked has")
      gap = sub.rate
      continue
    if rnns:
      rates.append(gap or 0.0)
      if not rnns[-1][0].return_sequences:
        raise ValueError(f"{owner}: layer {rnns[-1][0].name!r} has return_sequences=False but feeds another layer")
    gap = None
    convert = _bidirectional_from_keras if isinstance(sub, keras.layers.Bidirectional) else _layer_from_keras
    rnns.append((sub, *convert(keras, sub, drop)))
  if not rnns or gap is not None:
    raise ValueError(f"{owner}: expected recurrent layers, first and last; got {[s.name for s in model.layers]}")
  describe = lambda m: repr(m.clone(parent=None, name=None))
  halves = lambda m: (m.forward_rnn, m.backward_rnn) if isinstance(m, layers.Bidirectional) else (m,)
  first = rnns[0][1]
  for sub, module, _ in rnns:
    same = type(module) is type(first) and all(describe(h) == describe(halves(first)[0]) for h in halves(module))
    if not same or getattr(module, "merge", "concat") != "concat":
      raise ValueError(f"{owner}: layer {sub.name!r} differs from the first; Stacked repeats one layer (and "
                       "Bidirectional with merge_mode='concat' only)")
  if len(set(rates)) > 1:
    raise ValueError(f"{owner}: the Dropout rates between layers differ ({rates}); Stacked has one dropout")
  bidirectional = isinstance(first, layers.Bidirectional)
  module = layers.Stacked(halves(first)[0], num_layers=len(rnns), bidirectional=bidirectional,
                          dropout=rates[0] if rates else 0.0)
  return module, {f"layer_{i}": p for i, (_, _, p) in enumerate(rnns)}


def from_keras(keras_layer, front_end: str = "linen", *, drop_training_options: bool = False):
  """Converts a Keras 3 GRU / LSTM / SimpleRNN, Bidirectional of one, or Sequential of them to gru_jax.

  The result is batch-major and returns the full output sequence, equal to the Keras layer's with
  return_sequences=True (see the module docstring for return_sequences=False, return_state and
  what is refused). `drop_training_options=True` leaves out input dropout, the GRU's and LSTM's
  recurrent_dropout, regularizers and constraints instead of refusing them.

  Returns: with front_end="linen", `(module, variables)`: a `gru_jax.layers.GRU`, `LSTM` or
  `SimpleRNN`, a `Bidirectional` of two, or a `Stacked` (for a Sequential); with
  front_end="nnx", the `gru_jax.nnx` module holding the parameters.
  """
  common.check_front_end("from_keras", front_end)
  keras = _keras()
  if isinstance(keras_layer, keras.Sequential):
    module, params = _stacked_from_keras(keras, keras_layer, drop_training_options)
  elif isinstance(keras_layer, keras.layers.Bidirectional):
    module, params = _bidirectional_from_keras(keras, keras_layer, drop_training_options)
  else:
    module, params = _layer_from_keras(keras, keras_layer, drop_training_options)
  return linen_nnx.on_front_end(front_end, module, params)


def _fn_name(owner: str, name: str, attr: str, fn) -> str:
  found = next((n for n, f in ACTIVATIONS.items() if f is fn), None)
  if found is None:
    raise ValueError(f"{owner}: {name} with {attr}={getattr(fn, '__name__', fn)!r} (Keras has no equal activation; "
                     f"gru_jax.interop.keras3.ACTIVATIONS lists those that convert)")
  return found


def _policy(owner: str, name: str, layer: layers.Recurrent) -> str:
  """The Keras dtype policy name of a gru_jax layer's dtype and param_dtype."""
  variable = jnp.dtype(layer.param_dtype).name
  compute = variable if layer.dtype is None else jnp.dtype(layer.dtype).name
  if compute == variable:
    return variable
  if variable == "float32" and compute in ("bfloat16", "float16"):
    return f"mixed_{compute}"
  raise ValueError(f"{owner}: {name} with dtype={compute} and param_dtype={variable} (Keras' mixed policies compute in "
                   "bfloat16 or float16 with float32 variables)")


def _keras_layer(keras, layer, go_backwards: bool, return_sequences: bool, return_state: bool):
  """The unbuilt Keras layer equal to one gru_jax layer (refusing what Keras cannot hold)."""
  owner, name = "to_keras", type(layer).__name__
  kind = common.exact_kind(owner, layer, "Keras")
  common.refuse(owner, name, [
    (getattr(layer, "layer_norm", False), "layer_norm=True (Keras' cells are not layer-normalised)"),
    (layer.time_major, "time_major=True (Keras 3's recurrent layers are batch-major)"),
    (layer.learn_initial_carry, "learn_initial_carry=True (Keras' layers have no learned initial state)"),
    (kind != "rnn" and layer.recurrent_dropout,
     f"recurrent_dropout={layer.recurrent_dropout} (Keras' GRU and LSTM draw one mask per gate)"),
    (layer.zoneout, f"zoneout={layer.zoneout} (Keras has no zoneout; its evaluation output differs)"),
  ])
  shared = dict(units=layer.features, use_bias=layer.use_bias, go_backwards=go_backwards,
                dtype=_policy(owner, name, layer), return_sequences=return_sequences, return_state=return_state)
  if kind == "rnn":
    common.refuse(owner, name, [(layer.residual, "residual=True (Keras' SimpleRNN has no residual connection)")])
    if layer.activation_fn is not None:
      activation = _fn_name(owner, name, "activation_fn", layer.activation_fn)
    else:
      activation = {v: k for k, v in _RNN_ACTIVATIONS.items()}.get(layer.activation)
    common.refuse(owner, name, [
      (activation is None, f"activation={layer.activation!r} (Keras' SimpleRNN converts tanh, relu, identity)"),
    ])
    return keras.layers.SimpleRNN(**shared, activation=activation, recurrent_dropout=layer.recurrent_dropout)
  fns = dict(activation=_fn_name(owner, name, "activation_fn", layer.activation_fn),
             recurrent_activation=_fn_name(owner, name, "gate_fn", layer.gate_fn))
  if kind == "gru":
    return keras.layers.GRU(**shared, **fns, reset_after=layer.reset_after)
  return keras.layers.LSTM(**shared, **fns, unit_forget_bias=False)


def _set_weights(keras_layer, layer: layers.Recurrent, params: dict[str, Any]) -> None:
  """Assigns gru_jax params to a built Keras layer of the same kind."""
  cell, hidden = keras_layer.cell, layer.features
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  kernel, recurrent_kernel, bias = p["input_kernel"], p["recurrent_kernel"], p.get("bias")
  if isinstance(layer, layers.GRU):
    kernel, recurrent_kernel = _swap_zr(kernel, hidden), _swap_zr(recurrent_kernel, hidden)
    if bias is not None and layer.reset_after:
      b_in, b_rec = common.unfold_gru_biases(bias, p["recurrent_bias_n"], hidden)
      bias = np.stack([_swap_zr(b_in, hidden), _swap_zr(b_rec, hidden)])
    elif bias is not None:
      bias = _swap_zr(bias, hidden)
  for variable, value in ((cell.kernel, kernel), (cell.recurrent_kernel, recurrent_kernel), (cell.bias, bias)):
    if value is not None:
      variable.assign(value.astype(variable.dtype))


def _unpack(module, variables):
  """(linen module, params) of what to_keras converts."""
  if isinstance(module, nnx.RecurrentCell):
    raise TypeError(f"to_keras: expected a gru_jax layer, Bidirectional or Stacked; got the cell "
                    f"{type(module).__name__}")
  module, params = linen_nnx.as_linen("to_keras", module, variables)
  if not isinstance(module, (layers.Recurrent, layers.Bidirectional, layers.Stacked)):
    raise TypeError(f"to_keras: expected a gru_jax GRU, LSTM, SimpleRNN, Bidirectional or Stacked; got "
                    f"{type(module).__name__}")
  return module, params


def to_keras(module, variables: dict[str, Any] | None = None, *, return_sequences: bool = True,
             return_state: bool = False):
  """Builds the Keras 3 layer equal to a gru_jax GRU / LSTM / SimpleRNN, Bidirectional or Stacked.

  Only what Keras holds exactly converts: GRU (both reset_after), LSTM and SimpleRNN (tanh, relu
  or identity), with gate_fn / activation_fn among `ACTIVATIONS`, batch-major, without layer
  norm, learned initial carries or zoneout (recurrent_dropout on SimpleRNN only); Bidirectional
  with any merge. A Stacked of one layer gives that layer (a Bidirectional when
  bidirectional); of more, a built `keras.Sequential` with a Dropout between layers when
  `dropout` (residual=True is refused). Everything else raises a ValueError naming it. An NNX
  module (`gru_jax.nnx`) converts without `variables`.

  Returns: a built Keras layer (or Sequential) holding the weights, with `return_sequences`
  (on the last layer) and `return_state` (refused for a Sequential).
  """
  keras = _keras()
  module, params = _unpack(module, variables)
  in_features = common.in_features("to_keras", params)
  shape = (None, None, in_features)
  if isinstance(module, layers.Stacked):
    common.refuse("to_keras", "Stacked", [
      (module.residual, "residual=True (Keras' recurrent layers have no residual connections)"),
      (module.num_layers > 1 and return_state,
       "num_layers > 1 and return_state=True (a Sequential returns one output)"),
    ])
    template = layers.Bidirectional(module.layer, module.layer) if module.bidirectional else module.layer
    if module.num_layers == 1:
      return _build(keras, template, params["layer_0"], shape, return_sequences, return_state)
    subs, rnns = [], []
    for i in range(module.num_layers):
      last = i == module.num_layers - 1
      rnns.append(_keras_module(keras, template, return_sequences or not last, False))
      subs.append(rnns[-1])
      if not last and module.dropout:
        subs.append(keras.layers.Dropout(module.dropout))
    model = keras.Sequential([keras.Input((None, in_features)), *subs])
    for i, sub in enumerate(rnns):
      _assign(sub, template, params[f"layer_{i}"])
    return model
  return _build(keras, module, params, shape, return_sequences, return_state)


def _keras_module(keras, module, return_sequences: bool, return_state: bool):
  """The unbuilt Keras layer (or Bidirectional) of a gru_jax layer or Bidirectional."""
  if isinstance(module, layers.Bidirectional):
    common.refuse("to_keras", "Bidirectional", [
      (module.merge not in merges.MERGES, f"merge={module.merge!r} (Keras merges by {list(merges.MERGES)})"),
    ])
    forward = _keras_layer(keras, module.forward_rnn, False, return_sequences, return_state)
    backward = _keras_layer(keras, module.backward_rnn, True, return_sequences, return_state)
    return keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode=module.merge)
  return _keras_layer(keras, module, False, return_sequences, return_state)


def _assign(keras_layer, module, params) -> None:
  if isinstance(module, layers.Bidirectional):
    _set_weights(keras_layer.forward_layer, module.forward_rnn, params["forward_rnn"])
    _set_weights(keras_layer.backward_layer, module.backward_rnn, params["backward_rnn"])
  else:
    _set_weights(keras_layer, module, params)


def _build(keras, module, params, shape, return_sequences: bool, return_state: bool):
  keras_layer = _keras_module(keras, module, return_sequences, return_state)
  keras_layer.build(shape)
  _assign(keras_layer, module, params)
  return keras_layer


def _directions(keras, keras_layer) -> list[str]:
  """The kind ("gru", "lstm", "rnn") of each direction of a Keras RNN or Bidirectional layer."""
  if isinstance(keras_layer, keras.layers.Bidirectional):
    return [_kind(keras, keras_layer.forward_layer), _kind(keras, keras_layer.backward_layer)]
  return [_kind(keras, keras_layer)]


def carry_from_keras(keras_layer, states) -> Any:
  """Keras' states (initial_state, or the return_state outputs after the first) -> the carry of
  the `from_keras` module: h, (c, h) for LSTM, a (forward, backward) pair for Bidirectional."""
  keras = _keras()
  kinds = _directions(keras, keras_layer)
  states = [jnp.asarray(keras.ops.convert_to_numpy(getattr(s, "value", s))) for s in states]
  want = sum(2 if k == "lstm" else 1 for k in kinds)
  if len(states) != want:
    raise ValueError(f"carry_from_keras: {keras_layer.name!r} has {want} states; got {len(states)}")
  carries = []
  for kind in kinds:
    if kind == "lstm":
      (h, c), states = states[:2], states[2:]
      carries.append((c, h))
    else:
      carries.append(states[0])
      states = states[1:]
  return tuple(carries) if len(kinds) == 2 else carries[0]


def carry_to_keras(keras_layer, carry) -> list:
  """The carry of the `from_keras` module -> Keras' states list ([h], [h, c] for LSTM; forward
  then backward for Bidirectional), as numpy arrays."""
  keras = _keras()
  kinds = _directions(keras, keras_layer)
  carries = carry if len(kinds) == 2 else (carry,)
  states = []
  for kind, c in zip(kinds, carries):
    states.extend([c[1], c[0]] if kind == "lstm" else [c])
  return [np.asarray(s) for s in states]
