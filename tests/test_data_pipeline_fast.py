"""The fast input pipeline: decode-once caches, grain worker processes, the device-prefetch stage.

Every path must give the in-process batches exactly (uint8 pixels and int32 labels are compared
with array_equal: decoding the same file with the same PIL calls has no rounding to tolerate).
"""

import json
import multiprocessing
import os

import numpy as np
import pytest
from PIL import Image

from ganzoo import config as config_lib
from ganzoo.data import cache as cache_lib
from ganzoo.data import pipeline
from ganzoo.data import sources
from ganzoo.data import workers as workers_lib


def _folder(root, per_class=13, shape=(20, 18, 3)):
  """Two class subfolders of random PNGs (non-square, so image_size=16 crops and resizes)."""
  rng = np.random.default_rng(0)
  for c in ('cat', 'dog'):
    (root / c).mkdir(parents=True)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / c / f'{i:02d}.png')
  return {'name': 'folder', 'path': str(root), 'image_size': 16, 'batch_size': 6}


def _reads(ds, plan):
  return [ds.read('real', off, count, b) for off, count, b in plan]


def _assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape
      np.testing.assert_array_equal(x[k], y[k])


# The train loop's pattern: consecutive offsets, 2 batches a call, crossing the 26-example epoch
# end twice.
_PLAN = [(0, 2, 6), (12, 2, 6), (24, 2, 6), (36, 2, 6), (48, 2, 6)]
# Then a jump back (a resume: the worker reader restarts there) and another shape (a new stage).
_JUMPS = [(6, 1, 6), (12, 1, 4), (16, 1, 4)]


def test_worker_batches_equal_in_process(tmp_path):
  """grain's 2 processes compute batches 0, 2, .. and 1, 3, ..; they come back in order."""
  pytest.importorskip('grain')
  cfg = _folder(tmp_path / 'imgs')
  # process 1 of 2: the worker copies keep the process slice too
  ref = pipeline.build_dataset(cfg, 5, process_index=1, process_count=2)
  ds = pipeline.build_dataset({**cfg, 'workers': 2}, 5, process_index=1, process_count=2)
  try:
    got = _reads(ds, _PLAN)
    assert ds._readers['real'].next_offset == 60   # pylint: disable=protected-access
  finally:
    ds.close()
  _assert_same(got, _reads(ref, _PLAN))
  assert got[0]['image'].shape == (2, 3, 16, 16, 3) and got[0]['label'].shape == (2, 3)
  assert not ds._readers   # pylint: disable=protected-access
  assert not multiprocessing.active_children()   # close() stopped the worker processes


class _InProcess:
  """workers._Iterator without processes (fn(start), fn(start + 1), ...), recording each start."""
  starts = []

  def __init__(self, fn, start, stop, workers, buffer=2):
    del workers, buffer
    self.fn, self.k, self.stop = fn, start, stop
    _InProcess.starts.append((getattr(fn, 'offset', None), start, stop))

  def __next__(self):
    if self.k >= self.stop:
      raise StopIteration
    self.k += 1
    return workers_lib._plain(self.fn(self.k - 1))  # pylint: disable=protected-access

  def close(self):
    pass


def test_worker_reader_restarts_on_any_other_read(tmp_path, monkeypatch):
  """The bookkeeping around the worker iterators (which the test above runs for real)."""
  monkeypatch.setattr(workers_lib, '_Iterator', _InProcess)
  monkeypatch.setattr(workers_lib, 'import_grain', lambda workers: None)
  _InProcess.starts = []
  cfg = _folder(tmp_path / 'imgs')
  ref = pipeline.build_dataset(cfg, 5, 0, 1)
  ds = pipeline.build_dataset({**cfg, 'workers': 3}, 5, 0, 1)
  _assert_same(_reads(ds, _PLAN + _JUMPS), _reads(ref, _PLAN + _JUMPS))
  # one reader for the plan, one at the jump to 6, one for the new shape; 16 follows 12 with shape (1, 4)
  assert [s[0] for s in _InProcess.starts] == [0, 6, 12]
  # decode_all: chunks of 8 of the 26 examples, the last of 2, in order
  src = sources.open_source('folder', path=cfg['path'], image_size=16)
  parts = list(workers_lib.decode_all(src, workers=2, chunk=8))
  assert [lo for lo, _ in parts] == [0, 8, 16, 24] and _InProcess.starts[-1] == (None, 0, 4)
  whole = src.get(np.arange(26))
  for key in ('image', 'label'):
    np.testing.assert_array_equal(np.concatenate([p[key] for _, p in parts]), whole[key])


