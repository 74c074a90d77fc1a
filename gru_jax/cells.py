"""One time step of each recurrent cell, as pure functions.

Every step has the `jax.lax.scan` signature once its params are bound:
`step(params, carry, xp) -> (new_carry, y)`, where `xp = project(params, x)` is the input
projection, computed for all time steps at once by the layers (one matmul outside the loop).
Most steps split into `pre = recurrent_pre(params, h)`, the one matmul with the recurrent kernel,
and an elementwise `*_gates(xp, pre, carry)` that takes xp and pre as tuples of gate blocks;
`gru_jax.fused` uses that split for its fast path, which keeps the blocks as separate arrays
(slicing a fused [B, G*H] block inside the loop costs more than the matmul saves on a CPU).
(The reset-before GRU multiplies r ⊙ h by W_hn and does not split so.)

Parameter layout, shared by every cell (H = features, D = input features, G = gate blocks):
  input_kernel      [D, G*H]   the input matmuls of all gates, fused
  recurrent_kernel  [H, G*H]   the recurrent matmuls of all gates, fused
  bias              [G*H]      the input and recurrent biases of each gate, folded into one
  recurrent_bias_n  [H]        GRU with reset_after only: b_hn, which sits inside r * (...) and
                               so cannot be folded
Gate blocks follow PyTorch's order, so weights map to `torch.nn.GRU/LSTM/RNN` by transposition.
"""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"tanh": jnp.tanh, "relu": jax.nn.relu, "identity": lambda x: x}


def activation_fn(name: str) -> Callable[[Array], Array]:
  """Returns the activation called `name`, or raises a ValueError listing the valid names."""
  if name not in ACTIVATIONS:
    raise ValueError(f"activation={name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def layer_norm_blocks(v: Array, num_blocks: int, scale: Array, eps: float = 1e-5, *, centred: bool = False) -> Array:
  """Layer normalisation of each of the `num_blocks` blocks of the last axis, times `scale`
  (no offset: the cells' biases come after it). Ba et al. 2016, applied per gate.

  centred=True: v's blocks have mean zero already (v = x @ `centre_blocks(W)`), so the mean is not
  subtracted again; the result is the same function of x, one reduction cheaper.
  """
  blocks = v.reshape(v.shape[:-1] + (num_blocks, -1))
  if not centred:
    blocks = blocks - jnp.mean(blocks, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(blocks), axis=-1, keepdims=True)
  return (blocks * jax.lax.rsqrt(var + eps)).reshape(v.shape) * scale


def centre_blocks(kernel: Array, num_blocks: int) -> Array:
  """`kernel` [..., G*H] with each gate block's columns minus their mean: x @ centre_blocks(W)
  equals x @ W minus each block's mean over its H units (the matmul is linear), so layer
  normalisation of x @ W can skip its mean. The fast path uses this; the reference path does not.
  """
  blocks = kernel.reshape(kernel.shape[:-1] + (num_blocks, -1))
  return (blocks - jnp.mean(blocks, axis=-1, keepdims=True)).reshape(kernel.shape)


def _num_blocks(params: dict[str, Array], width: int) -> int:
  return width // params["recurrent_kernel"].shape[0]


def project(params: dict[str, Array], x: Array, *, layer_norm: bool = False, use_bias: bool = True) -> Array:
  """Input projection `x @ input_kernel + bias`: [..., D] -> [..., G*H] (no bias when not `use_bias`).

  With `layer_norm` (the spec's flag; params then hold `ln_input_scale` [G*H]) each gate block of
  x @ W is normalised and scaled before the bias: `LN(x @ W) * scale + bias`.
  """
  xp = x @ params["input_kernel"]
  if layer_norm:
    xp = layer_norm_blocks(xp, _num_blocks(params, xp.shape[-1]), params["ln_input_scale"])
  if use_bias:
    xp = xp + params["bias"]
  return xp


def project_blocks(params: dict[str, Array], x: Array, num_gates: int, *, use_bias: bool = True) -> tuple[Array, ...]:
  """`project` as G separate blocks [..., H], one matmul per gate (the fast path's layout; the
  layer-normalised cells take `centred_projection_blocks` instead)."""
  kernels = jnp.split(params["input_kernel"], num_gates, axis=-1)
  biases = jnp.split(params["bias"], num_gates) if use_bias else [None] * num_gates
  return tuple(x @ k if b is None else x @ k + b for k, b in zip(kernels, biases))


def gru_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], h: Array, gate_fn: Callable = jax.nn.sigmoid,
              activation_fn: Callable = jnp.tanh) -> tuple[Array, Array]:
  """The elementwise part of a reset-after GRU step, per gate block.

  Given xp = (x_r, x_z, x_n), the blocks of the input projection, and pre = (h_r, h_z, h_n), the
  blocks of h @ W_h + [0, 0, b_hn]:
  r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h' = (1 - z) ⊙ n + z ⊙ h
  (σ: gate_fn, tanh: activation_fn, as Flax's fields).
  """
  x_r, x_z, x_n = xp
  h_r, h_z, h_n = pre
  r = gate_fn(x_r + h_r)
  z = gate_fn(x_z + h_z)
  n = activation_fn(x_n + r * h_n)
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


