"""Deterministic, resumable, per-process batches and a background prefetcher (numpy, host side)."""

from __future__ import annotations

import copy
import queue
import zlib
import threading
from typing import Any, Iterator, Mapping

import numpy as np

from ganzoo.data import cache as cache_lib
from ganzoo.data import sources as sources_lib
from ganzoo.data import workers as workers_lib


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 pixels -> float32 in [-1, 1]: ``x / 127.5 - 1`` (0 -> -1, 255 -> 1)."""
  return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def stream_permutation(seed: int, stream: str, epoch: int, n: int) -> np.ndarray:
  """The order of epoch ``epoch`` of stream ``stream``: ``default_rng([seed, crc32(stream), epoch])``."""
  return np.random.default_rng([int(seed), zlib.crc32(stream.encode()), int(epoch)]).permutation(n)


class Dataset:
  """Named streams of batches of one source, for one process of a (possibly multi-host) run.

  A stream is the infinite sequence of examples ``perm_0 ++ perm_1 ++ ...`` with
  ``perm_e = stream_permutation(seed, stream, e, N)``: no example is dropped at epoch ends, and the
  global batch of size B that starts at example ``offset`` is examples ``offset .. offset + B - 1``
  of it. The training loop advances each stream's offset by the examples its plan read, so a batch
  is a pure function of (seed, stream, offset), whatever batch sizes earlier plans used (ProGAN's
  stages); two streams of one source (different names) are independent orders. Process p of P
  reads the contiguous slice ``[p * B / P, (p + 1) * B / P)`` of each global batch, so the union
  over processes is the one-process batch. Synthetic 2-D sources draw the global batch at
  ``offset`` from their generator seeded by (seed, crc32(stream), offset). With ``workers`` > 0 a
  decoding source (image folder, tfds, CelebA) is read by grain worker processes running this
  class's own ``read`` (``ganzoo.data.workers``): the same batches; ``close()`` stops them.

  Attributes:
    image_shape: (H, W, C) of the batches ((2,) for synthetic 2-D data).
    num_classes: number of classes, or None when unlabelled.
    num_examples: examples per epoch (None for the infinite synthetic sources).
    has_labels: whether batches carry 'label'.
  """

  def __init__(self, source: Any, seed: int = 0, process_index: int = 0, process_count: int = 1,
               global_batch_size: int | None = None, name: str = '', workers: int = 0):
    if process_count < 1 or not 0 <= process_index < process_count:
      raise ValueError(f'process_index={process_index} must lie in [0, process_count={process_count}).')
    self.source = source
    self.seed = int(seed)
    self.process_index = int(process_index)
    self.process_count = int(process_count)
    self.global_batch_size = global_batch_size
    self.name = name or getattr(source, 'name', '')
    self.workers = workers_lib.check_workers(workers)
    self._perm: dict[tuple[str, int], np.ndarray] = {}
    self._readers: dict[str, Any] = {}   # stream -> workers.BatchReader (workers > 0, decoding sources)
    if global_batch_size is not None:
      self._check_batch(global_batch_size)

  def __getstate__(self) -> dict[str, Any]:   # a copy (a worker's) reads in its own process
    return {**self.__dict__, 'workers': 0, '_readers': {}, '_perm': {}}

  def close(self) -> None:
    """Stops the worker processes of ``data.workers`` (a later ``read`` starts new ones)."""
    readers, self._readers = self._readers, {}
    for r in readers.values():
      r.close()

  def __del__(self) -> None:
    if getattr(self, '_readers', None):
      self.close()

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.source.image_shape)

  @property
  def num_classes(self) -> int | None:
    return self.source.num_classes

  @property
  def num_examples(self) -> int | None:
    return self.source.num_examples

  @property
  def has_labels(self) -> bool:
    return bool(self.source.has_labels)

  @property
  def is_synthetic(self) -> bool:
    return isinstance(self.source, sources_lib.SyntheticSource)

  def _check_batch(self, b: int) -> None:
    if int(b) != b or b < 1:
      raise ValueError(f'data.batch_size must be a positive int, got {b!r}.')
    if b % self.process_count:
      raise ValueError(f'global batch size {b} is not divisible by the process count '
                       f'{self.process_count}: set data.batch_size to a multiple of it.')
    if self.num_examples is not None and b > self.num_examples:
      raise ValueError(f'global batch size {b} exceeds the {self.num_examples} examples of '
                       f'{self.name}: lower data.batch_size.')

  def indices(self, stream: str, start: int, count: int) -> np.ndarray:
    """Example indices of examples ``start .. start + count - 1`` of ``stream``, int64 [count]."""
    n = self.num_examples
    out = np.empty(count, np.int64)
    i = 0
    while i < count:
      epoch, pos = divmod(start + i, n)
      perm = self._perm.get((stream, epoch))
      if perm is None:  # keep one epoch per stream: streams are read in order
        perm = stream_permutation(self.seed, stream, epoch, n)
        self._perm = {k: v for k, v in self._perm.items() if k[0] != stream}
        self._perm[(stream, epoch)] = perm
      take = min(count - i, n - pos)
      out[i:i + take] = perm[pos:pos + take]
      i += take
    return out

  def read(self, stream: str, offset: int, count: int, batch_size: int) -> dict[str, np.ndarray]:
    """``count`` consecutive global batches of ``batch_size`` from example ``offset`` of ``stream``;
    this process's slices stacked: {'image': uint8 [count, B_local, ...], 'label': int32 [count,
    B_local]} (float32 points for synthetic 2-D data)."""
    self._check_batch(batch_size)
    if isinstance(self.source, sources_lib.ShapeOnlySource):
      raise sources_lib.DatasetNotFoundError(self.source.missing)
    if self.workers and isinstance(self.source, sources_lib.LazySource):
      return self._read_in_workers(stream, offset, count, batch_size)
    b_local = batch_size // self.process_count
    lo = self.process_index * b_local
    parts = []
    for c in range(count):
      start = offset + c * batch_size
      if self.is_synthetic:
        seed = (self.seed * 1_000_003 + zlib.crc32(stream.encode())) % (2 ** 32)
        full = self.source.global_batch(seed, start, batch_size)
        parts.append({k: v[lo:lo + b_local] for k, v in full.items()})
        continue
      out = self.source.get(self.indices(stream, start + lo, b_local))
      if 'label' in out:
        out['label'] = out['label'].astype(np.int32)
      parts.append(out)
    return {key: np.stack([p[key] for p in parts]) for key in parts[0]}

  def _read_in_workers(self, stream: str, offset: int, count: int, batch_size: int) -> dict[str, np.ndarray]:
    """``read`` by the stream's worker processes (``ganzoo.data.workers.BatchReader``), which read
    ahead from here on; a call at another offset or shape restarts them there."""
    reader = self._readers.get(stream)
    if reader is None or not reader.matches(offset, count, batch_size):
      if reader is not None:
        reader.close()
      plain = copy.copy(self)   # what the workers run: this Dataset without workers (__getstate__)
      reader = workers_lib.BatchReader(plain, stream, offset, count, batch_size, self.workers)
      self._readers[stream] = reader
    return reader.next()

  def batches(self, start_step: int = 0, global_batch_size: int | None = None, steps_per_call: int = 1,
              stream: str = 'real') -> Iterator[dict[str, np.ndarray]]:
    """Infinite iterator of float batches of one stream for tools and notebooks:
    ``{'image': float32 [S, B_local, *image_shape] in [-1, 1], 'label': int32 [S, B_local]}``
    (S = steps_per_call); call c holds the stream's global batches ``(start_step + c) * S + i``."""
    b = self.global_batch_size if global_batch_size is None else global_batch_size
    if b is None:
      raise ValueError('no batch size: pass global_batch_size or set data.batch_size.')
    self._check_batch(b)
    if steps_per_call < 1 or start_step < 0:
      raise ValueError(f'need steps_per_call >= 1 and start_step >= 0, got {steps_per_call}, {start_step}.')
    return self._iterate(stream, int(start_step), int(b), int(steps_per_call))

  def _iterate(self, stream: str, step: int, b: int, s: int) -> Iterator[dict[str, np.ndarray]]:
    while True:
      out = self.read(stream, step * s * b, s, b)
      if out['image'].dtype == np.uint8:
        out['image'] = to_float(out['image'])
      yield out
      step += 1


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
  if cfg is None:
    return default
  if isinstance(cfg, Mapping) or hasattr(cfg, 'get'):
    value = cfg.get(key, default)
  else:
    value = getattr(cfg, key, default)
  return default if value is None else value


