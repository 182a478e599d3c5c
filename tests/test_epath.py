"""A workdir that is a URL (gs://bucket/run): training, resuming, sampling and evaluating read and
write every workdir file through etils.epath, never a local folder named `gs:`.

No network: epath's gs:// backend (`etils.epath.gpath._PREFIX_TO_BACKEND['gs']`, the table its
`Path._backend` reads) is replaced by `LocalBucket`, which serves gs://<bucket>/<path> from
<root>/<bucket>/<path> and refuses any other path. Covered through that backend: metrics.jsonl (written
whole at close, kept lines on resume), config.json, config_changes.jsonl, samples/*.png, the sheets of
`ganzoo.sample`, the eval line of `ganzoo.evaluate`, check_workdir's probe, wandb_id.txt is covered in
tests/test_wandb.py. Not covered: orbax's own gs:// I/O. orbax writes array data with tensorstore's
`gcs` driver, which talks to GCS directly (not through epath), so here `ocp.CheckpointManager` is
handed the bucket's local folder for the URL; the test checks that ganzoo passes it the URL unchanged
(`gs://bucket/run/checkpoints`), which is all ganzoo does for checkpoints on a URL.
"""

import json
import os

import numpy as np
import pytest
from etils.epath import backend as epath_backend
from etils.epath import gpath
from PIL import Image

from ganzoo import checkpoint
from ganzoo import evaluate
from ganzoo import paths
from ganzoo import runs
from ganzoo import sample as sample_lib
from ganzoo import train
from ganzoo import writers
from tests.test_train import npz_config, one_device

URL = "gs://bucket/run"


class LocalBucket(epath_backend._OsPathBackend):  # pylint: disable=protected-access
  """epath's backend for gs:// URLs, served from a local folder (a stand-in for GCS)."""

  def __init__(self, root):
    self.root = str(root)

  def local(self, path) -> str:
    path = os.fspath(path)
    if not path.startswith("gs://"):
      raise AssertionError(f"a local path reached the gs:// backend: {path}")
    return os.path.join(self.root, path[len("gs://"):])

  def url(self, path) -> str:
    return "gs://" + os.path.relpath(os.fspath(path), self.root)

  def open(self, path, mode):
    return super().open(self.local(path), mode)

  def exists(self, path):
    return super().exists(self.local(path))

  def isdir(self, path):
    return super().isdir(self.local(path))

  def listdir(self, path):
    return super().listdir(self.local(path))

  def glob(self, path):
    return [self.url(p) for p in super().glob(self.local(path))]

  def walk(self, top, *, top_down=True, on_error=None):
    for folder, dirs, files in super().walk(self.local(top), top_down=top_down, on_error=on_error):
      yield self.url(folder), dirs, files

  def makedirs(self, path, *, exist_ok=False, mode=None):
    return super().makedirs(self.local(path), exist_ok=exist_ok, mode=mode)

  def mkdir(self, path, *, exist_ok=False, mode=None):
    return super().mkdir(self.local(path), exist_ok=exist_ok, mode=mode)

  def rmtree(self, path):
    return super().rmtree(self.local(path))

  def remove(self, path):
    return super().remove(self.local(path))

  def rename(self, path, dst):
    return super().rename(self.local(path), self.local(dst))

  def replace(self, path, dst):
    return super().replace(self.local(path), self.local(dst))

  def copy(self, path, dst, overwrite):
    return super().copy(self.local(path), self.local(dst), overwrite)

  def stat(self, path):
    return super().stat(self.local(path))


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """gs:// served from tmp_path/gcs; the current directory is an empty tmp_path/cwd (a URL turned
  into a local path would land there); orbax gets the bucket's folder for a gs:// directory."""
  fake = LocalBucket(tmp_path / "gcs")
  os.makedirs(fake.root)
  monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, "gs", fake)  # pylint: disable=protected-access
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)   # TensorFlow's gfile would win otherwise
  os.makedirs(tmp_path / "cwd")
  monkeypatch.chdir(tmp_path / "cwd")
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  real = checkpoint.ocp.CheckpointManager
  fake.orbax_dirs = []

  def manager(directory, *args, **kwargs):
    fake.orbax_dirs.append(os.fspath(directory))
    directory = fake.local(directory) if os.fspath(directory).startswith("gs://") else directory
    return real(directory, *args, **kwargs)

  monkeypatch.setattr(checkpoint.ocp, "CheckpointManager", manager)
  return fake