def normalised_blocks(pre: tuple[Array, ...], scale: Array, bias: Array) -> tuple[Array, ...]:
  """Each block of `pre` layer-normalised, times its part of `scale` [G*H], plus its part of
  `bias` [G*H]: the fast path's layer normalisation, whose blocks come from kernels with centred
  blocks (x @ `centre_blocks(W)`), so they have mean zero already."""
  num_gates = len(pre)
  normalised = layer_norm_blocks(jnp.concatenate(pre, axis=-1), num_gates, scale, centred=True)
  return gate_blocks(normalised + bias, num_gates)


def centred_projection_blocks(params: dict[str, Array], x: Array, num_gates: int) -> tuple[Array, ...]:
  """The G blocks of x @ centre_blocks(input_kernel), before normalisation, scale and bias: the
  fast path's input for the layer-normalised cells, whose gates normalise each step's slice
  (in cache, instead of extra passes over the whole [T, B, G*H] projection)."""
  return tuple(x @ centre_blocks(k, 1) for k in jnp.split(params["input_kernel"], num_gates, axis=-1))


def gru_gates_ln(xp: tuple[Array, ...], pre: tuple[Array, ...], h: Array, input_scale: Array, input_bias: Array,
                 scale: Array, bias: Array) -> tuple[Array, Array]:
  """`gru_gates` of the layer-normalised GRU, for the fast path: xp = the blocks of
  `centred_projection_blocks`; input_scale = ln_input_scale [3H]; input_bias = the bias [3H];
  pre = the blocks of h @ centre_blocks(W_h); scale = ln_recurrent_scale [3H]; bias = the
  recurrent bias [0, 0, b_hn]."""
  # Both projections' 2G blocks normalised in one reduction.
  both = normalised_blocks(xp + pre, jnp.concatenate([input_scale, scale]), jnp.concatenate([input_bias, bias]))
  return gru_gates(both[:3], both[3:], h)


def gru_step(params: dict[str, Array], h: Array, xp: Array, *, reset_after: bool = True,
             hidden_mask: Array | None = None, gate_fn: Callable = jax.nn.sigmoid,
             activation_fn: Callable = jnp.tanh, layer_norm: bool = False, use_bias: bool = True) -> tuple[Array, Array]:
  """One GRU step. z is the *keep* gate: z near 1 keeps the past.

  reset_after=True (PyTorch nn.GRU, cuDNN, flax.linen.GRUCell, Keras reset_after=True):
    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 - z) ⊙ n + z ⊙ h
  reset_after=False (Cho et al. 2014 v3, Chung et al. 2014, Keras reset_after=False):
    n  = tanh(W_in x + b_in + W_hn (r ⊙ h)), with no recurrent biases.
  The two are different functions of the same weights, not reparameterisations of each other.

  Args:
    params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks r, z, n), optional bias [3H]
      (b_ir + b_hr, b_iz + b_hz, b_in) and, for reset_after, recurrent_bias_n [H].
    h: carry [B, H].
    xp: `project(params, x)`, [B, 3H].
    hidden_mask: optional [B, H] recurrent-dropout mask on h where it enters the recurrent matmul
      (every step with a recurrent kernel takes it).
    layer_norm, use_bias: the spec's flags (`recurrent_pre`); with use_bias and reset_after the
      params hold recurrent_bias_n.

  Returns:
    (h', h'), each [B, H].
  """
  if reset_after:
    pre = recurrent_pre(params, h, hidden_mask, layer_norm=layer_norm, bias_n=use_bias)
    return gru_gates(gate_blocks(xp, 3), gate_blocks(pre, 3), h, gate_fn, activation_fn)
  w_h = params["recurrent_kernel"]
  hidden = h.shape[-1]
  h_in = masked_hidden(h, hidden_mask)
  x_r, x_z, x_n = gate_blocks(xp, 3)
  h_r, h_z = gate_blocks(h_in @ w_h[:, : 2 * hidden], 2)
  r = gate_fn(x_r + h_r)
  z = gate_fn(x_z + h_z)
  n = activation_fn(x_n + (r * h_in) @ w_h[:, 2 * hidden :])
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


