"""Tests for StyleGAN v1 (ganzoo/models/stylegan.py, ganzoo/methods/stylegan.py): parameter counts from
networks_stylegan.py's layer list, AdaIN, instance norm, noise inputs, the blur and resampling, the
mapping's lr multiplier, truncation with its cutoff, and the family's training rules."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo.models import stylegan as sg
from ganzoo.models import stylegan2 as sg2
from tests.test_steps import float64_mode

F32_U = 2.0 ** -24   # float32 unit roundoff


# ---------------------------------------------------------------------------------------------
# Parameter counts.

def _official_counts(resolution, fmap_base, fmap_max, z_dim, w_dim, map_layers, channels=3, growing=False):
  """Trainable parameters of G_style (G_mapping + G_synthesis) and D_basic, written out from the layer
  list of NVlabs/stylegan training/networks_stylegan.py (fmap_decay 1, use_styles, const input,
  use_noise, no labels). `growing`: the 'linear' / 'recursive' structures, which also hold a ToRGB
  (G) and a FromRGB (D) for every lower resolution."""
  nf = lambda stage: min(int(fmap_base / 2.0 ** stage), fmap_max)
  log2 = int(math.log2(resolution))
  dims = [z_dim] + [w_dim] * map_layers   # mapping_fmaps = dlatent_size = w_dim
  mapping = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))   # Dense%d weight + bias
  epi = lambda c: c + c + (w_dim * 2 * c + 2 * c)   # Noise/weight [C], bias [C], StyleMod dense + bias
  synth = 16 * nf(1) + epi(nf(1))                           # 4x4/Const: const [1, nf(1), 4, 4]
  synth += 9 * nf(1) * nf(1) + epi(nf(1))                   # 4x4/Conv
  for res in range(3, log2 + 1):
    cin, cout = nf(res - 2), nf(res - 1)
    synth += 9 * cin * cout + epi(cout)                     # Conv0_up (one 3x3 weight, fused or not)
    synth += 9 * cout * cout + epi(cout)                    # Conv1
  torgb = lambda res: nf(res - 1) * channels + channels     # ToRGB_lod: 1x1 conv + bias
  synth += sum(torgb(r) for r in range(2, log2 + 1)) if growing else torgb(log2)
  fromrgb = lambda res: channels * nf(res - 1) + nf(res - 1)
  d = sum(fromrgb(r) for r in range(2, log2 + 1)) if growing else fromrgb(log2)
  for res in range(log2, 2, -1):
    d += 9 * nf(res - 1) * nf(res - 1) + nf(res - 1)        # Conv0
    d += 9 * nf(res - 1) * nf(res - 2) + nf(res - 2)        # Conv1_down
  d += 9 * (nf(1) + 1) * nf(1) + nf(1)                      # 4x4/Conv after minibatch stddev (+1 map)
  d += 16 * nf(1) * nf(0) + nf(0)                           # Dense0
  d += nf(0) * 1 + 1                                        # Dense1 (label_size 0 -> 1 output)
  return mapping, synth, d


def _model_counts(size):
  p = sg.PRESETS[size]
  r = p["resolution"]
  g, d = sg.build(ml_collections.ConfigDict({"size": size}), (r, r, 3))
  count = lambda t: sum(math.prod(v.shape) for v in jax.tree.leaves(t))
  gv = jax.eval_shape(lambda z: g.init(jax.random.key(0), z), jax.ShapeDtypeStruct((4, p["z_dim"]), jnp.float32))
  dv = jax.eval_shape(lambda x: d.init(jax.random.key(0), x), jax.ShapeDtypeStruct((4, r, r, 3), jnp.float32))
  return count(gv["params"]["mapping"]), count(gv["params"]["synthesis"]), count(dv["params"])


@pytest.mark.parametrize("size", ["ffhq", "256", "small", "tiny"])
def test_parameter_counts_match_networks_stylegan_layer_list(size):
  p = sg.PRESETS[size]
  expected = _official_counts(p["resolution"], p["fmap_base"], p["fmap_max"], p["z_dim"], p["w_dim"], p["map_layers"])
  assert _model_counts(size) == expected


def test_ffhq_counts_and_the_published_figure():
  """FFHQ 1024 (the reference's defaults): mapping 8 x (512 x 512 + 512) = 2,101,248, and G in total
  26.2M, the figure of arXiv:1812.04948 Sec. 2 ("our generator has 26.2M trainable parameters, compared
  to 23.1M in the traditional generator"). The paper's networks grow progressively, so they also hold
  the ToRGB layers of the eight lower resolutions (7,608 parameters); both structures round to 26.2M."""
  mapping, synth, d = _official_counts(1024, 8192, 512, 512, 512, 8)
  assert mapping == 2_101_248
  assert (mapping + synth, d) == (26_212_019, 23_077_137)
  g_grow = sum(_official_counts(1024, 8192, 512, 512, 512, 8, growing=True)[:2])
  assert g_grow - (mapping + synth) == 7_608
  assert round((mapping + synth) / 1e5) == round(g_grow / 1e5) == 262
  # nf per block: 512 up to 32x32, then halving to 16 at 1024 (fmap_base 8192).
  assert [sg.nf(k - 1, 8192, 512) for k in range(2, 11)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
  assert sg.num_layers(1024) == 18


# ---------------------------------------------------------------------------------------------
# AdaIN, instance norm, noise.

def test_instance_norm_zero_mean_unit_variance_per_channel():
  """Per sample and channel over H, W: mean 0 and variance v / (v + 1e-8) (1 up to 1e-8 / v). float32:
  each output carries O(H W) roundings of the mean and variance sums, <= 64 u relative at 8x8 x 2."""
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 5)) * jnp.arange(1.0, 6.0).reshape(1, 1, 1, 5) + 3.0
  y = np.asarray(sg.instance_norm(x), np.float64)
  xv = np.asarray(x, np.float64)
  v = xv.var(axis=(1, 2))
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=128 * F32_U * np.abs(y).max())
  np.testing.assert_allclose(y.var(axis=(1, 2)), v / (v + 1e-8), rtol=128 * F32_U)
  # Each channel is normalized on its own: scaling one channel of the input leaves the output.
  x2 = x.at[..., 2].multiply(7.0)
  np.testing.assert_allclose(np.asarray(sg.instance_norm(x2)), y, rtol=0, atol=128 * F32_U * 4)


def _epilogue_params(c, w_dim, bias, noise_weight, style_kernel, style_bias):
  return {"params": {"noise_weight": jnp.asarray(noise_weight, jnp.float32), "bias": jnp.asarray(bias, jnp.float32),
                     "style": {"kernel": jnp.asarray(style_kernel, jnp.float32),
                               "bias": jnp.asarray(style_bias, jnp.float32)}}}


def test_adain_output_is_style_scale_times_normalized_plus_style_bias():
  """Layer epilogue on a fixed input (noise weight 0): out_c = (y_s,c + 1) * IN(lrelu(x + b))_c + y_b,c
  with [y_s, y_b] = w K + b_style (style gain 1), values computed here in float64."""
  c, w_dim = 3, 4
  x = np.arange(2 * 4 * 4 * c, dtype=np.float64).reshape(2, 4, 4, c) % 7 - 3.0   # fixed, with negatives
  w = np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 2.0, 0.0, -1.0]])
  kernel = np.linspace(-1.0, 1.0, w_dim * 2 * c).reshape(w_dim, 2 * c)
  style_bias = np.array([0.1, -0.2, 0.3, 0.5, 0.0, -0.5])
  bias = np.array([0.5, -1.0, 0.0])
  v = _epilogue_params(c, w_dim, bias, np.zeros(c), kernel, style_bias)
  out = np.asarray(sg.Epilogue().apply(v, jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), None),
                   np.float64)
  h = x + bias
  h = np.where(h >= 0, h, 0.2 * h)
  h = h - h.mean(axis=(1, 2), keepdims=True)
  normalized = h / np.sqrt((h ** 2).mean(axis=(1, 2), keepdims=True) + 1e-8)
  style = w @ kernel + style_bias
  ys, yb = style[:, :c], style[:, c:]
  expected = normalized * (ys[:, None, None, :] + 1.0) + yb[:, None, None, :]
  # float32: |normalized| <= 4 (16 pixels), |y_s + 1|, |y_b| <= 4; a few dozen roundings each.
  np.testing.assert_allclose(out, expected, rtol=0, atol=64 * F32_U * 16)
  # Channel 1, sample 0, by hand: scale and bias of that channel only.
  np.testing.assert_allclose(out[0, ..., 1], (ys[0, 1] + 1.0) * normalized[0, ..., 1] + yb[0, 1], atol=64 * F32_U * 16)


def test_noise_is_scaled_by_its_learned_per_channel_weight():
  """x + noise * weight_c before the bias: weight 0 gives the output without noise, bit for bit; a
  weight on one channel changes that channel only, by exactly the pre-activation shift noise * weight."""
  c, w_dim = 3, 2
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, c)) + 5.0, jnp.float32)   # > 0 after the shift: lrelu linear
  w = jnp.asarray(rng.normal(size=(2, w_dim)), jnp.float32)
  noise = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  kernel, sb = rng.normal(size=(w_dim, 2 * c)), np.zeros(2 * c)
  epi = sg.Epilogue()
  zero = _epilogue_params(c, w_dim, np.zeros(c), np.zeros(c), kernel, sb)
  plain = epi.apply(zero, x, w, None)
  np.testing.assert_array_equal(np.asarray(epi.apply(zero, x, w, noise)), np.asarray(plain))
  np.testing.assert_array_equal(np.asarray(epi.apply(zero, x, w, jax.random.key(3))), np.asarray(plain))
  weighted = _epilogue_params(c, w_dim, np.zeros(c), np.array([0.0, 0.7, 0.0]), kernel, sb)
  out = epi.apply(weighted, x, w, noise)
  np.testing.assert_array_equal(np.asarray(out[..., 0]), np.asarray(plain[..., 0]))
  np.testing.assert_array_equal(np.asarray(out[..., 2]), np.asarray(plain[..., 2]))
  shifted = epi.apply(zero, x.at[..., 1].add(0.7 * noise[..., 0]), w, None)
  np.testing.assert_allclose(np.asarray(out), np.asarray(shifted), rtol=0, atol=16 * F32_U * 16)
  assert float(jnp.abs(out[..., 1] - plain[..., 1]).max()) > 0.1


# ---------------------------------------------------------------------------------------------
# Blur and resampling.

def test_blur_kernel_is_121_outer_121_over_16():
  k = sg.blur_kernel()
  np.testing.assert_array_equal(k, np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16)
  assert k.sum() == 1.0
  # An impulse gives the kernel; a constant image stays constant away from the zero-padded border.
  x = jnp.zeros((1, 5, 5, 2)).at[0, 2, 2, 1].set(1.0)
  np.testing.assert_array_equal(np.asarray(sg.blur2d(x))[0, 1:4, 1:4, 1], k)
  assert float(jnp.abs(sg.blur2d(x)[..., 0]).max()) == 0.0
  ones = sg.blur2d(jnp.ones((1, 6, 6, 1)))
  np.testing.assert_array_equal(np.asarray(ones)[0, 1:5, 1:5, 0], 1.0)
  np.testing.assert_allclose(float(ones[0, 0, 0, 0]), 9 / 16)


def _fused_kernel(kernel):
  """The reference's fused 4x4 kernel: the 3x3 kernel padded by 1 and its four shifts summed."""
  w = jnp.pad(kernel, ((1, 1), (1, 1), (0, 0), (0, 0)))
  return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def test_fused_upsampling_conv_is_the_transposed_stride2_conv():
  """upscale2d_conv2d, fused (tf.nn.conv2d_transpose, stride 2, SAME, of the summed 4x4 kernel) is the
  transpose (vjp) of a stride-2 SAME conv (padding 1 each side for 4 taps on 2H); the model computes it
  as nearest 2x + conv with the flipped 3x3 kernel. The unfused path is nearest 2x + the kernel itself,
  a different map for the same weights."""
  rng = np.random.RandomState(0)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 4, 5)), jnp.float64)
  x = jnp.asarray(rng.normal(size=(2, 6, 6, 4)), jnp.float64)
  with float64_mode(True):
    kernel, x = jnp.asarray(kernel, jnp.float64), jnp.asarray(x, jnp.float64)
    w4 = _fused_kernel(kernel)   # [4, 4, in, out]
    fwd = lambda y: jax.lax.conv_general_dilated(y, w4, (2, 2), ((1, 1), (1, 1)),
                                                 dimension_numbers=("NHWC", "HWOI", "NHWC"))
    _, pullback = jax.vjp(fwd, jnp.zeros((2, 12, 12, 5), jnp.float64))
    transposed = pullback(x)[0]
    fused = sg.upscale_conv(x, kernel, fused=True)
    np.testing.assert_allclose(np.asarray(fused), np.asarray(transposed), rtol=1e-12, atol=1e-12)
    plain = sg.upscale_conv(x, kernel, fused=False)
    np.testing.assert_allclose(np.asarray(plain), np.asarray(sg.conv(sg.upscale2d(x), kernel)), rtol=1e-12)
    assert float(jnp.abs(plain - fused).max()) > 0.1


