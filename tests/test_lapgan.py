"""LAPGAN (ganzoo/methods/lapgan.py): the pyramid's maths, the networks' sizes, the per-level
training inputs and losses, Torch7's SGD, and coarse-to-fine sampling, with numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import state as state_lib
from ganzoo.methods import lapgan as L
from ganzoo.models import lapgan as models
from tests.test_steps import load_config

EPS32 = 2.0 ** -23   # float32 machine epsilon (one ulp at 1)


def test_downsample_and_upsample_on_hand_made_images():
  """d averages each 2x2 block; u interpolates with aligned corners: output pixel i samples input
  position i (n - 1) / (2n - 1) (Torch7 image.scale, which the reference's pyramid uses)."""
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(np.asarray(L.downsample(x))[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
  # 2x2 -> 4x4: positions 0, 1/3, 2/3, 1 along each axis.
  y = jnp.array([[0.0, 3.0], [6.0, 9.0]]).reshape(1, 2, 2, 1)
  np.testing.assert_allclose(np.asarray(L.upsample(y))[0, :, :, 0],
                             [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]], atol=4 * 9 * EPS32)
  # 4 -> 8: row i at position 3i/7; row 1 = 4/7 of pixel 0 + 3/7 of pixel 1; the ends are copies.
  m = L.upsample_matrix(4)
  np.testing.assert_allclose(m[1], [4 / 7, 3 / 7, 0, 0], rtol=0, atol=1e-15)
  np.testing.assert_allclose(m[4], [0, 2 / 7, 5 / 7, 0], rtol=0, atol=1e-15)
  np.testing.assert_array_equal(m[0], [1, 0, 0, 0])
  np.testing.assert_array_equal(m[7], [0, 0, 0, 1])
  np.testing.assert_allclose(m.sum(1), 1.0, rtol=0, atol=1e-15)
  # Channels and batch are independent: a 2-channel image upsampled is each channel upsampled.
  z = jnp.stack([y[..., 0], 2 * y[..., 0] + 1], -1)
  np.testing.assert_allclose(np.asarray(L.upsample(z))[..., 1], 2 * np.asarray(L.upsample(y))[..., 0] + 1, atol=1e-5)


def test_pyramid_reconstructs_exactly():
  """I_k = u(I_{k+1}) + h_k and I_0 = reconstruct(h): equal up to float32 rounding. Bound: with
  |I_k|, |l_k| <= 1 (pixels in [-1, 1]; u and d are convex combinations), |h_k| <= 2, so
  fl(fl(I - l) + l) - I <= (2 + 1) * eps / 2 per level; `reconstruct` recomputes u from the
  reconstructed coarser level, whose error u carries over unchanged (weights >= 0, sum 1), plus
  u's own rounding (two products and a sum per axis, < 4 eps): < 3 * (1.5 + 4) eps over 3 levels."""
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32))
  highs, lows = L.laplacian_pyramid(x, 3)
  assert [h.shape[1] for h in highs] == [32, 16, 8] and [l.shape[1] for l in lows] == [32, 16, 8]
  gauss = L.gaussian_pyramid(x, 3)
  for k in range(2):
    np.testing.assert_allclose(lows[k], L.upsample(gauss[k + 1]), rtol=0, atol=0)
    np.testing.assert_allclose(lows[k] + highs[k], gauss[k], rtol=0, atol=1.5 * EPS32)
  np.testing.assert_array_equal(highs[2], gauss[2])
  np.testing.assert_allclose(L.reconstruct(highs), x, rtol=0, atol=3 * 5.5 * EPS32)


def _param_shapes(config, shape):
  method = methods.build(config, methods.DataSpec(shape))
  st = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  return {n: state_lib.param_count(st.nets[n].params) for n in method.nets}


