"""Flax linen modules: cells (one step, usable in flax.linen.RNN) and the layers that scan them.

A cell and its layer declare the same parameters (layout in `gru_jax.cells`) and share one step
function, so `GRUCell` params load into `GRU` and back. Layers are batch-major, xs [..., T, D]
-> ys [..., T, H] (any number of leading batch axes, including none), or time-major
[T, ..., D] with `time_major=True`.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import cells, parallel
from gru_jax import scan as scan_lib

Array = jax.Array
Carry = Any
Initializer = Callable[..., Array]


def per_gate(init: Initializer, num_gates: int) -> Initializer:
  """Applies `init` to each gate block of a fused [..., G*H] kernel separately.

  An orthogonal init of a fused [H, 3H] matrix is not an orthogonal init of each gate's [H, H]
  block; this wrapper gives each block its own draw, as unfused cells (flax.linen, Keras) do.
  Narrow float dtypes (bf16, fp16) are drawn in float32 and cast, since some initialisers
  (orthogonal: a QR decomposition) have no low-precision kernel.
  """

  def init_fn(key, shape, dtype=jnp.float32):
    draw_dtype = jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype
    block = shape[:-1] + (shape[-1] // num_gates,)
    keys = jax.random.split(key, num_gates)
    return jnp.concatenate([init(k, block, draw_dtype) for k in keys], axis=-1).astype(dtype)

  return init_fn


def _check_positive_int(owner: str, name: str, value: Any) -> None:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
    raise ValueError(f"{owner}: {name} must be a positive integer; got {value!r}")


def _promote(x: Array, params: dict[str, Array], dtype: Any) -> tuple[Array, dict[str, Array]]:
  """x and params in one computation dtype (`dtype`, or inferred from them when None)."""
  x, *values = nn.dtypes.promote_dtype(x, *params.values(), dtype=dtype)
  return x, dict(zip(params, values))


def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


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


class RecurrentCell(CellOptions, nn.RNNCellBase):
  """Base of gru_jax cells: params in the layout of `gru_jax.cells`, and a pure step.

  Subclasses set `num_gates` and implement `step_fn` and `zero_carry`.
  """

  num_gates: ClassVar[int] = 1
  has_recurrent_kernel: ClassVar[bool] = True
  # Whether the step's output is `hidden_fn()(carry)` (all cells but the SRU, whose carry is c).
  output_in_carry: ClassVar[bool] = True

  def __post_init__(self):
    _check_positive_int(type(self).__name__, "features", self.features)
    super().__post_init__()

  @nn.nowrap
  def step_fn(self) -> Callable[[dict, Carry, Array], tuple[Carry, Array]]:
    """The pure step `(params, carry, xp) -> (carry, y)` of this cell."""
    raise NotImplementedError

  @nn.nowrap
  def zero_carry(self, batch_shape: tuple[int, ...], dtype: Any) -> Carry:
    return jnp.zeros(batch_shape + (self.features,), dtype)

  @nn.nowrap
  def gates_fn(self) -> Callable | None:
    """The elementwise part `(xp, pre, carry) -> (carry, y)` of the step, given
    `pre = hidden_fn()(carry) @ recurrent_kernel + recurrent bias`; None if the step does not split
    so (then only the autodiff path applies)."""
    return None

  @nn.nowrap
  def hidden_fn(self) -> Callable[[Carry], Array]:
    """Picks the carry leaf that multiplies the recurrent kernel."""
    return _identity

  @nn.nowrap
  def bias_initializer(self) -> Initializer:
    return per_gate(self.bias_init, self.num_gates)

  @nn.nowrap
  def extra_param_specs(self) -> dict[str, tuple[Initializer, tuple[int, ...]]]:
    """Parameters beyond the common layout: name -> (initializer, shape)."""
    return {}

  @nn.nowrap
  def param_specs(self, in_features: int) -> dict[str, tuple[Initializer, tuple[int, ...]]]:
    """All parameters of the cell for inputs of `in_features` features: name -> (init, shape)."""
    width = self.num_gates * self.features
    specs = {"input_kernel": (per_gate(self.kernel_init, self.num_gates), (in_features, width))}
    if self.has_recurrent_kernel:
      specs["recurrent_kernel"] = (per_gate(self.recurrent_kernel_init, self.num_gates), (self.features, width))
    if self.use_bias:
      specs["bias"] = (self.bias_initializer(), (width,))
    specs.update(self.extra_param_specs())
    return specs

  @nn.nowrap
  def project_fn(self) -> Callable[[dict, Array], Array]:
    """The input projection `(params, x) -> xp` that the step expects (one matmul for all steps)."""
    return cells.project

  @nn.nowrap
  def parallel_fn(self) -> Callable | None:
    """For cells whose recurrence is linear in the carry: `(params, carry, xp [T, B, ...]) ->
    (carries [T, B, H], ys [T, B, H])`, all steps at once with a parallel scan; else None."""
    return None

  @nn.compact
  def declare_params(self, in_features: int) -> dict[str, Array]:
    """Declares (or fetches) this cell's parameters for inputs of `in_features` features."""
    owner = type(self).__name__
    specs = self.param_specs(in_features)
    if self.has_variable("params", "input_kernel"):
      got = self.get_variable("params", "input_kernel").shape
      if got != specs["input_kernel"][1]:
        raise ValueError(
          f"{owner}: inputs have {in_features} features (last axis of xs) but the parameters "
          f"expect {got[0]} (input_kernel has shape {got})"
        )
    return {name: self.param(name, init, shape, self.param_dtype) for name, (init, shape) in specs.items()}

  def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
    """One step: carry (leaves [..., H]) and inputs [..., D] -> (new carry, output [..., H])."""
    if inputs.ndim < 1:
      raise ValueError(f"{type(self).__name__}: inputs must have shape [..., D]; got {inputs.shape}")
    params = self.declare_params(inputs.shape[-1])
    _check_carry(type(self).__name__, carry, self.zero_carry(inputs.shape[:-1], inputs.dtype))
    inputs, params = _promote(inputs, params, self.dtype)
    carry = jax.tree_util.tree_map(lambda c: c.astype(inputs.dtype), carry)
    return self.step_fn()(params, carry, self.project_fn()(params, inputs))

  @nn.nowrap
  def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
    """Zero carry for inputs of `input_shape` ([..., D])."""
    del rng
    return self.zero_carry(tuple(input_shape[:-1]), self.param_dtype)

  @property
  def num_feature_axes(self) -> int:
    return 1


