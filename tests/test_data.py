"""Tests of ganzoo.data: every source, deterministic/resumable order, sharding, errors, prefetch."""

import gzip
import hashlib
import os
import pathlib
import struct
import threading
import time

import numpy as np
import pytest

from ganzoo import data
from ganzoo.data import sources
from ganzoo.data import synthetic

FASHION_DIR = pathlib.Path('/usr/share/datasets/fashion-mnist')
FASHION_TRAIN_SHA256 = 'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7'


@pytest.fixture(autouse=True)
def _no_local_data(monkeypatch, tmp_path):
  """Keep tests independent of data on this machine: empty GANZOO/TFDS dirs and HOME."""
  empty = tmp_path / 'empty_home'
  empty.mkdir()
  monkeypatch.setenv('GANZOO_DATA_DIR', str(empty / 'ganzoo'))
  monkeypatch.setenv('TFDS_DATA_DIR', str(empty / 'tfds'))
  monkeypatch.setenv('HOME', str(empty))


def _write_idx(path, array, gz=True):
  """Writes the real IDX layout: 0x0000, dtype 0x08, ndim, big-endian uint32 dims, raw bytes."""
  array = np.asarray(array, np.uint8)
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
  opener = gzip.open if gz else open
  with opener(path, 'wb') as f:
    f.write(header + array.tobytes())


def _make_idx_dir(folder, n_train=20, n_test=7, gz=True, seed=0):
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  out = {}
  ext = '.gz' if gz else ''
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    _write_idx(folder / f'{prefix}-images-idx3-ubyte{ext}', images, gz)
    _write_idx(folder / f'{prefix}-labels-idx1-ubyte{ext}', labels, gz)
    out[prefix] = (images, labels)
  return out


def _array_dataset(n=10, seed=0, process_index=0, process_count=1, labels=True):
  images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
  source = data.ArraySource(images, np.arange(n) % 3 if labels else None)
  return data.Dataset(source, seed=seed, process_index=process_index, process_count=process_count)


def _ids(batch):
  """Recovers example ids from the pixel values of _array_dataset images."""
  return np.rint((batch['image'][..., 0, 0, 0] + 1.0) * 127.5).astype(np.int64)


# ----------------------------------------------------------------------------- IDX


def test_idx_header_is_the_real_format(tmp_path):
  _write_idx(tmp_path / 'x.gz', np.zeros((3, 28, 28), np.uint8))
  with gzip.open(tmp_path / 'x.gz', 'rb') as f:
    magic, n, h, w = struct.unpack('>IIII', f.read(16))
  assert (magic, n, h, w) == (2051, 3, 28, 28)
  _write_idx(tmp_path / 'y', np.zeros((3,), np.uint8), gz=False)
  assert struct.unpack('>II', (tmp_path / 'y').read_bytes()[:8]) == (2049, 3)


@pytest.mark.parametrize('gz', [True, False])
def test_idx_round_trip(tmp_path, gz):
  written = _make_idx_dir(tmp_path / 'mnist', gz=gz)
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    out = data.load_images('mnist', split=split, data_dir=str(tmp_path))
    images, labels = written[prefix]
    assert out['image'].dtype == np.uint8 and out['label'].dtype == np.int32
    assert out['image'].shape == images.shape + (1,)
    np.testing.assert_array_equal(out['image'][..., 0], images)
    np.testing.assert_array_equal(out['label'], labels)


def test_idx_search_order_env_then_cache(tmp_path, monkeypatch):
  env_written = _make_idx_dir(tmp_path / 'env' / 'fashion_mnist', seed=1)
  _make_idx_dir(tmp_path / 'empty_home' / '.cache' / 'ganzoo' / 'fashion_mnist', seed=2)
  monkeypatch.setattr(sources, 'DEBIAN_DIRS', {})
  cache = data.load_images('fashion_mnist')  # GANZOO_DATA_DIR has nothing -> ~/.cache/ganzoo
  monkeypatch.setenv('GANZOO_DATA_DIR', str(tmp_path / 'env'))
  env = data.load_images('fashion_mnist', max_examples=5)
  np.testing.assert_array_equal(env['image'][..., 0], env_written['train'][0][:5])
  assert not np.array_equal(cache['image'][:5], env['image'])


