"""Flax NNX front-end: the same cells and layers as `gru_jax.layers`, as `flax.nnx` modules.

    from flax import nnx
    import gru_jax as gj

    layer = gj.nnx.GRU(16, 32, rngs=nnx.Rngs(0))        # in_features, features; eager parameters
    ys = layer(xs)                                       # xs [..., T, 16] -> ys [..., T, 32]
    cell = gj.nnx.LSTMCell(16, 32, rngs=nnx.Rngs(0))     # one step; works in nnx.RNN
    ys = nnx.RNN(cell)(xs)

Each module is a front-end of a cell spec (`gru_jax.specs`): its parameters are `nnx.Param`s named
as in the linen modules (input_kernel, recurrent_kernel, bias, ...), and the layers run
`gru_jax.recurrent.run`, the body the linen layers run, so the outputs are equal for equal
parameters. `gru_jax.interop.to_linen` and `from_linen` convert modules with their parameters both
ways (also reachable here, as `gru_jax.nnx.to_linen`, ...).

Cell options (`reset_after`, `layer_norm`, `forget_bias`, the SRU's `version`, ...) are keyword
arguments, checked by the spec. As in `gru_jax.layers`, the classes are made from the registry
(`gru_jax.specs.SPECS`; `CELL_CLASSES`, `LAYER_CLASSES`), each constructor showing its cell's options. `sharding={"input_kernel": (None, "model"), ...}` annotates
parameters with partition specs (`nnx.Param(..., out_sharding=...)`; used under `jax.set_mesh`).
Recurrent dropout and zoneout draw from the `dropout` stream of the `rngs` given at construction
(or at call); `module.eval()` turns them off (zoneout then uses its expectation), `module.train()`
on again, as for `nnx.Dropout`.
"""

import dataclasses
import functools
import inspect
from typing import Any, Callable, ClassVar, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from gru_jax import merges, recurrent, specs

Array = jax.Array
Carry = Any


def _spec(owner: str, spec_class: type[specs.CellSpec], features: int, options: dict[str, Any]) -> specs.CellSpec:
  """The spec with these options; unknown option names raise a TypeError that lists the valid ones."""
  unknown = sorted(set(options) - {f.name for f in dataclasses.fields(spec_class)})
  if unknown:
    raise TypeError(f"{owner}: {unknown} are not options of this cell; expected some of {sorted(specs.options(spec_class))} "
                    "(or the shared kernel_init, recurrent_kernel_init, bias_init, use_bias)")
  return spec_class(features=features, **options)


def _declare(module: nnx.Module, param_specs: dict, rngs: nnx.Rngs, param_dtype: Any, sharding: Mapping | None) -> None:
  """Creates one `nnx.Param` attribute per parameter of `param_specs`, with its sharding annotation."""
  sharding = dict(sharding or {})
  unknown = sorted(set(sharding) - set(param_specs))
  if unknown:
    raise ValueError(f"{type(module).__name__}: sharding names {unknown}, which are not parameters; expected some of {sorted(param_specs)}")
  for name, (init, shape) in param_specs.items():
    metadata = {"out_sharding": tuple(sharding[name])} if name in sharding else {}
    setattr(module, name, nnx.Param(init(rngs.params(), shape, param_dtype), **metadata))


def _cell_params(module) -> dict[str, Array]:
  """The values of the spec's parameters (`nnx.Param` attributes named as in `gru_jax.cells`)."""
  return {name: getattr(module, name).get_value() for name in module.spec.param_specs(module.in_features)}


def _dropout_stream(rngs: nnx.Rngs | None, needed: bool):
  """A fork of the `dropout` stream (or the default one) when `needed` and there is one; else None
  (the masks then need `rngs` at call time)."""
  if not needed or rngs is None:
    return None
  try:
    return rngs["dropout"].fork()
  except KeyError:  # Rngs without a dropout or default stream, e.g. Rngs(params=...)
    return None