def _chrono_bias(key: Array, hidden: int, t_max: int, dtype) -> Array:
  """log u, u ~ U[1, t_max - 1] per unit: chrono initialisation (Tallec & Ollivier 2018), which
  makes a keep gate σ(b) hold its unit for about u steps at the start of training."""
  return jnp.log(jax.random.uniform(key, (hidden,), jnp.float32, 1.0, max(t_max - 1, 1))).astype(dtype)


class _GatedOptions(RecurrentCell):
  """Switches of the GRU and LSTM cells: layer normalisation and chrono initialisation.

  Attributes:
    layer_norm: normalise each gate block of x @ W_x and of h @ W_h separately over the hidden
      units, with learned scales `ln_input_scale` / `ln_recurrent_scale` [G*H] (Ba et al. 2016);
      the biases come after. (The LSTM also normalises c' before its tanh, `ln_cell_scale` [H].)
    chrono_init: T_max for the chrono initialisation of the keep/forget gate bias (Tallec &
      Ollivier 2018): b ~ log U[1, T_max - 1] (and for the LSTM, b_i = -b_f); None: off.
  """

  layer_norm: bool = False
  chrono_init: int | None = None
  supports_layer_norm: ClassVar[bool] = True

  def __post_init__(self):
    if self.layer_norm and not self.supports_layer_norm:
      raise ValueError(f"{type(self).__name__}: layer_norm is implemented for the GRU and LSTM cells only")
    if self.chrono_init is not None:
      _check_positive_int(type(self).__name__, "chrono_init", self.chrono_init)
      if self.chrono_init < 2:
        raise ValueError(f"{type(self).__name__}: chrono_init (T_max) must be at least 2; got {self.chrono_init}")
    super().__post_init__()

  @nn.nowrap
  def extra_param_specs(self):
    if not self.layer_norm:
      return {}
    ones = nn.initializers.ones_init()
    width = self.num_gates * self.features
    return {"ln_input_scale": (ones, (width,)), "ln_recurrent_scale": (ones, (width,))}


