"""Sampling tools: the truncation trick and sample sheets (class sheets, truncation sweeps,
latent interpolations) written as PNG grids.

A generator is passed as `g_fn(z, y) -> images` with z [N, z_dim], y int32 [N] (or None for
unconditional models) and images NHWC in [-1, 1]; `make_g_fn(G, variables)` builds one from any
zoo generator. Sheets are uint8 numpy arrays [H', W', C] from `make_grid`.
"""

import io
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
GFn = Callable[[Array, Array | None], Array]


def truncated_normal(rng: Array, shape: Sequence[int], threshold: float | None,
                     dtype: jnp.dtype = jnp.float32) -> Array:
  """BigGAN's truncation trick (Brock et al. 2019, arXiv:1809.11096, Sec. 4.1).

  z ~ N(0, I) with every coordinate with |z_i| > threshold resampled until it falls inside, i.e.
  each z_i is i.i.d. from N(0, 1) truncated to [-threshold, threshold]. Sampled exactly by the
  inverse CDF (`jax.random.truncated_normal`), which has the same law as the resampling loop; with
  one key, larger thresholds map the same uniforms outward, so sweeps change smoothly.
  threshold=None gives the untruncated N(0, I).
  """
  if threshold is None:
    return jax.random.normal(rng, tuple(shape), dtype)
  if threshold <= 0:
    raise ValueError(f"truncation threshold must be > 0 (or None for no truncation); got "
                     f"{threshold}")
  return jax.random.truncated_normal(rng, -threshold, threshold, tuple(shape), dtype)


def truncated_normal_std(threshold: float) -> float:
  """Std of N(0, 1) truncated to [-t, t]: sqrt(1 - 2 t phi(t) / (2 Phi(t) - 1))."""
  t = float(threshold)
  pdf = np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi)
  mass = float(jax.scipy.special.erf(t / np.sqrt(2.0)))  # 2 Phi(t) - 1
  return float(np.sqrt(1.0 - 2.0 * t * pdf / mass))


