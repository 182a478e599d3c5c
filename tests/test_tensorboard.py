"""The `tb` extra: TensorBoard itself (not only the tensorboardX writer) is installable and reads what a
run writes to WORKDIR/tb, with the same scalars as metrics.jsonl and the sample grid as an image."""

import io
import os
import sysconfig

import numpy as np
import PIL.Image
import pytest

from ganzoo import train
from tests.test_train import npz_config, one_device, read_metrics

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="TensorBoard is the `tb` extra (pip install -e '.[tb]'); the test extra includes it")


def test_tensorboard_app_is_installed():
  # `tensorboard --logdir workdirs` needs the console script, which only the tensorboard package has
  # (tensorboardX, the writer, ships none).
  assert os.path.exists(os.path.join(sysconfig.get_path("scripts"), "tensorboard"))


def test_tensorboard_reads_the_runs_scalars_and_samples(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.train.sample_every = 2
  config.train.checkpoint_every = 2
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)

  acc = event_accumulator.EventAccumulator(str(workdir / "tb"), size_guidance={"scalars": 0, "images": 0})
  acc.Reload()
  tags = acc.Tags()
  lines = read_metrics(workdir)
  for line in lines:
    for name, value in line.items():
      if name == "step":
        continue
      assert name in tags["scalars"], name
      logged = {e.step: e.value for e in acc.Scalars(name)}
      # Event files store scalars as float32: the bound is float32's rounding of the float64 value.
      assert logged[line["step"]] == pytest.approx(value, rel=2 ** -23, abs=1e-38), (name, line["step"])
  assert tags["images"], tags
  image = acc.Images(tags["images"][0])[-1]
  assert image.step == 2
  decoded = np.asarray(PIL.Image.open(io.BytesIO(image.encoded_image_string)))
  png = np.asarray(PIL.Image.open(workdir / "samples" / "step_00000002.png"))
  # The same grid as the PNG (a grayscale grid may come back as L or RGB: compare the first channel).
  as_hwc = lambda a: a.reshape(a.shape[:2] + (-1,))
  np.testing.assert_array_equal(as_hwc(decoded)[..., 0], as_hwc(png)[..., 0])
  assert (as_hwc(decoded) == as_hwc(decoded)[..., :1]).all()
