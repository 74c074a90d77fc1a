"""Flax linen <-> NNX: gru_jax's modules of one front-end as the other's, with their parameters.

`from_linen(module, variables)` gives the `gru_jax.nnx` module equal to a linen layer, cell,
`Bidirectional` or `Stacked`, holding the parameters; `to_linen(module)` gives `(linen module,
variables)` back. The parameters keep their names, so `linen_variables` and
`load_linen_variables` move them between equal modules.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from gru_jax import layers, specs
from gru_jax.interop import common
from gru_jax.nnx import (LAYER_OPTIONS, MODULES, CELL_CLASSES, LAYER_CLASSES, Bidirectional, OptimizedLSTMCell, Recurrent,
                         RecurrentCell, SimpleCell, Stacked)

Array = jax.Array

# linen class <-> NNX class, for the converters.
_LAYERS = {layers.LAYER_CLASSES[name]: LAYER_CLASSES[name] for name in specs.SPECS}
_CELLS = {layers.CELL_CLASSES[name]: CELL_CLASSES[name] for name in specs.SPECS}
_CELLS.update({layers.OptimizedLSTMCell: OptimizedLSTMCell, layers.SimpleCell: SimpleCell})


def linen_variables(module: nnx.Module) -> dict[str, Any]:
  """The NNX module's parameters as linen variables, `{"params": {...}}`, under the same names."""
  return {"params": nnx.to_pure_dict(nnx.state(module, nnx.Param))}


def load_linen_variables(module: nnx.Module, variables: dict[str, Any]) -> None:
  """Sets the NNX module's parameters, in place, from linen variables of the equal linen module;
  a missing, extra or misshaped parameter raises a ValueError naming it."""
  state = nnx.state(module, nnx.Param)
  shapes = lambda tree: {jax.tree_util.keystr(k): jnp.shape(x) for k, x in jax.tree_util.tree_leaves_with_path(tree)}
  want, got = shapes(nnx.to_pure_dict(state)), shapes(dict(variables["params"]))
  diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:5]
  if diff:
    raise ValueError(f"load_linen_variables: the parameters differ from the {type(module).__name__}'s at {diff} "
                     f"(expected shapes {[want.get(k) for k in diff]}, got {[got.get(k) for k in diff]})")
  nnx.replace_by_pure_dict(state, variables["params"])
  nnx.update(module, state)


def layer_kwargs(linen_layer: layers.Recurrent) -> dict[str, Any]:
  """The NNX layer's keyword arguments (options, dtypes) equal to a linen layer's fields."""
  cell_spec = linen_layer.make_cell(parent=None).spec()
  spec_fields = {f.name: getattr(cell_spec, f.name) for f in dataclasses.fields(cell_spec) if f.name != "features"}
  layer_fields = {name: getattr(linen_layer, name) for name in LAYER_OPTIONS}
  return dict(**spec_fields, **layer_fields, dtype=linen_layer.dtype, param_dtype=linen_layer.param_dtype,
              learn_initial_carry=linen_layer.learn_initial_carry)


def nnx_class(linen_layer) -> type[Recurrent]:
  """The NNX layer class of a linen layer (`GRU` for `gru_jax.layers.GRU`, ...)."""
  if type(linen_layer) not in _LAYERS:
    raise TypeError(f"from_linen: expected a gru_jax linen layer or Stacked of one; got {type(linen_layer).__name__}")
  return _LAYERS[type(linen_layer)]


def _nnx_carry_init(linen_carry_init: Callable) -> Callable | None:
  """The NNX cell's carry_init for a linen cell's: None (zeros) for linen's default, zeros."""
  return None if linen_carry_init is layers.RecurrentCell.carry_init else linen_carry_init


