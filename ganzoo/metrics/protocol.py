"""The evaluation protocol, recorded next to every result, and the cached reference statistics.

The reference is a data set opened exactly as training opens it (`Reference`: `ganzoo.data`'s
`open_source` with the run's `data` fields and `split = eval.real_split`), so a 32x32 run on 28x28
data is scored against 32x32 references, a folder or .npz data set is its own reference, and a tfds
set under `data.data_dir` is found. Reference statistics (pool3 mean and covariance, plus the
features themselves for KID and the k-NN metrics, plus logits when the weights have them) are
computed once per (reference, count, protocol) and cached as
`<cache>/fid_stats/<label>_<count>_<key>.npz`, where <cache> is $GANZOO_CACHE_DIR or ~/.cache/ganzoo,
<label> is 'name:split' (or 'npz@sha256:<16 hex>' / 'folder@sha256:<16 hex>' for files) plus the
transforms, and <key> hashes every field that changes the features: the protocol's preprocessing
and weights, and every data field that changes the reference images (`Reference.key_fields`).
The reference is the first `count` images in stored order.
"""

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Iterator

import numpy as np

from ganzoo.metrics import fid as fid_lib
from ganzoo.metrics import inception
from ganzoo.metrics import weights as weights_lib


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Everything that determines a metric value besides the images themselves."""
  weights_sha256: str
  reference: str                      # `Reference.describe()`: 'name:split', 'file.npz@sha256:<16 hex>', ...
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

  def feature_key(self, reference_fields: dict[str, Any] | None = None) -> str:
    """Hash of the fields that change reference features (not the fake sample count), plus the
    reference's data fields (`Reference.key_fields`) when given."""
    fields = {k: v for k, v in self.to_dict().items()
              if k in ("weights_sha256", "reference", "num_reference", "feature_layer",
                       "resize_filter", "inception_size", "input_range")}
    if reference_fields is not None:
      fields["data"] = reference_fields
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _get(cfg: Any, key: str) -> Any:
  value = cfg.get(key, None) if hasattr(cfg, "get") else getattr(cfg, key, None)
  return value


