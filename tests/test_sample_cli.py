"""ganzoo.sample on a tiny BigGAN run, and the program's start: param counts, num_steps=0."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from ganzoo import sample as sample_lib
from ganzoo import sampling
from ganzoo import methods
from ganzoo import train
from tests.test_steps import ROOT, load_config
from tests.test_train import one_device, read_metrics, write_npz

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def tiny_biggan(tmp_path):
  config = load_config("biggan", "tiny")
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "data.npz", n=32, shape=(32, 32, 3), num_classes=5)
  return config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("biggan")
  config = tiny_biggan(tmp_path)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert summary["step"] == 2
  return tmp_path / "run"


def read_png(path):
  return np.asarray(Image.open(path))


def test_sheets_have_the_layout_and_the_ema_generator_images(run_dir, tmp_path):
  """Each mode's PNG has the grid size of its rows x columns of 32x32 tiles (2-pixel padding), and
  the class sheet's pixels are G_ema(z, y) for the truncated latents of the seed."""
  tile = 32 + 2
  out = sample_lib.sample(str(run_dir), "classes", out=str(tmp_path / "c.png"), classes=[0, 3, 4], num=4,
                          truncation=0.5, seed=7)
  sheet = read_png(out)
  assert sheet.shape == (3 * tile + 2, 4 * tile + 2, 3)
  # The same images computed directly from the restored state.
  config = sample_lib.load_run_config(str(run_dir))
  gan = sample_lib.build_method(config)
  assert gan.num_classes == 5
  state, step = sample_lib.restore_state(gan, str(run_dir))
  assert step == 2
  z = sampling.truncated_normal(jax.random.PRNGKey(7), (12, gan.z_dim), 0.5)
  y = np.repeat(np.array([0, 3, 4], np.int32), 4)
  images = np.asarray(gan.generate(state, z, y, use_ema=True))
  expected = sampling.make_grid(images, nrow=4)
  assert np.abs(sheet.astype(int) - expected.astype(int)).max() <= 1
  raw = np.asarray(gan.generate(state, z, y, use_ema=False))
  assert np.abs(raw - images).max() > 1e-4, "EMA and raw generator should differ after an EMA update"

  out = sample_lib.sample(str(run_dir), "truncation", out=str(tmp_path / "t.png"), num=3,
                          thresholds=[2.0, 0.5, 0.04, None])
  assert read_png(out).shape == (4 * tile + 2, 3 * tile + 2, 3)
  out = sample_lib.sample(str(run_dir), "interpolation", out=str(tmp_path / "i.png"), num=5, rows=2,
                          interp="slerp", classes=[1])
  interp = read_png(out)
  assert interp.shape == (2 * tile + 2, 5 * tile + 2, 3)
  # Columns change along a row (the latent moves), the endpoints differ.
  assert np.abs(interp[2:34, 2:34].astype(int) - interp[2:34, -34:-2].astype(int)).max() > 0


def test_cli_writes_png_and_reports_user_errors(run_dir, tmp_path):
  out = tmp_path / "cli.png"
  base = [sys.executable, "-m", "ganzoo.sample", f"--workdir={run_dir}"]
  done = subprocess.run(base + ["--mode=truncation", "--num=2", "--thresholds=1,none", f"--out={out}"],
                        cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().splitlines()[-1] == str(out)
  assert read_png(out).shape == (2 * 34 + 2, 2 * 34 + 2, 3)
  bad = subprocess.run(base + ["--mode=classes", "--classes=9"], cwd=ROOT, env=ENV, capture_output=True, text=True)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --classes [9] out of range"), bad.stderr


def test_missing_checkpoint_and_data_are_one_line_errors(run_dir, tmp_path):
  with pytest.raises(ValueError, match="no checkpoint"):
    sample_lib.sample(str(tmp_path), "classes", config=load_config("biggan", "tiny"),
                      image_shape=(32, 32, 3), num_classes=5)
  config = sample_lib.load_run_config(str(run_dir))
  config.data.path = str(tmp_path / "gone.npz")
  with pytest.raises(ValueError):
    sample_lib.build_method(config)
  # Without the data, the shape and classes can be given.
  gan = sample_lib.build_method(config, (32, 32, 3), 5)
  assert gan.num_classes == 5 and gan.image_shape == (32, 32, 3)


def test_num_steps_zero_builds_logs_counts_and_exits(tmp_path):
  """`--config.train.num_steps=0` builds the models, logs params/g and params/d at step 0 (file and
  stdout) and exits without training."""
  data = write_npz(tmp_path / "d.npz", n=16, shape=(32, 32, 3), num_classes=5)
  workdir = tmp_path / "w"
  done = subprocess.run([sys.executable, "-m", "ganzoo.main", "--config=configs/biggan.py:tiny",
                         f"--workdir={workdir}", "--config.data.name=npz", f"--config.data.path={data}",
                         "--config.train.num_steps=0", "--no_progress"],
                        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  lines = read_metrics(workdir)
  assert len(lines) == 1 and lines[0]["step"] == 0
  # The counts are those of the models the config builds.
  config = tiny_biggan(tmp_path)
  gan = methods.build(config, methods.DataSpec((32, 32, 3), 5))
  state = jax.eval_shape(gan.init, jax.random.PRNGKey(0))
  g, d = (sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.nets[n].params)) for n in ("g", "d"))
  assert lines[0]["params/g"] == g and lines[0]["params/d"] == d
  assert f"params g {g:,}, d {d:,}" in done.stdout
  assert "done: step 0" in done.stdout
  assert not os.listdir(workdir / "checkpoints") and not os.path.exists(workdir / "samples")
  with open(workdir / "config.json") as f:
    assert json.load(f)["train"]["num_steps"] == 0
