"""Inception Score (Salimans et al. 2016, arXiv:1606.03498)."""

import numpy as np


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
  """IS = exp(E_x KL(p(y|x) || p(y))), p(y|x) = softmax over all 1008 Inception logits (as in the
  paper's code), p(y) the mean of p(y|x) within each of `num_splits` consecutive splits; returns the
  mean and std over the splits (Salimans et al. 2016, 1606.03498). Computed in float64.
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or len(logits) < num_splits:
    raise ValueError(f"logits must be [N >= num_splits={num_splits}, K], got {logits.shape}")
  z = logits - logits.max(axis=1, keepdims=True)
  log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  scores = []
  for part in np.array_split(log_p, num_splits):
    log_py = np.log(np.exp(part).mean(axis=0, keepdims=True))
    kl = (np.exp(part) * (part - log_py)).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))
