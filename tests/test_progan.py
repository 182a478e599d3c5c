"""ProGAN (ganzoo/models/progan.py, ganzoo/methods/progan.py): its layers, schedule, losses and
parameter counts at known values. The generic family tests (tests/test_families.py: 8 devices ==
1 device; tests/test_families_resume.py: resumed == unbroken) run its `test_config`, whose
steps cross a stage change into a fade (step 1), resume mid-fade (step 2) and change stage
again (step 3): `test_the_test_config_crosses_a_fade_and_resumes_mid_fade` pins that layout."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganzoo import methods
from ganzoo.methods import progan
from ganzoo.models import layers
from ganzoo.models import progan as pg

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "progan.py")


def _config(arg):
  spec = importlib.util.spec_from_file_location("progan_config", CONFIGS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


# -- layers -----------------------------------------------------------------------------------

def test_pixel_norm_gives_unit_mean_square_per_pixel():
  """pixel_norm(x) = x / sqrt(mean_c x^2 + 1e-8): the mean square over channels is ms / (ms + 1e-8)
  at every pixel (float32: a few ulps, rtol 1e-6)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 16)) * 5.0
  y = pg.pixel_norm(x)
  ms = np.mean(np.square(np.asarray(x, np.float64)), axis=-1)
  np.testing.assert_allclose(np.mean(np.square(np.asarray(y, np.float64)), axis=-1), ms / (ms + 1e-8), rtol=1e-6)


def test_minibatch_stddev_at_known_input():
  """Group size 2 over 4 samples: sample i is grouped with i + 2 (the reference's reshape to [G, M, ...]).
  Group {0, 2}: channel stddevs 1 and 2 -> 1.5; group {1, 3}: 1 and 1 -> 1 (each sqrt(var + 1e-8))."""
  x = jnp.asarray([[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [3.0, 3.0]]).reshape(4, 1, 1, 2)
  x = jnp.broadcast_to(x, (4, 2, 2, 2))
  y = np.asarray(pg.minibatch_stddev(x, 2, 1))
  assert y.shape == (4, 2, 2, 3)
  np.testing.assert_array_equal(y[..., :2], np.asarray(x))
  s1, s2 = math.sqrt(1 + 1e-8), math.sqrt(4 + 1e-8)
  expected = np.asarray([(s1 + s2) / 2, s1, (s1 + s2) / 2, s1])
  np.testing.assert_allclose(y[:, 0, 0, 2], expected, rtol=1e-6)
  assert np.all(y[..., 2] == y[:, :1, :1, 2])   # replicated over pixels


def test_fused_down_kernel_is_conv_then_average_pooling():
  """networks.py conv2d_downscale2d's 4x4 stride-2 kernel computes conv 3x3 (SAME) then 2x2 average pooling."""
  kx, kw = jax.random.split(jax.random.PRNGKey(1))
  x = jax.random.normal(kx, (2, 8, 8, 3))
  w = jax.random.normal(kw, (3, 3, 3, 5))
  plain = layers.avg_pool2(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
  fused = layers.conv_down_2x(x, pg.fused_down_kernel(w))
  np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), rtol=1e-5, atol=1e-5)


def _tiny_networks():
  config, data = progan.ProGAN.test_config()
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(0))
  return method, state


def test_generator_fade_ends_and_full_resolution_output():
  """G at level k with alpha 0 is the up-sampled level k - 1 output, alpha 1 the new block alone, and
  `generate_full` (the reference's linear G used for samples) at lod = t (top level 1) is
  lerp(new, up(old), t) of the training path."""
  method, state = _tiny_networks()
  g = method.generator
  params = method.nets["g"].eqlr.apply(state.nets["g"].params)
  z = jax.random.normal(jax.random.PRNGKey(2), (4, g.latent_size))
  run = lambda **kw: np.asarray(g.apply({"params": params}, z, **kw))
  old = run(level=0)
  np.testing.assert_allclose(run(level=1, alpha=jnp.float32(0.0)), np.asarray(layers.upsample_nearest(old)), atol=1e-6)
  np.testing.assert_allclose(run(level=1, alpha=jnp.float32(1.0)), run(level=1), atol=1e-6)
  for t in (0.0, 0.25, 1.0):
    full = np.asarray(g.apply({"params": params}, z, jnp.float32(t), method="generate_full"))
    np.testing.assert_allclose(full, run(level=1, alpha=jnp.float32(1.0 - t)), atol=1e-5)


