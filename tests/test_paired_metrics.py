"""ganzoo.metrics.paired (L1, PSNR, SSIM) against a float64 numpy SSIM written here from Wang et al.
2004 in skimage's setting (filter the whole image with mode 'reflect', crop 5 pixels, channel mean),
and known values: SSIM(x, x) = 1, the PSNR of a known MSE, the SSIM of a constant offset."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from ganzoo.metrics import paired

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _window_2d():
  """The 11x11 Gaussian window from the formula: sigma 1.5, radius int(3.5 * 1.5 + 0.5) = 5, sum 1."""
  k = np.arange(-5, 6, dtype=np.float64)
  g = np.exp(-k[:, None] ** 2 / (2 * 1.5 ** 2) - k[None, :] ** 2 / (2 * 1.5 ** 2))
  return g / g.sum()


def _filter_reflect(a):
  """skimage's filtering of one channel [H, W]: the 2-D window over the whole image, borders
  mirrored as scipy's mode 'reflect' (d c b a | a b c d = numpy's 'symmetric'), written as a plain
  double loop over the window's offsets."""
  g = _window_2d()
  p = np.pad(a, 5, mode="symmetric")
  out = np.zeros_like(a)
  h, w = a.shape
  for i in range(11):
    for j in range(11):
      out += g[i, j] * p[i:i + h, j:j + w]
  return out


def _numpy_ssim(x, y):
  """SSIM of two images [H, W, C] on the [0, 255] scale, float64: Wang et al. 2004 eq. (13) per pixel
  with population (co)variances, cropped by pad = (11 - 1) // 2 = 5, mean over pixels and channels."""
  values = []
  for c in range(x.shape[-1]):
    a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
    mx, my = _filter_reflect(a), _filter_reflect(b)
    vx = _filter_reflect(a * a) - mx * mx
    vy = _filter_reflect(b * b) - my * my
    vxy = _filter_reflect(a * b) - mx * my
    s = (2 * mx * my + C1) * (2 * vxy + C2) / ((mx ** 2 + my ** 2 + C1) * (vx + vy + C2))
    values.append(s[5:-5, 5:-5].mean())
  return float(np.mean(values))


def _pairs(seed=0, n=3, h=23, w=19, c=3):
  """uint8 targets and noisy, shifted 'outputs' (a realistic SSIM range, not 0 or 1)."""
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (n, h, w, c)).astype(np.float64)
  base = scipy.ndimage.uniform_filter(base, size=(1, 3, 3, 1))       # some spatial structure
  noisy = base + rng.normal(0, 20, base.shape) + np.arange(n)[:, None, None, None] * 10
  return (np.clip(np.round(noisy), 0, 255).astype(np.uint8), np.clip(np.round(base), 0, 255).astype(np.uint8))


def test_the_reference_filter_is_scipys_gaussian_filter():
  """The numpy reference filters exactly as skimage.filters.gaussian(sigma=1.5, truncate=3.5,
  mode='reflect') does, i.e. scipy.ndimage.gaussian_filter (float64 sums: agree to 1e-12)."""
  a = np.random.default_rng(3).uniform(0, 255, (17, 14))
  np.testing.assert_allclose(_filter_reflect(a), scipy.ndimage.gaussian_filter(a, 1.5, mode="reflect", truncate=3.5),
                             rtol=0, atol=1e-10)
  np.testing.assert_allclose(paired.gaussian_window(), _window_2d()[5] / _window_2d()[5].sum(), rtol=1e-15)
  assert len(paired.gaussian_window()) == 11


def test_ssim_float64_equals_the_numpy_formula():
  """Computed in float64 both ways: the differences are rounding only. Bound: the variances are
  differences of 121-term weighted sums of squares <= 255^2, each with error <= ~66 u 255^2
  (u = 2^-53) = 5e-10, and |dS| <= (2|d sigma_xy| + |d sigma_x^2| + |d sigma_y^2|) / C2, so per
  pixel |dS| < 4 * 5e-10 / 58.5 < 1e-10."""
  x, y = _pairs()
  want = np.array([_numpy_ssim(a, b) for a, b in zip(x, y)])
  assert 0.2 < want.min() and want.max() < 0.95             # a range where mistakes show
  with jax.enable_x64(True):
    got = np.asarray(paired.ssim(jnp.asarray(x), jnp.asarray(y), dtype=jnp.float64))
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_ssim_float32_is_within_its_rounding_bound():
  """float32 (the default) against float64: same bound as above with u = 2^-24 on centred values
  (|x - 127.5| <= 127.5): 4 * 66 u 127.5^2 / C2 = 4.4e-3 per pixel, a worst case."""
  x, y = _pairs(seed=1)
  want = np.array([_numpy_ssim(a, b) for a, b in zip(x, y)])
  got = np.asarray(paired.ssim(x, y))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, want, rtol=0, atol=4 * 66 * 2.0 ** -24 * 127.5 ** 2 / C2)


