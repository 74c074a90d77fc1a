"""Cell specs: everything a front-end needs to know about a cell, without Flax.

A spec is a frozen dataclass of the cell's options (features, initialisers, switches such as the
GRU's `reset_after`) with the pure functions that define it:

  param_specs(D)   name -> (initializer, shape) of every parameter, for inputs of D features
  project_fn()     (params, x [..., D]) -> xp, the input projection of all steps at once
  step_fn()        (params, carry, xp_t) -> (carry, y_t), one time step (`gru_jax.cells`)
  gates_fn()       the elementwise part of the step after the one recurrent matmul, or None
                   (`gru_jax.fused` differentiates it by hand)
  hidden_fn()      carry -> the leaf that multiplies the recurrent kernel
  zero_carry(b, t) the zero carry for batch shape b and dtype t
  parallel_fn()    for recurrences linear in the carry: all steps at once, or None

The linen modules (`gru_jax.layers`) and the NNX modules (`gru_jax.nnx`) are front-ends of these
specs: the same parameters under the same names, the same step. `gru_jax.recurrent.run` runs a spec over
time. Options are validated when a spec is built, so a front-end fails at construction.
"""

import dataclasses
import functools
import inspect
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import cells, parallel

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


def is_int(value: Any) -> bool:
  """An integer, numpy's included, and not a bool."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(owner: str, name: str, value: Any) -> None:
  if not is_int(value) or value <= 0:
    raise ValueError(f"{owner}: {name} must be a positive integer; got {value!r}")


def _identity(carry):
  return carry


def _second(carry):
  return carry[1]


def _gate_sums(spec, params, carry, xp) -> list[Array]:
  """The gate pre-activations x-part + h-part of one step, as blocks [B, H] (for `gate_values`)."""
  pre = spec.recurrent_pre(params, spec.hidden_fn()(carry))
  return [x + p for x, p in zip(cells.gate_blocks(xp, spec.num_gates), cells.gate_blocks(pre, spec.num_gates))]


@dataclasses.dataclass(frozen=True)
class CellSpec:
  """Options shared by every cell.

  Attributes:
    features: hidden size H.
    kernel_init: initializer of the input kernel, applied per gate block (LeCun normal).
    recurrent_kernel_init: initializer of the recurrent kernel, per gate block (orthogonal).
    bias_init: initializer of the folded biases (zeros).
    use_bias: whether the cell has biases at all (PyTorch's `bias=False` is `use_bias=False`).
  """

  features: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  recurrent_kernel_init: Initializer = jax.nn.initializers.orthogonal()
  bias_init: Initializer = jax.nn.initializers.zeros
  use_bias: bool = True

  num_gates: ClassVar[int] = 1
  has_recurrent_kernel: ClassVar[bool] = True
  # Whether the step's output is `hidden_fn()(carry)` (all cells but the SRU, whose carry is c).
  output_in_carry: ClassVar[bool] = True
  # The name its front-ends report in errors ("GRUCell").
  cell_name: ClassVar[str] = "RecurrentCell"

  def __post_init__(self):
    check_positive_int(self.cell_name, "features", self.features)

  def step_fn(self) -> Callable[[dict, Carry, Array], tuple[Carry, Array]]:
    """The pure step `(params, carry, xp) -> (carry, y)` of this cell."""
    raise NotImplementedError

  def zero_carry(self, batch_shape: tuple[int, ...], dtype: Any) -> Carry:
    return jnp.zeros(batch_shape + (self.features,), dtype)

  def gates_fn(self) -> Callable | None:
    """The elementwise part `(xp, pre, carry, *gate_params) -> (carry, y)` of the step, given
    xp = `fused_project`'s blocks and pre = `hidden_fn()(carry) @ fused_kernel(params)` (+ the
    recurrent bias when there are no gate params); None if the step does not split so (then only
    the autodiff path applies)."""
    return None

  def gate_params(self, params: dict[str, Array], bias: Array) -> tuple[Array, ...]:
    """The arrays `gates_fn()` takes after the carry (e.g. layer-norm scales and the biases that
    come after the normalisation). When there are any, the fused scan's matmul adds no bias: the
    gates add `bias` [G*H], the recurrent bias, where it belongs (the LSTM has none)."""
    return ()

  def hidden_fn(self) -> Callable[[Carry], Array]:
    """Picks the carry leaf that multiplies the recurrent kernel."""
    return _identity

  def gate_values(self, params: dict[str, Array], carry: Carry, xp: Array) -> dict[str, Array]:
    """The named gate activations [B, H] of one step from `project_fn()`'s xp, for
    `gru_jax.insight` ("keep": the share of the old state each unit carries into the new one:
    the GRU's z, the LSTM's f, 1 - f for the MGU, ...); {} for a cell without gates."""
    return {}

  def fused_kernel(self, params: dict[str, Array]) -> Array:
    """The kernel h multiplies on the fast path, as `gates_fn()` expects its pre-activations."""
    return params["recurrent_kernel"]

  def fused_project(self, params: dict[str, Array], xs: Array) -> tuple[Array, ...]:
    """The fast path's per-step inputs: the G gate blocks of the input projection, as `gates_fn()`
    expects them."""
    return cells.project_blocks(params, xs, self.num_gates, use_bias=self.use_bias)

  def recurrent_pre(self, params: dict[str, Array], h: Array) -> Array:
    """h @ W_h as this cell's step computes it (`cells.recurrent_pre` with the cell's flags)."""
    return cells.recurrent_pre(params, h)

  def recurrent_bias(self, params: dict[str, Array], width: int, dtype) -> Array | None:
    """The bias the fast path adds to h @ W_h [G*H] (the reset-after GRU's [0, 0, b_hn]), or None."""
    return None

  def bias_initializer(self) -> Initializer:
    return per_gate(self.bias_init, self.num_gates)

  def extra_param_specs(self) -> dict[str, tuple[Initializer, tuple[int, ...]]]:
    """Parameters beyond the common layout: name -> (initializer, shape)."""
    return {}

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

  def project_fn(self) -> Callable[[dict, Array], Array]:
    """The input projection `(params, x) -> xp` that the step expects (one matmul for all steps)."""
    return functools.partial(cells.project, use_bias=self.use_bias)

  def parallel_fn(self, custom_vjp: bool = True) -> Callable | None:
    """For cells whose recurrence is linear in the carry: `(params, carry, xp [T, B, ...], resets=None,
    reset_carry=None) -> (carries [T, B, H], ys [T, B, H])`, all steps at once with a parallel scan
    (its hand-written backward pass with custom_vjp, else autodiff, which forward mode needs),
    restarted from `reset_carry` (default: the carry) where `resets` ([T, B, 1] booleans) is True
    (`restart`); else None."""
    return None


def _chrono_bias(key: Array, hidden: int, t_max: int, dtype) -> Array:
  """log u, u ~ U[1, t_max - 1] per unit: chrono initialisation (Tallec & Ollivier 2018), which
  makes a keep gate σ(b) hold its unit for about u steps at the start of training."""
  return jnp.log(jax.random.uniform(key, (hidden,), jnp.float32, 1.0, max(t_max - 1, 1))).astype(dtype)


@dataclasses.dataclass(frozen=True)
class _GatedSpec(CellSpec):
  """Switches of the GRU and LSTM cells: layer normalisation and chrono initialisation.

  Attributes:
    layer_norm: normalise each gate block of x @ W_x and of h @ W_h separately over the hidden
      units, with learned scales `ln_input_scale` / `ln_recurrent_scale` [G*H] (Ba et al. 2016);
      the biases come after. (The LSTM also normalises c' before its tanh, `ln_cell_scale` [H].)
    chrono_init: T_max for the chrono initialisation of the keep/forget gate bias (Tallec &
      Ollivier 2018): b ~ log U[1, T_max - 1] (and for the LSTM, b_i = -b_f); None: off.
    gate_fn, activation_fn: the gates' squashing function (σ) and the candidate's and cell
      output's (tanh), as the fields of Flax's cells. Other functions run on the reference
      (autodiff) path, not the fused one.
  """

  layer_norm: bool = False
  chrono_init: int | None = None
  gate_fn: Callable = jax.nn.sigmoid
  activation_fn: Callable = jnp.tanh
  supports_layer_norm: ClassVar[bool] = True
  supports_functions: ClassVar[bool] = True

  def __post_init__(self):
    if self.layer_norm and not self.supports_layer_norm:
      raise ValueError(f"{self.cell_name}: layer_norm is implemented for the GRU and LSTM cells only")
    if self.custom_functions and not self.supports_functions:
      raise ValueError(f"{self.cell_name}: gate_fn and activation_fn other than sigmoid and tanh are implemented for "
                       "the GRU and LSTM cells only")
    if self.chrono_init is not None:
      check_positive_int(self.cell_name, "chrono_init", self.chrono_init)
      if self.chrono_init < 2:
        raise ValueError(f"{self.cell_name}: chrono_init (T_max) must be at least 2; got {self.chrono_init}")
    super().__post_init__()

  def extra_param_specs(self):
    if not self.layer_norm:
      return {}
    ones = jax.nn.initializers.ones
    width = self.num_gates * self.features
    return {"ln_input_scale": (ones, (width,)), "ln_recurrent_scale": (ones, (width,))}

  def gate_params(self, params, bias):
    # With layer normalisation the gates normalise both projections themselves, then add the biases.
    if not self.layer_norm:
      return ()
    input_bias = params["bias"] if self.use_bias else jnp.zeros_like(bias)
    return params["ln_input_scale"], input_bias, params["ln_recurrent_scale"], bias

  def recurrent_pre(self, params, h):
    return cells.recurrent_pre(params, h, layer_norm=self.layer_norm)

  def project_fn(self):
    return functools.partial(cells.project, layer_norm=self.layer_norm, use_bias=self.use_bias)

  def fused_kernel(self, params):
    # With layer normalisation the gates take h @ centre_blocks(W_h), whose blocks have mean zero.
    kernel = params["recurrent_kernel"]
    return cells.centre_blocks(kernel, self.num_gates) if self.layer_norm else kernel

  def fused_project(self, params, xs):
    if not self.layer_norm:
      return super().fused_project(params, xs)
    return cells.centred_projection_blocks(params, xs, self.num_gates)

  @property
  def custom_functions(self) -> bool:
    """Whether gate_fn or activation_fn differ from sigmoid and tanh (then no fused path)."""
    return self.gate_fn is not jax.nn.sigmoid or self.activation_fn is not jnp.tanh


@dataclasses.dataclass(frozen=True)
class GRUSpec(_GatedSpec):
  """GRU; equations and the two variants in `gru_jax.cells.gru_step`. z is the keep gate.

  Params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks r, z, n), bias [3H] and, when
  reset_after, recurrent_bias_n [H]. Carry: h [..., H].

  Attributes:
    reset_after: True for the PyTorch / cuDNN / flax.linen form (default), False for the
      Cho et al. 2014 v3 / Chung et al. 2014 form.
    layer_norm, chrono_init, gate_fn, activation_fn: below (chrono sets the bias of the keep gate z).
  """

  reset_after: bool = True
  num_gates: ClassVar[int] = 3
  cell_name: ClassVar[str] = "GRUCell"

  def __post_init__(self):
    if self.layer_norm and not self.reset_after:
      raise ValueError("GRUCell: layer_norm is implemented for reset_after=True only")
    super().__post_init__()

  def step_fn(self):
    return functools.partial(cells.gru_step, reset_after=self.reset_after, gate_fn=self.gate_fn,
                             activation_fn=self.activation_fn, layer_norm=self.layer_norm, use_bias=self.use_bias)

  @property
  def has_bias_n(self) -> bool:
    """Whether the params hold recurrent_bias_n (b_hn, inside r ⊙ (W_hn h + b_hn))."""
    return self.use_bias and self.reset_after

  def recurrent_pre(self, params, h):
    return cells.recurrent_pre(params, h, layer_norm=self.layer_norm, bias_n=self.has_bias_n)

  def recurrent_bias(self, params, width, dtype):
    return cells.recurrent_bias(params, width, dtype) if self.has_bias_n else None

  def gates_fn(self):
    if not self.reset_after or self.custom_functions:
      return None
    return cells.gru_gates_ln if self.layer_norm else cells.gru_gates

  def gate_values(self, params, carry, xp):
    r, z, _ = _gate_sums(self, params, carry, xp)
    return {"reset": self.gate_fn(r), "update": self.gate_fn(z), "keep": self.gate_fn(z)}

  def extra_param_specs(self):
    specs = super().extra_param_specs()
    if self.has_bias_n:
      specs["recurrent_bias_n"] = (per_gate(self.bias_init, 1), (self.features,))
    return specs

  def bias_initializer(self):
    base = super().bias_initializer()
    if self.chrono_init is None:
      return base
    hidden, t_max = self.features, self.chrono_init

    def init_fn(key, shape, dtype=jnp.float32):
      key, chrono_key = jax.random.split(key)
      return base(key, shape, dtype).at[hidden : 2 * hidden].set(_chrono_bias(chrono_key, hidden, t_max, dtype))

    return init_fn


@dataclasses.dataclass(frozen=True)
class LSTMSpec(_GatedSpec):
  """LSTM; equations in `gru_jax.cells.lstm_step`. Gate order i, f, g, o (PyTorch).

  Params: input_kernel [D, 4H], recurrent_kernel [H, 4H], bias [4H]. Carry: (c, h), as in
  flax.linen.

  Attributes:
    forget_bias: added to the forget-gate block of the bias at initialisation (1.0, as advised by
      Jozefowicz et al. 2015); 0.0 gives the plain `bias_init`. Ignored with chrono_init.
    layer_norm, chrono_init, gate_fn, activation_fn: below.
  """

  forget_bias: float = 1.0
  num_gates: ClassVar[int] = 4
  forget_block: ClassVar[int] = 1
  input_block: ClassVar[int | None] = 0
  cell_name: ClassVar[str] = "LSTMCell"

  def step_fn(self):
    return functools.partial(cells.lstm_step, gate_fn=self.gate_fn, activation_fn=self.activation_fn, layer_norm=self.layer_norm)

  def gates_fn(self):
    if self.custom_functions:
      return None
    return cells.lstm_gates_ln if self.layer_norm else cells.lstm_gates

  def gate_params(self, params, bias):
    # The LSTM has no recurrent bias: (input scale, bias, recurrent scale, cell scale).
    if not self.layer_norm:
      return ()
    input_scale, input_bias, scale, _ = super().gate_params(params, bias)
    return input_scale, input_bias, scale, params["ln_cell_scale"]

  def gate_values(self, params, carry, xp):
    i, f, _, o = _gate_sums(self, params, carry, xp)
    return {"input": self.gate_fn(i), "forget": self.gate_fn(f), "output": self.gate_fn(o), "keep": self.gate_fn(f)}

  def hidden_fn(self):
    return _second

  def zero_carry(self, batch_shape, dtype):
    zeros = jnp.zeros(batch_shape + (self.features,), dtype)
    return (zeros, zeros)

  def extra_param_specs(self):
    specs = super().extra_param_specs()
    if self.layer_norm:
      specs["ln_cell_scale"] = (jax.nn.initializers.ones, (self.features,))
    return specs

  def bias_initializer(self):
    base = super().bias_initializer()
    if self.forget_block is None:  # no forget gate (Greff et al.'s NFG): forget_bias has nothing to add to
      return base
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


@dataclasses.dataclass(frozen=True)
class SimpleRNNSpec(CellSpec):
  """Vanilla (Elman) RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh) (PyTorch nn.RNN form).

  Params: input_kernel [D, H], recurrent_kernel [H, H], bias [H]. Carry: h [..., H].

  Attributes:
    activation: "tanh" (default), "relu" or "identity" (a linear RNN).
    activation_fn: any elementwise function instead of `activation` (`flax.linen.SimpleCell`'s
      field); give one or the other.
    residual: h' = act(... + h), `flax.linen.SimpleCell`'s pre-activation residual.
  """

  activation: str = "tanh"
  activation_fn: Callable | None = None
  residual: bool = False
  cell_name: ClassVar[str] = "SimpleRNNCell"

  def __post_init__(self):
    cells.activation_fn(self.activation)
    if self.activation_fn is not None and not callable(self.activation_fn):
      raise TypeError(f"{self.cell_name}: activation_fn must be a function; got {self.activation_fn!r}")
    if self.activation_fn is not None and self.activation != "tanh":
      raise ValueError(f"{self.cell_name}: give activation (a name) or activation_fn (a function), not both; got "
                       f"activation={self.activation!r} and activation_fn={self.activation_fn!r}")
    super().__post_init__()

  def act(self) -> str | Callable:
    """The activation: activation_fn when given, else the named one."""
    return self.activation if self.activation_fn is None else self.activation_fn

  def step_fn(self):
    return functools.partial(cells.rnn_step, activation=self.act(), residual=self.residual)

  def gates_fn(self):
    return functools.partial(cells.rnn_gates, activation=self.act(), residual=self.residual)


@dataclasses.dataclass(frozen=True)
class GRUNoResetSpec(CellSpec):
  """GRU without reset gate (r ≡ 1); equations in `gru_jax.cells.gru_no_reset_step`. z keeps.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks z, n), bias [2H]. Carry: h.
  """

  num_gates: ClassVar[int] = 2
  cell_name: ClassVar[str] = "GRUNoResetCell"

  def step_fn(self):
    return cells.gru_no_reset_step

  def gate_values(self, params, carry, xp):
    z = jax.nn.sigmoid(_gate_sums(self, params, carry, xp)[0])
    return {"update": z, "keep": z}

  def gates_fn(self):
    return cells.gru_no_reset_gates


@dataclasses.dataclass(frozen=True)
class MGUSpec(CellSpec):
  """Minimal gated unit (Zhou et al. 2016); equations in `gru_jax.cells.mgu_step`.

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks f, n), bias [2H]. Carry: h.
  """

  num_gates: ClassVar[int] = 2
  cell_name: ClassVar[str] = "MGUCell"

  def gate_values(self, params, carry, xp):
    f = jax.nn.sigmoid(_gate_sums(self, params, carry, xp)[0])  # the first block of h @ W_h is W_hf h
    return {"forget": f, "keep": 1.0 - f}

  def step_fn(self):
    return cells.mgu_step


@dataclasses.dataclass(frozen=True)
class CIFGLSTMSpec(LSTMSpec):
  """Coupled input-forget gate LSTM (input gate = 1 - f); equations in
  `gru_jax.cells.cifg_lstm_step`. Params: input_kernel [D, 3H], recurrent_kernel [H, 3H]
  (blocks f, g, o), bias [3H]. Carry: (c, h). No layer_norm.
  """

  num_gates: ClassVar[int] = 3
  forget_block: ClassVar[int] = 0
  input_block: ClassVar[int | None] = None
  supports_layer_norm: ClassVar[bool] = False
  supports_functions: ClassVar[bool] = False
  cell_name: ClassVar[str] = "CIFGLSTMCell"

  def gate_values(self, params, carry, xp):
    f, _, o = _gate_sums(self, params, carry, xp)
    return {"forget": jax.nn.sigmoid(f), "output": jax.nn.sigmoid(o), "keep": jax.nn.sigmoid(f)}

  def step_fn(self):
    return cells.cifg_lstm_step

  def gates_fn(self):
    return cells.cifg_lstm_gates


@dataclasses.dataclass(frozen=True)
class PeepholeLSTMSpec(LSTMSpec):
  """Peephole LSTM (Gers & Schmidhuber 2000), Greff et al. 2017's vanilla LSTM; equations in
  `gru_jax.cells.greff_lstm_step` (with nothing removed). Params: those of the LSTM plus peephole
  [3H] (p_i, p_f, p_o; zeros at init). On the fast path, the peepholes as gate params. No layer_norm.
  """

  supports_layer_norm: ClassVar[bool] = False
  supports_functions: ClassVar[bool] = False
  cell_name: ClassVar[str] = "PeepholeLSTMCell"
  removed: ClassVar[str] = ""  # what a Greff et al. variant takes out (`cells.GREFF_REMOVED`)

  def step_fn(self):
    return functools.partial(cells.greff_lstm_step, removed=self.removed)

  def gates_fn(self):
    return functools.partial(cells.greff_lstm_gates, removed=self.removed)

  def gate_params(self, params, bias):
    return (params["peephole"],)

  def extra_param_specs(self):
    return {"peephole": (jax.nn.initializers.zeros, (len(cells.greff_peepholes(self.removed)) * self.features,))}

  def gate_values(self, params, carry, xp):
    num = self.num_gates
    pre = cells.gate_blocks(self.recurrent_pre(params, carry[1]), num)
    parts = cells.greff_lstm_activations(cells.gate_blocks(xp, num), pre, carry, params["peephole"], removed=self.removed)
    return {"input": parts["input"], "forget": parts["forget"], "output": parts["output"], "keep": parts["forget"]}


@dataclasses.dataclass(frozen=True)
class GreffLSTMSpec(PeepholeLSTMSpec):
  """A variant of the peephole LSTM from Greff et al. 2017 ("LSTM: A Search Space Odyssey",
  arXiv:1503.04069), with one part taken out (`removed`: a gate fixed at 1 or an activation made
  the identity); equations in `gru_jax.cells.greff_lstm_activations` and `greff_lstm_gates`.

  Params: input_kernel [D, G*H], recurrent_kernel [H, G*H], bias [G*H] over the blocks
  `cells.greff_blocks(removed)` (i, f, g, o less the removed gate), peephole [P*H] for the gates it
  keeps (i, f, o order; zeros at init). Carry (c, h). Of the paper's other variants, NP (no
  peepholes) is `lstm` and CIFG is `cifg_lstm` (which has no peepholes here). No layer_norm.
  """

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    blocks = cells.greff_blocks(cls.removed)
    cls.num_gates, cls.forget_block = len(blocks), blocks.find("f") if "f" in blocks else None
    cls.input_block = blocks.find("i") if "i" in blocks else None

  def __post_init__(self):
    if self.chrono_init is not None and self.forget_block is None:
      raise ValueError(f"{self.cell_name}: chrono_init sets the forget gate's bias, and this cell has no forget gate")
    super().__post_init__()


@dataclasses.dataclass(frozen=True)
class NIGLSTMSpec(GreffLSTMSpec):
  """Greff et al. 2017's NIG: the peephole LSTM without input gate (i = 1)."""

  removed: ClassVar[str] = "input_gate"
  cell_name: ClassVar[str] = "NIGLSTMCell"


@dataclasses.dataclass(frozen=True)
class NFGLSTMSpec(GreffLSTMSpec):
  """Greff et al. 2017's NFG: the peephole LSTM without forget gate (f = 1)."""

  removed: ClassVar[str] = "forget_gate"
  cell_name: ClassVar[str] = "NFGLSTMCell"


@dataclasses.dataclass(frozen=True)
class NOGLSTMSpec(GreffLSTMSpec):
  """Greff et al. 2017's NOG: the peephole LSTM without output gate (o = 1)."""

  removed: ClassVar[str] = "output_gate"
  cell_name: ClassVar[str] = "NOGLSTMCell"


@dataclasses.dataclass(frozen=True)
class NIAFLSTMSpec(GreffLSTMSpec):
  """Greff et al. 2017's NIAF: the peephole LSTM without input activation (g = W x + R h + b)."""

  removed: ClassVar[str] = "input_activation"
  cell_name: ClassVar[str] = "NIAFLSTMCell"


@dataclasses.dataclass(frozen=True)
class NOAFLSTMSpec(GreffLSTMSpec):
  """Greff et al. 2017's NOAF: the peephole LSTM without output activation (h = o ⊙ c)."""

  removed: ClassVar[str] = "output_activation"
  cell_name: ClassVar[str] = "NOAFLSTMCell"


def _last(carry):
  return carry[-1]


@dataclasses.dataclass(frozen=True)
class FGRLSTMSpec(PeepholeLSTMSpec):
  """Greff et al. 2017's FGR: the peephole LSTM with full gate recurrence (each gate also sees
  the previous step's gates); equations in `gru_jax.cells.fgr_lstm_step`. Params: those of the
  peephole LSTM and gate_recurrent_kernel [3H, 3H] (drawn per gate block by
  recurrent_kernel_init). Carry: (c, i, f, o, h). Reference path only. No layer_norm.
  """

  cell_name: ClassVar[str] = "FGRLSTMCell"

  def step_fn(self):
    return cells.fgr_lstm_step

  def gates_fn(self):
    return None

  def gate_params(self, params, bias):
    return ()

  def hidden_fn(self):
    return _last

  def zero_carry(self, batch_shape, dtype):
    return tuple(jnp.zeros(batch_shape + (self.features,), dtype) for _ in range(5))

  def extra_param_specs(self):
    hidden = self.features
    return {**super().extra_param_specs(),
            "gate_recurrent_kernel": (per_gate(self.recurrent_kernel_init, 3), (3 * hidden, 3 * hidden))}

  def gate_values(self, params, carry, xp):
    new, _ = cells.fgr_lstm_step(params, carry, xp)
    return {"input": new[1], "forget": new[2], "output": new[3], "keep": new[2]}


@dataclasses.dataclass(frozen=True)
class DeyGRUSpec(CellSpec):
  """A gate variant of the reset-before GRU from Dey & Salem 2017 ("Gate-Variants of Gated
  Recurrent Unit (GRU) Neural Networks", arXiv:1701.05923): its gates r and z do not see x; they
  come from the state and a bias (GRU1), the state only (GRU2) or the bias only (GRU3). Equations
  in `gru_jax.cells.dey_gru_step`; z is the keep gate, as in `GRUSpec`. Reference path only (the
  reset multiplies h before the recurrent matmul, as in the reset-before GRU).

  Params: input_kernel [D, H]; recurrent_kernel [H, 3H] (blocks r, z, n; GRU3 [H, H]); bias [3H]
  (GRU2 [H], the candidate's only). Carry: h.
  """

  gates_from: ClassVar[str] = "state_and_bias"
  num_gates: ClassVar[int] = 3

  def __post_init__(self):
    if self.gates_from == "bias" and not self.use_bias:
      raise ValueError(f"{self.cell_name}: its gates are its biases, so use_bias=False leaves it none")
    super().__post_init__()

  def param_specs(self, in_features):
    hidden = self.features
    kernel_blocks = 1 if self.gates_from == "bias" else 3  # r, z, n; GRU3: n only
    bias_blocks = 1 if self.gates_from == "state" else 3  # r, z, n; GRU2: n only
    specs = {"input_kernel": (self.kernel_init, (in_features, hidden)),
             "recurrent_kernel": (per_gate(self.recurrent_kernel_init, kernel_blocks), (hidden, kernel_blocks * hidden))}
    if self.use_bias:
      specs["bias"] = (per_gate(self.bias_init, bias_blocks), (bias_blocks * hidden,))
    return specs

  def project_fn(self):
    return functools.partial(cells.dey_gru_project, gates_from=self.gates_from, use_bias=self.use_bias)

  def step_fn(self):
    return functools.partial(cells.dey_gru_step, gates_from=self.gates_from, use_bias=self.use_bias)

  def gate_values(self, params, carry, xp):
    r, z = cells.dey_gru_gates(params, carry, gates_from=self.gates_from, use_bias=self.use_bias)
    return {"reset": r, "update": z, "keep": z}


@dataclasses.dataclass(frozen=True)
class GRU1Spec(DeyGRUSpec):
  """Dey & Salem 2017's GRU1: gates from the state and a bias, r, z = σ(U h + b)."""

  gates_from: ClassVar[str] = "state_and_bias"
  cell_name: ClassVar[str] = "GRU1Cell"


@dataclasses.dataclass(frozen=True)
class GRU2Spec(DeyGRUSpec):
  """Dey & Salem 2017's GRU2: gates from the state only, r, z = σ(U h)."""

  gates_from: ClassVar[str] = "state"
  cell_name: ClassVar[str] = "GRU2Cell"


@dataclasses.dataclass(frozen=True)
class GRU3Spec(DeyGRUSpec):
  """Dey & Salem 2017's GRU3: gates from the bias only, r, z = σ(b), learned constants per unit."""

  gates_from: ClassVar[str] = "bias"
  cell_name: ClassVar[str] = "GRU3Cell"


# The parallel paths run `parallel.chunked_scan`: the loop within chunks of CHUNK steps. Chosen for
# accuracy: in benchmarks/results/cpu-2026-11-26-scans.md it has the sequential loop's float32 error
# where the log-space scan's is 400x larger on minGRU gates; on the CPU it is also 6-12x faster than
# the log-space scan, and its hand-written backward pass (used with the layers' custom_vjp=True) the
# faster and lighter of its two (190 ms / 385 MB against 252 ms / 452 MB at T=4096). Its GPU speed
# is not measured yet (benchmarks/gpu.sh parallel scans).
CHUNK = 64


def restart(a: Array, b: Array, h0: Array, resets: Array | None) -> tuple[Array, Array]:
  """The coefficients of h_t = a_t ⊙ h_{t-1} + b_t restarted from h0 (the reset carry) where
  `resets` ([T, B, 1]) is True: there a_t -> 0 and b_t -> a_t ⊙ h0 + b_t, so h_t = a_t ⊙ h0 + b_t."""
  if resets is None:
    return a, b
  return jnp.where(resets, jnp.zeros_like(a), a), b + jnp.where(resets, a * h0, jnp.zeros_like(b))


def _log_coefficient_all_steps(log_coefficients, custom_vjp, params, h0, xp, resets=None, reset_carry=None):
  del params
  log_a, log_b = log_coefficients(xp)
  if resets is None:
    hs = parallel.chunked_scan_from_logs(log_a, log_b, h0, chunk=CHUNK, custom_vjp=custom_vjp)
  else:
    a, b = restart(jnp.exp(log_a), jnp.exp(log_b), h0 if reset_carry is None else reset_carry, resets)
    hs = parallel.chunked_scan(a, b, h0, chunk=CHUNK, custom_vjp=custom_vjp)
  return hs, hs


@dataclasses.dataclass(frozen=True)
class MinGRUSpec(CellSpec):
  """minGRU (Feng et al. 2024); equations in `gru_jax.cells.mingru_step` (z there takes the new
  value, as in the paper). Params: input_kernel [D, 2H] (blocks z, h~), bias [2H]; no recurrent
  kernel. Carry: h. The layers train it with a parallel scan (`parallel.chunked_scan_from_logs`).
  """

  num_gates: ClassVar[int] = 2
  has_recurrent_kernel: ClassVar[bool] = False
  cell_name: ClassVar[str] = "MinGRUCell"

  def gate_values(self, params, carry, xp):
    z = jax.nn.sigmoid(cells.gate_blocks(xp, 2)[0])
    return {"update": z, "keep": 1.0 - z}

  def step_fn(self):
    return cells.mingru_step

  def parallel_fn(self, custom_vjp=True):
    return functools.partial(_log_coefficient_all_steps, cells.mingru_log_coefficients, custom_vjp)


@dataclasses.dataclass(frozen=True)
class MinLSTMSpec(CellSpec):
  """minLSTM (Feng et al. 2024); equations in `gru_jax.cells.minlstm_step`. Params: input_kernel
  [D, 3H] (blocks f, i, h~), bias [3H]; no recurrent kernel. Carry: h (no cell state).
  """

  num_gates: ClassVar[int] = 3
  has_recurrent_kernel: ClassVar[bool] = False
  cell_name: ClassVar[str] = "MinLSTMCell"

  def gate_values(self, params, carry, xp):
    f, i, _ = cells.gate_blocks(xp, 3)
    f, i = jax.nn.sigmoid(f), jax.nn.sigmoid(i)
    return {"forget": f / (f + i), "input": i / (f + i), "keep": f / (f + i)}

  def step_fn(self):
    return cells.minlstm_step

  def parallel_fn(self, custom_vjp=True):
    return functools.partial(_log_coefficient_all_steps, cells.minlstm_log_coefficients, custom_vjp)


def _sru_all_steps(activation, custom_vjp, params, c0, xp, resets=None, reset_carry=None):
  del params
  x_tilde, f, r, highway = cells.gate_blocks(xp, 4)
  f, r = jax.nn.sigmoid(f), jax.nn.sigmoid(r)
  restarted = restart(f, (1.0 - f) * x_tilde, c0 if reset_carry is None else reset_carry, resets)
  cs = parallel.chunked_scan(*restarted, c0, chunk=CHUNK, custom_vjp=custom_vjp)
  return cs, r * cells.activation_fn(activation)(cs) + (1.0 - r) * highway


@dataclasses.dataclass(frozen=True)
class SRUSpec(CellSpec):
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
  cell_name: ClassVar[str] = "SRUCell"

  def __post_init__(self):
    if self.version not in (2017, 2018):
      raise ValueError(f"SRUCell: version must be 2017 or 2018; got {self.version!r}")
    cells.activation_fn(self.g)
    super().__post_init__()

  @property
  def g(self) -> str:
    return self.activation or ("tanh" if self.version == 2017 else "identity")

  def param_specs(self, in_features):
    hidden = self.features
    specs = {"input_kernel": (per_gate(self.kernel_init, 3), (in_features, 3 * hidden))}
    if self.use_bias:
      specs["bias"] = (per_gate(self.bias_init, 2), (2 * hidden,))
    if in_features != hidden:
      specs["highway_kernel"] = (self.kernel_init, (in_features, hidden))
    if self.version == 2018:
      specs["peephole"] = (jax.nn.initializers.zeros, (2 * hidden,))
    return specs

  def gate_values(self, params, carry, xp):
    _, f, r, _ = cells.gate_blocks(xp, 4)
    if self.version == 2018:
      v_f, v_r = cells.gate_blocks(params["peephole"], 2)
      f, r = f + v_f * carry, r + v_r * carry
    f = jax.nn.sigmoid(f)
    return {"forget": f, "reset": jax.nn.sigmoid(r), "keep": f}

  def project_fn(self):
    return functools.partial(cells.sru_project, use_bias=self.use_bias)

  def step_fn(self):
    return functools.partial(cells.sru_step, activation=self.g, version=self.version)

  def parallel_fn(self, custom_vjp=True):
    return functools.partial(_sru_all_steps, self.g, custom_vjp) if self.version == 2017 else None


# The cells by name: the one registry. The linen and NNX classes (`gru_jax.layers`, `gru_jax.nnx`),
# the package's exports, `models.CELLS` and the configs are made from it.
SPECS: dict[str, type[CellSpec]] = {
  "gru": GRUSpec,
  "lstm": LSTMSpec,
  "rnn": SimpleRNNSpec,
  "gru_no_reset": GRUNoResetSpec,
  "mgu": MGUSpec,
  "cifg_lstm": CIFGLSTMSpec,
  "peephole_lstm": PeepholeLSTMSpec,
  "nig_lstm": NIGLSTMSpec,
  "nfg_lstm": NFGLSTMSpec,
  "nog_lstm": NOGLSTMSpec,
  "niaf_lstm": NIAFLSTMSpec,
  "noaf_lstm": NOAFLSTMSpec,
  "fgr_lstm": FGRLSTMSpec,
  "gru1": GRU1Spec,
  "gru2": GRU2Spec,
  "gru3": GRU3Spec,
  "mingru": MinGRUSpec,
  "minlstm": MinLSTMSpec,
  "sru": SRUSpec,
}


def options(spec_class: type[CellSpec]) -> list[str]:
  """The options of a cell beyond the shared ones (`CellSpec`'s fields), e.g. ["reset_after", ...]."""
  shared = {f.name for f in dataclasses.fields(CellSpec)}
  return [f.name for f in dataclasses.fields(spec_class) if f.name not in shared]


def layer_name(spec_class: type[CellSpec]) -> str:
  """The name of the layer that scans the cell: its cell name without "Cell" ("GRUCell" -> "GRU")."""
  return spec_class.cell_name.removesuffix("Cell")


def describe(spec_class: type[CellSpec]) -> str:
  """The spec's docstring, followed by those of the unregistered specs it inherits options from
  (`_GatedSpec`'s layer_norm, chrono_init, ...): the documentation of every option, for the
  front-ends' classes."""
  registered = set(SPECS.values()) | {CellSpec}
  parts = [inspect.cleandoc(spec_class.__doc__ or "")]
  for base in spec_class.__mro__[1:]:
    if base in registered:
      if base is not CellSpec:
        parts.append(f"Its options {', '.join(options(base))} are those of {base.cell_name} (`gru_jax.specs.{base.__name__}`).")
      break
    parts.append(inspect.cleandoc(base.__doc__ or ""))
  return "\n\n".join(parts)