@pytest.mark.smoke
def test_idx_dataset_batches_and_image_size(tmp_path):
  written = _make_idx_dir(tmp_path / 'mnist', n_train=16)
  ds = data.build_dataset({'name': 'mnist', 'data_dir': str(tmp_path), 'batch_size': 4,
                           'image_size': 32}, seed=0, process_index=0, process_count=1)
  assert ds.image_shape == (32, 32, 1) and ds.num_classes == 10 and ds.num_examples == 16
  batch = next(ds.batches(0))
  assert batch['image'].shape == (1, 4, 32, 32, 1) and batch['image'].dtype == np.float32
  assert batch['label'].shape == (1, 4) and batch['label'].dtype == np.int32
  idx = data.stream_permutation(0, 'real', 0, 16)[:4]
  np.testing.assert_array_equal(batch['label'][0], written['train'][1][idx])
  assert -1.0 <= batch['image'].min() and batch['image'].max() <= 1.0


def test_bad_idx_magic_raises(tmp_path):
  (tmp_path / 'bad').write_bytes(b'\x01\x02\x03\x04' + b'\x00' * 16)
  with pytest.raises(ValueError, match='not an IDX file'):
    data.read_idx(tmp_path / 'bad')


# ----------------------------------------------------------------------------- tfds (mock data)


@pytest.mark.smoke
def test_tfds_mock_mnist_and_cifar10():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=12):
    mnist = data.load_images('mnist', source='tfds')
    assert mnist['image'].shape == (12, 28, 28, 1) and mnist['image'].dtype == np.uint8
    assert mnist['label'].shape == (12,) and mnist['label'].dtype == np.int32
    assert mnist['label'].min() >= 0 and mnist['label'].max() < 10
    ds = data.build_dataset({'name': 'cifar10', 'batch_size': 4}, seed=1,
                            process_index=0, process_count=1)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10 and ds.num_examples == 12
    batch = next(ds.batches(0, steps_per_call=2))
    assert batch['image'].shape == (2, 4, 32, 32, 3) and batch['image'].dtype == np.float32
    assert batch['label'].shape == (2, 4) and batch['label'].dtype == np.int32
    assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
    assert batch['image'].std() > 0.3  # mock pixels are uniform noise, std ~0.58 after scaling
    ref = data.load_images('cifar10')
    expected = ref['image'][data.stream_permutation(1, 'real', 0, 12)[:4]].astype(np.float32) / 127.5 - 1.0
    # x / 127.5 - 1 in float32 two ways (a division, or a multiply by the rounded reciprocal): at
    # most 1-2 ulps of values in [-1, 1] (2.4e-7); a wrong permutation or range is O(1e-2) off.
    np.testing.assert_allclose(batch['image'][0], expected, atol=1e-6)


def test_tfds_mock_celeba_crop_and_resize():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=3):
    out = data.load_images('celeb_a', split='test')
    raw = tfds.data_source('celeb_a', split='test', download=False)[1]['image']
  assert out['image'].shape == (3, 64, 64, 3) and 'label' not in out
  assert raw.shape == (218, 178, 3)
  expected = sources.transform_image(raw[55:163, 35:143], (64, 64))
  np.testing.assert_array_equal(out['image'][1], expected)


# ----------------------------------------------------------------------------- npz and folders


@pytest.mark.smoke
def test_npz_nhw_and_labels(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (9, 5, 6), dtype=np.uint8)
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 4])
  np.savez(tmp_path / 'd.npz', images=images, labels=labels)
  out = data.load_images('npz', path=str(tmp_path / 'd.npz'))
  np.testing.assert_array_equal(out['image'], images[..., None])
  np.testing.assert_array_equal(out['label'], labels)
  ds = data.build_dataset({'name': 'npz', 'path': str(tmp_path / 'd.npz')}, seed=0,
                          process_index=0, process_count=1)
  assert ds.num_classes == 5 and ds.image_shape == (5, 6, 1)
  np.savez(tmp_path / 'rgb.npz', images=rng.integers(0, 256, (4, 3, 3, 3), dtype=np.uint8))
  rgb = data.load_images('npz', path=str(tmp_path / 'rgb.npz'), image_size=6)
  assert rgb['image'].shape == (4, 6, 6, 3) and 'label' not in rgb


