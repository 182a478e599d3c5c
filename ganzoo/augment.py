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
import numpy as np

# fold_in constants for the noise keys: independent of the keys a phase already splits, so turning
# instance noise on does not change the latents or dropout of a run (and off changes nothing).
REAL_NOISE_KEY, FAKE_NOISE_KEY = 0x1A5E, 0x1A5F


def augment_config() -> ml_collections.ConfigDict:
  """`config.augment`: the D-input transforms, off by default."""
  c = ml_collections.ConfigDict()
  c.instance_noise = ml_collections.ConfigDict()
  c.instance_noise.std = 0.0
  c.instance_noise.anneal_steps = ml_collections.FieldReference(None, field_type=int)  # None = train.num_steps
  # DiffAugment (Zhao et al. 2020): a comma-separated policy of 'color', 'translation', 'cutout'; '' = off.
  c.diffaugment = ml_collections.ConfigDict()
  c.diffaugment.policy = ""
  # ADA (Karras et al. 2020): on when target is set (adaptive p from the initial p) or p > 0 (fixed p).
  c.ada = ml_collections.ConfigDict()
  c.ada.p = 0.0                     # initial (adaptive) or fixed probability of each op
  c.ada.target = ml_collections.FieldReference(None, field_type=float)   # E[sign(D(real))] target; paper 0.6
  c.ada.interval = 4                # steps between p adjustments
  c.ada.kimg = 500.0                # thousands of images for p to move from 0 to 1
  c.ada.pipeline = "bgc"            # a key of ADA_PIPELINES
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


# ---------------------------------------------------------------------------------------------
# DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN
# Training", arXiv:2006.10738; reference mit-han-lab/data-efficient-gans DiffAugment_pytorch.py).
#
# The reference's formulas on NHWC images (its NCHW dims 2, 3 are H, W here); every draw is per image:
#   brightness  x + (u - 0.5)                                u ~ U[0, 1)
#   saturation  (x - mean_c x) * 2u + mean_c x               (mean over channels; identity on 1 channel)
#   contrast    (x - mean_hwc x) * (u + 0.5) + mean_hwc x
#   translation out[i, j] = x[i + t_h, j + t_w], 0 outside,  t ~ U{-s, ..., s}, s = int(size / 8 + 0.5)
#   cutout      x * mask, mask 0 on rows [o_h - c // 2, o_h - c // 2 + c) x the same for columns (clipped
#               to the image), c = int(size / 2 + 0.5), o ~ U{0, ..., size - (c mod 2)}
# The reference's clamped index grids reduce to these comparisons: its clamp only repeats rows that are
# already inside the window (translation: the zero border; cutout: rows 0 or size - 1 of a window that
# contains them). Randomness comes from jax.random (the torch draws are not reproducible here).

def rand_brightness(x: jax.Array, key: jax.Array) -> jax.Array:
  return x + (jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype) - 0.5)


def rand_saturation(x: jax.Array, key: jax.Array) -> jax.Array:
  mean = jnp.mean(x, axis=3, keepdims=True)
  return (x - mean) * (jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype) * 2) + mean


def rand_contrast(x: jax.Array, key: jax.Array) -> jax.Array:
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype) + 0.5) + mean


def translation_shifts(key: jax.Array, n: int, h: int, w: int, ratio: float = 0.125) -> tuple[jax.Array, jax.Array]:
  """DiffAugment's per-image integer shifts (t_h, t_w), each uniform in [-s, s], s = int(size * ratio + 0.5)."""
  sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k_h, k_w = jax.random.split(key)
  return jax.random.randint(k_h, (n,), -sh, sh + 1), jax.random.randint(k_w, (n,), -sw, sw + 1)


