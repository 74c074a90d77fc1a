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