def gate_blocks(x: Array, num_gates: int) -> tuple[Array, ...]:
  """Splits the last axis [..., G*H] into G blocks [..., H]."""
  return tuple(jnp.split(x, num_gates, axis=-1))


def recurrent_bias(params: dict[str, Array], width: int, dtype) -> Array:
  """The bias added to h @ W_h [G*H] by the reset-after GRU with biases: [0, 0, b_hn]."""
  b_hn = params["recurrent_bias_n"]
  return jnp.concatenate([jnp.zeros((width - b_hn.shape[-1],), dtype), b_hn.astype(dtype)])


def masked_hidden(h: Array, hidden_mask: Array | None) -> Array:
  """h as the recurrent matmul sees it: times the variational dropout mask [B, H] when there is
  one (one mask per sequence, Gal & Ghahramani 2016; drawn by `gru_jax.recurrent.run`)."""
  return h if hidden_mask is None else h * hidden_mask


def recurrent_pre(params: dict[str, Array], h: Array, hidden_mask: Array | None = None, *, layer_norm: bool = False,
                  bias_n: bool = False) -> Array:
  """pre = h @ W_h (+ the recurrent bias): where a step uses the recurrent kernel.

  With `layer_norm` (params then hold `ln_recurrent_scale` [G*H]) each gate block of h @ W_h is
  normalised and scaled before the recurrent bias is added; with `bias_n` (the reset-after GRU
  with biases) the bias is `recurrent_bias`'s [0, 0, b_hn].
  """
  pre = masked_hidden(h, hidden_mask) @ params["recurrent_kernel"]
  if layer_norm:
    pre = layer_norm_blocks(pre, _num_blocks(params, pre.shape[-1]), params["ln_recurrent_scale"])
  return pre + recurrent_bias(params, pre.shape[-1], pre.dtype) if bias_n else pre


def lstm_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array], gate_fn: Callable = jax.nn.sigmoid,
               activation_fn: Callable = jnp.tanh) -> tuple[tuple[Array, Array], Array]:
  """The elementwise part of an LSTM step, per gate block (i, f, g, o) of xp and pre = h @ W_h
  (σ: gate_fn, tanh: activation_fn, as Flax's fields)."""
  c, _ = carry
  i, f, g, o = (x + p for x, p in zip(xp, pre))
  new_c = gate_fn(f) * c + gate_fn(i) * activation_fn(g)
  new_h = gate_fn(o) * activation_fn(new_c)
  return (new_c, new_h), new_h


def lstm_gates_ln(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array], input_scale: Array,
                  bias: Array, scale: Array, cell_scale: Array) -> tuple[tuple[Array, Array], Array]:
  """`lstm_gates` of the layer-normalised LSTM, for the fast path: xp = the blocks of
  `centred_projection_blocks`; input_scale = ln_input_scale [4H]; bias [4H] (zeros without one);
  pre = the blocks of h @ centre_blocks(W_h); scale = ln_recurrent_scale [4H]; cell_scale =
  ln_cell_scale [H], for h' = o ⊙ tanh(LN(c') * cell_scale)."""
  c, _ = carry
  both = normalised_blocks(xp + pre, jnp.concatenate([input_scale, scale]), jnp.concatenate([bias, jnp.zeros_like(bias)]))
  i, f, g, o = (x + p for x, p in zip(both[:4], both[4:]))
  new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  new_h = jax.nn.sigmoid(o) * jnp.tanh(layer_norm_blocks(new_c, 1, cell_scale))
  return (new_c, new_h), new_h


