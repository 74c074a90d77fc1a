"""Insight into a recurrent model: the gradient through time, the gates, the state Jacobians.

Everything here runs the model's recurrent layers on a readable reference path, step by step with
`lax.scan` over the cells' own step functions, while `flax.linen.intercept_methods` swaps it in
for each `gru_jax.layers.Recurrent` call of the model. The rest of the model (embedding, read-out,
stacking, bidirectional merges) runs unchanged. Along the way each layer records its inputs, its
gate activations at every step, and can take an offset added to its state after every step:
the gradient of the loss with respect to zero offsets is dLoss/dh_t, the gradient of everything
after step t through h_t.

  records = trace(model, params, xs)                 # gates and inputs of every layer
  flow = gradient_flow(model, params, xs, loss_fn)   # {layer: ||dLoss/dh_t||, mean over examples}
  spectrum = state_jacobians(records["rnn/layer_0"]) # singular values of dh_{t+1}/dh_t, ||dh_T/dh_t||

The models must be linen ones (`gru_jax.models.SequenceModel` with front_end="linen", or any
linen model built from `gru_jax.layers`); an NNX-trained `SequenceModel` has the same parameters,
so `model.clone(front_end="linen")` inspects it.
"""

import contextlib
import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gru_jax import fused, layers, recurrent, specs
from gru_jax import scan as scan_lib

Array = jax.Array


def gate_values(spec: specs.CellSpec, params: dict[str, Array], carry: Any, xp: Array) -> dict[str, Array]:
  """The named gate activations [B, H] of one step of `spec`, by its own `gate_values` (empty for
  the tanh RNN, which has none)."""
  return spec.gate_values(params, carry, xp)


# --- The reference path with probes ---------------------------------------------------------------


def _add_to_state(carry, offset):
  """carry + offset on the state leaf the outputs come from (h; for the LSTM's (c, h), h)."""
  if isinstance(carry, tuple):
    return (*carry[:-1], carry[-1] + offset)
  return carry + offset


def probe_run(spec, params, xs, options=recurrent.LayerOptions(), *, seq_lengths=None, initial_carry=None,
              learned_carry=None, reverse=False, offsets=None, owner="probe"):
  """`gru_jax.recurrent.run` in evaluation mode on the reference path, recording the gates.

  Args:
    spec, params, xs, options, seq_lengths, initial_carry, learned_carry, reverse: as for
      `recurrent.run` (zoneout at its expectation; recurrent dropout off).
    offsets: optional [T, B, H] (time-major, in the order of xs) added to the state after each
      step, and to that step's output when the output is the state.

  Returns:
    (ys [B, T, H], final carry, gates {name: [B, T, H]}), batch-major (time-major with
    options.time_major).
  """
  xs_T, batch_shape = recurrent.to_time_major(owner, xs, options.time_major)
  num_steps, batch = xs_T.shape[0], xs_T.shape[1]
  xs_T, params = recurrent.promote(xs_T, params, options.dtype)
  carry = recurrent.initial_carry_of(owner, spec, initial_carry, learned_carry, batch_shape, xs_T.dtype)
  carry = jax.tree_util.tree_map(lambda c: c.reshape(batch, spec.features), carry)
  lengths = recurrent.check_lengths(owner, seq_lengths, batch_shape, num_steps, xs.shape)
  lengths = None if lengths is None else lengths.reshape(batch)
  xp = spec.project_fn()(params, xs_T)
  if offsets is None:
    offsets = jnp.zeros((num_steps, batch, spec.features), xs_T.dtype)
  flip = (lambda x: x[::-1]) if lengths is None else (lambda x: scan_lib.reverse_padded(x, lengths))  # its own inverse
  if reverse:
    xp, offsets = flip(xp), flip(offsets)
  valid = None if lengths is None else (jnp.arange(num_steps)[:, None] < lengths[None, :])[..., None]
  step, hidden_of = spec.step_fn(), spec.hidden_fn()

  def body(carry, inputs):
    xp_t, valid_t, offset_t = inputs
    gates = gate_values(spec, params, carry, xp_t)
    new, y = step(params, carry, xp_t)
    if options.zoneout:  # evaluation: the expectation of zoneout
      new = recurrent.zone(options.zoneout, new, carry)
      y = hidden_of(new)
    new, y = fused.apply_mask(valid_t, new, carry, y)
    new = _add_to_state(new, offset_t)
    if spec.output_in_carry:
      y = y + offset_t
    return new, (y, gates)

  carry, (ys, gates) = jax.lax.scan(body, carry, (xp, valid, offsets))
  if reverse:
    ys, gates = flip(ys), jax.tree_util.tree_map(flip, gates)
  unflatten = lambda x: x.reshape((num_steps,) + batch_shape + (spec.features,))  # as recurrent.run's outputs
  layout = unflatten if options.time_major else (lambda x: jnp.moveaxis(unflatten(x), 0, -2))
  carry = jax.tree_util.tree_map(lambda c: c.reshape(batch_shape + (spec.features,)), carry)
  return layout(ys), carry, {name: layout(g) for name, g in gates.items()}