class GRUCell(_GatedOptions):
  """GRU cell; equations and the two variants in `gru_jax.cells.gru_step`. z is the keep gate.

  Params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks r, z, n), bias [3H] and, when
  reset_after, recurrent_bias_n [H]. Carry: h [..., H].

  Attributes:
    reset_after: True for the PyTorch / cuDNN / flax.linen form (default), False for the
      Cho et al. 2014 v3 / Chung et al. 2014 form.
    layer_norm, chrono_init: see `_GatedOptions` (chrono sets the bias of the keep gate z).
  """

  reset_after: bool = True
  num_gates: ClassVar[int] = 3

  def __post_init__(self):
    if self.layer_norm and not self.reset_after:
      raise ValueError("GRUCell: layer_norm is implemented for reset_after=True only")
    super().__post_init__()

  @nn.nowrap
  def step_fn(self):
    return functools.partial(cells.gru_step, reset_after=self.reset_after)

  @nn.nowrap
  def gates_fn(self):
    return cells.gru_gates if self.reset_after and not self.layer_norm else None

  @nn.nowrap
  def extra_param_specs(self):
    specs = super().extra_param_specs()
    if self.use_bias and self.reset_after:
      specs["recurrent_bias_n"] = (per_gate(self.bias_init, 1), (self.features,))
    return specs

  @nn.nowrap
  def bias_initializer(self):
    base = super().bias_initializer()
    if self.chrono_init is None:
      return base
    hidden, t_max = self.features, self.chrono_init

    def init_fn(key, shape, dtype=jnp.float32):
      key, chrono_key = jax.random.split(key)
      return base(key, shape, dtype).at[hidden : 2 * hidden].set(_chrono_bias(chrono_key, hidden, t_max, dtype))

    return init_fn


class LSTMCell(_GatedOptions):
  """LSTM cell; equations in `gru_jax.cells.lstm_step`. Gate order i, f, g, o (PyTorch).

  Params: input_kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]. Carry: (c, h), as in
  flax.linen.

  Attributes:
    forget_bias: added to the forget-gate block of the bias at initialisation (1.0, as advised by
      Jozefowicz et al. 2015); 0.0 gives the plain `bias_init`. Ignored with chrono_init.
    layer_norm, chrono_init: see `_GatedOptions`.
  """

  forget_bias: float = 1.0
  num_gates: ClassVar[int] = 4
  forget_block: ClassVar[int] = 1
  input_block: ClassVar[int | None] = 0

  @nn.nowrap
  def step_fn(self):
    return cells.lstm_step

  @nn.nowrap
  def gates_fn(self):
    return None if self.layer_norm else cells.lstm_gates

  @nn.nowrap
  def hidden_fn(self):
    return _second

  @nn.nowrap
  def zero_carry(self, batch_shape, dtype):
    zeros = jnp.zeros(batch_shape + (self.features,), dtype)
    return (zeros, zeros)

  @nn.nowrap
  def extra_param_specs(self):
    specs = super().extra_param_specs()
    if self.layer_norm:
      specs["ln_cell_scale"] = (nn.initializers.ones_init(), (self.features,))
    return specs

  @nn.nowrap
  def bias_initializer(self):
    base = super().bias_initializer()
    hidden, t_max = self.features, self.chrono_init
    f0, i0 = self.forget_block * hidden, None if self.input_block is None else self.input_block * hidden

    def init_fn(key, shape, dtype=jnp.float32):
      if t_max is None:
        return base(key, shape, dtype).at[f0 : f0 + hidden].add(jnp.asarray(self.forget_bias, dtype))
      key, chrono_key = jax.random.split(key)
      bias = base(key, shape, dtype)
      chrono = _chrono_bias(chrono_key, hidden, t_max, dtype)
      bias = bias.at[f0 : f0 + hidden].set(chrono)
      return bias if i0 is None else bias.at[i0 : i0 + hidden].set(-chrono)

    return init_fn