def lstm_step(params: dict[str, Array], carry: tuple[Array, Array], xp: Array,
              hidden_mask: Array | None = None, gate_fn: Callable = jax.nn.sigmoid,
              activation_fn: Callable = jnp.tanh, layer_norm: bool = False) -> tuple[tuple[Array, Array], Array]:
  """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gate; PyTorch nn.LSTM form).

    i  = σ(W_ii x + W_hi h + b_i)     f = σ(W_if x + W_hf h + b_f)
    g  = tanh(W_ig x + W_hg h + b_g)  o = σ(W_io x + W_ho h + b_o)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')

  Args:
    params: input_kernel [D, 4H], recurrent_kernel [H, 4H] (blocks i, f, g, o), optional bias [4H].
    carry: (c, h), each [B, H], as in flax.linen.
    xp: `project(params, x)`, [B, 4H].

  With `layer_norm` (Ba et al. 2016; the spec's flag) the gate pre-activations are normalised per
  block (see `project` and `recurrent_pre`) and h' = o ⊙ tanh(LN(c') * ln_cell_scale).

  Returns:
    ((c', h'), h').
  """
  pre = gate_blocks(recurrent_pre(params, carry[1], hidden_mask, layer_norm=layer_norm), 4)
  if not layer_norm:
    return lstm_gates(gate_blocks(xp, 4), pre, carry, gate_fn, activation_fn)
  c, _ = carry
  i, f, g, o = (x + p for x, p in zip(gate_blocks(xp, 4), pre))
  new_c = gate_fn(f) * c + gate_fn(i) * activation_fn(g)
  new_h = gate_fn(o) * activation_fn(layer_norm_blocks(new_c, 1, params["ln_cell_scale"]))
  return (new_c, new_h), new_h


def rnn_gates(xp: tuple[Array], pre: tuple[Array], h: Array, *, activation: str | Callable = "tanh",
              residual: bool = False) -> tuple[Array, Array]:
  """The elementwise part of a vanilla RNN step, given the one block of xp and of pre = h @ W_h;
  activation: a name (`ACTIVATIONS`) or a function; residual adds h before it."""
  act = activation if callable(activation) else activation_fn(activation)
  new_h = act(xp[0] + pre[0] + h if residual else xp[0] + pre[0])
  return new_h, new_h


def rnn_step(params: dict[str, Array], h: Array, xp: Array, *, activation: str | Callable = "tanh",
             residual: bool = False, hidden_mask: Array | None = None) -> tuple[Array, Array]:
  """One vanilla (Elman) RNN step, PyTorch nn.RNN form: h' = act(W_ih x + b_ih + W_hh h + b_hh).

  With residual=True, h' = act(W_ih x + b + W_hh h + h) (`flax.linen.SimpleCell`'s pre-activation
  residual, Kusupati et al. 2018 / arXiv:1801.06105).

  Args:
    params: input_kernel [D, H], recurrent_kernel [H, H], optional bias [H] (b_ih + b_hh).
    h: carry [B, H].
    xp: `project(params, x)`, [B, H].
    activation: "tanh" (default), "relu", "identity", or any elementwise function.

  Returns:
    (h', h').
  """
  return rnn_gates((xp,), (recurrent_pre(params, h, hidden_mask),), h, activation=activation, residual=residual)


# --- Variants for ablation ------------------------------------------------------------------------


def gru_no_reset_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], h: Array) -> tuple[Array, Array]:
  """The elementwise part of a GRU without reset gate (r ≡ 1), blocks (z, n) of xp and h @ W_h."""
  z = jax.nn.sigmoid(xp[0] + pre[0])
  n = jnp.tanh(xp[1] + pre[1])
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


def gru_no_reset_step(params: dict[str, Array], h: Array, xp: Array, hidden_mask: Array | None = None) -> tuple[Array, Array]:
  """One step of a GRU without reset gate (r ≡ 1; both GRU forms then coincide). z keeps the past:

    z  = σ(W_iz x + W_hz h + b_z)
    n  = tanh(W_in x + W_hn h + b_n)
    h' = (1 - z) ⊙ n + z ⊙ h

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks z, n), bias [2H].
  """
  return gru_no_reset_gates(gate_blocks(xp, 2), gate_blocks(recurrent_pre(params, h, hidden_mask), 2), h)


