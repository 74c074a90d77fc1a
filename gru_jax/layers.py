"""Flax linen front-end: cells (one step, usable in flax.linen.RNN) and the layers that scan them.

Each cell is a linen module around a Flax-independent spec (`gru_jax.specs`): its fields are the
spec's options plus `dtype` and `param_dtype`, and `spec()` builds the spec that declares the
parameters and computes the step. The cell and layer classes are made from the registry
(`gru_jax.specs.SPECS`), one of each per spec (`CELL_CLASSES`, `LAYER_CLASSES`), with the spec's
options as their fields and its docstring as theirs; nothing here is written per cell. A layer scans its cell with `gru_jax.recurrent.run`, the body
shared with the NNX front-end (`gru_jax.nnx`). A cell and its layer declare the same parameters
(layout in `gru_jax.cells`), so `GRUCell` params load into `GRU` and back. Layers are batch-major,
xs [..., T, D] -> ys [..., T, H] (any number of leading batch axes, including none), or
time-major [T, ..., D] with `time_major=True`.
"""

import dataclasses
import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import merges, recurrent, specs

Array = jax.Array
Carry = Any
Initializer = Callable[..., Array]
per_gate = specs.per_gate


class CellOptions(nn.Module):
  """Options shared by a cell and the layer that scans it.

  Attributes:
    features: hidden size H.
    kernel_init: initializer of the input kernel, applied per gate block (LeCun normal).
    recurrent_kernel_init: initializer of the recurrent kernel, per gate block (orthogonal).
    bias_init: initializer of the folded biases (zeros).
    use_bias: whether the cell has biases at all (PyTorch's `bias=False` is `use_bias=False`).
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: dtype of the parameters.
  """

  features: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32


def _spec_fields(spec_class: type[specs.CellSpec]) -> list[str]:
  return [f.name for f in dataclasses.fields(spec_class)]


class RecurrentCell(CellOptions, nn.RNNCellBase):
  """Base of the linen cells: the spec's parameters, declared in this module, and its step.

  As with Flax's cells (`flax.linen.GRUCell`, ...), a call takes the hidden width from the carry
  it is given, and `features` sizes only the carry that `initialize_carry` makes: a cell built
  with features=V and called on a carry of width H has H units (Flax's seq2seq example builds its
  decoder so). The new carry keeps the given carry's dtypes.

  Attributes:
    carry_init: initializer of the carry made by `initialize_carry` (zeros), as Flax's.

  Subclasses declare the spec's options as fields and set `spec_class`.
  """

  carry_init: Initializer = nn.initializers.zeros_init()
  spec_class: ClassVar[type[specs.CellSpec]] = specs.CellSpec

  def __post_init__(self):
    self.spec()  # the spec validates the options now, not at the first call
    super().__post_init__()

  @nn.nowrap
  def spec(self) -> specs.CellSpec:
    """The Flax-independent spec of this cell, with this module's options."""
    return self.spec_class(**{n: getattr(self, n) for n in _spec_fields(self.spec_class)})

  @nn.compact
  def declare_params(self, in_features: int, spec: specs.CellSpec | None = None) -> dict[str, Array]:
    """Declares (or fetches) this cell's parameters for inputs of `in_features` features (for
    `spec`, by default `self.spec()`)."""
    spec = self.spec() if spec is None else spec
    if self.has_variable("params", "input_kernel"):
      recurrent.check_params(type(self).__name__, spec, {"input_kernel": self.get_variable("params", "input_kernel")}, in_features)
    return {name: self.param(name, init, shape, self.param_dtype) for name, (init, shape) in spec.param_specs(in_features).items()}

  def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
    """One step: carry (leaves [..., H]) and inputs [..., D] -> (new carry, output [..., H])."""
    owner = type(self).__name__
    if inputs.ndim < 1:
      raise ValueError(f"{owner}: inputs must have shape [..., D]; got {inputs.shape}")
    spec = self.spec()
    state = jax.tree_util.tree_leaves(carry)
    width = np.shape(state[-1])[-1] if state and np.ndim(state[-1]) else spec.features
    if width != spec.features:  # the width comes from the carry, as in Flax's cells
      spec = dataclasses.replace(spec, features=int(width))
    params = self.declare_params(inputs.shape[-1], spec)
    return recurrent.step(owner, spec, params, carry, inputs, self.dtype)

  @nn.nowrap
  def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
    """The carry for inputs of `input_shape` ([..., D]): `carry_init(rng, [..., features],
    param_dtype)` for each leaf (zeros by default), with rng split between the leaves as Flax's
    cells split it."""
    zeros = self.spec().zero_carry(tuple(input_shape[:-1]), self.param_dtype)
    leaves, treedef = jax.tree_util.tree_flatten(zeros)
    keys = [rng] * len(leaves) if rng is None or len(leaves) == 1 else list(jax.random.split(rng, len(leaves)))
    return jax.tree_util.tree_unflatten(treedef, [self.carry_init(k, z.shape, z.dtype) for k, z in zip(keys, leaves)])

  @property
  def num_feature_axes(self) -> int:
    return 1