class SimpleRNNCell(RecurrentCell):
  """Vanilla (Elman) RNN cell: h' = act(W_ih x + b_ih + W_hh h + b_hh) (PyTorch nn.RNN form).

  Params: input_kernel [D, H], recurrent_kernel [H, H], bias [H]. Carry: h [..., H].

  Attributes:
    activation: "tanh" (default), "relu" or "identity" (a linear RNN).
  """

  activation: str = "tanh"

  def __post_init__(self):
    cells.activation_fn(self.activation)
    super().__post_init__()

  @nn.nowrap
  def step_fn(self):
    return functools.partial(cells.rnn_step, activation=self.activation)

  @nn.nowrap
  def gates_fn(self):
    return functools.partial(cells.rnn_gates, activation=self.activation)


class GRUNoResetCell(RecurrentCell):
  """GRU without reset gate (r ≡ 1); equations in `gru_jax.cells.gru_no_reset_step`. z keeps.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks z, n), bias [2H]. Carry: h.
  """

  num_gates: ClassVar[int] = 2

  @nn.nowrap
  def step_fn(self):
    return cells.gru_no_reset_step

  @nn.nowrap
  def gates_fn(self):
    return cells.gru_no_reset_gates


class MGUCell(RecurrentCell):
  """Minimal gated unit (Zhou et al. 2016); equations in `gru_jax.cells.mgu_step`.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks f, n), bias [2H]. Carry: h.
  """

  num_gates: ClassVar[int] = 2

  @nn.nowrap
  def step_fn(self):
    return cells.mgu_step


class CIFGLSTMCell(LSTMCell):
  """Coupled input-forget gate LSTM (input gate = 1 - f); equations in
  `gru_jax.cells.cifg_lstm_step`. Params: input_kernel [D, 3H], recurrent_kernel [H, 3H]
  (blocks f, g, o), bias [3H]. Carry: (c, h). No layer_norm.
  """

  num_gates: ClassVar[int] = 3
  forget_block: ClassVar[int] = 0
  input_block: ClassVar[int | None] = None
  supports_layer_norm: ClassVar[bool] = False

  @nn.nowrap
  def step_fn(self):
    return cells.cifg_lstm_step

  @nn.nowrap
  def gates_fn(self):
    return cells.cifg_lstm_gates


class PeepholeLSTMCell(LSTMCell):
  """Peephole LSTM (Gers & Schmidhuber 2000); equations in `gru_jax.cells.peephole_lstm_step`.
  Params: those of `LSTMCell` plus peephole [3H] (p_i, p_f, p_o; zeros at init). No layer_norm.
  """

  supports_layer_norm: ClassVar[bool] = False

  @nn.nowrap
  def step_fn(self):
    return cells.peephole_lstm_step

  @nn.nowrap
  def gates_fn(self):
    return None

  @nn.nowrap
  def extra_param_specs(self):
    return {"peephole": (nn.initializers.zeros_init(), (3 * self.features,))}


class MinGRUCell(RecurrentCell):
  """minGRU (Feng et al. 2024); equations in `gru_jax.cells.mingru_step` (z there takes the new
  value, as in the paper). Params: input_kernel [D, 2H] (blocks z, h~), bias [2H]; no recurrent
  kernel. Carry: h. The layer trains it with the log-space parallel scan.
  """

  num_gates: ClassVar[int] = 2
  has_recurrent_kernel: ClassVar[bool] = False

  @nn.nowrap
  def step_fn(self):
    return cells.mingru_step

  @nn.nowrap
  def parallel_fn(self):
    return functools.partial(_log_space_all_steps, cells.mingru_log_coefficients)


class MinLSTMCell(RecurrentCell):
  """minLSTM (Feng et al. 2024); equations in `gru_jax.cells.minlstm_step`. Params: input_kernel
  [D, 3H] (blocks f, i, h~), bias [3H]; no recurrent kernel. Carry: h (no cell state).
  """

  num_gates: ClassVar[int] = 3
  has_recurrent_kernel: ClassVar[bool] = False

  @nn.nowrap
  def step_fn(self):
    return cells.minlstm_step

  @nn.nowrap
  def parallel_fn(self):
    return functools.partial(_log_space_all_steps, cells.minlstm_log_coefficients)


