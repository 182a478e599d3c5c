"""Synthetic 2-D Gaussian mixtures for studies of GAN training dynamics and mode collapse.

Two standard mixtures, each an equal-weight mixture of isotropic Gaussians:

* ``'ring8'``: 8 modes at ``2 * (cos(2 pi k / 8), sin(2 pi k / 8))``, k = 0..7 (a circle of radius
  2, the first mode at angle 0 on the +x axis), standard deviation 0.02 per coordinate. This is the
  mixture of Metz et al., "Unrolled Generative Adversarial Networks" (arXiv:1611.02163), also used
  by VEEGAN (Srivastava et al., arXiv:1705.07761).
* ``'grid25'``: 25 modes on the grid ``{-4, -2, 0, 2, 4}^2`` (row-major in x, then y), standard
  deviation 0.05 per coordinate, as in VEEGAN (arXiv:1705.07761) and PacGAN (arXiv:1712.04086).

Samples are float32 ``[N, 2]`` with no rescaling to [-1, 1]. A sample is ``x = mu_c + std * eps``
with ``c ~ Uniform{0..K-1}`` and ``eps ~ N(0, I_2)``; the label of a sample is its mode index ``c``.

The stream is infinite and deterministic: global batch ``k`` of run seed ``s`` is drawn from
``np.random.default_rng([s, k, 0x5EED])``, so it depends only on (seed, k, batch size).
``mode_stats`` gives the usual mode-coverage numbers (a sample is "high quality" when it is
within 3 std of its nearest mode; a mode is covered when at least ``min_count`` high-quality
samples fall on it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

NAMES = ('ring8', 'grid25')


class Modes(NamedTuple):
  """Mode centers ``[K, 2]`` (float32) and the per-coordinate standard deviation."""
  centers: np.ndarray
  std: float


def modes(name: str) -> Modes:
  """Returns the mode centers and std of a synthetic mixture ('ring8' or 'grid25')."""
  if name == 'ring8':
    angles = 2.0 * np.pi * np.arange(8) / 8.0
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Modes(centers.astype(np.float32), 0.02)
  if name == 'grid25':
    ticks = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    xx, yy = np.meshgrid(ticks, ticks, indexing='ij')
    centers = np.stack([xx.reshape(-1), yy.reshape(-1)], axis=1)
    return Modes(centers.astype(np.float32), 0.05)
  raise ValueError(f'Unknown synthetic data set {name!r}: use one of {NAMES}.')


def sample(name: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``n`` samples ``x = mu_c + std * eps``; returns (float32 [n, 2], int32 mode ids [n])."""
  centers, std = modes(name)
  labels = rng.integers(0, centers.shape[0], size=n)
  noise = rng.standard_normal((n, 2))
  x = centers[labels].astype(np.float64) + std * noise
  return x.astype(np.float32), labels.astype(np.int32)


def global_batch(name: str, seed: int, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The k-th global batch of the infinite stream of run ``seed`` (a pure function of its args)."""
  return sample(name, np.random.default_rng([seed, k, 0x5EED]), batch_size)


def mode_stats(samples: np.ndarray, name: str, num_std: float = 3.0,
               min_count: int = 1) -> dict[str, float]:
  """Mode coverage of generated 2-D samples.

  Each sample is assigned to its nearest mode; it is high quality when its distance to that mode
  is below ``num_std * std``. Returns ``modes_covered`` (modes with >= ``min_count`` high-quality
  samples), ``num_modes``, ``high_quality_fraction``, and ``kl_modes`` (KL divergence from the
  distribution of high-quality samples over modes to the uniform one; 0 when perfectly balanced,
  ``inf`` when there are no high-quality samples).
  """
  samples = np.asarray(samples, np.float64)
  if samples.ndim != 2 or samples.shape[1] != 2:
    raise ValueError(f'samples must have shape [N, 2], got {samples.shape}.')
  centers, std = modes(name)
  d2 = ((samples[:, None, :] - centers[None, :, :].astype(np.float64)) ** 2).sum(-1)
  nearest = d2.argmin(axis=1)
  good = np.sqrt(d2[np.arange(samples.shape[0]), nearest]) < num_std * std
  counts = np.bincount(nearest[good], minlength=centers.shape[0])
  k = centers.shape[0]
  if counts.sum() > 0:
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] * k)).sum())
  else:
    kl = float('inf')
  return {
      'modes_covered': float((counts >= min_count).sum()),
      'num_modes': float(k),
      'high_quality_fraction': float(good.mean()) if samples.shape[0] else 0.0,
      'kl_modes': kl,
  }
