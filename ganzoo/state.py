"""GANState: the one pytree that holds everything a resume needs."""

from typing import Any

import flax
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class GANState:
  """Training state of a GAN: arrays only, so it jits, shards and checkpoints as one pytree.

  Attributes:
    step: int32 scalar, number of completed train steps (one step = `train.d_steps` D updates
      followed by `train.g_steps` G updates).
    rng: the run's base PRNG key (uint32[2]); never advanced. Step k uses
      `fold_in(rng, k)`, so a run is a pure function of (config, seed, data order).
    g_params, d_params: raw (un-normalized) parameters of G and D.
    g_opt_state, d_opt_state: optax states.
    g_batch_stats, d_batch_stats: BatchNorm running statistics ({} when the model has none).
    g_sn, d_sn: spectral-normalization states (power-iteration vectors; empty when SN is off).
    ema_params: exponential moving average of `g_params` (a copy of g_params when EMA is off, so
      the tree structure does not depend on the config).
    extras: adaptive values that a resume needs (e.g. ADA's p); {} for most GANs.
  """
  step: jax.Array
  rng: jax.Array
  g_params: PyTree
  d_params: PyTree
  g_opt_state: PyTree
  d_opt_state: PyTree
  g_batch_stats: PyTree
  d_batch_stats: PyTree
  g_sn: PyTree
  d_sn: PyTree
  ema_params: PyTree
  extras: PyTree = flax.struct.field(default_factory=dict)


def param_count(tree: PyTree) -> int:
  """Number of scalars in a pytree of arrays (or ShapeDtypeStructs)."""
  return int(sum(jnp.size(x) if hasattr(x, "size") else 0 for x in jax.tree.leaves(tree)))
