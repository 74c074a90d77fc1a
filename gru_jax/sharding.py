"""Data parallelism with JAX's own SPMD machinery: a device mesh with a "data" axis, each training
batch sharded along it, the parameters and optimizer state replicated. `jax.jit` (XLA's SPMD
partitioner) inserts the gradient all-reduce; nothing here communicates by hand.

On a CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=N` gives N simulated devices, so the
whole path runs (and is tested) without accelerators.
"""

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA = "data"


def make_mesh(data: int, devices: list | None = None) -> Mesh:
  """A one-axis mesh ("data") over the first `data` devices (-1: all of them).

  Raises a ValueError naming `mesh.data` when it is not -1 or a count between 1 and the number of
  devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  count = len(devices) if data == -1 else data
  if isinstance(data, bool) or not isinstance(data, int) or not 1 <= count <= len(devices):
    raise ValueError(f"mesh.data must be -1 (every device) or a count from 1 to {len(devices)} (the devices here); got {data!r}")
  return jax.make_mesh((count,), (DATA,), (AxisType.Auto,), devices=devices[:count])


def check_batch(mesh: Mesh, batch_size: int, key: str = "train.batch_size") -> None:
  """Raises a ValueError naming `key` unless the batch splits evenly over the data axis."""
  shards = mesh.shape[DATA]
  if batch_size % shards:
    raise ValueError(f"{key}={batch_size} must be divisible by the {shards} devices of mesh.data")


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every array of `tree` on every device of the mesh (parameters, optimizer state)."""
  return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Inside a jitted step: each array of `batch` split along its leading (example) axis over the
  data axis. Under `jax.vmap` (the seeds) the spec applies to the per-seed arrays."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA))
  return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)