def _log_space_all_steps(log_coefficients, params, h0, xp):
  del params
  log_a, log_b = log_coefficients(xp)
  hs = parallel.log_space_scan(log_a, log_b, h0)
  return hs, hs


class SRUCell(RecurrentCell):
  """Simple recurrent unit; equations in `gru_jax.cells.sru_step`. All matmuls are over x only.

  Params: input_kernel [D, 3H] (blocks x~, f, r), bias [2H] (b_f, b_r), highway_kernel [D, H]
  when D != H, and for version 2018 peephole [2H] (v_f, v_r; zeros at init). Carry: c; the output
  h is not part of the carry.

  Attributes:
    version: 2017 (Lei et al. 2017: gates from x only, so the layer runs c with a parallel scan)
      or 2018 (Lei et al. 2018: v ⊙ c_{t-1} inside the gates; sequential).
    activation: g in h = r ⊙ g(c) + (1 - r) ⊙ x; None picks the paper's: tanh for 2017, identity
      for 2018.
  """

  version: int = 2017
  activation: str | None = None
  num_gates: ClassVar[int] = 3
  has_recurrent_kernel: ClassVar[bool] = False
  output_in_carry: ClassVar[bool] = False

  def __post_init__(self):
    if self.version not in (2017, 2018):
      raise ValueError(f"SRUCell: version must be 2017 or 2018; got {self.version!r}")
    cells.activation_fn(self.g)
    super().__post_init__()

  @property
  def g(self) -> str:
    return self.activation or ("tanh" if self.version == 2017 else "identity")

  @nn.nowrap
  def param_specs(self, in_features):
    hidden = self.features
    specs = {"input_kernel": (per_gate(self.kernel_init, 3), (in_features, 3 * hidden))}
    if self.use_bias:
      specs["bias"] = (per_gate(self.bias_init, 2), (2 * hidden,))
    if in_features != hidden:
      specs["highway_kernel"] = (self.kernel_init, (in_features, hidden))
    if self.version == 2018:
      specs["peephole"] = (nn.initializers.zeros_init(), (2 * hidden,))
    return specs

  @nn.nowrap
  def project_fn(self):
    return cells.sru_project

  @nn.nowrap
  def step_fn(self):
    return functools.partial(cells.sru_step, activation=self.g)

  @nn.nowrap
  def parallel_fn(self):
    return functools.partial(_sru_all_steps, self.g) if self.version == 2017 else None


def _sru_all_steps(activation, params, c0, xp):
  del params
  x_tilde, f, r, highway = cells.gate_blocks(xp, 4)
  f, r = jax.nn.sigmoid(f), jax.nn.sigmoid(r)
  cs = parallel.linear_scan(f, (1.0 - f) * x_tilde, c0)
  return cs, r * cells.activation_fn(activation)(cs) + (1.0 - r) * highway


def _identity(carry):
  return carry


def _second(carry):
  return carry[1]


def _check_carry(owner: str, carry: Carry, expected: Carry) -> None:
  """Raises a ValueError unless `carry` has the structure and shapes of `expected`."""
  got_def = jax.tree_util.tree_structure(carry)
  want_def = jax.tree_util.tree_structure(expected)
  got_shapes = [tuple(np.shape(c)) for c in jax.tree_util.tree_leaves(carry)]
  want_shapes = [tuple(c.shape) for c in jax.tree_util.tree_leaves(expected)]
  if got_def != want_def or got_shapes != want_shapes:
    got = jax.tree_util.tree_unflatten(got_def, got_shapes) if got_def.num_leaves else carry
    want = jax.tree_util.tree_unflatten(want_def, want_shapes)
    raise ValueError(f"{owner}: initial_carry must have shapes {want}; got {got}")


