"""Flax's own cells <-> gru_jax cells, with their parameters (linen and NNX).

`from_flax(flax_cell, variables)` returns the gru_jax cell that computes the same step, with the
parameters moved into gru_jax's layout; `to_flax` goes back. Flax keeps one Dense per gate, gru_jax
one kernel per input and state with the gate blocks side by side (`gru_jax.cells`):

  GRUCell     linen: ir, iz, in (kernel, bias), hr, hz (kernel), hn (kernel, bias)
                -> input_kernel = [ir | iz | in], recurrent_kernel = [hr | hz | hn],
                   bias = [b_ir | b_iz | b_in], recurrent_bias_n = b_hn.
              NNX: dense_i (kernel [D, 3H], bias), dense_h (kernel [H, 3H], no bias): the same
                blocks; recurrent_bias_n = 0 (to_flax refuses a nonzero one: nnx.GRUCell has none).
  LSTMCell,   linen: ii, if, ig, io (kernel), hi, hf, hg, ho (kernel, bias); NNX LSTMCell: the
  Optimized-  same names (if_ for if); NNX OptimizedLSTMCell: dense_i [D, 4H], dense_h [H, 4H]
  LSTMCell      with bias -> input_kernel [i | f | g | o], recurrent_kernel, bias = the h biases.
  SimpleCell  linen: i (kernel, bias), h (kernel); NNX: dense_i (kernel, bias), dense_h (kernel)
                -> input_kernel, recurrent_kernel, bias; `residual` and `activation_fn` carry over.

The cell's fields carry over too (features, gate_fn, activation_fn, the initialisers, carry_init,
dtype, param_dtype), and gru_jax's LSTM gets forget_bias=0.0, Flax's initialisation. The gru_jax
cells take the hidden width from the carry, as Flax's do, so the converted cell runs in the same
program (`nn.RNN`, `nnx.RNN`, a hand loop). What Flax's cells cannot hold (layer norm, the GRU
without reset-after, the ablation variants, a recurrent dropout or zoneout, which are layer options
anyway) raises a ValueError naming it.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx as flax_nnx

from gru_jax import cells, layers
from gru_jax import nnx as gj_nnx
from gru_jax.interop import common

_GRU_GATES, _LSTM_GATES = ("r", "z", "n"), ("i", "f", "g", "o")
# Flax class -> (kind, gru_jax linen class, gru_jax NNX class).
_LINEN = {
  nn.GRUCell: ("gru", layers.GRUCell), nn.LSTMCell: ("lstm", layers.LSTMCell),
  nn.OptimizedLSTMCell: ("lstm", layers.OptimizedLSTMCell), nn.SimpleCell: ("rnn", layers.SimpleCell),
}
_NNX = {
  flax_nnx.GRUCell: ("gru", gj_nnx.GRUCell), flax_nnx.LSTMCell: ("lstm", gj_nnx.LSTMCell),
  flax_nnx.OptimizedLSTMCell: ("lstm", gj_nnx.OptimizedLSTMCell), flax_nnx.SimpleCell: ("rnn", gj_nnx.SimpleCell),
}
_TO_LINEN = {layers.GRUCell: nn.GRUCell, layers.LSTMCell: nn.LSTMCell, layers.OptimizedLSTMCell: nn.OptimizedLSTMCell,
             layers.SimpleRNNCell: nn.SimpleCell, layers.SimpleCell: nn.SimpleCell}
_TO_NNX = {gj_nnx.GRUCell: flax_nnx.GRUCell, gj_nnx.LSTMCell: flax_nnx.LSTMCell,
           gj_nnx.OptimizedLSTMCell: flax_nnx.OptimizedLSTMCell, gj_nnx.SimpleRNNCell: flax_nnx.SimpleCell,
           gj_nnx.SimpleCell: flax_nnx.SimpleCell}
_INITIALISERS = ("kernel_init", "recurrent_kernel_init", "bias_init")


def _cat(blocks) -> np.ndarray:
  return np.concatenate([np.asarray(b) for b in blocks], axis=-1)


def _split(a, num: int) -> list[np.ndarray]:
  return np.split(np.asarray(a), num, axis=-1)


def _gates(kind: str) -> tuple[str, ...]:
  return {"gru": _GRU_GATES, "lstm": _LSTM_GATES, "rnn": ("",)}[kind]


def _from_per_gate(kind: str, dense: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
  """gru_jax params from Flax's per-gate Dense params ({"ir": {"kernel", "bias"}, ...})."""
  gates = _gates(kind)
  params = {"input_kernel": _cat(dense[f"i{g}"]["kernel"] for g in gates),
            "recurrent_kernel": _cat(dense[f"h{g}"]["kernel"] for g in gates)}
  if kind == "gru":
    params["bias"] = _cat(dense[f"i{g}"]["bias"] for g in gates)
    params["recurrent_bias_n"] = np.asarray(dense["hn"]["bias"])
  elif kind == "lstm":
    params["bias"] = _cat(dense[f"h{g}"]["bias"] for g in gates)
  else:
    params["bias"] = np.asarray(dense["i"]["bias"])
  return params