@dataclasses.dataclass
class Record:
  """What one recurrent layer of a traced model saw and did (batch-major arrays)."""

  spec: specs.CellSpec
  params: dict[str, Array]
  options: recurrent.LayerOptions
  xs: Array  # its inputs [B, T, D]
  seq_lengths: Array | None
  reverse: bool
  ys: Array  # its outputs [B, T, H]
  gates: dict[str, Array]  # [B, T, H] each


def _path(module: nn.Module) -> str:
  return "/".join(module.scope.path)


@contextlib.contextmanager
def _probed(records: dict[str, Record], offsets: dict[str, Array] | None):
  """Within: every gru_jax linen layer runs `probe_run` and fills `records` under its path."""

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != "__call__" or not isinstance(module, (layers.Recurrent, layers.Scanned)):
      return next_fun(*args, **kwargs)
    (xs,) = args
    path = _path(module)
    spec = module.cell.spec() if isinstance(module, layers.Scanned) else module.make_cell(parent=None).spec()
    params = {k: v for k, v in module.variables["params"].items() if k != "initial_carry"}
    learned = module.variables["params"].get("initial_carry") if module.learn_initial_carry else None
    options = module.layer_options()
    ys, carry, gates = probe_run(
      spec, params, xs, options, seq_lengths=kwargs.get("seq_lengths"), initial_carry=kwargs.get("initial_carry"),
      learned_carry=learned, reverse=kwargs.get("reverse", False),
      offsets=None if offsets is None else offsets.get(path), owner=type(module).__name__,
    )
    records[path] = Record(spec, params, options, xs, kwargs.get("seq_lengths"), kwargs.get("reverse", False), ys, gates)
    return (ys, carry) if kwargs.get("return_carry") else ys

  with nn.intercept_methods(interceptor):
    yield


def trace(model: nn.Module, params, xs, *, seq_lengths=None, offsets=None) -> tuple[Any, dict[str, Record]]:
  """(the model's outputs, {layer path: Record}) for `model.apply({"params": params}, xs, ...)`
  with every recurrent layer on the reference path (evaluation mode)."""
  records: dict[str, Record] = {}
  with _probed(records, offsets):
    outputs = model.apply({"params": params}, xs, seq_lengths=seq_lengths)
  if not records:
    raise ValueError(f"insight.trace: {type(model).__name__} ran no gru_jax recurrent layer (gru_jax.GRU, ..., "
                     "gj.Scanned); there is nothing to probe")
  return outputs, records


