"""Random-access image sources: IDX (MNIST format), tfds (ArrayRecord or TFRecord), .npz, image folders,
synthetic.

Every source has ``image_shape`` (H, W, C), ``num_classes`` (None when unlabelled),
``num_examples``, ``has_labels`` and ``get(indices) -> {'image': uint8 [n, H, W, C],
'label': int32 [n]}`` ('label' only when labelled). Grey images keep one channel.

Resizing (any source, when ``image_size`` differs from the stored size): PIL ``Image.resize`` with
``Image.BICUBIC``; Pillow widens the kernel when it shrinks, so down-sampling is antialiased.
CelebA (``celeb_a``): a 108x108 center crop of the 218x178 aligned image (rows 55..162,
columns 35..142; the DCGAN-tensorflow / WGAN-GP convention), then BICUBIC resize to
``image_size`` (default 64x64). ``center_crop`` overrides the crop side for any source
(0 turns the CelebA crop off). Non-square images resized to a square ``image_size`` without a
``center_crop`` are first cropped to their centre min(H, W) square, as BigGAN-PyTorch does for
ImageNet (utils.py: ``CenterCropLongEdge`` then ``transforms.Resize``), so they are never squashed.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pathlib
import re
import zipfile
import zlib
from typing import Any, Sequence

from absl import logging
import numpy as np

from ganzoo.data import synthetic

IDX_NAMES = ('mnist', 'fashion_mnist')
DEBIAN_DIRS = {'fashion_mnist': '/usr/share/datasets/fashion-mnist'}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp')
CELEBA_CROP = 108
CELEBA_SIZE = 64
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}
_KNOWN_CLASSES = {'mnist': 10, 'fashion_mnist': 10}


class DatasetNotFoundError(ValueError):
  """A data set is not on this machine; the message is one line saying how to get it."""


# ----------------------------------------------------------------------------- image transforms


def parse_image_size(image_size: Any) -> tuple[int, int] | None:
  """None -> None; int s -> (s, s); (h, w) -> (h, w)."""
  if image_size is None:
    return None
  if isinstance(image_size, (int, np.integer)):
    size = (int(image_size), int(image_size))
  else:
    size = tuple(int(s) for s in image_size)
  if len(size) != 2 or min(size) <= 0:
    raise ValueError(f'data.image_size must be a positive int or (height, width), got {image_size!r}.')
  return size


def center_crop_square(image: np.ndarray, side: int | None = None) -> np.ndarray:
  """The centred ``side`` x ``side`` window of ``image`` [H, W, ...] (side capped at min(H, W)).

  ``side=None`` is BigGAN-PyTorch's ``CenterCropLongEdge`` (utils.py): the centre min(H, W)
  square, i.e. the long edge cropped to the short one. The offset is
  ``int(round((H - side) / 2))`` as in ``torchvision.transforms.functional.center_crop``, which
  ``CenterCropLongEdge`` calls, so odd margins match the reference pixel for pixel.
  """
  h, w = image.shape[:2]
  c = min(h, w) if side is None else min(int(side), h, w)
  top, left = int(round((h - c) / 2)), int(round((w - c) / 2))
  return image[top:top + c, left:left + c]


def transform_image(image: np.ndarray, size: tuple[int, int] | None = None,
                    center_crop: int | None = None) -> np.ndarray:
  """Center crop, then PIL BICUBIC resize to ``size``.

  The crop is ``center_crop`` squared when given; otherwise, when a non-square image is resized
  to a square ``size``, the centre min(H, W) square (BigGAN-PyTorch ``CenterCropLongEdge``), so
  the aspect ratio is kept instead of squashed. A non-square ``size`` resizes the whole image.
  ``image`` is uint8 [H, W, C]; returns uint8 [h, w, C] with the same C.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if image.ndim != 3:
    raise ValueError(f'expected an image [H, W, C], got shape {image.shape}.')
  if center_crop:
    image = center_crop_square(image, center_crop)
  elif size is not None and size[0] == size[1] and image.shape[0] != image.shape[1]:
    image = center_crop_square(image)
  if size is None or tuple(image.shape[:2]) == tuple(size):
    return np.ascontiguousarray(image)
  wh = (size[1], size[0])  # PIL takes (width, height)
  if image.shape[2] == 3:
    out = np.asarray(Image.fromarray(image, 'RGB').resize(wh, Image.BICUBIC))
  else:
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., i]), 'L')
                               .resize(wh, Image.BICUBIC)) for i in range(image.shape[2])], -1)
  return out.astype(np.uint8)


def _transform_all(images: np.ndarray, size, center_crop) -> np.ndarray:
  if size is None and not center_crop:
    return images
  if len(images) == 0:
    return images
  return np.stack([transform_image(im, size, center_crop) for im in images])


# ----------------------------------------------------------------------------- sources


