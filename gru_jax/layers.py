"""Flax linen front-end: cells (one step, usable in flax.linen.RNN) and the layers that scan them.

Each cell is a linen module around a Flax-independent spec (`gru_jax.specs`): its fields are the
spec's options plus `dtype` and `param_dtype`, and `spec()` builds the spec that declares the
parameters and computes the step. A layer scans its cell with `gru_jax.recurrent.run`, the body
shared with the NNX front-end (`gru_jax.nnx`). A cell and its layer declare the same parameters
(layout in `gru_jax.cells`), so `GRUCell` params load into `GRU` and back. Layers are batch-major,
xs [..., T, D] -> ys [..., T, H] (any number of leading batch axes, including none), or
time-major [T, ..., D] with `time_major=True`.
"""

import dataclasses
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import recurrent, specs

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


class GRUCell(RecurrentCell):
  """GRU cell; equations and the two variants in `gru_jax.cells.gru_step`. z is the keep gate.

  Params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks r, z, n), bias [3H] and, when
  reset_after, recurrent_bias_n [H]. Carry: h [..., H].

  Attributes:
    reset_after: True for the PyTorch / cuDNN / flax.linen form (default), False for the
      Cho et al. 2014 v3 / Chung et al. 2014 form.
    layer_norm: normalise each gate block of x @ W_x and of h @ W_h separately over the hidden
      units, with learned scales `ln_input_scale` / `ln_recurrent_scale` [G*H] (Ba et al. 2016).
    chrono_init: T_max for the chrono initialisation of the keep gate's bias (Tallec & Ollivier
      2018): b_z ~ log U[1, T_max - 1]; None: off.
    gate_fn, activation_fn: σ and tanh in the equations, as `flax.linen.GRUCell`'s fields; other
      functions run on the reference (autodiff) path.
  """

  reset_after: bool = True
  layer_norm: bool = False
  chrono_init: int | None = None
  gate_fn: Callable = jax.nn.sigmoid
  activation_fn: Callable = jnp.tanh
  spec_class: ClassVar[type[specs.CellSpec]] = specs.GRUSpec


class LSTMCell(RecurrentCell):
  """LSTM cell; equations in `gru_jax.cells.lstm_step`. Gate order i, f, g, o (PyTorch).

  Params: input_kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]. Carry: (c, h), as in
  flax.linen.

  Attributes:
    forget_bias: added to the forget-gate block of the bias at initialisation (1.0, as advised by
      Jozefowicz et al. 2015); 0.0 gives the plain `bias_init`, as in `flax.linen.LSTMCell`
      (whose forget bias starts at 0). Ignored with chrono_init.
    layer_norm: as the GRU's, and c' is normalised before its tanh (`ln_cell_scale` [H]).
    chrono_init: T_max for the chrono initialisation: b_f ~ log U[1, T_max - 1], b_i = -b_f.
    gate_fn, activation_fn: σ and tanh in the equations, as `flax.linen.LSTMCell`'s fields; other
      functions run on the reference (autodiff) path.
  """

  forget_bias: float = 1.0
  layer_norm: bool = False
  chrono_init: int | None = None
  gate_fn: Callable = jax.nn.sigmoid
  activation_fn: Callable = jnp.tanh
  spec_class: ClassVar[type[specs.CellSpec]] = specs.LSTMSpec


class OptimizedLSTMCell(LSTMCell):
  """`flax.linen.OptimizedLSTMCell`'s name for `LSTMCell`, which already computes all four gates
  with one matmul per input and state; for programs written for Flax's cell."""


class SimpleRNNCell(RecurrentCell):
  """Vanilla (Elman) RNN cell: h' = act(W_ih x + b_ih + W_hh h + b_hh) (PyTorch nn.RNN form).

  Params: input_kernel [D, H], recurrent_kernel [H, H], bias [H]. Carry: h [..., H].

  Attributes:
    activation: "tanh" (default), "relu" or "identity" (a linear RNN).
    activation_fn: any elementwise function instead (`flax.linen.SimpleCell`'s field); still on
      the fast path.
    residual: h' = act(W_ih x + b + W_hh h + h), as `flax.linen.SimpleCell(residual=True)`.
  """

  activation: str = "tanh"
  activation_fn: Callable | None = None
  residual: bool = False
  spec_class: ClassVar[type[specs.CellSpec]] = specs.SimpleRNNSpec


class SimpleCell(SimpleRNNCell):
  """`flax.linen.SimpleCell`'s name for `SimpleRNNCell`: the same fields (`activation_fn`,
  `residual`, initialisers, `carry_init`) and equations, for programs written for Flax's cell.
  Parameters differ in layout only (one `input_kernel`, `recurrent_kernel` and `bias` here; Dense
  modules `i` and `h` there: `gru_jax.interop.from_flax` converts)."""