class Recurrent(CellOptions):
  """Base of the scanned layers: a cell run over time with `jax.lax.scan`.

  The input projection of all time steps is one matmul outside the loop; the loop does one fused
  recurrent matmul per step. Parameters are those of the cell, at the top level of the layer
  (plus `initial_carry` when `learn_initial_carry`).

  Attributes:
    unroll: time steps per loop iteration (`jax.lax.scan(unroll=...)`); None picks the measured
      default of the backend (`gru_jax.scan.DEFAULT_UNROLL`: 16 on GPU, 1 on CPU).
    remat: recompute each step in the backward pass rather than store it (long sequences).
    learn_initial_carry: learn the initial carry (zeros at init) instead of using zeros.
    time_major: inputs and outputs are [T, ..., D] / [T, ..., H] instead of [..., T, D].
    custom_vjp: use the hand-written backward pass of `gru_jax.fused` where the cell allows it
      (reset-after GRU, LSTM, SimpleRNN, GRU without reset gate, CIFG LSTM); False differentiates
      `lax.scan` with autodiff. Both compute the same values and gradients (tested); they differ
      in speed.
    parallel: run cells whose recurrence is linear in the carry (minGRU, minLSTM, SRU 2017) with a
      parallel scan over time (`gru_jax.parallel`); False runs their step with `lax.scan`. Same
      function (tested). None picks the measured default of the backend
      (`gru_jax.scan.default_parallel`: parallel on GPU and TPU, sequential on CPU).
    recurrent_dropout: variational dropout on h where it enters the recurrent matmul, one mask per
      sequence drawn before the loop (Gal & Ghahramani 2016); needs a 'dropout' rng when
      `deterministic=False`. Cells with a recurrent kernel only.
    zoneout: each unit of the carry keeps its previous value with this probability at each step
      (Krueger et al. 2017); at evaluation the carry is the expectation, zoneout * old + (1 -
      zoneout) * new. Needs a 'dropout' rng when `deterministic=False`.
  """

  unroll: int | None = None
  remat: bool = False
  learn_initial_carry: bool = False
  time_major: bool = False
  custom_vjp: bool = True
  parallel: bool | None = None
  recurrent_dropout: float = 0.0
  zoneout: float = 0.0

  cell_class: ClassVar[type[RecurrentCell]] = RecurrentCell

  def __post_init__(self):
    owner = type(self).__name__
    _check_positive_int(owner, "features", self.features)
    if self.unroll is not None:
      _check_positive_int(owner, "unroll", self.unroll)
    for name in ("recurrent_dropout", "zoneout"):
      rate = getattr(self, name)
      if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1); got {rate!r}")
    if self.recurrent_dropout and not self.cell_class.has_recurrent_kernel:
      raise ValueError(f"{owner}: recurrent_dropout needs a cell with a recurrent kernel; {owner} has none")
    if self.zoneout and not self.cell_class.output_in_carry:
      raise ValueError(f"{owner}: zoneout needs a cell whose output is its carry; {owner}'s is not")
    self.make_cell(parent=None)  # the cell validates its own options now, not at first call
    super().__post_init__()

  @nn.nowrap
  def make_cell(self, **kwargs) -> RecurrentCell:
    """The cell this layer scans, with the layer's cell options."""
    names = [f.name for f in dataclasses.fields(self.cell_class) if f.name not in ("parent", "name")]
    return self.cell_class(**{n: getattr(self, n) for n in names}, **kwargs)

  def setup(self):
    self.cell = self.make_cell()
    nn.share_scope(self, self.cell)
    if self.learn_initial_carry:
      self.learned_carry = self.param(
        "initial_carry", lambda key: self.cell.zero_carry((), self.param_dtype)
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
    owner = type(self).__name__
    xs_TxBxD, batch_shape = _to_time_major(owner, xs, self.time_major)
    num_steps, batch = xs_TxBxD.shape[0], math.prod(batch_shape)

    params = self.cell.declare_params(xs_TxBxD.shape[-1])
    xs_TxBxD, params = _promote(xs_TxBxD, params, self.dtype)
    dtype = xs_TxBxD.dtype

    carry = self._initial_carry(owner, initial_carry, batch_shape, dtype)
    carry = jax.tree_util.tree_map(lambda c: c.reshape(batch, self.features), carry)
    lengths = _check_lengths(owner, seq_lengths, batch_shape, num_steps, xs.shape)
    if lengths is not None:
      lengths = lengths.reshape(batch)

    if self.recurrent_dropout and not deterministic:
      keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.recurrent_dropout, (batch, self.features))
      params = {**params, "hidden_mask": keep.astype(dtype) / (1.0 - self.recurrent_dropout)}
    step = functools.partial(self.cell.step_fn(), params)
    split = None if ("hidden_mask" in params or self.zoneout) else self._split(params, dtype)
    parallel = scan_lib.default_parallel() if self.parallel is None else self.parallel
    all_steps = self.cell.parallel_fn() if parallel and not self.zoneout else None
    if split is None:
      xp = self.cell.project_fn()(params, xs_TxBxD)
    else:
      xp = cells.project_blocks(params, xs_TxBxD, self.cell.num_gates)
    if self.zoneout:
      step, xp = self._zoneout(step, xp, num_steps, deterministic, dtype)
    carry, ys_TxBxH = scan_lib.scan(
      step, carry, xp, seq_lengths=lengths, reverse=reverse,
      unroll=scan_lib.default_unroll() if self.unroll is None else self.unroll, remat=self.remat, split=split,
      parallel=None if all_steps is None else functools.partial(all_steps, params),
    )

    ys_TxBxH = ys_TxBxH.reshape((num_steps,) + batch_shape + (self.features,))
    ys = ys_TxBxH if self.time_major else jnp.moveaxis(ys_TxBxH, 0, -2)
    if not return_carry:
      return ys
    carry = jax.tree_util.tree_map(lambda c: c.reshape(batch_shape + (self.features,)), carry)
    return ys, carry

  def _zoneout(self, step, xp, num_steps, deterministic, dtype):
    """The step with zoneout, and its per-step inputs (xp, keep): keep is 1 where a unit keeps its
    old value (drawn before the loop, [T, B, H]), or the rate itself when deterministic."""
    batch = jax.tree_util.tree_leaves(xp)[0].shape[1]
    if deterministic:
      keep = jnp.full((num_steps, batch, 1), self.zoneout, dtype)
    else:
      keep = jax.random.bernoulli(self.make_rng("dropout"), self.zoneout, (num_steps, batch, self.features)).astype(dtype)
    hidden_of = self.cell.hidden_fn()

    def zoned(carry, inputs):
      xp_t, keep_t = inputs
      new, _ = step(carry, xp_t)
      new = jax.tree_util.tree_map(lambda n, o: keep_t * o + (1.0 - keep_t) * n, new, carry)
      return new, hidden_of(new)

    return zoned, (xp, keep)

  def _split(self, params, dtype):
    """(gates, hidden_of, w_h, b) for the fused scan, or None for the autodiff path."""
    gates = self.cell.gates_fn()
    if not self.custom_vjp or gates is None:
      return None
    w_h = params["recurrent_kernel"]
    bias = cells.recurrent_bias(params, w_h.shape[-1], dtype)
    bias = jnp.zeros((w_h.shape[-1],), dtype) if bias is None else bias
    return gates, self.cell.hidden_fn(), w_h, bias

  def _initial_carry(self, owner, initial_carry, batch_shape, dtype):
    zeros = self.cell.zero_carry(batch_shape, dtype)
    if initial_carry is not None:
      _check_carry(owner, initial_carry, zeros)
      return jax.tree_util.tree_map(lambda c: jnp.asarray(c).astype(dtype), initial_carry)
    if self.learn_initial_carry:
      return jax.tree_util.tree_map(
        lambda c, z: jnp.broadcast_to(c.astype(dtype), z.shape), self.learned_carry, zeros
      )
    return zeros