class RecurrentCell(nnx.RNNCellBase):
  """Base of the NNX cells: one step, `(carry, inputs) -> (carry, y)`, usable in `nnx.RNN`.

  A drop-in for Flax's NNX cells (`nnx.GRUCell`, `nnx.LSTMCell`, `nnx.OptimizedLSTMCell`,
  `nnx.SimpleCell`): the same positional (in_features, hidden size) and keyword arguments
  (`hidden_features`, `gate_fn`, `activation_fn`, initialisers, `carry_init`, `dtype`,
  `param_dtype`, `rngs`), the same `initialize_carry(input_shape, rngs, carry_init)`. The module
  holds its parameters and nothing else: no RNG state (the `rngs` draw the parameters at
  construction), so `nnx.state(cell)` is all `nnx.Param` and checkpoints as it is.

  Args:
    in_features: D, the last axis of the inputs.
    features: H, the hidden size (or `hidden_features=`, Flax's name).
    rngs: the `params` stream draws the parameters.
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: dtype of the parameters.
    carry_init: the default initializer of `initialize_carry` (zeros).
    sharding: parameter name -> partition spec axes, for `nnx.Param(out_sharding=...)`.
    **options: the cell's options (see its spec in `gru_jax.specs`) and kernel_init,
      recurrent_kernel_init, bias_init, use_bias.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.CellSpec

  def __init__(self, in_features: int, features: int | None = None, *, rngs: nnx.Rngs, hidden_features: int | None = None,
               dtype: Any = None, param_dtype: Any = jnp.float32, carry_init: Callable | None = None,
               sharding: Mapping[str, tuple] | None = None, **options):
    owner = type(self).__name__
    specs.check_positive_int(owner, "in_features", in_features)
    if features is None and hidden_features is None:
      raise TypeError(f"{owner}: give the hidden size, as features (the second argument) or hidden_features")
    if features is not None and hidden_features is not None and features != hidden_features:
      raise TypeError(f"{owner}: features={features} and hidden_features={hidden_features} name the same size twice")
    features = hidden_features if features is None else features
    self.spec = _spec(owner, self.spec_class, features, options)
    self.in_features, self.features = in_features, features
    self.dtype, self.param_dtype, self.carry_init = dtype, param_dtype, carry_init
    _declare(self, self.spec.param_specs(in_features), rngs, param_dtype, sharding)

  @property
  def hidden_features(self) -> int:
    """Flax's name for `features`."""
    return self.features

  def params(self) -> dict[str, Array]:
    """The parameters as a dict, in the layout of `gru_jax.cells`."""
    return _cell_params(self)

  def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
    """One step: carry (leaves [..., H]) and inputs [..., D] -> (new carry, output [..., H])."""
    return recurrent.step(type(self).__name__, self.spec, self.params(), carry, inputs, self.dtype)

  def initialize_carry(self, input_shape: tuple[int, ...], rngs: nnx.Rngs | nnx.RngStream | None = None,
                       carry_init: Callable | None = None) -> Carry:
    """The carry for inputs of `input_shape` ([..., D]): zeros, or `carry_init(key, shape, dtype)`
    per leaf (this call's carry_init, else the module's), with keys from the `carry` stream of
    `rngs` (an `nnx.Rngs` or a stream, as `nnx.RNN` passes)."""
    zeros = self.spec.zero_carry(tuple(input_shape[:-1]), self.param_dtype)
    carry_init = self.carry_init if carry_init is None else carry_init
    if carry_init is None:
      return zeros
    if rngs is None:
      raise ValueError(f"{type(self).__name__}: initialize_carry with carry_init needs rngs")
    stream = rngs.carry if isinstance(rngs, nnx.Rngs) else rngs
    return jax.tree_util.tree_map(lambda z: carry_init(stream(), z.shape, z.dtype), zeros)

  @property
  def num_feature_axes(self) -> int:
    return 1


def _with_options(root: type, spec_class: type[specs.CellSpec], name: str, doc: str, attrs: dict) -> type:
  """A subclass of `root` for `spec_class` whose constructor shows the spec's options as keyword
  arguments (for `help()` and `inspect.signature`) in place of `**options`."""
  root_init = root.__init__

  def __init__(self, *args, **kwargs):
    root_init(self, *args, **kwargs)

  signature = inspect.signature(root_init)
  fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
  taken = {p.name for p in fixed}
  options = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
             for f in dataclasses.fields(spec_class) if f.name not in taken and f.name != "features"]
  __init__.__signature__ = signature.replace(parameters=fixed + options)
  __init__.__doc__ = root_init.__doc__
  namespace = {"__module__": __name__, "__qualname__": name, "__doc__": doc, "__init__": __init__,
               "__signature__": signature.replace(parameters=fixed[1:] + options), **attrs}
  return type(name, (root,), namespace)