def _derive(spec: type[specs.CellSpec], made: dict, root: type, name: str, doc: str, attrs: dict) -> type:
  """A subclass of the class made for the nearest registered spec that `spec` inherits
  from (else of `root`), declaring as dataclass fields the spec's options that it lacks."""
  base = next((made[s] for s in spec.__mro__[1:] if s in made), root)
  have = {f.name for f in dataclasses.fields(base)}
  fields = [f for f in dataclasses.fields(spec) if f.name not in have]
  namespace = {"__module__": __name__, "__qualname__": name, "__doc__": doc, "__annotations__": {f.name: f.type for f in fields},
               **{f.name: f.default for f in fields}, **attrs}
  return type(name, (base,), namespace)


def _derive_all(root: type, name_of: Callable, doc_of: Callable, **attrs_of: Callable) -> dict[str, type]:
  """One class per registered spec (`gru_jax.specs.SPECS`), by the spec's registry name."""
  made: dict[type, type] = {}
  for spec_class in specs.SPECS.values():
    attrs = {key: value(spec_class) for key, value in attrs_of.items()}
    made[spec_class] = _derive(spec_class, made, root, name_of(spec_class), doc_of(spec_class), attrs)
  return {name: made[spec_class] for name, spec_class in specs.SPECS.items()}


_LINEN_CELL_NOTE = """The linen cell of `gru_jax.specs.{spec}`: its options are this module's fields, beside
`RecurrentCell`'s (dtype, param_dtype, carry_init) and the shared initialisers."""

# The linen cells by registry name ("gru" -> GRUCell), one per spec; each also a name of this module.
CELL_CLASSES: dict[str, type[RecurrentCell]] = _derive_all(
  RecurrentCell, lambda s: s.cell_name, lambda s: specs.describe(s) + "\n\n" + _LINEN_CELL_NOTE.format(spec=s.__name__),
  spec_class=lambda s: s,
)
globals().update({c.__name__: c for c in CELL_CLASSES.values()})


class OptimizedLSTMCell(CELL_CLASSES["lstm"]):
  """`flax.linen.OptimizedLSTMCell`'s name for `LSTMCell`, which already computes all four gates
  with one matmul per input and state; for programs written for Flax's cell. Its forget_bias=0.0
  gives Flax's initial forget bias."""


class SimpleCell(CELL_CLASSES["rnn"]):
  """`flax.linen.SimpleCell`'s name for `SimpleRNNCell`: the same fields (`activation_fn`,
  `residual`, initialisers, `carry_init`) and equations, for programs written for Flax's cell.
  Parameters differ in layout only (one `input_kernel`, `recurrent_kernel` and `bias` here; Dense
  modules `i` and `h` there: `gru_jax.interop.from_flax` converts)."""