def _to_per_gate(kind: str, params: dict[str, Any], hidden: int) -> dict[str, dict[str, np.ndarray]]:
  """Flax's per-gate Dense params from gru_jax params (zero biases where gru_jax has use_bias=False)."""
  gates = _gates(kind)
  zeros = np.zeros((len(gates) * hidden,), np.asarray(params["input_kernel"]).dtype)
  bias = _split(params.get("bias", zeros), len(gates))
  dense = {f"i{g}": {"kernel": k} for g, k in zip(gates, _split(params["input_kernel"], len(gates)))}
  dense.update({f"h{g}": {"kernel": k} for g, k in zip(gates, _split(params["recurrent_kernel"], len(gates)))})
  if kind == "gru":
    for g, b in zip(gates, bias):
      dense[f"i{g}"]["bias"] = b
    dense["hn"]["bias"] = np.asarray(params.get("recurrent_bias_n", zeros[:hidden]))
  elif kind == "lstm":
    for g, b in zip(gates, bias):
      dense[f"h{g}"]["bias"] = b
  else:
    dense["i"]["bias"] = bias[0]
  return dense


def _fields(kind: str, cell) -> dict[str, Any]:
  """The gru_jax cell's fields equal to a Flax cell's (linen or NNX; carry_init is the caller's)."""
  out = {name: getattr(cell, name) for name in ("dtype", "param_dtype", "activation_fn")}
  if kind != "rnn":
    out["gate_fn"] = cell.gate_fn
  else:
    out["residual"] = cell.residual
    named = {fn: name for name, fn in cells.ACTIVATIONS.items()}.get(out["activation_fn"])
    if named is not None:  # tanh and relu by name, as torch.nn.RNN and our SimpleRNN name them
      out["activation"] = named
      del out["activation_fn"]
  if kind == "lstm":
    out["forget_bias"] = 0.0
  return out


def from_flax(flax_cell, variables: dict[str, Any] | None = None):
  """The gru_jax cell equal to a Flax `GRUCell`, `LSTMCell`, `OptimizedLSTMCell` or `SimpleCell`.

  Args:
    flax_cell: a `flax.linen` cell (with `variables`, its `{"params": ...}`) or a `flax.nnx` cell
      (which holds its parameters).

  Returns: for a linen cell, `(gru_jax.layers cell, variables)`; for an NNX cell, the
  `gru_jax.nnx` cell holding the parameters. Either computes the Flax cell's step.
  """
  if isinstance(flax_cell, flax_nnx.Module):
    return _from_nnx(flax_cell)
  if type(flax_cell) not in _LINEN:
    raise TypeError(f"from_flax: expected flax.linen GRUCell, LSTMCell, OptimizedLSTMCell or SimpleCell, or their "
                    f"flax.nnx versions; got {type(flax_cell).__name__}")
  if variables is None or "params" not in variables:
    raise ValueError(f"from_flax: a linen {type(flax_cell).__name__} needs its variables ({{'params': ...}})")
  kind, our_class = _LINEN[type(flax_cell)]
  fields = dict(_fields(kind, flax_cell), carry_init=flax_cell.carry_init,
                **{name: getattr(flax_cell, name) for name in _INITIALISERS})
  params = _from_per_gate(kind, variables["params"])
  dtype = jnp.dtype(flax_cell.param_dtype)
  return our_class(flax_cell.features, **fields), {"params": {k: jnp.asarray(v, dtype) for k, v in params.items()}}


def _value(param) -> np.ndarray:
  return np.asarray(param.get_value())


def _from_nnx(cell):
  if type(cell) not in _NNX:
    raise TypeError(f"from_flax: expected flax.nnx GRUCell, LSTMCell, OptimizedLSTMCell or SimpleCell; got "
                    f"{type(cell).__name__}")
  kind, our_class = _NNX[type(cell)]
  if kind == "lstm" and isinstance(cell, flax_nnx.LSTMCell):
    dense = {f"{side}{g}": {"kernel": _value(getattr(cell, f"{side}{g}" + ("_" if (side, g) == ("i", "f") else "")).kernel)}
             for side in "ih" for g in _LSTM_GATES}
    for g in _LSTM_GATES:
      dense[f"h{g}"]["bias"] = _value(getattr(cell, f"h{g}").bias)
    params = _from_per_gate(kind, dense)
  else:
    params = {"input_kernel": _value(cell.dense_i.kernel), "recurrent_kernel": _value(cell.dense_h.kernel)}
    params["bias"] = _value(cell.dense_h.bias if kind == "lstm" else cell.dense_i.bias)
    if kind == "gru":
      params["recurrent_bias_n"] = np.zeros((cell.hidden_features,), params["bias"].dtype)
  ours = our_class(cell.in_features, cell.hidden_features, rngs=flax_nnx.Rngs(0), carry_init=cell.carry_init,
                   **_fields(kind, cell))
  for name, value in params.items():
    getattr(ours, name).set_value(jnp.asarray(value, ours.param_dtype))
  return ours


