"""GAN inversion by optimization into z, W or W+ (batched, one jitted `lax.scan`).

The loop follows stylegan2-ada-pytorch's projector.py (Karras et al. 2020, arXiv:1912.04958 App. D):
  - Adam (betas 0.9, 0.999) on the latent (and, in W / W+, the per-layer noise buffers);
  - learning rate lr0 * ramp(t), t = step / num_steps: ramp = 0.5 - 0.5 cos(pi min(1, (1 - t) / 0.25))
    (cosine ramp-down over the last quarter) times min(1, t / 0.05) (linear ramp-up over the first 5%);
  - Gaussian noise added to the latent before each synthesis, std = latent_std * 0.05 *
    max(0, 1 - t / 0.75)^2 (decays to zero at 75%): explores early, settles late;
  - W initialized at w_avg (the mean of mapped samples); W+ = one w per layer (Abdal et al. 2019,
    Image2StyleGAN, arXiv:1904.03189), initialized the same; z initialized at 0, the mode of N(0, I);
  - noise buffers drawn N(0, 1), renormalized to zero mean / unit variance after every step, and
    regularized (weight 1e5) by the squared autocorrelation at shift 1 along both axes summed over a
    pyramid of 2x average-pooled copies down to 8x8 (projector.py's reg_loss).
The distance is per-sample pixel MSE plus `perceptual_weight` times a perceptual distance on features
of a network (`ganzoo.latent.perceptual`: the FID Inception's early layers, or the discriminator's
layers), in place of the projector's VGG16 LPIPS, which is not available offline. z-space inversion is
Lipton & Tripathi 2017 (arXiv:1702.04782) with the same schedule (latent_std 1) and without their
stochastic clipping (z is unbounded under N(0, I)).

Each sample's loss is separate (a sum of per-sample losses), so a batch of N images is N independent
inversions run together; Adam is elementwise, so batching does not couple them.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganzoo.latent.generator import LatentGenerator, w_stats

SPACES = ("z", "w", "w+")


class InvertConfig(NamedTuple):
  """Knobs of `invert` (projector.py's defaults where it has them)."""
  num_steps: int = 1000
  lr: float = 0.1                       # initial_learning_rate
  lr_rampup: float = 0.05               # lr_rampup_length
  lr_rampdown: float = 0.25             # lr_rampdown_length
  noise_factor: float = 0.05            # initial_noise_factor (noise added to the latent)
  noise_ramp: float = 0.75              # noise_ramp_length
  noise_reg: float = 1e5                # regularize_noise_weight
  optimize_noise: bool = True           # W / W+: optimize the per-layer noise buffers (projector.py)
  perceptual_weight: float = 0.0        # 0 = pixel MSE alone
  mse_weight: float = 1.0


class Inversion(NamedTuple):
  latents: jax.Array          # z [N, z_dim] | w [N, w_dim] | w+ [N, num_ws, w_dim]
  noise: list | None          # the noise buffers (W / W+ with optimize_noise), else None
  images: jax.Array           # the reconstructions, NHWC in [-1, 1]
  mse: jax.Array              # per-sample pixel MSE of the reconstructions to the targets [N]
  losses: jax.Array           # the mean loss per step [num_steps]


def learning_rate(t: jax.Array, cfg: InvertConfig) -> jax.Array:
  """lr0 * (0.5 - 0.5 cos(pi min(1, (1 - t) / rampdown))) * min(1, t / rampup) (projector.py)."""
  ramp = jnp.minimum(1.0, (1.0 - t) / cfg.lr_rampdown)
  ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)
  ramp = ramp * jnp.minimum(1.0, t / cfg.lr_rampup)
  return cfg.lr * ramp


def noise_regularization(noise: list) -> jax.Array:
  """Per-sample sum over buffers and pyramid levels (while size > 8) of the squared mean
  autocorrelation at shift 1 along W and along H (projector.py reg_loss; circular shifts), [N]."""
  reg = 0.0
  for buf in noise:
    x = buf
    while True:
      reg = reg + jnp.square(jnp.mean(x * jnp.roll(x, 1, axis=2), axis=(1, 2, 3)))
      reg = reg + jnp.square(jnp.mean(x * jnp.roll(x, 1, axis=1), axis=(1, 2, 3)))
      if x.shape[1] <= 8:
        break
      n, h, w, c = x.shape
      x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  return reg


