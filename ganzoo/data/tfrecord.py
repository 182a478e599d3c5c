"""Random access to tfds data sets prepared as TFRecord (what `tfds build` and `tfds.load` write).

``tfds.data_source`` reads only random-access formats (ArrayRecord, Parquet); a TFRecord copy
(``<data_dir>/<name>/<version>/<name>-<split>.tfrecord-000NN-of-000MM`` with dataset_info.json and
features.json) raises NotImplementedError there, and tfds' own TFRecord reader is ``tf.data``
(TensorFlow, the ``tf`` extra; sequential, not random access, so it would not serve ganzoo's
index-addressed batches either). Converting once to ArrayRecord needs write access to the data
folder and doubles its size. So ganzoo reads the TFRecord files itself, without TensorFlow:

* Framing (TensorFlow ``core/lib/io/record_writer.h``): each record is
  ``uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)``,
  little-endian, ``masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32).
* An offset index per shard is built on the first read of that shard (one pass over the record
  headers, checking each length crc: a seek per record, about a second per 100k records on a local
  disk) and kept in memory for the life of the process; nothing is written next to the data, which
  may be read-only. The number of records must equal the shard length in dataset_info.json.
* The data crc of a record is checked the first time the record is read in this process (pure
  Python crc32c, 5-12 MB/s, i.e. 0.2-0.5 ms for a 2.5 KB CIFAR-10 PNG; ``google_crc32c`` is used
  when installed), as TensorFlow's reader checks it on every read. A mismatch or a truncated file is a
  one-line ValueError naming the file.
* Records are decoded by the data set's own features (``info.features.deserialize_example_np``:
  the tf.train.Example protobuf from tfds' bundled ``tensorflow_datasets.proto``, images decoded
  from their PNG/JPEG bytes with OpenCV or PIL, labels int64): the same call
  ``tfds.data_source`` makes for an ArrayRecord record, so both formats give the same arrays.

Order: the split's file instructions (``info.splits[split].file_instructions``, which also apply
slices such as ``'train[10%:]'``) are concatenated in shard order, each shard's records in file
order, exactly as ``tfds.data_source`` (array_record's ``ArrayRecordDataSource``) concatenates
ArrayRecord shards. tfds writes both formats through the same shuffler (examples sorted by a hash
of their key), so example i is the same example in a TFRecord and an ArrayRecord copy prepared
from the same data set version. (``tfds.load``/``as_dataset`` iterates TFRecord shards
interleaved, 16 at a time in blocks of 16, unless ``ReadConfig(interleave_cycle_length=1)``; its
iteration order is that of this reader only then.)
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

import numpy as np

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct('<QI')  # length, masked crc of the 8 length bytes


def _crc32c_table() -> tuple[int, ...]:
  """Byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78; RFC 3720 B.4)."""
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return tuple(table)


_TABLE = _crc32c_table()


def crc32c_python(data: bytes | memoryview) -> int:
  """CRC-32C of ``data`` (initial value and final xor 0xFFFFFFFF); crc32c(b'123456789') = 0xE3069283."""
  crc, table = 0xFFFFFFFF, _TABLE
  for b in bytes(data):
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _fast_crc32c():
  try:
    import google_crc32c  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return lambda data: int(google_crc32c.value(bytes(data)))


crc32c = _fast_crc32c() or crc32c_python


def masked_crc32c(data: bytes | memoryview) -> int:
  """The crc TFRecord stores: crc32c rotated right by 15 bits plus 0xa282ead8 (mod 2**32)."""
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _corrupt(path, what: str) -> ValueError:
  return ValueError(f'{path}: {what}; the TFRecord file is damaged: copy it again or re-prepare the '
                    'data set (`tfds build`).')


class TfRecordShard:
  """Random access to the records of one TFRecord file (index built on first use, thread-safe).

  Each read opens the file (10-20 us on a local disk, beside ~0.1 ms to decode an image): a split of
  1024 shards (imagenet2012) read at random would otherwise hold 1024 descriptors, the usual limit.
  """

  def __init__(self, path: str, num_records: int | None = None):
    self.path = os.fspath(path)
    self.num_records = num_records
    self._lock = threading.Lock()
    self._offsets = None  # int64 [n]: where each record's data starts
    self._lengths = None  # int64 [n]
    self._verified = None  # bool [n]: data crc already checked in this process

  def __getstate__(self) -> dict:   # a copy for a worker process (data.workers) gets a lock of its own
    return {**self.__dict__, '_lock': None}

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def _open(self):
    try:
      return open(self.path, 'rb')  # pylint: disable=consider-using-with
    except OSError as e:
      raise ValueError(f'{self.path}: cannot open the TFRecord shard ({e.strerror}); copy the data '
                       'set folder again.') from None

  def _build_index(self):
    offsets, lengths, pos = [], [], 0
    with self._open() as f:
      size = os.fstat(f.fileno()).st_size
      while pos < size:
        header = f.read(_HEADER.size)
        if len(header) < _HEADER.size:
          raise _corrupt(self.path, f'truncated at byte {pos} (record {len(offsets)} has a partial header)')
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
          raise _corrupt(self.path, f'record {len(offsets)} at byte {pos} has a bad length crc')
        end = pos + _HEADER.size + length + 4
        if end > size:
          raise _corrupt(self.path, f'truncated at byte {size} (record {len(offsets)} needs {end} bytes)')
        offsets.append(pos + _HEADER.size)
        lengths.append(length)
        pos = end
        f.seek(pos)
    if self.num_records is not None and len(offsets) != self.num_records:
      raise _corrupt(self.path, f'{len(offsets)} records, but dataset_info.json says {self.num_records}')
    self._offsets = np.asarray(offsets, np.int64)
    self._lengths = np.asarray(lengths, np.int64)
    self._verified = np.zeros(len(offsets), bool)

  def __len__(self) -> int:
    if self.num_records is not None:
      return self.num_records
    with self._lock:
      if self._offsets is None:
        self._build_index()
    return len(self._offsets)

  def read(self, j: int) -> bytes:
    """The bytes of record ``j`` (0-based, in file order); its data crc is checked on first read."""
    with self._lock:
      if self._offsets is None:
        self._build_index()
      if not 0 <= j < len(self._offsets):
        raise IndexError(f'{self.path}: record {j} out of range [0, {len(self._offsets)}).')
      length, offset = int(self._lengths[j]), int(self._offsets[j])
      check = not self._verified[j]
    with self._open() as f:  # a file per read: a 1024-shard split keeps no 1024 descriptors open
      f.seek(offset)
      blob = f.read(length + 4)
    if len(blob) != length + 4:
      raise _corrupt(self.path, f'record {j} is truncated')
    data = blob[:length]
    if check:
      if masked_crc32c(data) != struct.unpack('<I', blob[length:])[0]:
        raise _corrupt(self.path, f'record {j} has a bad data crc')
      self._verified[j] = True
    return data


class TfRecordDataSource:
  """A ``tfds.data_source``-like sequence over a split of a TFRecord-prepared tfds data set.

  ``len(ds)``, ``ds[i]`` (the decoded example dict) and ``ds.dataset_info``, as TfdsSource uses
  them. Examples are the split's file instructions concatenated in order (see the module
  docstring); each instruction reads records ``skip .. skip + take - 1`` of its shard.
  """

  def __init__(self, dataset_info: Any, split: str):
    self.dataset_info = dataset_info
    self.split = split
    instructions = dataset_info.splits[split].file_instructions
    shards: dict[str, TfRecordShard] = {}
    self._parts = []  # (shard, skip)
    starts = [0]
    for fi in instructions:
      if fi.take <= 0:
        continue
      shard = shards.setdefault(fi.filename, TfRecordShard(fi.filename, fi.examples_in_shard))
      self._parts.append((shard, int(fi.skip)))
      starts.append(starts[-1] + int(fi.take))
    self._starts = np.asarray(starts, np.int64)
    self.filenames = list(shards)

  def __len__(self) -> int:
    return int(self._starts[-1])

  def read_record(self, i: int) -> bytes:
    """The serialized tf.train.Example of example ``i``."""
    if not 0 <= i < len(self):
      raise IndexError(f'{self.dataset_info.name}: index {i} out of range [0, {len(self)}).')
    part = int(np.searchsorted(self._starts, i, side='right')) - 1
    shard, skip = self._parts[part]
    return shard.read(skip + i - int(self._starts[part]))

  def __getitem__(self, i: int) -> dict[str, Any]:
    return self.dataset_info.features.deserialize_example_np(self.read_record(int(i)))

  def __repr__(self) -> str:
    return f'TfRecordDataSource(name={self.dataset_info.name}, split={self.split!r})'


def open_tfrecord(builder: Any, split: str) -> TfRecordDataSource | None:
  """The TFRecord data source of a prepared tfds builder, or None when it holds no TFRecord copy."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not builder.is_prepared():
    return None
  info = builder.info
  tfrecord = tfds.core.FileFormat.TFRECORD
  if info.file_format != tfrecord and tfrecord not in info.available_file_formats():
    return None
  if info.file_format != tfrecord:
    info.set_file_format(tfrecord, override=True, override_if_initialized=True)
  return TfRecordDataSource(info, split)
