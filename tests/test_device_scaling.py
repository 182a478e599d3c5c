"""experiments/device_scaling.py (benchmark.py --devices): the papers' batch per device, plan periods,
one real row on 2 of the 8 fake devices, and one-line errors."""

import os
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import device_scaling  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from ganzoo import methods  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize("name,devices", [("biggan128", 128), ("stylegan2", 8), ("stylegan2_256", 8), ("sngan", 1)])
def test_batch_per_device_times_the_papers_devices_is_the_configs_batch(name, devices):
  """BigGAN 2048 on 128 TPU v3 cores; StyleGAN2 presets 32 and 64 on 8 GPUs; SNGAN 64 on one GPU."""
  model = device_scaling.MODELS[name]
  config = device_scaling.load_config(model, tiny=False)
  assert model.per_device * devices == config.data.batch_size


def test_plan_period_follows_the_lazy_regularization_intervals():
  """StyleGAN2: R1 every 16 steps and path length every 4 -> period 16; SNGAN's plan is fixed."""
  for name, period in (("stylegan2", 16), ("sngan", 1)):
    config = device_scaling.load_config(device_scaling.MODELS[name], tiny=True)
    method = methods.build(config, device_scaling.data_spec(config))
    assert device_scaling.plan_period(method) == period


def test_a_sharded_row_on_two_devices():
  """One real row: biggan128 (tiny) on 2 of the 8 fake devices with --fsdp=2 (tiny: every leaf sharded)."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  (row,) = device_scaling.run(["biggan128"], [2], reps=1, tiny=True, fsdp=2)["biggan128"]
  assert row["devices"] == 2 and row["global_batch"] == 2 * row["batch_per_device"] == 4
  # One period = one step of 2 D steps (imagenet128's train.d_steps), each reading the global batch:
  # images/s x seconds per period = 8 images, up to the rounding of the two reported figures
  # (each to 0.01, so off by <= 0.005: relative errors 0.005 / value, plus their product, < 1% of the sum).
  seconds = row["ms_per_step"] * row["period_steps"] / 1e3
  bound = 8 * (0.005 / row["ms_per_step"] + 0.005 / row["images_per_s"]) * 1.01
  assert abs(row["images_per_s"] * seconds - 8) <= bound
  assert row["images_per_s_per_device"] == pytest.approx(row["images_per_s"] / 2, abs=0.01)
  assert row["efficiency"] == 1.0 and row["metrics_finite"] and row["fsdp"] == 2
  assert row["step_memory_mb"] > 0 and row["params"]["g"] > 0 and row["params"]["d"] > 0
  # Each device's step arguments are its half of the state and of the batch, plus the replicated
  # leaves that 2 does not divide (scalars, the step counter, keys: far below a quarter of the state).
  batch_mb = 2 * 2 * 32 * 32 * 3 / 2 ** 20 + 1e-3    # 2 D steps x 2 images per device, uint8 (+ labels)
  assert row["state_mb"] / 2 <= row["argument_mb"] < 0.75 * row["state_mb"] + batch_mb


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(ValueError, match="choose from"):
    device_scaling.run(["nope"], [1])
  with pytest.raises(ValueError, match=r"must lie in \[1, 8\]"):
    device_scaling.run(["sngan"], [16])
  with pytest.raises(ValueError, match="separated by commas"):
    device_scaling.parse_counts("1,x")
  with pytest.raises(ValueError, match="--fsdp=3 must"):
    device_scaling.run(["sngan"], [4], fsdp=3)
  with pytest.raises(SystemExit, match="^error: .*must lie in"):
    device_scaling.main(["--devices=0", "--models=sngan", "--tiny"])
