"""Paired image-to-image metrics: mean absolute error (L1), PSNR and SSIM, in JAX (jittable, batched).

    from ganzoo.metrics import paired
    per_image = paired.paired_metrics(outputs, targets)   # {'l1', 'psnr', 'ssim'}: arrays [N]
    summary = paired.summarize(per_image)                # their means over the images (floats)

Conventions (the ones of the image-to-image papers' evaluation scripts, which score the result PNGs
with scikit-image):
  * Inputs are NHWC batches, either uint8 [0, 255] or ganzoo's floats in [-1, 1]. Floats are mapped
    to the pixel scale by round((x + 1) * 127.5) clipped to [0, 255] -- the uint8 a saved PNG holds
    (`ganzoo.sampling.to_uint8`) -- so the numbers equal those of scoring the written PNG files.
    `quantize=False` keeps the continuous values (x + 1) * 127.5 instead.
  * Every metric is computed on the [0, 255] pixel scale: PSNR and SSIM with data range 255 (what
    skimage uses for uint8 images). L1 is then reported on the [0, 1] scale, mean |x - y| / 255
    (the [-1, 1] scale that the pix2pix loss uses gives twice this number).
  * Per image, then averaged over the images (`summarize`), as the per-image loops of those
    scripts do. PSNR of an identical pair is +inf (skimage's value too); `summarize` keeps it.

SSIM is Wang, Bovik, Sheikh & Simoncelli 2004 ("Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13(4)) in the setting of `skimage.metrics.structural_similarity(
x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
channel_axis=-1)`, the paper's own setting and the "SSIM" column of image-to-image papers:
  mu_x = w * x, sigma_x^2 = w * x^2 - mu_x^2, sigma_xy = w * (x y) - mu_x mu_y  (w: an 11x11
  Gaussian window, sigma 1.5, truncated at 3.5 sigma: radius int(3.5 * 1.5 + 0.5) = 5, normalised
  to sum 1, as scipy.ndimage.gaussian_filter builds it), and per pixel
  S = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
  C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255. skimage filters the whole image (mode 'reflect') and
  then crops pad = (win_size - 1) // 2 = 5 pixels from every border before averaging S; the kept
  pixels are exactly those whose window lies inside the image, so the 'valid' filtering here gives
  the same numbers without any padding. The SSIM of an image is the mean of S over the kept pixels
  of every channel (skimage's channel mean: every channel has the same number of pixels). Images
  must be at least 11x11.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

DATA_RANGE = 255.0      # the pixel scale of every metric here
SIGMA = 1.5             # Wang et al. 2004's Gaussian window
TRUNCATE = 3.5          # skimage's truncation of that window (in units of sigma)
K1, K2 = 0.01, 0.03     # Wang et al. 2004's stabilising constants


def gaussian_window(sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
  """The 1-D window w[-r..r] = exp(-k^2 / (2 sigma^2)) / sum, r = int(truncate * sigma + 0.5)
  (scipy.ndimage.gaussian_filter1d's radius and weights; the 2-D window is its outer product)."""
  radius = int(truncate * sigma + 0.5)
  k = np.arange(-radius, radius + 1, dtype=np.float64)
  w = np.exp(-0.5 * k * k / (sigma * sigma))
  return w / w.sum()


def to_pixels(images: Array | np.ndarray, quantize: bool = True, dtype=None) -> Array:
  """uint8 images as they are, or [-1, 1] floats as round((x + 1) * 127.5) clipped to [0, 255]
  (`quantize=False`: (x + 1) * 127.5 unrounded), as floats on the [0, 255] scale. `dtype`: the
  float type to compute in (default float32, or the input's float type when it is wider)."""
  x = jnp.asarray(images)
  if dtype is None:
    dtype = jnp.float32 if x.dtype == jnp.uint8 else jnp.promote_types(x.dtype, jnp.float32)
  if x.dtype == jnp.uint8:
    return x.astype(dtype)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"paired metrics take uint8 images or floats in [-1, 1]; got dtype {x.dtype}")
  p = (x.astype(dtype) + 1.0) * 127.5
  return jnp.clip(jnp.round(p), 0.0, 255.0) if quantize else p