def to_uint8(images: Array | np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8 via round((x + 1) * 127.5), clipped to [0, 255]."""
  x = np.asarray(images, dtype=np.float32)
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: Array | np.ndarray, nrow: int, padding: int = 2,
              pad_value: int = 0) -> np.ndarray:
  """Tiles images [N, H, W, C] into a uint8 grid with `nrow` images per row (torchvision's meaning).

  Float images are taken to be in [-1, 1]; uint8 images are used as they are. The grid has
  ceil(N / nrow) rows and `padding` pixels of `pad_value` around every tile:
  shape [rows * (H + p) + p, nrow * (W + p) + p, C]. Empty cells stay pad_value.
  """
  x = np.asarray(images)
  if x.ndim != 4:
    raise ValueError(f"make_grid expects images [N, H, W, C]; got shape {x.shape}")
  if nrow < 1:
    raise ValueError(f"make_grid needs nrow >= 1; got {nrow}")
  x = x if x.dtype == np.uint8 else to_uint8(x)
  n, h, w, c = x.shape
  ncol = min(nrow, n)
  rows = -(-n // nrow)
  p = padding
  grid = np.full((rows * (h + p) + p, ncol * (w + p) + p, c), pad_value, np.uint8)
  for i in range(n):
    r, k = divmod(i, nrow)
    top, left = p + r * (h + p), p + k * (w + p)
    grid[top:top + h, left:left + w] = x[i]
  return grid


def save_grid(path: str, grid: np.ndarray) -> None:
  """Writes a uint8 grid [H, W, C] (C = 1 or 3) as a PNG with PIL, creating parent folders; `path` is
  local or a URL (gs://...: the PNG bytes are written through etils.epath)."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = np.asarray(grid)
  if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[-1] not in (1, 3, 4):
    raise ValueError(f"save_grid expects uint8 [H, W, 1|3|4]; got {grid.dtype} {grid.shape}")
  buffer = io.BytesIO()
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buffer, format='PNG')
  out = epath.Path(path)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_bytes(buffer.getvalue())


def make_g_fn(generator: nn.Module, variables: dict) -> GFn:
  """g_fn(z, y) = generator.apply(variables, z, y, train=False), jitted (eval mode: running BN)."""

  @jax.jit
  def g_fn(z, y):
    return generator.apply(variables, z, y, train=False)

  return g_fn


def _generate(g_fn: GFn, z: Array, y: Array | None, batch_size: int) -> np.ndarray:
  """g_fn over z in batches of `batch_size`; returns float numpy images."""
  out = []
  for s in range(0, z.shape[0], batch_size):
    ys = None if y is None else y[s:s + batch_size]
    out.append(np.asarray(g_fn(z[s:s + batch_size], ys), dtype=np.float32))
  return np.concatenate(out, axis=0)


def class_sheet(g_fn: GFn, rng: Array, classes: Sequence[int], samples_per_class: int,
                z_dim: int, threshold: float | None = None, batch_size: int = 64) -> np.ndarray:
  """Class-conditional sheet: row r holds `samples_per_class` samples of class classes[r].

  z ~ truncated_normal(threshold) (None: N(0, I)). Returns a uint8 grid of len(classes) rows.
  """
  if len(classes) == 0 or samples_per_class < 1:
    raise ValueError("class_sheet needs at least one class and samples_per_class >= 1")
  n = len(classes) * samples_per_class
  z = truncated_normal(rng, (n, z_dim), threshold)
  y = jnp.repeat(jnp.asarray(classes, jnp.int32), samples_per_class)
  return make_grid(_generate(g_fn, z, y, batch_size), nrow=samples_per_class)


def truncation_sweep(g_fn: GFn, rng: Array, thresholds: Sequence[float | None], num_samples: int,
                     z_dim: int, labels: Sequence[int] | None = None,
                     batch_size: int = 64) -> np.ndarray:
  """Truncation sweep (arXiv:1809.11096, Fig. 2): row r = `num_samples` samples at thresholds[r].

  Every row uses the same key (and the same labels, if given: one label per column), so a column
  shows one latent moving from truncated to untruncated.
  """
  if labels is not None and len(labels) != num_samples:
    raise ValueError(f"truncation_sweep needs one label per column ({num_samples}); got "
                     f"{len(labels)}")
  y = None if labels is None else jnp.asarray(labels, jnp.int32)
  zs = [truncated_normal(rng, (num_samples, z_dim), t) for t in thresholds]
  z = jnp.concatenate(zs, axis=0)
  yy = None if y is None else jnp.tile(y, len(thresholds))
  return make_grid(_generate(g_fn, z, yy, batch_size), nrow=num_samples)


def interpolate_latents(z0: Array, z1: Array, num_steps: int, mode: str = 'lerp') -> Array:
  """Latents from z0 [R, D] to z1 [R, D] in num_steps (endpoints included): [R, num_steps, D].

  'lerp': (1 - a) z0 + a z1. 'slerp': sin((1 - a) w) / sin w * z0 + sin(a w) / sin w * z1 with
  w the angle between z0 and z1 (falls back to lerp for parallel vectors).
  """
  if num_steps < 2:
    raise ValueError(f"interpolation needs num_steps >= 2; got {num_steps}")
  a = jnp.linspace(0.0, 1.0, num_steps, dtype=z0.dtype)[None, :, None]
  z0e, z1e = z0[:, None, :], z1[:, None, :]
  if mode == 'lerp':
    return (1.0 - a) * z0e + a * z1e
  if mode == 'slerp':
    cos = jnp.sum(z0 * z1, -1) / (jnp.linalg.norm(z0, axis=-1) * jnp.linalg.norm(z1, axis=-1))
    w = jnp.arccos(jnp.clip(cos, -1.0, 1.0))[:, None, None]
    sw = jnp.sin(w)
    safe = sw > 1e-6
    sws = jnp.where(safe, sw, 1.0)
    slerp = jnp.sin((1.0 - a) * w) / sws * z0e + jnp.sin(a * w) / sws * z1e
    return jnp.where(safe, slerp, (1.0 - a) * z0e + a * z1e)
  raise ValueError(f"unknown interpolation mode {mode!r}; use 'lerp' or 'slerp'")


def interpolation_sheet(g_fn: GFn, z0: Array, z1: Array, num_steps: int,
                        labels: Sequence[int] | None = None, mode: str = 'lerp',
                        batch_size: int = 64) -> np.ndarray:
  """Latent interpolation sheet (arXiv:1809.11096, Fig. 8 style): row r goes from G(z0[r], y_r)
  (first column) to G(z1[r], y_r) (last column) in `num_steps` steps, class fixed per row.

  z0, z1: [R, z_dim] endpoints (e.g. from `truncated_normal`); labels: R ints (or None).
  """
  if z0.shape != z1.shape or z0.ndim != 2:
    raise ValueError(f"interpolation endpoints must both be [R, z_dim]; got {z0.shape}, {z1.shape}")
  rows = z0.shape[0]
  if labels is not None and len(labels) != rows:
    raise ValueError(f"interpolation_sheet needs one label per row ({rows}); got {len(labels)}")
  z = interpolate_latents(z0, z1, num_steps, mode).reshape(rows * num_steps, z0.shape[1])
  y = None if labels is None else jnp.repeat(jnp.asarray(labels, jnp.int32), num_steps)
  return make_grid(_generate(g_fn, z, y, batch_size), nrow=num_steps)
