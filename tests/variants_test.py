"""Cell variants for ablation: each step against its equation written out here in numpy, the fast
paths against the readable ones, and every switch (on changes the output, off changes nothing)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import models

B, T, D, H = 2, 6, 3, 4
KEY = jax.random.key(0)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def blocks(a, n):
  return np.split(np.asarray(a, np.float64), n, axis=-1)


def random_params(layer, xs, seed=1):
  """The layer's params with random values everywhere (zero biases would hide bugs)."""
  params = layer.init(KEY, xs)["params"]
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [jax.random.normal(k, x.shape) * 0.5 for k, x in zip(keys, leaves)])


def layer_norm(v, scale, num_blocks):
  out = []
  for block, s in zip(np.split(v, num_blocks, -1), np.split(scale, num_blocks, -1)):
    mean = block.mean(-1, keepdims=True)
    var = ((block - mean) ** 2).mean(-1, keepdims=True)
    out.append((block - mean) / np.sqrt(var + 1e-5) * s)
  return np.concatenate(out, -1)


def g(x):
  return np.where(x >= 0, x + 0.5, sigmoid(x))


# Each variant's step, written out from its paper's equations: (p, carry, x) -> (carry, y).
def gru_no_reset(p, h, x):
  x_z, x_n = blocks(x @ p["input_kernel"] + p["bias"], 2)
  h_z, h_n = blocks(h @ p["recurrent_kernel"], 2)
  z = sigmoid(x_z + h_z)
  new = (1 - z) * np.tanh(x_n + h_n) + z * h
  return new, new


def mgu(p, h, x):
  w_f, w_n = blocks(p["recurrent_kernel"], 2)
  x_f, x_n = blocks(x @ p["input_kernel"] + p["bias"], 2)
  f = sigmoid(x_f + h @ w_f)
  n = np.tanh(x_n + (f * h) @ w_n)
  new = (1 - f) * h + f * n
  return new, new


