"""Kernel Inception Distance (Binkowski et al. 2018, arXiv:1801.01401)."""

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x . y / d + 1)^3, the cubic kernel of the KID paper; float64 result."""
  d = x.shape[1]
  return (np.asarray(x @ y.T, np.float64) / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with the cubic kernel for equal-size sets of m samples:

  MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2.
  """
  m = len(x)
  if len(y) != m or m < 2:
    raise ValueError(f"need two sets of equal size >= 2, got {len(x)} and {len(y)}")
  kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
  return float(off(kxx) + off(kyy) - 2.0 * kxy.mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """KID: mean and std of `mmd2_unbiased` over `num_subsets` random subsets (without replacement
  within a subset) of min(subset_size, N_real, N_fake) samples of each set (Binkowski et al.
  2018, 1801.01401; defaults 100 subsets of 1000 as in their code and StyleGAN's).
  Features enter the kernel as float32 (as in the reference code) and are summed in float64.
  """
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  m = min(subset_size, len(real), len(fake))
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                          fake[rng.choice(len(fake), m, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))