def read_lines(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_url_workdir_trains_resumes_samples_and_evaluates(bucket, tmp_path, monkeypatch):
  config = npz_config("dcgan", tmp_path)   # tiny: 2 steps, log every step, samples and checkpoint at 2
  summary = train.train_and_evaluate(config, URL, mesh=one_device(), progress=False)
  run = os.path.join(bucket.root, "bucket", "run")
  assert summary["workdir"] == URL and summary["last_samples"] == f"{URL}/samples/step_00000002.png"
  assert os.listdir(tmp_path / "cwd") == [], "a URL workdir must not become a local folder"
  lines = read_lines(os.path.join(run, "metrics.jsonl"))
  assert [l["step"] for l in lines] == [0, 1, 2]
  assert lines[-1]["train/d_loss"] == summary["metrics"]["train/d_loss"]
  with open(os.path.join(run, "config.json")) as f:
    assert json.load(f) == json.loads(config.to_json_best_effort())
  grid = np.asarray(Image.open(os.path.join(run, "samples", "step_00000002.png")))
  assert grid.shape == (2 * 28 + 3 * 2, 2 * 28 + 3 * 2)   # 4 grey 28x28 images, 2 x 2, 2-pixel padding
  # Checkpoints: orbax is handed the URL as given.
  assert bucket.orbax_dirs == [f"{URL}/checkpoints"]
  assert os.listdir(os.path.join(run, "checkpoints")) == ["2"]
  # TensorBoard: tensorboardX cannot write gs:// without google-cloud-storage; the files go to the cache.
  if writers._tensorboardx_writes(URL):  # pylint: disable=protected-access
    pytest.skip("google-cloud-storage is installed: tensorboardX would write to the (fake) bucket")
  tb = writers.local_tb_dir(URL)
  assert tb == str(tmp_path / "cache" / "tb" / "gs" / "bucket" / "run" / "tb")
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tb))
  assert not os.path.exists(os.path.join(run, "tb"))

  # Reading the run back from the URL: its config, its checkpoint, a sample sheet, an evaluation line.
  assert runs.load_run_config(URL).to_dict() == json.loads(config.to_json_best_effort())
  method = runs.build_method(runs.load_run_config(URL))
  _, step = runs.restore_state(method, URL)
  assert step == 2
  out = sample_lib.sample(URL, "truncation", num=3, thresholds=[1.0, None])
  assert out == f"{URL}/samples/truncation_step_00000002.png"
  assert np.asarray(Image.open(os.path.join(run, "samples", "truncation_step_00000002.png"))).shape == (
      2 * 30 + 2, 3 * 30 + 2)
  monkeypatch.setattr(evaluate, "get_extractor", lambda *a, **k: None)
  monkeypatch.setattr(evaluate, "evaluate_sampler", lambda *a, **k: {"fid": 12.5, "protocol": {}})
  assert evaluate.evaluate_workdir(URL, "fid")["step"] == 2
  assert read_lines(os.path.join(run, "metrics.jsonl"))[-1] == {"step": 2, "eval/fid": 12.5}

  # A resume from the URL: the kept lines, the new steps, a recorded (harmless) config change.
  config.train.num_steps = 4
  config.train.log_every = 2
  summary = train.train_and_evaluate(config, URL, mesh=one_device(), progress=False)
  assert summary["start_step"] == 2 and summary["step"] == 4
  lines = read_lines(os.path.join(run, "metrics.jsonl"))
  assert [l["step"] for l in lines] == [0, 1, 2, 2, 4] and lines[3] == {"step": 2, "eval/fid": 12.5}
  changes = read_lines(os.path.join(run, "config_changes.jsonl"))
  assert changes == [{"step": 2, "changed": {"train.log_every": [1, 2], "train.num_steps": [2, 4]}, "removed": [],
                      "alters_results": []}]
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["2", "4"]
  assert os.listdir(tmp_path / "cwd") == []


def test_check_workdir_probes_a_url_and_refuses_unknown_schemes(bucket):
  runs.check_workdir("gs://bucket/new")
  assert os.listdir(os.path.join(bucket.root, "bucket", "new")) == []   # created, probe removed
  with pytest.raises(ValueError, match=r"memory:// is not a supported workdir"):
    runs.check_workdir("memory://x/run")
  assert paths.resolve("runs/a") == os.path.join(os.getcwd(), "runs", "a")


def test_url_metrics_are_rewritten_whole_at_most_every_flush_interval(bucket, monkeypatch):
  """An object cannot be appended to: a URL workdir's metrics.jsonl is written whole, not more often
  than writers._URL_FLUSH_SECONDS, and at close; a resume keeps the lines up to its step."""
  clock = [1000.0]
  monkeypatch.setattr(writers.time, "time", lambda: clock[0])
  path = os.path.join(bucket.root, "bucket", "m", "metrics.jsonl")
  paths.makedirs(URL.replace("run", "m"))
  w = writers.MetricWriter(URL.replace("run", "m"), 0)
  w.write(1, {"a": 1.0})
  assert not os.path.exists(path)                         # within the interval: nothing written yet
  clock[0] += writers._URL_FLUSH_SECONDS                  # pylint: disable=protected-access
  w.write(2, {"a": 2.0})
  assert read_lines(path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}]
  w.write(3, {"a": 3.0})
  w.close()
  assert [l["step"] for l in read_lines(path)] == [1, 2, 3]
  w = writers.MetricWriter(URL.replace("run", "m"), 2)   # a resume from step 2
  w.write(3, {"a": 4.0})
  w.close()
  assert read_lines(path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}, {"step": 3, "a": 4.0}]
