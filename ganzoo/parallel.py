"""Data parallelism: one `Mesh` axis 'data' over all devices, jit + NamedSharding.

The global batch is sharded over the 'data' axis and the state is replicated. Because the step is
written over *global* arrays, reductions over the batch (losses, BatchNorm statistics) are global:
XLA inserts the cross-device all-reduces, so the result does not depend on the device count.
Multi-host: `maybe_initialize_distributed` starts `jax.distributed` (from the config or from the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables alone); every
process feeds its slice of the global batch (`ganzoo.data` slices per process) and `global_batch`
assembles the global array. `max_over_processes` and `barrier` let the processes take host-side
decisions together (which checkpoint restores, when to stop on a signal).
"""

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Sharding of an array whose axis `batch_axis` is the global batch."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, micro_batches: int = 1) -> None:
  n = mesh.size
  if global_batch_size % (n * micro_batches):
    raise ValueError(
        f"data.batch_size={global_batch_size} must be divisible by the number of devices ({n})"
        + (f" times train.grad_accum ({micro_batches})" if micro_batches > 1 else "")
        + f"; use a multiple of {n * micro_batches}")


def global_batch(local_batch: Any, mesh: Mesh, batch_axis: int = 1) -> Any:
  """Places this process's slice of a batch (a pytree of arrays) onto the mesh as global arrays
  sharded on `batch_axis`."""
  sharding = batch_sharding(mesh, batch_axis)
  if jax.process_count() == 1:
    return jax.device_put(local_batch, sharding)
  return jax.tree.map(lambda v: jax.make_array_from_process_local_data(sharding, v), local_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def maybe_initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` for multi-host runs; returns whether it did.

  Arguments come from the config (`parallel.*`) or the usual environment variables
  (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); on TPU pods and SLURM/OpenMPI
  clusters, `jax.distributed.initialize()` with no arguments detects them itself, which
  `parallel.distributed=True` asks for.
  """
  if jax.distributed.is_initialized():   # started by the caller, or by an earlier run in this process
    return False
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JAX_PROCESS_ID"):
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if not coordinator_address:
    return False
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)
  return True


def max_over_processes(value: int) -> int:
  """The largest of one host int32 (itself with one process; no device work then).

  A small all-gather over the processes' devices, so every process must call it at the same point."""
  if jax.process_count() == 1:
    return int(value)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int32))))


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