_NNX_NOTE = """The NNX {kind} of `gru_jax.specs.{spec}`: its options are keyword arguments of the
constructor, beside `{root}`'s."""

# The NNX cells by registry name ("gru" -> GRUCell), one per spec; each also a name of this module.
CELL_CLASSES: dict[str, type[RecurrentCell]] = {
  name: _with_options(RecurrentCell, s, s.cell_name, specs.describe(s) + "\n\n" + _NNX_NOTE.format(
    kind="cell", spec=s.__name__, root="RecurrentCell"), {"spec_class": s})
  for name, s in specs.SPECS.items()
}
globals().update({c.__name__: c for c in CELL_CLASSES.values()})


class OptimizedLSTMCell(CELL_CLASSES["lstm"]):
  """`nnx.OptimizedLSTMCell`'s name for `LSTMCell` (one matmul per input and state already);
  forget_bias=0.0 gives Flax's initial forget bias."""


class SimpleCell(CELL_CLASSES["rnn"]):
  """`nnx.SimpleCell`'s name for `SimpleRNNCell` (activation_fn, residual)."""


# The names of the layer options (gru_jax.recurrent.LayerOptions) an NNX layer takes, dtype apart.
LAYER_OPTIONS = [f.name for f in dataclasses.fields(recurrent.LayerOptions) if f.name != "dtype"]


