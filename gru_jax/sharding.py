"""Data parallelism with JAX's own SPMD machinery: a device mesh with a "data" and an "fsdp" axis.
Each training batch is split over both axes. Parameters and optimizer state are replicated over
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

DATA, FSDP = "data", "fsdp"
BATCH = (DATA, FSDP)  # the batch is split over both axes


def make_mesh(data: int, fsdp: int = 1, devices: list | None = None) -> Mesh:
  """A ("data", "fsdp") mesh over the first data * fsdp devices; data=-1 takes every device left
  after fsdp.

  Raises a ValueError naming `mesh.data` or `mesh.fsdp` when they do not fit the devices here.
  """
  devices = list(jax.devices() if devices is None else devices)
  is_count = lambda v: isinstance(v, int) and not isinstance(v, bool)
  if not is_count(fsdp) or not 1 <= fsdp <= len(devices):
    raise ValueError(f"mesh.fsdp must be a count from 1 to {len(devices)} (the devices here); got {fsdp!r}")
  count = len(devices) // fsdp if data == -1 else data
  if not is_count(data) or not 1 <= count * fsdp <= len(devices):
    raise ValueError(f"mesh.data must be -1 (every device) or a count with mesh.data * mesh.fsdp ({fsdp}) from 1 "
                     f"to {len(devices)} (the devices here); got {data!r}")
  return jax.make_mesh((count, fsdp), (DATA, FSDP), (AxisType.Auto, AxisType.Auto), devices=devices[: count * fsdp])


def check_batch(mesh: Mesh, batch_size: int, key: str = "train.batch_size") -> None:
  """Raises a ValueError naming `key` unless the batch splits evenly over the mesh."""
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


def place(tree: Any, mesh: Mesh, skip: int = 0) -> Any:
  """`tree` on the mesh with `state_shardings` (resharding whatever layout it had)."""
  return jax.tree_util.tree_map(put, tree, state_shardings(tree, mesh, skip))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Inside a jitted step: each array of `batch` split along its leading (example) axis over the
  data and fsdp axes. Under `jax.vmap` (the seeds) the spec applies to the per-seed arrays."""
  sharding = NamedSharding(mesh, PartitionSpec(BATCH))
  return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)


def initialize(coordinator_address: str = "", num_processes: int = 1, process_id: int = 0) -> bool:
  """Starts JAX's distributed runtime for a multi-process (multi-host) run, before any other JAX
  call; returns whether it did. The coordinator is `coordinator_address` or, when that is empty,
  the JAX_COORDINATOR_ADDRESS environment variable; with neither, nothing happens (one process).
  On CPUs the processes exchange data with gloo."""
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  if not address:
    return False
  if os.environ.get("JAX_PLATFORMS", "") in ("", "cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(address, num_processes=num_processes, process_id=process_id)
  return True