def _check(x: Array, y: Array) -> None:
  if x.shape != y.shape or x.ndim != 4:
    raise ValueError(f"paired metrics compare two NHWC batches of one shape; got {x.shape} and {y.shape}")


def _valid_filter(a: Array, w: np.ndarray) -> Array:
  """The separable 'valid' correlation of a [N, H, W, C] with w (x) w: [N, H - 2r, W - 2r, C].
  Written as weighted sums of shifted slices (plain float adds in the input's dtype, no
  convolution precision setting to depend on across backends)."""
  n = len(w)
  h, wd = a.shape[1] - n + 1, a.shape[2] - n + 1
  w = jnp.asarray(w, a.dtype)
  rows = sum(w[k] * a[:, k:k + h] for k in range(n))
  return sum(w[k] * rows[:, :, k:k + wd] for k in range(n))


@functools.partial(jax.jit, static_argnames=("quantize", "dtype", "sigma", "truncate"))
def ssim(x: Array, y: Array, quantize: bool = True, dtype=None, sigma: float = SIGMA,
         truncate: float = TRUNCATE) -> Array:
  """Per-image SSIM [N] of two NHWC batches (uint8 or [-1, 1] floats; see the module docstring)."""
  _check(x, y)
  w = gaussian_window(sigma, truncate)
  if min(x.shape[1:3]) < len(w):
    raise ValueError(f"SSIM needs images of at least {len(w)}x{len(w)} pixels; got {x.shape[1]}x{x.shape[2]}")
  # Centre both at 127.5 first: the variances are differences of filtered squares, and centring
  # (exact: the window sums to 1, so w*(x-c)^2 - (w*(x-c))^2 = w*x^2 - (w*x)^2) halves the
  # magnitudes that cancel, which quarters float32's rounding error in sigma^2 and sigma_xy.
  c = 127.5
  px = to_pixels(x, quantize, dtype) - c
  py = to_pixels(y, quantize, dtype) - c
  mx, my = _valid_filter(px, w), _valid_filter(py, w)
  vx = _valid_filter(px * px, w) - mx * mx
  vy = _valid_filter(py * py, w) - my * my
  vxy = _valid_filter(px * py, w) - mx * my
  mx, my = mx + c, my + c
  c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
  s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
  return jnp.mean(s, axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=("quantize", "dtype"))
def psnr(x: Array, y: Array, quantize: bool = True, dtype=None) -> Array:
  """Per-image PSNR [N] in dB: 10 log10(255^2 / MSE), MSE over all pixels and channels of an image
  (skimage.metrics.peak_signal_noise_ratio with data_range=255); +inf for identical images."""
  _check(x, y)
  d = to_pixels(x, quantize, dtype) - to_pixels(y, quantize, dtype)
  mse = jnp.mean(d * d, axis=(1, 2, 3))
  return 10.0 * jnp.log10(DATA_RANGE ** 2 / mse)


@functools.partial(jax.jit, static_argnames=("quantize", "dtype"))
def l1(x: Array, y: Array, quantize: bool = True, dtype=None) -> Array:
  """Per-image mean absolute error [N] on the [0, 1] scale: mean |x - y| / 255 on pixel values."""
  _check(x, y)
  d = to_pixels(x, quantize, dtype) - to_pixels(y, quantize, dtype)
  return jnp.mean(jnp.abs(d), axis=(1, 2, 3)) / DATA_RANGE


def paired_metrics(x: Array, y: Array, quantize: bool = True, dtype=None) -> dict[str, Array]:
  """{'l1', 'psnr', 'ssim'}: per-image arrays [N] of outputs x against targets y (NHWC, one shape)."""
  return {"l1": l1(x, y, quantize, dtype), "psnr": psnr(x, y, quantize, dtype), "ssim": ssim(x, y, quantize, dtype)}


def summarize(per_image: dict[str, Array | np.ndarray | list]) -> dict[str, float]:
  """The mean of each per-image metric (arrays of one batch, or lists of batches' arrays), in float64;
  'psnr' is +inf when any pair is identical, as the mean of skimage's per-image values is."""
  out = {}
  for name, values in per_image.items():
    if isinstance(values, (list, tuple)):
      values = np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in values])
    v = np.asarray(values, np.float64).reshape(-1)
    out[name] = float(v.mean()) if v.size else math.nan
  return out