def build_dataset(data_config: Any, seed: int, process_index: int | None = None,
                  process_count: int | None = None, allow_absent: bool = False) -> Dataset:
  """A ``Dataset`` from the ``data`` config (fields in the ``ganzoo.data`` docstring).

  ``process_index``/``process_count`` default to ``jax.process_index()``/``jax.process_count()``.
  ``allow_absent``: a standard data set that is not on this machine stands in by its known shape
  and class count (``sources.KNOWN_DATASETS``); reading a batch of it raises DatasetNotFoundError.
  ``data.cache`` decodes a decoding source once (``ganzoo.data.cache``); ``data.workers`` > 0
  decodes in that many grain processes (``ganzoo.data.workers``), with the same batches.
  """
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  name = _cfg_get(data_config, 'name')
  fields = {k: _cfg_get(data_config, k) for k in cache_lib.KEY_FIELDS}
  fields.update(split=_cfg_get(data_config, 'split', 'train'), source=_cfg_get(data_config, 'source', 'auto'))
  workers = workers_lib.check_workers(_cfg_get(data_config, 'workers', 0))
  cache = cache_lib.check_cache(_cfg_get(data_config, 'cache', ''))
  source = sources_lib.open_source(
      name,
      split=fields['split'],
      source=fields['source'],
      data_dir=fields['data_dir'],
      path=fields['path'],
      image_size=fields['image_size'],
      center_crop=fields['center_crop'],
      max_examples=fields['max_examples'],
      num_classes=fields['num_classes'],
      allow_absent=allow_absent,
      attributes=fields['attributes'],
      download=bool(_cfg_get(data_config, 'download', True)))
  source = cache_lib.cached(source, cache, fields, workers)
  return Dataset(source, seed=seed, process_index=process_index, process_count=process_count,
                 global_batch_size=_cfg_get(data_config, 'batch_size'), name=name, workers=workers)