class ArraySource:
  """An in-memory source over uint8 images [N, H, W, C] and optional labels [N]."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None = None,
               num_classes: int | None = None, name: str = 'array'):
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise ValueError(f'{name}: images must be uint8, got {images.dtype}.')
    if images.ndim == 3:
      images = images[..., None]
    if images.ndim != 4:
      raise ValueError(f'{name}: images must be [N, H, W, C] or [N, H, W], got {images.shape}.')
    if labels is not None:
      labels = np.asarray(labels).astype(np.int32).reshape(-1)
      if labels.shape[0] != images.shape[0]:
        raise ValueError(f'{name}: {images.shape[0]} images but {labels.shape[0]} labels.')
      if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    self.name = name
    self.images = images
    self.labels = labels
    self.num_classes = num_classes if labels is not None else None
    self.image_shape = tuple(images.shape[1:])
    self.num_examples = int(images.shape[0])

  @property
  def has_labels(self) -> bool:
    return self.labels is not None

  def get(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    out = {'image': self.images[indices]}
    if self.labels is not None:
      out['label'] = self.labels[indices]
    return out


class LazySource:
  """A source that decodes one example at a time (tfds, image folders)."""

  name: str
  image_shape: tuple[int, ...]
  num_examples: int
  num_classes: int | None
  has_labels: bool

  def _read(self, i: int) -> tuple[np.ndarray, int | None]:
    """Example i as (uint8 image, label or None); TfdsSource and FolderSource implement it."""
    raise NotImplementedError(f"{type(self).__name__} must implement _read")

  def get(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    images = np.empty((len(indices),) + tuple(self.image_shape), np.uint8)
    labels = np.empty((len(indices),), np.int32)
    for j, i in enumerate(indices):
      if not 0 <= i < self.num_examples:
        raise IndexError(f'{self.name}: index {i} out of range [0, {self.num_examples}).')
      image, label = self._read(int(i))
      if image.shape != tuple(self.image_shape):
        raise ValueError(f'{self.name}: example {i} has shape {image.shape}, expected '
                         f'{self.image_shape}; set data.image_size to resize all images.')
      images[j] = image
      if self.has_labels:
        labels[j] = label
    out = {'image': images}
    if self.has_labels:
      out['label'] = labels
    return out


class TfdsSource(LazySource):
  """Reads a prepared tfds data set: ``tfds.data_source`` (ArrayRecord) or ganzoo's TFRecord reader
  (``ganzoo.data.tfrecord``); neither needs TensorFlow."""

  def __init__(self, ds: Any, name: str, size=None, center_crop=None,
               max_examples: int | None = None, num_classes: int | None = None):
    self.name = name
    self._ds = ds
    self._size = size
    self._crop = center_crop
    features = ds.dataset_info.features
    keys = list(features.keys())
    self._image_key = 'image' if 'image' in keys else next(
        (k for k in keys if type(features[k]).__name__ == 'Image'), None)
    if self._image_key is None:
      raise ValueError(f'tfds data set {name!r} has no image feature (features: {keys}).')
    label = features['label'] if 'label' in keys else None
    self.has_labels = label is not None and hasattr(label, 'num_classes')
    self.num_classes = (num_classes or label.num_classes) if self.has_labels else None
    self.num_examples = len(ds) if max_examples is None else min(len(ds), int(max_examples))
    stored = tuple(features[self._image_key].shape)
    if any(s is None for s in stored) or center_crop:
      stored = self._read(0)[0].shape if self.num_examples else stored
    elif size is not None:
      stored = tuple(size) + (stored[2],)
    self.image_shape = tuple(int(s) for s in stored)

  def _read(self, i: int) -> tuple[np.ndarray, int | None]:
    ex = self._ds[i]
    image = np.asarray(ex[self._image_key], np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    image = transform_image(image, self._size, self._crop)
    label = int(ex['label']) if self.has_labels else None
    return image, label


class FolderSource(LazySource):
  """PNG/JPEG files under a folder; class subfolders (sorted names -> ids 0..K-1) give labels.

  Files are taken in sorted relative-path order. The channel count follows the first image:
  grey ('L', 'LA', 'I', '1') images give C = 1, anything else is converted to RGB (C = 3).
  """

  def __init__(self, path: str, size=None, center_crop=None, max_examples: int | None = None,
               num_classes: int | None = None):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    root = pathlib.Path(path).expanduser()
    self.name = f'folder {root}'
    if not root.is_dir():
      raise DatasetNotFoundError(f'image folder {root} not found: set data.path to a folder of '
                                 f'PNG/JPEG files (optionally in class subfolders).')
    is_img = lambda p: p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    top = sorted(p for p in root.iterdir() if is_img(p))
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    class_files = {d.name: sorted(p for p in d.rglob('*') if is_img(p)) for d in subdirs}
    class_files = {k: v for k, v in class_files.items() if v}
    if class_files and top:
      raise ValueError(f'{root} has images both at top level and in class subfolders; '
                       'move the top-level images into a subfolder.')
    if class_files:
      self.class_names = sorted(class_files)
      files, labels = [], []
      for cid, cname in enumerate(self.class_names):
        files += class_files[cname]
        labels += [cid] * len(class_files[cname])
      self.has_labels = True
      self.num_classes = num_classes or len(self.class_names)
    else:
      self.class_names = []
      files, labels = top, [0] * len(top)
      self.has_labels = False
      self.num_classes = None
    if not files:
      raise DatasetNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) found in {root}: '
                                 'set data.path to a folder of images.')
    if max_examples is not None:
      files, labels = files[:int(max_examples)], labels[:int(max_examples)]
    self.files = files
    self.labels = np.asarray(labels, np.int32)
    self.num_examples = len(files)
    self._size = size
    self._crop = center_crop
    try:
      with Image.open(files[0]) as im:
        self._mode = 'L' if im.mode in ('L', 'LA', 'I', 'I;16', '1', 'F') else 'RGB'
    except Exception as e:  # pylint: disable=broad-except
      raise _bad_image(files[0], e) from None
    self.image_shape = self._read(0)[0].shape

  def _read(self, i: int) -> tuple[np.ndarray, int | None]:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
      with Image.open(self.files[i]) as im:
        image = np.asarray(im.convert(self._mode), np.uint8)
    except Exception as e:  # pylint: disable=broad-except
      # PIL raises UnidentifiedImageError (not an image), OSError (truncated) or even SyntaxError
      # (a broken PNG chunk); any of them is a bad file, not a bug.
      raise _bad_image(self.files[i], e) from None
    if image.ndim == 2:
      image = image[..., None]
    image = transform_image(image, self._size, self._crop)
    return image, int(self.labels[i])


def _bad_image(path, exc: BaseException) -> ValueError:
  return ValueError(f'{path} is not a readable image ({type(exc).__name__}: {_first_line(exc, 100)}): '
                    'delete or replace it (or re-save it as PNG/JPEG)')


class SyntheticSource:
  """The infinite 2-D mixtures of ``ganzoo.data.synthetic`` (float32 [N, 2], no scaling)."""

  def __init__(self, name: str):
    self.name = name
    self.modes = synthetic.modes(name)
    self.image_shape = (2,)
    self.num_classes = int(self.modes.centers.shape[0])
    self.num_examples = None  # infinite
    self.has_labels = True

  def global_batch(self, seed: int, k: int, batch_size: int) -> dict[str, np.ndarray]:
    x, y = synthetic.global_batch(self.name, seed, k, batch_size)
    return {'image': x, 'label': y}


# ----------------------------------------------------------------------------- IDX files


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (gzip detected from its first bytes): magic 0x0000TTDD, DD big-endian dims."""
  with open(path, 'rb') as f:
    gz = f.read(2) == b'\x1f\x8b'
  try:
    with (gzip.open(path, 'rb') if gz else open(path, 'rb')) as f:
      data = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a cut-off download
    raise ValueError(f'{path} is not a readable gzip file ({_first_line(e, 80)}); re-download it.') from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise ValueError(f'{path} is not an IDX file (bad magic number); re-download it.')
  ndim = data[3]
  dims = tuple(int(d) for d in np.frombuffer(data, '>u4', count=ndim, offset=4))
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  count = int(np.prod(dims)) if dims else 1
  offset = 4 + 4 * ndim
  if len(data) - offset < count * dtype.itemsize:
    raise ValueError(f'{path} is truncated: header says {dims} but the file is shorter; re-download it.')
  return np.frombuffer(data, dtype, count=count, offset=offset).reshape(dims).astype(dtype.newbyteorder('='))


