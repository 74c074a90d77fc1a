"""Parallel scans over time for recurrences that are linear in the state: h_t = a_t ⊙ h_{t-1} + b_t.

When the gates depend on the input only (minGRU, minLSTM, the 2017 SRU), a_t and b_t are known for
every step before the loop, and the T steps compose associatively: (a1, b1) then (a2, b2) is
(a1 a2, a2 b1 + b2). Two ways to run them in O(log T) depth instead of T sequential steps:

- `linear_scan`: `jax.lax.associative_scan` over (a, b) pairs; any signs (the SRU's state).
- `log_space_scan`: Feng et al. 2024 ("Were RNNs All We Needed?", Heinsen 2023): with b_t > 0,
  log h_t = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k), where a*_t = cumsum log a; a cumulative sum
  and a cumulative logsumexp, stable where the products of many a_t underflow. Run in chunks
  chained by `linear_scan`, which keeps float32 precision at long T.

Both are time-major ([T, B, H]) and take the initial state h0 [B, H] separately, so it may have any
sign and may be zero; the returned states are h_1 .. h_T. The readable reference is the sequential
loop `h = a_t * h + b_t`; the tests check both scans against it.
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def sequential_scan(a: Array, b: Array, h0: Array) -> Array:
  """The reference: h_t = a_t ⊙ h_{t-1} + b_t, step by step with `lax.scan`. Returns [T, B, H]."""

  def step(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  return jax.lax.scan(step, h0, (a, b))[1]


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
  gives the outputs of cells whose output is not the carry (the SRU). T must divide evenly.
  """

  def run(params, h0, xp):
    mesh_ = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if axis not in mesh_.axis_names:
      raise ValueError(f"sequence_axis={axis!r} is not an axis of the mesh {dict(mesh_.shape)}; set one with jax.set_mesh")
    shards = mesh_.shape[axis]
    num_steps = jax.tree_util.tree_leaves(xp)[0].shape[0]
    if num_steps % shards:
      raise ValueError(f"sequence_axis={axis!r}: T={num_steps} steps must be divisible by its {shards} devices")
    spec = jax.sharding.PartitionSpec

    def local(params, h0, xp):
      end = lambda c: jax.tree_util.tree_map(lambda cs: cs[-1], all_steps(params, c, xp)[0])
      zero = end(jax.tree_util.tree_map(jnp.zeros_like, h0))
      one = end(jax.tree_util.tree_map(jnp.ones_like, h0))
      a_all = jax.lax.all_gather(jax.tree_util.tree_map(jnp.subtract, one, zero), axis)  # [shards, ...]
      b_all = jax.lax.all_gather(zero, axis)
      index = jax.lax.axis_index(axis)

      def fold(j, c):  # the stretches before this one, in order
        step = jax.tree_util.tree_map(lambda a, b, c_: a[j] * c_ + b[j], a_all, b_all, c)
        return jax.tree_util.tree_map(lambda s, c_: jnp.where(j < index, s, c_), step, c)

      start = jax.lax.fori_loop(0, shards, fold, h0)
      return all_steps(params, start, xp)

    sharded = jax.shard_map(local, mesh=mesh, in_specs=(spec(), spec(), spec(axis)), out_specs=(spec(axis), spec(axis)),
                            check_vma=False)
    return sharded(params, h0, xp)

  return run
