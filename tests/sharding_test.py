"""Data parallelism and FSDP on 4 simulated CPU devices: the same training as on one device."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter with 4 CPU devices (the flag must be set before jax starts).
SCRIPT = r'''
import sys
import jax, numpy as np
from gru_jax.lab import config as config_lib, sharding, train

assert len(jax.devices()) == 4, jax.devices()
workdir = sys.argv[1]

def tiny(data, fsdp=1, **train_overrides):
  c = config_lib.for_cell("lstm", "adding")
  c.model.features, c.task.seq_len, c.task.eval_size, c.num_seeds = 8, 6, 32, 2
  c.train.update(num_steps=6, batch_size=8, eval_batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
  c.train.update(train_overrides)
  c.opt.warmup_steps = 1
  c.mesh.data, c.mesh.fsdp = data, fsdp
  return c

def params(c, name):
  return train.restore(c, f"{workdir}/{name}")[2]["state"].params

# The gradient is all-reduced over the data axis: the batch really is split.
c = tiny(4)
task, model, tx, schedule = train.build(c)
mesh = train.make_mesh(c)
ckpt = sharding.replicate(train.initial_checkpoint(c, task, model, tx), mesh)
_, step_keys = train.seed_keys(c)
step = jax.jit(lambda s, k, stop, n: train.train_steps(s, k, stop, n, model=model, task=task, schedule=schedule,
                                                       batch_size=8, mesh=mesh))
hlo = step.lower(ckpt["state"], step_keys, ckpt["stopped_at"], np.int32(0)).compile().as_text()
assert "all-reduce" in hlo, "no all-reduce in the data-parallel step"
# Each device draws only its own rows of the batch: no array in the batch's program spans all 8.
draw = jax.jit(lambda k: sharding.shard_batch(task.train_batch(k, 8), mesh)).lower(jax.random.key(0)).compile().as_text()
assert "f32[2,6" in draw and "f32[8," not in draw, draw
assert len(ckpt["state"].params["head"]["kernel"].sharding.device_set) == 4

one = train.train_and_evaluate(tiny(1), f"{workdir}/one")
four = train.train_and_evaluate(tiny(-1), f"{workdir}/four")
for a, b in zip(one["runs"], four["runs"]):
  np.testing.assert_allclose(b["train"]["loss"], a["train"]["loss"], rtol=1e-5)
  np.testing.assert_allclose(b["test_at_best_valid"]["mse"], a["test_at_best_valid"]["mse"], rtol=1e-5)
for a, b in zip(jax.tree_util.tree_leaves(params(tiny(1), "one")), jax.tree_util.tree_leaves(params(tiny(1), "four"))):
  np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)

# FSDP: parameters and optimizer state split over the fsdp axis (each device holds a quarter of a
# kernel); the same training as on one device, alone and with a data axis.
placed = train.initial_checkpoint_on(train.make_mesh(tiny(1, 4)), tiny(1, 4), task, model, tx)()
kernel = placed["state"].params["rnn"]["layer_0"]["recurrent_kernel"]  # [seeds, 8, 32]
assert "fsdp" in str(kernel.sharding.spec) and kernel.addressable_shards[0].data.shape == (2, 8, 8), kernel.sharding
for name, data, fsdp in (("fsdp", -1, 4),):  # data x fsdp is covered by the 2x2 resume below
  run = train.train_and_evaluate(tiny(data, fsdp), f"{workdir}/{name}")
  for a, b in zip(one["runs"], run["runs"]):
    np.testing.assert_allclose(b["train"]["loss"], a["train"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["test_at_best_valid"]["mse"], a["test_at_best_valid"]["mse"], rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(params(tiny(1), "one")), jax.tree_util.tree_leaves(params(tiny(1), name))):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)

# Saved split over data (over fsdp), resumed on data x fsdp (on one device): the checkpoint is
# resharded on restore, and the run ends as the uninterrupted one-device run.
for name, saved, resumed in (("moved", (4, 1), (2, 2)), ("gathered", (1, 4), (1, 1))):
  assert train.train_and_evaluate(tiny(*saved), f"{workdir}/{name}", steps_this_run=4) == {"step": 4, "finished": False}
  moved = train.train_and_evaluate(tiny(*resumed), f"{workdir}/{name}")
  for a, b in zip(one["runs"], moved["runs"]):
    np.testing.assert_allclose(b["test_at_best_valid"]["mse"], a["test_at_best_valid"]["mse"], rtol=1e-5)

for data, fsdp, message in ((3, 1, "train.batch_size=8 must be divisible by the 3 devices of mesh.data * mesh.fsdp"),
                            (5, 1, "mesh.data must be -1 (every device) or a count"),
                            (1, 5, "mesh.fsdp must be a count from 1 to 4"),
                            (4, 2, "mesh.data must be -1 (every device) or a count with mesh.data * mesh.fsdp * mesh.seq (2) from 1 to 4")):
  try:
    train.train_and_evaluate(tiny(data, fsdp), f"{workdir}/bad{data}-{fsdp}")
    raise AssertionError(f"mesh.data={data}, mesh.fsdp={fsdp} was accepted")
  except train.ConfigError as e:
    assert message in str(e), str(e)
print("ok")
'''


@pytest.mark.slow
def test_data_and_fsdp_training_on_four_devices_equals_one_device(tmp_path):
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


SEQUENCE_SCRIPT = r'''
import sys
import jax, jax.numpy as jnp, numpy as np
import gru_jax as gj

workdir = sys.argv[1]

assert len(jax.devices()) == 4
rng = np.random.default_rng(0)
xs = jnp.asarray(rng.normal(size=(3, 16, 5)), jnp.float32)
lengths = jnp.array([16, 9, 0])
mesh = jax.make_mesh((4,), ("seq",), (jax.sharding.AxisType.Auto,))
for plain in (gj.MinGRU(6, parallel=True), gj.MinLSTM(6, parallel=True), gj.SRU(6, parallel=True)):
  sharded = plain.clone(sequence_axis="seq")
  variables = plain.init(jax.random.key(0), xs)
  variables = jax.tree_util.tree_map(lambda p: p + 0.2 * jax.random.normal(jax.random.key(1), p.shape), variables)
  h0 = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
  resets = jnp.asarray(rng.random((3, 16)) < 0.2).at[0, 5].set(True)  # a reset inside a device's stretch, and maybe at one's start
  variants = ({}, {"seq_lengths": lengths}, {"seq_lengths": lengths, "reverse": True}, {"initial_carry": h0},
              {"resets": resets, "initial_carry": h0})
  for kwargs in variants if isinstance(plain, gj.MinGRU) else variants[2:]:  # every variant for one cell
    loss = lambda layer: lambda v: jnp.sum(jnp.sin(layer.apply(v, xs, **kwargs)))
    with jax.set_mesh(mesh):
      ys, carry = jax.jit(lambda v: sharded.apply(v, xs, return_carry=True, **kwargs))(variables)
      grads = jax.jit(jax.grad(loss(sharded)))(variables)
    want_ys, want_carry = plain.apply(variables, xs, return_carry=True, **kwargs)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry, want_carry, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(jax.grad(loss(plain))(variables))):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
with jax.set_mesh(mesh):
  try:
    gj.MinGRU(6, sequence_axis="seq").apply(variables := gj.MinGRU(6).init(jax.random.key(0), xs[:, :6]), xs[:, :6])
    raise AssertionError("T=6 on 4 devices was accepted")
  except ValueError as e:
    assert "T=6 steps must be divisible by its 4 devices" in str(e), e
try:
  gj.GRU(6, sequence_axis="seq")
  raise AssertionError("a GRU with sequence_axis was accepted")
except ValueError as e:
  assert "sequence_axis needs a cell whose recurrence is linear in the carry" in str(e), e

# Training with mesh.seq: time split over 2 devices (and the batch over 2) trains as one device does.
from gru_jax.lab import config as config_lib, sharding, train

def tiny(data, seq=1, cell="mingru", seq_len=8):
  c = config_lib.for_cell(cell, "adding")
  c.model.features, c.task.seq_len, c.task.eval_size, c.num_seeds = 8, seq_len, 32, 2
  c.train.update(num_steps=4, batch_size=8, eval_batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
  c.opt.warmup_steps = 1
  c.mesh.data, c.mesh.seq = data, seq
  return c

c = tiny(2, 2)
task, model, tx, schedule = train.build(c)
mesh = train.make_mesh(c)
model = train.split_time(c, task, model, mesh)
with jax.set_mesh(mesh):
  ckpt = sharding.replicate(train.initial_checkpoint(c, task, model, tx), mesh)
  step = jax.jit(lambda s, k, stop, n: train.train_steps(s, k, stop, n, model=model, task=task, schedule=schedule,
                                                         batch_size=8, mesh=mesh))
  hlo = step.lower(ckpt["state"], train.seed_keys(c)[1], ckpt["stopped_at"], np.int32(0)).compile().as_text()
assert "all-gather" in hlo, "no all-gather of the stretches' end maps: time is not split"
one = train.train_and_evaluate(tiny(1), f"{workdir}/one")
split = train.train_and_evaluate(tiny(2, 2), f"{workdir}/seq")
for a, b in zip(one["runs"], split["runs"]):
  np.testing.assert_allclose(b["train"]["loss"], a["train"]["loss"], rtol=1e-5)
  np.testing.assert_allclose(b["test_at_best_valid"]["mse"], a["test_at_best_valid"]["mse"], rtol=1e-5)
for config, message in ((tiny(1, 2, cell="gru"), "mesh.seq=2 splits time over devices, which needs a cell whose recurrence"),
                        (tiny(1, 4, seq_len=6), "mesh.seq=4 must divide the sequence length (time steps {'train': 6")):
  try:
    train.train_and_evaluate(config, f"{workdir}/bad")
    raise AssertionError(f"{message} was accepted")
  except train.ConfigError as e:
    assert message in str(e), str(e)
print("ok")
'''


@pytest.mark.slow
def test_sequence_sharded_linear_recurrences_equal_the_unsharded_ones_and_train_alike(tmp_path):
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", SEQUENCE_SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# One process of a two-process run (jax.distributed over localhost, 2 CPU devices each).
PROCESS_SCRIPT = r'''
import json, sys
from gru_jax.lab import config as config_lib, train
process_id, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = config_lib.for_cell("lstm", "adding")
c.model.features, c.task.seq_len, c.task.eval_size, c.num_seeds = 8, 6, 32, 2
c.train.update(num_steps=6, batch_size=8, eval_batch_size=16, log_every=2, eval_every=2, checkpoint_every=2)
c.opt.warmup_steps = 1
if port:
  c.distributed.update(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
assert train.initialize_distributed(c) == bool(port)
import jax
assert jax.device_count() == (4 if port else 2) and jax.local_device_count() == 2
summary = train.train_and_evaluate(c, workdir)
print("RESULT", json.dumps([r["test_at_best_valid"]["mse"] for r in summary["runs"]]), flush=True)
'''


def free_port() -> int:
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  """Two jax.distributed processes (4 devices in all, the batch split over them) end where one
  process does, within float rounding; only process 0 writes records and summaries."""
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  command = lambda *args: [sys.executable, "-c", PROCESS_SCRIPT, *map(str, args)]
  port = free_port()
  processes = [subprocess.Popen(command(i, port, tmp_path / "two"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (out, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  one = subprocess.run(command(0, "", tmp_path / "one"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert one.returncode == 0, one.stderr[-3000:]
  result = lambda out: json.loads([line for line in out.splitlines() if line.startswith("RESULT")][-1][len("RESULT"):])
  assert result(outputs[0][0]) == result(outputs[1][0])  # the processes agree exactly
  # ... and with one process up to the order of float sums (seen: 3e-8 relative on a fresh machine)
  np.testing.assert_allclose(result(outputs[0][0]), result(one.stdout), rtol=1e-5)
  assert "valid step" in outputs[0][0] and "valid step" not in outputs[1][0]  # only process 0 prints
  records = (tmp_path / "two" / "seed=0" / "metrics.jsonl").read_text().splitlines()
  assert sum('"split": "valid"' in r for r in records) == 3  # written once, not once per process


@pytest.mark.parametrize(
  "args, environ, expected",
  [
    (("", -1, -1), {}, None),  # one process: nothing starts
    (("10.0.0.1:1234", 2, 1), {}, {"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}),
    (("", -1, -1), {"JAX_COORDINATOR_ADDRESS": "h:1"}, {"coordinator_address": "h:1", "num_processes": None, "process_id": None}),
    # "auto": JAX detects the cluster (Cloud TPU, Slurm, Open MPI) from the environment
    (("auto", -1, -1), {}, {"coordinator_address": None, "num_processes": None, "process_id": None}),
  ],
)
def test_initialize_passes_jax_what_the_config_names(monkeypatch, args, environ, expected):
  from gru_jax.lab import sharding

  calls = []
  monkeypatch.setattr(sharding.jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
  monkeypatch.setattr(sharding.jax.config, "update", lambda *a: None)  # gloo stays unset in this process
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
  for name, value in environ.items():
    monkeypatch.setenv(name, value)
  assert sharding.initialize(*args) == (expected is not None)
  assert calls == ([] if expected is None else [expected])