def test_fused_downsampling_conv_equals_conv_then_average_pool():
  """conv2d_downscale2d fused (stride-2 SAME conv of 0.25 * the summed 4x4 kernel) == conv then 2x2 mean."""
  rng = np.random.RandomState(1)
  with float64_mode(True):
    kernel = jnp.asarray(rng.normal(size=(3, 3, 4, 5)), jnp.float64)
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float64)
    fused = jax.lax.conv_general_dilated(x, 0.25 * _fused_kernel(kernel), (2, 2), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(sg.downscale2d(sg.conv(x, kernel))), np.asarray(fused), rtol=1e-12,
                               atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The family.

def _family(**model):
  config, data = methods.get("stylegan").test_config()
  config.model.update(model)
  return methods.build(config, data), config


def test_mapping_runs_at_lr_multiplier_001_with_gain_sqrt2():
  """Effective mapping weights are W = sqrt(2) * 0.01 / sqrt(fan_in) * w and biases 0.01 * b (get_weight
  with use_wscale, lrmul 0.01; apply_bias(lrmul)), stored w ~ N(0, 1) / 0.01; the synthesis and D layers
  run at multiplier 1."""
  method, _ = _family()
  state = method.init(jax.random.key(0))
  spec = method.nets["g"]
  muls = spec.eqlr.lr_muls(state.nets["g"].params)
  assert {k: m for k, m in muls.items() if "mapping" in k} == {"mapping/dense0/kernel": 0.01,
                                                               "mapping/dense1/kernel": 0.01}
  assert {m for k, m in muls.items() if "mapping" not in k} == {1.0}
  stored = state.nets["g"].params["mapping"]["dense0"]
  assert 50 < float(jnp.std(stored["kernel"])) < 200   # N(0, 1) / 0.01: 16 x 16 draws, std 100
  stored = {**stored, "bias": jnp.linspace(-1.0, 1.0, 16)}
  z = jax.random.normal(jax.random.key(1), (4, 16))
  params = {"mapping": {"dense0": stored, "dense1": state.nets["g"].params["mapping"]["dense1"]},
            "synthesis": state.nets["g"].params["synthesis"]}
  eff = spec.eqlr.apply(params)
  h = sg.MappingNetwork(16, 1).apply({"params": {"dense0": eff["mapping"]["dense0"]}}, z)
  zn = np.asarray(z, np.float64) / np.sqrt(np.mean(np.square(np.asarray(z, np.float64)), axis=1, keepdims=True) + 1e-8)
  pre = zn @ (np.asarray(stored["kernel"], np.float64) * math.sqrt(2) * 0.01 / 4.0) + 0.01 * np.asarray(stored["bias"])
  np.testing.assert_allclose(np.asarray(h), np.where(pre >= 0, pre, 0.2 * pre), rtol=1e-5, atol=1e-6)


def test_truncation_identity_at_psi_1_and_w_avg_below_the_cutoff_at_psi_0():
  rng = np.random.RandomState(0)
  ws = jnp.asarray(rng.normal(size=(3, 8, 4)), jnp.float32)
  avg = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  # psi = 1: w_avg + (w - w_avg), w up to the two roundings of the subtraction and the addition (the
  # family skips the truncation at psi 1, as G_style does, so its samples are w exactly).
  bound = 2 * F32_U * float(jnp.max(jnp.abs(ws) + jnp.abs(avg.reshape(1, 1, -1))))
  np.testing.assert_allclose(np.asarray(sg2.truncate(ws, avg, 1.0, 5)), np.asarray(ws), rtol=0, atol=bound)
  t = np.asarray(sg2.truncate(ws, avg, 0.0, 5))
  np.testing.assert_array_equal(t[:, :5], np.broadcast_to(np.asarray(avg), (3, 5, 4)))
  np.testing.assert_array_equal(t[:, 5:], np.asarray(ws)[:, 5:])
  np.testing.assert_allclose(np.asarray(sg2.truncate(ws, avg, 0.7, 8)), np.asarray(avg) + 0.7 * (np.asarray(ws) - np.asarray(avg)),
                             rtol=1e-6)


def test_family_samples_truncate_with_the_cutoff():
  """generate(psi=0): with the cutoff at every layer (4 at 8x8, no noise) all latents give one image;
  with cutoff 3 the last layer keeps each sample's w, so the images differ; psi 1 is no truncation."""
  method, _ = _family(truncation_cutoff=4)
  state = method.init(jax.random.key(0))
  state = state.replace(extras={"w_avg": jax.random.normal(jax.random.key(5), (method.w_dim,))})
  z = jax.random.normal(jax.random.key(1), (3, method.z_dim))
  same = np.asarray(method.generate(state, z, None, psi=0.0))
  np.testing.assert_allclose(same, np.broadcast_to(same[:1], same.shape), rtol=0, atol=1e-6)
  method3, _ = _family(truncation_cutoff=3)
  differ = np.asarray(method3.generate(state, z, None, psi=0.0))
  assert np.abs(differ - differ[:1]).max() > 1e-3
  np.testing.assert_array_equal(np.asarray(method3.generate(state, z, None, psi=1.0)),
                                np.asarray(method.generate(state, z, None, psi=1.0)))


def test_training_rules_follow_the_reference():
  """D (logistic + R1 in one update) then G every step, no lazy phases; Adam(lr, 0, 0.99, 1e-8) at the
  reference's lr for the final resolution; G EMA beta 0.5 ** (batch / 10 kimg); w_avg in the state."""
  from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
  method, _ = _family()
  for step in range(4):
    assert [p.name for p in method.plan(step).phases] == ["d", "g"]
  assert set(method.init(jax.random.key(0)).extras) == {"w_avg"}
  c = config_lib.get_base_config()
  from ganzoo.methods.stylegan import apply_preset  # pylint: disable=g-import-not-at-top
  for size, lr, batch in (("ffhq", 0.003, 32), ("512", 0.003, 32), ("256", 0.002, 32), ("small", 0.001, 32)):
    apply_preset(c, size)
    assert (c.nets.g.optim.lr, c.nets.d.optim.lr, c.data.batch_size) == (lr, lr, batch)
  o = c.nets.g.optim
  assert (o.name, o.b1, o.b2, o.eps) == ("adam", 0.0, 0.99, 1e-8)
  assert (c.loss.r1_gamma, c.loss.style_mixing, c.loss.w_avg_beta, c.loss.ema_kimg) == (10.0, 0.9, 0.995, 10.0)
  assert (c.model.truncation_psi, c.model.truncation_cutoff) == (1.0, 8)   # untruncated FID; cutoff 8 at psi < 1
  assert c.nets.g.eqlr.enabled and c.nets.d.eqlr.enabled and c.nets.g.eqlr.lr_mul == 0.01
  beta = method.nets["g"].ema_decay(jnp.asarray(5))
  np.testing.assert_allclose(float(beta), 0.5 ** (16 / 10.0), rtol=1e-6)   # test config: ema_kimg 0.01, batch 16


def test_d_loss_adds_r1_to_the_logistic_loss():
  """The d phase's loss = softplus(D(fake)) + softplus(-D(real)) + gamma / 2 * mean ||grad_x D(real)||^2,
  checked against the two parts computed on their own (regularizers.r1_penalty, the logistic loss)."""
  from ganzoo import regularizers  # pylint: disable=g-import-not-at-top
  method, _ = _family()
  state = method.init(jax.random.key(0))
  spec = method.nets["d"]
  params, bs = nets_lib.inference_variables(spec, state.nets["d"], use_ema=False)
  d_fn = lambda x: nets_lib.forward(spec, params, bs, x, train=True)[0]

  class Ctx:   # the one call the loss makes of its context
    def apply(self, name, x):
      assert name == "d"
      return d_fn(x)

  real = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1), minval=-1.0, maxval=1.0)
  fake = jax.random.uniform(jax.random.key(2), (16, 8, 8, 1), minval=-1.0, maxval=1.0)
  loss, metrics = method._d_r1_loss(Ctx(), {"real": real, "fake": fake})  # pylint: disable=protected-access
  logistic = jnp.mean(jax.nn.softplus(d_fn(fake))) + jnp.mean(jax.nn.softplus(-d_fn(real)))
  r1 = regularizers.r1_penalty(d_fn, real)
  assert float(r1) > 0
  np.testing.assert_allclose(float(metrics["r1"]), float(r1), rtol=1e-6)
  np.testing.assert_allclose(float(loss), float(logistic + 0.5 * method.r1_gamma * r1), rtol=1e-6)


