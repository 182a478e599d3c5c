"""Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500)."""

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and unbiased covariance (divisor N-1, as np.cov) of [N, D] features, in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or len(f) < 2:
    raise ValueError(f"features must be [N >= 2, D], got shape {f.shape}")
  return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((m + m.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))[None, :]) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr((S1 S2)^{1/2}) for PSD S1, S2, via eigh: = sum sqrt(eig(S1^{1/2} S2 S1^{1/2})).

  S1^{1/2} S2 S1^{1/2} is symmetric PSD and similar to S1 S2, so its eigenvalues are those of
  S1 S2; symmetric eigendecompositions (tiny negative eigenvalues from rounding clipped to 0) are
  stable where scipy.linalg.sqrtm of the non-symmetric S1 S2 can return complex or inf values
  (pytorch-fid then retries with S + 1e-6 I). Agrees with the sqrtm route to ~1e-9 relative.
  """
  s1 = _sqrt_psd(np.asarray(sigma1, np.float64))
  m = s1 @ np.asarray(sigma2, np.float64) @ s1
  w = np.linalg.eigvalsh((m + m.T) / 2)
  return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})  (Heusel et al., 1706.08500).

  The Fréchet (2-Wasserstein) distance between Gaussians N(mu1, S1) and N(mu2, S2) fitted to
  Inception pool3 features. Computed in float64; the matrix square root as in `trace_sqrt_product`.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  if mu1.shape != mu2.shape or np.shape(sigma1) != np.shape(sigma2):
    raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}")
  diff = mu1 - mu2
  value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
           - 2.0 * trace_sqrt_product(sigma1, sigma2))
  return float(max(value, 0.0))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
  """FID between two [N, D] feature sets (see `frechet_distance`)."""
  return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