def _kind_of(cell, table) -> str:
  flax_class = table.get(type(cell))
  if flax_class is None:
    raise ValueError(f"to_flax: {type(cell).__name__} has no Flax equivalent; GRUCell, LSTMCell, OptimizedLSTMCell, "
                     "SimpleRNNCell and SimpleCell convert")
  return {nn.GRUCell: "gru", flax_nnx.GRUCell: "gru", nn.SimpleCell: "rnn", flax_nnx.SimpleCell: "rnn"}.get(flax_class, "lstm")


def _check(cell, spec, kind: str) -> None:
  """Refuses what Flax's cells cannot compute."""
  common.refuse("to_flax", type(cell).__name__, [
    (getattr(spec, "layer_norm", False), "layer_norm=True (Flax's cells are not layer-normalised)"),
    (kind == "gru" and not spec.reset_after, "reset_after=False (Flax's GRUCell is the reset-after form)"),
  ])


def _flax_fields(kind: str, spec) -> dict[str, Any]:
  if kind == "rnn":
    act = spec.act()
    return dict(activation_fn=act if callable(act) else cells.activation_fn(act), residual=spec.residual)
  return dict(gate_fn=spec.gate_fn, activation_fn=spec.activation_fn)


def to_flax(cell, variables: dict[str, Any] | None = None):
  """The Flax cell equal to a gru_jax cell: the inverse of `from_flax`.

  Args:
    cell: a `gru_jax.layers` cell (with `variables`) or a `gru_jax.nnx` cell.

  Returns: for a linen cell, `(flax.linen cell, variables)`; for an NNX cell, the `flax.nnx` cell
  holding the parameters. A gru_jax cell without biases gets zero biases.
  """
  if isinstance(cell, gj_nnx.RecurrentCell):
    return _to_nnx(cell)
  if not isinstance(cell, layers.RecurrentCell):
    raise TypeError(f"to_flax: expected a gru_jax cell (gru_jax.GRUCell, ...) or a gru_jax.nnx cell; got "
                    f"{type(cell).__name__}")
  kind = _kind_of(cell, _TO_LINEN)
  spec = cell.spec()
  _check(cell, spec, kind)
  if variables is None or "params" not in variables:
    raise ValueError(f"to_flax: a linen {type(cell).__name__} needs its variables ({{'params': ...}})")
  fields = dict(_flax_fields(kind, spec), carry_init=cell.carry_init, dtype=cell.dtype, param_dtype=cell.param_dtype,
                **{name: getattr(cell, name) for name in _INITIALISERS})
  dense = _to_per_gate(kind, variables["params"], cell.features)
  dtype = jnp.dtype(cell.param_dtype)
  params = {name: {k: jnp.asarray(v, dtype) for k, v in d.items()} for name, d in dense.items()}
  return _TO_LINEN[type(cell)](cell.features, **fields), {"params": params}


def _to_nnx(cell):
  kind = _kind_of(cell, _TO_NNX)
  _check(cell, cell.spec, kind)
  params = {k: np.asarray(v) for k, v in cell.params().items()}
  if kind == "gru" and np.any(params.get("recurrent_bias_n", 0.0) != 0):
    raise ValueError(f"to_flax: {type(cell).__name__} with a nonzero recurrent_bias_n (flax.nnx.GRUCell has no bias on "
                     "h @ W_hn; flax.linen.GRUCell has one: convert the linen cell instead)")
  flax_class = _TO_NNX[type(cell)]
  carry_init = {} if cell.carry_init is None else {"carry_init": cell.carry_init}  # Flax warns when given
  out = flax_class(cell.in_features, cell.features, rngs=flax_nnx.Rngs(0), dtype=cell.dtype,
                   param_dtype=cell.param_dtype, **carry_init, **_flax_fields(kind, cell.spec))
  dtype = jnp.dtype(cell.param_dtype)
  hidden = cell.features
  bias = params.get("bias", np.zeros((params["input_kernel"].shape[-1],), dtype))
  if flax_class is flax_nnx.LSTMCell:
    dense = _to_per_gate(kind, {**params, "bias": bias}, hidden)
    for key, d in dense.items():
      linear = getattr(out, key + ("_" if key == "if" else ""))
      linear.kernel.set_value(jnp.asarray(d["kernel"], dtype))
      if "bias" in d:
        linear.bias.set_value(jnp.asarray(d["bias"], dtype))
    return out
  out.dense_i.kernel.set_value(jnp.asarray(params["input_kernel"], dtype))
  out.dense_h.kernel.set_value(jnp.asarray(params["recurrent_kernel"], dtype))
  (out.dense_h if kind == "lstm" else out.dense_i).bias.set_value(jnp.asarray(bias, dtype))
  return out
