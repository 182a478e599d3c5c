"""Decode once: a decoding source (image folder, tfds, CelebA) as uint8 arrays (``data.cache``).

``data.cache``:
  ''        off (default): every batch decodes its examples again.
  'memory'  decode every example once at start-up into uint8 [N, H, W, C] in memory (with
            ``data.workers`` processes when > 0); batches are then array slices.
  a folder  the same arrays as ``.npy`` files in ``<folder>/<key>/`` (images.npy, labels.npy,
            meta.json), memory-mapped when read: the first run decodes and writes them, later
            runs (and the other processes of a multi-host run, on a shared folder) decode nothing.

The key is ``<name>-<split>-<size>-<crop>-<sha1>``; the hash covers the fields that choose the
examples and their pixels (name, split, source, path, data_dir, image_size, center_crop,
max_examples, num_classes, attributes), the source's class, example count, image shape and
classes, and for an image folder its sorted file names. Images edited in place under the same
names are not seen: delete the key's folder. A cache is written under a temporary name and renamed
into place when complete, so a run killed while writing leaves no half cache (only a
``*.tmp-*`` folder, ignored and safe to delete); two processes writing at once keep the first.

Sources that are arrays already (IDX, .npz, synthetic) are returned as they are. The cached
source gives exactly the decoding source's examples: ``get(i)`` is the same uint8 pixels and
int32 labels.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import uuid
from typing import Any

import numpy as np

from ganzoo.data import sources as sources_lib
from ganzoo.data import workers as workers_lib

KEY_FIELDS = ('name', 'split', 'source', 'path', 'data_dir', 'image_size', 'center_crop', 'max_examples',
               'num_classes', 'attributes')


def check_cache(cache: Any) -> str:
  """``data.cache`` as a string: '' | 'memory' | a folder; one-line ValueError otherwise."""
  if cache is None:
    return ''
  if not isinstance(cache, str):
    raise ValueError(f"config.data.cache={cache!r} must be '' (off), 'memory' or a folder: "
                     "pass --config.data.cache=memory or --config.data.cache=/path/to/cache")
  if cache not in ('', 'memory') and pathlib.Path(cache).expanduser().exists() and not pathlib.Path(
      cache).expanduser().is_dir():
    raise ValueError(f"config.data.cache={cache!r} is a file, not a folder: pass a folder (created when "
                     "missing), 'memory' or ''")
  return cache


def is_decoding(source: Any) -> bool:
  """Whether ``source`` decodes per example (what caching and workers speed up)."""
  return isinstance(source, sources_lib.LazySource)


def cache_key(source: Any, fields: dict[str, Any]) -> str:
  """The cache folder name of ``source`` opened with the data config ``fields``."""
  desc = {k: fields.get(k) for k in KEY_FIELDS}
  if desc.get('path'):
    desc['path'] = str(pathlib.Path(desc['path']).expanduser().resolve())
  desc.update(kind=type(source).__name__, num_examples=int(source.num_examples),
              image_shape=list(source.image_shape), classes=source.num_classes, labelled=bool(source.has_labels))
  h = hashlib.sha1(json.dumps(desc, sort_keys=True, default=str).encode())
  files = getattr(source, 'files', None)
  if files is not None:
    root = pathlib.Path(desc.get('path') or '/')
    for f in files:
      h.update(os.fsencode(os.path.relpath(f, root)) + b'\0')
  size = 'x'.join(str(s) for s in source.image_shape[:2])
  slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', f"{fields.get('name')}-{fields.get('split')}-{size}-"
                f"{fields.get('center_crop') or 0}")
  return f'{slug}-{h.hexdigest()[:16]}'


def _meta(source: Any) -> dict[str, Any]:
  return {'num_examples': int(source.num_examples), 'image_shape': list(source.image_shape),
          'num_classes': source.num_classes, 'has_labels': bool(source.has_labels), 'name': source.name}


def _fill(source: Any, images: np.ndarray, labels: np.ndarray | None, workers: int) -> None:
  for lo, part in workers_lib.decode_all(source, workers):
    images[lo:lo + len(part['image'])] = part['image']
    if labels is not None:
      labels[lo:lo + len(part['label'])] = part['label']


def _label_shape(source: Any) -> tuple[int, ...]:
  probe = source.get(np.arange(min(1, source.num_examples)))
  return tuple(np.asarray(probe['label']).shape[1:]) if 'label' in probe else ()


def _array_source(source: Any, images: np.ndarray, labels: np.ndarray | None) -> sources_lib.ArraySource:
  out = sources_lib.ArraySource.__new__(sources_lib.ArraySource)
  # ArraySource's checks, without its copy of the (memory-mapped) arrays or a recount of classes.
  if images.dtype != np.uint8 or images.shape[1:] != tuple(source.image_shape):
    raise ValueError(f'{source.name}: cached images are {images.dtype} {images.shape}, expected uint8 '
                     f'[N, {", ".join(map(str, source.image_shape))}]; delete the cache folder.')
  out.name = source.name
  out.images = images
  out.labels = labels
  out.num_classes = source.num_classes
  out.image_shape = tuple(source.image_shape)
  out.num_examples = int(images.shape[0])
  return out


def in_memory(source: Any, workers: int = 0) -> sources_lib.ArraySource:
  """Every example of ``source`` decoded into uint8 arrays in memory."""
  n = int(source.num_examples)
  images = np.empty((n,) + tuple(source.image_shape), np.uint8)
  labels = np.empty((n,) + _label_shape(source), np.int32) if source.has_labels else None
  _fill(source, images, labels, workers)
  return _array_source(source, images, labels)


def on_disk(source: Any, folder: str, fields: dict[str, Any], workers: int = 0) -> sources_lib.ArraySource:
  """``source`` as memory-mapped uint8 arrays in ``folder/<cache_key>``, written first when absent."""
  root = pathlib.Path(folder).expanduser()
  final = root / cache_key(source, fields)
  if not (final / 'meta.json').is_file():
    try:
      root.mkdir(parents=True, exist_ok=True)
      tmp = root / f'{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
      tmp.mkdir()
    except OSError as e:
      raise ValueError(f'cannot write the data cache in {root} ({e.strerror or e}): set --config.data.cache '
                       "to a writable folder, or to 'memory'") from None
    try:
      n = int(source.num_examples)
      images = np.lib.format.open_memmap(tmp / 'images.npy', 'w+', np.uint8, (n,) + tuple(source.image_shape))
      labels = (np.lib.format.open_memmap(tmp / 'labels.npy', 'w+', np.int32, (n,) + _label_shape(source))
                if source.has_labels else None)
      _fill(source, images, labels, workers)
      images.flush()
      del images
      if labels is not None:
        labels.flush()
        del labels
      (tmp / 'meta.json').write_text(json.dumps(_meta(source), sort_keys=True))
      try:
        os.rename(tmp, final)
      except OSError:   # another process renamed its complete copy first: keep that one
        if not (final / 'meta.json').is_file():
          raise
    finally:
      if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
  meta = json.loads((final / 'meta.json').read_text())
  if meta['num_examples'] != int(source.num_examples) or meta['image_shape'] != list(source.image_shape):
    raise ValueError(f'{final} holds {meta["num_examples"]} images of {meta["image_shape"]}, not '
                     f'{source.num_examples} of {list(source.image_shape)}: delete that folder.')
  # Plain ndarray views of the mappings (slices of an np.memmap would be np.memmap objects).
  images = np.load(final / 'images.npy', mmap_mode='r').view(np.ndarray)
  labels = (np.load(final / 'labels.npy', mmap_mode='r').view(np.ndarray)
            if (final / 'labels.npy').is_file() else None)
  return _array_source(source, images, labels)


def cached(source: Any, cache: str, fields: dict[str, Any], workers: int = 0) -> Any:
  """``source`` decoded once per ``data.cache`` (see the module docstring); arrays pass through."""
  cache = check_cache(cache)
  if not cache or not is_decoding(source) or not source.num_examples:
    return source
  if cache == 'memory':
    return in_memory(source, workers)
  return on_disk(source, cache, fields, workers)
