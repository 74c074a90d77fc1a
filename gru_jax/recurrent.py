"""A cell spec run over time, as a pure function of its parameters: the body of every scanned
layer, whichever front-end declared the parameters (`gru_jax.layers` for linen, `gru_jax.nnx`).

`run(spec, params, xs, options, ...)` checks and lays out the inputs, casts them and the params to
the computation dtype, draws the recurrent-dropout and zoneout masks from the keys it is given,
and picks the path: the parallel scan (recurrences linear in the carry), the fused scan with the
hand-written backward pass, or autodiff through `lax.scan` (`gru_jax.scan`).
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax import fused, specs
from gru_jax import parallel as parallel_lib
from gru_jax import scan as scan_lib

Array = jax.Array
Carry = Any


@dataclasses.dataclass(frozen=True)
class LayerOptions:
  """How a scanned layer runs its cell; the same fields on every front-end's layers.

  Attributes:
    unroll: time steps per loop iteration (`jax.lax.scan(unroll=...)`); None picks the measured
      default of the backend (`gru_jax.scan.DEFAULT_UNROLL`: 16 on GPU, 1 on CPU).
    remat: recompute each step in the backward pass rather than store it (long sequences).
    time_major: inputs and outputs are [T, ..., D] / [T, ..., H] instead of [..., T, D].
    custom_vjp: use the hand-written backward pass of `gru_jax.fused` where the cell allows it
      (reset-after GRU, LSTM, SimpleRNN, GRU without reset gate, CIFG LSTM; with layer_norm,
      recurrent_dropout and zoneout too); False differentiates `lax.scan` with autodiff. Both
      compute the same values and gradients (tested); they differ in speed.
    parallel: run cells whose recurrence is linear in the carry (minGRU, minLSTM, SRU 2017) with a
      parallel scan over time (`gru_jax.parallel`); False runs their step with `lax.scan`. Same
      function (tested). None picks the measured default of the backend
      (`gru_jax.scan.default_parallel`: parallel on GPU and TPU, sequential on CPU).
    recurrent_dropout: variational dropout on h where it enters the recurrent matmul, one mask per
      sequence drawn before the loop (Gal & Ghahramani 2016); needs a dropout key in training.
      Cells with a recurrent kernel only.
    zoneout: each unit of the carry keeps its previous value with this probability at each step
      (Krueger et al. 2017); at evaluation the carry is the expectation, zoneout * old + (1 -
      zoneout) * new. Needs a dropout key in training.
    sequence_axis: split the time axis over this axis of the mesh set by `jax.set_mesh`
      (sequence parallelism, `gru_jax.parallel.sequence_sharded`), for the cells whose recurrence
      is linear in the carry (minGRU, minLSTM, SRU 2017); None: off.
    kernel: the GRU's time loop on a GPU: "auto" (default) runs the persistent Pallas kernel
      (`gru_jax.kernels.pallas_gru`) at the points a GPU measurement listed in its `FASTER` (none
      yet: the kernel has not run on a GPU) and `gru_jax.fused` elsewhere; "xla" always `fused`;
      "pallas" the kernel, or a ValueError saying why it cannot run here (a Hopper GPU, the plain
      reset-after GRU, H a multiple of 64, ...); "pallas_interpret" the kernel in Mosaic GPU
      interpret mode on any backend (slow: for tests).
    dtype: computation dtype (None: inferred from inputs and params).
  """

  unroll: int | None = None
  remat: bool = False
  time_major: bool = False
  custom_vjp: bool = True
  parallel: bool | None = None
  recurrent_dropout: float = 0.0
  zoneout: float = 0.0
  sequence_axis: str | None = None
  kernel: str = "auto"
  dtype: Any = None

  def check(self, owner: str, spec: specs.CellSpec) -> None:
    """Raises a ValueError naming `owner` and the option that does not fit `spec`."""
    if self.kernel not in KERNELS:
      raise ValueError(f"{owner}: kernel must be one of {list(KERNELS)}; got {self.kernel!r}")
    refusal = _kernel_refusal(spec, self) if self.kernel.startswith("pallas") else None
    if refusal is not None:
      raise ValueError(f"{owner}: kernel={self.kernel!r} needs {refusal}")
    if self.unroll is not None:
      specs.check_positive_int(owner, "unroll", self.unroll)
    for name in ("recurrent_dropout", "zoneout"):
      rate = getattr(self, name)
      if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1); got {rate!r}")
    if self.recurrent_dropout and not spec.has_recurrent_kernel:
      raise ValueError(f"{owner}: recurrent_dropout needs a cell with a recurrent kernel; {owner} has none")
    if self.zoneout and not spec.output_in_carry:
      raise ValueError(f"{owner}: zoneout needs a cell whose output is its carry; {owner}'s is not")
    if self.sequence_axis is not None and (spec.parallel_fn() is None or self.zoneout):
      raise ValueError(f"{owner}: sequence_axis needs a cell whose recurrence is linear in the carry (minGRU, minLSTM, "
                       "SRU 2017) and no zoneout")


KERNELS = ("auto", "xla", "pallas", "pallas_interpret")


def _kernel_refusal(spec: specs.CellSpec, options: "LayerOptions") -> str | None:
  """What the Pallas kernel needs of the cell and the options that they lack (None if nothing)."""
  plain_gru = (isinstance(spec, specs.GRUSpec) and spec.reset_after and not spec.layer_norm
               and not spec.custom_functions)
  if not plain_gru:
    return "the plain reset-after GRU (no layer_norm, sigmoid and tanh)"
  if not options.custom_vjp or options.recurrent_dropout or options.zoneout or options.sequence_axis:
    return "custom_vjp=True and no recurrent_dropout, zoneout or sequence_axis"
  return None


def _pallas_scan(owner, spec, options, split, batch, dtype):
  """The Pallas kernel's `(carry, xp, valid) -> (carry, ys)` where `options.kernel` picks it, else None."""
  if options.kernel == "xla" or (options.kernel == "auto" and jax.default_backend() != "gpu"):
    return None
  refusal = _kernel_refusal(spec, options)
  if refusal is not None:
    if options.kernel == "auto":
      return None
    raise ValueError(f"{owner}: kernel={options.kernel!r} needs {refusal}")
  from gru_jax.kernels import pallas_gru  # pylint: disable=g-import-not-at-top  (imports Pallas)

  hidden = spec.features
  if options.kernel == "auto":  # where a GPU measured it faster, and where it runs on this device
    measured = (batch, hidden, jnp.dtype(dtype).name) in pallas_gru.FASTER
    if not measured or not pallas_gru.supported(batch, hidden, dtype):
      return None
  if options.kernel == "pallas":
    reason = pallas_gru.unsupported_reason(batch, hidden, dtype)
    if reason is not None:
      raise ValueError(f"{owner}: kernel='pallas' cannot run here: {reason}")
  b_hn = split.b[2 * hidden:]  # the fused split's recurrent bias is [0, 0, b_hn]
  interpret = True if options.kernel == "pallas_interpret" else None
  return lambda carry, xp, valid: pallas_gru.gru_scan(xp, split.w_h, b_hn, carry, valid, interpret=interpret)


