"""The training program: every config runs, NaN stop, one-line errors (resume == unbroken run is
tested for every family in tests/test_families.py)."""

import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganzoo import parallel
from ganzoo import train
from tests.test_steps import ROOT, load_config

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))


def write_npz(path, n=64, shape=(28, 28, 1), num_classes=10, seed=0):
  rng = np.random.default_rng(seed)
  np.savez(path, images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
           labels=rng.integers(0, num_classes, (n,)).astype(np.int32))
  return str(path)


def npz_config(name, tmp_path, arg="tiny", shape=(28, 28, 1)):
  config = load_config(name, arg)
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "data.npz", shape=shape)
  config.eval.every = 0
  return config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def one_device():
  return parallel.make_mesh(jax.devices()[:1])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_runs_two_tiny_steps(name, tmp_path):
  config = load_config(name, "tiny")
  shape = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
           "celeb_a": (64, 64, 3), "imagenet2012": (128, 128, 3)}.get(config.data.name, (32, 32, 3))
  if config.data.image_size:
    shape = (config.data.image_size, config.data.image_size, shape[2])
  config = npz_config(name, tmp_path, "tiny", shape)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert summary["step"] == 2
  lines = read_metrics(tmp_path / "run")
  assert lines[0]["step"] == 0 and lines[0]["params/g"] > 0 and lines[0]["params/d"] > 0
  assert [l["step"] for l in lines[1:]] == [1, 2]
  assert all(np.isfinite(v) for l in lines[1:] for k, v in l.items() if k.startswith("train/"))
  assert os.path.exists(tmp_path / "run" / "samples" / "step_00000002.png")
  assert glob.glob(str(tmp_path / "run" / "tb" / "events.out.tfevents.*"))
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path, capsys):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  for f in glob.glob(str(workdir / "checkpoints" / "4" / "**" / "*"), recursive=True):
    if os.path.isfile(f):
      with open(f, "wb") as fh:
        fh.write(b"garbage")
  config.train.num_steps = 5
  summary = train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  assert summary["start_step"] == 2
  assert "failed to restore" in capsys.readouterr().out
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "5"]  # 4 re-written after the fall-back
  assert len(os.listdir(workdir / "checkpoints_failed")) == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.train.checkpoint_every = 1
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  config.train.num_steps = 4
  config.nets.d.optim.lr = float("nan")       # step 3's D update makes D NaN; G's loss at step 3 is NaN
  with pytest.raises(train.NonFiniteLossError, match=r"step 3: train/\w+ is nan.*last good checkpoint \(step 2\)"):
    # A changed learning rate alters the run's results: resuming with it needs the override.
    train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False, allow_config_change=True)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1", "2"]


def test_nan_params_are_never_checkpointed(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.train.checkpoint_every = 1
  config.nets.g.optim.lr = float("nan")       # step 1's losses are finite, but its G update is NaN
  with pytest.raises(train.NonFiniteLossError, match="step 1: the parameters .* became NaN"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert os.listdir(tmp_path / "run" / "checkpoints") == []


def test_unknown_config_key_is_an_error(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.unlock()
  config.train.lerning_rate = 1.0
  with pytest.raises(ValueError, match="unknown config key 'train.lerning_rate'"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)


def test_image_shape_the_model_cannot_take(tmp_path):
  config = npz_config("dcgan", tmp_path, shape=(30, 30, 1))
  with pytest.raises(ValueError, match=r"dcgan supports .* got \(30, 30, 1\)"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)


def test_cli_prints_one_line_errors(tmp_path):
  """The CLI turns user errors into one line on stderr and exit code 1."""
  data = write_npz(tmp_path / "d.npz")
  base = [sys.executable, "-m", "ganzoo.main", "--config=configs/dcgan.py:tiny", f"--workdir={tmp_path / 'w'}",
          "--config.data.name=npz", f"--config.data.path={data}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  bad_batch = subprocess.run(base + ["--config.data.batch_size=6"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert bad_batch.returncode == 1
  err = bad_batch.stderr.strip().splitlines()
  assert err[-1].startswith("error: data.batch_size=6 must be divisible by the number of devices (4)"), err
  unknown = subprocess.run(base + ["--config.train.lerning_rate=1"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert unknown.returncode != 0 and "lerning_rate" in unknown.stderr
  missing = subprocess.run(base[:5] + ["--config.data.name=cifar10", "--config.data.source=tfds",
                                       f"--config.data.data_dir={tmp_path / 'none'}"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
  errors = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
  assert missing.returncode == 1 and len(errors) == 1 and "Traceback" not in missing.stderr, missing.stderr
  assert "cifar10 not found" in errors[0] and "TFDS_DATA_DIR" in errors[0]