class Recurrent(nnx.Module):
  """Base of the NNX layers: a cell run over time with `gru_jax.recurrent.run`.

  Args:
    in_features, features, rngs, dtype, param_dtype, sharding: as for the cells.
    learn_initial_carry: learn the initial carry (a parameter `initial_carry`, zeros at init).
    unroll, remat, time_major, custom_vjp, parallel, recurrent_dropout, zoneout, sequence_axis, kernel:
      see `gru_jax.recurrent.LayerOptions`.
    deterministic: turn off recurrent dropout and use zoneout's expectation; `eval()` sets it.
    **options: the cell's options.
  """

  cell_class: ClassVar[type[RecurrentCell]] = RecurrentCell

  def __init__(self, in_features: int, features: int, *, rngs: nnx.Rngs, dtype: Any = None,
               param_dtype: Any = jnp.float32, sharding: Mapping[str, tuple] | None = None,
               learn_initial_carry: bool = False, unroll: int | None = None, remat: bool = False,
               time_major: bool = False, custom_vjp: bool = True, parallel: bool | None = None,
               recurrent_dropout: float = 0.0, zoneout: float = 0.0, sequence_axis: str | None = None,
               kernel: str = "auto", deterministic: bool = False, **options):
    owner = type(self).__name__
    specs.check_positive_int(owner, "features", features)
    specs.check_positive_int(owner, "in_features", in_features)
    self.spec = _spec(owner, self.cell_class.spec_class, features, options)
    self.options = recurrent.LayerOptions(
      unroll=unroll, remat=remat, time_major=time_major, custom_vjp=custom_vjp, parallel=parallel,
      recurrent_dropout=recurrent_dropout, zoneout=zoneout, sequence_axis=sequence_axis, kernel=kernel, dtype=dtype,
    )
    self.options.check(owner, self.spec)
    self.in_features, self.features, self.param_dtype = in_features, features, param_dtype
    self.learn_initial_carry, self.deterministic = learn_initial_carry, deterministic
    param_specs = dict(self.spec.param_specs(in_features))
    if learn_initial_carry:
      param_specs["initial_carry"] = (lambda key, shape, dtype: self.spec.zero_carry((), dtype), ())
    _declare(self, param_specs, rngs, param_dtype, sharding)
    stream = _dropout_stream(rngs, bool(recurrent_dropout or zoneout))
    self.rngs = nnx.data(None) if stream is None else stream

  def params(self) -> dict[str, Array]:
    """The cell's parameters as a dict, in the layout of `gru_jax.cells`."""
    return _cell_params(self)

  def initialize_carry(self, batch_shape: tuple[int, ...]) -> Carry:
    """The carry a sequence starts from without `initial_carry`: the learned one broadcast to
    `batch_shape` (with `learn_initial_carry`), else zeros; leaves [*batch_shape, H] in param_dtype."""
    learned = self.initial_carry.get_value() if self.learn_initial_carry else None
    return recurrent.initial_carry_of(type(self).__name__, self.spec, None, learned, tuple(batch_shape), self.param_dtype)

  def step(self, carry: Carry, x: Array, *, reset: Array | None = None, deterministic: bool | None = None,
           rngs: nnx.Rngs | None = None) -> tuple[Carry, Array]:
    """Advances one time step, as the linen layers' `step`: `(carry, x [..., D]) -> (new carry,
    y [..., H])`, equal to this layer step by step; `reset` restarts rows from `initialize_carry`."""
    fresh = lambda: self.initialize_carry(jnp.shape(x)[:-1])
    call = functools.partial(self.__call__, deterministic=deterministic, rngs=rngs)
    return recurrent.one_step(call, carry, x, reset, fresh, self.options.time_major)

  def __call__(self, xs: Array, *, seq_lengths: Array | None = None, initial_carry: Carry | None = None,
               return_carry: bool = False, reverse: bool = False, deterministic: bool | None = None,
               rngs: nnx.Rngs | None = None, resets: Array | None = None,
               reset_carry: Carry | None = None, return_carries: bool = False) -> Array | tuple[Array, Carry]:
    """Runs the cell over the time axis of `xs`; arguments and results as the linen layers'
    (`gru_jax.layers.Recurrent.__call__`). `rngs` overrides the dropout stream given at
    construction; `deterministic` overrides the attribute."""
    owner = type(self).__name__
    deterministic = self.deterministic if deterministic is None else deterministic
    stochastic = not deterministic and bool(self.options.recurrent_dropout or self.options.zoneout)
    stream = (rngs["dropout"] if rngs is not None else self.rngs) if stochastic else None
    if stochastic and stream is None:
      raise ValueError(f"{owner}: recurrent_dropout / zoneout in training need rngs (at construction or call), "
                       "or deterministic=True (module.eval())")
    dropout_key = stream() if stochastic and self.options.recurrent_dropout else None
    zoneout_key = stream() if stochastic and self.options.zoneout else None
    learned = self.initial_carry.get_value() if self.learn_initial_carry else None
    ys, carry, *carries = recurrent.run(
      self.spec, self.params(), xs, self.options, seq_lengths=seq_lengths, initial_carry=initial_carry,
      learned_carry=learned, reverse=reverse, resets=resets, reset_carry=reset_carry, return_carries=return_carries,
      dropout_key=dropout_key, zoneout_key=zoneout_key, owner=owner,
    )
    return recurrent.outputs(ys, carry, carries[0] if carries else None, return_carry)


# The NNX layers by registry name ("gru" -> GRU), one per spec; each also a name of this module.
LAYER_CLASSES: dict[str, type[Recurrent]] = {
  name: _with_options(Recurrent, s, specs.layer_name(s), specs.describe(s) + "\n\n" + _NNX_NOTE.format(
    kind="layer", spec=s.__name__, root="Recurrent"), {"cell_class": CELL_CLASSES[name]})
  for name, s in specs.SPECS.items()
}
globals().update({c.__name__: c for c in LAYER_CLASSES.values()})


class Bidirectional(nnx.Module):
  """One layer forward and one backward, outputs merged ("concat", PyTorch's layout, "sum", "mul", "ave");
  the backward layer starts at each sequence's own last valid step. As `gru_jax.layers.Bidirectional`."""

  def __init__(self, forward_rnn: Recurrent, backward_rnn: Recurrent, *, merge: str = "concat"):
    merges.check_merge(merge)
    self.forward_rnn, self.backward_rnn, self.merge = forward_rnn, backward_rnn, merge

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=None, rngs=None,
               resets=None, reset_carry=None):
    """Like the layers' call; initial_carry, reset_carry and the returned carry are (forward, backward)."""
    carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
    extra_f, extra_b = recurrent.reset_kwargs("Bidirectional", resets, reset_carry, 2)
    common = dict(seq_lengths=seq_lengths, return_carry=True, deterministic=deterministic, rngs=rngs)
    ys_f, carry_f = self.forward_rnn(xs, initial_carry=carry_f, **common, **extra_f)
    ys_b, carry_b = self.backward_rnn(xs, initial_carry=carry_b, reverse=True, **common, **extra_b)
    ys = merges.check_merge(self.merge)(ys_f, ys_b)
    return (ys, (carry_f, carry_b)) if return_carry else ys