def test_ssim_known_values():
  x, _ = _pairs(seed=2, c=3)
  with jax.enable_x64(True):
    # SSIM(x, x) = 1: every factor is (A + C) / (A + C).
    np.testing.assert_allclose(np.asarray(paired.ssim(x, x, dtype=jnp.float64)), 1.0, rtol=0, atol=1e-14)
    # A constant image a against a + b: sigma = 0 everywhere, so S = (2 a (a + b) + C1) / (a^2 + (a + b)^2 + C1).
    a, b = 100.0, 20.0
    const = np.full((2, 16, 16, 3), a, np.uint8)
    got = np.asarray(paired.ssim(const, const + np.uint8(b), dtype=jnp.float64))
    np.testing.assert_allclose(got, (2 * a * (a + b) + C1) / (a ** 2 + (a + b) ** 2 + C1), rtol=1e-14)
    # Any image against itself plus an offset b: sigma_x^2 = sigma_y^2 = sigma_xy, so S is the
    # luminance term of the local means alone, (2 m (m + b) + C1) / (m^2 + (m + b)^2 + C1).
    z = np.clip(x.astype(np.int32), 0, 200).astype(np.uint8)
    m = np.stack([np.stack([_filter_reflect(img[..., c].astype(np.float64)) for c in range(3)], -1) for img in z])
    lum = ((2 * m * (m + b) + C1) / (m ** 2 + (m + b) ** 2 + C1))[:, 5:-5, 5:-5].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(paired.ssim(z, z + np.uint8(b), dtype=jnp.float64)), lum, rtol=0, atol=1e-12)


def test_ssim_crops_five_pixels():
  """An 11x11 image keeps exactly one pixel after skimage's crop of 5 (the centre, whose window is the
  whole image, so the mirrored borders never count); a 10x10 image keeps none and is refused."""
  rng = np.random.default_rng(4)
  x = rng.integers(0, 256, (1, 11, 11, 1)).astype(np.uint8)
  y = rng.integers(0, 256, (1, 11, 11, 1)).astype(np.uint8)
  with jax.enable_x64(True):
    got = float(paired.ssim(x, y, dtype=jnp.float64)[0])
  assert got == pytest.approx(_numpy_ssim(x[0], y[0]), abs=1e-12)
  with pytest.raises(ValueError, match="at least 11x11"):
    paired.ssim(x[:, :10, :10], y[:, :10, :10])


def test_psnr_and_l1_of_known_errors():
  """y = x +- 5 on every pixel (no clipping): MSE = 25, PSNR = 10 log10(255^2 / 25), L1 = 5 / 255."""
  rng = np.random.default_rng(5)
  x = rng.integers(10, 246, (4, 12, 13, 3)).astype(np.uint8)
  signs = rng.choice([-5, 5], x.shape)
  y = (x.astype(np.int32) + signs).astype(np.uint8)
  np.testing.assert_allclose(np.asarray(paired.psnr(x, y)), 10 * math.log10(255 ** 2 / 25), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(paired.l1(x, y)), 5 / 255, rtol=1e-6)
  assert np.isinf(np.asarray(paired.psnr(x, x))).all()
  # Per image, then averaged: two images with MSE 25 and 100 give the mean of their PSNRs.
  y2 = y.copy()
  y2[1] = (x[1].astype(np.int32) + 2 * signs[1]).astype(np.uint8)
  summary = paired.summarize(paired.paired_metrics(x, y2))
  want = (3 * 10 * math.log10(255 ** 2 / 25) + 10 * math.log10(255 ** 2 / 100)) / 4
  assert summary["psnr"] == pytest.approx(want, rel=1e-6)
  assert summary["l1"] == pytest.approx((3 * 5 + 10) / 4 / 255, rel=1e-6)


def test_float_inputs_are_the_pngs_uint8():
  """[-1, 1] floats score as the uint8 images `sampling.to_uint8` writes (quantize=True), and as
  (x + 1) * 127.5 unrounded with quantize=False."""
  from ganzoo import sampling  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(6)
  xf = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  yf = np.clip(xf + rng.normal(0, 0.1, xf.shape), -1, 1).astype(np.float32)
  xu, yu = sampling.to_uint8(xf), sampling.to_uint8(yf)
  for fn in (paired.l1, paired.psnr, paired.ssim):
    np.testing.assert_array_equal(np.asarray(fn(xf, yf)), np.asarray(fn(xu, yu)))
  got = np.asarray(paired.l1(xf, yf, quantize=False))
  np.testing.assert_allclose(got, np.abs((xf - yf) * 127.5).mean(axis=(1, 2, 3)) / 255, rtol=1e-5)


def test_batched_equals_one_by_one_and_grey_images():
  x, y = _pairs(seed=7, c=1)
  batched = np.asarray(paired.ssim(x, y))
  single = np.concatenate([np.asarray(paired.ssim(x[i:i + 1], y[i:i + 1])) for i in range(len(x))])
  np.testing.assert_allclose(batched, single, rtol=1e-6)
  bound = 4 * 66 * 2.0 ** -24 * 127.5 ** 2 / C2     # float32's, as in test_ssim_float32_is_within_its_rounding_bound
  np.testing.assert_allclose(batched, [_numpy_ssim(a, b) for a, b in zip(x, y)], atol=bound)
  with pytest.raises(ValueError, match="one shape"):
    paired.psnr(x, y[:, :-1])