def gradient_flow(model: nn.Module, params, xs, loss_fn: Callable[[Any], Array], *, seq_lengths=None) -> dict[str, np.ndarray]:
  """{layer path: [T] mean over examples of ||dLoss/dh_t||_2}, where h_t is the layer's state after
  step t (in the order of the inputs) and Loss = loss_fn(the model's outputs). Steps past an
  example's length count with their gradient, which is zero when nothing reads them.

  dLoss/dh_t is the gradient with respect to an offset added to h_t: every way in which h_t
  affects the loss, through the later steps of its own layer and through the layers above.
  """
  outputs = jax.eval_shape(lambda p: {k: r.ys for k, r in trace(model, p, xs, seq_lengths=seq_lengths)[1].items()}, params)
  zeros = {path: jnp.zeros((ys.shape[1], ys.shape[0], ys.shape[2]), ys.dtype) for path, ys in outputs.items()}
  grads = jax.grad(lambda o: loss_fn(trace(model, params, xs, seq_lengths=seq_lengths, offsets=o)[0]))(zeros)
  return {path: np.asarray(jnp.mean(jnp.linalg.norm(g, axis=-1), axis=1)) for path, g in grads.items()}


def state_jacobians(record: Record, example: int = 0, top: int = 4) -> dict[str, np.ndarray]:
  """The state Jacobians of one layer along one example's sequence (forward order of its steps).

  Returns {"singular_values": [T - 1, top], the largest singular values of d s_{t+1} / d s_t (s:
  the whole carry, e.g. (c, h) for the LSTM, flattened); "to_end": [T], the spectral norm of
  d s_T / d s_t (1 at t = T)}. For a bidirectional layer's backward half, "forward order" is its
  own (from the end of the sequence).
  """
  spec, params = record.spec, record.params
  xs = record.xs[example : example + 1]
  lengths = None if record.seq_lengths is None else jnp.asarray(record.seq_lengths)[example : example + 1]
  xs_T = jnp.moveaxis(xs, -2, 0)
  if lengths is not None:
    xs_T = xs_T[: int(lengths[0])]
  if record.reverse:
    xs_T = xs_T[::-1]
  xp = spec.project_fn()(params, xs_T)
  carry0 = spec.zero_carry((1,), xs_T.dtype)
  flat0, unravel = ravel_pytree(carry0)
  step = spec.step_fn()

  def advance(flat, xp_t):
    new, _ = step(params, unravel(flat), xp_t)
    if record.options.zoneout:
      new = recurrent.zone(record.options.zoneout, new, unravel(flat))
    return ravel_pytree(new)[0]

  def body(flat, xp_t):
    return advance(flat, xp_t), (flat, xp_t)

  _, (states, inputs) = jax.lax.scan(body, flat0, xp)
  jacobians = jax.vmap(jax.jacfwd(advance))(states, inputs)  # J_t = d s_{t+1} / d s_t, [T, S, S]
  singular = jnp.linalg.svd(jacobians, compute_uv=False)[:, :top]

  def back(product, jacobian):  # product = d s_T / d s_{t+1}; returns d s_T / d s_t
    return product @ jacobian, jnp.linalg.norm(product, ord=2)

  eye = jnp.eye(flat0.shape[0], dtype=flat0.dtype)
  _, to_end = jax.lax.scan(back, eye, jacobians, reverse=True)  # to_end[t] = ||d s_T / d s_{t+1}||
  return {"singular_values": np.asarray(singular[1:]), "to_end": np.asarray(to_end)}


def gate_statistics(records: dict[str, Record], low: float = 0.05, high: float = 0.95) -> dict[str, float]:
  """{"gates/<layer>/<gate>/mean" | ".../below_0.05" | ".../above_0.95": value} over every example,
  step (within the lengths) and unit: the mean activation and the fractions saturated near 0 and 1."""
  stats = {}
  for path, record in records.items():
    for name, gate in record.gates.items():
      weight = jnp.ones(gate.shape[:2], gate.dtype)
      if record.seq_lengths is not None:
        weight = (jnp.arange(gate.shape[1])[None, :] < jnp.asarray(record.seq_lengths)[:, None]).astype(gate.dtype)
      total = jnp.maximum(jnp.sum(weight) * gate.shape[-1], 1.0)
      mean = lambda v: jnp.sum(v * weight[..., None]) / total
      prefix = f"gates/{path}/{name}"
      stats[f"{prefix}/mean"] = mean(gate)
      stats[f"{prefix}/below_{low:g}"] = mean((gate < low).astype(gate.dtype))
      stats[f"{prefix}/above_{high:g}"] = mean((gate > high).astype(gate.dtype))
  return stats