def promote(x: Array, params: dict[str, Array], dtype: Any) -> tuple[Array, dict[str, Array]]:
  """x and params in one computation dtype (`dtype`, or the result type of them all when None)."""
  dtype = jnp.result_type(x, *params.values()) if dtype is None else dtype
  return jnp.asarray(x, dtype), {k: jnp.asarray(v, dtype) for k, v in params.items()}


def check_carry(owner: str, carry: Carry, expected: Carry, name: str = "initial_carry") -> None:
  """Raises a ValueError (calling the carry `name`) unless `carry` has the structure and shapes of
  `expected`."""
  got_def = jax.tree_util.tree_structure(carry)
  want_def = jax.tree_util.tree_structure(expected)
  got_shapes = [tuple(np.shape(c)) for c in jax.tree_util.tree_leaves(carry)]
  want_shapes = [tuple(c.shape) for c in jax.tree_util.tree_leaves(expected)]
  if got_def != want_def or got_shapes != want_shapes:
    got = jax.tree_util.tree_unflatten(got_def, got_shapes) if got_def.num_leaves else carry
    want = jax.tree_util.tree_unflatten(want_def, want_shapes)
    raise ValueError(f"{owner}: {name} must have shapes {want}; got {got}")


def in_features(owner: str, xs: Any, time_major: bool) -> int:
  """Checks xs (at least 2 axes, floating point) and returns its number of input features D."""
  if not hasattr(xs, "ndim") or xs.ndim < 2:
    layout = "[T, ..., D]" if time_major else "[..., T, D]"
    raise ValueError(f"{owner}: xs must have shape {layout} (at least 2 axes); got {np.shape(xs)}")
  if not jnp.issubdtype(xs.dtype, jnp.floating):
    raise TypeError(f"{owner}: xs must be floating point; got dtype {xs.dtype}")
  return int(xs.shape[-1])


