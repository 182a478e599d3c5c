"""Preparing a tfds data set that is not on the machine (data.download), offline and by tiny builders.

The builders below are real tfds GeneratorBasedBuilders (defining one registers its snake-case name
with tfds): a few 8x8 images, PNG-encoded with PIL so that tfds writes them without TensorFlow.
Nothing here reaches the network: the "offline" builder raises the error requests raises when a
host cannot be reached, and the name check of the download host is given a resolver that fails.
"""

import io
import os
import pathlib
import re
import socket
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from ganzoo import config as config_lib
from ganzoo import config_flags
from ganzoo import data
from ganzoo import train
from ganzoo.data import sources

tfds = pytest.importorskip('tensorflow_datasets')
requests = pytest.importorskip('requests')

N = 5
SIDE = 8


def _image(i: int) -> np.ndarray:
  """Example i's pixels: uint8 noise of its own seed (no two examples alike)."""
  return np.random.default_rng(i).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def _png(image: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='PNG')
  return buf.getvalue()


class GanzooDlTiny(tfds.core.GeneratorBasedBuilder):
  """N labelled 8x8 RGB images, example i = (_image(i), label i); no download step."""

  VERSION = tfds.core.Version('1.0.0')
  generated = 0   # how many times examples were generated (prepared once, then reused)

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(SIDE, SIDE, 3)),
        'label': tfds.features.ClassLabel(num_classes=N)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    type(self).generated += 1
    return {'train': self._generate_examples(range(N))}

  def _generate_examples(self, ids):
    for i in ids:
      yield i, {'image': _png(_image(i)), 'label': i}


class GanzooDlOffline(GanzooDlTiny):
  """A download that fails as requests fails on a machine without network."""

  generated = 0

  def _split_generators(self, dl_manager):
    type(self).generated += 1
    raise requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='data.example.invalid', port=443): Max retries exceeded with url: /tiny.tar "
        "(Caused by NameResolutionError: Failed to resolve 'data.example.invalid')")


class GanzooDlUrls(GanzooDlOffline):
  """The offline builder with a registered download URL (what a checksums file gives tfds)."""

  generated = 0
  url_infos = {'https://data.example.invalid/tiny.tar': None}


class GanzooDlManual(GanzooDlTiny):
  """Images that must be put in the manual folder by hand: tiny.npz with key 'images'."""

  generated = 0
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'manual_dir should contain tiny.npz (register at example.org to get it).'

  def _split_generators(self, dl_manager):
    type(self).generated += 1
    with np.load(dl_manager.manual_dir / 'tiny.npz') as z:
      images = z['images']
    return {'train': ((i, {'image': _png(image), 'label': i}) for i, image in enumerate(images))}


class GanzooDlArrays(GanzooDlTiny):
  """Images yielded as arrays: tfds encodes those with tf.image (TensorFlow)."""

  generated = 0

  def _generate_examples(self, ids):
    for i in ids:
      yield i, {'image': _image(i), 'label': i}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
  """tfds' default folder (read from $TFDS_DATA_DIR when tfds is imported) in tmp_path; no proxy."""
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'default_tfds'))
  monkeypatch.setattr(tfds.core.constants, 'DATA_DIR', str(tmp_path / 'default_tfds'))
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  for var in sources._PROXY_VARS:  # pylint: disable=protected-access
    monkeypatch.delenv(var, raising=False)


def _read_all(src) -> dict[int, np.ndarray]:
  batch = src.get(np.arange(src.num_examples))
  return {int(label): image for image, label in zip(batch['image'], batch['label'])}


def test_download_prepares_an_array_record_copy_and_reads_the_exact_images(tmp_path, capfd):
  root = tmp_path / 'tfds'
  GanzooDlTiny.generated = 0
  src = data.open_source('ganzoo_dl_tiny', data_dir=str(root), download=True)
  err = capfd.readouterr().err
  assert 'Generating train examples' in err   # tfds' own tqdm bar was shown
  assert GanzooDlTiny.generated == 1
  assert (src.image_shape, src.num_classes, src.num_examples) == ((SIDE, SIDE, 3), N, N)
  images = _read_all(src)
  assert sorted(images) == list(range(N))
  for i, image in images.items():
    np.testing.assert_array_equal(image, _image(i))   # PNG is lossless: the very pixels
  files = sorted(p.name for p in (root / 'ganzoo_dl_tiny' / '1.0.0').iterdir())
  assert files == ['dataset_info.json', 'features.json', 'ganzoo_dl_tiny-train.array_record-00000-of-00001']
  # Prepared once: the next run (downloading allowed or not) reads the copy, generating nothing.
  ds = data.build_dataset({'name': 'ganzoo_dl_tiny', 'data_dir': str(root), 'batch_size': 5}, 0, 0, 1)
  again = data.build_dataset({'name': 'ganzoo_dl_tiny', 'data_dir': str(root), 'batch_size': 5,
                              'download': False}, 0, 0, 1)
  assert GanzooDlTiny.generated == 1 and ds.num_examples == again.num_examples == N
  for i, image in _read_all(again.source).items():
    np.testing.assert_array_equal(image, _image(i))