def test_parameter_counts_of_the_papers_cifar10_networks():
  """From the layer lists (paper Sec. 4; eyescream train_cifar_coarse_to_fine.lua), by hand:
  8x8: G 100 -> 1200 -> 1200 -> 8*8*3, D 192 -> 600 -> 600 -> 1 (weights + biases);
  16 and 32: G conv7x7 (3+1 -> 64), conv7x7 (64 -> 64), conv5x5 (64 -> 3); D conv5x5 (3 -> 64),
  conv5x5/2 (64 -> 64), linear (64 * s * s -> 1) with s = ((n - 4) - 5) // 2 + 1: 4 at 16, 12 at 32."""
  config = load_config("lapgan", "")
  counts = _param_shapes(config, (32, 32, 3))
  g_dense = (100 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 192 + 192)
  d_dense = (192 * 600 + 600) + (600 * 600 + 600) + (600 * 1 + 1)
  g_conv = (7 * 7 * 4 * 64 + 64) + (7 * 7 * 64 * 64 + 64) + (5 * 5 * 64 * 3 + 3)
  d_conv = lambda s: (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + (64 * s * s + 1)
  assert counts == {"d2": d_dense, "g2": g_dense, "d1": d_conv(4), "g1": g_conv, "d0": d_conv(12), "g0": g_conv}
  assert (g_dense, d_dense, g_conv, d_conv(4), d_conv(12)) == (1_792_992, 477_001, 218_179, 108_353, 116_545)
  # D with l_k as 3 more input channels instead of added: its first conv has 6 inputs.
  config.model.d_condition = "concat"
  concat = _param_shapes(config, (32, 32, 3))
  assert concat["d0"] - counts["d0"] == 5 * 5 * 3 * 64 and concat["g0"] == counts["g0"]


def test_fashion_mnist_cpu_config_counts():
  """The CPU variant on 1-channel 32x32 images: widths 16, dense 600 / 300, by hand."""
  counts = _param_shapes(load_config("lapgan", "fashion_mnist,cpu"), (32, 32, 1))
  assert counts["g2"] == (100 * 600 + 600) + (600 * 600 + 600) + (600 * 64 + 64)
  assert counts["d2"] == (64 * 300 + 300) + (300 * 300 + 300) + (300 + 1)
  assert counts["g0"] == (49 * 2 * 16 + 16) + (49 * 16 * 16 + 16) + (25 * 16 * 1 + 1)
  assert counts["d0"] == (25 * 1 * 16 + 16) + (25 * 16 * 16 + 16) + (16 * 144 + 1)


def test_discriminator_adds_the_low_pass_image():
  """D_k(h, l) == D_k(h + l, 0) with condition 'add' (paper Sec. 3.2: l_k is added to h_k before the
  first convolution); with 'concat' it is not."""
  h, l = (jnp.asarray(np.random.default_rng(i).normal(size=(2, 16, 16, 1)).astype(np.float32)) for i in (1, 2))
  d = models.ConditionalDiscriminator(ch=4)
  params = d.init(jax.random.PRNGKey(0), h, l, train=False)
  np.testing.assert_allclose(d.apply(params, h, l, train=False), d.apply(params, h + l, jnp.zeros_like(l), train=False),
                             rtol=1e-6, atol=1e-6)
  dc = models.ConditionalDiscriminator(ch=4, condition="concat")
  pc = dc.init(jax.random.PRNGKey(0), h, l, train=False)
  assert not np.allclose(dc.apply(pc, h, l, train=False), dc.apply(pc, h + l, jnp.zeros_like(l), train=False))


class _Ctx:
  """A phase context whose networks are known functions: G returns zeros, D the first pixel."""
  step = jnp.zeros((), jnp.int32)

  def __init__(self):
    self.calls = []

  def shard(self, x):
    return x

  def apply(self, name, *inputs, rng=None, **kwargs):
    self.calls.append((name, [np.asarray(x) for x in inputs]))
    if name.startswith("g"):
      return jnp.zeros(inputs[1].shape if len(inputs) > 1 else (inputs[0].shape[0], 8, 8, 1), jnp.float32)
    x = inputs[0] + (inputs[1] if len(inputs) > 1 else 0.0)
    return x[:, 0, 0, 0]


def _three_level_config():
  """The family's test config with three levels on 32x32 images (8 -> 16 -> 32)."""
  config = L.get_family_config(levels=3)
  config.train.num_steps = 2
  config.data.batch_size = 16
  config.model.update(dict(z_dim=4, g_hidden=8, d_hidden=8, g_ch=3, d_ch=3))
  return config, methods.DataSpec((32, 32, 1), 0)


def _tiny_method(**model):
  config, data = _three_level_config()
  config.model.update(model)
  return methods.build(config, data), config


def test_each_level_trains_on_the_real_pyramid_of_its_batch():
  """D_k's reals are h_k of the batch's first half, its fakes G_k(z, l_k) of the second half's
  l_k; G_k is conditioned on all l_k; the coarsest level sees I_K. Never a coarser G's output."""
  method, _ = _tiny_method()
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 1)).astype(np.float32))
  highs, lows = L.laplacian_pyramid(x, 3)
  key = jax.random.PRNGKey(0)
  for k in range(3):
    ctx = _Ctx()
    inputs, _ = method._d_prepare(k, ctx, {"image": x}, key)   # pylint: disable=protected-access
    np.testing.assert_allclose(inputs["real"], highs[k][:8], rtol=0, atol=1e-6)
    assert [c[0] for c in ctx.calls] == [f"g{k}"]           # only this level's G, once
    if k < 2:
      np.testing.assert_allclose(inputs["real_low"], lows[k][:8], rtol=0, atol=1e-6)
      np.testing.assert_allclose(inputs["fake_low"], lows[k][8:], rtol=0, atol=1e-6)
      z, low = ctx.calls[0][1]
      assert z.shape == (8, method.sizes[k], method.sizes[k], 1) and -1 <= z.min() and z.max() <= 1
      np.testing.assert_allclose(low, lows[k][8:], rtol=0, atol=1e-6)
    else:
      assert ctx.calls[0][1][0].shape == (8, method.z_dim) and inputs["real_low"] is None
    g_inputs, _ = method._g_prepare(k, _Ctx(), {"image": x}, key)   # pylint: disable=protected-access
    assert g_inputs["z"].shape[0] == 16
    if k < 2:
      np.testing.assert_allclose(g_inputs["low"], lows[k], rtol=0, atol=1e-6)