class Recurrent(CellOptions):
  """Base of the scanned layers: a cell run over time (`gru_jax.recurrent.run`).

  The input projection of all time steps is one matmul outside the loop; the loop does one fused
  recurrent matmul per step. Parameters are those of the cell, at the top level of the layer
  (plus `initial_carry` when `learn_initial_carry`).

  Attributes:
    unroll, remat, time_major, custom_vjp, parallel, recurrent_dropout, zoneout, sequence_axis,
      kernel: how the cell is run; see `gru_jax.recurrent.LayerOptions`. recurrent_dropout and zoneout draw from the
      'dropout' rng when `deterministic=False`.
    learn_initial_carry: learn the initial carry (zeros at init) instead of using zeros.
  """

  unroll: int | None = None
  remat: bool = False
  learn_initial_carry: bool = False
  time_major: bool = False
  custom_vjp: bool = True
  parallel: bool | None = None
  recurrent_dropout: float = 0.0
  zoneout: float = 0.0
  sequence_axis: str | None = None
  kernel: str = "auto"

  cell_class: ClassVar[type[RecurrentCell]] = RecurrentCell

  def __post_init__(self):
    owner = type(self).__name__
    specs.check_positive_int(owner, "features", self.features)
    spec = self.make_cell(parent=None).spec()  # the cell validates its own options now, not at first call
    self.layer_options().check(owner, spec)
    super().__post_init__()

  @nn.nowrap
  def layer_options(self) -> recurrent.LayerOptions:
    """How this layer runs its cell (`gru_jax.recurrent.LayerOptions`)."""
    return recurrent.LayerOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(recurrent.LayerOptions)})

  @nn.nowrap
  def make_cell(self, **kwargs) -> RecurrentCell:
    """The cell this layer scans, with the layer's cell options."""
    names = [f.name for f in dataclasses.fields(self.cell_class) if f.name not in ("parent", "name", "carry_init")]
    return self.cell_class(**{n: getattr(self, n) for n in names}, **kwargs)

  def setup(self):
    self.cell = self.make_cell()
    nn.share_scope(self, self.cell)
    if self.learn_initial_carry:
      self.learned_carry = self.param(
        "initial_carry", lambda key: self.cell.spec().zero_carry((), self.param_dtype)
      )

  def initialize_carry(self, batch_shape: tuple[int, ...]) -> Carry:
    """The carry a sequence starts from without `initial_carry`: the learned one broadcast to
    `batch_shape` (with `learn_initial_carry`), else zeros; leaves [*batch_shape, H] in
    param_dtype. Through apply: `layer.apply(variables, (B,), method="initialize_carry")`."""
    learned = self.learned_carry if self.learn_initial_carry else None
    return recurrent.initial_carry_of(type(self).__name__, self.cell.spec(), None, learned, tuple(batch_shape),
                                      self.param_dtype)

  def step(self, carry: Carry, x: Array, *, reset: Array | None = None, deterministic: bool = True) -> tuple[Carry, Array]:
    """Advances one time step with the layer's parameters, for streaming and rollouts:
    `(carry, x [..., D]) -> (new carry, y [..., H])`, equal to the scanned layer step by step.
    `reset` (booleans, the batch shape of x) restarts those rows from `initialize_carry` before
    the step (an episode's first observation). Through apply:
    `layer.apply(variables, carry, x, method="step")`. (With recurrent_dropout in training each
    step draws its own mask, where the scanned layer keeps one per sequence.)"""
    fresh = lambda: self.initialize_carry(jnp.shape(x)[:-1])
    call = functools.partial(self.__call__, deterministic=deterministic)
    return recurrent.one_step(call, carry, x, reset, fresh, self.time_major)

  def __call__(
    self,
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    initial_carry: Carry | None = None,
    return_carry: bool = False,
    reverse: bool = False,
    deterministic: bool = True,
    resets: Array | None = None,
    reset_carry: Carry | None = None,
    return_carries: bool = False,
  ) -> Array | tuple[Array, Carry]:
    """Runs the cell over the time axis of `xs`.

    Args:
      xs: [..., T, D] (or [T, ..., D] when time_major), floating point.
      seq_lengths: optional integers with the batch shape of xs (`xs.shape[:-2]`). The carry
        stops at each sequence's last valid step, outputs past it are zeros, and a length of 0
        returns the initial carry. Concrete lengths must lie in [0, T]; under jit they cannot be
        checked, and values above T act as T, negative ones as 0.
      initial_carry: carry with leaves [..., H] (the batch shape of xs); defaults to zeros, or to
        the learned carry when `learn_initial_carry`.
      return_carry: also return the final carry.
      reverse: run from each sequence's last valid step back to its first (the backward half of a
        bidirectional layer); outputs stay aligned with the inputs.
      deterministic: turn off recurrent_dropout and use zoneout's expectation (evaluation).
      resets: optional booleans [..., T] (the batch shape and time steps of xs; [T, ...] when
        time_major). Where True, the carry is reset before that step to the initial carry (the
        one given, else the learned one, else zeros): a new episode starts there, as purejaxrl's
        `done` flag arrives with an episode's first observation. Each episode then runs as if
        alone; with `reverse`, backward from its own last step. Composes with seq_lengths.
      reset_carry: the carry resets restart from, where that is not the initial carry (streams
        cut into chunks: `initial_carry` the state stored at the chunk's start, `reset_carry`
        zeros, as a fresh episode starts). Leaves [..., H].
      return_carries: also return the carry after every step (leaves [..., T, H], or [T, ..., H];
        past a sequence's length its final carry), e.g. to store states in a replay buffer. Runs
        the autodiff or parallel path.

    Returns:
      ys [..., T, H] (or [T, ..., H]); (ys, final carry) with `return_carry`; the every-step
      carries last when `return_carries`.
    """
    return _scan_cell(self, self.cell, xs, return_carry, deterministic, seq_lengths=seq_lengths,
                      initial_carry=initial_carry, reverse=reverse, resets=resets, reset_carry=reset_carry,
                      return_carries=return_carries)