def normalize_noise(noise: list) -> list:
  """Each buffer to zero mean and unit variance per sample (projector.py, after every step)."""
  out = []
  for buf in noise:
    buf = buf - jnp.mean(buf, axis=(1, 2, 3), keepdims=True)
    out.append(buf * jax.lax.rsqrt(jnp.mean(jnp.square(buf), axis=(1, 2, 3), keepdims=True)))
  return out


def synthesize(gen: LatentGenerator, space: str, latents: jax.Array, noise: list | None = None) -> jax.Array:
  """Images of latents in `space` (z: [N, z_dim]; w: [N, w_dim]; w+: [N, num_ws, w_dim])."""
  if space == "z":
    return gen.images_z(gen.params, latents)
  if latents.ndim == 2:   # w -> one w per layer
    latents = jnp.broadcast_to(latents[:, None], (latents.shape[0], gen.num_ws, latents.shape[-1]))
  return gen.images_ws(gen.params, latents, noise)


def check_space(gen: LatentGenerator, space: str) -> str:
  space = space.lower()
  if space not in SPACES:
    raise ValueError(f"unknown --space={space!r}; choose from {list(SPACES)}")
  if space != "z" and not gen.has_w:
    raise ValueError(f"--space={space} needs a style-based generator (config.method='stylegan2' or 'stylegan'); "
                     f"family {gen.name!r} has only z: pass --space=z")
  return space


def initial_latents(gen: LatentGenerator, space: str, n: int, w_avg: jax.Array | None = None) -> jax.Array:
  """z = 0 (the prior's mode); w / w+ = w_avg (projector.py's w_opt init)."""
  if space == "z":
    return jnp.zeros((n, gen.z_dim), jnp.float32)
  w_avg = gen.w_avg if w_avg is None else w_avg
  w = jnp.broadcast_to(jnp.asarray(w_avg, jnp.float32)[None], (n, gen.w_dim))
  return w if space == "w" else jnp.broadcast_to(w[:, None], (n, gen.num_ws, gen.w_dim))


DistanceFn = Callable[[jax.Array, jax.Array], jax.Array]   # (images, targets) -> per-sample [N]


def invert(gen: LatentGenerator, targets: jax.Array, space: str = "w", cfg: InvertConfig = InvertConfig(),
           rng: jax.Array | None = None, init: jax.Array | None = None, perceptual: DistanceFn | None = None,
           latent_std: float | None = None, w_avg: jax.Array | None = None) -> Inversion:
  """Inverts targets [N, H, W, C] in [-1, 1] into `space`; every sample is optimized independently.

  `init` replaces the initial latents (an encoder's output, `ganzoo.latent.encoder`); `perceptual`
  is a per-sample distance (`ganzoo.latent.perceptual.make_distance`), weighted by
  cfg.perceptual_weight. `latent_std` scales the latent noise (default: 1 for z, the projector's
  w_std of 10,000 mapped samples for W / W+); `w_avg` the initial w (default: that sample mean).
  """
  space = check_space(gen, space)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  rng_stats, rng_noise, rng_loop = jax.random.split(rng, 3)
  targets = jnp.asarray(targets, jnp.float32)
  if targets.ndim != 4 or tuple(targets.shape[1:]) != tuple(gen.image_shape):
    raise ValueError(f"targets must be [N, {', '.join(map(str, gen.image_shape))}] (the generator's image shape); "
                     f"got {tuple(targets.shape)}")
  n = targets.shape[0]
  if space == "z":
    std = 1.0 if latent_std is None else latent_std
  else:
    mean, std_w = w_stats(gen, rng_stats)
    w_avg = mean if w_avg is None else w_avg
    std = std_w if latent_std is None else latent_std
  latents = initial_latents(gen, space, n, w_avg) if init is None else jnp.asarray(init, jnp.float32)
  use_noise = space != "z" and cfg.optimize_noise
  noise = None
  if use_noise:
    keys = jax.random.split(rng_noise, len(gen.noise_shapes))
    noise = [jax.random.normal(k, (n, *s), jnp.float32) for k, s in zip(keys, gen.noise_shapes)]
  return _invert_loop(gen, targets, space, cfg, rng_loop, latents, noise, jnp.asarray(std, jnp.float32), perceptual)