def test_without_data_dir_the_copy_goes_to_tfds_default_folder(tmp_path):
  src = data.open_source('ganzoo_dl_tiny', download=True)
  assert src.num_examples == N and (tmp_path / 'default_tfds' / 'ganzoo_dl_tiny' / '1.0.0' / 'features.json').is_file()


def test_download_false_keeps_the_not_found_message(tmp_path):
  root = tmp_path / 'tfds'
  GanzooDlTiny.generated = 0
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.build_dataset({'name': 'ganzoo_dl_tiny', 'data_dir': str(root), 'batch_size': 5, 'download': False},
                       0, 0, 1)
  msg = str(e.value)
  assert msg.startswith("ganzoo_dl_tiny not found: prepare the tfds dataset 'ganzoo_dl_tiny' in TFDS_DATA_DIR")
  assert '\n' not in msg and GanzooDlTiny.generated == 0 and not (root / 'ganzoo_dl_tiny').exists()
  # The base config downloads by default; the data.download field turns it off; it takes a bool only.
  config = config_lib.get_base_config().to_dict()
  assert config['data']['download'] is True
  config['data']['download'] = 'no'   # as a config.json file could hold it
  with pytest.raises(ValueError, match=r"^config\.data\.download='no' is a str, not a bool: set it to a bool"):
    config_lib.validate_values(ml_collections.ConfigDict(config))


def test_offline_is_one_line_naming_the_host_and_how_to_copy(tmp_path):
  root = tmp_path / 'tfds'
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.open_source('ganzoo_dl_offline', data_dir=str(root), download=True)
  msg = str(e.value)
  assert msg.startswith('ganzoo_dl_offline is not prepared and cannot be downloaded: this machine cannot reach '
                        'data.example.invalid (HTTPSConnectionPool(')
  assert ('`tfds build ganzoo_dl_offline --file_format=array_record`' in msg and
          f'folder into {root} (TFDS_DATA_DIR or data.data_dir)' in msg)
  assert '\n' not in msg and e.value.__cause__ is None and len(msg) < 600
  # The CLI's error path: a user error (no traceback), printed as `error: <that line>`, exit code 1.
  config = config_lib.get_base_config()
  config.data.name, config.data.data_dir = 'ganzoo_dl_offline', str(root)
  with pytest.raises(config_flags.USER_ERRORS) as e2:
    data.build_dataset(config.data, 0, 0, 1)
  assert str(e2.value) == msg


def test_unresolvable_download_host_fails_at_once(tmp_path, monkeypatch):
  def no_dns(host, *args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, f'Name or service not known: {host}')
  monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
  GanzooDlUrls.generated = 0
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.open_source('ganzoo_dl_urls', data_dir=str(tmp_path / 'tfds'), download=True)
  assert 'cannot reach data.example.invalid (its name does not resolve)' in str(e.value)
  assert GanzooDlUrls.generated == 0    # tfds' downloader (10 retries, minutes) never started
  monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:3128')   # behind a proxy, names need not resolve here
  assert sources.unreachable_host(tfds.builder('ganzoo_dl_urls', data_dir=str(tmp_path / 'tfds'))) is None


def test_manual_download_names_the_folder_and_the_files_then_prepares(tmp_path):
  root = tmp_path / 'tfds'
  manual = root / 'downloads' / 'manual'
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.open_source('ganzoo_dl_manual', data_dir=str(root), download=True)
  msg = str(e.value)
  assert msg.startswith(f'ganzoo_dl_manual needs a manual download: put the files tfds expects (manual_dir '
                        f'should contain tiny.npz (register at example.org to get it).) in {manual} and rerun')
  assert '`tfds build ganzoo_dl_manual --manual_dir=DIR --file_format=array_record`' in msg and '\n' not in msg
  manual.mkdir(parents=True)
  images = np.stack([_image(i) for i in range(3)])
  np.savez(manual / 'tiny.npz', images=images)
  src = data.open_source('ganzoo_dl_manual', data_dir=str(root), download=True)
  got = _read_all(src)
  assert sorted(got) == [0, 1, 2]
  for i, image in got.items():
    np.testing.assert_array_equal(image, images[i])