@dataclasses.dataclass(frozen=True)
class Reference:
  """The real images of a reference: a data set opened by `ganzoo.data.open_source` with these
  fields (their meaning is in the `ganzoo.data` docstring), the first `count` of them in stored
  order. `split` is ignored by .npz files and image folders (their images are the reference)."""
  name: str
  split: str = "test"
  source: str = "auto"
  data_dir: str | None = None
  path: str | None = None
  image_size: int | tuple[int, int] | None = None
  center_crop: int | None = None
  max_examples: int | None = None

  @classmethod
  def from_data_config(cls, data: Any, split: str) -> "Reference":
    """The reference of a run: its `data` config section at `split` (e.g. `eval.real_split`)."""
    size = _get(data, "image_size")
    return cls(name=str(_get(data, "name")), split=str(split), source=_get(data, "source") or "auto",
               data_dir=_get(data, "data_dir"), path=_get(data, "path"),
               image_size=tuple(size) if isinstance(size, (list, tuple)) else size,
               center_crop=_get(data, "center_crop"), max_examples=_get(data, "max_examples"))

  @classmethod
  def parse(cls, real: "str | Reference") -> "Reference":
    """'NAME:SPLIT' (a `ganzoo.data` name), 'PATH.npz' or a folder of images (the CLI's --real)."""
    if isinstance(real, Reference):
      return real
    if not isinstance(real, str):
      raise TypeError(f"a reference is 'NAME:SPLIT', PATH.npz, a folder or a Reference, got {type(real).__name__}")
    if real.endswith(".npz"):
      if not os.path.isfile(real):
        raise ValueError(f"--real file {real} does not exist: pass NAME:SPLIT or an existing .npz")
      return cls(name="npz", path=real)
    if os.path.isdir(real):
      return cls(name="folder", path=real)
    if ":" not in real:
      raise ValueError(f"reference {real!r} must be NAME:SPLIT (e.g. cifar10:train), PATH.npz or a folder of images")
    name, split = real.split(":", 1)
    return cls(name=name, split=split)

  @property
  def kind(self) -> str:
    """'npz', 'folder', 'synthetic' or 'dataset' (IDX or tfds), resolved as `open_source` does."""
    from ganzoo.data import synthetic  # pylint: disable=g-import-not-at-top
    for kind in ("npz", "folder"):
      if self.source == kind or (self.source in ("auto", None) and self.name == kind):
        return kind
    if self.source == "synthetic" or (self.source in ("auto", None) and self.name in synthetic.NAMES):
      return "synthetic"
    return "dataset"

  def open(self):
    """The `ganzoo.data` source of the reference images (uint8 NHWC via `.get(indices)`)."""
    from ganzoo.data import sources  # pylint: disable=g-import-not-at-top  (lazy: optional tfds stack)
    if self.kind == "synthetic":
      raise ValueError(f"{self.name} holds 2-D points, not images: FID/KID need images; set "
                       "--config.eval.metrics='' (or eval.every=0)")
    return sources.open_source(self.name, split=self.split, source=self.source, data_dir=self.data_dir,
                               path=self.path, image_size=self.image_size, center_crop=self.center_crop,
                               max_examples=self.max_examples)

  def _transforms(self) -> str:
    from ganzoo.data import sources  # pylint: disable=g-import-not-at-top
    size = sources.parse_image_size(self.image_size)
    size = None if size is None else (size[0] if size[0] == size[1] else f"{size[0]}x{size[1]}")
    parts = [f"{k}={v}" for k, v in (("image_size", size), ("center_crop", self.center_crop)) if v is not None]
    return f"[{','.join(parts)}]" if parts else ""

  def content_hash(self, count: int | None) -> str | None:
    """sha256 of the images' files for an .npz (the file) or a folder (relative paths and bytes of
    the first `count` files in the order `FolderSource` reads them); None for named data sets.

    Files are keyed by content, not by path: a moved copy reuses the cache, an edited file does not."""
    if self.kind == "npz":
      if not self.path or not os.path.isfile(os.path.expanduser(self.path)):
        self.open()   # raises the data pipeline's one-line 'not found'
      return weights_lib.sha256_file(os.path.expanduser(self.path))
    if self.kind == "folder":
      src = self.open()
      root = os.path.expanduser(self.path)
      h = hashlib.sha256()
      for f in src.files[:count]:
        h.update(os.path.relpath(str(f), root).encode() + b"\0")
        with open(f, "rb") as fh:
          h.update(hashlib.sha256(fh.read()).digest())
      return h.hexdigest()
    return None

  def describe(self, content_hash: str | None = None) -> str:
    """The name recorded in `Protocol.reference`: 'name:split', 'file.npz@sha256:<16 hex>' or
    'folder:<dir>@sha256:<16 hex>', followed by '[image_size=..,center_crop=..]' when set."""
    if self.kind == "npz":
      base = f"{os.path.basename(self.path)}@sha256:{(content_hash or self.content_hash(None))[:16]}"
    elif self.kind == "folder":
      base = f"folder:{os.path.basename(os.path.normpath(self.path))}@sha256:{(content_hash or '?')[:16]}"
    else:
      base = f"{self.name}:{self.split}"
    return base + self._transforms()

  def key_fields(self, content_hash: str | None = None) -> dict[str, Any]:
    """Every field that changes the reference images, for the statistics' cache key. Files (.npz,
    folders) enter by their content hash instead of their path and split (which they ignore)."""
    from ganzoo.data import sources  # pylint: disable=g-import-not-at-top
    size = sources.parse_image_size(self.image_size)
    fields = dataclasses.asdict(self)
    fields["image_size"] = list(size) if size else None
    fields["kind"] = self.kind
    if self.kind in ("npz", "folder"):
      fields.update(path=None, split=None, data_dir=None, content_sha256=content_hash)
    return fields


def reference_name(real: "str | Reference") -> str:
  """The recorded name of a reference ('name:split' stays; an .npz becomes 'basename@sha256:<16 hex>')."""
  ref = Reference.parse(real)
  return ref.describe(ref.content_hash(None)) if ref.kind in ("npz", "folder") else ref.describe()


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


def _open_counted(ref: Reference, count: int | None):
  """(source, n): the opened reference and the number of images to read (all when count is None)."""
  src = ref.open()
  n = int(src.num_examples) if count is None else int(count)
  if src.num_examples < n:
    raise ValueError(f"reference {ref.name}:{ref.split} ({ref.path or ref.data_dir or 'default location'}) has "
                     f"{src.num_examples} images < {n}: lower eval.num_samples (--num_real/--num_samples) "
                     "or use a larger split")
  return src, n