def test_memory_cache_equals_decoding(tmp_path):
  cfg = _folder(tmp_path / 'imgs')
  ref = pipeline.build_dataset(cfg, 5, 0, 1)
  ds = pipeline.build_dataset({**cfg, 'cache': 'memory'}, 5, 0, 1)
  assert isinstance(ref.source, sources.FolderSource) and isinstance(ds.source, sources.ArraySource)
  assert ds.source.images.shape == (26, 16, 16, 3) and ds.num_classes == 2
  _assert_same(_reads(ds, _PLAN), _reads(ref, _PLAN))


def test_disk_cache_written_once_then_read_without_decoding(tmp_path, monkeypatch):
  cfg = _folder(tmp_path / 'imgs')
  cache = tmp_path / 'cache'
  ref = _reads(pipeline.build_dataset(cfg, 5, 0, 1), _PLAN)
  first = pipeline.build_dataset({**cfg, 'cache': str(cache)}, 5, 0, 1)
  (key,) = os.listdir(cache)
  assert key.startswith('folder-train-16x16-0-')
  assert sorted(os.listdir(cache / key)) == ['images.npy', 'labels.npy', 'meta.json']
  assert json.loads((cache / key / 'meta.json').read_text())['num_examples'] == 26
  _assert_same(_reads(first, _PLAN), ref)

  # A second run decodes nothing (opening the folder reads its first image, for the shape, only).
  opened = []
  real_read = sources.FolderSource._read  # pylint: disable=protected-access
  monkeypatch.setattr(sources.FolderSource, '_read', lambda self, i: opened.append(i) or real_read(self, i))
  second = pipeline.build_dataset({**cfg, 'cache': str(cache)}, 5, 0, 1)
  assert opened == [0]
  _assert_same(_reads(second, _PLAN), ref)
  assert os.listdir(cache) == [key]
  # Another size is another key.
  pipeline.build_dataset({**cfg, 'cache': str(cache), 'image_size': 8}, 5, 0, 1)
  assert len(os.listdir(cache)) == 2


def test_disk_cache_killed_while_writing_leaves_no_cache(tmp_path, monkeypatch):
  cfg = _folder(tmp_path / 'imgs')
  cache = tmp_path / 'cache'

  def dies_halfway(source, workers=0, chunk=256):
    del workers, chunk
    yield 0, source.get(np.arange(4))
    raise KeyboardInterrupt

  monkeypatch.setattr(workers_lib, 'decode_all', dies_halfway)
  with pytest.raises(KeyboardInterrupt):
    pipeline.build_dataset({**cfg, 'cache': str(cache)}, 5, 0, 1)
  assert os.listdir(cache) == []
  monkeypatch.undo()
  # A temporary folder left by a killed process (no meta.json) is not read as a cache.
  src = sources.open_source('folder', path=cfg['path'], image_size=16)
  stale = cache / (cache_lib.cache_key(src, {**cfg, 'split': 'train', 'source': 'auto'}) + '.tmp-1-abc')
  stale.mkdir()
  ds = pipeline.build_dataset({**cfg, 'cache': str(cache)}, 5, 0, 1)
  _assert_same(_reads(ds, _PLAN), _reads(pipeline.build_dataset(cfg, 5, 0, 1), _PLAN))
  assert len(os.listdir(cache)) == 2


def test_arrays_pass_through_the_cache():
  src = sources.ArraySource(np.zeros((4, 2, 2, 1), np.uint8))
  assert cache_lib.cached(src, 'memory', {}) is src


class _Put:
  """A fake host-to-device copy that records when each item was put."""

  def __init__(self):
    self.log = []

  def __call__(self, item):
    self.log.append(('put', item))
    return ('dev', item)


def _items(n, fail_at=None):
  for i in range(n):
    if i == fail_at:
      raise ValueError(f'bad batch {i}')
    yield i