def mgu_step(params: dict[str, Array], h: Array, xp: Array, hidden_mask: Array | None = None) -> tuple[Array, Array]:
  """One step of the minimal gated unit (Zhou et al. 2016, arXiv:1603.09420), in the paper's form:
  one gate f both resets the past in the candidate and mixes old and new.

    f  = σ(W_if x + W_hf h + b_f)
    n  = tanh(W_in x + W_hn (f ⊙ h) + b_n)
    h' = (1 - f) ⊙ h + f ⊙ n

  Params: input_kernel [D, 2H], recurrent_kernel [H, 2H] (blocks f, n), bias [2H].
  """
  w_h = params["recurrent_kernel"]
  hidden = h.shape[-1]
  h_in = masked_hidden(h, hidden_mask)
  x_f, x_n = gate_blocks(xp, 2)
  f = jax.nn.sigmoid(x_f + h_in @ w_h[:, :hidden])
  n = jnp.tanh(x_n + (f * h_in) @ w_h[:, hidden:])
  new_h = (1.0 - f) * h + f * n
  return new_h, new_h


def cifg_lstm_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array]) -> tuple[tuple[Array, Array], Array]:
  """The elementwise part of a coupled input-forget gate LSTM step, blocks (f, g, o)."""
  c, _ = carry
  f, g, o = (x + p for x, p in zip(xp, pre))
  f = jax.nn.sigmoid(f)
  new_c = f * c + (1.0 - f) * jnp.tanh(g)
  new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
  return (new_c, new_h), new_h


def cifg_lstm_step(params: dict[str, Array], carry: tuple[Array, Array], xp: Array,
                   hidden_mask: Array | None = None) -> tuple[tuple[Array, Array], Array]:
  """One step of the coupled input-forget gate LSTM (CIFG; Greff et al. 2017, "LSTM: A Search
  Space Odyssey"): the input gate is 1 - f.

    f  = σ(W_if x + W_hf h + b_f)   g = tanh(W_ig x + W_hg h + b_g)   o = σ(W_io x + W_ho h + b_o)
    c' = f ⊙ c + (1 - f) ⊙ g
    h' = o ⊙ tanh(c')

  Params: input_kernel [D, 3H], recurrent_kernel [H, 3H] (blocks f, g, o), bias [3H]. Carry (c, h).
  """
  return cifg_lstm_gates(gate_blocks(xp, 3), gate_blocks(recurrent_pre(params, carry[1], hidden_mask), 3), carry)


# --- Greff et al. 2017's variants: the peephole LSTM with one part taken out ---------------------
# NIG, NFG, NOG fix a gate at 1; NIAF, NOAF make an activation the identity (Greff et al. 2017, "LSTM:
# A Search Space Odyssey", arXiv:1503.04069, Sec. II-A); with nothing removed ("") it is their vanilla
# LSTM, the peephole LSTM (Gers & Schmidhuber 2000; Graves 2013, eqs. 7-11). Their NP is `lstm_step`,
# CIFG `cifg_lstm_step`.
GREFF_REMOVED = ("", "input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")
_GATE_BLOCK = {"input_gate": "i", "forget_gate": "f", "output_gate": "o"}


def greff_blocks(removed: str) -> str:
  """The blocks of a variant's kernels and bias, in order: "ifgo" less the removed gate's."""
  if removed not in GREFF_REMOVED:
    raise ValueError(f"removed must be one of {GREFF_REMOVED}; got {removed!r}")
  return "".join(b for b in "ifgo" if b != _GATE_BLOCK.get(removed))


def greff_peepholes(removed: str) -> str:
  """The gates with a peephole, in the order of the `peephole` param: "ifo" less the removed gate."""
  return greff_blocks(removed).replace("g", "")


def greff_lstm_activations(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array], peephole: Array,
                           *, removed: str) -> dict[str, Array]:
  """The gates, block input and new cell of a Greff et al. 2017 variant from its blocks a = x-part
  + h-part (blocks `greff_blocks(removed)`; a removed gate is 1, a removed activation the identity):

    i  = σ(a_i + p_i ⊙ c)     (NIG: i = 1)        f = σ(a_f + p_f ⊙ c)    (NFG: f = 1)
    g  = tanh(a_g)            (NIAF: g = a_g)
    c' = f ⊙ c + i ⊙ g
    o  = σ(a_o + p_o ⊙ c')    (NOG: o = 1)
  """
  c, _ = carry
  a = {name: x + h for name, x, h in zip(greff_blocks(removed), xp, pre)}
  p = dict(zip(greff_peepholes(removed), gate_blocks(peephole, len(greff_peepholes(removed)))))
  one = jnp.ones_like(c)
  i = jax.nn.sigmoid(a["i"] + p["i"] * c) if "i" in a else one
  f = jax.nn.sigmoid(a["f"] + p["f"] * c) if "f" in a else one
  g = a["g"] if removed == "input_activation" else jnp.tanh(a["g"])
  new_c = f * c + i * g
  o = jax.nn.sigmoid(a["o"] + p["o"] * new_c) if "o" in a else one
  return {"input": i, "forget": f, "block_input": g, "cell": new_c, "output": o}