def rand_translation(x: jax.Array, key: jax.Array, ratio: float = 0.125) -> jax.Array:
  n, h, w, _ = x.shape
  t_h, t_w = translation_shifts(key, n, h, w, ratio)
  rows = jnp.clip(jnp.arange(h)[None] + t_h[:, None] + 1, 0, h + 1)   # [N, H] rows of the zero-padded image
  cols = jnp.clip(jnp.arange(w)[None] + t_w[:, None] + 1, 0, w + 1)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return padded[jnp.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def cutout_offsets(key: jax.Array, n: int, h: int, w: int, ratio: float = 0.5) -> tuple[jax.Array, jax.Array]:
  """DiffAugment's per-image cutout centres (o_h, o_w), o ~ U{0, ..., size - (c mod 2)}, c = int(size * ratio + 0.5)."""
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k_h, k_w = jax.random.split(key)
  return (jax.random.randint(k_h, (n,), 0, h + (1 - ch % 2)), jax.random.randint(k_w, (n,), 0, w + (1 - cw % 2)))


def rand_cutout(x: jax.Array, key: jax.Array, ratio: float = 0.5) -> jax.Array:
  n, h, w, _ = x.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  o_h, o_w = cutout_offsets(key, n, h, w, ratio)
  r = jnp.arange(h)[None] - (o_h[:, None] - ch // 2)   # [N, H]: row offset inside the window
  c = jnp.arange(w)[None] - (o_w[:, None] - cw // 2)
  inside = ((r >= 0) & (r < ch))[:, :, None] & ((c >= 0) & (c < cw))[:, None, :]
  return x * jnp.where(inside, 0, 1).astype(x.dtype)[..., None]


DIFFAUGMENT_OPS = {"color": (rand_brightness, rand_saturation, rand_contrast), "translation": (rand_translation,),
                   "cutout": (rand_cutout,)}


def diffaugment(x: jax.Array, key: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """DiffAugment(x) with the ops of `policy` in order (the reference applies them in policy order); op j
  of policy entry i draws from fold_in(key, 16 i + j). The empty policy returns x."""
  for i, name in enumerate(policy):
    for j, fn in enumerate(DIFFAUGMENT_OPS[name]):
      x = fn(x, jax.random.fold_in(key, 16 * i + j))
  return x


# ---------------------------------------------------------------------------------------------
# ADA (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative Adversarial Networks
# with Limited Data", arXiv:2006.06676; reference NVlabs/stylegan2-ada-pytorch training/augment.py,
# AugmentPipe, and training_loop.py for the adaptive p).

# Op strengths of the pipelines (augment.py augpipe_specs) and the reference's default magnitudes.
_BLIT = dict(xflip=1.0, rotate90=1.0, xint=1.0)
_GEOM = dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0)
_COLOR = dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0)
ADA_PIPELINES = {"blit": _BLIT, "geom": _GEOM, "color": _COLOR, "bg": {**_BLIT, **_GEOM},
                 "bgc": {**_BLIT, **_GEOM, **_COLOR}}
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0
# The sym6 wavelet's low-pass filter (augment.py `wavelets['sym6']`), the reference's Hz_geom for the 2x
# up- and downsampling around the geometric resampling; normalized to sum 1 as upfirdn2d.setup_filter does.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
        0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
        0.0017677118642428036, -0.007800708325034148)
_GEOM_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
_COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def _mat3(a, b, c, d, e, f):
  """[N, 3, 3] = [[a, b, c], [d, e, f], [0, 0, 1]] from per-image (or scalar) entries."""
  a, b, c, d, e, f = jnp.broadcast_arrays(*(jnp.asarray(v, jnp.float32) for v in (a, b, c, d, e, f)))
  z, o = jnp.zeros_like(a), jnp.ones_like(a)
  return jnp.stack([jnp.stack([a, b, c], -1), jnp.stack([d, e, f], -1), jnp.stack([z, z, o], -1)], -2)


def translate2d(tx, ty):
  return _mat3(1, 0, tx, 0, 1, ty)


def scale2d(sx, sy):
  return _mat3(sx, 0, 0, 0, sy, 0)


def rotate2d(theta):
  return _mat3(jnp.cos(theta), -jnp.sin(theta), 0, jnp.sin(theta), jnp.cos(theta), 0)


def _reflect(i: jax.Array, n: int) -> jax.Array:
  """Index i of a reflect-padded axis of length n (torch 'reflect' = numpy 'reflect': the edge is not repeated)."""
  if n == 1:
    return jnp.zeros_like(i)
  i = jnp.abs(i) % (2 * n - 2)
  return jnp.where(i >= n, 2 * n - 2 - i, i)


def _fir(x: jax.Array, f: jax.Array, axis: int) -> jax.Array:
  """Valid correlation of x with the 1-D filter f along `axis`: y[i] = sum_k f[k] x[i + k]."""
  n = x.shape[axis] - f.shape[0] + 1
  return sum(f[k] * jax.lax.slice_in_dim(x, k, k + n, axis=axis) for k in range(f.shape[0]))


def _upsample2x(x: jax.Array, f: jax.Array, axis: int) -> jax.Array:
  """upfirdn2d.upsample2d along one axis: zeros inserted after each sample, padded by ((L + 1) // 2, (L - 2) // 2),
  convolved (the filter flipped) with f times the gain 2."""
  taps = f.shape[0]
  shape = list(x.shape)
  zeros = jnp.zeros_like(x)
  up = jnp.stack([x, zeros], axis=axis + 1).reshape(shape[:axis] + [2 * shape[axis]] + shape[axis + 1:])
  pad = [(0, 0)] * x.ndim
  pad[axis] = ((taps + 1) // 2, (taps - 2) // 2)
  return _fir(jnp.pad(up, pad), 2.0 * f[::-1], axis)


def _downsample2x(x: jax.Array, f: jax.Array, axis: int, crop: int) -> jax.Array:
  """upfirdn2d.downsample2d(padding=-crop, flip_filter=True) along one axis: padded by ((L - 1) // 2 - crop,
  (L - 2) // 2 - crop) (negative = cropped), correlated with f, every second sample kept."""
  taps = f.shape[0]
  lo, hi = (taps - 1) // 2 - crop, (taps - 2) // 2 - crop
  n = x.shape[axis]
  x = jax.lax.slice_in_dim(x, max(-lo, 0), n - max(-hi, 0), axis=axis)
  pad = [(0, 0)] * x.ndim
  pad[axis] = (max(lo, 0), max(hi, 0))
  y = _fir(jnp.pad(x, pad), f, axis)
  return jax.lax.slice_in_dim(y, 0, y.shape[axis], stride=2, axis=axis)


def _grid_sample(img: jax.Array, gx: jax.Array, gy: jax.Array) -> jax.Array:
  """torch grid_sample(bilinear, padding 'zeros', align_corners=False) of img [N, H, W, C] at normalized
  coordinates gx, gy [N, P] (x along W); returns [N, P, C]."""
  n, h, w, c = img.shape
  ix = ((gx + 1) * w - 1) / 2
  iy = ((gy + 1) * h - 1) / 2
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  wx, wy = ix - x0, iy - y0
  flat = img.reshape(n, h * w, c)
  out = 0.0
  for dx, dy, weight in ((0, 0, (1 - wx) * (1 - wy)), (1, 0, wx * (1 - wy)), (0, 1, (1 - wx) * wy), (1, 1, wx * wy)):
    xi, yi = (x0 + dx).astype(jnp.int32), (y0 + dy).astype(jnp.int32)
    valid = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    idx = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    vals = jnp.take_along_axis(flat, idx[..., None], axis=1)
    out = out + vals * jnp.where(valid, weight, 0.0).astype(img.dtype)[..., None]
  return out


def _geometric_resample(x: jax.Array, g_inv: jax.Array) -> jax.Array:
  """The reference's execution of G_inv (output pixel -> input pixel, origin at the image centre): reflect pad,
  2x sym6 upsampling, bilinear sampling, 2x sym6 downsampling and crop (augment.py 'Execute geometric
  transformations'). The reference pads by a margin computed from the batch's transformed corners (at most
  size - 1); here the margin is always that cap, size - 1, because a data-dependent pad needs dynamic shapes
  under jit. The reflected pixels agree wherever both pads reach (one reflection of the same image); they
  differ only where the reference reads past its own margin into grid_sample's zeros, which its margin is
  computed to avoid (it covers the corners plus the filter's support)."""
  n, h, w, c = x.shape
  f = jnp.asarray(np.asarray(SYM6) / np.sum(SYM6), x.dtype)
  hz_pad = len(SYM6) // 4
  my, mx = h - 1, w - 1
  x = jnp.pad(x, ((0, 0), (my, my), (mx, mx), (0, 0)), mode="reflect")   # symmetric: no origin shift
  x = _upsample2x(_upsample2x(x, f, 1), f, 2)
  g = g_inv.astype(jnp.float32)
  g = scale2d(2, 2)[None] @ g @ scale2d(0.5, 0.5)[None]   # [None]: the config's strict rank promotion
  g = translate2d(-0.5, -0.5)[None] @ g @ translate2d(0.5, 0.5)[None]
  out_h, out_w = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2
  up_h, up_w = x.shape[1], x.shape[2]
  g = scale2d(2 / up_w, 2 / up_h)[None] @ g @ scale2d(out_w / 2, out_h / 2)[None]
  # affine_grid(align_corners=False): the output's pixel centres in [-1, 1], then theta = G_inv[:2].
  bx = (2 * jnp.arange(out_w, dtype=jnp.float32) + 1) / out_w - 1
  by = (2 * jnp.arange(out_h, dtype=jnp.float32) + 1) / out_h - 1
  px = jnp.broadcast_to(bx[None], (out_h, out_w)).reshape(-1)
  py = jnp.broadcast_to(by[:, None], (out_h, out_w)).reshape(-1)
  px, py = px[None], py[None]
  gx = g[:, 0, 0, None] * px + g[:, 0, 1, None] * py + g[:, 0, 2, None]
  gy = g[:, 1, 0, None] * px + g[:, 1, 1, None] * py + g[:, 1, 2, None]
  y = _grid_sample(x, gx.astype(x.dtype), gy.astype(x.dtype)).reshape(n, out_h, out_w, c)
  y = _downsample2x(_downsample2x(y, f, 1, 2 * hz_pad), f, 2, 2 * hz_pad)
  return y


def _integer_resample(x: jax.Array, g_inv: jax.Array) -> jax.Array:
  """G_inv of x-flips, 90-degree rotations and integer translations, which map pixel centres onto pixel
  centres: each output pixel is the input pixel G_inv points at (rounded to the exact integer), reflected at
  the border as the reference's padding is: the paper's pixel blitting (arXiv:2006.06676 App. B.1). The
  reference sends these maps through its wavelet round trip too. For integer translations that round trip
  is the identity in exact arithmetic (sym6 is orthogonal; measured here: 3e-6, the float32 sampling
  positions). For flips and 90-degree rotations it is not: sym6 is not symmetric (its centre of mass is 0.4
  taps off-centre), so a mirrored image is filtered by h * h instead of h * reverse(h), a slight blur and
  sub-pixel shift (measured on 16x16 images: up to 0.03 on a smooth image, 0.35 on uniform noise in [-1, 1]).
  Here they are the exact permutations the paper describes; images that also get a scale, rotation, aniso
  or fractional translation go through `_geometric_resample` with the whole matrix, as in the reference."""
  n, h, w, _ = x.shape
  cx, cy = (w - 1) / 2, (h - 1) / 2
  px = jnp.broadcast_to(jnp.arange(w, dtype=jnp.float32)[None] - cx, (h, w)).reshape(1, -1)
  py = jnp.broadcast_to(jnp.arange(h, dtype=jnp.float32)[:, None] - cy, (h, w)).reshape(1, -1)
  g = g_inv.astype(jnp.float32)
  sx = g[:, 0, 0, None] * px + g[:, 0, 1, None] * py + g[:, 0, 2, None] + cx
  sy = g[:, 1, 0, None] * px + g[:, 1, 1, None] * py + g[:, 1, 2, None] + cy
  cols = _reflect(jnp.round(sx).astype(jnp.int32), w)
  rows = _reflect(jnp.round(sy).astype(jnp.int32), h)
  flat = x.reshape(n, h * w, x.shape[-1])
  return jnp.take_along_axis(flat, (rows * w + cols)[..., None], axis=1).reshape(x.shape)


def _luma_axis():
  return jnp.asarray(np.asarray([1, 1, 1, 0]) / np.sqrt(3), jnp.float32)


def _rotate3d(v: jax.Array, theta: jax.Array) -> jax.Array:
  """[N, 4, 4]: rotation by theta about the unit axis v (augment.py rotate3d)."""
  vx, vy, vz = v[0], v[1], v[2]
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  z, o = jnp.zeros_like(theta), jnp.ones_like(theta)
  rows = [[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, z],
          [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, z],
          [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, z],
          [z, z, z, o]]
  return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def ada_augment(x: jax.Array, key: jax.Array, p: jax.Array | float, strengths: dict[str, float]) -> jax.Array:
  """AugmentPipe.forward of stylegan2-ada-pytorch training/augment.py for the ops in `strengths` (op: its
  multiplier, 1 in the reference's pipelines), on NHWC images in [-1, 1] with 1 or 3 channels.

  Each op is applied to each image with probability strength * p, with the reference's draws:
    xflip       x -> -x w.p. 1/2                        rotate90   by i * 90 degrees, i ~ U{0, 1, 2, 3}
    xint        by round(t * size), t ~ U(-0.125, 0.125)^2   scale      isotropic by 2^N(0, 0.2^2)
    rotate      pre- and post-rotation, each w.p. 1 - sqrt(1 - p) (so P(either) = p), angle ~ U(-pi, pi)
    aniso       by (s, 1 / s), s = 2^N(0, 0.2^2)       xfrac      by N(0, 0.125^2) * size
  composed as one 3x3 inverse matrix (output pixel -> input pixel) and applied by one resampling; then
    brightness  + N(0, 0.2^2)    contrast  * 2^N(0, 0.5^2)    lumaflip  Householder reflection of the luma
    hue         rotation about the luma axis by U(-pi, pi)     saturation  * 2^N(0, 1) off the luma axis
  composed as one 4x4 color matrix (hue and saturation need color: skipped on 1 channel, as in the reference;
  on 1 channel the matrix acts through the mean of its first three rows, again as the reference does).

  Differences from the reference (reasons in the helpers' docstrings): the geometric pad is the reference's
  cap (size - 1) rather than its data-dependent margin; an image none of whose scale / rotate / aniso /
  xfrac ops fired is moved exactly by `_integer_resample` (pixel blitting; the reference's wavelet round trip
  adds float rounding, and a slight blur to flips and 90-degree rotations) and an image none of whose color
  ops fired keeps its colors exactly (the reference multiplies by an identity matrix assembled in float), so
  p = 0 is exactly the identity. `_geometric_resample` agrees with a torch transcription of the reference's
  pad / upfirdn2d / affine_grid / grid_sample chain at the same margin to 3e-6 (float32 matrices). The full
  resampling runs on every batch when the pipeline has a scale / rotate / aniso / xfrac op (the reference
  skips it when no op is on; see the comment at its call). Linear in x for fixed draws, hence differentiable w.r.t. the image.
  """
  n, h, w, c = x.shape
  p = jnp.asarray(p, jnp.float32)
  keys = {name: jax.random.fold_in(key, i) for i, name in enumerate(_GEOM_OPS + _COLOR_OPS)}

  def gate(name, shape=(n,)):   # (value key, whether the op fires for each image)
    k_val, k_on = jax.random.split(keys[name])
    return k_val, jax.random.uniform(k_on, shape) < strengths.get(name, 0.0) * p

  eye3 = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
  g_inv = eye3
  if strengths.get("xflip", 0):
    k, on = gate("xflip")
    i = jnp.where(on, jnp.floor(jax.random.uniform(k, (n,)) * 2), 0.0)
    g_inv = g_inv @ scale2d(1 / (1 - 2 * i), 1)
  if strengths.get("rotate90", 0):
    k, on = gate("rotate90")
    i = jnp.where(on, jnp.floor(jax.random.uniform(k, (n,)) * 4), 0.0)
    g_inv = g_inv @ rotate2d(np.pi / 2 * i)           # rotate2d_inv(-pi / 2 i)
  if strengths.get("xint", 0):
    k, on = gate("xint")
    t = jnp.where(on[:, None], (jax.random.uniform(k, (n, 2)) * 2 - 1) * XINT_MAX, 0.0)
    g_inv = g_inv @ translate2d(-jnp.round(t[:, 0] * w), -jnp.round(t[:, 1] * h))
  integer = g_inv
  continuous = jnp.zeros((n,), bool)
  if strengths.get("scale", 0):
    k, on = gate("scale")
    s = jnp.where(on, jnp.exp2(jax.random.normal(k, (n,)) * SCALE_STD), 1.0)
    g_inv, continuous = g_inv @ scale2d(1 / s, 1 / s), continuous | on
  if strengths.get("rotate", 0):
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - strengths["rotate"] * p, 0, 1))   # P(pre or post) = p
    k_pre, k_post = jax.random.split(keys["rotate"])
    rot = []
    for k in (k_pre, k_post):
      k_val, k_on = jax.random.split(k)
      on = jax.random.uniform(k_on, (n,)) < p_rot
      rot.append((jnp.where(on, (jax.random.uniform(k_val, (n,)) * 2 - 1) * np.pi * ROTATE_MAX, 0.0), on))
    g_inv, continuous = g_inv @ rotate2d(rot[0][0]), continuous | rot[0][1]   # before anisotropic scaling
  if strengths.get("aniso", 0):
    k, on = gate("aniso")
    s = jnp.where(on, jnp.exp2(jax.random.normal(k, (n,)) * ANISO_STD), 1.0)
    g_inv, continuous = g_inv @ scale2d(1 / s, s), continuous | on
  if strengths.get("rotate", 0):
    g_inv, continuous = g_inv @ rotate2d(rot[1][0]), continuous | rot[1][1]   # after anisotropic scaling
  if strengths.get("xfrac", 0):
    k, on = gate("xfrac")
    t = jnp.where(on[:, None], jax.random.normal(k, (n, 2)) * XFRAC_STD, 0.0)
    g_inv, continuous = g_inv @ translate2d(-t[:, 0] * w, -t[:, 1] * h), continuous | on
  if any(strengths.get(name, 0) for name in _GEOM_OPS):
    exact = _integer_resample(x, integer)
    if any(strengths.get(name, 0) for name in ("scale", "rotate", "aniso", "xfrac")):
      # Both paths always run (no lax.cond on "any image needs the resampling"): under jax.grad a cond's
      # gradient here was off by 2e-6 relative in float64 against finite differences, and the resampling of
      # a 32x32 batch costs little next to D.
      x = jnp.where(continuous[:, None, None, None], _geometric_resample(x, g_inv), exact)
    else:
      x = exact

  if not any(strengths.get(name, 0) for name in _COLOR_OPS):
    return x
  eye4 = jnp.eye(4, dtype=jnp.float32)
  cm = jnp.broadcast_to(eye4, (n, 4, 4))
  fired = jnp.zeros((n,), bool)
  v = _luma_axis()
  vv = jnp.outer(v, v)
  if strengths.get("brightness", 0):
    k, on = gate("brightness")
    b = jnp.where(on, jax.random.normal(k, (n,)) * BRIGHTNESS_STD, 0.0)
    shift = jnp.broadcast_to(eye4, (n, 4, 4)).at[:, :3, 3].set(b[:, None].astype(jnp.float32))
    cm, fired = shift @ cm, fired | on
  if strengths.get("contrast", 0):
    k, on = gate("contrast")
    s = jnp.where(on, jnp.exp2(jax.random.normal(k, (n,)) * CONTRAST_STD), 1.0)
    scale = jnp.broadcast_to(eye4, (n, 4, 4)) * jnp.stack([s, s, s, jnp.ones_like(s)], -1)[:, None, :]
    cm, fired = scale @ cm, fired | on
  if strengths.get("lumaflip", 0):
    k, on = gate("lumaflip")
    i = jnp.where(on, jnp.floor(jax.random.uniform(k, (n,)) * 2), 0.0)
    cm, fired = (eye4[None] - 2 * vv[None] * i[:, None, None]) @ cm, fired | on
  if strengths.get("hue", 0) and c > 1:
    k, on = gate("hue")
    theta = jnp.where(on, (jax.random.uniform(k, (n,)) * 2 - 1) * np.pi * HUE_MAX, 0.0)
    cm, fired = _rotate3d(v, theta) @ cm, fired | on
  if strengths.get("saturation", 0) and c > 1:
    k, on = gate("saturation")
    s = jnp.where(on, jnp.exp2(jax.random.normal(k, (n,)) * SATURATION_STD), 1.0)
    cm, fired = (vv[None] + (eye4 - vv)[None] * s[:, None, None]) @ cm, fired | on
  cm = cm.astype(x.dtype)
  if c == 3:
    colored = jnp.einsum("nij,nhwj->nhwi", cm[:, :3, :3], x) + cm[:, None, None, :3, 3]
  elif c == 1:
    row = jnp.mean(cm[:, :3, :], axis=1)                # [N, 4]
    colored = x * jnp.sum(row[:, :3], axis=1)[:, None, None, None] + row[:, 3, None, None, None]
  else:
    raise ValueError(f"ADA's color ops need 1 or 3 channels; got {c}: use augment.ada.pipeline='bg'")
  return jnp.where(fired[:, None, None, None], colored, x)