def _idx_prefix(split: str) -> str:
  base = split.split('[')[0]
  if base == 'train':
    return 'train'
  if base in ('test', 't10k'):
    return 't10k'
  raise ValueError(f"IDX data sets have splits 'train' and 'test', got {split!r}.")


def idx_split_slice(split: str, n: int) -> slice:
  """The examples of an IDX split string's tfds-style slice: 'train' -> all, 'train[:50%]',
  'train[30000:]', 'test[-10%:]'. Percent bounds round to the closest example as tfds does
  (``tfds.core.ReadInstruction`` rounding 'closest'); CoGAN's two domains are the two halves."""
  if '[' not in split:
    return slice(0, n)
  body = split[split.index('[') + 1:]
  if not body.endswith(']') or body.count(':') != 1:
    raise ValueError(f"cannot read the slice of split {split!r}: write it as tfds does, e.g. 'train[:50%]' "
                     "or 'train[30000:]'.")

  def bound(text: str, default: int) -> int:
    text = text.strip()
    if not text:
      return default
    try:
      value = round(n * float(text[:-1]) / 100) if text.endswith('%') else int(text)
    except ValueError:
      raise ValueError(f"split {split!r}: bound {text!r} is not an int or a percentage like 50%.") from None
    return max(0, min(n, value + n if value < 0 else value))

  lo, hi = body[:-1].split(':')
  return slice(bound(lo, 0), bound(hi, n))


def _idx_files(folder: pathlib.Path, prefix: str) -> tuple[pathlib.Path, pathlib.Path | None] | None:
  for sep in ('-', '.'):
    for ext in ('.gz', ''):
      img = folder / f'{prefix}-images{sep}idx3-ubyte{ext}'
      if img.is_file():
        labels = [folder / f'{prefix}-labels{sep}idx1-ubyte{e}' for e in ('.gz', '')]
        return img, next((p for p in labels if p.is_file()), None)
  return None