def greff_lstm_gates(xp: tuple[Array, ...], pre: tuple[Array, ...], carry: tuple[Array, Array], peephole: Array,
                     *, removed: str) -> tuple[tuple[Array, Array], Array]:
  """The step of a Greff et al. 2017 variant after its one recurrent matmul (the fused path's
  split): `greff_lstm_activations`, then h' = o ⊙ tanh(c') (NOAF: h' = o ⊙ c')."""
  parts = greff_lstm_activations(xp, pre, carry, peephole, removed=removed)
  new_c = parts["cell"]
  new_h = parts["output"] * (new_c if removed == "output_activation" else jnp.tanh(new_c))
  return (new_c, new_h), new_h


def greff_lstm_step(params: dict[str, Array], carry: tuple[Array, Array], xp: Array, hidden_mask: Array | None = None,
                    *, removed: str) -> tuple[tuple[Array, Array], Array]:
  """One step of the peephole LSTM (removed="") or of a Greff et al. 2017 variant of it: the
  equations of `greff_lstm_activations` and `greff_lstm_gates`. The peephole LSTM:

    i  = σ(W_ii x + W_hi h + p_i ⊙ c + b_i)    f = σ(W_if x + W_hf h + p_f ⊙ c + b_f)
    g  = tanh(W_ig x + W_hg h + b_g)
    c' = f ⊙ c + i ⊙ g
    o  = σ(W_io x + W_ho h + p_o ⊙ c' + b_o)
    h' = o ⊙ tanh(c')

  Params: input_kernel [D, G*H], recurrent_kernel [H, G*H], bias [G*H] (G blocks `greff_blocks(removed)`),
  peephole [P*H] (the gates of `greff_peepholes(removed)`). Carry (c, h).
  """
  num = len(greff_blocks(removed))
  pre = gate_blocks(recurrent_pre(params, carry[1], hidden_mask), num)
  return greff_lstm_gates(gate_blocks(xp, num), pre, carry, params["peephole"], removed=removed)


def fgr_lstm_step(params: dict[str, Array], carry: tuple[Array, ...], xp: Array,
                  hidden_mask: Array | None = None) -> tuple[tuple[Array, ...], Array]:
  """One step of Greff et al. 2017's FGR (full gate recurrence): the peephole LSTM whose gates
  also see the previous step's gates, through R_g [3H, 3H] (param `gate_recurrent_kernel`; rows
  i, f, o of the step before, columns the gates i, f, o), as in the LSTM of Gers et al. 2000:

    [g_i, g_f, g_o] = [i_{t-1}, f_{t-1}, o_{t-1}] @ R_g
    i  = σ(a_i + g_i + p_i ⊙ c)     f = σ(a_f + g_f + p_f ⊙ c)     (a = W x + R h + b, per block)
    c' = f ⊙ c + i ⊙ tanh(a_g)
    o  = σ(a_o + g_o + p_o ⊙ c')
    h' = o ⊙ tanh(c')

  Params: those of the peephole LSTM (`greff_lstm_step`) and gate_recurrent_kernel [3H, 3H]. Carry: (c, i, f, o, h),
  h last, as the LSTM's (c, h); the gates before the first step are 0.
  """
  c, i_prev, f_prev, o_prev, h = carry
  a_i, a_f, a_g, a_o = (x + r for x, r in zip(gate_blocks(xp, 4), gate_blocks(recurrent_pre(params, h, hidden_mask), 4)))
  g_i, g_f, g_o = gate_blocks(jnp.concatenate([i_prev, f_prev, o_prev], -1) @ params["gate_recurrent_kernel"], 3)
  p_i, p_f, p_o = gate_blocks(params["peephole"], 3)
  i = jax.nn.sigmoid(a_i + g_i + p_i * c)
  f = jax.nn.sigmoid(a_f + g_f + p_f * c)
  new_c = f * c + i * jnp.tanh(a_g)
  o = jax.nn.sigmoid(a_o + g_o + p_o * new_c)
  new_h = o * jnp.tanh(new_c)
  return (new_c, i, f, o, new_h), new_h


