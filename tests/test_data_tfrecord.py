"""tfds data sets prepared as TFRecord load like ArrayRecord ones (ganzoo.data.tfrecord).

The fixture data set is written by tfds itself (a tiny GeneratorBasedBuilder, ``download_and_prepare``
into tmp_path, 3 shards per split), so file names, dataset_info.json, features.json, shard lengths and
the record order are tfds' own. tfds writes TFRecord through ``tf.io.TFRecordWriter`` (TensorFlow is
not installed here), so only that framing call is replaced by ``_write_tfrecord`` below, which follows
the TFRecord spec and whose crc is checked against the RFC 3720 test vectors.
"""

import io
import logging
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from ganzoo import data
from ganzoo.data import sources
from ganzoo.data import tfrecord

tfds = pytest.importorskip('tensorflow_datasets')
from tensorflow_datasets.core import file_adapters  # pylint: disable=g-import-not-at-top,wrong-import-position

NAME = 'ganzoo_test_tiny'
SPLITS = {'train': 23, 'test': 7}
SHAPE = (8, 6, 3)
NUM_SHARDS = 3


# ----------------------------------------------------------------------------- spec-side writer


def _crc32c_bitwise(data: bytes) -> int:
  """CRC-32C bit by bit (reflected polynomial 0x82F63B78), independent of ganzoo's table version."""
  crc = 0xFFFFFFFF
  for b in data:
    crc ^= b
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
  return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
  """TensorFlow core/lib/hash/crc32c.h Mask: rotate right by 15 bits, add 0xa282ead8."""
  crc = _crc32c_bitwise(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _write_tfrecord(cls, path, iterator):  # pylint: disable=unused-argument
  """TFRecord framing (record_writer.h): u64 length, u32 masked crc(length), data, u32 masked crc(data)."""
  with open(os.fspath(path), 'wb') as f:
    for _, record in iterator:
      length = struct.pack('<Q', len(record))
      f.write(length + struct.pack('<I', _masked(length)) + record + struct.pack('<I', _masked(record)))


def test_crc32c_rfc3720_vectors():
  # RFC 3720 B.4 and the usual check value of CRC-32C.
  vectors = {b'123456789': 0xE3069283, bytes(32): 0x8A9136AA, b'\xff' * 32: 0x62A8AB43,
             bytes(range(32)): 0x46DD794E, bytes(range(31, -1, -1)): 0x113FDB5C}
  for msg, crc in vectors.items():
    assert _crc32c_bitwise(msg) == crc
    assert tfrecord.crc32c_python(msg) == crc
    assert tfrecord.crc32c(msg) == crc
  rng = np.random.RandomState(0)
  for n in (0, 1, 7, 100):
    msg = rng.randint(0, 256, n).astype(np.uint8).tobytes()
    assert tfrecord.masked_crc32c(msg) == _masked(msg)


def test_google_crc32c_is_used_when_installed(monkeypatch):
  class FakeGoogleCrc32c:  # the google_crc32c API: value(bytes) -> int
    calls = []

    @staticmethod
    def value(b):
      FakeGoogleCrc32c.calls.append(b)
      return _crc32c_bitwise(b)

  monkeypatch.setitem(sys.modules, 'google_crc32c', FakeGoogleCrc32c)
  fast = tfrecord._fast_crc32c()  # pylint: disable=protected-access
  assert fast(memoryview(b'123456789')) == 0xE3069283 and FakeGoogleCrc32c.calls == [b'123456789']
  monkeypatch.setitem(sys.modules, 'google_crc32c', None)  # import fails
  assert tfrecord._fast_crc32c() is None  # pylint: disable=protected-access


def test_framing_matches_tensorboardx_writer(tmp_path):
  """tensorboardX writes TensorBoard event files, which are TFRecord files, with its own crc32c: an
  independent writer. Its bytes equal the spec writer's, and TfRecordShard reads its records back."""
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(1)
  records = [rng.randint(0, 256, n).astype(np.uint8).tobytes() for n in (0, 1, 5, 300, 5000)]
  path_tbx, path_spec = str(tmp_path / 'tbx.tfrecord'), str(tmp_path / 'spec.tfrecord')
  writer = record_writer.RecordWriter(path_tbx)
  for r in records:
    writer.write(r)
  writer.close()
  _write_tfrecord(None, path_spec, ((None, r) for r in records))
  assert open(path_tbx, 'rb').read() == open(path_spec, 'rb').read()
  shard = tfrecord.TfRecordShard(path_tbx)
  assert len(shard) == len(records)
  for j in (3, 0, 4, 1, 2):  # any order
    assert shard.read(j) == records[j]
  with pytest.raises(IndexError):
    shard.read(5)


# ----------------------------------------------------------------------------- the tfds fixture


def _image(split: str, i: int) -> np.ndarray:
  """Example i's pixels; pixel (0, 0, 0) holds i and (0, 0, 1) the split, so a read example names itself."""
  image = np.random.RandomState(1000 * len(split) + i).randint(0, 256, SHAPE).astype(np.uint8)
  image[0, 0, 0], image[0, 0, 1] = i, len(split)
  return image


class GanzooTestTiny(tfds.core.GeneratorBasedBuilder):
  """23 train and 7 test PNG images 8x6x3 with labels i % 5."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=SHAPE), 'label': tfds.features.ClassLabel(num_classes=5)}))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split, n) for split, n in SPLITS.items()}

  def _generate_examples(self, split, n):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    for i in range(n):
      buf = io.BytesIO()
      Image.fromarray(_image(split, i)).save(buf, 'PNG')  # PNG bytes: tfds encodes arrays with TF
      yield f'{split}{i}', {'image': buf.getvalue(), 'label': i % 5}


def _prepare(root, file_format: str) -> str:
  data_dir = str(root / file_format)
  builder = GanzooTestTiny(data_dir=data_dir, file_format=file_format)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=NUM_SHARDS))
  return data_dir


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  """{'tfrecord': data_dir, 'array_record': data_dir}: the same data set prepared in both formats
  ('array_record' only where the array_record package is installed: Linux)."""
  root = tmp_path_factory.mktemp('tfds')
  mp = pytest.MonkeyPatch()
  mp.setattr(file_adapters.TfRecordFileAdapter, 'write_examples', classmethod(_write_tfrecord))
  try:
    out = {'tfrecord': _prepare(root, 'tfrecord')}
  finally:
    mp.undo()
  try:
    import array_record  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return out
  out['array_record'] = _prepare(root, 'array_record')
  return out


def _array_record_dir(prepared) -> str:
  if 'array_record' not in prepared:
    pytest.skip('array_record is not installed (a Linux-only dependency)')
  return prepared['array_record']


def _shards(data_dir: str, split: str, fmt: str) -> list[str]:
  folder = os.path.join(data_dir, NAME, '1.0.0')
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(f'{NAME}-{split}.{fmt}-'))


def _read_all(data_dir: str, split: str = 'train') -> dict[str, np.ndarray]:
  src = data.open_source(NAME, split=split, source='tfds', data_dir=data_dir)
  return src.get(np.arange(src.num_examples))


# ----------------------------------------------------------------------------- tests


def test_tfds_layout_has_several_tfrecord_shards(prepared):
  shards = _shards(prepared['tfrecord'], 'train', 'tfrecord')
  assert [os.path.basename(s) for s in shards] == [
      f'{NAME}-train.tfrecord-{k:05d}-of-{NUM_SHARDS:05d}' for k in range(NUM_SHARDS)]
  folder = os.path.dirname(shards[0])
  assert os.path.isfile(os.path.join(folder, 'dataset_info.json'))
  assert os.path.isfile(os.path.join(folder, 'features.json'))
  if 'array_record' in prepared:
    assert len(_shards(prepared['array_record'], 'train', 'array_record')) == NUM_SHARDS


@pytest.mark.parametrize('split', ['train', 'test'])
def test_tfrecord_examples_equal_written(prepared, split):
  src = data.open_source(NAME, split=split, source='tfds', data_dir=prepared['tfrecord'])
  assert isinstance(src, data.TfdsSource) and src.num_examples == SPLITS[split]
  assert src.image_shape == SHAPE and src.num_classes == 5
  batch = src.get(np.arange(src.num_examples))
  ids = batch['image'][:, 0, 0, 0].astype(int)
  assert sorted(ids) == list(range(SPLITS[split]))  # every written example once
  for image, label, i in zip(batch['image'], batch['label'], ids):
    np.testing.assert_array_equal(image, _image(split, i))
    assert label == i % 5
  # The order is tfds' shard order and, within a shard, file order: read the shard files with the
  # spec framing and compare ids record by record.
  order = []
  info = tfds.builder(NAME, data_dir=prepared['tfrecord']).info
  for path in _shards(prepared['tfrecord'], split, 'tfrecord'):
    blob, pos = open(path, 'rb').read(), 0
    while pos < len(blob):
      (n,) = struct.unpack_from('<Q', blob, pos)
      order.append(int(info.features.deserialize_example_np(blob[pos + 12:pos + 12 + n])['image'][0, 0, 0]))
      pos += 12 + n + 4
  assert order == list(ids)


@pytest.mark.parametrize('split', ['train', 'test', 'train[3:20]', 'train[40%:]', 'train+test'])
def test_tfrecord_and_array_record_same_examples_same_order(prepared, split):
  tfr = _read_all(prepared['tfrecord'], split)
  arr = _read_all(_array_record_dir(prepared), split)
  assert len(tfr['label']) > 0
  np.testing.assert_array_equal(tfr['image'], arr['image'])
  np.testing.assert_array_equal(tfr['label'], arr['label'])


def test_training_batches_equal_across_formats(prepared):
  """The training stream (a seeded permutation of example indices) is the same on either copy."""
  batches = {}
  for fmt, data_dir in (('tfrecord', prepared['tfrecord']), ('array_record', _array_record_dir(prepared))):
    ds = data.build_dataset({'name': NAME, 'source': 'tfds', 'data_dir': data_dir, 'batch_size': 4}, 7, 0, 1)
    batches[fmt] = ds.read('real', 5, 3, 4)  # 3 batches from example 5 of the stream (12 shuffled examples)
  assert batches['tfrecord']['image'].shape == (3, 4) + SHAPE
  np.testing.assert_array_equal(batches['tfrecord']['image'], batches['array_record']['image'])
  np.testing.assert_array_equal(batches['tfrecord']['label'], batches['array_record']['label'])


def test_tfds_sources_pickle_for_workers_and_cache_to_the_same_batches(prepared):
  """data.workers sends the source to worker processes (pickled); data.cache decodes it once."""
  for data_dir in prepared.values():   # tfrecord, and array_record where installed
    cfg = {'name': NAME, 'source': 'tfds', 'data_dir': data_dir, 'batch_size': 4}
    ds = data.build_dataset(cfg, 7, 0, 1)
    want = ds.read('real', 5, 3, 4)
    copy = pickle.loads(pickle.dumps(ds.source))
    got = data.Dataset(copy, seed=7).read('real', 5, 3, 4)
    cached = data.build_dataset({**cfg, 'cache': 'memory'}, 7, 0, 1)
    assert isinstance(cached.source, data.ArraySource)
    for out in (got, cached.read('real', 5, 3, 4)):
      np.testing.assert_array_equal(out['image'], want['image'])
      np.testing.assert_array_equal(out['label'], want['label'])


def test_tfrecord_slice_is_slice_of_split(prepared):
  full = _read_all(prepared['tfrecord'], 'train')
  part = _read_all(prepared['tfrecord'], 'train[3:20]')
  np.testing.assert_array_equal(part['image'], full['image'][3:20])


def test_tfrecord_through_load_images_and_build_dataset(prepared, caplog):
  with caplog.at_level(logging.INFO):
    full = _read_all(prepared['tfrecord'])
  assert f"{NAME}: reading the TFRecord copy in {prepared['tfrecord']}" in caplog.text  # the first-use line
  got = data.load_images(NAME, source='tfds', data_dir=prepared['tfrecord'], max_examples=10)
  np.testing.assert_array_equal(got['image'], full['image'][:10])
  small = data.load_images(NAME, source='tfds', data_dir=prepared['tfrecord'], image_size=4, max_examples=2)
  assert small['image'].shape == (2, 4, 4, 3)
  ds = data.build_dataset({'name': NAME, 'source': 'tfds', 'data_dir': prepared['tfrecord'], 'batch_size': 4},
                          0, 0, 1)
  assert ds.source.num_examples == SPLITS['train'] and ds.num_classes == 5


def _copy(prepared_dir: str, tmp_path) -> str:
  import shutil  # pylint: disable=g-import-not-at-top
  dst = str(tmp_path / 'copy')
  shutil.copytree(prepared_dir, dst)
  return dst


def _record_offsets(path: str) -> list[tuple[int, int]]:
  blob, pos, out = open(path, 'rb').read(), 0, []
  while pos < len(blob):
    (n,) = struct.unpack_from('<Q', blob, pos)
    out.append((pos, n))
    pos += 12 + n + 4
  return out


def _flip(path: str, offset: int):
  with open(path, 'r+b') as f:
    f.seek(offset)
    b = f.read(1)
    f.seek(offset)
    f.write(bytes([b[0] ^ 0x01]))


def test_tfrecord_data_crc_corruption_is_one_line_naming_file(prepared, tmp_path):
  data_dir = _copy(prepared['tfrecord'], tmp_path)
  shard = _shards(data_dir, 'train', 'tfrecord')[1]
  pos, n = _record_offsets(shard)[2]
  _flip(shard, pos + 12 + n // 2)  # a byte inside record 2's data
  src = data.open_source(NAME, source='tfds', data_dir=data_dir)
  first = len(_record_offsets(_shards(data_dir, 'train', 'tfrecord')[0]))
  src.get(np.arange(first + 2))  # the records before it still read
  with pytest.raises(ValueError) as e:
    src.get([first + 2])
  msg = str(e.value)
  assert '\n' not in msg and shard in msg and 'record 2' in msg and 'crc' in msg


def test_tfrecord_length_corruption_and_truncation_name_file(prepared, tmp_path):
  data_dir = _copy(prepared['tfrecord'], tmp_path)
  shards = _shards(data_dir, 'train', 'tfrecord')
  pos, _ = _record_offsets(shards[0])[1]
  _flip(shards[0], pos)  # record 1's length: the length crc no longer matches
  with open(shards[2], 'r+b') as f:
    f.truncate(os.path.getsize(shards[2]) - 3)
  src = data.open_source(NAME, source='tfds', data_dir=data_dir)
  with pytest.raises(ValueError) as e:
    src.get([0])
  assert '\n' not in str(e.value) and shards[0] in str(e.value) and 'length crc' in str(e.value)
  with pytest.raises(ValueError) as e:
    src.get([src.num_examples - 1])
  assert '\n' not in str(e.value) and shards[2] in str(e.value) and 'truncated' in str(e.value)


def test_tfrecord_bad_split_is_one_line(prepared):
  with pytest.raises(ValueError) as e:
    data.open_source(NAME, split='validation', source='tfds', data_dir=prepared['tfrecord'])
  assert '\n' not in str(e.value) and "'validation'" in str(e.value) and 'data.split' in str(e.value)


def test_missing_tfds_message_names_both_formats(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.open_source(NAME, source='tfds', data_dir=str(tmp_path / 'empty'))
  msg = str(e.value)
  assert '\n' not in msg and f"prepare the tfds dataset '{NAME}'" in msg
  assert 'TFRecord and ArrayRecord' in msg and 'as ArrayRecord' not in msg
  assert sources.DatasetNotFoundError is data.DatasetNotFoundError
