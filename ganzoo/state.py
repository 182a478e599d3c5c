"""TrainState: the one pytree that holds everything a resume needs, for any family.

A family trains a set of named networks ({'g', 'd'} for a GAN, four for CycleGAN, one for a VAE).
Each network carries its own `NetState`; adaptive values that are not parameters (ADA's p, the
path-length mean, BEGAN's k_t, image pools, ProGAN's fade-in alpha) live in `extras`.
"""

import math
from typing import Any

import flax
import jax

PyTree = Any


@flax.struct.dataclass
class NetState:
  """One network and everything it carries between steps.

  Attributes:
    params: raw (un-normalized) parameters; the optimizer updates these.
    opt_state: the network's optax state.
    batch_stats: BatchNorm running statistics ({} when the model has none).
    sn: spectral-normalization state (power-iteration vectors; empty when SN is off).
    ema: exponential moving average of `params`; {} when the network has no EMA (sampling then
      uses `params`), so a large D does not carry a second copy of itself.
    ema_batch_stats: the batch statistics that go with `ema` (see `ganzoo.nets.apply_grads`); {}
      without EMA.
  """
  params: PyTree
  opt_state: PyTree
  batch_stats: PyTree
  sn: PyTree
  ema: PyTree
  ema_batch_stats: PyTree


@flax.struct.dataclass
class TrainState:
  """Training state of any family: arrays only, so it jits, shards and checkpoints as one pytree.

  Attributes:
    step: int32 scalar, the number of completed train steps.
    rng: the run's base PRNG key (uint32[2]); never advanced. Step k uses `fold_in(rng, k)` and
      each phase folds in its own constant, so a run is a pure function of (config, seed, data).
    nets: {name: NetState}.
    extras: {name: array} adaptive values a resume needs; {} for most families.
  """
  step: jax.Array
  rng: jax.Array
  nets: dict[str, NetState]
  extras: dict[str, jax.Array] = flax.struct.field(default_factory=dict)


@flax.struct.dataclass
class GANState:
  """The layout of checkpoints written before the training protocol (one G, one D).

  Kept only to read such checkpoints: `ganzoo.checkpoint` restores them into this layout and
  `upgrade_gan_state` turns them into a `TrainState`.
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


def legacy_layout(state: TrainState) -> GANState:
  """The `GANState` view of a {'g', 'd'} TrainState (the restore target of a legacy checkpoint)."""
  if set(state.nets) != {"g", "d"}:
    raise ValueError(f"only a family with networks {{'g', 'd'}} can read a pre-protocol checkpoint; "
                     f"this one has {sorted(state.nets)}")
  g, d = state.nets["g"], state.nets["d"]
  return GANState(step=state.step, rng=state.rng, g_params=g.params, d_params=d.params,
                  g_opt_state=g.opt_state, d_opt_state=d.opt_state, g_batch_stats=g.batch_stats,
                  d_batch_stats=d.batch_stats, g_sn=g.sn, d_sn=d.sn,
                  ema_params=g.ema if jax.tree.leaves(g.ema) else g.params, extras=state.extras)


def upgrade_gan_state(old: GANState, target: TrainState) -> TrainState:
  """A pre-protocol GANState as a TrainState shaped like `target` (a fresh state of the same run).

  The old layout always held `ema_params` (a copy of G when EMA was off) and no EMA batch
  statistics: G's EMA keeps `ema_params` when the run has EMA, paired with G's running statistics
  (what sampling used then); D never had an EMA.
  """
  has_ema = bool(jax.tree.leaves(target.nets["g"].ema))
  g = NetState(params=old.g_params, opt_state=old.g_opt_state, batch_stats=old.g_batch_stats, sn=old.g_sn,
               ema=old.ema_params if has_ema else {}, ema_batch_stats=old.g_batch_stats if has_ema else {})
  d_ema = bool(jax.tree.leaves(target.nets["d"].ema))
  d = NetState(params=old.d_params, opt_state=old.d_opt_state, batch_stats=old.d_batch_stats, sn=old.d_sn,
               ema=old.d_params if d_ema else {}, ema_batch_stats=old.d_batch_stats if d_ema else {})
  return TrainState(step=old.step, rng=old.rng, nets={"g": g, "d": d}, extras=dict(old.extras or {}))


def param_count(tree: PyTree) -> int:
  """Number of scalars in a pytree of arrays (or ShapeDtypeStructs)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree) if hasattr(x, "shape")))
