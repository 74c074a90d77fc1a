"""`resets`: every path equals running each episode alone from the initial carry, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gru_jax as gj
from gru_jax import models

B, T, D, H = 3, 7, 2, 3
TOL = dict(rtol=2e-5, atol=2e-5)
# Row 0: resets at 0, 3 and 4 (a one-step episode), full length; row 1: a reset at 5, past its
# length 5, and one at 2; row 2: no resets, length 0.
RESETS = np.zeros((B, T), bool)
RESETS[0, [0, 3, 4]] = True
RESETS[1, [2, 5]] = True
LENGTHS = np.array([T, 5, 0])


def episodes(resets_row, length):
  """The [start, end) of each episode within the row's first `length` steps."""
  starts = sorted({0, *[int(t) for t in np.flatnonzero(resets_row[:length])]})
  return [(s, e) for s, e in zip(starts, starts[1:] + [length]) if s < e]


def per_episode(module, variables, xs, initial_carry, lengths, reverse=False):
  """The reference: every episode of every row as its own sequence (a row of one batch, with its
  length), run from the row's initial carry; ys put back in place, and each row's final carry."""
  pieces = []  # (row, start, end); a row of length 0 gets an empty one, whose carry is the initial one
  for b in range(B):
    pieces += [(b, s, e) for s, e in episodes(RESETS[b], int(lengths[b]))] or [(b, 0, 0)]
  rows = np.array([b for b, _, _ in pieces])
  episode_xs = np.zeros((len(pieces), T, D), np.float32)
  for i, (b, s, e) in enumerate(pieces):
    episode_xs[i, : e - s] = xs[b, s:e]
  carry0 = None if initial_carry is None else jax.tree_util.tree_map(lambda c: c[rows], initial_carry)
  out, carries = module.apply(variables, jnp.asarray(episode_xs), seq_lengths=jnp.asarray([e - s for _, s, e in pieces]),
                              initial_carry=carry0, return_carry=True, **({"reverse": True} if reverse else {}))
  ys = jnp.zeros((B, T, out.shape[-1]), out.dtype)
  for i, (b, s, e) in enumerate(pieces):
    ys = ys.at[b, s:e].set(out[i, : e - s])
  first = np.array([min(i for i, p in enumerate(pieces) if p[0] == b) for b in range(B)])
  last = np.array([max(i for i, p in enumerate(pieces) if p[0] == b) for b in range(B)])
  pick = lambda index: jax.tree_util.tree_map(lambda c: c[index], carries)
  if getattr(module, "bidirectional", False):  # per layer: forward's carry from the last episode, backward's from the first
    return ys, tuple((f, b) for (f, _), (_, b) in zip(pick(last), pick(first)))
  return ys, pick(first if reverse else last)  # reverse ends at each row's first step


def random_tree(tree, seed):
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(treedef, [0.5 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def check(module, *, reverse=False, with_carry=True, lengths=LENGTHS):
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  variables = random_tree(module.init(jax.random.key(0), xs), 1)
  _, zero_carry = module.apply(variables, xs, return_carry=True)
  carry0 = random_tree(zero_carry, 2) if with_carry else None
  lengths = jnp.asarray(lengths)
  call = {"reverse": True} if reverse else {}

  def ours(params, carry0):
    return module.apply({"params": params}, xs, seq_lengths=lengths, initial_carry=carry0, return_carry=True,
                        resets=jnp.asarray(RESETS), **call)

  def reference(params, carry0):
    return per_episode(module, {"params": params}, xs, carry0, lengths, reverse=reverse)

  (ys, carry), (want_ys, want_carry) = ours(variables["params"], carry0), reference(variables["params"], carry0)
  np.testing.assert_allclose(ys, want_ys, **TOL)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(want_carry)):
    np.testing.assert_allclose(a, b, **TOL)
  weights = random_tree((ys, carry), 3)

  def loss(fn):
    return lambda params, carry0: sum(jnp.sum(w * o) for w, o in zip(jax.tree_util.tree_leaves(weights),
                                                                       jax.tree_util.tree_leaves(fn(params, carry0))))

  argnums = (0, 1) if with_carry else 0
  got = jax.grad(loss(ours), argnums=argnums)(variables["params"], carry0)
  want = jax.grad(loss(reference), argnums=argnums)(variables["params"], carry0)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, **TOL, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell,options", [("gru", {}), ("gru", {"custom_vjp": False}), ("lstm", {}), ("rnn", {"remat": True}),
                                          ("mingru", {"parallel": True})])
def test_resets_equal_each_episode_alone(cell, options, reverse):
  check(models.make_layer(cell, H, **options), reverse=reverse)


# The other ways a layer runs: gate parameters on the fused path, the reference path with a tuple
# carry, the other parallel scans (with autodiff, and the SRU's in linear space), zoneout.
@pytest.mark.slow
@pytest.mark.parametrize("cell,options,reverse", [
  ("gru", {"layer_norm": True}, False), ("peephole_lstm", {}, True), ("fgr_lstm", {}, False),
  ("minlstm", {"parallel": True, "custom_vjp": False}, True), ("sru", {"parallel": True}, False),
  ("gru", {"zoneout": 0.3}, True),
])
def test_resets_on_every_path(cell, options, reverse):
  check(models.make_layer(cell, H, **options), reverse=reverse, lengths=[4, T, 1] if reverse else LENGTHS)


