"""Encoder-based inversion: E(x) -> z or w trained on generated pairs, then refined by optimization.

Training (Zhu et al. 2016, iGAN, arXiv:1609.03552 Sec. 3.2's "hybrid" inversion; Zhu et al. 2020,
In-Domain GAN Inversion, arXiv:2004.00049, for the image-space terms): for z ~ N(0, I) and its image
x = G(z), E minimizes ||E(x) - latent||^2 / D (latent = z, or w = mapping(z) standardized by w_std)
plus `image_weight` * ||G(E(x)) - x||^2 on the same pairs; with `real` images given, also
`real_weight` * ||G(E(x_real)) - x_real||^2 (reconstruction of real images, for which no latent is
known). The encoder's output initializes `ganzoo.latent.inversion.invert` (`init=`), which refines it
with fewer steps than a start from w_avg needs.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganzoo.latent import inversion as invert_lib
from ganzoo.latent.generator import LatentGenerator, w_stats


class Encoder(nn.Module):
  """A small convolutional encoder: 3 stride-2 convs (32, 64, 128) + 2 dense -> [N, out_dim]."""
  out_dim: int
  width: int = 32

  @nn.compact
  def __call__(self, x):
    h = x
    for i, f in enumerate((self.width, 2 * self.width, 4 * self.width)):
      h = nn.leaky_relu(nn.Conv(f, (3, 3), strides=(2, 2), name=f"conv{i}")(h), 0.2)
    h = nn.leaky_relu(nn.Dense(256, name="fc")(h.reshape(h.shape[0], -1)), 0.2)
    return nn.Dense(self.out_dim, name="out")(h)


class TrainedEncoder(NamedTuple):
  module: Encoder
  params: dict
  space: str
  mean: jax.Array          # E predicts (latent - mean) / scale
  scale: jax.Array
  losses: np.ndarray       # [steps] total loss

  def encode(self, x: jax.Array) -> jax.Array:
    """E(x) in the latent space ([N, z_dim] or [N, w_dim])."""
    return self.module.apply({"params": self.params}, jnp.asarray(x, jnp.float32)) * self.scale + self.mean[None]


def train_encoder(gen: LatentGenerator, rng: jax.Array, space: str | None = None, steps: int = 1000, batch: int = 64,
                  lr: float = 1e-3, image_weight: float = 1.0, real: np.ndarray | None = None,
                  real_weight: float = 1.0) -> TrainedEncoder:
  """Trains E on generated pairs (and `real` images [M, H, W, C] in [-1, 1], if given); one jitted scan."""
  space = space or ("w" if gen.has_w else "z")
  if space not in ("z", "w"):
    raise ValueError(f"the encoder predicts z or w; got space={space!r} (refine into W+ from its w)")
  invert_lib.check_space(gen, space)
  rng_init, rng_loop, rng_stats = jax.random.split(rng, 3)
  if space == "w":
    mean, std = w_stats(gen, rng_stats)
    dim = gen.w_dim
    scale = std / np.sqrt(dim)    # per-coordinate spread of w, so targets are O(1)
  else:
    mean, scale, dim = jnp.zeros((gen.z_dim,)), jnp.ones(()), gen.z_dim
  enc = Encoder(dim)
  params = enc.init(rng_init, jnp.zeros((1, *gen.image_shape), jnp.float32))["params"]
  tx = optax.adam(lr)
  real = None if real is None else jnp.asarray(real, jnp.float32)

  def render(lat):
    return invert_lib.synthesize(gen, space, lat)

  def loss_fn(p, key):
    kz, kr = jax.random.split(key)
    z = jax.random.normal(kz, (batch, gen.z_dim), jnp.float32)
    lat = gen.mapping(gen.params, z) if space == "w" else z
    x = jax.lax.stop_gradient(render(lat))
    pred = enc.apply({"params": p}, x)
    loss = jnp.mean(jnp.square(pred - (lat - mean[None]) / scale))
    if image_weight:
      loss = loss + image_weight * jnp.mean(jnp.square(render(pred * scale + mean[None]) - x))
    if real is not None and real_weight:
      xr = real[jax.random.randint(kr, (batch,), 0, real.shape[0])]
      loss = loss + real_weight * jnp.mean(jnp.square(render(enc.apply({"params": p}, xr) * scale + mean[None]) - xr))
    return loss

  @jax.jit
  def train(p, gen_):
    del gen_

    def body(carry, i):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(rng_loop, i))
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss

    (p, _), losses = jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))
    return p, losses

  params, losses = train(params, gen)
  return TrainedEncoder(enc, params, space, mean, scale, np.asarray(losses))


def encode_and_refine(gen: LatentGenerator, encoder: TrainedEncoder, targets: np.ndarray, space: str | None = None,
                      cfg: invert_lib.InvertConfig = invert_lib.InvertConfig(num_steps=200),
                      rng: jax.Array | None = None, **kwargs) -> invert_lib.Inversion:
  """E(x) as the start of `invert` in `space` (default: the encoder's; W+ starts from E's w on every
  layer)."""
  space = space or encoder.space
  lat = jax.jit(encoder.encode)(jnp.asarray(targets, jnp.float32))
  if space == "w+":
    if encoder.space != "w":
      raise ValueError("refining into W+ needs a W encoder (space='w')")
    lat = jnp.broadcast_to(lat[:, None], (lat.shape[0], gen.num_ws, lat.shape[-1]))
  elif space != encoder.space:
    raise ValueError(f"the encoder predicts {encoder.space}; refine in {encoder.space} (or w+ from w)")
  return invert_lib.invert(gen, targets, space, cfg, rng, init=lat, **kwargs)