def _to_time_major(owner: str, xs: Any, time_major: bool) -> tuple[Array, tuple[int, ...]]:
  """Checks xs and returns it as [T, B, D] with one flat batch axis, plus the batch shape."""
  if not hasattr(xs, "ndim") or xs.ndim < 2:
    layout = "[T, ..., D]" if time_major else "[..., T, D]"
    raise ValueError(f"{owner}: xs must have shape {layout} (at least 2 axes); got {np.shape(xs)}")
  if not jnp.issubdtype(xs.dtype, jnp.floating):
    raise TypeError(f"{owner}: xs must be floating point; got dtype {xs.dtype}")
  if time_major:
    batch_shape = tuple(xs.shape[1:-1])
    xs_TxBxD = xs
  else:
    batch_shape = tuple(xs.shape[:-2])
    xs_TxBxD = jnp.moveaxis(xs, -2, 0)
  num_steps, features = xs_TxBxD.shape[0], xs_TxBxD.shape[-1]
  return xs_TxBxD.reshape(num_steps, math.prod(batch_shape), features), batch_shape


def _check_lengths(owner, seq_lengths, batch_shape, num_steps, xs_shape):
  """Checks seq_lengths against the batch shape (and, when concrete, against [0, T])."""
  if seq_lengths is None:
    return None
  lengths = jnp.asarray(seq_lengths)
  if lengths.shape != batch_shape:
    raise ValueError(
      f"{owner}: seq_lengths must have the batch shape {batch_shape} of xs {tuple(xs_shape)}; "
      f"got shape {lengths.shape} (no broadcasting)"
    )
  if not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise TypeError(f"{owner}: seq_lengths must be integers; got dtype {lengths.dtype}")
  if _is_concrete(seq_lengths) and lengths.size:
    low, high = int(np.min(np.asarray(lengths))), int(np.max(np.asarray(lengths)))
    if low < 0 or high > num_steps:
      raise ValueError(
        f"{owner}: seq_lengths must lie in [0, T={num_steps}]; got values from {low} to {high}"
      )
  return lengths