def from_linen(module, variables: dict[str, Any], *, rngs: nnx.Rngs | None = None) -> nnx.Module:
  """The NNX module equal to a gru_jax linen layer (`GRU`, ...), `Bidirectional` of two, or `Stacked`,
  holding `variables`' parameters. `rngs` seeds the dropout streams (default `nnx.Rngs(0)`)."""
  rngs = nnx.Rngs(0) if rngs is None else rngs
  in_features = common.in_features("from_linen", variables["params"])
  if isinstance(module, layers.Stacked):
    nnx_module = Stacked(nnx_class(module.layer), in_features, module.layer.features, rngs=rngs,
                         num_layers=module.num_layers, bidirectional=module.bidirectional, dropout=module.dropout,
                         residual=module.residual, layer_options=layer_kwargs(module.layer))
  elif isinstance(module, layers.Bidirectional):
    make = lambda layer: nnx_class(layer)(in_features, layer.features, rngs=rngs, **layer_kwargs(layer))
    nnx_module = Bidirectional(make(module.forward_rnn), make(module.backward_rnn), merge=module.merge)
  elif isinstance(module, layers.RecurrentCell) and type(module) in _CELLS:
    cell_spec = module.spec()
    options = {f.name: getattr(cell_spec, f.name) for f in dataclasses.fields(cell_spec) if f.name != "features"}
    nnx_module = _CELLS[type(module)](in_features, module.features, rngs=rngs, dtype=module.dtype,
                                      param_dtype=module.param_dtype, carry_init=_nnx_carry_init(module.carry_init),
                                      **options)
  else:
    nnx_module = nnx_class(module)(in_features, module.features, rngs=rngs, **layer_kwargs(module))
  load_linen_variables(nnx_module, variables)
  return nnx_module


def _linen_layer(nnx_layer: Recurrent, **extra) -> layers.Recurrent:
  linen_class = {v: k for k, v in _LAYERS.items()}[type(nnx_layer)]
  spec_fields = {f.name: getattr(nnx_layer.spec, f.name) for f in dataclasses.fields(nnx_layer.spec)}
  layer_fields = {name: getattr(nnx_layer.options, name) for name in LAYER_OPTIONS}
  return linen_class(**spec_fields, **layer_fields, dtype=nnx_layer.options.dtype,
                     param_dtype=nnx_layer.param_dtype, learn_initial_carry=nnx_layer.learn_initial_carry, **extra)


def to_linen(module: nnx.Module) -> tuple[nnx.Module, dict[str, Any]]:
  """`(linen module, variables)` equal to an NNX layer, `Bidirectional` or `Stacked` of this module."""
  if isinstance(module, Stacked):
    first = module.layer_0.forward_rnn if module.bidirectional else module.layer_0
    linen_module = layers.Stacked(_linen_layer(first), num_layers=module.num_layers, bidirectional=module.bidirectional,
                                  dropout=module.dropout.rate, residual=module.residual)
  elif isinstance(module, Bidirectional):
    linen_module = layers.Bidirectional(_linen_layer(module.forward_rnn), _linen_layer(module.backward_rnn), merge=module.merge)
  elif isinstance(module, RecurrentCell):
    linen_class = {v: k for k, v in _CELLS.items()}[type(module)]
    fields = {f.name: getattr(module.spec, f.name) for f in dataclasses.fields(module.spec)}
    carry_init = {} if module.carry_init is None else {"carry_init": module.carry_init}
    linen_module = linen_class(**fields, dtype=module.dtype, param_dtype=module.param_dtype, **carry_init)
  elif isinstance(module, Recurrent):
    linen_module = _linen_layer(module)
  else:
    raise TypeError(f"to_linen: expected a gru_jax.nnx layer, cell, Bidirectional or Stacked; got {type(module).__name__}")
  return linen_module, linen_variables(module)


def on_front_end(front_end: str, module, params: dict[str, Any]):
  """A converted linen module with its params, as `from_*` returns it: `(module, variables)` for
  linen, the NNX module holding them for "nnx"."""
  if front_end == "nnx":
    return from_linen(module, {"params": params})
  return module, {"params": params}


def as_linen(owner: str, module, variables: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
  """`(linen module, params)` of a linen module with its variables, or of an NNX module alone."""
  if isinstance(module, MODULES):
    module, variables = to_linen(module)
  elif variables is None:
    raise ValueError(f"{owner}: a linen module needs its variables")
  elif "params" not in variables:
    raise ValueError(f"{owner}: the variables hold no 'params'; expected {{'params': ...}}")
  return module, variables["params"]
