"""Data parallelism and sharded state: a `Mesh` over all devices, jit + NamedSharding.

`parallel.fsdp=1` (default): one mesh axis 'data'; the global batch is sharded over it and the
state is replicated. `parallel.fsdp=F > 1`: a 2-D mesh (n/F, F) with axes ('data', 'fsdp'); the
batch is sharded over both axes (P(('data', 'fsdp')): every device still gets its own slice of it)
and every large floating leaf of the state (params, optimizer moments, EMA, SN vectors, ...) is
sharded over 'fsdp' (`state_shardings`), so a device holds 1/F of it between steps: fully
sharded data parallelism, ZeRO stage 3 (Rajbhandari et al. 2020, arXiv:1910.02054; FSDP, Zhao et
al. 2023, arXiv:2304.11277; big_vision's `fsdp` sharding rule in big_vision/sharding.py). The
step's in/out shardings say where the state lives; inside it each phase gathers the params it uses
and constrains their gradients to the params' shards (`ganzoo.step._Fsdp`, which says why), from
which XLA makes the all-gathers and the reduce-scatters (on XLA:CPU an all-reduce and a slice);
each device updates only its shard of the params, optimizer moments and EMA. Memory per device:
the optimizer state and EMA fall F-fold, the params F-fold between steps (gathered for a phase's
forward and backward), the batch's activations do not change.
Because the step is written over *global* arrays, reductions over the batch (losses, BatchNorm
statistics) are global: XLA inserts the cross-device all-reduces, so the result depends on neither
the device count nor F (up to the order of floating-point sums; tests/test_families.py).
Multi-host: `maybe_initialize_distributed` starts `jax.distributed` (from the config or from the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables alone); every
process feeds its slice of the global batch (`ganzoo.data` slices per process) and `global_batch`
assembles the global array. `max_over_processes` and `barrier` let the processes take host-side
decisions together (which checkpoint restores, when to stop on a signal).
"""

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
# Leaves with fewer elements stay replicated (`parallel.fsdp_min_size`): all-gathering a bias or a
# BatchNorm scale costs a collective's latency for a few KiB saved, and the large kernels hold
# nearly all of a GAN's parameters (BigGAN 128: 3x3x1536x1536 convolutions; its 1,536-wide biases
# and gains are 0.1% of them). 2**14 elements = 64 KiB in float32, a 128 x 128 matrix. Counted in
# elements, not bytes, so a float64 or bfloat16 state is sharded exactly as its float32 twin.
FSDP_MIN_SIZE = 2 ** 14


def make_mesh(devices: list[jax.Device] | None = None, fsdp: int = 1) -> Mesh:
  """The mesh over `devices` (default: every device of every process).

  fsdp == 1: the 1-D mesh ('data',) of plain data parallelism (the programs of a run without FSDP
  are exactly those before it existed). fsdp = F > 1: the devices in order, reshaped to
  (n/F, F) with axes ('data', 'fsdp'): F consecutive devices share the state's shards, so with
  F <= devices per host the all-gathers stay on a host's fast links, and each process's devices
  still hold a contiguous range of the batch (`global_batch`). A bad F is a one-line ValueError.
  """
  devices = jax.devices() if devices is None else list(devices)
  n = len(devices)
  if isinstance(fsdp, bool) or not isinstance(fsdp, (int, np.integer)) or fsdp < 1 or n % fsdp:
    raise ValueError(f"parallel.fsdp={fsdp!r} must be an int >= 1 that divides the number of devices ({n}): "
                     f"pass --config.parallel.fsdp=<one of {[d for d in range(1, n + 1) if n % d == 0]}>")
  if fsdp == 1:
    return Mesh(np.asarray(devices), (DATA_AXIS,))
  return Mesh(np.asarray(devices).reshape(n // fsdp, fsdp), (DATA_AXIS, FSDP_AXIS))


def fsdp_size(mesh: Mesh) -> int:
  """The number of devices over which the state is sharded (1: replicated)."""
  return int(dict(mesh.shape).get(FSDP_AXIS, 1))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Sharding of an array whose axis `batch_axis` is the global batch: over 'data' on the 1-D
  mesh, over ('data', 'fsdp') on the 2-D one (device (i, j) holds slice i * F + j)."""
  axes = DATA_AXIS if tuple(mesh.axis_names) == (DATA_AXIS,) else tuple(mesh.axis_names)
  return NamedSharding(mesh, P(*([None] * batch_axis), axes))


def fsdp_spec(shape: tuple[int, ...], dtype: Any, fsdp: int, min_size: int = FSDP_MIN_SIZE) -> P:
  """The PartitionSpec of one state leaf: sharded over 'fsdp' on its largest axis whose size is a
  multiple of `fsdp` (the first such axis among equals: the contiguous split), or P() (replicated)
  when fsdp == 1, when the leaf is not floating point (the step counter, PRNG keys, counts: tiny,
  and integer updates gain nothing), when it has fewer than `min_size` elements, or when no axis
  divides. The largest axis leaves the most even shards and gathers in the fewest pieces."""
  if fsdp == 1 or not jnp.issubdtype(dtype, jnp.floating) or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  axes = [i for i, s in enumerate(shape) if s >= fsdp and s % fsdp == 0]
  if not axes:
    return P()
  axis = max(axes, key=lambda i: (shape[i], -i))
  return P(*([None] * axis), FSDP_AXIS)


def state_shardings(state_shapes: Any, mesh: Mesh, min_size: int = FSDP_MIN_SIZE) -> Any:
  """The NamedSharding of every leaf of a state (arrays or `jax.eval_shape` structs), as a tree of
  the state's structure: `fsdp_spec` of each leaf on `mesh` (all replicated without an 'fsdp' axis).
  The one placement of the state: init's out_shardings, the step's in/out shardings and the
  restore target of a checkpoint (orbax reads any saved sharding onto it)."""
  f = fsdp_size(mesh)
  return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), x.dtype, f, min_size)), state_shapes)


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