def to_time_major(owner: str, xs: Any, time_major: bool) -> tuple[Array, tuple[int, ...]]:
  """Checks xs and returns it as [T, B, D] with one flat batch axis, plus the batch shape."""
  in_features(owner, xs, time_major)
  if time_major:
    batch_shape = tuple(xs.shape[1:-1])
    xs_TxBxD = xs
  else:
    batch_shape = tuple(xs.shape[:-2])
    xs_TxBxD = jnp.moveaxis(xs, -2, 0)
  num_steps, features = xs_TxBxD.shape[0], xs_TxBxD.shape[-1]
  return xs_TxBxD.reshape(num_steps, math.prod(batch_shape), features), batch_shape


def check_lengths(owner, seq_lengths, batch_shape, num_steps, xs_shape):
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
  if not isinstance(seq_lengths, jax.core.Tracer) and lengths.size:
    low, high = int(np.min(np.asarray(seq_lengths))), int(np.max(np.asarray(seq_lengths)))  # concrete, even under jit
    if low < 0 or high > num_steps:
      raise ValueError(
        f"{owner}: seq_lengths must lie in [0, T={num_steps}]; got values from {low} to {high}"
      )
  return lengths


def check_resets(owner, resets, batch_shape, num_steps, time_major):
  """Checks resets (booleans [..., T], or [T, ...] when time_major) and returns them as [T, B]."""
  if resets is None:
    return None
  resets = jnp.asarray(resets)
  want = (num_steps,) + batch_shape if time_major else batch_shape + (num_steps,)
  if resets.shape != want:
    layout = "[T, ...]" if time_major else "[..., T]"
    raise ValueError(f"{owner}: resets must have shape {want} ({layout}: the batch shape and time steps of xs); "
                     f"got {resets.shape}")
  if resets.dtype != jnp.bool_:
    raise TypeError(f"{owner}: resets must be booleans; got dtype {resets.dtype}")
  resets_TxB = resets if time_major else jnp.moveaxis(resets, -1, 0)
  return resets_TxB.reshape(num_steps, math.prod(batch_shape))


def check_params(owner: str, spec: specs.CellSpec, params: dict[str, Array], in_features: int) -> None:
  """Raises a ValueError when the input kernel does not take inputs of `in_features` features."""
  got = tuple(np.shape(params["input_kernel"]))
  want = spec.param_specs(in_features)["input_kernel"][1]
  if got != want:
    raise ValueError(
      f"{owner}: inputs have {in_features} features (last axis of xs) but the parameters "
      f"expect {got[0]} (input_kernel has shape {got})"
    )