def test_level_losses_at_known_logits():
  """D: BCE mean over B/2 reals and B/2 fakes = 0.5 (E softplus(-r) + E softplus(f)); G: E softplus(-f)
  (the scripts' BCECriterion against 1). With D = first pixel of h + l: r = 2 + 0.5, f = -1 + 0.5."""
  method, _ = _tiny_method()
  sp = lambda t: math.log1p(math.exp(t))
  full = lambda v: jnp.full((4, 16, 16, 1), v, jnp.float32)
  inp = {"real": full(2.0), "real_low": full(0.5), "fake": full(-1.0), "fake_low": full(0.5),
         "drop_real": None, "drop_fake": None}
  loss, metrics = method._d_loss(1, _Ctx(), inp)   # pylint: disable=protected-access
  np.testing.assert_allclose(float(loss), 0.5 * (sp(-2.5) + sp(-0.5)), rtol=1e-6)
  np.testing.assert_allclose(float(metrics["d1_real"]), 2.5, rtol=1e-6)
  g_inp = {"z": full(0.0), "low": full(0.75), "drop_g": None, "drop_d": None}
  g_loss, _ = method._g_loss(1, _Ctx(), g_inp)   # pylint: disable=protected-access
  np.testing.assert_allclose(float(g_loss), sp(-0.75), rtol=1e-6)   # G's residual is 0: D sees l = 0.75