def idx_search_dirs(name: str, data_dir: str | None = None) -> list[pathlib.Path]:
  """Folders searched for IDX files, in order: data_dir (and data_dir/<name>), $GANZOO_DATA_DIR/<name>,
  ~/.cache/ganzoo/<name>, and the Debian package folder for fashion_mnist."""
  dirs = []
  if data_dir:
    dirs += [pathlib.Path(data_dir).expanduser(), pathlib.Path(data_dir).expanduser() / name]
  if os.environ.get('GANZOO_DATA_DIR'):
    dirs.append(pathlib.Path(os.environ['GANZOO_DATA_DIR']).expanduser() / name)
  dirs.append(pathlib.Path('~/.cache/ganzoo').expanduser() / name)
  if name in DEBIAN_DIRS:
    dirs.append(pathlib.Path(DEBIAN_DIRS[name]))
  return dirs


def find_idx(name: str, split: str, data_dir: str | None = None):
  """Returns (images_path, labels_path or None) of the first folder that has the split, or None."""
  prefix = _idx_prefix(split)
  for d in idx_search_dirs(name, data_dir):
    found = _idx_files(d, prefix)
    if found is not None:
      return found
  return None


def load_idx(images_path, labels_path=None, name='idx', size=None, center_crop=None,
             max_examples=None, num_classes=None, split: str = 'train') -> ArraySource:
  """Reads IDX image (magic 2051, [N, H, W]) and label (magic 2049, [N]) files into memory; keeps
  the examples of `split`'s slice (``idx_split_slice``), then the first `max_examples`."""
  images = read_idx(images_path)
  if images.dtype != np.uint8 or images.ndim not in (3, 4):
    raise ValueError(f'{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}.')
  labels = read_idx(labels_path) if labels_path is not None else None
  part = idx_split_slice(split, len(images))
  images = images[part]
  labels = labels[part] if labels is not None else None
  if max_examples is not None:
    images = images[:int(max_examples)]
    labels = labels[:int(max_examples)] if labels is not None else None
  if images.ndim == 3:
    images = images[..., None]
  images = _transform_all(images, size, center_crop)
  return ArraySource(images, labels, num_classes or _KNOWN_CLASSES.get(name), name=name)


# ----------------------------------------------------------------------------- npz


def load_npz(path: str, size=None, center_crop=None, max_examples=None,
             num_classes=None) -> ArraySource:
  """An .npz with key 'images' (uint8 [N, H, W, C] or [N, H, W]) and optional 'labels' [N]."""
  if not path:
    raise ValueError("data.name='npz' needs data.path set to an .npz file.")
  p = pathlib.Path(path).expanduser()
  if not p.is_file():
    raise DatasetNotFoundError(f"npz file {p} not found: set data.path to an .npz with key 'images' "
                               "(uint8 NHWC or NHW) and optional 'labels'.")
  save = "save it with np.savez(path, images=uint8 [N, H, W, C], labels=int [N])"
  with open(p, 'rb') as f:
    magic = f.read(6)
  if not (magic.startswith(b'PK') or magic == b'\x93NUMPY'):
    raise ValueError(f'{p} is not an .npz file (no zip header): {save}.')
  try:
    z = np.load(p)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f'{p} is not a readable .npz ({_first_line(e, 80)}): {save}.') from None
  if not isinstance(z, np.lib.npyio.NpzFile):
    raise ValueError(f'{p} holds one array {getattr(z, "shape", "")}, not an .npz of named arrays: {save}.')
  try:
    with z:
      if 'images' not in z:
        raise ValueError(f"{p} has no key 'images' (keys: {sorted(z.keys())}): {save}.")
      images = z['images']
      labels = z['labels'] if 'labels' in z else None
  except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise ValueError(f'{p} is not a readable .npz ({_first_line(e, 80)}): {save}.') from None
  except ValueError as e:
    if 'images' in str(e) and str(p) in str(e):
      raise
    raise ValueError(f'{p} cannot be read without pickle ({_first_line(e, 80)}): {save}.') from None
  if images.ndim not in (3, 4) or 0 in images.shape[1:]:
    raise ValueError(f"{p}: 'images' has shape {images.shape}, not [N, H, W, C] or [N, H, W]: "
                     "reshape it (e.g. x.reshape(-1, 28, 28, 1)) before saving.")
  if labels is not None and (labels.ndim == 0 or labels.size != labels.shape[0] or labels.shape[0] != images.shape[0]):
    raise ValueError(f"{p}: 'labels' has shape {labels.shape} for {len(images)} images: save one integer "
                     "class per image, labels=int [N].")
  if labels is not None and labels.size and (not np.issubdtype(labels.dtype, np.number) or labels.min() < 0):
    raise ValueError(f"{p}: 'labels' must be class ids >= 0, got {labels.dtype} labels "
                     f"(minimum {labels.min()}): save labels=np.int32 ids 0..K-1.")
  if max_examples is not None:
    images = images[:int(max_examples)]
    labels = labels[:int(max_examples)] if labels is not None else None
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8:
    raise ValueError(f"{p}: 'images' must be uint8, got {images.dtype}; convert with np.uint8 before saving.")
  images = _transform_all(images, size, center_crop)
  return ArraySource(images, labels, num_classes, name=f'npz {p}')


# ----------------------------------------------------------------------------- tfds


def _first_line(exc: BaseException, limit: int = 160) -> str:
  text = str(exc).strip().splitlines()
  line = text[0] if text else type(exc).__name__
  return line if len(line) <= limit else line[:limit] + '...'