def step(owner: str, spec: specs.CellSpec, params: dict[str, Array], carry: Carry, inputs: Array,
         dtype: Any = None) -> tuple[Carry, Array]:
  """One step of a cell, the body of both front-ends' cells: inputs [..., D] and carry (leaves
  [..., H], checked) -> (new carry, output [..., H]), computed in `dtype` (None: inferred).

  The new carry keeps the dtypes of the given one, and the output takes that of its state leaf,
  as Flax's cells do: with bf16 compute and a float32 carry the carry stays float32 from step to
  step (which `lax.scan`, and so `flax.linen.RNN`, requires)."""
  if inputs.ndim < 1:
    raise ValueError(f"{owner}: inputs must have shape [..., D]; got {inputs.shape}")
  check_params(owner, spec, params, inputs.shape[-1])
  check_carry(owner, carry, spec.zero_carry(inputs.shape[:-1], inputs.dtype), name="carry")
  kept = jax.tree_util.tree_map(lambda c: jnp.result_type(c), carry)
  inputs, params = promote(inputs, params, dtype)
  computed = jax.tree_util.tree_map(lambda c: c.astype(inputs.dtype), carry)
  new, y = spec.step_fn()(params, computed, spec.project_fn()(params, inputs))
  return jax.tree_util.tree_map(lambda c, d: c.astype(d), new, kept), y.astype(jax.tree_util.tree_leaves(kept)[-1])


def initial_carry_of(owner, spec, initial_carry, learned_carry, batch_shape, dtype):
  """The carry to start from: the given one (checked), the learned one broadcast, or zeros."""
  zeros = spec.zero_carry(batch_shape, dtype)
  if initial_carry is not None:
    check_carry(owner, initial_carry, zeros)
    return jax.tree_util.tree_map(lambda c: jnp.asarray(c).astype(dtype), initial_carry)
  if learned_carry is not None:
    return jax.tree_util.tree_map(lambda c, z: jnp.broadcast_to(c.astype(dtype), z.shape), learned_carry, zeros)
  return zeros


def outputs(ys: Array, carry: Carry, carries: Carry | None, return_carry: bool) -> Any:
  """A layer's call's result: ys; (ys, carry) with `return_carry`; (ys, carries) or (ys, carry,
  carries) when the every-step carries were asked for."""
  head = (ys, carry) if return_carry else (ys,)
  out = head if carries is None else head + (carries,)
  return out[0] if len(out) == 1 else out


def reset_kwargs(owner: str, resets, reset_carry, parts: int) -> list[dict]:
  """The resets keywords of each of `parts` sub-modules: the same resets, and each its own reset
  carry (`reset_carry` holds one per part, or is None)."""
  if reset_carry is not None and len(reset_carry) != parts:
    raise ValueError(f"{owner}: reset_carry must hold one carry per layer or direction ({parts}); got {len(reset_carry)}")
  if resets is None:
    if reset_carry is not None:
      raise ValueError(f"{owner}: reset_carry is the carry resets restart from; it needs resets")
    return [{} for _ in range(parts)]
  return [{"resets": resets, **({} if reset_carry is None else {"reset_carry": reset_carry[i]})} for i in range(parts)]


def one_step(call, carry: Carry, x: Array, reset: Array | None, fresh_carry, time_major: bool) -> tuple[Carry, Array]:
  """A layer's streaming step through its scanned call: `x` [..., D] as a sequence of one step,
  `carry` as its initial carry, `reset` ([...] booleans) restarting rows from `fresh_carry()`.
  Returns (new carry, y [..., H]). `call(xs, initial_carry=, return_carry=True, **resets)` is the
  layer's own call, so the step has its parameters and equations."""
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"step: x must have shape [..., D]; got {x.shape}")
  insert = 0 if time_major else x.ndim - 1
  extra = {}
  if reset is not None:
    reset = jnp.asarray(reset)
    if reset.shape != x.shape[:-1]:
      raise ValueError(f"step: reset must have the batch shape {x.shape[:-1]} of x; got {reset.shape}")
    extra = dict(resets=jnp.expand_dims(reset, 0 if time_major else reset.ndim), reset_carry=fresh_carry())
  ys, carry = call(jnp.expand_dims(x, insert), initial_carry=carry, return_carry=True, **extra)
  return carry, jnp.squeeze(ys, insert)