def test_resets_go_to_the_learned_carry_without_an_initial_one():
  check(gj.GRU(H, learn_initial_carry=True), with_carry=False)


def test_resets_reach_every_layer_of_a_stack_and_both_directions():
  check(gj.Stacked(gj.LSTM(H), num_layers=2, bidirectional=True))


def test_nnx_layers_take_resets_as_the_linen_ones():
  layer = gj.nnx.GRU(D, H, rngs=nnx.Rngs(0))
  linen, variables = gj.interop.to_linen(layer)
  xs = jnp.asarray(np.random.default_rng(1).normal(size=(B, T, D)), jnp.float32)
  resets = jnp.asarray(RESETS)
  np.testing.assert_allclose(layer(xs, resets=resets), linen.apply(variables, xs, resets=resets), **TOL)
  stack = gj.nnx.Stacked(gj.nnx.GRU, D, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(1))
  linen_stack, stack_variables = gj.interop.to_linen(stack)
  np.testing.assert_allclose(stack(xs, resets=resets), linen_stack.apply(stack_variables, xs, resets=resets), **TOL)


def test_time_major_resets_are_time_major():
  layer = gj.GRU(H, time_major=True)
  xs = jnp.asarray(np.random.default_rng(2).normal(size=(T, B, D)), jnp.float32)
  variables = layer.init(jax.random.key(0), xs)
  batch_major = gj.GRU(H)
  want = batch_major.apply(variables, jnp.swapaxes(xs, 0, 1), resets=jnp.asarray(RESETS))
  got = layer.apply(variables, xs, resets=jnp.asarray(RESETS.T))
  np.testing.assert_allclose(jnp.swapaxes(got, 0, 1), want, **TOL)


def test_bad_resets_name_the_argument_and_the_shape():
  layer = gj.GRU(H)
  xs = jnp.zeros((B, T, D))
  variables = layer.init(jax.random.key(0), xs)
  with pytest.raises(ValueError, match=r"GRU: resets must have shape \(3, 7\) \(\[\.\.\., T\]"):
    layer.apply(variables, xs, resets=jnp.zeros((T, B), bool))
  with pytest.raises(TypeError, match="GRU: resets must be booleans; got dtype int32"):
    layer.apply(variables, xs, resets=jnp.zeros((B, T), jnp.int32))
  with pytest.raises(ValueError, match="resets with kernel='pallas_interpret' is not supported yet"):
    gj.GRU(H, kernel="pallas_interpret").apply(variables, xs, resets=jnp.zeros((B, T), bool))


@pytest.mark.parametrize("cell,options", [("gru", {}), ("lstm", {"custom_vjp": False}), ("mingru", {"parallel": True})])
def test_a_stream_cut_into_chunks_equals_the_whole_with_reset_carry(cell, options):
  """Chunk 2 starts from chunk 1's final carry and restarts its episodes from zeros (reset_carry):
  together they compute the whole stream, values and gradients."""
  layer = models.make_layer(cell, H, **options)
  xs = jnp.asarray(np.random.default_rng(3).normal(size=(B, T, D)), jnp.float32)
  params = random_tree(layer.init(jax.random.key(0), xs), 1)["params"]
  resets = jnp.asarray(RESETS)
  zeros = layer.apply({"params": params}, xs, seq_lengths=jnp.zeros((B,), jnp.int32), return_carry=True)[1]

  def whole(params):
    return layer.apply({"params": params}, xs, resets=resets, return_carry=True)

  def chunked(params, cut=4):
    ys1, carry = layer.apply({"params": params}, xs[:, :cut], resets=resets[:, :cut], return_carry=True)
    ys2, carry = layer.apply({"params": params}, xs[:, cut:], resets=resets[:, cut:], initial_carry=carry,
                             reset_carry=zeros, return_carry=True)
    return jnp.concatenate([ys1, ys2], axis=1), carry

  for a, b in zip(jax.tree_util.tree_leaves(chunked(params)), jax.tree_util.tree_leaves(whole(params))):
    np.testing.assert_allclose(a, b, **TOL)
  weights = random_tree(whole(params), 4)
  loss = lambda fn: lambda p: sum(jnp.sum(w * o) for w, o in zip(jax.tree_util.tree_leaves(weights),
                                                                 jax.tree_util.tree_leaves(fn(p))))
  for a, b in zip(jax.tree_util.tree_leaves(jax.grad(loss(chunked))(params)),
                  jax.tree_util.tree_leaves(jax.grad(loss(whole))(params))):
    np.testing.assert_allclose(a, b, **TOL)
  with pytest.raises(ValueError, match="reset_carry is the carry resets restart from; it needs resets"):
    layer.apply({"params": params}, xs, reset_carry=zeros)


@pytest.mark.parametrize("cell,options", [("gru", {}), ("lstm", {"learn_initial_carry": True}), ("mingru", {"parallel": True}),
                                          ("fgr_lstm", {"time_major": True})])
