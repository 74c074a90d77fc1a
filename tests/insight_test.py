"""gru_jax.insight and experiments.inspect: the gradient through time, the gates, the Jacobians."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gru_jax as gj
from gru_jax import cells, insight, models, specs
from gru_jax.lab import train
from gru_jax.lab import config as config_lib


class Tiny(nn.Module):
  """A GRU and a read-out of its last output."""

  @nn.compact
  def __call__(self, xs, seq_lengths=None):
    return nn.Dense(1)(gj.GRU(4)(xs, seq_lengths=seq_lengths)[:, -1])


class NoRecurrentLayer(nn.Module):
  @nn.compact
  def __call__(self, xs, seq_lengths=None):
    return nn.Dense(1)(xs[:, -1])


class TinyScanned(nn.Module):
  """The same with the generic `gj.Scanned` layer over an LSTM cell."""

  @nn.compact
  def __call__(self, xs, seq_lengths=None):
    return nn.Dense(1)(gj.Scanned(gj.LSTMCell(4), learn_initial_carry=True)(xs, seq_lengths=seq_lengths)[:, -1])


@pytest.mark.parametrize(
  "model",
  [models.SequenceModel(output_features=3, cell="gru", features=5, num_layers=2, bidirectional=True),
   models.SequenceModel(output_features=3, cell="lstm", features=5, cell_kwargs={"layer_norm": True}),
   models.SequenceModel(output_features=3, cell="gru", features=5, cell_kwargs={"reset_after": False}, zoneout=0.2,
                        learn_initial_carry=True),
   models.SequenceModel(output_features=3, cell="mingru", features=5, head="each"),
   models.SequenceModel(output_features=3, cell="sru", features=5), TinyScanned()],
  ids=["gru-bidirectional-2", "lstm-layer-norm", "gru-v3-zoneout", "mingru", "sru", "scanned"],
)
def test_the_traced_model_equals_the_model(rng, model):
  xs = jnp.asarray(rng.normal(size=(3, 7, 2)), jnp.float32)
  lengths = jnp.array([7, 3, 0])
  params = model.init(jax.random.key(0), xs)["params"]
  outputs, records = insight.trace(model, params, xs, seq_lengths=lengths)
  np.testing.assert_allclose(outputs, model.apply({"params": params}, xs, seq_lengths=lengths), rtol=1e-5, atol=1e-6)
  assert (set(records) >= {"rnn/layer_0"} or set(records) >= {"rnn/layer_0/forward_rnn", "rnn/layer_0/backward_rnn"}
          or set(records) == {"Scanned_0"})
  no_rnn = NoRecurrentLayer()
  with pytest.raises(ValueError, match="NoRecurrentLayer ran no gru_jax recurrent layer"):
    insight.trace(no_rnn, no_rnn.init(jax.random.key(0), xs)["params"], xs)


@pytest.mark.parametrize("time_major", [False, True])
def test_probe_run_equals_recurrent_run_with_several_batch_axes(rng, time_major):
  from gru_jax import recurrent

  spec = gj.LSTMCell(4).spec()
  xs = jnp.asarray(rng.normal(size=(2, 3, 5, 2) if not time_major else (5, 2, 3, 2)), jnp.float32)
  params = gj.LSTM(4).init(jax.random.key(0), xs if not time_major else jnp.moveaxis(xs, 0, -2))["params"]
  options = recurrent.LayerOptions(time_major=time_major, zoneout=0.3)
  lengths = jnp.array([[5, 2, 0], [1, 3, 5]])
  ys, carry, gates = insight.probe_run(spec, params, xs, options, seq_lengths=lengths, reverse=True)
  want_ys, want_carry = recurrent.run(spec, params, xs, options, seq_lengths=lengths, reverse=True)
  np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(want_carry), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert gates["forget"].shape == ys.shape


def test_gradient_norms_equal_plain_jax_grad(rng):
  """dLoss/dh_t from the probes equals the gradient with respect to an offset on h_t in a plain
  Python loop over the GRU step, differentiated by jax.grad."""
  xs = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
  model = Tiny()
  params = model.init(jax.random.key(0), xs)["params"]
  loss = lambda outputs: jnp.sum(jnp.sin(outputs))
  flow = insight.gradient_flow(model, params, xs, loss)

  gru, dense = params["GRU_0"], params["Dense_0"]

  def by_hand(offsets):
    h = jnp.zeros((2, 4))
    for t in range(6):
      h, _ = cells.gru_step(gru, h, cells.project(gru, xs[:, t]))
      h = h + offsets[t]
    return loss(h @ dense["kernel"] + dense["bias"])

  grads = jax.grad(by_hand)(jnp.zeros((6, 2, 4)))
  np.testing.assert_allclose(flow["GRU_0"], jnp.mean(jnp.linalg.norm(grads, axis=-1), axis=1), rtol=1e-5, atol=1e-9)


def test_gate_activations_equal_the_gates_recomputed_from_the_parameters(rng):
  xs = jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
  for model, names in ((models.SequenceModel(output_features=1, cell="gru", features=4), ("reset", "update")),
                       (models.SequenceModel(output_features=1, cell="lstm", features=4), ("input", "forget", "output"))):
    params = model.init(jax.random.key(1), xs)["params"]
    _, records = insight.trace(model, params, xs)
    record, p = records["rnn/layer_0"], params["rnn"]["layer_0"]
    hs = jnp.concatenate([jnp.zeros((2, 1, 4)), record.ys[:, :-1]], axis=1)  # h_{t-1}
    pre = xs @ p["input_kernel"] + p["bias"] + hs @ p["recurrent_kernel"]
    blocks = dict(zip({"gru": ("reset", "update", "n"), "lstm": ("input", "forget", "g", "output")}[model.cell],
                      jnp.split(pre, len(pre[0, 0]) // 4, axis=-1)))
    for name in names:
      np.testing.assert_allclose(record.gates[name], jax.nn.sigmoid(blocks[name]), rtol=1e-5, atol=1e-6)
    assert set(record.gates) == set(names) | {"keep"}


def test_state_jacobians_agree_with_autodiff_of_the_step(rng):
  model = models.SequenceModel(output_features=1, cell="lstm", features=3)
  xs = jnp.asarray(rng.normal(size=(1, 6, 2)), jnp.float32)
  params = model.init(jax.random.key(2), xs)["params"]
  _, records = insight.trace(model, params, xs)
  record = records["rnn/layer_0"]
  jac = insight.state_jacobians(record, top=6)
  p = record.params
  xp = cells.project(p, xs[0])
  carry = (jnp.zeros((1, 3)), jnp.zeros((1, 3)))
  states = []
  for t in range(6):
    states.append(carry)
    carry, _ = cells.lstm_step(p, carry, xp[t : t + 1])
  flat = lambda c: jnp.concatenate([c[0][0], c[1][0]])
  step = lambda s, t: flat(cells.lstm_step(p, (s[None, :3], s[None, 3:]), xp[t : t + 1])[0])
  j = [jax.jacobian(step)(flat(states[t]), t) for t in range(6)]
  np.testing.assert_allclose(jac["singular_values"][2], np.linalg.svd(j[3], compute_uv=False), rtol=1e-4, atol=1e-6)
  to_end = np.linalg.norm(j[5] @ j[4] @ j[3], ord=2)  # d s_6 / d s_3
  np.testing.assert_allclose(jac["to_end"][2], to_end, rtol=1e-4)
  assert jac["to_end"][-1] == pytest.approx(1.0)


def test_tanh_rnn_gradient_vanishes_over_100_steps_and_a_keep_biased_gru_keeps_more():
  """At initialisation on the adding problem (T=100): the tanh RNN's dLoss/dh_1 is orders of
  magnitude below its dLoss/dh_100; a GRU whose keep gate is biased open (chrono
  initialisation) loses far less over the same steps."""
  ratios = {}
  for cell, kwargs in (("rnn", {}), ("gru", {"chrono_init": 100})):
    c = config_lib.for_cell(cell, "adding")
    c.model.features, c.task.seq_len, c.task.eval_size = 16, 100, 8
    c.model.cell_kwargs = kwargs
    task, model, tx, _ = train.build(c)
    params = train.create_train_state(model, tx, task, jax.random.key(0)).params
    batch = task.held_out("valid")
    flow = insight.gradient_flow(model, params, batch["xs"], lambda o: task.loss_and_metrics(o, batch)[0])["rnn/layer_0"]
    if cell == "rnn":
      assert np.all(np.diff(np.log(flow[:90])) > 0)  # decays steadily into the past
    ratios[cell] = flow[0] / flow[-1]
  assert ratios["rnn"] < 1e-4
  assert ratios["gru"] > 1e3 * ratios["rnn"]


def test_gate_statistics_weigh_only_the_valid_steps():
  gates = jnp.concatenate([jnp.full((1, 2, 3), 0.99), jnp.full((1, 2, 3), 0.5)], axis=1)  # steps 2, 3: padding
  record = insight.Record(None, {}, None, None, jnp.array([2]), False, None, {"keep": gates})
  stats = insight.gate_statistics({"layer": record})
  assert float(stats["gates/layer/keep/mean"]) == pytest.approx(0.99)
  assert float(stats["gates/layer/keep/above_0.95"]) == 1.0 and float(stats["gates/layer/keep/below_0.05"]) == 0.0


def tiny_run(tmp_path, task, front_end="linen", **train_overrides):
  c = config_lib.for_cell("gru", task)
  c.model.features, c.model.front_end = 8, front_end
  if task == "text_classify":  # a small table of reviews, as the sentiment task's but faster to load
    reviews = [("amazing breakfast , will buy again !", "positive"), ("stale and bland , never again .", "negative"),
               ("perfectly balanced cereal", "positive"), ("half the box was dust", "negative")]
    rows = [(f"{text} {i}", label) for i in range(10) for text, label in reviews]  # distinct texts: none deduplicated
    (tmp_path / "reviews.csv").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows).replace(" , ", " ; "))
    c.task.update(path=str(tmp_path / "reviews.csv"), text_column="text", label_column="label", seq_len=20)
  c.train.update(num_steps=2, batch_size=4, eval_batch_size=64, log_every=1, eval_every=2, checkpoint_every=2)
  c.train.update(train_overrides)
  c.opt.warmup_steps = 0
  if task == "adding":
    c.task.seq_len, c.task.eval_size = 10, 16
  train.train_and_evaluate(c, str(tmp_path))
  return c


@pytest.mark.slow
def test_inspect_writes_the_plots_and_the_prediction_for_a_text(tmp_path):
  from gru_jax.lab import insight_report

  tiny_run(tmp_path, "text_classify", front_end="nnx")  # the NNX front-end's run, inspected on the linen path
  text = "Amazing! This box of cereal gave me a perfectly balanced breakfast, as all things should be."
  index = insight_report.inspect_run(str(tmp_path), str(tmp_path / "inspect"), examples=4, text=text)
  folder = tmp_path / "inspect"
  for name in ("gradient_flow.png", "jacobians.png", "gates.png", "gate_statistics.json", "prediction.json"):
    assert (folder / name).stat().st_size > 0, name
  prediction = json.loads((folder / "prediction.json").read_text())
  assert prediction["tokens"][:2] == ["amazing", "!"] and sum(prediction["probabilities"].values()) == pytest.approx(1.0)
  assert "![gates](gates.png)" in open(index).read()
  with pytest.raises(train.ConfigError, match="--text needs a text-classification run"):
    tiny_run(tmp_path / "adding", "adding")
    insight_report.inspect_run(str(tmp_path / "adding"), str(tmp_path / "x"), text="hello")


@pytest.mark.slow
def test_log_gates_adds_gate_statistics_to_the_train_records_only_when_on(tmp_path):
  tiny_run(tmp_path / "on", "adding", log_gates=True)
  tiny_run(tmp_path / "off", "adding")
  read = lambda d: [json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in read("on") if r["split"] == "train"]
  assert train_records and all("gates/rnn/layer_0/update/mean" in r for r in train_records)
  assert 0.0 < train_records[-1]["gates/rnn/layer_0/update/mean"] < 1.0
  assert not any(k.startswith("gates/") for r in read("off") for k in r)


def test_the_inspect_command_names_what_it_needs():
  import subprocess
  import sys

  result = subprocess.run([sys.executable, "-m", "experiments.inspect"], capture_output=True, text=True,
                          cwd=__import__("pathlib").Path(__file__).resolve().parents[1])
  assert result.returncode == 2 and "give --workdir=RUN" in result.stderr, result.stderr


@pytest.mark.parametrize("cell", sorted(set(specs.SPECS) - {"rnn"}))
def test_every_gated_cell_records_its_gates_and_what_it_keeps(rng, cell):
  # a cell of the registry whose spec gives no gate values would leave insight's gate plots empty
  xs = jnp.asarray(rng.normal(size=(2, 4, 3)), jnp.float32)
  model = models.SequenceModel(output_features=1, cell=cell, features=4)
  _, records = insight.trace(model, model.init(jax.random.key(1), xs)["params"], xs)
  gates = records["rnn/layer_0"].gates
  assert "keep" in gates and len(gates) >= 2, sorted(gates)
  for name, values in gates.items():
    assert values.shape == (2, 4, 4) and bool(jnp.all((values >= 0) & (values <= 1))), name