def run(
  spec: specs.CellSpec,
  params: dict[str, Array],
  xs: Array,
  options: LayerOptions = LayerOptions(),
  *,
  seq_lengths: Array | None = None,
  initial_carry: Carry | None = None,
  learned_carry: Carry | None = None,
  reverse: bool = False,
  resets: Array | None = None,
  reset_carry: Carry | None = None,
  return_carries: bool = False,
  dropout_key: Array | None = None,
  zoneout_key: Array | None = None,
  owner: str | None = None,
) -> tuple[Array, Carry]:
  """Runs the cell `spec` with `params` over the time axis of `xs`.

  Args:
    spec, params: the cell and its parameters (`spec.param_specs`).
    xs: [..., T, D] (or [T, ..., D] when `options.time_major`), floating point.
    options: the layer's `LayerOptions`.
    seq_lengths: optional integers with the batch shape of xs. The carry stops at each
      sequence's last valid step, outputs past it are zeros, and a length of 0 returns the
      initial carry. Concrete lengths must lie in [0, T].
    initial_carry: carry with leaves [..., H]; else `learned_carry` (leaves [H]) broadcast; else
      zeros.
    reverse: run from each sequence's last valid step back to its first; outputs stay aligned.
    resets: optional booleans [..., T] (the batch shape and time steps of xs; [T, ...] when
      time-major): where True the carry is reset before that step to the initial carry (the given
      one, else the learned one, else zeros), so an episode starting there runs as if alone. With
      `reverse` each episode runs backward from its own last step. Composes with seq_lengths.
    reset_carry: the carry resets restart from, when it is not the initial carry: e.g. zeros (or
      `spec.zero_carry`) when `initial_carry` is a state carried over from an earlier chunk of the
      same stream. Leaves [..., H], checked as initial_carry.
    return_carries: also return the carry after every step, leaves [..., T, H] (or [T, ..., H]),
      past a sequence's length its final carry: states to store for later chunks (a replay
      buffer). It runs the parallel or the autodiff path, not the fused one.
    dropout_key: the key of the recurrent-dropout mask; None turns recurrent dropout off
      (evaluation).
    zoneout_key: the key of the zoneout draws; None uses zoneout's expectation (evaluation).
    owner: the name used in error messages (the spec's cell name by default).

  Returns:
    (ys [..., T, H] (or [T, ..., H]), final carry with leaves [..., H]), and the carries when
    `return_carries`.
  """
  owner = owner or spec.cell_name
  xs_TxBxD, batch_shape = to_time_major(owner, xs, options.time_major)
  num_steps, batch = xs_TxBxD.shape[0], math.prod(batch_shape)
  check_params(owner, spec, params, xs_TxBxD.shape[-1])
  xs_TxBxD, params = promote(xs_TxBxD, params, options.dtype)
  dtype = xs_TxBxD.dtype

  carry = initial_carry_of(owner, spec, initial_carry, learned_carry, batch_shape, dtype)
  carry = jax.tree_util.tree_map(lambda c: c.reshape(batch, spec.features), carry)
  lengths = check_lengths(owner, seq_lengths, batch_shape, num_steps, xs.shape)
  if lengths is not None:
    lengths = lengths.reshape(batch)
  resets = check_resets(owner, resets, batch_shape, num_steps, options.time_major)
  if reset_carry is not None:
    if resets is None:
      raise ValueError(f"{owner}: reset_carry is the carry resets restart from; it needs resets")
    check_carry(owner, reset_carry, spec.zero_carry(batch_shape, dtype), name="reset_carry")
    reset_carry = jax.tree_util.tree_map(lambda c: jnp.asarray(c).astype(dtype).reshape(batch, spec.features), reset_carry)
  if resets is not None and options.kernel.startswith("pallas"):
    raise ValueError(f"{owner}: resets with kernel={options.kernel!r} is not supported yet; use kernel='auto' or 'xla'")

  step = functools.partial(spec.step_fn(), params)
  hidden_mask = None
  if options.recurrent_dropout and dropout_key is not None:  # one mask per sequence, on h where it enters the matmul
    keep = jax.random.bernoulli(dropout_key, 1.0 - options.recurrent_dropout, (batch, spec.features))
    hidden_mask = keep.astype(dtype) / (1.0 - options.recurrent_dropout)
    step = functools.partial(step, hidden_mask=hidden_mask)
  split = None if return_carries else _split(spec, options, params, dtype, hidden_mask)
  kernel = _pallas_scan(owner, spec, options, split, batch, dtype) if split is not None else None
  parallel = scan_lib.default_parallel() if options.parallel is None else options.parallel
  all_steps = spec.parallel_fn(options.custom_vjp) if parallel and not options.zoneout else None
  if options.sequence_axis is not None:
    all_steps = parallel_lib.sequence_sharded(spec.parallel_fn(options.custom_vjp), options.sequence_axis)
  if split is None:
    xp = spec.project_fn()(params, xs_TxBxD)
  else:
    xp = spec.fused_project(params, xs_TxBxD)
  if options.zoneout:
    step, xp = _zoneout(spec, options.zoneout, step, xp, num_steps, zoneout_key, dtype)
    if split is not None:
      split = split._replace(gates=_zoned_gates(split.gates, spec.hidden_fn()), with_aux=True)
  outputs = scan_lib.scan(
    step, carry, xp, seq_lengths=lengths, reverse=reverse,
    unroll=scan_lib.default_unroll() if options.unroll is None else options.unroll, remat=options.remat,
    split=split, parallel=None if all_steps is None else functools.partial(all_steps, params), kernel=kernel,
    resets=resets, reset_carry=reset_carry, return_carries=return_carries,
  )
  carry, ys_TxBxH = outputs[:2]

  def layout(x_TxBxH):
    x = x_TxBxH.reshape((num_steps,) + batch_shape + (spec.features,))
    return x if options.time_major else jnp.moveaxis(x, 0, -2)

  carry = jax.tree_util.tree_map(lambda c: c.reshape(batch_shape + (spec.features,)), carry)
  if return_carries:
    return layout(ys_TxBxH), carry, jax.tree_util.tree_map(layout, outputs[2])
  return layout(ys_TxBxH), carry