def test_device_prefetch_puts_the_next_batch_before_returning():
  put = _Put()
  it = pipeline.device_prefetch(_items(4), put, 1)
  got = []
  for item in it:
    got.append(item)
    put.log.append(('step', item[1]))   # the step dispatched with the item returned
  assert got == [('dev', i) for i in range(4)]
  # batch k + 1 is on its way before step k is dispatched, never two ahead
  assert put.log == [('put', 0), ('put', 1), ('step', 0), ('put', 2), ('step', 1), ('put', 3),
                     ('step', 2), ('step', 3)]


def test_device_prefetch_size_0_and_deferred_errors():
  put = _Put()
  assert list(pipeline.device_prefetch(_items(3), put, 0)) == [('dev', 0), ('dev', 1), ('dev', 2)]
  assert put.log == [('put', 0), ('put', 1), ('put', 2)]
  # The error of batch 2, met while prefetching during call 1, surfaces at call 2 as without prefetch.
  it = pipeline.device_prefetch(_items(5, fail_at=2), _Put(), 1)
  assert next(it) == ('dev', 0) and next(it) == ('dev', 1)
  with pytest.raises(ValueError, match='bad batch 2'):
    next(it)
  # So does an error of the copy itself.
  def put(item):
    if item == 1:
      raise RuntimeError('copy failed')
    return item
  it = pipeline.device_prefetch(_items(3), put, 1)
  assert next(it) == 0
  with pytest.raises(RuntimeError, match='copy failed'):
    next(it)
  with pytest.raises(ValueError, match='device prefetch size'):
    pipeline.device_prefetch(_items(1), _Put(), -2)   # -1 is auto


def test_device_prefetch_auto_is_one_on_accelerators():
  assert [pipeline.device_prefetch_size(-1, b) for b in ('cpu', 'gpu', 'tpu')] == [0, 1, 1]
  assert pipeline.device_prefetch_size(3, 'cpu') == 3 and pipeline.device_prefetch_size(0, 'gpu') == 0


def test_training_with_device_prefetch_equals_without(tmp_path):
  """The trainer's stage: 3 DCGAN steps with batch k + 1 copied ahead give the same losses."""
  from ganzoo import train  # pylint: disable=g-import-not-at-top
  from tests.test_train import npz_config, one_device, read_metrics  # pylint: disable=g-import-not-at-top
  runs = []
  for size in (0, 1):
    config = npz_config('dcgan', tmp_path)
    config.train.num_steps = 3
    config.train.log_every = 1
    config.train.sample_every = 0
    config.data.device_prefetch = size
    train.train_and_evaluate(config, str(tmp_path / f'run{size}'), mesh=one_device(), progress=False)
    runs.append([{k: v for k, v in r.items() if not k.startswith('perf/')} for r in read_metrics(tmp_path / f'run{size}')])
  assert [r['step'] for r in runs[0]] == [0, 1, 2, 3]
  assert runs[0] == runs[1]


@pytest.mark.parametrize('field,value,message', [
    ('workers', -1, r'config.data.workers=-1 must be an int >= 0'),
    ('device_prefetch', -2, r'config.data.device_prefetch=-2 must be an int >= -1 \(-1 = 1 on GPU/TPU'),
    ('cache', 'FILE', r"is a file, not a folder"),
])
def test_bad_pipeline_settings_are_one_line_errors(tmp_path, field, value, message):
  c = config_lib.get_base_config()
  if value == 'FILE':
    (tmp_path / 'f').write_text('x')
    value = str(tmp_path / 'f')
  c.data[field] = value
  with pytest.raises(ValueError, match=message) as e:
    config_lib.validate_config(c)
  assert '\n' not in str(e.value)


def test_workers_without_grain_say_how_to_install(monkeypatch):
  import sys  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, 'grain', None)   # import grain -> ImportError
  c = config_lib.get_base_config()
  c.data.workers = 2
  with pytest.raises(ValueError, match=r"pip install 'ganzoo\[grain\]', or set --config.data.workers=0"):
    config_lib.validate_config(c)
  assert workers_lib.check_workers(0) == 0   # the default never imports grain