def _missing_message(name: str, reason: str = '') -> str:
  tail = f' (tfds: {reason})' if reason else ''
  if name == 'fashion_mnist':
    msg = ('fashion_mnist not found: `apt-get install dataset-fashion-mnist` (Debian), or set '
           'GANZOO_DATA_DIR to a folder with fashion_mnist/train-images-idx3-ubyte.gz, or prepare '
           "the tfds dataset 'fashion_mnist' in TFDS_DATA_DIR")
  elif name in IDX_NAMES:
    msg = (f'{name} not found: set GANZOO_DATA_DIR to a folder with {name}/train-images-idx3-ubyte.gz '
           f'(or put the IDX files in ~/.cache/ganzoo/{name} or data.data_dir), or prepare the tfds '
           f"dataset '{name}' in TFDS_DATA_DIR")
  else:
    msg = (f"{name} not found: prepare the tfds dataset '{name}' in TFDS_DATA_DIR or data.data_dir "
           f'(`tfds build {name}` on a machine with internet, then copy the {name} folder; TFRecord '
           'and ArrayRecord copies both load)')
  return (msg + tail).replace('\n', ' ')


def _open_tfds_tfrecord(tfds, name: str, split: str, data_dir: str | None):
  """``tfrecord.TfRecordDataSource`` of a TFRecord-prepared ``name``, or None when there is none."""
  from ganzoo.data import tfrecord  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception:  # pylint: disable=broad-except
    return None  # no builder or no prepared copy: the caller reports data_source's reason
  if not prepared:
    return None
  try:
    ds = tfrecord.open_tfrecord(builder, split)  # reads no shard yet: a ValueError is the split's
  except (KeyError, ValueError) as e:
    raise ValueError(f"{name}: cannot read split {split!r} ({_first_line(e, 120)}): set data.split to a "
                     f"split of this data set or a slice of one, e.g. 'train[:90%]'.") from None
  if ds is not None:
    logging.info('%s: reading the TFRecord copy in %s with ganzoo\'s reader (offset index built on the '
                 'first read of each shard; `tfds build %s --file_format=array_record` gives a copy '
                 'tfds.data_source reads)', name, builder.data_dir, name.split(':')[0])
  return ds


# Preparing (data.download): a data set that is not on this machine is downloaded and prepared by
# tfds itself (``builder.download_and_prepare``, its tqdm bars on stderr: download, extraction,
# example generation), always as ArrayRecord: tfds writes that format without TensorFlow and
# ``tfds.data_source`` reads it (its TFRecord writer imports TensorFlow). tfds still needs TensorFlow
# to extract archives (``tf.io.gfile``: cifar10's tar.gz, celeb_a's zip) and to PNG-encode images a
# builder yields as arrays (``tf.image``: mnist, cifar10), so most standard sets need it; a builder
# that does neither (encoded bytes, no archive) prepares without. Every failure is one line.
PREPARE_FORMAT = 'array_record'
_TF_INSTALL = "pip install tensorflow-cpu (or pip install 'ganzoo[tf]')"
_PROXY_VARS = ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy')


def _one_line(text: str, limit: int = 300) -> str:
  text = ' '.join(str(text).split())
  return text if len(text) <= limit else text[:limit] + '...'


def _chain(exc: BaseException):
  """exc, its cause, the cause's cause, ... (tfds re-raises errors of a split with a prefix)."""
  seen = []
  while exc is not None and exc not in seen:
    seen.append(exc)
    exc = exc.__cause__ or exc.__context__
  return seen


def _needs_tensorflow(exc: BaseException) -> bool:
  return any(isinstance(e, ImportError) and (getattr(e, 'name', None) == 'tensorflow' or
                                             "No module named 'tensorflow'" in str(e)) for e in _chain(exc))