def test_the_step_call_equals_the_scanned_layer_step_by_step(cell, options):
  layer = models.make_layer(cell, H, **options)
  time_major = options.get("time_major", False)
  xs = jnp.asarray(np.random.default_rng(5).normal(size=(B, T, D)), jnp.float32)
  xs_in = jnp.swapaxes(xs, 0, 1) if time_major else xs
  variables = random_tree(layer.init(jax.random.key(0), xs_in), 1)
  resets = jnp.asarray(RESETS)
  want, want_carry = layer.apply(variables, xs_in, resets=resets.T if time_major else resets, return_carry=True)
  want = jnp.swapaxes(want, 0, 1) if time_major else want
  carry = layer.apply(variables, (B,), method="initialize_carry")
  step = jax.jit(lambda c, x, r: layer.apply(variables, c, x, reset=r, method="step"))
  for t in range(T):
    carry, y = step(carry, xs[:, t], resets[:, t])
    np.testing.assert_allclose(y, want[:, t], **TOL)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(want_carry)):
    np.testing.assert_allclose(a, b, **TOL)


def test_nnx_step_and_initialize_carry():
  layer = gj.nnx.LSTM(D, H, rngs=nnx.Rngs(0), learn_initial_carry=True)
  linen, variables = gj.interop.to_linen(layer)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(layer.initialize_carry((B,))),
             jax.tree_util.tree_leaves(linen.apply(variables, (B,), method="initialize_carry"))))
  xs = jnp.asarray(np.random.default_rng(6).normal(size=(B, T, D)), jnp.float32)
  carry, y = layer.step(layer.initialize_carry((B,)), xs[:, 0], reset=jnp.ones((B,), bool))
  np.testing.assert_allclose(y, layer(xs[:, :1])[:, 0], **TOL)
  with pytest.raises(ValueError, match=r"step: reset must have the batch shape \(3,\) of x; got \(3, 1\)"):
    layer.step(carry, xs[:, 0], reset=jnp.ones((B, 1), bool))


@pytest.mark.parametrize("cell,options,reverse", [("gru", {}, False), ("lstm", {}, True), ("minlstm", {"parallel": True}, True)])
def test_return_carries_are_every_steps_carry(cell, options, reverse):
  layer = models.make_layer(cell, H, **options)
  xs = jnp.asarray(np.random.default_rng(7).normal(size=(B, T, D)), jnp.float32)
  variables = random_tree(layer.init(jax.random.key(0), xs), 1)
  lengths, resets = jnp.asarray(LENGTHS), jnp.asarray(RESETS)
  ys, carry, carries = layer.apply(variables, xs, seq_lengths=lengths, resets=resets, reverse=reverse, return_carry=True,
                                   return_carries=True)
  np.testing.assert_allclose(ys, layer.apply(variables, xs, seq_lengths=lengths, resets=resets, reverse=reverse), **TOL)
  # the step-by-step carries of each row, its final one past its length (and, reversed, before its first step)
  step = lambda c, x, r: layer.apply(variables, c, x, reset=r, method="step")
  for b in range(B):
    order = list(range(int(LENGTHS[b])))[::-1] if reverse else list(range(int(LENGTHS[b])))
    c = layer.apply(variables, (1,), method="initialize_carry")
    for k, t in enumerate(order):
      starts = (k == 0) or (RESETS[b, t + 1] if reverse else RESETS[b, t])
      c, _ = step(c, xs[b : b + 1, t], jnp.asarray([bool(starts)]))
      for got, want in zip(jax.tree_util.tree_leaves(carries), jax.tree_util.tree_leaves(c)):
        np.testing.assert_allclose(got[b : b + 1, t], want, **TOL)
    for t in range(int(LENGTHS[b]), T):
      for got, want in zip(jax.tree_util.tree_leaves(carries), jax.tree_util.tree_leaves(carry)):
        np.testing.assert_allclose(got[b, t], want[b], **TOL)
  assert len(layer.apply(variables, xs, return_carries=True)) == 2  # (ys, carries)


def test_a_stack_cut_into_chunks_takes_one_reset_carry_per_layer():
  stack = gj.Stacked(gj.GRU(H), num_layers=2)
  xs = jnp.asarray(np.random.default_rng(8).normal(size=(B, T, D)), jnp.float32)
  variables = random_tree(stack.init(jax.random.key(0), xs), 1)
  resets = jnp.asarray(RESETS)
  whole = stack.apply(variables, xs, resets=resets)
  ys1, carry = stack.apply(variables, xs[:, :4], resets=resets[:, :4], return_carry=True)
  zeros = tuple(jnp.zeros((B, H)) for _ in range(2))
  ys2 = stack.apply(variables, xs[:, 4:], resets=resets[:, 4:], initial_carry=carry, reset_carry=zeros)
  np.testing.assert_allclose(jnp.concatenate([ys1, ys2], axis=1), whole, **TOL)
  with pytest.raises(ValueError, match=r"Stacked: reset_carry must hold one carry per layer or direction \(2\); got 1"):
    stack.apply(variables, xs, resets=resets, reset_carry=zeros[:1])