def test_image_folder_with_classes(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  expected = {}
  for cname, n in (('zebra', 2), ('ant', 3)):
    (tmp_path / 'imgs' / cname).mkdir(parents=True)
    for i in range(n):
      arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
      Image.fromarray(arr).save(tmp_path / 'imgs' / cname / f'{i}.png')
      expected[(cname, i)] = arr
  out = data.load_images('folder', path=str(tmp_path / 'imgs'))
  assert out['image'].shape == (5, 8, 8, 3)
  np.testing.assert_array_equal(out['label'], [0, 0, 0, 1, 1])  # 'ant' < 'zebra'
  np.testing.assert_array_equal(out['image'][0], expected[('ant', 0)])
  np.testing.assert_array_equal(out['image'][4], expected[('zebra', 1)])


def test_image_folder_grey_unlabelled(tmp_path):
  from PIL import Image
  arr = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
  for i in range(3):
    Image.fromarray(arr + i).save(tmp_path / f'{i}.png')
  ds = data.build_dataset({'name': 'folder', 'path': str(tmp_path), 'batch_size': 3}, seed=0,
                          process_index=0, process_count=1)
  assert ds.image_shape == (8, 8, 1) and ds.num_classes is None and not ds.has_labels
  batch = next(ds.batches(0))
  assert set(batch) == {'image'} and batch['image'].shape == (1, 3, 8, 8, 1)
  out = data.load_images('folder', path=str(tmp_path))
  np.testing.assert_array_equal(out['image'][2, ..., 0], arr + 2)


# ----------------------------------------------------------------------------- order


def test_to_float_range():
  # float32 vs the float64 values: half an ulp of numbers in [-1, 1] is <= 6e-8.
  np.testing.assert_allclose(data.to_float(np.array([0, 255, 127], np.uint8)),
                             [-1.0, 1.0, 127 / 127.5 - 1.0], atol=1e-7)


def test_resume_equals_unbroken_run():
  ds = _array_dataset(n=10, seed=3)
  it = ds.batches(0, 4, steps_per_call=2)
  full = [next(it) for _ in range(8)]
  resumed = ds.batches(3, 4, steps_per_call=2)
  for i in range(5):
    b = next(resumed)
    np.testing.assert_array_equal(b['image'], full[3 + i]['image'])
    np.testing.assert_array_equal(b['label'], full[3 + i]['label'])
  other = _array_dataset(n=10, seed=3)  # a fresh object gives the same stream
  np.testing.assert_array_equal(next(other.batches(5, 4, 2))['image'], full[5]['image'])
  assert not np.array_equal(_ids(next(_array_dataset(n=10, seed=4).batches(0, 4, 2))),
                            _ids(full[0]))


def test_epochs_cover_each_example_once():
  n, b = 11, 3  # batches straddle epoch ends; no example is dropped
  ds = _array_dataset(n=n, seed=0)
  it = ds.batches(0, b)
  ids = np.concatenate([_ids(next(it))[0] for _ in range(11)]).reshape(3, 11)
  for epoch in range(3):
    assert sorted(ids[epoch].tolist()) == list(range(n))
    np.testing.assert_array_equal(ids[epoch], data.stream_permutation(0, 'real', epoch, n))
  assert not np.array_equal(ids[0], ids[1])


def test_process_slices_union_is_global_batch():
  full = _array_dataset(n=24, seed=7, process_count=1).batches(2, 8, steps_per_call=3)
  shards = [_array_dataset(n=24, seed=7, process_index=p, process_count=4).batches(2, 8, 3)
            for p in range(4)]
  for _ in range(3):
    g = next(full)
    parts = [next(s) for s in shards]
    assert parts[0]['image'].shape == (3, 2, 2, 2, 1)
    np.testing.assert_array_equal(np.concatenate([p['image'] for p in parts], axis=1), g['image'])
    np.testing.assert_array_equal(np.concatenate([p['label'] for p in parts], axis=1), g['label'])


def test_batch_validation_errors():
  ds = _array_dataset(n=10, process_index=0, process_count=4)
  with pytest.raises(ValueError, match='not divisible by the process count 4') as e:
    ds.batches(0, 6)
  assert '\n' not in str(e.value)
  with pytest.raises(ValueError, match='exceeds the 10 examples'):
    _array_dataset(n=10).batches(0, 12)
  with pytest.raises(ValueError, match='not divisible'):
    data.Dataset(data.ArraySource(np.zeros((8, 2, 2), np.uint8)), process_count=3,
                 global_batch_size=4)


# ----------------------------------------------------------------------------- missing data


def test_missing_fashion_mnist_message_is_one_line(monkeypatch):
  monkeypatch.setattr(sources, 'DEBIAN_DIRS', {})
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.load_images('fashion_mnist')
  msg = str(e.value)
  assert isinstance(e.value, ValueError) and '\n' not in msg
  assert 'apt-get install dataset-fashion-mnist' in msg and 'GANZOO_DATA_DIR' in msg
  assert 'TFDS_DATA_DIR' in msg and e.value.__cause__ is None
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.build_dataset({'name': 'cifar10', 'batch_size': 4, 'download': False}, 0, 0, 1)
  assert '\n' not in str(e.value) and "tfds dataset 'cifar10'" in str(e.value)
  with pytest.raises(data.DatasetNotFoundError, match='npz file'):
    data.load_images('npz', path='/nonexistent/x.npz')
  with pytest.raises(data.DatasetNotFoundError, match='unknown data set'):
    data.load_images('no_such_dataset_xyz')


# ----------------------------------------------------------------------------- synthetic


def test_ring8_samples_near_modes_and_deterministic():
  centers, std = synthetic.modes('ring8')
  assert centers.shape == (8, 2) and std == 0.02
  np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 2.0, atol=1e-6)  # 2 (cos, sin): a few ulps
  ds = data.build_dataset({'name': 'ring8', 'batch_size': 512}, seed=0, process_index=0,
                          process_count=1)
  assert ds.image_shape == (2,) and ds.num_examples is None and ds.num_classes == 8
  batch = next(ds.batches(0, steps_per_call=2))
  x = batch['image'].reshape(-1, 2)
  assert batch['image'].shape == (2, 512, 2) and batch['image'].dtype == np.float32
  dist = np.linalg.norm(x[:, None] - centers[None], axis=-1)
  # Sampling bounds (any seed): a 2-d Gaussian sample is beyond 6 std with probability e^-18 =
  # 1.5e-8 (1.6e-5 for all 1024); within 3 std (mode_stats' "high quality") with p = 1 - e^-4.5 =
  # 0.989, so 0.97 is 5.7 binomial sigma below; the KL of 1024 counts over 8 equal modes from
  # uniform is ~(8 - 1) / (2 * 1024) = 3.4e-3 on average, 0.02 is > 10 sigma above it.
  assert dist.min(axis=1).max() < 6 * std  # every sample within 6 std of a mode
  np.testing.assert_array_equal(dist.argmin(axis=1), batch['label'].reshape(-1))
  stats = synthetic.mode_stats(x, 'ring8')
  assert stats['modes_covered'] == 8 and stats['high_quality_fraction'] > 0.97
  assert stats['kl_modes'] < 0.02
  again = next(ds.batches(1))
  np.testing.assert_array_equal(again['image'][0], batch['image'][1])  # step 1 == 2nd of call 0
  half = data.build_dataset({'name': 'ring8', 'batch_size': 512}, 0, 1, 2)
  np.testing.assert_array_equal(next(half.batches(0))['image'][0], batch['image'][0, 256:])