def test_discriminator_fade_at_alpha_zero_is_the_lower_level():
  """D at level 1 with alpha 0 scores the 2x2-pooled image with level 0's FromRGB: D at level 0."""
  method, state = _tiny_networks()
  d = method.discriminator
  params = method.nets["d"].eqlr.apply(state.nets["d"].params)
  x = jax.random.normal(jax.random.PRNGKey(3), (4, 8, 8, 1))
  low = d.apply({"params": params}, layers.avg_pool2(x), level=0)
  faded = d.apply({"params": params}, x, level=1, alpha=jnp.float32(0.0))
  np.testing.assert_allclose(np.asarray(faded), np.asarray(low), rtol=1e-5, atol=1e-6)


# -- schedule ---------------------------------------------------------------------------------

def _celebahq_schedule():
  return progan.schedule_from_config(_config("celebahq"), 1024)


@pytest.mark.parametrize("kimg,lod", [(0, 8.0), (400, 8.0), (800, 8.0), (1000, 7.75), (1200, 7.5), (1600, 7.0),
                                      (2000, 7.0), (2800, 6.5), (3000, 6.25), (3200, 6.0), (12800, 0.0), (19000, 0.0)])
def test_lod_schedule_values(kimg, lod):
  """TrainingSchedule at 800 + 800 kimg from 4x4 to 1024x1024: lod = 8 - phase - max(phase_kimg - 800, 0) / 800,
  clamped at 0; on the host (float64) and on the device (float32: < 1e-6 off)."""
  s = _celebahq_schedule()
  assert progan.reference_lod(s, kimg * 1000) == lod
  np.testing.assert_allclose(float(progan.lod_at(jnp.int32(kimg * 1000), s)), lod, atol=1e-6)


def test_stages_in_steps_follow_the_groups_of_minibatch_repeats():
  """The small config (20k images per stage, batch 32 until 8x8 and 16 from 16x16, schedule read every
  4 steps): the stable 4x4 stage lasts while nimg <= 20000 at a group start, i.e. 157 groups of 128
  images (nimg 0 .. 19968), so the 8x8 fade starts at step 628 with 20096 images shown; it lasts
  while nimg < 40000: 156 groups (to 40064)."""
  config = _config("small,fashion_mnist")
  method = methods.build(config, methods.DataSpec((32, 32, 1), 10))
  got = [(st.resolution, st.fading, st.batch, st.start_step, st.start_nimg) for st in method.stages]
  assert got[:3] == [(4, False, 32, 0, 0), (8, True, 32, 628, 20096), (8, False, 32, 1252, 40064)]
  # 16x16 fades in with batch 16 (groups of 64): from 60032 while nimg < 80000: 312 groups -> 80000 exactly.
  assert got[3] == (16, True, 16, 1876, 60032) and got[4][3:] == (1876 + 312 * 4, 80000)
  assert [st.resolution for st in method.stages] == [4, 8, 8, 16, 16, 32, 32] and method.stages[-1].end_step is None
  assert method.plan(627).tag.index == 0 and method.plan(628).tag.index == 1
  assert method.streams(method.plan(1876)) == {"real": methods.StreamSpec(16, 1)}
  assert progan.steps_for_kimg(method.schedule, 20.096) == 628


def test_without_fades_each_level_starts_at_its_phase():
  """lod_transition_kimg = 0: lod jumps from one integer to the next at nimg = phase * training
  (TrainingSchedule skips the fade term), so the stages are stable ones only, each starting at the
  first group with nimg >= its phase's start: 100 images per level at batch 16 and 4 steps per group
  (64 images): 4x4 from step 0, 8x8 (the last level here) from step 8, at 128 images."""
  config, data = progan.ProGAN.test_config()
  config.loss.update(dict(lod_training_kimg=0.1, lod_transition_kimg=0.0, minibatch_repeats=4, batch_sizes=""))
  config.data.batch_size = 16
  method = methods.build(config, data)
  assert [(st.level, st.fading, st.start_step, st.start_nimg) for st in method.stages] == [
      (0, False, 0, 0), (1, False, 8, 128)]
  assert progan.reference_lod(method.schedule, 99) == 1.0 and progan.reference_lod(method.schedule, 100) == 0.0


