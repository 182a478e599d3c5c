"""The FID/KID reference is the run's own data config at `eval.real_split` (transforms, data_dir,
source, path), its statistics' cache key holds every field that changes the reference images, and a
reference that cannot be built stops a run with eval on before step 1.

Features come from a pixel-average stand-in for the Inception network (the plumbing is under test;
tests/test_evaluate_run.py runs the real network end to end).
"""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ganzoo import evaluate
from ganzoo import train
from ganzoo.metrics import protocol
from tests.test_data import _make_idx_dir
from tests.test_train import npz_config, one_device, read_metrics, write_npz


class RecordingExtractor:
  """features = 16 pixel averages per image; records the shape of every batch it is given."""
  weights_sha256 = "pixel-averages"
  has_logits = False

  def __init__(self):
    self.shapes = []

  def extract_batches(self, batches, total, batch_size=50, progress=None):
    feats = []
    for b in batches:
      b = np.asarray(b)
      assert b.dtype == np.uint8 and b.ndim == 4
      self.shapes.append(b.shape[1:])
      feats.append(b.astype(np.float32).reshape(len(b), 16, -1).mean(-1))
    f = np.concatenate(feats)
    assert len(f) == total
    return {"features": f, "logits": None}


@pytest.fixture
def extractor(tmp_path, monkeypatch):
  """A fresh stand-in extractor for every `evaluate.get_extractor` call, a private stats cache."""
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setattr(protocol, "_MEMORY", {})
  ex = RecordingExtractor()
  monkeypatch.setattr(evaluate, "get_extractor", lambda path=None: ex)
  return ex


def eval_config(config, every=2, num_samples=8):
  config.train.num_steps = 2
  config.eval.every = every
  config.eval.num_samples = num_samples
  config.eval.batch_size = 8
  return config


def test_reference_of_a_32px_run_on_28px_data_is_32px(tmp_path, extractor):
  """data.image_size=32 on 28x28 images: the reference images are resized like the training images."""
  config = eval_config(npz_config("dcgan", tmp_path))   # 64 random 28x28x1 images
  config.data.image_size = 32
  ref = train.reference_name(config)
  images = protocol.load_reference_images(ref, 4)
  assert images.shape == (4, 32, 32, 1)
  want = train.setup(config, one_device())[0].source.get(np.arange(4))["image"]   # the training loader
  np.testing.assert_array_equal(images, want)

  train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  line = read_metrics(tmp_path / "run")[-1]
  assert line["step"] == 2 and np.isfinite(line["eval/fid"]) and "eval/error" not in line
  # Reference (computed before step 1) and samples alike are 32x32: nothing at the stored 28x28.
  assert extractor.shapes and set(extractor.shapes) == {(32, 32, 1)}
  files = os.listdir(tmp_path / "cache" / "fid_stats")
  assert len(files) == 1 and "image_size_32" in files[0], files


def test_cache_key_holds_every_field_that_changes_the_reference(tmp_path):
  data = write_npz(tmp_path / "a.npz", n=16)
  base = protocol.Reference(name="npz", path=data)
  path = lambda ref: protocol.statistics_path(ref, "w", 8)[0]
  variants = [base, protocol.Reference(name="npz", path=data, image_size=32),
              protocol.Reference(name="npz", path=data, center_crop=20),
              protocol.Reference(name="npz", path=data, max_examples=10),
              protocol.Reference(name="npz", path=write_npz(tmp_path / "b.npz", n=16, seed=1)),
              protocol.Reference(name="mnist", split="test"), protocol.Reference(name="mnist", split="train"),
              protocol.Reference(name="mnist", split="test", data_dir=str(tmp_path)),
              protocol.Reference(name="mnist", split="test", source="tfds")]
  assert len({path(r) for r in variants}) == len(variants)
  assert protocol.statistics_path(base, "w", 8)[0] != protocol.statistics_path(base, "other-weights", 8)[0]
  assert protocol.statistics_path(base, "w", 8)[0] != protocol.statistics_path(base, "w", 16)[0]
  # Same content, same key: a moved copy of the file, an int or (H, W) size, a split the npz ignores.
  shutil.copy(data, tmp_path / "copy.npz")
  same = [protocol.Reference(name="npz", path=str(tmp_path / "copy.npz")),
          protocol.Reference(name="npz", path=data, split="train")]
  assert {path(r) for r in same} == {path(base)}
  assert path(protocol.Reference(name="npz", path=data, image_size=32)) == path(
      protocol.Reference(name="npz", path=data, image_size=(32, 32)))
  # The recorded name says what the reference is.
  assert protocol.reference_name(protocol.Reference(name="npz", path=data, image_size=32)).startswith("a.npz@sha256:")
  assert protocol.reference_name(protocol.Reference(name="npz", path=data, image_size=32)).endswith("[image_size=32]")
  assert protocol.reference_name("cifar10:test") == "cifar10:test"