def load_images(name: str, split: str = 'train', data_dir: str | None = None,
                path: str | None = None, max_examples: int | None = None, image_size=None,
                source: str = 'auto', center_crop: int | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
  """All (or the first ``max_examples``) images of a data set, in stored order.

  Returns ``{'image': uint8 [N, H, W, C], 'label': int32 [N]}`` ('label' only when labelled); grey
  images keep C = 1. For the synthetic 2-D sets, returns ``max_examples`` (default 10,000) float32
  [N, 2] samples drawn from ``default_rng([seed, split != 'train'])``.
  """
  src = sources_lib.open_source(name, split=split, source=source, data_dir=data_dir, path=path,
                                image_size=image_size, center_crop=center_crop,
                                max_examples=max_examples)
  if isinstance(src, sources_lib.SyntheticSource):
    from ganzoo.data import synthetic  # pylint: disable=g-import-not-at-top
    n = 10_000 if max_examples is None else int(max_examples)
    x, y = synthetic.sample(name, np.random.default_rng([seed, int(split != 'train')]), n)
    return {'image': x, 'label': y}
  return src.get(np.arange(src.num_examples))


class _Done:
  pass


class _Failed:

  def __init__(self, exc: BaseException):
    self.exc = exc


class Prefetcher:
  """Iterates ``iterator`` in a daemon thread, keeping up to ``size`` items ready.

  An exception raised by the iterator is re-raised by ``next`` in the consumer. ``close()`` (or
  leaving a ``with`` block) stops the thread; iteration ends when the source is exhausted.
  """

  def __init__(self, iterator: Iterator[Any], size: int = 2):
    if size < 1:
      raise ValueError(f'prefetch size must be >= 1, got {size}.')
    self._iterator = iterator
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._finished = False
    self._thread = threading.Thread(target=self._work, name='ganzoo-prefetch', daemon=True)
    self._thread.start()

  def _put(self, item: Any) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def _work(self) -> None:
    try:
      for item in self._iterator:
        if not self._put(item):
          return
      self._put(_Done())
    except BaseException as e:  # pylint: disable=broad-except
      self._put(_Failed(e))

  def __iter__(self) -> 'Prefetcher':
    return self

  def __next__(self) -> Any:
    if self._finished:
      raise StopIteration
    item = self._queue.get()
    if isinstance(item, _Done):
      self._finished = True
      raise StopIteration
    if isinstance(item, _Failed):
      self._finished = True
      raise item.exc
    return item

  def close(self, timeout: float = 5.0) -> None:
    """Stops the worker thread (it finishes the item it is computing) and drops queued items."""
    self._stop.set()
    self._finished = True
    while True:
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout)

  @property
  def alive(self) -> bool:
    return self._thread.is_alive()

  def __enter__(self) -> 'Prefetcher':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

  def __del__(self) -> None:
    self._stop.set()