def test_the_test_config_crosses_a_fade_and_resumes_mid_fade():
  """test_config: step 0 stable 4x4 (batch 16), steps 1-2 fade 8x8 (batch 8) at lod 2/3 then 1/3, step 3
  stable 8x8; the parametrized resume test restarts at step 2, mid-fade, and compares the whole state
  (extras 'lod' and 'nimg' included)."""
  config, data = progan.ProGAN.test_config()
  method = methods.build(config, data)
  assert [(method.stage(s).level, method.stage(s).fading, method.stage(s).batch) for s in range(4)] == [
      (0, False, 16), (1, True, 8), (1, True, 8), (1, False, 8)]
  s = method.schedule
  # 1 - (n - 8) / 24 in float64: within an ulp of 2/3 and 1/3.
  assert [progan.reference_lod(s, n) for n in (0, 16, 24, 32)] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0], rel=1e-15)


# -- optimizer --------------------------------------------------------------------------------

def test_adam_state_resets_at_a_new_stage_and_lr_factor_applies():
  """staged_optimizer(adam, starts (0, 2)): updates 0 and 1 are Adam's; update 2 is a fresh Adam's first
  update (moments and bias correction reset) times the stage's lr factor 0.5."""
  adam = optax.adam(1e-3, b1=0.0, b2=0.99, eps=1e-8)
  tx = progan.staged_optimizer(adam, (0, 2), (1.0, 0.5), reset=True)
  params = jnp.zeros(3)
  grads = [jnp.asarray([1.0, -2.0, 3.0]), jnp.asarray([0.5, 0.5, -1.0]), jnp.asarray([4.0, -1e-3, 2.0])]
  state, ref_state = tx.init(params), adam.init(params)
  for i, g in enumerate(grads):
    u, state = tx.update(g, state, params)
    if i < 2:
      ref, ref_state = adam.update(g, ref_state, params)
    else:
      ref, _ = adam.update(g, adam.init(params), params)
      ref = 0.5 * ref
    np.testing.assert_allclose(np.asarray(u), np.asarray(ref), rtol=1e-6)
  # A fresh Adam's first step is lr * g / (|g| + eps): the third update is -5e-4 * sign(g).
  np.testing.assert_allclose(np.asarray(u), -5e-4 * np.sign(np.asarray(grads[2])), rtol=1e-4)
  assert int(state.count) == 3


# -- losses -----------------------------------------------------------------------------------

def test_drift_term_value():
  """eps_drift * D(x)^2 per example: at D(x) = (2, -3) with eps 0.001: (0.004, 0.009)."""
  np.testing.assert_allclose(0.001 * np.asarray(progan.drift_penalty(jnp.asarray([2.0, -3.0]))), [0.004, 0.009])


def test_wgan_gp_plus_drift_on_fixed_tensors():
  """Per example fake - real + 10 (||g|| - 1)^2 + 0.001 real^2, and the CIFAR-10 target 750:
  (||g|| - 750)^2 / 750^2 (loss.py, wgan_lambda / wgan_target^2)."""
  real, fake, norms = jnp.asarray([1.0, -2.0]), jnp.asarray([0.5, 3.0]), jnp.asarray([1.5, 0.0])
  got = progan.d_loss_terms(real, fake, norms, 10.0, 0.001, 1.0)
  expected = [0.5 - 1.0 + 10 * 0.25 + 0.001 * 1.0, 3.0 + 2.0 + 10 * 1.0 + 0.001 * 4.0]
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
  got = progan.d_loss_terms(real, fake, jnp.asarray([1500.0, 375.0]), 10.0, 0.001, 750.0)
  np.testing.assert_allclose(np.asarray(got), [0.5 - 1.0 + 10.0 + 0.001, 5.0 + 10 * 0.25 + 0.004], rtol=1e-6)