def test_builders_that_need_tensorflow_say_how_to_install_it(tmp_path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec('tensorflow') is not None:
    pytest.skip('TensorFlow is installed: tfds encodes the arrays itself')
  root = tmp_path / 'tfds'
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.open_source('ganzoo_dl_arrays', data_dir=str(root), download=True)
  msg = str(e.value)
  assert msg.startswith('preparing ganzoo_dl_arrays needs TensorFlow (tfds extracts archives and encodes images')
  assert "pip install tensorflow-cpu (or pip install 'ganzoo[tf]') and rerun" in msg and '\n' not in msg
  assert not (root / 'ganzoo_dl_arrays' / '1.0.0').exists()   # no half-written copy left behind


def test_process_zero_prepares_first_and_every_process_meets_the_barrier_once(tmp_path):
  shared, local = str(tmp_path / 'shared'), str(tmp_path / 'local_of_1')
  seen = []   # at each barrier: how many times examples had been generated so far

  def run(index, name, root):
    kind = type(tfds.builder(name, data_dir=root))
    barrier = lambda tag: seen.append((tag, kind.generated))
    sources.prepare_in_turn(tfds, name, root, processes=lambda: (index, 2), barrier=barrier)
    return kind.generated

  GanzooDlTiny.generated = 0
  assert run(0, 'ganzoo_dl_tiny', shared) == 1     # process 0 prepares, then meets the barrier
  assert run(1, 'ganzoo_dl_tiny', shared) == 1     # shared folder: process 1 finds process 0's copy
  assert run(1, 'ganzoo_dl_tiny', local) == 2      # host-local folder: process 1 prepares its own, after
  tag = 'ganzoo_tfds_prepare_ganzoo_dl_tiny'
  assert seen == [(tag, 1), (tag, 1), (tag, 1)]
  seen.clear()
  GanzooDlOffline.generated = 0
  for index in (0, 1):   # a failure on process 0 still meets the barrier, so process 1 does not wait forever
    with pytest.raises(data.DatasetNotFoundError, match='cannot reach data.example.invalid'):
      run(index, 'ganzoo_dl_offline', shared)
  tag = 'ganzoo_tfds_prepare_ganzoo_dl_offline'
  assert seen == [(tag, 1), (tag, 1)] and GanzooDlOffline.generated == 2
  assert sources._processes() == (0, 1)   # pylint: disable=protected-access  (no jax.distributed here)


def test_turning_download_off_on_resume_changes_no_result():
  assert train._is_harmless('data.download', {}, {})     # pylint: disable=protected-access
  assert train._is_harmless('data_b.download', {}, {})   # pylint: disable=protected-access  (CycleGAN's B)


def test_two_processes_download_once_into_a_shared_folder_and_once_each_into_local_ones(tmp_path):
  """jax.distributed with 2 CPU processes (tests/tfds_download_worker.py): the real barrier."""
  from tests.test_multiprocess import finish, free_port  # pylint: disable=g-import-not-at-top  (not in the worker)
  root = pathlib.Path(__file__).resolve().parent.parent
  port = free_port()
  env = {k: v for k, v in os.environ.items() if not k.startswith(('JAX_', 'XLA_FLAGS'))}
  procs = [subprocess.Popen([sys.executable, str(root / 'tests' / 'tfds_download_worker.py'), str(port), str(i),
                             str(tmp_path / 'shared'), str(tmp_path / 'local')], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = finish(procs, timeout=300)
  pattern = r'process (\d)/2 (\w+): generated (\d+), 5 examples, exact True, (\w+)'
  lines = [{case: (int(i), int(n), digest) for i, case, n, digest in re.findall(pattern, out)} for out in outs]
  assert [sorted(l) for l in lines] == [['local', 'shared'], ['local', 'shared']], outs
  assert [l['shared'][:2] for l in lines] == [(0, 1), (1, 0)]   # process 0 prepared the shared copy, 1 read it
  assert [l['local'][:2] for l in lines] == [(0, 1), (1, 1)]    # a folder per host: each prepared its own
  assert len({l[c][2] for l in lines for c in l}) == 1          # the same images everywhere


def test_a_copy_renamed_into_place_by_another_run_meanwhile_is_used(tmp_path, monkeypatch):
  """Two runs preparing one folder at once: tfds' rename of the second fails; the first's copy is read."""
  root = str(tmp_path / 'tfds')
  real = tfds.core.DatasetBuilder.download_and_prepare

  def race(self, **kwargs):
    real(GanzooDlTiny(data_dir=root), file_format='array_record')   # the other run finishes first
    raise FileExistsError(f'Cannot rename {root}/ganzoo_dl_tiny/incomplete.X_1.0.0: destination exists')
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', race)
  src = data.open_source('ganzoo_dl_tiny', data_dir=root, download=True)
  for i, image in _read_all(src).items():
    np.testing.assert_array_equal(image, _image(i))
