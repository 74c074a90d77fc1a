"""Parallel scans over time for recurrences that are linear in the state: h_t = a_t ⊙ h_{t-1} + b_t.

When the gates depend on the input only (minGRU, minLSTM, the 2017 SRU), a_t and b_t are known for
every step before the loop, and the T steps compose associatively: (a1, b1) then (a2, b2) is
(a1 a2, a2 b1 + b2). Ways to run them in far fewer than T sequential steps:

- `linear_scan`: `jax.lax.associative_scan` over (a, b) pairs; any signs (the SRU's state).
- `log_space_scan`: Feng et al. 2024 ("Were RNNs All We Needed?", Heinsen 2023): with b_t > 0,
  log h_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k), where a*_t = cumsum log a; a cumulative sum
  and a cumulative logsumexp, stable where the products of many a_t underflow. Run in chunks
  chained by `linear_scan`, which keeps float32 precision at long T.
- `chunked_scan`: the loop itself within chunks of a few dozen steps, all chunks at once, and a
  short scan over the chunks' carries (depth chunk + O(log(T / chunk))); linear space, any signs,
  the loop's float32 error; `chunked_scan_from_logs` for coefficients given in log space.

All are time-major ([T, B, H]) and take the initial state h0 [B, H] separately, so it may have any
sign and may be zero; the returned states are h_1 .. h_T. The readable reference is the sequential
loop `h = a_t * h + b_t`; the tests check every scan against it (values and gradients).
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def sequential_scan(a: Array, b: Array, h0: Array, *, unroll: int | bool = 1, reverse: bool = False) -> Array:
  """The reference: h_t = a_t ⊙ h_{t-1} + b_t, step by step with `lax.scan`. Returns [T, B, H].
  reverse: h_t = a_t ⊙ h_{t+1} + b_t from h_{T+1} = h0."""

  def step(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  return jax.lax.scan(step, h0, (a, b), unroll=unroll, reverse=reverse)[1]


def linear_scan(a: Array, b: Array, h0: Array) -> Array:
  """h_t = a_t ⊙ h_{t-1} + b_t for all t at once, with `jax.lax.associative_scan`. Returns [T, B, H]."""

  def combine(first, second):
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2

  a_cum, b_cum = jax.lax.associative_scan(combine, (a, b), axis=0)
  return a_cum * h0[None] + b_cum


def log_space_scan(log_a: Array, log_b: Array, h0: Array, *, chunk: int | None = 256) -> Array:
  """h_t = a_t ⊙ h_{t-1} + b_t from log a_t and log b_t (b_t > 0), in log space. Returns [T, B, H].

  The h0 term, exp(a*_t) h0, is added in linear space, so h0 may be zero or negative.

  In float32 the sum a*_t + logcumsumexp(...) cancels two numbers that grow like t, which loses
  about t * eps of relative precision (1e-3 at T=4096 on random gates). With `chunk`, the scan runs
  in log space within chunks of that many steps only, and the chunks are chained by a
  `linear_scan` over their end states: still O(log T) depth, with the error of a `chunk`-step scan.
  `chunk=None` scans all T steps at once in log space.
  """
  num_steps = log_a.shape[0]
  if chunk is None or num_steps <= chunk:
    return _log_space_scan(log_a, log_b, h0)
  pad = -num_steps % chunk
  if pad:  # identity steps (a = 1, b ~ 0) after the end, dropped again below
    widths = [(0, pad)] + [(0, 0)] * (log_a.ndim - 1)
    log_a = jnp.pad(log_a, widths)
    log_b = jnp.pad(log_b, widths, constant_values=jnp.finfo(log_b.dtype).min / 2)
  num_chunks = log_a.shape[0] // chunk
  split = lambda x: jnp.moveaxis(x.reshape((num_chunks, chunk) + x.shape[1:]), 0, 1)  # [chunk, N, ...]
  log_a, log_b = split(log_a), split(log_b)
  a_star = jnp.cumsum(log_a, axis=0)  # within each chunk
  decay = jnp.exp(a_star)  # h_t = decay_t * (state at the chunk's start) + local_t
  local = jnp.exp(a_star + _cumlogsumexp(log_b - a_star))
  ends = linear_scan(decay[-1], local[-1], h0)  # the state at the end of each chunk
  starts = jnp.concatenate([h0[None], ends[:-1]], axis=0)
  hs = decay * starts[None] + local  # [chunk, N, ...]
  return jnp.moveaxis(hs, 1, 0).reshape((num_chunks * chunk,) + hs.shape[2:])[:num_steps]


def chunked_scan(a: Array, b: Array, h0: Array, *, chunk: int = 64, unroll: int | bool = 1,
                 carry_scan: Callable[[Array, Array, Array], Array] | None = None, custom_vjp: bool = False) -> Array:
  """h_t = a_t ⊙ h_{t-1} + b_t in chunks of `chunk` steps, in linear space. Returns [T, B, H].

  The T steps are cut into N = ceil(T / chunk) chunks. One `lax.scan` over the `chunk` positions
  runs all N chunks at once (state [N, B, H]), each from a zero state, and also carries the
  chunk's cumulative decay (the product of its a's):

    local_t = a_t ⊙ local_{t-1} + b_t  (local = 0 at the chunk's start),  decay_t = a_t ⊙ decay_{t-1}

  so that h_t = decay_t ⊙ (state at the chunk's start) + local_t. The chunk-end pairs (decay,
  local) are themselves a linear recurrence over N steps, run by `carry_scan` (`linear_scan` by
  default; `sequential_scan` also fits) from h0 to give every chunk's start. Depth chunk + O(log N).

  Any signs of a, b and h0 (the SRU's state), and only products of the a's (no logs, no
  division): the float32 error is that of the sequential loop (benchmarks/scans.py's accuracy
  table). A product that underflows to 0 is a decay below 1e-38, where the state at the chunk's
  start no longer counts. T not divisible by `chunk` is padded with identity steps (a = 1, b = 0),
  dropped again; `chunk >= T` is the sequential loop from h0. `unroll` goes to the scans over the
  chunk's positions.

  Gradients: by autodiff through the `lax.scan` (default), or, with `custom_vjp=True`, by the
  adjoint recurrence g_t = dL/dh_t + a_{t+1} ⊙ g_{t+1} (dL/db_t = g_t, dL/da_t = g_t ⊙ h_{t-1},
  dL/dh0 = a_1 ⊙ g_1), itself a chunked scan, backwards in time; that forward runs in two passes
  (chunk-end states from zero, then each chunk again from its true start, which gives h directly)
  and keeps only h for the backward pass (reverse mode only: no `jax.jvp` through it).
  """
  if chunk < 1:
    raise ValueError(f"chunked_scan: chunk={chunk} must be >= 1")
  carry_scan = carry_scan or linear_scan
  if custom_vjp:
    return _chunked_scan_vjp(a, b, h0, chunk, unroll, carry_scan)
  num_steps = a.shape[0]
  if num_steps <= chunk:
    return sequential_scan(a, b, h0, unroll=unroll)
  a, b, split, merge = _chunks(a, b, chunk)

  def step(carry, ab):
    local, decay = carry
    a_t, b_t = ab
    local, decay = a_t * local + b_t, a_t * decay
    return (local, decay), (local, decay)

  # The first position starts from (local, decay) = (0, 1): (b_1, a_1), no arithmetic.
  a, b = split(a), split(b)
  _, (local, decay) = jax.lax.scan(step, (b[0], a[0]), (a[1:], b[1:]), unroll=unroll)
  local = jnp.concatenate([b[:1], local], axis=0)
  decay = jnp.concatenate([a[:1], decay], axis=0)
  ends = carry_scan(decay[-1, :-1], local[-1, :-1], h0)  # the end states of chunks 1 .. N-1
  starts = jnp.concatenate([h0[None], ends], axis=0)  # [N, B, H]
  return merge(decay * starts[None] + local)[:num_steps]


def chunked_scan_from_logs(log_a: Array, log_b: Array, h0: Array, **kwargs) -> Array:
  """`chunked_scan` (same keyword arguments) of a = exp(log a), b = exp(log b): for the minGRU and
  minLSTM, whose coefficients `gru_jax.cells.mingru_log_coefficients` / `minlstm_log_coefficients`
  give in log space. Returns [T, B, H].

  The exp is safe there in float32: log a = -softplus(.) <= 0, so a is in [0, 1] (0 only where the
  gate's a is below 1e-45, where the old state no longer counts); log b = log z + log g(h~) <=
  log(h~ + 1/2), at most log(float32 max) ~ 88.7 for a finite h~, so b = z g(h~) is as finite as h~
  (b is the b of `mingru_coefficients` / `minlstm_coefficients`, up to rounding). Where a rounds to
  1 (a gate below about 3e-8) the decay over the chunk is 1, as in the sequential loop in linear space;
  the log-space scan's cumulative sum of log a keeps such decays.
  """
  return chunked_scan(jnp.exp(log_a), jnp.exp(log_b), h0, **kwargs)


def _chunks(a: Array, b: Array, chunk: int):
  """(a, b) padded with identity steps to a multiple of `chunk`, split: [T', ...] -> [chunk, N, ...],
  and merge, its inverse."""
  pad = -a.shape[0] % chunk
  if pad:  # identity steps after the end (in either direction of time: they keep the state)
    widths = [(0, pad)] + [(0, 0)] * (a.ndim - 1)
    a = jnp.pad(a, widths, constant_values=1)
    b = jnp.pad(b, widths)
  num_chunks = a.shape[0] // chunk
  split = lambda x: jnp.moveaxis(x.reshape((num_chunks, chunk) + x.shape[1:]), 0, 1)
  merge = lambda x: jnp.moveaxis(x, 1, 0).reshape((num_chunks * chunk,) + x.shape[2:])
  return a, b, split, merge


def _two_pass(a: Array, b: Array, h0: Array, chunk: int, unroll, carry_scan, reverse: bool) -> Array:
  """The chunked scan without per-step decays: pass 1 gives each chunk's end state from zero (and
  its decay, a product of the a's); the carries give each chunk's start; pass 2 runs each chunk from
  its start. reverse: h_t = a_t ⊙ h_{t+1} + b_t from h_{T+1} = h0, the states h_1 .. h_T."""
  num_steps = a.shape[0]
  if num_steps <= chunk:
    return sequential_scan(a, b, h0, unroll=unroll, reverse=reverse)
  a, b, split, merge = _chunks(a, b, chunk)  # backwards, the identity steps come first and keep h0
  a, b = split(a), split(b)

  def local_step(local, ab):
    return ab[0] * local + ab[1], None

  local, _ = jax.lax.scan(local_step, jnp.zeros_like(b[0]), (a, b), unroll=unroll, reverse=reverse)  # [N, B, H]
  decay = jnp.prod(a, axis=0)
  if reverse:
    ends = carry_scan(decay[:0:-1], local[:0:-1], h0)[::-1]  # the states after chunks N-1 .. 1 (backwards)
    starts = jnp.concatenate([ends, h0[None]], axis=0)
  else:
    starts = jnp.concatenate([h0[None], carry_scan(decay[:-1], local[:-1], h0)], axis=0)
  return merge(sequential_scan(a, b, starts, unroll=unroll, reverse=reverse))[:num_steps]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _chunked_scan_vjp(a, b, h0, chunk, unroll, carry_scan):
  return _two_pass(a, b, h0, chunk, unroll, carry_scan, reverse=False)


def _chunked_scan_fwd(a, b, h0, chunk, unroll, carry_scan):
  hs = _two_pass(a, b, h0, chunk, unroll, carry_scan, reverse=False)
  return hs, (a, hs, h0)


def _chunked_scan_bwd(chunk, unroll, carry_scan, residuals, g_hs):
  a, hs, h0 = residuals
  a_next = jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)
  g = _two_pass(a_next, g_hs, jnp.zeros_like(h0), chunk, unroll, carry_scan, reverse=True)  # dL/dh_t, all paths
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
  return g * h_prev, g, a[0] * g[0]


_chunked_scan_vjp.defvjp(_chunked_scan_fwd, _chunked_scan_bwd)


def _cumlogsumexp(x: Array) -> Array:
  """log(cumsum(exp(x))) over axis 0, as an associative scan of logaddexp: the same values as
  `jax.lax.cumlogsumexp`, whose XLA CPU lowering was much slower in a trial (not a committed
  benchmark)."""
  return jax.lax.associative_scan(jnp.logaddexp, x, axis=0)


def _log_space_scan(log_a: Array, log_b: Array, h0: Array) -> Array:
  a_star = jnp.cumsum(log_a, axis=0)
  log_hb = a_star + _cumlogsumexp(log_b - a_star)
  return jnp.exp(a_star) * h0[None] + jnp.exp(log_hb)


def sequence_sharded(all_steps, axis: str, mesh=None):
  """Sequence parallelism: `all_steps(params, h0, xp [T, B, ...]) -> (carries [T, ...], ys [T, B, H])`
  of a recurrence linear in its carry, run with the time axis split over the mesh axis `axis`
  (`jax.shard_map`; `mesh`: the one set by `jax.set_mesh` when None).

  Each device runs its own stretch of time. The stretch's end state is affine in the state it
  starts from, end(c) = A c + B; A and B come from two runs from c = 0 and c = 1 (any linear
  recurrence, whatever its coefficients). The (A, B) of every stretch are all-gathered, each device
  folds those before it into its starting state, and runs its stretch again from there, which also
  gives the outputs of cells whose output is not the carry (the SRU). T must divide evenly. With
  `resets` ([T, B, 1], split like xp) a stretch restarts from `reset_carry` (default h0, the whole
  sequence's initial carry, on every device); its end stays affine in its start (A is 0 where a
  reset came after it), so the same fold applies.
  """

  def run(params, h0, xp, resets=None, reset_carry=None):
    mesh_ = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if axis not in mesh_.axis_names:
      raise ValueError(f"sequence_axis={axis!r} is not an axis of the mesh {dict(mesh_.shape)}; set one with jax.set_mesh")
    shards = mesh_.shape[axis]
    num_steps = jax.tree_util.tree_leaves(xp)[0].shape[0]
    if num_steps % shards:
      raise ValueError(f"sequence_axis={axis!r}: T={num_steps} steps must be divisible by its {shards} devices")
    spec = jax.sharding.PartitionSpec

    def local(params, h0, xp, *restart):
      steps = lambda c: all_steps(params, c, xp) if not restart else all_steps(params, c, xp, resets=restart[0],
                                                                               reset_carry=restart[1])
      end = lambda c: jax.tree_util.tree_map(lambda cs: cs[-1], steps(c)[0])
      zero = end(jax.tree_util.tree_map(jnp.zeros_like, h0))
      one = end(jax.tree_util.tree_map(jnp.ones_like, h0))
      a_all = jax.lax.all_gather(jax.tree_util.tree_map(jnp.subtract, one, zero), axis)  # [shards, ...]
      b_all = jax.lax.all_gather(zero, axis)
      index = jax.lax.axis_index(axis)

      def fold(j, c):  # the stretches before this one, in order
        step = jax.tree_util.tree_map(lambda a, b, c_: a[j] * c_ + b[j], a_all, b_all, c)
        return jax.tree_util.tree_map(lambda s, c_: jnp.where(j < index, s, c_), step, c)

      start = jax.lax.fori_loop(0, shards, fold, h0)
      return steps(start)

    restart = () if resets is None else (resets, h0 if reset_carry is None else reset_carry)
    in_specs = (spec(), spec(), spec(axis)) + ((spec(axis), spec()) if restart else ())
    sharded = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=(spec(axis), spec(axis)), check_vma=False)
    return sharded(params, h0, xp, *restart)

  return run
