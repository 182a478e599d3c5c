"""Bits per dimension, for likelihood models (e.g. van den Oord et al. 2016, arXiv:1601.06759)."""

import math

import numpy as np

UINT8_DEQUANTIZATION_NATS = math.log(256.0)


def bits_per_dim(nll_nats: float | np.ndarray, num_dims: int,
                 scaled_to_unit_interval: bool = False) -> float | np.ndarray:
  """bpd = nll / (D ln 2) for a per-example negative log-likelihood `nll_nats` over D dimensions.

  For discrete uint8 data the nll must be that of the discrete pixels, -log P(x). A continuous
  density fitted to uniformly dequantized data y = (x + u) / 256, u ~ U[0, 1)^D, on [0, 1]^D gives
  -log p(y) = -log P(x) - D log 256 (Theis et al. 2016, arXiv:1511.01844 bounds it from below);
  pass `scaled_to_unit_interval=True` to add back D ln 256 before converting. Data scaled to
  [-1, 1] would need D ln 128 instead: rescale the density to [0, 1] first.
  """
  nll = np.asarray(nll_nats, np.float64)
  if scaled_to_unit_interval:
    nll = nll + num_dims * UINT8_DEQUANTIZATION_NATS
  out = nll / (num_dims * math.log(2.0))
  return float(out) if out.ndim == 0 else out