class Stacked(nnx.Module):
  """`num_layers` layers of `layer_class`, one on top of the other, as `gru_jax.layers.Stacked`
  (parameters under layer_0, layer_1, ...; forward_rnn / backward_rnn when bidirectional).

  Args:
    layer_class: an NNX layer class (`GRU`, `LSTM`, ...).
    in_features, features: D of the first layer's inputs, H of every layer.
    num_layers, bidirectional, dropout, residual: as in `gru_jax.layers.Stacked` (dropout between
      layers draws from the `dropout` stream; `eval()` turns it off).
    rngs: draws the parameters (and the dropout masks).
    layer_options: passed to every layer, as **layer_kwargs; for options whose names Stacked's own
      arguments take (a SimpleRNN cell's `residual`).
    **layer_kwargs: passed to every layer (cell and layer options, dtype, ...).
  """

  def __init__(self, layer_class: type[Recurrent], in_features: int, features: int, *, rngs: nnx.Rngs,
               num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, residual: bool = False,
               layer_options: Mapping[str, Any] | None = None, **layer_kwargs):
    specs.check_positive_int("Stacked", "num_layers", num_layers)
    layer_kwargs = {**dict(layer_options or {}), **layer_kwargs}
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"Stacked: dropout must lie in [0, 1); got {dropout!r}")
    self.num_layers, self.bidirectional, self.residual = num_layers, bidirectional, residual
    width = in_features
    for i in range(num_layers):
      make = lambda: layer_class(width, features, rngs=rngs, **layer_kwargs)  # noqa: B023
      setattr(self, f"layer_{i}", Bidirectional(make(), make()) if bidirectional else make())
      width = features * (2 if bidirectional else 1)
    self.dropout = nnx.Dropout(dropout, rngs=_dropout_stream(rngs, dropout > 0.0))

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=None, rngs=None,
               resets=None, reset_carry=None):
    """Runs the stack; initial_carry, reset_carry and the returned carries hold one carry per layer;
    every layer resets where `resets` is True."""
    if initial_carry is not None and len(initial_carry) != self.num_layers:
      raise ValueError(
        f"Stacked: initial_carry must hold one carry per layer ({self.num_layers}); got {len(initial_carry)}"
      )
    carries = []
    per_layer = recurrent.reset_kwargs("Stacked", resets, reset_carry, self.num_layers)
    for i in range(self.num_layers):
      carry = None if initial_carry is None else initial_carry[i]
      ys, carry = getattr(self, f"layer_{i}")(xs, seq_lengths=seq_lengths, initial_carry=carry, return_carry=True,
                                             deterministic=deterministic, rngs=rngs, **per_layer[i])
      carries.append(carry)
      if self.residual and ys.shape == xs.shape:
        ys = ys + xs
      if i < self.num_layers - 1:
        ys = self.dropout(ys, deterministic=deterministic, rngs=rngs)
      xs = ys
    return (xs, tuple(carries)) if return_carry else xs


# The NNX module types of gru_jax.
MODULES = (RecurrentCell, Recurrent, Bidirectional, Stacked)


# The linen <-> NNX converters live in gru_jax.interop.linen_nnx; these names stay reachable here.
_CONVERTERS = ("from_linen", "to_linen", "linen_variables", "load_linen_variables")


def __getattr__(name: str):
  if name in _CONVERTERS:
    from gru_jax.interop import linen_nnx  # pylint: disable=g-import-not-at-top  (it imports this module)
    return getattr(linen_nnx, name)
  raise AttributeError(f"module 'gru_jax.nnx' has no attribute {name!r}")
