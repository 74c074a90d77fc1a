"""Run a cell's step over time with `jax.lax.scan`: masks, reverse, remat, unroll.

Everything here is time-major and has one flat batch axis: xp [T, B, G], carry leaves [B, H].
The layers reshape to and from the user's layout.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from gru_jax import fused

Array = jax.Array
Carry = Any
Step = Callable[[Carry, Array], tuple[Carry, Array]]

# The layers' default `unroll` per backend, from benchmarks/results: on an H100, unroll 16 took the
# GRU training step at B=64, T=512, H=512 from 16.2 to 9.8 ms (gpu-2026-11-22-variants.md); on
# the 2-core CPU, unroll 4 and 8 were slower than 1. Backends not measured get 1.
DEFAULT_UNROLL = {"gpu": 16}


def default_unroll() -> int:
  """The unroll that a layer with `unroll=None` uses on the default JAX backend."""
  return DEFAULT_UNROLL.get(jax.default_backend(), 1)


def default_parallel() -> bool:
  """Whether a layer with `parallel=None` runs a linear-recurrence cell with its parallel scan: not
  on the CPU, where the sequential scan trained minGRU faster (benchmarks/results/cpu-*-parallel.md;
  on an H100 the parallel scan was 1.3x to 4.5x faster, gpu-2026-11-22-parallel.md)."""
  return jax.default_backend() != "cpu"


def reverse_padded(x_TxB: Array, lengths_B: Array) -> Array:
  """Reverses each sequence within its own length; steps past the length stay where they are.

  x_TxB is [T, B, ...] and lengths_B is [B]. Applying it twice gives back x_TxB.
  """
  t = jnp.arange(x_TxB.shape[0])[:, None]
  idx_TxB = jnp.where(t < lengths_B[None, :], lengths_B[None, :] - 1 - t, t)
  idx = idx_TxB.reshape(idx_TxB.shape + (1,) * (x_TxB.ndim - 2))
  return jnp.take_along_axis(x_TxB, idx, axis=0)


def scan(
  step: Step,
  carry: Carry,
  xp_TxBxG: Array,
  *,
  seq_lengths: Array | None = None,
  reverse: bool = False,
  unroll: int = 1,
  remat: bool = False,
  split: tuple | None = None,
  parallel: Callable | None = None,
  kernel: Callable | None = None,
  resets: Array | None = None,
  reset_carry: Carry | None = None,
  return_carries: bool = False,
) -> tuple[Carry, Array] | tuple[Carry, Array, Carry]:
  """Runs `step` over the leading (time) axis of `xp_TxBxG`.

  Args:
    step: `(carry, xp_t) -> (carry, y_t)`, with xp_t [B, G] and y_t [B, H].
    carry: initial carry, a pytree of [B, H] arrays.
    xp_TxBxG: projected inputs, time-major.
    seq_lengths: optional [B] integers. The carry stops changing after each sequence's last valid
      step, outputs past it are zeros, and a length of 0 returns the initial carry. Lengths above T
      act as T and negative lengths as 0 (the layers reject both when the lengths are concrete).
    reverse: process each sequence from its last valid step back to its first; outputs are
      returned aligned with the inputs.
    unroll: passed to `jax.lax.scan`.
    remat: recompute each step's intermediates in the backward pass instead of storing them.
      The autodiff path then keeps only the carries per step; the fused path keeps the carries
      and the input blocks, dropping the pre-activations.
    split: optional `gru_jax.fused.Split` (or its first four fields as a tuple) with `step(c, x)
      == gates(x', blocks(hidden_of(c) @ w_h + b), c)`; when given, `xp_TxBxG` holds the per-step
      inputs x' that `gates` reads (the G gate blocks [T, B, H] of x; with `with_aux`, the pair
      (blocks, per-step inputs not differentiated)) and the loop runs in
      `gru_jax.fused.scan` with its hand-written backward pass.
      Without it, autodiff differentiates `lax.scan` over `step` (the readable reference).
    parallel: optional `(carry, xp_TxBxG, resets=None, reset_carry=None) -> (carries [T, ...], ys)`
      computing every step at once (a parallel scan, `gru_jax.parallel`), for cells whose recurrence is linear in
      the carry; it replaces the loop over `step`. Lengths are applied after it: the final carry
      is the one at each sequence's last valid step, outputs past it are zeros (valid because
      step t depends on steps <= t only).
    kernel: optional `(carry, xp_TxBxG, valid [T, B, 1] or None) -> (carry, ys)` computing what
      the fused path with `split` computes (the Pallas GRU kernel); it replaces that path.
    resets: optional [T, B] booleans: where True, the carry is reset to `reset_carry` (default:
      the initial `carry`) before that step (a new episode starts there; purejaxrl's `done` that
      arrives with an episode's first observation). With `reverse`, each episode runs backward from its own last
      step, which starts from the initial carry: the same as running every episode on its own.
      The parallel scans restart there (a reset zeroes that step's coefficient on the carry); the
      `kernel` is not used with resets.
    return_carries: also return the carry after every step (leaves [T, B, H], aligned with the
      inputs; past a sequence's length its final carry). Runs the parallel or the autodiff path
      (the fused one keeps no carries).

  Returns:
    (final carry, ys [T, B, H]), and the carries when `return_carries`.
  """
  if return_carries and (split is not None or kernel is not None):
    raise ValueError("scan: return_carries runs the parallel or the autodiff path; got a split or a kernel")
  num_steps = jax.tree_util.tree_leaves(xp_TxBxG)[0].shape[0]
  if reverse:
    flip = (lambda x: x[::-1]) if seq_lengths is None else (lambda x: reverse_padded(x, seq_lengths))
    xp_TxBxG = jax.tree_util.tree_map(flip, xp_TxBxG)
  valid = None if seq_lengths is None else (jnp.arange(num_steps)[:, None] < seq_lengths[None, :])[..., None]
  resets_TxBx1 = None
  if resets is not None:
    if reverse:  # the step before which a backward pass starts afresh is an episode's last: resets[t + 1]
      resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])])
      resets = resets[::-1] if seq_lengths is None else reverse_padded(resets, seq_lengths)
    resets_TxBx1 = resets[..., None]
    kernel = None
  carries = None
  if parallel is not None:
    carry, ys, carries = _parallel(parallel, carry, xp_TxBxG, seq_lengths, valid, resets_TxBx1, reset_carry)
  elif kernel is not None:
    carry, ys = kernel(carry, xp_TxBxG, valid)
  elif split is not None:
    split = fused.Split(*split)
    xp, aux = xp_TxBxG if split.with_aux else (xp_TxBxG, None)
    carry, ys = fused.scan(*split[:4], carry, xp, valid, unroll=unroll, remat=remat, gate_params=split.gate_params,
                           hidden_mask=split.hidden_mask, aux=aux, resets_TxBx1=resets_TxBx1, reset_carry=reset_carry)
  else:
    carry, (ys, carries) = _autodiff_scan(step, carry, xp_TxBxG, valid, resets_TxBx1, reset_carry, unroll=unroll,
                                          remat=remat, keep_carries=return_carries)
  if reverse:  # flip is its own inverse
    ys, carries = flip(ys), jax.tree_util.tree_map(flip, carries)
  return (carry, ys, carries) if return_carries else (carry, ys)


def _parallel(all_steps, carry, xp_TxBxG, seq_lengths, valid_TxBx1, resets_TxBx1, reset_carry):
  if resets_TxBx1 is None:
    carries, ys = all_steps(carry, xp_TxBxG)
  else:
    carries, ys = all_steps(carry, xp_TxBxG, resets=resets_TxBx1, reset_carry=reset_carry)
  if seq_lengths is None:
    return jax.tree_util.tree_map(lambda c: c[-1], carries), ys, carries
  num_steps = ys.shape[0]
  last = jnp.clip(seq_lengths - 1, 0, num_steps - 1)[None, :, None]
  started = (seq_lengths > 0)[:, None]
  final = jax.tree_util.tree_map(
    lambda cs, c0: jnp.where(started, jnp.take_along_axis(cs, last, axis=0)[0], c0), carries, carry
  )
  carries = jax.tree_util.tree_map(lambda cs, f: jnp.where(valid_TxBx1, cs, f[None]), carries, final)  # past it: the final carry
  return final, jnp.where(valid_TxBx1, ys, jnp.zeros_like(ys)), carries


def _autodiff_scan(step, carry, xp_TxBxG, valid_TxBx1, resets_TxBx1, reset_carry, *, unroll, remat, keep_carries=False):
  body = jax.checkpoint(step, prevent_cse=False) if remat else step
  initial = carry if reset_carry is None else reset_carry

  def masked(carry, inputs):
    xp, valid, reset_t = inputs
    new_carry, y = body(fused.reset(reset_t, initial, carry), xp)
    new_carry, y = fused.apply_mask(valid, new_carry, carry, y)
    return new_carry, (y, new_carry if keep_carries else None)

  return jax.lax.scan(masked, carry, (xp_TxBxG, valid_TxBx1, resets_TxBx1), unroll=unroll)


def python_loop(step: Step, carry: Carry, xp_TxBxG: Array) -> tuple[Carry, Array]:
  """The readable reference for `scan` without masks: a Python for-loop over time."""
  ys = []
  for t in range(xp_TxBxG.shape[0]):
    carry, y = step(carry, xp_TxBxG[t])
    ys.append(y)
  return carry, jnp.stack(ys)