class GRU(Recurrent):
  """GRU layer: `GRUCell` scanned over time. z is the keep gate; see `gru_jax.cells.gru_step`.

  Attributes:
    reset_after: True for the PyTorch / cuDNN form (default), False for Cho et al. 2014 v3.
    layer_norm, chrono_init: normalised gate pre-activations; chrono init of the z bias (`GRUCell`).
  """

  reset_after: bool = True
  layer_norm: bool = False
  chrono_init: int | None = None
  cell_class: ClassVar[type[RecurrentCell]] = GRUCell


class LSTM(Recurrent):
  """LSTM layer: `LSTMCell` scanned over time; the carry is (c, h), as in flax.linen.

  Attributes:
    forget_bias: initial value added to the forget-gate bias (1.0).
    layer_norm, chrono_init: normalised gate pre-activations; chrono init of b_f, b_i (`LSTMCell`).
  """

  forget_bias: float = 1.0
  layer_norm: bool = False
  chrono_init: int | None = None
  cell_class: ClassVar[type[RecurrentCell]] = LSTMCell


class SimpleRNN(Recurrent):
  """Vanilla RNN layer: `SimpleRNNCell` scanned over time.

  Attributes:
    activation: "tanh" (default), "relu" or "identity" (a linear RNN).
  """

  activation: str = "tanh"
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
    merge: "concat" (outputs [..., 2H], PyTorch's layout) or "sum".
  """

  forward_rnn: nn.Module
  backward_rnn: nn.Module
  merge: str = "concat"

  def __call__(self, xs, *, seq_lengths=None, initial_carry=None, return_carry=False, deterministic=True):
    """Like the layers' call; initial_carry and the returned carry are (forward, backward)."""
    if self.merge not in ("concat", "sum"):
      raise ValueError(f"Bidirectional: merge={self.merge!r} is not supported; expected 'concat' or 'sum'")
    carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
    ys_f, carry_f = self.forward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_f, return_carry=True, deterministic=deterministic
    )
    ys_b, carry_b = self.backward_rnn(
      xs, seq_lengths=seq_lengths, initial_carry=carry_b, return_carry=True, reverse=True, deterministic=deterministic
    )
    ys = jnp.concatenate([ys_f, ys_b], axis=-1) if self.merge == "concat" else ys_f + ys_b
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
    _check_positive_int("Stacked", "num_layers", self.num_layers)
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