def _scan_cell(layer, cell, xs, return_carry, deterministic, **run_kwargs):
  """The body of the scanned layers' call: `cell` (whose scope is the layer's) over time with
  `recurrent.run` (`run_kwargs`: seq_lengths, initial_carry, reverse, resets, ...)."""
  owner = type(layer).__name__
  options = layer.layer_options()
  params = cell.declare_params(recurrent.in_features(owner, xs, options.time_major))
  dropout_key = layer.make_rng("dropout") if options.recurrent_dropout and not deterministic else None
  zoneout_key = layer.make_rng("dropout") if options.zoneout and not deterministic else None
  ys, carry, *carries = recurrent.run(
    cell.spec(), params, xs, options, learned_carry=layer.learned_carry if layer.learn_initial_carry else None,
    dropout_key=dropout_key, zoneout_key=zoneout_key, owner=owner, **run_kwargs,
  )
  return recurrent.outputs(ys, carry, carries[0] if carries else None, return_carry)


class Scanned(nn.Module):
  """Any gru_jax cell run over time, as `flax.linen.RNN(cell)` runs Flax's, but on the layers' path
  (input projection hoisted out of the loop, fused backward pass, parallel scan, masks):
  `Scanned(GRUCell(32))` equals `GRU(32)`, with the same parameters at the same (top-level) names.

  Attributes:
    cell: a gru_jax linen cell (`GRUCell`, `LSTMCell`, ..., or your own `RecurrentCell` with a spec).
    unroll, remat, learn_initial_carry, time_major, custom_vjp, parallel, recurrent_dropout,
      zoneout, sequence_axis, kernel: as for `Recurrent`.
  """

  cell: RecurrentCell
  unroll: int | None = None
  remat: bool = False
  learn_initial_carry: bool = False
  time_major: bool = False
  custom_vjp: bool = True
  parallel: bool | None = None
  recurrent_dropout: float = 0.0
  zoneout: float = 0.0
  sequence_axis: str | None = None
  kernel: str = "auto"

  def __post_init__(self):
    if not isinstance(self.cell, RecurrentCell):
      raise TypeError(f"Scanned: cell must be a gru_jax cell (a RecurrentCell); got {type(self.cell).__name__}")
    self.layer_options().check("Scanned", self.cell.spec())
    super().__post_init__()

  @nn.nowrap
  def layer_options(self) -> recurrent.LayerOptions:
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(recurrent.LayerOptions) if f.name != "dtype"}
    return recurrent.LayerOptions(**fields, dtype=self.cell.dtype)

  def setup(self):
    # A fresh copy of the cell in this layer's own scope: the `cell` field may be bound elsewhere
    # (a template cloned by `Stacked`).
    self.step_cell = self.cell.clone(parent=None)
    nn.share_scope(self, self.step_cell)
    if self.learn_initial_carry:
      self.learned_carry = self.param("initial_carry", lambda key: self.cell.spec().zero_carry((), self.cell.param_dtype))

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, reverse=False, deterministic=True,
               resets=None, reset_carry=None, return_carries=False):
    """As `Recurrent.__call__`."""
    return _scan_cell(self, self.step_cell, xs, return_carry, deterministic, seq_lengths=seq_lengths,
                      initial_carry=initial_carry, reverse=reverse, resets=resets, reset_carry=reset_carry,
                      return_carries=return_carries)


_LINEN_LAYER_NOTE = """The linen layer of `gru_jax.specs.{spec}`: `{cell}` run over time (`Recurrent`); its cell
options are this module's fields, beside the layer's (unroll, remat, time_major, ...; see `Recurrent`)."""