def ada_adjust(p: jax.Array, sign_mean: jax.Array, target: float, batch_size: int, interval: int,
               kimg: float) -> jax.Array:
  """ADA's heuristic (training_loop.py): p + sign(r_t - target) * batch * interval / (kimg * 1000), floored at 0,
  with r_t = E[sign(D(real))] over the interval's D evaluations of reals."""
  adjust = jnp.sign(sign_mean - target) * (batch_size * interval) / (kimg * 1000.0)
  return jnp.maximum(p + adjust.astype(p.dtype), 0.0)


# ---------------------------------------------------------------------------------------------
# The run's D-input augmentation (DiffAugment or ADA), as families apply it.

# fold_in constants for the augmentation keys of the real and the generated images (apart from the
# instance-noise tags and the keys phases split, so switching augmentation on changes no other draw).
AUG_REAL_KEY, AUG_FAKE_KEY = 0xA06E, 0xA06F
ADA_EXTRAS = ("ada_p", "ada_signs", "ada_count")


class Augment(NamedTuple):
  """DiffAugment's policy (() = off) or ADA's settings; `p0` is ADA's fixed (target None) or initial p."""
  policy: tuple[str, ...] = ()
  ada_ops: tuple[tuple[str, float], ...] = ()
  p0: float = 0.0
  target: float | None = None
  interval: int = 4
  kimg: float = 500.0

  @property
  def adaptive(self) -> bool:
    return bool(self.ada_ops) and self.target is not None

  def check(self, image_shape: tuple[int, ...]) -> None:
    """ADA's color matrix acts on 1 or 3 channels (as the reference's): a one-line error otherwise."""
    channels = int(image_shape[-1])
    if any(name in _COLOR_OPS for name, _ in self.ada_ops) and channels not in (1, 3):
      raise ValueError(f"ADA's color ops need 1 or 3 channels; the images have {channels}: use "
                       "augment.ada.pipeline='bg' (geometric ops only)")

  def p(self, extras: dict[str, jax.Array]) -> jax.Array | float:
    return extras["ada_p"] if self.adaptive else self.p0

  def __call__(self, x: jax.Array, key: jax.Array, extras: dict[str, jax.Array]) -> jax.Array:
    """The augmented images (differentiable w.r.t. x): DiffAugment, or ADA at the state's p."""
    if self.policy:
      return diffaugment(x, key, self.policy)
    return ada_augment(x, key, self.p(extras), dict(self.ada_ops)).astype(x.dtype)

  # -- ADA's adaptive p in `state.extras` --------------------------------------------------------
  def init_extras(self) -> dict[str, jax.Array]:
    """{'ada_p', 'ada_signs' (sum of sign(D(real)) since the last adjustment), 'ada_count'} when p adapts."""
    if not self.adaptive:
      return {}
    return {"ada_p": jnp.asarray(self.p0, jnp.float32), "ada_signs": jnp.zeros((), jnp.float32),
            "ada_count": jnp.zeros((), jnp.float32)}

  def accumulate(self, extras: dict[str, jax.Array], sign_mean: jax.Array, n: int) -> dict[str, jax.Array]:
    """Adds one D evaluation of n reals (mean sign `sign_mean`) to the interval's statistics."""
    return {**extras, "ada_signs": extras["ada_signs"] + (sign_mean * n).astype(extras["ada_signs"].dtype),
            "ada_count": extras["ada_count"] + jnp.asarray(n, extras["ada_count"].dtype)}

  def adjust(self, extras: dict[str, jax.Array], step: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """At the end of step `step` (0-based): when step + 1 is a multiple of the interval (the reference's
    batch_idx % ada_interval == 0 after the step) and statistics were gathered, p moves by `ada_adjust` and
    the statistics restart. A second call in the same step sees no statistics and changes nothing."""
    due = (((step + 1) % self.interval) == 0) & (extras["ada_count"] > 0)
    mean = extras["ada_signs"] / jnp.maximum(extras["ada_count"], 1)
    p = ada_adjust(extras["ada_p"], mean, self.target, batch_size, self.interval, self.kimg)
    zero = jnp.zeros_like(extras["ada_signs"])
    return {**extras, "ada_p": jnp.where(due, p, extras["ada_p"]),
            "ada_signs": jnp.where(due, zero, extras["ada_signs"]),
            "ada_count": jnp.where(due, zero.astype(extras["ada_count"].dtype), extras["ada_count"])}


def augmentation(config: ml_collections.ConfigDict) -> Augment | None:
  """The run's augmentation from `config.augment.diffaugment` / `config.augment.ada`, or None when both are off."""
  section = config.get("augment", None)
  if section is None:
    return None
  diff = section.get("diffaugment", None)
  policy = tuple(s.strip() for s in (diff.get("policy", "") if diff is not None else "").split(",") if s.strip())
  unknown = [s for s in policy if s not in DIFFAUGMENT_OPS]
  if unknown:
    raise ValueError(f"config.augment.diffaugment.policy has {unknown}; use a comma-separated subset of "
                     f"{sorted(DIFFAUGMENT_OPS)} (e.g. 'color,translation,cutout')")
  ada = section.get("ada", None)
  target = ada.get("target", None) if ada is not None else None
  p0 = float(ada.get("p", 0.0)) if ada is not None else 0.0
  if target is None and not p0:
    return Augment(policy=policy) if policy else None
  if policy:
    raise ValueError("config.augment sets both DiffAugment and ADA: set augment.diffaugment.policy='' or turn ADA "
                     "off (augment.ada.target=None, augment.ada.p=0)")
  pipeline = str(ada.get("pipeline", "bgc"))
  if pipeline not in ADA_PIPELINES:
    raise ValueError(f"config.augment.ada.pipeline={pipeline!r}; choose from {sorted(ADA_PIPELINES)}")
  interval, kimg = int(ada.get("interval", 4)), float(ada.get("kimg", 500.0))
  if p0 < 0 or interval < 1 or kimg <= 0 or (target is not None and not -1 <= float(target) <= 1):
    raise ValueError(f"config.augment.ada needs p >= 0, interval >= 1, kimg > 0 and target in [-1, 1] (or None "
                     f"for a fixed p); got p={p0}, interval={interval}, kimg={kimg}, target={target}")
  return Augment(ada_ops=tuple(sorted(ADA_PIPELINES[pipeline].items())), p0=p0,
                 target=None if target is None else float(target), interval=interval, kimg=kimg)


def refuse_augment(config: ml_collections.ConfigDict, family: str) -> None:
  """One-line error when DiffAugment or ADA is set for a family that does not apply it (only the gan and
  stylegan2 families do; `methods.build` calls this for the others)."""
  if augmentation(config) is not None:
    raise ValueError(f"config.augment.diffaugment / config.augment.ada are not supported by the {family!r} family "
                     "(only 'gan' and 'stylegan2' apply them): set augment.diffaugment.policy='' and "
                     "augment.ada.target=None, augment.ada.p=0")