@functools.partial(jax.jit, static_argnames=("space", "cfg", "perceptual"))
def _invert_loop(gen, targets, space, cfg, rng, latents, noise, std, perceptual):
  """The whole optimization as one compiled program: `lax.scan` over cfg.num_steps Adam steps."""
  tx = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)

  def total_loss(opt, t, key):
    lat, nz = opt["latent"], opt.get("noise")
    scale = std * cfg.noise_factor * jnp.square(jnp.maximum(0.0, 1.0 - t / cfg.noise_ramp))
    noisy = lat + scale * jax.random.normal(key, lat.shape, lat.dtype)
    images = synthesize(gen, space, noisy, nz)
    loss = cfg.mse_weight * jnp.mean(jnp.square(images - targets), axis=(1, 2, 3))
    if perceptual is not None and cfg.perceptual_weight:
      loss = loss + cfg.perceptual_weight * perceptual(images, targets)
    if nz is not None:
      loss = loss + cfg.noise_reg * noise_regularization(nz)
    return jnp.sum(loss), jnp.mean(loss)   # a sum: each sample's gradient is its own loss's

  def body(carry, step):
    opt, opt_state = carry
    t = step.astype(jnp.float32) / cfg.num_steps
    grads, mean_loss = jax.grad(total_loss, has_aux=True)(opt, t, jax.random.fold_in(rng, step))
    updates, opt_state = tx.update(grads, opt_state, opt)
    lr = learning_rate(t, cfg)
    opt = jax.tree.map(lambda p, u: p - lr * u, opt, updates)
    if "noise" in opt:
      opt = {**opt, "noise": normalize_noise(opt["noise"])}
    return (opt, opt_state), mean_loss

  opt = {"latent": latents}
  if noise is not None:
    opt["noise"] = list(noise)
  (opt, _), losses = jax.lax.scan(body, (opt, tx.init(opt)), jnp.arange(cfg.num_steps))
  images = synthesize(gen, space, opt["latent"], opt.get("noise"))
  mse = jnp.mean(jnp.square(images - targets), axis=(1, 2, 3))
  return Inversion(opt["latent"], opt.get("noise"), images, mse, losses)


def reconstruction_mse(gen: LatentGenerator, space: str, latents: jax.Array, targets: jax.Array,
                       noise: list | None = None) -> np.ndarray:
  """Per-sample pixel MSE between the images of `latents` and `targets` (both in [-1, 1])."""
  images = jax.jit(lambda lat, nz: synthesize(gen, space, lat, nz))(latents, noise)
  return np.asarray(jnp.mean(jnp.square(images - jnp.asarray(targets)), axis=(1, 2, 3)))


def invert_batched(gen: LatentGenerator, targets: np.ndarray, space: str, cfg: InvertConfig = InvertConfig(),
                   batch_size: int = 100, rng: jax.Array | None = None, **kwargs: Any) -> Inversion:
  """`invert` over chunks of `batch_size` images (memory), concatenated; the last chunk is padded
  with copies so every chunk reuses one compiled loop."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  init = kwargs.pop("init", None)
  n = len(targets)
  parts = []
  for i in range(0, n, batch_size):
    chunk = np.asarray(targets[i:i + batch_size])
    k = len(chunk)
    pad = batch_size - k if n > batch_size else 0
    pad_fn = lambda a: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) if pad else a
    part_init = None if init is None else pad_fn(np.asarray(init[i:i + batch_size]))
    res = invert(gen, pad_fn(chunk), space, cfg, jax.random.fold_in(rng, i), init=part_init, **kwargs)
    cut = lambda x, k=k: x[:k]
    parts.append(Inversion(cut(res.latents), None if res.noise is None else [cut(b) for b in res.noise],
                           cut(res.images), cut(res.mse), res.losses))
  if len(parts) == 1:
    return parts[0]
  noise = None if parts[0].noise is None else [jnp.concatenate(b) for b in zip(*[p.noise for p in parts])]
  return Inversion(jnp.concatenate([p.latents for p in parts]), noise, jnp.concatenate([p.images for p in parts]),
                   jnp.concatenate([p.mse for p in parts]), jnp.mean(jnp.stack([p.losses for p in parts]), axis=0))