def prefetch(iterator: Iterator[Any], size: int = 2) -> Prefetcher:
  """Runs ``iterator`` ahead in a background thread; see ``Prefetcher``."""
  return Prefetcher(iterator, size)


class DevicePrefetcher:
  """``put(item)`` of the items of ``iterator``, ``size`` items ahead of the consumer.

  ``put`` is the host-to-device copy (the trainer's ``parallel.global_batch``). JAX dispatch is
  asynchronous, so calling it for batch k + 1 right after step k was dispatched copies that batch
  while step k runs: with ``size`` = 1, ``next`` returns the item put during the previous call
  and puts the following one. ``size`` = 0 puts each item when it is asked for. The items and
  their order are ``iterator``'s; an exception raised by it or by ``put`` is re-raised after the
  items put before it, by the call that would have returned the item, where a consumer without
  read-ahead would meet it (a crash copying batch k + 1 still lets step k finish and checkpoint).
  ``close()`` closes ``iterator``.
  """

  def __init__(self, iterator: Iterator[Any], put: Any, size: int = 1):
    if int(size) != size or size < 0:
      raise ValueError(f'device prefetch size must be an int >= 0, got {size!r}.')
    self._iterator = iterator
    self._put = put
    self._size = int(size)
    self._ready: list[Any] = []
    self._error: BaseException | None = None

  def _fill(self, n: int) -> None:
    while self._error is None and len(self._ready) < n:
      try:
        self._ready.append(self._put(next(self._iterator)))
      except BaseException as e:  # pylint: disable=broad-except
        self._error = e
        return

  def __iter__(self) -> 'DevicePrefetcher':
    return self

  def __next__(self) -> Any:
    self._fill(1)
    if not self._ready:
      raise self._error
    item = self._ready.pop(0)
    self._fill(self._size)
    return item

  def close(self) -> None:
    self._ready = []
    close = getattr(self._iterator, 'close', None)
    if close is not None:
      close()


def device_prefetch_size(size: int, backend: str | None = None) -> int:
  """``data.device_prefetch``: -1 (auto) is 1 on an accelerator backend and 0 on 'cpu' (there the
  copy stays in host memory and overlapping it gains nothing); any other value is itself."""
  if int(size) != -1:
    return int(size)
  if backend is None:
    import jax  # pylint: disable=g-import-not-at-top
    backend = jax.default_backend()
  return 0 if backend == 'cpu' else 1


def device_prefetch(iterator: Iterator[Any], put: Any, size: int = 1) -> DevicePrefetcher:
  """Applies ``put`` (a host-to-device copy) ``size`` items ahead (-1: ``device_prefetch_size``);
  see ``DevicePrefetcher``."""
  return DevicePrefetcher(iterator, put, device_prefetch_size(size))
