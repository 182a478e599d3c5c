"""Decoding in worker processes with grain (``data.workers = N``), exactly the in-process batches.

Two uses, both a grain ``MapDataset`` over integers mapped by a picklable ganzoo function and run
by ``mp_prefetch`` (N processes; worker w computes elements w, w + N, ...; grain hands them back in
element order, so the sequence is the in-process one whatever N):

* ``BatchReader``: element k of a stream read at (offset, count, batch_size) is
  ``Dataset.read(stream, offset + k * count * batch_size, count, batch_size)``, computed in a
  worker by a copy of the ``Dataset`` without workers. ``Dataset.read`` keeps one reader per stream
  and takes its next element when a call asks for exactly the offset the reader is at (the training
  loop's steady state); any other call (a resume, a new ProGAN stage, a tool jumping about) starts a
  new reader there. A batch stays a pure function of (seed, stream, offset): the workers run the
  same ``Dataset.indices`` and ``source.get``.
* ``decode_all``: every example of a source, in chunks of ``chunk`` examples decoded by the workers
  (``ganzoo.data.cache`` fills its uint8 arrays with it).

grain is an optional dependency (``pip install 'ganzoo[grain]'``), imported only here and only when
N > 0. Its flags are absl flags: outside an absl app (tests, notebooks) they are marked parsed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

_STOP = 2 ** 62   # the element range of an (infinite) stream reader


def import_grain(workers: int):
  """The ``grain`` module, or a one-line ValueError saying how to get it."""
  try:
    import grain  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(f"data.workers={workers} decodes in worker processes with grain, which is not installed "
                     f"({e}): pip install 'ganzoo[grain]', or set --config.data.workers=0") from None
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return grain


def check_workers(workers: Any) -> int:
  """``data.workers`` as an int >= 0 (grain importable when > 0); one-line ValueError otherwise."""
  if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
    raise ValueError(f"config.data.workers={workers!r} must be an int >= 0 (0 = decode in the training "
                     "process): pass --config.data.workers=<N >= 0>")
  if workers:
    import_grain(int(workers))
  return int(workers)


def _plain(tree: Any) -> Any:
  """grain hands arrays back in shared memory; copy them into ordinary arrays (and free it)."""
  return {k: np.array(v) for k, v in tree.items()}


class _Iterator:
  """``fn(start), fn(start + 1), ...`` computed by ``workers`` grain processes, in order."""

  def __init__(self, fn: Callable[[int], Any], start: int, stop: int, workers: int, buffer: int = 2):
    grain = import_grain(workers)
    # One thread per worker, reading ``buffer`` elements ahead: grain's default (16 threads, 500
    # elements ahead in every worker) would decode hundreds of batches nobody may ask for.
    read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=int(buffer))
    ds = grain.MapDataset.range(int(start), int(stop)).map(fn).to_iter_dataset(read)
    options = grain.MultiprocessingOptions(num_workers=int(workers), per_worker_buffer_size=int(buffer))
    self._it = iter(ds.mp_prefetch(options))

  def __next__(self) -> dict[str, np.ndarray]:
    return _plain(next(self._it))

  def close(self) -> None:
    it, self._it = self._it, None
    if it is not None and hasattr(it, 'close'):
      it.close()


class _ReadAt:
  """Element k -> ``dataset.read(stream, offset + k * count * batch_size, count, batch_size)``."""

  def __init__(self, dataset: Any, stream: str, offset: int, count: int, batch_size: int):
    self.dataset, self.stream = dataset, stream
    self.offset, self.count, self.batch_size = int(offset), int(count), int(batch_size)

  def __call__(self, k: int) -> dict[str, np.ndarray]:
    start = self.offset + int(k) * self.count * self.batch_size
    return self.dataset.read(self.stream, start, self.count, self.batch_size)


class BatchReader:
  """The batches of one stream from ``offset`` on, read ahead by ``workers`` processes."""

  def __init__(self, dataset: Any, stream: str, offset: int, count: int, batch_size: int, workers: int,
               buffer: int = 2):
    self.shape = (int(count), int(batch_size))
    self.next_offset = int(offset)
    self._iterator = _Iterator(_ReadAt(dataset, stream, offset, count, batch_size), 0, _STOP, workers, buffer)

  def matches(self, offset: int, count: int, batch_size: int) -> bool:
    return self._iterator is not None and int(offset) == self.next_offset and (int(count), int(batch_size)) == self.shape

  def next(self) -> dict[str, np.ndarray]:
    out = next(self._iterator)
    self.next_offset += self.shape[0] * self.shape[1]
    return out

  def close(self) -> None:
    if self._iterator is not None:
      self._iterator.close()
      self._iterator = None


class _Chunk:
  """Chunk c -> ``source.get(range(c * chunk, min((c + 1) * chunk, n)))``."""

  def __init__(self, source: Any, chunk: int):
    self.source, self.chunk = source, int(chunk)

  def __call__(self, c: int) -> dict[str, np.ndarray]:
    lo = int(c) * self.chunk
    return self.source.get(np.arange(lo, min(lo + self.chunk, self.source.num_examples)))


def decode_all(source: Any, workers: int = 0, chunk: int = 256) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields (first index, ``source.get`` of the next ``chunk`` examples) over the whole source, in
  order; decoded by ``workers`` grain processes (0: in this process)."""
  n = int(source.num_examples)
  chunks = -(-n // int(chunk))
  fn = _Chunk(source, chunk)
  if not workers or chunks <= 1:
    for c in range(chunks):
      yield c * chunk, fn(c)
    return
  it = _Iterator(fn, 0, chunks, min(int(workers), chunks))
  try:
    for c in range(chunks):
      yield c * chunk, next(it)
  finally:
    it.close()