def test_grid25_and_collapsed_stats():
  centers, std = synthetic.modes('grid25')
  assert centers.shape == (25, 2) and std == 0.05
  assert set(np.unique(centers).tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
  collapsed = np.repeat(centers[:2], 50, axis=0)
  stats = synthetic.mode_stats(collapsed, 'grid25')
  assert stats['modes_covered'] == 2 and stats['high_quality_fraction'] == 1.0
  np.testing.assert_allclose(stats['kl_modes'], np.log(25 / 2), rtol=1e-6)  # float64 closed form: ~1e-15
  samples = data.load_images('grid25', max_examples=100)
  assert samples['image'].shape == (100, 2) and samples['image'].dtype == np.float32


# ----------------------------------------------------------------------------- prefetch


def test_prefetch_order_errors_and_close():
  assert list(data.prefetch(iter(range(7)), size=2)) == list(range(7))

  def failing():
    yield 1
    raise RuntimeError('boom in reader')

  it = data.prefetch(failing())
  assert next(it) == 1
  with pytest.raises(RuntimeError, match='boom in reader'):
    next(it)

  produced = []

  def endless():
    i = 0
    while True:
      produced.append(i)
      yield i
      i += 1

  with data.prefetch(endless(), size=2) as it:
    assert [next(it) for _ in range(3)] == [0, 1, 2]
  assert not it.alive
  count = len(produced)
  time.sleep(0.1)
  assert len(produced) == count <= 6  # stopped, and never ran more than size + 1 ahead
  assert threading.active_count() < 50


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (FASHION_DIR / 'train-images-idx3-ubyte.gz').is_file(),
                    reason='dataset-fashion-mnist (Debian) is not installed')
def test_real_fashion_mnist_from_debian_package():
  path = FASHION_DIR / 'train-images-idx3-ubyte.gz'
  assert hashlib.sha256(path.read_bytes()).hexdigest() == FASHION_TRAIN_SHA256
  out = data.load_images('fashion_mnist')
  assert out['image'].shape == (60000, 28, 28, 1) and out['image'].dtype == np.uint8
  assert out['label'].shape == (60000,)
  np.testing.assert_array_equal(np.bincount(out['label']), [6000] * 10)
  assert out['label'][0] == 9  # the first training image is an ankle boot
  test = data.load_images('fashion_mnist', split='test')
  assert test['image'].shape == (10000, 28, 28, 1)
  assert os.fspath(sources.find_idx('fashion_mnist', 'train')[0]) == os.fspath(path)