class GRUNoResetCell(RecurrentCell):
  """GRU without reset gate (r ≡ 1); equations in `gru_jax.cells.gru_no_reset_step`. z keeps.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks z, n), bias [2H]. Carry: h.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.GRUNoResetSpec


class MGUCell(RecurrentCell):
  """Minimal gated unit (Zhou et al. 2016); equations in `gru_jax.cells.mgu_step`.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks f, n), bias [2H]. Carry: h.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.MGUSpec


class CIFGLSTMCell(LSTMCell):
  """Coupled input-forget gate LSTM (input gate = 1 - f); equations in
  `gru_jax.cells.cifg_lstm_step`. Params: input_kernel [D, 3H], recurrent_kernel [H, 3H]
  (blocks f, g, o), bias [3H]. Carry: (c, h). No layer_norm.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.CIFGLSTMSpec


class PeepholeLSTMCell(LSTMCell):
  """Peephole LSTM (Gers & Schmidhuber 2000); equations in `gru_jax.cells.peephole_lstm_step`.
  Params: those of `LSTMCell` plus peephole [3H] (p_i, p_f, p_o; zeros at init). No layer_norm.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.PeepholeLSTMSpec


class MinGRUCell(RecurrentCell):
  """minGRU (Feng et al. 2024); equations in `gru_jax.cells.mingru_step` (z there takes the new
  value, as in the paper). Params: input_kernel [D, 2H] (blocks z, h~), bias [2H]; no recurrent
  kernel. Carry: h. The layer trains it with the log-space parallel scan.
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.MinGRUSpec


class MinLSTMCell(RecurrentCell):
  """minLSTM (Feng et al. 2024); equations in `gru_jax.cells.minlstm_step`. Params: input_kernel
  [D, 3H] (blocks f, i, h~), bias [3H]; no recurrent kernel. Carry: h (no cell state).
  """

  spec_class: ClassVar[type[specs.CellSpec]] = specs.MinLSTMSpec


class SRUCell(RecurrentCell):
  """Simple recurrent unit; equations in `gru_jax.cells.sru_step` and the layout in
  `gru_jax.specs.SRUSpec`. All matmuls are over x only; the carry is c, and the output h is not
  part of it.

  Attributes:
    version: 2017 (Lei et al. 2017: gates from x only, so the layer runs c with a parallel scan)
      or 2018 (Lei et al. 2018: v ⊙ c_{t-1} inside the gates; sequential).
    activation: g in h = r ⊙ g(c) + (1 - r) ⊙ x; None picks the paper's: tanh for 2017, identity
      for 2018.
  """

  version: int = 2017
  activation: str | None = None
  spec_class: ClassVar[type[specs.CellSpec]] = specs.SRUSpec


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

  def __call__(
    self,
    xs: Array,
    *,
    seq_lengths: Array | None = None,
    initial_carry: Carry | None = None,
    return_carry: bool = False,
    reverse: bool = False,
    deterministic: bool = True,
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

    Returns:
      ys [..., T, H] (or [T, ..., H]), and the final carry if `return_carry`.
    """
    return _scan_cell(self, self.cell, xs, seq_lengths, initial_carry, return_carry, reverse, deterministic)


def _scan_cell(layer, cell, xs, seq_lengths, initial_carry, return_carry, reverse, deterministic):
  """The body of the scanned layers' call: `cell` (whose scope is the layer's) over time with
  `recurrent.run`."""
  owner = type(layer).__name__
  options = layer.layer_options()
  params = cell.declare_params(recurrent.in_features(owner, xs, options.time_major))
  dropout_key = layer.make_rng("dropout") if options.recurrent_dropout and not deterministic else None
  zoneout_key = layer.make_rng("dropout") if options.zoneout and not deterministic else None
  ys, carry = recurrent.run(
    cell.spec(), params, xs, options, seq_lengths=seq_lengths, initial_carry=initial_carry,
    learned_carry=layer.learned_carry if layer.learn_initial_carry else None, reverse=reverse,
    dropout_key=dropout_key, zoneout_key=zoneout_key, owner=owner,
  )
  return (ys, carry) if return_carry else ys


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

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, reverse=False, deterministic=True):
    """As `Recurrent.__call__`."""
    return _scan_cell(self, self.step_cell, xs, seq_lengths, initial_carry, return_carry, reverse, deterministic)


class GRU(Recurrent):
  """GRU layer: `GRUCell` scanned over time. z is the keep gate; see `gru_jax.cells.gru_step`.

  Attributes:
    reset_after: True for the PyTorch / cuDNN form (default), False for Cho et al. 2014 v3.
    layer_norm, chrono_init: normalised gate pre-activations; chrono init of the z bias (`GRUCell`).
    gate_fn, activation_fn: σ and tanh by default; others take the reference path (`GRUCell`).
  """

  reset_after: bool = True
  layer_norm: bool = False
  chrono_init: int | None = None
  gate_fn: Callable = jax.nn.sigmoid
  activation_fn: Callable = jnp.tanh
  cell_class: ClassVar[type[RecurrentCell]] = GRUCell