def test_tiny_networks_shapes_and_bad_config():
  g, d = sg.build(ml_collections.ConfigDict({"size": "tiny"}), (16, 16, 3))
  z = jax.random.normal(jax.random.key(0), (4, 16))
  gv = g.init(jax.random.key(1), z)
  img = g.apply(gv, z, rngs={"dropout": jax.random.key(2)})
  assert img.shape == (4, 16, 16, 3) and bool(jnp.all(jnp.isfinite(img)))
  # Noise weights start at 0: noise does not change the output at init; the constant starts at ones.
  np.testing.assert_array_equal(np.asarray(img), np.asarray(g.apply(gv, z)))
  np.testing.assert_array_equal(np.asarray(gv["params"]["synthesis"]["const"]), 1.0)
  assert d.apply(d.init(jax.random.key(3), img), img).shape == (4,)
  with pytest.raises(ValueError, match="image_size"):
    sg.build(ml_collections.ConfigDict({"size": "tiny"}), (32, 32, 3))
  with pytest.raises(ValueError, match="config.model.size"):
    sg.build(ml_collections.ConfigDict({"size": "huge"}), (16, 16, 3))
  config, data = methods.get("stylegan").test_config()
  config.model.truncation_cutoff = 0
  with pytest.raises(ValueError, match="truncation_cutoff"):
    methods.build(config, data)
  config, data = methods.get("stylegan").test_config()
  config.loss.name = "hinge"
  with pytest.raises(ValueError, match="loss.name='stylegan'"):
    methods.build(config, data)
