"""The evaluation protocol, recorded next to every result, and the cached reference statistics.

Reference statistics (pool3 mean and covariance, plus the features themselves for KID and the k-NN
metrics, plus logits when the weights have them) are computed once per (reference, count,
protocol) and cached as `<cache>/fid_stats/<name>_<split>_<count>_<key>.npz`, where <cache> is
$GANZOO_CACHE_DIR or ~/.cache/ganzoo and <key> hashes every field that changes the features.
"""

import dataclasses
import hashlib
import json
import os
import re
from typing import Any

import numpy as np

from ganzoo.metrics import fid as fid_lib
from ganzoo.metrics import inception
from ganzoo.metrics import weights as weights_lib


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Everything that determines a metric value besides the images themselves."""
  weights_sha256: str
  reference: str                      # 'name:split' or 'file.npz@sha256:<16 hex>'
  num_samples: int                    # generated / fake images
  num_reference: int                  # real images behind the reference statistics
  feature_layer: str = inception.FEATURE_LAYER
  resize_filter: str = inception.RESIZE_FILTER
  inception_size: int = inception.INCEPTION_SIZE
  input_range: str = inception.INPUT_RANGE
  fake_quantization: str = "float [-1,1] -> uint8 round((x+1)*127.5), clip; grey -> 3 channels"
  fid_sqrtm: str = "float64 eigh: tr sqrt(S1^1/2 S2 S1^1/2)"
  kid_estimator: str = "cubic kernel (x.y/d+1)^3, unbiased MMD^2, 100 subsets of min(1000, N)"
  is_splits: int = 10
  pr_k: int = 3
  dc_k: int = 5

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def feature_key(self) -> str:
    """Hash of the fields that change reference features (not the fake sample count)."""
    fields = {k: v for k, v in self.to_dict().items()
              if k in ("weights_sha256", "reference", "num_reference", "feature_layer",
                       "resize_filter", "inception_size", "input_range")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def reference_name(real: str) -> str:
  """'name:split' stays; a path to an .npz becomes 'basename@sha256:<first 16 hex>'."""
  if real.endswith(".npz"):
    if not os.path.isfile(real):
      raise ValueError(f"--real file {real} does not exist: pass NAME:SPLIT or an existing .npz")
    return f"{os.path.basename(real)}@sha256:{weights_lib.sha256_file(real)[:16]}"
  if ":" not in real:
    raise ValueError(f"reference {real!r} must be NAME:SPLIT (e.g. cifar10:train) or PATH.npz")
  return real


def load_npz_images(path: str, max_examples: int | None = None) -> np.ndarray:
  """The uint8 NHWC array under key 'images' of an .npz (first max_examples)."""
  with np.load(path) as z:
    if "images" not in z.files:
      raise ValueError(f"{path} has keys {z.files}: save the images under the key 'images'")
    images = z["images"][:max_examples]
  return check_images(images, path)


def check_images(images: np.ndarray, where: str = "images") -> np.ndarray:
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"{where}: want NHWC images with 1 or 3 channels, got shape {images.shape}")
  return images


def load_reference_images(real: str, max_examples: int | None) -> np.ndarray:
  if real.endswith(".npz"):
    return load_npz_images(real, max_examples)
  name, split = real.split(":", 1)
  from ganzoo import data  # pylint: disable=g-import-not-at-top  (lazy: optional tfds stack)
  batch = data.load_images(name, split=split, max_examples=max_examples)
  return check_images(np.asarray(batch["image"]), real)


_MEMORY: dict[str, dict[str, np.ndarray]] = {}


def reference_statistics(real: str, extractor: "inception.FeatureExtractor",
                         num_reference: int | None, batch_size: int = 50,
                         cache: bool = True) -> tuple[dict[str, np.ndarray], str, int]:
  """Returns ({'mu', 'sigma', 'features'[, 'logits']}, reference name, count), cached on disk.

  num_reference=None uses every image of the reference. The cache key includes the count
  actually used, the weights hash and the preprocessing (see `Protocol.feature_key`).
  """
  ref = reference_name(real)
  requested = num_reference
  probe = Protocol(extractor.weights_sha256, ref, 0, requested or -1)
  safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)
  path = os.path.join(weights_lib.cache_dir(), "fid_stats",
                      f"{safe}_{requested or 'all'}_{probe.feature_key()}.npz")
  if cache and path in _MEMORY:
    stats = _MEMORY[path]
  elif cache and os.path.isfile(path):
    with np.load(path) as z:
      stats = {k: z[k] for k in z.files}
  else:
    images = load_reference_images(real, num_reference)
    if num_reference is not None and len(images) < num_reference:
      raise ValueError(f"reference {real} has {len(images)} images < {num_reference}: lower "
                       "--num_real/--num_samples")
    out = extractor.extract(images, batch_size=batch_size)
    mu, sigma = fid_lib.feature_statistics(out["features"])
    stats = {"mu": mu, "sigma": sigma, "features": out["features"]}
    if out["logits"] is not None:
      stats["logits"] = out["logits"]
    if cache:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      np.savez(path + ".tmp.npz", **stats)
      os.replace(path + ".tmp.npz", path)
  if cache:
    _MEMORY[path] = stats
  return stats, ref, len(stats["features"])