class LSTM(Recurrent):
  """LSTM layer: `LSTMCell` scanned over time; the carry is (c, h), as in flax.linen.

  Attributes:
    forget_bias: initial value added to the forget-gate bias (1.0).
    layer_norm, chrono_init: normalised gate pre-activations; chrono init of b_f, b_i (`LSTMCell`).
    gate_fn, activation_fn: σ and tanh by default; others take the reference path (`LSTMCell`).
  """

  forget_bias: float = 1.0
  layer_norm: bool = False
  chrono_init: int | None = None
  gate_fn: Callable = jax.nn.sigmoid
  activation_fn: Callable = jnp.tanh
  cell_class: ClassVar[type[RecurrentCell]] = LSTMCell


class SimpleRNN(Recurrent):
  """Vanilla RNN layer: `SimpleRNNCell` scanned over time.

  Attributes:
    activation: "tanh" (default), "relu" or "identity" (a linear RNN).
    activation_fn, residual: as `SimpleRNNCell`'s (Flax's `SimpleCell` fields).
  """

  activation: str = "tanh"
  activation_fn: Callable | None = None
  residual: bool = False
  cell_class: ClassVar[type[RecurrentCell]] = SimpleRNNCell


class GRUNoReset(Recurrent):
  """GRU without reset gate (r ≡ 1), scanned; see `gru_jax.cells.gru_no_reset_step`."""

  cell_class: ClassVar[type[RecurrentCell]] = GRUNoResetCell


class MGU(Recurrent):
  """Minimal gated unit (Zhou et al. 2016), scanned; see `gru_jax.cells.mgu_step`."""

  cell_class: ClassVar[type[RecurrentCell]] = MGUCell


class CIFGLSTM(LSTM):
  """Coupled input-forget gate LSTM, scanned; see `gru_jax.cells.cifg_lstm_step`. Carry (c, h)."""

  cell_class: ClassVar[type[RecurrentCell]] = CIFGLSTMCell


class PeepholeLSTM(LSTM):
  """Peephole LSTM, scanned; see `gru_jax.cells.peephole_lstm_step`. Carry (c, h)."""

  cell_class: ClassVar[type[RecurrentCell]] = PeepholeLSTMCell


class MinGRU(Recurrent):
  """minGRU (Feng et al. 2024): trained with the log-space parallel scan (`parallel=True`), or
  step by step; see `gru_jax.cells.mingru_step`."""

  cell_class: ClassVar[type[RecurrentCell]] = MinGRUCell


class MinLSTM(Recurrent):
  """minLSTM (Feng et al. 2024): log-space parallel scan or step by step; see
  `gru_jax.cells.minlstm_step`."""

  cell_class: ClassVar[type[RecurrentCell]] = MinLSTMCell


class SRU(Recurrent):
  """Simple recurrent unit (Lei et al. 2017 / 2018); see `SRUCell`. The 2017 form runs its state
  with a parallel scan; the carry is c and the outputs are h.

  Attributes:
    version: 2017 or 2018.
    activation: g of the output; None: tanh (2017) or identity (2018).
  """

  version: int = 2017
  activation: str | None = None
  cell_class: ClassVar[type[RecurrentCell]] = SRUCell


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

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=True):
    """Like the layers' call; initial_carry and the returned carry are (forward, backward)."""
    merge = recurrent.check_merge(self.merge)
    carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
    ys_f, carry_f = self.forward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_f, return_carry=True, deterministic=deterministic
    )
    ys_b, carry_b = self.backward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_b, return_carry=True, reverse=True, deterministic=deterministic
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
  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=True):
    """Runs the stack.

    Args:
      xs, seq_lengths: as for the layers.
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
    for i in range(self.num_layers):
      if self.bidirectional:
        layer = Bidirectional(self.layer.clone(parent=None), self.layer.clone(parent=None), name=f"layer_{i}")
      else:
        layer = self.layer.clone(parent=self, name=f"layer_{i}")
      carry = None if initial_carry is None else initial_carry[i]
      ys, carry = layer(xs, seq_lengths=seq_lengths, initial_carry=carry, return_carry=True, deterministic=deterministic)
      carries.append(carry)
      if self.residual and ys.shape == xs.shape:
        ys = ys + xs
      if i < self.num_layers - 1 and self.dropout > 0.0:
        ys = nn.Dropout(self.dropout)(ys, deterministic=deterministic)
      xs = ys
    return (xs, tuple(carries)) if return_carry else xs
