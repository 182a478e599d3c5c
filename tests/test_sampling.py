"""Tests for ganzoo.sampling: truncation trick, grids, sheets, PNG output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
import scipy.stats

from ganzoo import sampling


@pytest.mark.parametrize('threshold', [0.5, 1.0, 2.0])
def test_truncated_normal_bounds_and_std(threshold):
  z = sampling.truncated_normal(jax.random.key(0), (200_000,), threshold)
  assert z.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(z))) <= threshold
  std = sampling.truncated_normal_std(threshold)
  # Sampling bounds for n = 200,000 draws (any key): the sample std's relative std error is
  # <= 1 / sqrt(2n) * sqrt(kurtosis - 1) / sqrt(2) ~ 1.6e-3 and the mean's std / sqrt(n) <= 2.2e-3,
  # so 0.02 and 0.01 are > 4 sigma; an untruncated or wrongly scaled draw misses by > 5%.
  assert abs(float(jnp.std(z)) / std - 1) < 0.02
  assert abs(float(jnp.mean(z))) < 0.01


def test_truncated_normal_std_formula():
  # known values: t -> inf gives 1; uniform limit t -> 0 gives t / sqrt(3)
  # float64 closed forms: at t = 8 the deficit 1 - std is ~1e-13; near 0 the std is
  # t / sqrt(3) * (1 - t^2 / 15 + ...), a 7e-6 relative correction at t = 1e-2, so 1e-3 is loose
  # but a uniform or untruncated formula misses by > 40%; vs scipy's float64 both are ~1e-15.
  assert abs(sampling.truncated_normal_std(8.0) - 1.0) < 1e-6
  assert abs(sampling.truncated_normal_std(1e-2) / (1e-2 / np.sqrt(3)) - 1) < 1e-3
  for t in (0.5, 1.0, 2.0):
    np.testing.assert_allclose(sampling.truncated_normal_std(t), scipy.stats.truncnorm.std(-t, t),
                               rtol=1e-6)
  z = sampling.truncated_normal(jax.random.key(1), (4, 3), None)
  assert z.shape == (4, 3)
  with pytest.raises(ValueError):
    sampling.truncated_normal(jax.random.key(1), (4,), 0.0)


def test_make_grid_layout_and_values():
  imgs = np.stack([np.full((2, 3, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
  grid = sampling.make_grid(imgs, nrow=2, padding=1, pad_value=7)
  assert grid.dtype == np.uint8 and grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
  assert (grid[1:3, 1:4] == 0).all() and (grid[1:3, 5:8] == 128).all()
  assert (grid[4:6, 1:4] == 255).all() and (grid[4:6, 5:8] == 7).all()  # empty cell
  assert grid[0, 0, 0] == 7


def _fake_g_fn(z, y):
  """A deterministic 'generator': image value tanh(mean(z) + y / 10), 4x4x3."""
  v = jnp.tanh(jnp.mean(z, axis=-1) + (0.0 if y is None else y / 10.0))
  return jnp.broadcast_to(v[:, None, None, None], (z.shape[0], 4, 4, 3))


def _tile(grid, r, c, size=4, pad=2):
  top, left = pad + r * (size + pad), pad + c * (size + pad)
  return grid[top:top + size, left:left + size]


def test_class_sheet_and_truncation_sweep():
  sheet = sampling.class_sheet(_fake_g_fn, jax.random.key(0), [1, 5, 9], 4, z_dim=8,
                               threshold=0.5, batch_size=5)
  assert sheet.shape == (2 + 3 * 6, 2 + 4 * 6, 3) and sheet.dtype == np.uint8
  # rows are classes: higher class -> brighter on average
  means = [_tile(sheet, r, 0).mean() for r in range(3)]
  assert means[0] < means[1] < means[2]
  sweep = sampling.truncation_sweep(_fake_g_fn, jax.random.key(1), [0.1, 1.0, None], 5, z_dim=8,
                                    labels=[0, 1, 2, 3, 4])
  assert sweep.shape == (2 + 3 * 6, 2 + 5 * 6, 3)
  # threshold 0.1 keeps mean(z) within 0.1: pixel values near (1 + tanh(y/10 +- 0.1)) * 127.5
  row0 = np.array([_tile(sweep, 0, c)[0, 0, 0] for c in range(5)], np.float64)
  lo = (np.tanh(np.arange(5) / 10 - 0.1) + 1) * 127.5 - 1
  hi = (np.tanh(np.arange(5) / 10 + 0.1) + 1) * 127.5 + 1
  assert ((row0 >= lo) & (row0 <= hi)).all()


@pytest.mark.parametrize('mode', ['lerp', 'slerp'])
def test_interpolation_sheet_endpoints(mode, tmp_path):
  z0 = sampling.truncated_normal(jax.random.key(2), (2, 8), 2.0)
  z1 = sampling.truncated_normal(jax.random.key(3), (2, 8), 2.0)
  zs = sampling.interpolate_latents(z0, z1, 6, mode)
  # Endpoints in float32: weights (1, 0) and (0, 1) from sin((1 - t) w) / sin(w) for slerp, each
  # within a few ulps, times |z| <= 2 (threshold 2), over sin(w) ~ 1 for random 8-d latents:
  # < 1e-6 at t = 0 and < 1e-5 at t = 1 (t's own rounding in the linspace adds an ulp times w).
  np.testing.assert_allclose(np.asarray(zs[:, 0]), np.asarray(z0), atol=1e-6)
  np.testing.assert_allclose(np.asarray(zs[:, -1]), np.asarray(z1), atol=1e-5)
  labels = [3, 7]
  sheet = sampling.interpolation_sheet(_fake_g_fn, z0, z1, 6, labels=labels, mode=mode)
  assert sheet.shape == (2 + 2 * 6, 2 + 6 * 6, 3)
  y = jnp.asarray(labels, jnp.int32)
  first = sampling.to_uint8(_fake_g_fn(z0, y))
  last = sampling.to_uint8(_fake_g_fn(z1, y))
  for r in range(2):
    np.testing.assert_array_equal(_tile(sheet, r, 0), first[r])
    np.testing.assert_array_equal(_tile(sheet, r, 5), last[r])
  path = tmp_path / 'sub' / 'interp.png'
  sampling.save_grid(str(path), sheet)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), sheet)