# The linen layers by registry name ("gru" -> GRU), one per spec; each also a name of this module.
LAYER_CLASSES: dict[str, type[Recurrent]] = _derive_all(
  Recurrent, specs.layer_name,
  lambda s: specs.describe(s) + "\n\n" + _LINEN_LAYER_NOTE.format(spec=s.__name__, cell=s.cell_name),
  cell_class=lambda s: {c.spec_class: c for c in CELL_CLASSES.values()}[s],
)
globals().update({c.__name__: c for c in LAYER_CLASSES.values()})


class Bidirectional(nn.Module):
  """Runs one layer forward and one backward and merges their outputs.

  The backward layer starts at each sequence's own last valid step when `seq_lengths` is given,
  so padding never enters its carry. Outputs of both stay aligned with the inputs.

  Attributes:
    forward_rnn: a gru_jax layer (GRU, LSTM, SimpleRNN, ...).
    backward_rnn: another such layer, called with `reverse=True`.
    merge: "concat" (outputs [..., 2H], PyTorch's layout), "sum", "mul" or "ave" (Keras's names).
  """

  forward_rnn: nn.Module
  backward_rnn: nn.Module
  merge: str = "concat"

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=True, resets=None,
               reset_carry=None):
    """Like the layers' call; initial_carry, reset_carry and the returned carry are (forward,
    backward). With `resets`, each episode runs forward and backward as if alone."""
    merge = merges.check_merge(self.merge)
    carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
    extra_f, extra_b = recurrent.reset_kwargs("Bidirectional", resets, reset_carry, 2)
    ys_f, carry_f = self.forward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_f, return_carry=True, deterministic=deterministic, **extra_f
    )
    ys_b, carry_b = self.backward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_b, return_carry=True, reverse=True, deterministic=deterministic,
      **extra_b,
    )
    ys = merge(ys_f, ys_b)
    return (ys, (carry_f, carry_b)) if return_carry else ys


class Stacked(nn.Module):
  """`num_layers` copies of a layer, one on top of the other (PyTorch's `num_layers`).

  Attributes:
    layer: the template layer (e.g. `GRU(features=64)`), cloned for each layer and direction.
    num_layers: number of layers.
    bidirectional: wrap each layer in `Bidirectional` (outputs concatenated).
    dropout: dropout rate on the outputs of every layer but the last (needs a 'dropout' rng
      when `deterministic=False`), as in PyTorch.
    residual: add each layer's input to its output where the widths match (layer 0 is skipped
      when D differs from the layer's output width).
  """

  layer: nn.Module
  num_layers: int = 1
  bidirectional: bool = False
  dropout: float = 0.0
  residual: bool = False

  @nn.compact
  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=True, resets=None,
               reset_carry=None):
    """Runs the stack.

    Args:
      xs, seq_lengths, resets: as for the layers (every layer resets where `resets` is True).
      reset_carry: None, or one carry per layer (as initial_carry) that its resets restart from.
      initial_carry: None, or a sequence of one carry per layer (a (forward, backward) pair per
        layer when bidirectional).
      return_carry: also return the final carries, in the same structure.
      deterministic: disable dropout (between layers, and the layers' recurrent_dropout and zoneout).
    """
    specs.check_positive_int("Stacked", "num_layers", self.num_layers)
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"Stacked: dropout must lie in [0, 1); got {self.dropout!r}")
    if initial_carry is not None and len(initial_carry) != self.num_layers:
      raise ValueError(
        f"Stacked: initial_carry must hold one carry per layer ({self.num_layers}); got {len(initial_carry)}"
      )
    carries = []
    per_layer = recurrent.reset_kwargs("Stacked", resets, reset_carry, self.num_layers)
    for i in range(self.num_layers):
      if self.bidirectional:
        layer = Bidirectional(self.layer.clone(parent=None), self.layer.clone(parent=None), name=f"layer_{i}")
      else:
        layer = self.layer.clone(parent=self, name=f"layer_{i}")
      carry = None if initial_carry is None else initial_carry[i]
      ys, carry = layer(xs, seq_lengths=seq_lengths, initial_carry=carry, return_carry=True, deterministic=deterministic,
                        **per_layer[i])
      carries.append(carry)
      if self.residual and ys.shape == xs.shape:
        ys = ys + xs
      if i < self.num_layers - 1 and self.dropout > 0.0:
        ys = nn.Dropout(self.dropout)(ys, deterministic=deterministic)
      xs = ys
    return (xs, tuple(carries)) if return_carry else xs
