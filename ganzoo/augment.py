"""Transforms of the images a discriminator sees, applied by a family to every D input.

Instance noise (Sønderby, Caballero, Theis, Shi & Huszár 2016, "Amortised MAP Inference for Image
Super-resolution", arXiv:1610.04490, Sec. 4 and Appendix C; seed 004): Gaussian noise of scale
sigma_t added to the real and to the generated images before D sees them, so that the two
distributions overlap and D's optimum stays smooth; sigma_t is annealed to 0 so the end of training
fits the data without noise. The paper anneals linearly; that is the schedule here:

  sigma_t = std * max(0, 1 - t / anneal_steps)      (t = completed steps; anneal_steps default = train.num_steps)

Config (`config.augment.instance_noise`): `std` (0 = off, in the images' units: [-1, 1] data, so
0.1 is 5% of the range) and `anneal_steps`. "Every D input" means the D loss on real and fake
batches, the penalties evaluated on them (they see the noisy images D sees) and G's loss through D.
The noise of one step is a pure function of the step's key, so runs stay reproducible and resumable.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

# fold_in constants for the noise keys: independent of the keys a phase already splits, so turning
# instance noise on does not change the latents or dropout of a run (and off changes nothing).
REAL_NOISE_KEY, FAKE_NOISE_KEY = 0x1A5E, 0x1A5F


def augment_config() -> ml_collections.ConfigDict:
  """`config.augment`: the D-input transforms, off by default."""
  c = ml_collections.ConfigDict()
  c.instance_noise = ml_collections.ConfigDict()
  c.instance_noise.std = 0.0
  c.instance_noise.anneal_steps = ml_collections.FieldReference(None, field_type=int)  # None = train.num_steps
  return c


class InstanceNoise(NamedTuple):
  std: float
  anneal_steps: int

  def scale(self, step: jax.Array) -> jax.Array:
    """sigma_t at `step` completed steps (float32 scalar)."""
    t = jnp.asarray(step, jnp.float32)
    return jnp.float32(self.std) * jnp.clip(1.0 - t / jnp.float32(self.anneal_steps), 0.0, 1.0)

  def noise(self, rng: jax.Array, step: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """sigma_t * N(0, I) of `shape` (to be added to a batch of images)."""
    return self.scale(step) * jax.random.normal(rng, shape, jnp.float32)


def instance_noise(config: ml_collections.ConfigDict) -> InstanceNoise | None:
  """The run's instance noise from `config.augment.instance_noise`, or None when it is off."""
  section = config.get("augment", None)
  cfg = section.get("instance_noise", None) if section is not None else None
  if cfg is None or not float(cfg.get("std", 0.0)):
    return None
  std = float(cfg.std)
  anneal = cfg.get("anneal_steps", None)
  anneal = int(config.train.num_steps) if anneal is None else int(anneal)
  if std < 0 or anneal < 1:
    raise ValueError(f"config.augment.instance_noise needs std >= 0 and anneal_steps >= 1 (None = train.num_steps); "
                     f"got std={std}, anneal_steps={anneal}")
  return InstanceNoise(std, anneal)


def refuse_instance_noise(config: ml_collections.ConfigDict, family: str) -> None:
  """One-line error when instance noise is set for a family that does not take it.

  The image-to-image families (pix2pix, CycleGAN, StarGAN) refuse it: their papers and reference
  code train without it, and their D sees conditioned pairs, cycles and pooled fakes for which
  Sønderby et al.'s recipe gives no placement. StyleGAN2 and CQ refuse it (their references train
  without it), and so do the families without a D (VAE, Real NVP). A silent no-op would let a user
  believe it ran.
  """
  if instance_noise(config) is not None:
    raise ValueError(f"config.augment.instance_noise is not supported by the {family!r} family "
                     "(its reference trains without it): set config.augment.instance_noise.std=0")


def perturb(noise: InstanceNoise | None, x: jax.Array, key: jax.Array, step: jax.Array, tag: int,
            shard=lambda a: a) -> jax.Array:
  """x + sigma_t * N(0, I) drawn from fold_in(key, tag), sharded like a batch (`ctx.shard`); x itself
  when instance noise is off. Families call it on every image their D sees: tags REAL_NOISE_KEY and
  FAKE_NOISE_KEY (plus an offset per extra input of a multi-input D), so the noise keys never collide
  with the keys a phase already splits."""
  if noise is None:
    return x
  return x + shard(noise.noise(jax.random.fold_in(key, tag), step, x.shape))