# --- Dey & Salem 2017's gate variants of the GRU: gates that do not see the input -------------------
# GRU1: gates from the state and a bias; GRU2: from the state only; GRU3: from the bias only
# (Dey & Salem 2017, "Gate-Variants of Gated Recurrent Unit (GRU) Neural Networks", arXiv:1701.05923).
DEY_GATES = ("state_and_bias", "state", "bias")


def dey_gru_project(params: dict[str, Array], x: Array, *, gates_from: str, use_bias: bool = True) -> Array:
  """x @ W_n + b_n [..., H]: the only part of a Dey & Salem GRU step that sees the input."""
  xp = x @ params["input_kernel"]
  if not use_bias:
    return xp
  bias = params["bias"]
  return xp + (bias if gates_from == "state" else gate_blocks(bias, 3)[2])


def dey_gru_gates(params: dict[str, Array], h: Array, *, gates_from: str, use_bias: bool = True,
                  hidden_mask: Array | None = None) -> tuple[Array, Array]:
  """(r, z) of a Dey & Salem GRU: σ(U h + b) (GRU1, "state_and_bias"), σ(U h) (GRU2, "state")
  or σ(b) (GRU3, "bias"), with U the r and z blocks of the recurrent kernel."""
  if gates_from == "bias":
    b_r, b_z, _ = gate_blocks(params["bias"], 3)
    return jnp.broadcast_to(jax.nn.sigmoid(b_r), h.shape), jnp.broadcast_to(jax.nn.sigmoid(b_z), h.shape)
  hidden = h.shape[-1]
  pre = masked_hidden(h, hidden_mask) @ params["recurrent_kernel"][:, : 2 * hidden]
  if gates_from == "state_and_bias" and use_bias:
    pre = pre + params["bias"][: 2 * hidden]
  r, z = gate_blocks(pre, 2)
  return jax.nn.sigmoid(r), jax.nn.sigmoid(z)


def dey_gru_step(params: dict[str, Array], h: Array, xp: Array, hidden_mask: Array | None = None, *, gates_from: str,
                 use_bias: bool = True) -> tuple[Array, Array]:
  """One step of a Dey & Salem 2017 GRU: the reset-before GRU whose gates do not see x.

    r, z = σ(U_r h + b_r), σ(U_z h + b_z)   (GRU1; GRU2 drops b, GRU3 drops U h)
    n    = tanh(W_n x + b_n + U_n (r ⊙ h))
    h'   = (1 - z) ⊙ n + z ⊙ h               (z keeps, as in `gru_step`; the paper's z is our 1 - z)

  Params: input_kernel [D, H] (n); recurrent_kernel [H, 3H] (blocks r, z, n; GRU3 [H, H], n only);
  bias [3H] (r, z, n; GRU2 [H], n only). xp is `dey_gru_project`'s.
  """
  r, z = dey_gru_gates(params, h, gates_from=gates_from, use_bias=use_bias, hidden_mask=hidden_mask)
  h_in = masked_hidden(h, hidden_mask)
  n = jnp.tanh(xp + (r * h_in) @ params["recurrent_kernel"][:, -h.shape[-1] :])
  new_h = (1.0 - z) * n + z * h
  return new_h, new_h


# --- Cells whose recurrence is linear in the state (gates from x only): parallel scans ---------------


def positive_g(x: Array) -> Array:
  """g(x) = x + 1/2 for x >= 0, σ(x) below: continuous, increasing and positive, so that the
  log-space scan applies (Feng et al. 2024, Sec. 3.3 / appendix)."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_positive_g(x: Array) -> Array:
  """log g(x), computed without taking the log of a small number."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def mingru_coefficients(xp: Array) -> tuple[Array, Array]:
  """(a, b) of the minGRU recurrence h' = a ⊙ h + b, from xp blocks (k, h~):
  a = 1 - z, b = z ⊙ g(h~), z = σ(k)."""
  k, h_tilde = gate_blocks(xp, 2)
  z = jax.nn.sigmoid(k)
  return 1.0 - z, z * positive_g(h_tilde)


def mingru_log_coefficients(xp: Array) -> tuple[Array, Array]:
  """(log a, log b) of the minGRU recurrence: log(1 - z) = -softplus(k), log z = -softplus(-k)."""
  k, h_tilde = gate_blocks(xp, 2)
  return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_positive_g(h_tilde)


