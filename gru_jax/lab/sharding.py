"""Data parallelism with JAX's own SPMD machinery: a device mesh with a "data", an "fsdp" and a
"seq" axis. Each training batch is split over "data" and "fsdp" along its examples and, for the
cells whose recurrence is linear in the carry, over "seq" along time (sequence parallelism,
`gru_jax.parallel.sequence_sharded`). Parameters and optimizer state are replicated over
"data" and, when the "fsdp" axis has more than one device, split over it (each array along its
largest axis that divides evenly; FSDP / ZeRO-3 style), so each device holds 1/fsdp of them.
`jax.jit` (XLA's SPMD partitioner) inserts the all-gathers and the gradient reductions; nothing
here communicates by hand.

On a CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=N` gives N simulated devices, so the
whole path runs (and is tested) without accelerators.
"""

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA, FSDP, SEQ = "data", "fsdp", "seq"
BATCH = (DATA, FSDP)  # the examples of a batch are split over both axes


def make_mesh(data: int, fsdp: int = 1, seq: int = 1, devices: list | None = None) -> Mesh:
  """A ("data", "fsdp", "seq") mesh over the first data * fsdp * seq devices; data=-1 takes every
  device left after fsdp and seq.

  Raises a ValueError naming `mesh.data`, `mesh.fsdp` or `mesh.seq` when they do not fit the
  devices here.
  """
  devices = list(jax.devices() if devices is None else devices)
  is_count = lambda v: isinstance(v, int) and not isinstance(v, bool)
  for key, value in (("fsdp", fsdp), ("seq", seq)):
    if not is_count(value) or not 1 <= value <= len(devices):
      raise ValueError(f"mesh.{key} must be a count from 1 to {len(devices)} (the devices here); got {value!r}")
  count = len(devices) // (fsdp * seq) if data == -1 else data
  if not is_count(data) or not 1 <= count * fsdp * seq <= len(devices):
    raise ValueError(f"mesh.data must be -1 (every device) or a count with mesh.data * mesh.fsdp * mesh.seq "
                     f"({fsdp * seq}) from 1 to {len(devices)} (the devices here); got {data!r}")
  used = devices[: count * fsdp * seq]
  return jax.make_mesh((count, fsdp, seq), (DATA, FSDP, SEQ), (AxisType.Auto,) * 3, devices=used)


def check_batch(mesh: Mesh, batch_size: int, key: str = "train.batch_size") -> None:
  """Raises a ValueError naming `key` unless the batch's examples split evenly over the mesh."""
  shards = mesh.shape[DATA] * mesh.shape[FSDP]
  if batch_size % shards:
    raise ValueError(f"{key}={batch_size} must be divisible by the {shards} devices of mesh.data * mesh.fsdp")


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def put(x: jax.Array, sharding: NamedSharding) -> jax.Array:
  """`x` (the same value in every process) as a global array with `sharding`. Within one process
  this is `jax.device_put`; across processes each builds the shards of its own devices."""
  if sharding.is_fully_addressable:
    return jax.device_put(x, sharding)
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # typed keys travel as their raw data
    return jax.random.wrap_key_data(put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
  host = np.asarray(jax.device_get(x))
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every array of `tree` on every device of the mesh."""
  return jax.tree_util.tree_map(lambda x: put(x, replicated(mesh)), tree)


def fsdp_spec(shape: tuple[int, ...], fsdp: int, skip: int = 0) -> PartitionSpec:
  """The spec splitting an array of `shape` over "fsdp" along its largest axis (from axis `skip`
  on, e.g. past a leading seed axis) whose size divides evenly; replicated when none does or when
  fsdp is 1."""
  axes = [a for a in range(skip, len(shape)) if fsdp > 1 and shape[a] % fsdp == 0]
  if not axes:
    return PartitionSpec()
  axis = max(axes, key=lambda a: (shape[a], -a))
  return PartitionSpec(*([None] * axis + [FSDP]))


def state_shardings(tree: Any, mesh: Mesh, skip: int = 0) -> Any:
  """A NamedSharding per array of `tree` (parameters, optimizer state): split over "fsdp" by
  `fsdp_spec`, replicated over "data"."""
  return jax.tree_util.tree_map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), mesh.shape[FSDP], skip)), tree)


def shard_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, Any]:
  """Inside a jitted step: each array of `batch` split along its leading (example) axis over the
  data and fsdp axes, and the inputs "xs" [B, T, ...] along time over "seq" as well. Under
  `jax.vmap` (the seeds) the specs apply to the per-seed arrays.

  Arrays drawn inside the step (the tasks' `train_batch`) are then computed shard by shard: each
  device, and so each host, builds only its own rows of the batch."""
  if batch["xs"].shape[0] % (mesh.shape[DATA] * mesh.shape[FSDP]):  # e.g. the last chunk of an evaluation
    return batch
  spec = lambda name, x: PartitionSpec(BATCH, SEQ) if name == "xs" and x.ndim >= 2 and mesh.shape[SEQ] > 1 else PartitionSpec(BATCH)
  return {name: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec(name, x))) for name, x in batch.items()}


def initialize(coordinator_address: str = "", num_processes: int = -1, process_id: int = -1) -> bool:
  """Starts JAX's distributed runtime for a multi-process (multi-host) run, before any other JAX
  call; returns whether it did.

  The coordinator is `coordinator_address` ("host:port" of process 0) or, when that is empty, the
  JAX_COORDINATOR_ADDRESS environment variable; with neither, nothing happens (one process).
  "auto" lets `jax.distributed.initialize` detect the cluster (Cloud TPU, Slurm, Open MPI, and
  the others it knows): coordinator, process count and index all come from the environment.
  num_processes and process_id of -1 are left to JAX as well. On CPUs the processes exchange data
  with gloo.
  """
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  if not address:
    return False
  if os.environ.get("JAX_PLATFORMS", "") in ("", "cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  given = {"coordinator_address": None if address == "auto" else address,
           "num_processes": None if num_processes == -1 else num_processes,
           "process_id": None if process_id == -1 else process_id}
  jax.distributed.initialize(**given)
  return True