def write_folder(path, n=24, shape=(28, 28), seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(path)
  images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
  for i, im in enumerate(images):
    Image.fromarray(im).save(os.path.join(path, f"{i:03d}.png"))
  return images


def test_a_folder_data_set_evaluates(tmp_path, extractor):
  images = write_folder(str(tmp_path / "imgs"))
  config = eval_config(npz_config("dcgan", tmp_path))
  config.data.name, config.data.path = "folder", str(tmp_path / "imgs")
  np.testing.assert_array_equal(protocol.load_reference_images(train.reference_name(config), None)[..., 0], images)
  train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  line = read_metrics(tmp_path / "run")[-1]
  assert line["step"] == 2 and "eval/error" not in line and np.isfinite(line["eval/fid"]) and line["eval/fid"] > 0
  with open(tmp_path / "run" / "best" / "best.json") as f:
    assert json.load(f) == {"fid": line["eval/fid"], "step": 2}
  # `python -m ganzoo.evaluate --workdir` defaults to the same reference: same samples, same value
  # (the same single-device programs on the same checkpoint; rtol only for summation order).
  result = evaluate.evaluate_workdir(str(tmp_path / "run"), "fid", batch_size=8, write=False)
  assert result["protocol"]["reference"].startswith("folder:imgs@sha256:")
  np.testing.assert_allclose(result["fid"], line["eval/fid"], rtol=1e-6)
  # The folder's key follows its content: an edited image gives new statistics.
  ref = train.reference_name(config)
  before = protocol.statistics_path(ref, "w", 8)[0]
  Image.fromarray(255 - images[0]).save(tmp_path / "imgs" / "000.png")
  assert protocol.statistics_path(ref, "w", 8)[0] != before


def test_an_idx_data_set_under_data_dir_is_its_own_reference(tmp_path, extractor, monkeypatch):
  """data.data_dir is searched for the reference split too (the loader's IDX/tfds search order)."""
  monkeypatch.delenv("GANZOO_DATA_DIR", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))   # no ~/.cache/ganzoo/mnist to fall back on
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
  written = _make_idx_dir(tmp_path / "mnist_files", n_train=24, n_test=10)
  config = eval_config(npz_config("dcgan", tmp_path))
  config.data.name, config.data.path, config.data.data_dir = "mnist", None, str(tmp_path / "mnist_files")
  config.eval.real_split = "test"
  got = protocol.load_reference_images(train.reference_name(config), None)
  np.testing.assert_array_equal(got[..., 0], written["t10k"][0])


def test_a_reference_that_cannot_be_built_stops_the_run_before_step_1(tmp_path, extractor, monkeypatch):
  """Missing split: the run stops with one line before step 1 (no checkpoint, only the step-0 line)
  instead of logging eval/error at every evaluation."""
  monkeypatch.delenv("GANZOO_DATA_DIR", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  folder = tmp_path / "train_only"
  _make_idx_dir(folder, n_train=24, n_test=4)
  for f in folder.glob("t10k-*"):
    f.unlink()
  config = eval_config(npz_config("dcgan", tmp_path), every=1)
  config.data.name, config.data.source, config.data.path = "mnist", "idx", str(folder)
  with pytest.raises(ValueError, match="cannot be built: mnist not found") as info:
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  text = str(info.value)
  assert "\n" not in text and text.startswith("eval.every=1:") and "eval.every=0" in text
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "1")
  assert [l["step"] for l in read_metrics(tmp_path / "run")] == [0]


def test_too_few_reference_images_or_no_inception_weights_fail_when_the_evaluator_is_built(tmp_path, monkeypatch):
  """The evaluator is built before step 1 (the line above); here it is built alone, which is cheap."""
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setattr(evaluate, "get_extractor", lambda path=None: RecordingExtractor())
  config = eval_config(npz_config("dcgan", tmp_path), every=1, num_samples=100)   # the npz holds 64 images
  _, method, _ = train.setup(config, one_device())
  with pytest.raises(ValueError, match="has 64 images < 100: lower eval.num_samples"):
    train._make_evaluator(config, method, str(tmp_path / "run"))  # pylint: disable=protected-access
  monkeypatch.undo()
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  config.eval.num_samples = 8
  config.eval.inception_weights = str(tmp_path / "nope.npz")
  with pytest.raises(ValueError, match="eval.every=1: .*FID Inception weights not found") as info:
    train._make_evaluator(config, method, str(tmp_path / "run"))  # pylint: disable=protected-access
  assert "\n" not in str(info.value)