def test_torch_sgd_on_a_fixed_gradient_sequence():
  """Torch7 optim.sgd (dampening = momentum): v_1 = g_1, v_t = m_t v_{t-1} + (1 - m_t) g_t,
  x_t = x_{t-1} - lr_t v_t. g = 1, 2, -1; m_t = 0.5 + 0.1 t; lr_t = 0.1 / 2**t (t from 0):
  v = 1, 0.6 + 0.4 * 2 = 1.4, 0.7 * 1.4 + 0.3 * (-1) = 0.68;
  x = -0.1, -0.1 - 0.05 * 1.4 = -0.17, -0.17 - 0.025 * 0.68 = -0.187."""
  tx = L.torch_sgd(lambda t: 0.1 / 2.0 ** t, lambda t: 0.5 + 0.1 * t)
  x = jnp.zeros((), jnp.float32)
  state = tx.init(x)
  got = []
  for g in (1.0, 2.0, -1.0):
    upd, state = tx.update(jnp.asarray(g, jnp.float32), state)
    x = x + upd
    got.append((float(state["v"]), float(x)))
  np.testing.assert_allclose(got, [(1.0, -0.1), (1.4, -0.17), (0.68, -0.187)], rtol=1e-6)
  # The config's SGD is this one, with the paper's schedule: lr 0.02 and momentum 0.5 at update 0.
  method, _ = _tiny_method()
  assert method.nets["g0"].tx.init.__qualname__.startswith("torch_sgd")


def test_sampling_runs_the_coarse_to_fine_chain():
  """I~_2 = G_2(z_2); I~_1 = u(I~_2) + G_1(z_1, u(I~_2)); I~_0 = u(I~_1) + G_0(z_0, u(I~_1)), with the
  generators replaced by known functions: G_2 = a fixed 8x8 pattern, G_k = the constant 0.1 (k + 1)."""
  method, _ = _tiny_method()
  pattern = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 8, 8, 1)).astype(np.float32))
  seen = []

  def fake_generate(state, k, z, low):
    seen.append((k, z.shape, None if low is None else np.asarray(low)))
    if low is None:
      return jnp.broadcast_to(pattern, (z.shape[0], 8, 8, 1))
    return jnp.full(low.shape, 0.1 * (k + 1), low.dtype)

  method.generate_level = fake_generate
  pyr = method.sample_pyramid(None, jax.random.PRNGKey(0), 2)
  i2 = np.broadcast_to(np.asarray(pattern), (2, 8, 8, 1))
  i1 = np.asarray(L.upsample(jnp.asarray(i2))) + 0.2
  i0 = np.asarray(L.upsample(jnp.asarray(i1))) + 0.1
  for got, want in zip(pyr, (i0, i1, i2)):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  assert [(k, shape) for k, shape, _ in seen] == [(2, (2, 4)), (1, (2, 16, 16, 1)), (0, (2, 32, 32, 1))]
  np.testing.assert_allclose(seen[2][2], L.upsample(jnp.asarray(i1)), rtol=0, atol=1e-6)   # G_0 sees u(I~_1)
  out = method.sample(None, jax.random.PRNGKey(0), 2)
  np.testing.assert_allclose(out, np.clip(i0, -1, 1), rtol=0, atol=1e-6)


def test_sequential_schedule_trains_one_level_at_a_time():
  """model.schedule='sequential', 6 steps, 3 levels: steps 0-1 level 2, 2-3 level 1, 4-5 level 0;
  each network counts only its own level's updates (the optimizer schedules use these counts)."""
  config, data = _three_level_config()
  config.model.schedule = "sequential"
  config.train.num_steps = 6
  method = methods.build(config, data)
  names = [tuple(p.name for p in method.plan(s).phases) for s in range(6)]
  assert names == [("d2", "g2")] * 2 + [("d1", "g1")] * 2 + [("d0", "g0")] * 2
  assert [method.updates_until(k, 6) for k in (2, 1, 0)] == [2, 2, 2]
  assert [method.updates_until(k, 3) for k in (2, 1, 0)] == [2, 1, 0]
  joint, _ = _tiny_method()
  assert tuple(p.name for p in joint.plan(0).phases) == ("d2", "g2", "d1", "g1", "d0", "g0")


def test_bad_shapes_and_sizes_are_one_line_errors():
  config, _ = _three_level_config()
  with pytest.raises(ValueError, match="set data.image_size"):
    methods.build(config, methods.DataSpec((30, 30, 1)))   # 30 is not divisible by 4
  config.model.levels = 4   # 32 -> 16 -> 8 -> 4: the 8x8 conditional level is too small for D
  with pytest.raises(ValueError, match="at least 13x13"):
    methods.build(config, methods.DataSpec((32, 32, 1)))