def test_penalty_norm_is_the_full_resolution_one():
  """D at a lower level sees the 2^j-pooled full-resolution image; the gradient w.r.t. the nearest-up-sampled
  full-resolution image has norm ||grad at the stage|| / 2^j (the factor the d phase applies), j = 1 here."""
  method, state = _tiny_networks()
  d = method.discriminator
  params = method.nets["d"].eqlr.apply(state.nets["d"].params)
  x = jax.random.normal(jax.random.PRNGKey(4), (4, 4, 4, 1))
  stage = lambda v: jnp.sum(d.apply({"params": params}, v, level=0))
  full = lambda v: stage(layers.avg_pool2(v))
  g_stage = jax.grad(stage)(x)
  g_full = jax.grad(full)(layers.upsample_nearest(x))
  norm = lambda g: float(jnp.sqrt(jnp.sum(jnp.square(g))))
  np.testing.assert_allclose(norm(g_full), norm(g_stage) / 2.0, rtol=1e-5)


def test_reals_are_pooled_and_faded():
  """process_reals at t = lod - floor(lod): t = 0 keeps the image, t = 1 gives its 2x2 means up-sampled."""
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(np.asarray(progan.fade_reals(x, jnp.float32(0.0))), np.asarray(x))
  block = np.asarray(progan.fade_reals(x, jnp.float32(1.0)))[0, :2, :2, 0]
  np.testing.assert_array_equal(block, np.full((2, 2), (0 + 1 + 4 + 5) / 4))
  np.testing.assert_array_equal(np.asarray(progan.downscale(x, 2)).ravel(), [7.5])


# -- parameter counts -------------------------------------------------------------------------

# The paper's Table 2 (arXiv:1710.10196): the 1024x1024 networks, layer by layer (kernel, in, out).
G_TABLE = ([(4, 512, 512), (3, 512, 512)]                      # 4x4: 'Conv 4x4' on the 1x1 latent, Conv 3x3
           + [(3, 512, 512)] * 6                               # 8x8, 16x16, 32x32: Conv 3x3 x 2
           + [(3, 512, 256), (3, 256, 256), (3, 256, 128), (3, 128, 128), (3, 128, 64), (3, 64, 64),
              (3, 64, 32), (3, 32, 32), (3, 32, 16), (3, 16, 16)]   # 64x64 .. 1024x1024
           + [(1, 16, 3)])                                     # ToRGB (Conv 1x1, linear)
D_TABLE = ([(1, 3, 16), (3, 16, 16), (3, 16, 32), (3, 32, 32), (3, 32, 64), (3, 64, 64), (3, 64, 128),
            (3, 128, 128), (3, 128, 256), (3, 256, 256), (3, 256, 512)]   # FromRGB, 1024x1024 .. 64x64
           + [(3, 512, 512)] * 6                               # 32x32, 16x16, 8x8
           + [(3, 513, 512), (4, 512, 512), (1, 512, 1)])      # 4x4: after minibatch stddev; Conv 4x4; FC


def test_celebahq_parameter_counts_match_table_2():
  """Table 2's layers give G 23,071,507 and D 23,077,137 parameters (the paper's 23.1M each). The
  table shows the network at full resolution; the growing networks also hold the ToRGB (G) and
  FromRGB (D) 1x1 convs of the eight lower resolutions (nf = 512 at 4..32, then 256, 128, 64, 32)."""
  g_table = sum(_conv(*layer) for layer in G_TABLE)
  d_table = sum(_conv(*layer) for layer in D_TABLE)
  assert round(g_table / 1e6, 1) == 23.1 and round(d_table / 1e6, 1) == 23.1
  lower = [512, 512, 512, 512, 256, 128, 64, 32]   # feature maps at 4, 8, ..., 512
  g_expected = g_table + sum(_conv(1, n, 3) for n in lower)
  d_expected = d_table + sum(_conv(1, 3, n) for n in lower)
  config = _config("celebahq")
  method = methods.build(config, methods.DataSpec((1024, 1024, 3), 0))
  state = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  assert method.param_counts(state) == {"params/g": g_expected, "params/d": d_expected}
  assert (g_expected, d_expected) == (23_079_115, 23_087_249)


# -- config errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,match", [
    ("batch_sizes", "256=14", "resolution:value"),
    ("batch_sizes", "24:8", "power-of-two"),
    ("lod_initial_resolution", 3, "power of two"),
])
def test_bad_schedule_values_are_one_line_errors(field, value, match):
  config, data = progan.ProGAN.test_config()
  config.loss[field] = value
  with pytest.raises(ValueError, match=match):
    methods.build(config, data)