def _network_error(exc: BaseException) -> BaseException | None:
  """The error in exc's chain that says a host could not be reached, or None."""
  import socket  # pylint: disable=g-import-not-at-top
  import urllib.error  # pylint: disable=g-import-not-at-top
  kinds: tuple[type, ...] = (socket.gaierror, socket.timeout, ConnectionError, urllib.error.URLError)
  try:
    import requests  # pylint: disable=g-import-not-at-top
    kinds += (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
  except ImportError:
    pass
  return next((e for e in _chain(exc) if isinstance(e, kinds)), None)


def _download_hosts(builder) -> list[str]:
  """The hosts of the builder's registered download URLs (its checksums file), sorted."""
  import urllib.parse  # pylint: disable=g-import-not-at-top
  try:
    urls = type(builder).url_infos or {}
  except Exception:  # pylint: disable=broad-except
    urls = {}
  return sorted({urllib.parse.urlparse(u).hostname for u in urls} - {None})


def unreachable_host(builder) -> str | None:
  """The first download host of ``builder`` whose name does not resolve (no network, no DNS), or
  None. Resolving takes milliseconds where tfds' downloader retries a dead connection 10 times
  (minutes); behind a proxy ($HTTPS_PROXY, ...) names need not resolve here, so nothing is checked."""
  import socket  # pylint: disable=g-import-not-at-top
  if any(os.environ.get(v) for v in _PROXY_VARS):
    return None
  for host in _download_hosts(builder):
    try:
      socket.getaddrinfo(host, 443)
    except OSError:
      return host
  return None


def _copy_hint(base: str, root, where: str = 'internet') -> str:
  return (f'prepare it on a machine with {where} (`tfds build {base} --file_format={PREPARE_FORMAT}`) and '
          f'copy its {base} folder into {root} (TFDS_DATA_DIR or data.data_dir)')


def _offline_message(name: str, base: str, root, host: str, reason: str) -> str:
  return (f'{name} is not prepared and cannot be downloaded: this machine cannot reach {host} ({reason}); '
          f'{_copy_hint(base, root)}, or set HTTPS_PROXY to a proxy that reaches it.')


def _tensorflow_message(name: str, base: str, root) -> str:
  return (f'preparing {name} needs TensorFlow (tfds extracts archives and encodes images with it; the '
          f'downloaded files in {root}/downloads are kept): {_TF_INSTALL} and rerun, or {_copy_hint(base, root, "TensorFlow")}.')


def _manual_message(name: str, base: str, builder, reason: str = '') -> str:
  manual = pathlib.Path(str(builder.data_dir_root)) / 'downloads' / 'manual'
  expects = _one_line(builder.MANUAL_DOWNLOAD_INSTRUCTIONS or '')
  # tfds' own "Manual directory ... does not exist or is empty" says what this line says already.
  tail = f' (tfds: {_one_line(reason, 160)})' if reason and not reason.startswith('Manual directory') else ''
  return (f'{name} needs a manual download: put the files tfds expects ({expects}) in {manual} and rerun, or '
          f'run `tfds build {base} --manual_dir=DIR --file_format={PREPARE_FORMAT}` and copy its {base} '
          f'folder into {builder.data_dir_root} (TFDS_DATA_DIR or data.data_dir){tail}')


def _prepared_meanwhile(tfds, name: str, data_dir: str | None) -> bool:
  try:
    return tfds.builder(name, data_dir=data_dir).is_prepared()
  except Exception:  # pylint: disable=broad-except
    return False


def prepare_tfds(tfds, name: str, data_dir: str | None = None) -> None:
  """Downloads and prepares tfds data set ``name`` (ArrayRecord) into ``data_dir`` (None: $TFDS_DATA_DIR
  or ~/tensorflow_datasets) unless a copy in either format is there; tfds shows its progress bars.

  Raises DatasetNotFoundError with one line: the machine cannot reach the download host (checked by
  name first, ``unreachable_host``), the data set needs files downloaded by hand (the builder's
  MANUAL_DOWNLOAD_INSTRUCTIONS and manual_dir), preparing needs TensorFlow, or another failure.
  A builder tfds cannot make returns quietly: the reader then reports why the data set is missing.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
      return
  except Exception:  # pylint: disable=broad-except
    return
  base = name.split(':')[0]
  root = builder.data_dir_root
  manual = bool(builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
  host = None if manual else unreachable_host(builder)
  if host is not None:
    raise DatasetNotFoundError(_offline_message(name, base, root, host, 'its name does not resolve'))
  logging.warning('%s is not in %s: %s it (%s; --config.data.download=False never does)%s', name, root,
                  'preparing the manually downloaded files of' if manual else 'downloading and preparing',
                  PREPARE_FORMAT, '' if importlib.util.find_spec('tensorflow') else
                  f'; TensorFlow is not installed, which most tfds builders need to prepare: {_TF_INSTALL}')
  try:
    builder.download_and_prepare(file_format=PREPARE_FORMAT)
  except Exception as e:  # pylint: disable=broad-except
    if _prepared_meanwhile(tfds, name, data_dir):
      return   # another run writing the same folder renamed its copy into place first (FileExistsError)
    if _needs_tensorflow(e):
      raise DatasetNotFoundError(_tensorflow_message(name, base, root)) from None
    net = _network_error(e)
    if net is not None:
      hosts = re.findall(r"host='([^']+)'", str(net)) or _download_hosts(builder) or ['the download host']
      raise DatasetNotFoundError(_offline_message(name, base, root, hosts[0], _first_line(net, 120))) from None
    if manual:
      raise DatasetNotFoundError(_manual_message(name, base, builder, _first_line(e))) from None
    raise DatasetNotFoundError(f'preparing {name} in {root} failed ({type(e).__name__}: {_first_line(e, 200)}); '
                               f'fix that and rerun, or {_copy_hint(base, root)}.') from None


def _processes() -> tuple[int, int]:
  """(process index, count) of a multi-process JAX run, (0, 1) otherwise (no JAX backend started)."""
  import jax  # pylint: disable=g-import-not-at-top
  if not jax.distributed.is_initialized():
    return 0, 1
  return jax.process_index(), jax.process_count()


def prepare_in_turn(tfds, name: str, data_dir: str | None = None, needed: bool = True, processes=None,
                    barrier=None) -> None:
  """``prepare_tfds`` (where ``needed``: this process found no copy) on process 0 first, then on the
  others after a barrier that every process reaches once (also where nothing is missing, and when
  process 0 failed: no process waits forever).

  A shared ``data_dir`` (NFS, a bucket) is then downloaded and written once, by process 0, and the
  others find it prepared; with host-local folders (~/tensorflow_datasets on each host) each other
  host prepares its own copy after process 0. ``processes``/``barrier`` default to JAX's
  (``_processes``, ``ganzoo.parallel.barrier``); tests pass their own.
  """
  index, count = (processes or _processes)()
  if count > 1 and barrier is None:
    from ganzoo import parallel  # pylint: disable=g-import-not-at-top
    barrier = parallel.barrier
  tag = f'ganzoo_tfds_prepare_{name}'
  if count > 1 and index > 0:
    barrier(tag)
  error = None
  try:
    if needed:
      prepare_tfds(tfds, name, data_dir)
  except DatasetNotFoundError as e:
    error = e
  if count > 1 and index == 0:
    barrier(tag)
  if error is not None:
    raise error


def _open_tfds_copy(tfds, name: str, split: str, data_dir: str | None):
  """(source, None) for a prepared copy of ``name``, (None, data_source's error) where there is none."""
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False), None
  except Exception as e:  # pylint: disable=broad-except
    # data_source reads ArrayRecord (or Parquet) only; a TFRecord copy is read by ganzoo's reader.
    ds = _open_tfds_tfrecord(tfds, name, split, data_dir)
    return ds, (None if ds is not None else e)


def open_tfds(name: str, split: str = 'train', data_dir: str | None = None, size=None,
              center_crop=None, max_examples=None, num_classes=None, download: bool = False) -> TfdsSource:
  """Opens ``tfds.data_source(name, split=split, data_dir=data_dir, download=False)`` for an
  ArrayRecord (or Parquet) copy, else ``ganzoo.data.tfrecord.TfRecordDataSource`` for a TFRecord
  copy (what ``tfds build`` writes by default): same examples in the same order (that module's
  docstring says why). ``download``: a data set with no copy in ``data_dir`` is first downloaded and
  prepared there (``prepare_in_turn``: process 0 first in a multi-process run).
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DatasetNotFoundError(_missing_message(name, f'cannot import tensorflow_datasets: {e}; '
                                                'pip install tensorflow-datasets')) from None
  base = name.split(':')[0].split('/')[0]
  if base not in tfds.list_builders(with_community_datasets=False):
    raise DatasetNotFoundError(
        f"unknown data set {name!r}: use a tfds name (cifar10, mnist, celeb_a, ...), 'npz' or "
        f"'folder' with data.path, or one of {synthetic.NAMES}.")
  ds, error = _open_tfds_copy(tfds, name, split, data_dir)
  if download:   # every process of a multi-process run takes part, found or not (the barrier)
    prepare_in_turn(tfds, name, data_dir, needed=ds is None)
    if ds is None:
      ds, error = _open_tfds_copy(tfds, name, split, data_dir)
  if ds is None:
    raise DatasetNotFoundError(_missing_message(name, _first_line(error))) from None
  if base == 'celeb_a':
    center_crop = CELEBA_CROP if center_crop is None else center_crop
    size = size or (CELEBA_SIZE, CELEBA_SIZE)
  return TfdsSource(ds, name, size=size, center_crop=center_crop, max_examples=max_examples,
                    num_classes=num_classes)


# ----------------------------------------------------------------------------- known shapes

# The stored image shape (H, W, C) and class count of standard data sets, from their tfds feature
# specs (tfds catalog: `features['image'].shape`, `features['label'].num_classes`; None classes =
# no 'label' feature, H = W = None = images of varying size, which need data.image_size). With them a
# model is built without the data (train.num_steps=0 logs parameter counts; sampling a run).
KNOWN_DATASETS: dict[str, tuple[int | None, int | None, int, int | None]] = {
    'mnist': (28, 28, 1, 10),
    'fashion_mnist': (28, 28, 1, 10),
    'kmnist': (28, 28, 1, 10),
    'cifar10': (32, 32, 3, 10),
    'cifar100': (32, 32, 3, 100),        # 'label' (100 fine classes), not 'coarse_label'
    'svhn_cropped': (32, 32, 3, 10),
    'stl10': (96, 96, 3, 10),
    'celeb_a': (218, 178, 3, None),      # aligned faces; attributes are not class labels
    'celeba': (218, 178, 3, 5),          # ganzoo.data.celeba: StarGAN's 5 attributes as labels [N, 5]
    'imagenet_resized/32x32': (32, 32, 3, 1000),
    'imagenet_resized/64x64': (64, 64, 3, 1000),
    'imagenet2012': (None, None, 3, 1000),
    'lsun/bedroom': (None, None, 3, None),
}


def known_shape(name: str, image_size=None, center_crop=None,
                num_classes: int | None = None) -> tuple[tuple[int, int, int], int | None] | None:
  """(image_shape, num_classes) that ``open_source`` would give for a standard data set with these
  settings, computed from ``KNOWN_DATASETS`` without the data; None for another name.

  Mirrors the pipeline: celeb_a's default 108 crop and 64x64 size (``open_tfds``); a crop of side
  min(center_crop, H, W), then ``image_size`` when set; a class override applies to labelled sets.
  """
  base = name.split(':')[0]
  if base not in KNOWN_DATASETS:
    return None
  h, w, c, classes = KNOWN_DATASETS[base]
  size = parse_image_size(image_size)
  if base == 'celeb_a':
    center_crop = CELEBA_CROP if center_crop is None else center_crop
    size = size or (CELEBA_SIZE, CELEBA_SIZE)
  if size is not None:
    shape = (size[0], size[1], c)
  elif center_crop and h is not None:
    side = min(int(center_crop), h, w)
    shape = (side, side, c)
  elif h is not None:
    shape = (h, w, c)
  else:
    raise ValueError(f'{name} has images of varying size: set data.image_size (e.g. 64) to build the model '
                     'without the data.')
  return shape, ((num_classes or classes) if classes is not None else None)


class ShapeOnlySource:
  """A standard data set that is not on this machine, by its known shape (``known_shape``): enough
  to build a model; reading an example raises the DatasetNotFoundError that says how to get it."""

  def __init__(self, name: str, image_shape, num_classes: int | None, missing: str):
    self.name = name
    self.image_shape = tuple(int(s) for s in image_shape)
    self.num_classes = num_classes
    self.has_labels = num_classes is not None
    self.num_examples = None  # unknown: no batch-size check against it
    self.missing = missing

  def get(self, indices) -> dict[str, np.ndarray]:
    raise DatasetNotFoundError(self.missing)


# ----------------------------------------------------------------------------- name resolution

SOURCES = ('auto', 'idx', 'tfds', 'npz', 'folder', 'synthetic', 'celeba')


def open_source(name: str, split: str = 'train', source: str = 'auto', data_dir: str | None = None,
                path: str | None = None, image_size=None, center_crop: int | None = None,
                max_examples: int | None = None, num_classes: int | None = None,
                allow_absent: bool = False, attributes: str | None = None, download: bool = False):
  """Resolves (name, source) to a source object; see the ``ganzoo.data`` docstring for the rules.

  ``allow_absent``: a standard data set (``KNOWN_DATASETS``) that is not found gives a
  ``ShapeOnlySource`` instead of raising DatasetNotFoundError (and is not downloaded: nothing
  reads its examples). ``download``: a tfds data set that is not prepared is downloaded and
  prepared first (``open_tfds``; ``data.download`` of a run, True by default there).
  """
  if allow_absent and name.split(':')[0] in KNOWN_DATASETS:
    download = False
  try:
    return _open_source(name, split, source, data_dir, path, image_size, center_crop, max_examples, num_classes,
                        attributes, download)
  except DatasetNotFoundError as e:
    known = (known_shape(name, image_size, center_crop, num_classes)
             if allow_absent and (source or 'auto') in ('auto', 'idx', 'tfds') else None)
    if known is None:
      raise
    return ShapeOnlySource(name, known[0], known[1], str(e))


def split_folder(path: str, split: str | None) -> str:
  """The folder a 'folder' source reads: ``path/split`` when that is a folder (the split layouts:
  CycleGAN's trainA/ trainB/ testA/ testB/, pix2pix's train/ val/ test/), else ``path`` itself
  (a folder of images or of class subfolders; the split is then ignored, as before)."""
  if split and '[' not in split and (pathlib.Path(path).expanduser() / split).is_dir():
    return str(pathlib.Path(path) / split)
  return path


def _open_source(name, split, source, data_dir, path, image_size, center_crop, max_examples, num_classes,
                 attributes=None, download=False):
  source = source or 'auto'
  if source not in SOURCES:
    raise ValueError(f'data.source must be one of {SOURCES}, got {source!r}.')
  size = parse_image_size(image_size)
  if not name:
    raise ValueError(f"data.name is empty: set it to a tfds name, 'npz', 'folder' or one of {synthetic.NAMES}.")
  kw = dict(size=size, center_crop=center_crop, max_examples=max_examples, num_classes=num_classes)
  if source == 'synthetic' or (source == 'auto' and name in synthetic.NAMES):
    return SyntheticSource(name)
  if source == 'npz' or (source == 'auto' and name == 'npz'):
    return load_npz(path, **kw)
  if source == 'celeba' or (source == 'auto' and name == 'celeba'):   # CelebA + attributes (ganzoo.data.celeba)
    from ganzoo.data import celeba  # pylint: disable=g-import-not-at-top
    names = tuple(a.strip() for a in str(attributes or '').split(',') if a.strip())
    return celeba.CelebASource(path, split, names, size=size, center_crop=center_crop, max_examples=max_examples)
  if source == 'folder' or (source == 'auto' and name == 'folder'):
    if not path:
      raise ValueError("data.name='folder' needs data.path set to a folder of images.")
    return FolderSource(split_folder(path, split), **kw)
  if source == 'idx' or (source == 'auto' and name in IDX_NAMES):
    found = (_idx_files(pathlib.Path(path).expanduser(), _idx_prefix(split))
             if path and source == 'idx' else find_idx(name, split, data_dir))
    if found is not None:
      return load_idx(found[0], found[1], name=name, split=split, **kw)
    if source == 'idx':
      raise DatasetNotFoundError(_missing_message(name, '').split(', or prepare the tfds')[0] +
                                 f' (searched: {", ".join(map(str, idx_search_dirs(name, data_dir)))})')
  return open_tfds(name, split=split, data_dir=data_dir, download=download, **kw)