def mingru_step(params: dict[str, Array], h: Array, xp: Array) -> tuple[Array, Array]:
  """One minGRU step (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201), in the
  paper's form, where z is the update gate (z near 1 takes the new value):

    z  = σ(W_z x + b_z),  h~ = W_h x + b_h
    h' = (1 - z) ⊙ h + z ⊙ g(h~)         (g: `positive_g`)

  Params: input_kernel [D, 2H] (blocks z, h~), bias [2H]; no recurrent kernel. The layer trains it
  with a parallel scan (`gru_jax.parallel`); this step is the sequential (inference) path.
  """
  del params
  a, b = mingru_coefficients(xp)
  new_h = a * h + b
  return new_h, new_h


def minlstm_log_coefficients(xp: Array) -> tuple[Array, Array]:
  """(log a, log b) of the minLSTM recurrence, with the normalised gates f/(f+i), i/(f+i)."""
  k_f, k_i, h_tilde = gate_blocks(xp, 3)
  diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)  # log i - log f
  return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_positive_g(h_tilde)


def minlstm_coefficients(xp: Array) -> tuple[Array, Array]:
  """(a, b) of the minLSTM recurrence: a = f / (f + i), b = i / (f + i) ⊙ g(h~)."""
  k_f, k_i, h_tilde = gate_blocks(xp, 3)
  f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
  return f / (f + i), i / (f + i) * positive_g(h_tilde)


def minlstm_step(params: dict[str, Array], h: Array, xp: Array) -> tuple[Array, Array]:
  """One minLSTM step (Feng et al. 2024, arXiv:2410.01201), with time-independent normalisation:

    f = σ(W_f x + b_f),  i = σ(W_i x + b_i),  h~ = W_h x + b_h
    h' = f / (f + i) ⊙ h + i / (f + i) ⊙ g(h~)

  Params: input_kernel [D, 3H] (blocks f, i, h~), bias [3H]; no recurrent kernel.
  """
  del params
  a, b = minlstm_coefficients(xp)
  new_h = a * h + b
  return new_h, new_h


def sru_project(params: dict[str, Array], x: Array, *, use_bias: bool = True) -> Array:
  """The SRU's input projection, blocks (x~, f, r, highway) [..., 4H]: x @ W (blocks x~, f, r),
  plus the biases b_f, b_r on f and r (when `use_bias`), and the highway input: x itself, or
  x @ highway_kernel when D differs from H."""
  hidden = params["input_kernel"].shape[-1] // 3
  x_tilde, f, r = gate_blocks(x @ params["input_kernel"], 3)
  if use_bias:
    b_f, b_r = gate_blocks(params["bias"], 2)
    f, r = f + b_f, r + b_r
  if x.shape[-1] == hidden:
    highway = x
  elif "highway_kernel" in params:
    highway = x @ params["highway_kernel"]
  else:
    raise ValueError(f"SRU: inputs of {x.shape[-1]} features need a highway_kernel to reach the {hidden} units")
  return jnp.concatenate([x_tilde, f, r, highway], axis=-1)


def sru_step(params: dict[str, Array], c: Array, xp: Array, *, activation: str = "tanh",
             version: int = 2017) -> tuple[Array, Array]:
  """One SRU step (Lei et al. 2017, arXiv:1709.02755; with version=2018 the form of Lei et al.,
  EMNLP 2018, which adds v ⊙ c_{t-1} inside the gates, params then holding `peephole`):

    f  = σ(W_f x + [v_f ⊙ c] + b_f)     r = σ(W_r x + [v_r ⊙ c] + b_r)
    c' = f ⊙ c + (1 - f) ⊙ (W x)
    h  = r ⊙ g(c') + (1 - r) ⊙ x'       (x' = x, or W_hw x when D != H; g: `activation`)

  Params: input_kernel [D, 3H] (blocks x~, f, r), bias [2H] (b_f, b_r), optional highway_kernel
  [D, H] and peephole [2H] (v_f, v_r). xp = `sru_project(params, x)`. Carry: c. Output: h.
  """
  x_tilde, f, r, highway = gate_blocks(xp, 4)
  if version == 2018:
    v_f, v_r = gate_blocks(params["peephole"], 2)
    f, r = f + v_f * c, r + v_r * c
  f, r = jax.nn.sigmoid(f), jax.nn.sigmoid(r)
  new_c = f * c + (1.0 - f) * x_tilde
  h = r * activation_fn(activation)(new_c) + (1.0 - r) * highway
  return new_c, h
