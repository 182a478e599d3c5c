"""Instance noise (ganzoo.augment; Sønderby et al. 2016, arXiv:1610.04490): the schedule's values, the
noise every D input gets in the gan family's phases, and the 8-device == 1-device equality with it on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import augment
from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import parallel
from ganzoo import step as step_lib
from tests.test_families import _run
from tests.test_steps import assert_float64_close, load_config


def _noisy_gan(std=0.5, anneal_steps=10, name="dcgan"):
  config = load_config(name, "tiny")
  config.augment.instance_noise.std = std
  config.augment.instance_noise.anneal_steps = anneal_steps
  return config


def test_schedule_is_linear_to_zero():
  noise = augment.instance_noise(_noisy_gan(0.5, 10))
  got = [float(noise.scale(jnp.asarray(t))) for t in (0, 1, 5, 10, 11, 1000)]
  # 0.5 * (1 - t / 10), clipped at 0: each a float32 rounding of the exact value (<= 2^-24 relative).
  np.testing.assert_allclose(got, [0.5, 0.45, 0.25, 0.0, 0.0, 0.0], rtol=2 ** -23, atol=0)
  assert augment.instance_noise(_noisy_gan(0.0)) is None       # std 0: off
  config = _noisy_gan(0.2, None)
  config.train.num_steps = 40
  assert augment.instance_noise(config).anneal_steps == 40      # default: over the whole run
  with pytest.raises(ValueError, match="anneal_steps >= 1"):
    augment.instance_noise(_noisy_gan(0.2, 0))


def _phase_inputs(config, step):
  gan = methods.build(config, methods.DataSpec((28, 28, 1), 10))
  state = gan.init(jax.random.PRNGKey(0))
  ctx = step_lib._frozen_context(gan, state, ("g", "d"))  # pylint: disable=protected-access
  ctx.step = jnp.asarray(step, jnp.int32)
  ctx.batch_size = 64
  real = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)), jnp.float32)
  key = jax.random.PRNGKey(7)
  d_inp, d_rngs = gan._d_prepare(ctx, {"image": real}, key)  # pylint: disable=protected-access
  g_inp, _ = gan._g_prepare(ctx, {}, key)  # pylint: disable=protected-access
  return real, key, d_inp, d_rngs, g_inp


@pytest.mark.parametrize("step", [0, 4])
def test_d_and_g_inputs_get_the_scheduled_noise(step):
  off_real, key, off_d, off_rngs, off_g = _phase_inputs(_noisy_gan(0.0), step)
  real, _, d_inp, d_rngs, g_inp = _phase_inputs(_noisy_gan(0.5, 10), step)
  sigma = 0.5 * (1 - step / 10)
  # The same latents, fakes and dropout keys as without noise: the noise keys are folded in apart.
  np.testing.assert_array_equal(np.asarray(g_inp["z"]), np.asarray(off_g["z"]))
  for k in off_rngs:
    np.testing.assert_array_equal(np.asarray(d_rngs[k]), np.asarray(off_rngs[k]))
  eps_real = jax.random.normal(jax.random.fold_in(key, augment.REAL_NOISE_KEY), real.shape)
  eps_fake = jax.random.normal(jax.random.fold_in(key, augment.FAKE_NOISE_KEY), real.shape)
  # x + sigma * eps, in float32: |x| <= 1 and |sigma * eps| < 3, so each sum rounds by <= ulp(4) / 2 = 2.4e-7.
  np.testing.assert_allclose(np.asarray(d_inp["real"]), np.asarray(real + sigma * eps_real), rtol=0, atol=2.4e-7)
  np.testing.assert_allclose(np.asarray(d_inp["fake"]), np.asarray(off_d["fake"] + sigma * eps_fake), rtol=0, atol=2.4e-7)
  np.testing.assert_allclose(np.asarray(g_inp["noise"]), np.asarray(sigma * eps_fake), rtol=2 ** -23, atol=0)
  # The noise's own statistics: 50,176 draws, so the sample std is sigma (1 +- 5 / sqrt(2 n)) = sigma (1 +- 1.6%)
  # and the mean is 0 +- 5 sigma / sqrt(n) at five standard errors.
  delta = np.asarray(d_inp["real"] - real, np.float64)
  n = delta.size
  assert abs(delta.std() / sigma - 1) < 5 / np.sqrt(2 * n)
  assert abs(delta.mean()) < 5 * sigma / np.sqrt(n)


def test_no_noise_after_the_anneal():
  real, _, d_inp, _, g_inp = _phase_inputs(_noisy_gan(0.5, 10), 10)
  np.testing.assert_array_equal(np.asarray(d_inp["real"]), np.asarray(real))   # sigma = 0 adds exactly 0
  assert float(jnp.abs(g_inp["noise"]).max()) == 0.0


def assert_gan_devices_agree_and_transform_reaches_updates(config, data):
  """2 float64 steps of the gan family with a D-input transform on (`config.augment`): 8 devices == 1 device,
  and the networks differ from the same run with the transform off; returns (1-device state, metrics)."""
  one, m1 = _run(config, data, parallel.make_mesh(jax.devices()[:1]), 2, float64=True)
  eight, m8 = _run(config, data, parallel.make_mesh(jax.devices()), 2, float64=True)
  assert_float64_close(one, eight)
  assert_float64_close(m1, m8)
  off, _ = _run(methods.get("gan").test_config()[0], data, parallel.make_mesh(jax.devices()[:1]), 2, float64=True)
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(one.nets), jax.tree.leaves(off.nets)))
  assert moved > 1e-6, "the transform reached the updates"
  return one, m1


def test_eight_devices_equal_one_device_with_instance_noise():
  config, data = methods.get("gan").test_config()
  config.augment.instance_noise.std = 0.3
  config.augment.instance_noise.anneal_steps = 4
  assert_gan_devices_agree_and_transform_reaches_updates(config, data)


def test_config_section_is_checked():
  config = config_lib.get_base_config()
  config.augment.instance_noise.sigma = 0.1
  with pytest.raises(ValueError, match="augment.instance_noise"):
    config_lib.validate_config(config)


# Every family with a discriminator but the gan family (tested above in detail); test_pair is a test family.
# The image-to-image families refuse instance noise (test below).
TRANSLATORS = ("cyclegan", "pix2pix", "stargan")
NO_DISCRIMINATOR = ("realnvp", "vae")   # likelihood families without a D
# Families whose references train without instance noise: StyleGAN2 (R1; ADA / DiffAugment augment D's
# inputs instead), StyleGAN (R1), CQ (seed 003's D sees clean images), ProGAN (WGAN-GP + drift on clean images).
NO_NOISE = TRANSLATORS + NO_DISCRIMINATOR + ("stylegan2", "stylegan", "cq", "progan")
NOISE_FAMILIES = [f for f in methods.names() if f not in ("gan", "test_pair") + NO_NOISE]


@pytest.mark.parametrize("family", NO_NOISE)
def test_translators_refuse_instance_noise(family):
  """pix2pix, CycleGAN, StarGAN, StyleGAN2, CQ and the families without a D train without instance
  noise: setting it is a one-line error, not a no-op."""
  config, data = methods.get(family).test_config()
  methods.build(config, data)   # std 0 (the default) builds
  config.augment.instance_noise.std = 0.1
  with pytest.raises(ValueError, match=r"not supported by the '%s' family.*instance_noise.std=0" % family):
    methods.build(config, data)


@pytest.mark.parametrize("family", NOISE_FAMILIES)
def test_every_family_takes_instance_noise(family):
  """config.augment.instance_noise reaches each family's D: one step with noise differs from the step
  without, and std 0 is the step without, bit for bit (the noise keys are folded in apart)."""
  config, data = methods.get(family).test_config()
  mesh = parallel.make_mesh(jax.devices()[:1])
  off, _ = _run(config, data, mesh, 1)
  config.augment.instance_noise.std = 0.0
  zero, _ = _run(config, data, mesh, 1)
  for a, b in zip(jax.tree.leaves(off.nets), jax.tree.leaves(zero.nets)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.augment.instance_noise.std = 0.5
  on, _ = _run(config, data, mesh, 1)
  moved = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
              for a, b in zip(jax.tree.leaves(on.nets["d"] if "d" in on.nets else on.nets), jax.tree.leaves(off.nets["d"] if "d" in off.nets else off.nets)))
  assert moved > 1e-7, f"{family}: the noise did not reach D's update"