def zone(keep, new, old):
  """Zoneout: each unit keeps its old value where keep is 1 (or, in expectation, with weight keep)."""
  return jax.tree_util.tree_map(lambda n, o: keep * o + (1.0 - keep) * n, new, old)


def _zoneout(spec, rate, step, xp, num_steps, key, dtype):
  """The step with zoneout, and its per-step inputs (xp, keep): keep is 1 where a unit keeps its
  old value (drawn before the loop, [T, B, H]), or the rate itself without a key."""
  batch = jax.tree_util.tree_leaves(xp)[0].shape[1]
  if key is None:
    keep = jnp.full((num_steps, batch, 1), rate, dtype)
  else:
    keep = jax.random.bernoulli(key, rate, (num_steps, batch, spec.features)).astype(dtype)
  hidden_of = spec.hidden_fn()

  def zoned(carry, inputs):
    xp_t, keep_t = inputs
    new = zone(keep_t, step(carry, xp_t)[0], carry)
    return new, hidden_of(new)

  return zoned, (xp, keep)


def _zoned_gates(gates, hidden_of):
  """`gates` of the fused scan with zoneout: its per-step inputs are (xp_t, keep_t), as `_zoneout`'s."""

  def zoned(inputs, pre, carry, *gate_params):
    xp_t, keep_t = inputs
    new = zone(keep_t, gates(xp_t, pre, carry, *gate_params)[0], carry)
    return new, hidden_of(new)

  return zoned


def _split(spec, options, params, dtype, hidden_mask):
  """The `fused.Split` of the cell for the fused scan, or None for the autodiff path."""
  gates = spec.gates_fn()
  if not options.custom_vjp or gates is None:
    return None
  w_h = spec.fused_kernel(params)
  bias = spec.recurrent_bias(params, w_h.shape[-1], dtype)
  bias = jnp.zeros((w_h.shape[-1],), dtype) if bias is None else bias
  gate_params = spec.gate_params(params, bias)
  matmul_bias = jnp.zeros_like(bias) if gate_params else bias  # with gate params the bias is among them
  return fused.Split(gates, spec.hidden_fn(), w_h, matmul_bias, gate_params, hidden_mask)