def cifg_lstm(p, carry, x):
  c, h = carry
  f, g_, o = blocks(x @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"], 3)
  f = sigmoid(f)
  c = f * c + (1 - f) * np.tanh(g_)
  h = sigmoid(o) * np.tanh(c)
  return (c, h), h


def peephole_lstm(p, carry, x):
  c, h = carry
  i, f, g_, o = blocks(x @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"], 4)
  p_i, p_f, p_o = blocks(p["peephole"], 3)
  new_c = sigmoid(f + p_f * c) * c + sigmoid(i + p_i * c) * np.tanh(g_)
  h = sigmoid(o + p_o * new_c) * np.tanh(new_c)
  return (new_c, h), h


def mingru(p, h, x):
  k, h_tilde = blocks(x @ p["input_kernel"] + p["bias"], 2)
  z = sigmoid(k)
  new = (1 - z) * h + z * g(h_tilde)
  return new, new


def minlstm(p, h, x):
  k_f, k_i, h_tilde = blocks(x @ p["input_kernel"] + p["bias"], 3)
  f, i = sigmoid(k_f), sigmoid(k_i)
  new = f / (f + i) * h + i / (f + i) * g(h_tilde)
  return new, new


def sru(p, c, x, version):
  x_tilde, f, r = blocks(x @ p["input_kernel"], 3)
  b_f, b_r = blocks(p["bias"], 2)
  f, r = f + b_f, r + b_r
  if version == 2018:
    v_f, v_r = blocks(p["peephole"], 2)
    f, r = f + v_f * c, r + v_r * c
  f, r = sigmoid(f), sigmoid(r)
  c = f * c + (1 - f) * x_tilde
  highway = x @ p["highway_kernel"] if "highway_kernel" in p else x
  out = np.tanh(c) if version == 2017 else c
  return c, r * out + (1 - r) * highway


def ln_gru(p, h, x):
  x_r, x_z, x_n = blocks(layer_norm(x @ p["input_kernel"], p["ln_input_scale"], 3) + p["bias"], 3)
  h_r, h_z, h_n = blocks(layer_norm(h @ p["recurrent_kernel"], p["ln_recurrent_scale"], 3), 3)
  r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
  n = np.tanh(x_n + r * (h_n + p["recurrent_bias_n"]))
  new = (1 - z) * n + z * h
  return new, new


def ln_lstm(p, carry, x):
  c, h = carry
  xp = layer_norm(x @ p["input_kernel"], p["ln_input_scale"], 4) + p["bias"]
  i, f, g_, o = blocks(xp + layer_norm(h @ p["recurrent_kernel"], p["ln_recurrent_scale"], 4), 4)
  c = sigmoid(f) * c + sigmoid(i) * np.tanh(g_)
  h = sigmoid(o) * np.tanh(layer_norm(c, p["ln_cell_scale"], 1))
  return (c, h), h


def greff_lstm(p, carry, x, removed):
  """Greff et al. 2017, Sec. II-A: the peephole LSTM with one gate fixed at 1 or one activation the identity."""
  c, h = carry
  names = {"input_gate": "fgo", "forget_gate": "igo", "output_gate": "ifg"}.get(removed, "ifgo")
  a = dict(zip(names, blocks(x @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"], len(names))))
  peep = dict(zip(names.replace("g", ""), blocks(p["peephole"], len(names) - 1)))
  i = sigmoid(a["i"] + peep["i"] * c) if "i" in a else 1.0
  f = sigmoid(a["f"] + peep["f"] * c) if "f" in a else 1.0
  c = f * c + i * (a["g"] if removed == "input_activation" else np.tanh(a["g"]))
  o = sigmoid(a["o"] + peep["o"] * c) if "o" in a else 1.0
  h = o * (c if removed == "output_activation" else np.tanh(c))
  return (c, h), h


def dey_gru(p, h, x, gates_from):
  """Dey & Salem 2017: the reset-before GRU with gates from the state and a bias (GRU1), the state (GRU2), the bias (GRU3)."""
  u = np.asarray(p["recurrent_kernel"])
  b_n = p["bias"] if gates_from == "state" else blocks(p["bias"], 3)[2]
  if gates_from == "bias":
    r, z = (sigmoid(b) * np.ones_like(h) for b in blocks(p["bias"], 3)[:2])
  else:
    pre = h @ u[:, : 2 * H] + (p["bias"][: 2 * H] if gates_from == "state_and_bias" else 0.0)
    r, z = (sigmoid(a) for a in blocks(pre, 2))
  n = np.tanh(x @ p["input_kernel"] + b_n + (r * h) @ u[:, -H:])
  new = (1 - z) * n + z * h
  return new, new


DEY = {"gru1": "state_and_bias", "gru2": "state", "gru3": "bias"}
def fgr_lstm(p, carry, x):
  """Greff et al. 2017's FGR: the peephole LSTM whose gates i, f, o also see the previous step's i, f, o."""
  c, i, f, o, h = carry
  a_i, a_f, a_g, a_o = blocks(x @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"], 4)
  g_i, g_f, g_o = blocks(np.concatenate([i, f, o], -1) @ p["gate_recurrent_kernel"], 3)
  p_i, p_f, p_o = blocks(p["peephole"], 3)
  i, f = sigmoid(a_i + g_i + p_i * c), sigmoid(a_f + g_f + p_f * c)
  c = f * c + i * np.tanh(a_g)
  o = sigmoid(a_o + g_o + p_o * c)
  h = o * np.tanh(c)
  return (c, i, f, o, h), h


GREFF = {"nig_lstm": "input_gate", "nfg_lstm": "forget_gate", "nog_lstm": "output_gate",
         "niaf_lstm": "input_activation", "noaf_lstm": "output_activation"}


ZERO_H = lambda: np.zeros((B, H))
ZERO_CH = lambda: (np.zeros((B, H)), np.zeros((B, H)))
VARIANTS = {
  "gru_no_reset": (gj.GRUNoReset(H), gru_no_reset, ZERO_H),
  "gru_no_reset[autodiff]": (gj.GRUNoReset(H, custom_vjp=False), gru_no_reset, ZERO_H),
  "mgu": (gj.MGU(H), mgu, ZERO_H),
  "cifg_lstm": (gj.CIFGLSTM(H), cifg_lstm, ZERO_CH),
  "peephole_lstm": (gj.PeepholeLSTM(H), peephole_lstm, ZERO_CH),
  "mingru": (gj.MinGRU(H, parallel=True), mingru, ZERO_H),
  "mingru[sequential]": (gj.MinGRU(H, parallel=False), mingru, ZERO_H),
  "minlstm": (gj.MinLSTM(H, parallel=True), minlstm, ZERO_H),
  "minlstm[sequential]": (gj.MinLSTM(H, parallel=False), minlstm, ZERO_H),
  "sru2017": (gj.SRU(H, parallel=True), lambda p, c, x: sru(p, c, x, 2017), ZERO_H),
  "sru2017[sequential]": (gj.SRU(H, parallel=False), lambda p, c, x: sru(p, c, x, 2017), ZERO_H),
  "sru2018": (gj.SRU(H, version=2018), lambda p, c, x: sru(p, c, x, 2018), ZERO_H),
  "ln_gru": (gj.GRU(H, layer_norm=True), ln_gru, ZERO_H),
  "ln_lstm": (gj.LSTM(H, layer_norm=True), ln_lstm, ZERO_CH),
  **{name: (models.CELLS[name](H), functools.partial(greff_lstm, removed=removed), ZERO_CH) for name, removed in GREFF.items()},
  **{f"{name}[autodiff]": (models.CELLS[name](H, custom_vjp=False), functools.partial(greff_lstm, removed=removed), ZERO_CH)
     for name, removed in GREFF.items()},
  **{name: (models.CELLS[name](H), functools.partial(dey_gru, gates_from=gates_from), ZERO_H) for name, gates_from in DEY.items()},
  "fgr_lstm": (gj.FGRLSTM(H), fgr_lstm, lambda: tuple(np.zeros((B, H)) for _ in range(5))),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_equals_its_equations(rng, name):
  layer, equations, zero = VARIANTS[name]
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  params = random_params(layer, xs)
  ys, carry = layer.apply({"params": params}, xs, return_carry=True)
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  state, expected = zero(), []
  for t in range(T):
    state, y = equations(p, state, np.asarray(xs[:, t], np.float64))
    expected.append(y)
  np.testing.assert_allclose(ys, np.stack(expected, 1), rtol=1e-5, atol=1e-5)
  for got, want in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(state)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_sru_highway_is_x_itself_when_widths_match(rng):
  layer = gj.SRU(H)
  xs = jnp.asarray(rng.normal(size=(B, T, H)), jnp.float32)
  params = random_params(layer, xs)
  assert "highway_kernel" not in params
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  c, expected = np.zeros((B, H)), []
  for t in range(T):
    c, y = sru(p, c, np.asarray(xs[:, t], np.float64), 2017)
    expected.append(y)
  np.testing.assert_allclose(layer.apply({"params": params}, xs), np.stack(expected, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mgu", "cifg_lstm", "peephole_lstm", "nfg_lstm", "fgr_lstm", "mingru", "minlstm", "sru2018", "ln_gru"])
def test_cells_step_like_their_layers_and_run_in_flax_rnn(rng, name):
  """The one-step cell (for streaming / flax.linen.RNN) takes the layer's params and agrees with it."""
  layer = VARIANTS[name][0]
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  params = random_params(layer, xs)
  cell = layer.make_cell(parent=None)
  carry = cell.initialize_carry(KEY, (B, D))
  outs = []
  for t in range(T):
    carry, y = cell.apply({"params": params}, carry, xs[:, t])
    outs.append(y)
  ys = layer.apply({"params": params}, xs)
  np.testing.assert_allclose(jnp.stack(outs, 1), ys, rtol=1e-5, atol=1e-6)
  flax_ys = jax.jit(lambda v, x: gj.layers.nn.RNN(cell).apply(v, x))({"params": {"cell": params}}, xs)
  np.testing.assert_allclose(flax_ys, ys, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fast,slow", [(gj.GRUNoReset(H), gj.GRUNoReset(H, custom_vjp=False)),
                                       (gj.CIFGLSTM(H), gj.CIFGLSTM(H, custom_vjp=False))]
                         + [(VARIANTS[name][0], VARIANTS[f"{name}[autodiff]"][0]) for name in GREFF])
@pytest.mark.slow
def test_hand_written_backward_of_the_variants_matches_autodiff(rng, fast, slow):
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  params = random_params(fast, xs)
  lengths = jnp.array([T, 3])
  loss = lambda layer: lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x, seq_lengths=lengths)))
  got = jax.grad(loss(fast), argnums=(0, 1))(params, xs)
  want = jax.grad(loss(slow), argnums=(0, 1))(params, xs)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --- Switches -----------------------------------------------------------------------------------


def outputs(layer, params, xs, **kwargs):
  return np.asarray(layer.apply({"params": params}, xs, **kwargs))


def test_layer_norm_adds_only_its_scales_and_changes_the_output(rng):
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  for plain, normed in [(gj.GRU(H), gj.GRU(H, layer_norm=True)), (gj.LSTM(H), gj.LSTM(H, layer_norm=True))]:
    params = random_params(normed, xs)
    base = {k: v for k, v in params.items() if not k.startswith("ln_")}
    assert set(params) - set(base) and set(base) == set(plain.init(KEY, xs)["params"])
    assert not np.allclose(outputs(normed, params, xs), outputs(plain, base, xs), atol=1e-3)


def test_chrono_init_sets_the_keep_gate_bias():
  xs = jnp.ones((1, 3, D))
  t_max = 50
  gru_bias = gj.GRU(H, chrono_init=t_max).init(KEY, xs)["params"]["bias"]
  chrono = np.asarray(gru_bias[H : 2 * H])
  assert np.all(chrono >= 0) and np.all(chrono <= np.log(t_max - 1) + 1e-6) and np.ptp(chrono) > 0
  np.testing.assert_array_equal(np.concatenate([gru_bias[:H], gru_bias[2 * H :]]), 0.0)
  lstm_bias = gj.LSTM(H, chrono_init=t_max).init(KEY, xs)["params"]["bias"]
  np.testing.assert_array_equal(lstm_bias[:H], -lstm_bias[H : 2 * H])  # b_i = -b_f
  assert np.all(lstm_bias[H : 2 * H] >= 0) and np.ptp(np.asarray(lstm_bias[H : 2 * H])) > 0
  # Off: the plain initialisation (zeros; the LSTM's forget bias 1).
  np.testing.assert_array_equal(gj.GRU(H).init(KEY, xs)["params"]["bias"], 0.0)
  np.testing.assert_array_equal(gj.LSTM(H).init(KEY, xs)["params"]["bias"][H : 2 * H], 1.0)


@pytest.mark.slow
def test_recurrent_dropout_is_one_mask_per_sequence_and_off_at_evaluation(rng):
  xs = jnp.asarray(rng.normal(size=(1, 12, D)), jnp.float32)
  rate = 0.5
  layer = gj.GRU(3, recurrent_dropout=rate)
  params = random_params(gj.GRU(3), xs)
  np.testing.assert_array_equal(outputs(layer, params, xs), outputs(gj.GRU(3), params, xs))
  train = outputs(layer, params, xs, deterministic=False, rngs={"dropout": jax.random.key(3)})
  assert not np.allclose(train, outputs(gj.GRU(3), params, xs), atol=1e-4)
  # One mask for the whole sequence: some fixed pattern of dropped units, applied at every step,
  # reproduces the output exactly (a mask per step would match none of them over 12 steps).
  matches = []
  for pattern in itertools.product([0.0, 1.0 / (1 - rate)], repeat=3):
    masked = dict(params, recurrent_kernel=params["recurrent_kernel"] * jnp.array(pattern)[:, None])
    matches.append(np.allclose(outputs(gj.GRU(3), masked, xs), train, rtol=1e-5, atol=1e-6))
  assert sum(matches) == 1
  with pytest.raises(Exception, match="dropout"):
    layer.apply({"params": params}, xs, deterministic=False)  # no rng given


def test_zoneout_keeps_units_in_training_and_is_the_expectation_at_evaluation(rng):
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  rate = 0.3
  plain, zoned = gj.GRU(H), gj.GRU(H, zoneout=rate)
  params = random_params(plain, xs)
  h, expected = np.zeros((B, H)), []
  for t in range(T):
    new, _ = gj.cells.gru_step(params, jnp.asarray(h, jnp.float32), gj.cells.project(params, xs[:, t]))
    h = rate * h + (1 - rate) * new
    expected.append(h)
  np.testing.assert_allclose(outputs(zoned, params, xs), np.stack(expected, 1), rtol=1e-5, atol=1e-6)
  train = outputs(zoned, params, xs, deterministic=False, rngs={"dropout": jax.random.key(0)})
  # In training each unit at each step is either its old value or the GRU's new one.
  prev = np.concatenate([np.zeros((B, 1, H)), train[:, :-1]], 1)
  kept = np.isclose(train, prev)
  assert kept.any() and not kept.all()


@pytest.mark.parametrize(
  "make,message",
  [
    (lambda: gj.GRU(H, zoneout=1.0), r"zoneout must be a number in \[0, 1\)"),
    (lambda: gj.LSTM(H, recurrent_dropout=-0.1), r"recurrent_dropout must be a number in \[0, 1\)"),
    (lambda: gj.MinGRU(H, recurrent_dropout=0.1), r"recurrent_dropout needs a cell with a recurrent kernel"),
    (lambda: gj.SRU(H, zoneout=0.1), r"zoneout needs a cell whose output is its carry"),
    (lambda: gj.SRU(H, version=2019), r"version must be 2017 or 2018"),
    (lambda: gj.SRU(H, activation="swish"), r"activation='swish' is not supported"),
    (lambda: gj.GRU(H, layer_norm=True, reset_after=False), r"layer_norm is implemented for reset_after=True only"),
    (lambda: gj.CIFGLSTM(H, layer_norm=True), r"layer_norm is implemented for the GRU and LSTM cells only"),
    (lambda: gj.LSTM(H, chrono_init=1), r"chrono_init \(T_max\) must be at least 2"),
    (lambda: gj.GRU(H, chrono_init=2.5), r"chrono_init must be a positive integer"),
    (lambda: gj.GRU3(H, use_bias=False), r"GRU3Cell: its gates are its biases, so use_bias=False leaves it none"),
    (lambda: gj.NFGLSTM(H, chrono_init=10), r"NFGLSTMCell: chrono_init sets the forget gate's bias"),
  ],
)
def test_bad_variant_options(make, message):
  with pytest.raises(ValueError, match=message):
    make()


# One cell per way a layer runs (fast path with gate parameters, reference path with a tuple carry,
# the parallel scans): the run around the model does not depend on the cell, and
# tests/train_test.py takes one train step of every cell and tests/configs_test.py builds every
# cell's default config.
@pytest.mark.slow
@pytest.mark.parametrize("cell", ["peephole_lstm", "fgr_lstm", "gru3", "mingru", "sru"])
def test_variants_train_from_their_config(cell, tmp_path):
  from configs import default
  from gru_jax.lab import train

  config = default.get_config(f"cell={cell}")
  config.task.seq_len, config.model.features, config.train.batch_size = 8, 8, 4
  config.train.num_steps, config.opt.warmup_steps, config.train.eval_every = 2, 0, 0
  config.task.eval_size, config.train.eval_batch_size = 8, 8
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["finished"] and summary["cell"] == cell and np.isfinite(summary["test_at_best_valid"]["mse"])


@pytest.mark.parametrize("name", sorted(GREFF) + ["fgr_lstm"] + sorted(DEY))
def test_published_variant_gradient_equals_its_equations_by_finite_differences(rng, name):
  # d/de loss(params + e * v) of the numpy equations (float64, central differences) against jax.grad . v
  layer, equations, zero = VARIANTS[name]
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  params = random_params(layer, xs)
  weights = rng.normal(size=(B, T, H))
  direction = {k: rng.normal(size=v.shape) for k, v in params.items()}

  def numpy_loss(p):
    state, total = zero(), 0.0
    for t in range(T):
      state, y = equations(p, state, np.asarray(xs[:, t], np.float64))
      total += np.sum(weights[:, t] * y)
    return total

  p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
  eps = 1e-5
  shifted = lambda e: numpy_loss({k: p64[k] + e * direction[k] for k in p64})
  numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
  grads = jax.grad(lambda p: jnp.sum(jnp.asarray(weights, jnp.float32) * layer.apply({"params": p}, xs)))(params)
  analytic = sum(float(np.sum(np.asarray(grads[k], np.float64) * direction[k])) for k in params)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-4)


def test_gru1_without_biases_is_gru2_without_biases(rng):
  xs = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
  params = random_params(gj.GRU1(H, use_bias=False), xs)
  assert set(params) == {"input_kernel", "recurrent_kernel"}
  np.testing.assert_array_equal(outputs(gj.GRU1(H, use_bias=False), params, xs), outputs(gj.GRU2(H, use_bias=False), params, xs))
  with_bias = dict(params, bias=jnp.ones((3 * H,)))
  assert not np.allclose(outputs(gj.GRU1(H), with_bias, xs), outputs(gj.GRU1(H, use_bias=False), params, xs))