def _batches(src, n: int, batch_size: int, where: str) -> Iterator[np.ndarray]:
  for lo in range(0, n, batch_size):
    yield check_images(np.asarray(src.get(np.arange(lo, min(lo + batch_size, n)))["image"]), where)


def reference_batches(real: "str | Reference", count: int | None, batch_size: int = 50) -> Iterator[np.ndarray]:
  """The first `count` (None: all) reference images as uint8 NHWC batches of `batch_size`."""
  ref = Reference.parse(real)
  src, n = _open_counted(ref, count)
  return _batches(src, n, batch_size, f"reference {ref.name}")


def load_reference_images(real: "str | Reference", max_examples: int | None) -> np.ndarray:
  """The first `max_examples` (None: all) reference images, uint8 [N, H, W, C]."""
  batches = list(reference_batches(real, max_examples, batch_size=1000))
  return np.concatenate(batches) if batches else np.zeros((0, 1, 1, 1), np.uint8)


def _all_processes(flag: bool) -> bool:
  """Whether `flag` holds on every process (feature extraction is collective: either every process
  reads the cached statistics or every process computes them)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


_MEMORY: dict[str, dict[str, np.ndarray]] = {}


def statistics_path(ref: Reference, weights_sha256: str, num_reference: int | None,
                    content_hash: str | None = None) -> tuple[str, str]:
  """(cache file of the reference statistics, recorded reference name)."""
  if content_hash is None and ref.kind in ("npz", "folder"):
    content_hash = ref.content_hash(num_reference)
  name = ref.describe(content_hash)
  # Files enter the key and the file name by content only (not by their name or place).
  label = (f"{ref.kind}@sha256:{content_hash[:16]}{ref._transforms()}"  # pylint: disable=protected-access
           if ref.kind in ("npz", "folder") else name)
  probe = Protocol(weights_sha256, label, 0, num_reference or -1)
  safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
  key = probe.feature_key(ref.key_fields(content_hash))
  return os.path.join(weights_lib.cache_dir(), "fid_stats", f"{safe}_{num_reference or 'all'}_{key}.npz"), name


def reference_statistics(real: "str | Reference", extractor: "inception.FeatureExtractor",
                         num_reference: int | None, batch_size: int = 50,
                         cache: bool = True) -> tuple[dict[str, np.ndarray], str, int]:
  """Returns ({'mu', 'sigma', 'features'[, 'logits']}, reference name, count), cached on disk.

  `real` is a `Reference` (e.g. `Reference.from_data_config(config.data, config.eval.real_split)`)
  or the CLI's 'NAME:SPLIT' / PATH.npz / folder. num_reference=None uses every image of the
  reference. The cache key includes the count actually used, the weights hash, the preprocessing
  (see `Protocol.feature_key`) and the reference's data fields (`Reference.key_fields`).
  With several processes every process computes the same statistics (collective feature
  extraction) and only process 0 writes the cache file.
  """
  ref = Reference.parse(real)
  path, name = statistics_path(ref, extractor.weights_sha256, num_reference)
  in_memory = cache and path in _MEMORY
  on_disk = cache and not in_memory and os.path.isfile(path)
  if cache and _all_processes(in_memory or on_disk):
    if in_memory:
      stats = _MEMORY[path]
    else:
      with np.load(path) as z:
        stats = {k: z[k] for k in z.files}
  else:
    src, n, error = None, 0, None
    try:
      src, n = _open_counted(ref, num_reference)
    except ValueError as e:
      error = e
    if not _all_processes(error is None):   # no process may enter the collective extraction alone
      raise error or ValueError(f"reference {name} cannot be read on another process (see its log); "
                                "every host needs the data")
    out = extractor.extract_batches(_batches(src, n, batch_size, f"reference {name}"), n, batch_size)
    mu, sigma = fid_lib.feature_statistics(out["features"])
    stats = {"mu": mu, "sigma": sigma, "features": out["features"]}
    if out["logits"] is not None:
      stats["logits"] = out["logits"]
    if cache and _process_index() == 0:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp.npz"
      np.savez(tmp, **stats)
      os.replace(tmp, path)
  if cache:
    _MEMORY[path] = stats
  return stats, name, len(stats["features"])


def _process_index() -> int:
  import jax  # pylint: disable=g-import-not-at-top
  return jax.process_index()
