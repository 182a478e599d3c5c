"""Tests of ganzoo/models/translation.py (the pix2pix / CycleGAN networks).

Parameter counts are computed by hand from the layer lists of junyanz/pytorch-CycleGAN-and-pix2pix
models/networks.py (the arithmetic is written out below), never from the model, and compared with
the model's param tree built by `jax.eval_shape` (no FLOPs). The reference prints these counts at
start-up ("[Network G] Total number of parameters : 54.414 M", in millions with 3 decimals).
"""

import functools
import os
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo.models import translation


def conv(cin, cout, k, bias):
  """Conv2d / ConvTranspose2d parameters: cin * cout * k * k weights (+ cout biases)."""
  return cin * cout * k * k + (cout if bias else 0)


def bn(c):
  """BatchNorm2d(affine=True): weight and bias per channel (running stats are buffers, not params)."""
  return 2 * c


def unet_count(input_nc, output_nc, num_downs, ngf, norm):
  """UnetGenerator's parameters, block by block from the outermost (use_bias = norm == 'instance';
  InstanceNorm2d(affine=False) has no params)."""
  b = norm == "instance"
  nrm = bn if norm == "batch" else (lambda c: 0)
  g = ngf
  # outermost (outer output_nc, inner ngf): downconv input_nc -> ngf (use_bias); upconv 2 ngf -> output_nc
  # (torch's default bias=True); no norms.
  total = conv(input_nc, g, 4, b) + conv(2 * g, output_nc, 4, True)
  # (outer, inner) blocks with downconv outer -> inner, downnorm(inner), upconv 2 inner -> outer, upnorm(outer).
  middle = [(g, 2 * g), (2 * g, 4 * g), (4 * g, 8 * g)] + [(8 * g, 8 * g)] * (num_downs - 5)
  for outer, inner in middle:
    total += conv(outer, inner, 4, b) + nrm(inner) + conv(2 * inner, outer, 4, b) + nrm(outer)
  # innermost (8 ngf, 8 ngf): downconv, no downnorm; upconv inner -> outer (no concat inside), upnorm.
  total += conv(8 * g, 8 * g, 4, b) + conv(8 * g, 8 * g, 4, b) + nrm(8 * g)
  return total


def resnet_count(input_nc, output_nc, ngf, n_blocks, norm):
  """ResnetGenerator's parameters (c7s1-ngf, d2 ngf, d4 ngf, n_blocks x R, u2 ngf, u ngf, c7s1-output_nc)."""
  b = norm == "instance"
  nrm = bn if norm == "batch" else (lambda c: 0)
  g = ngf
  total = conv(input_nc, g, 7, b) + nrm(g)
  total += conv(g, 2 * g, 3, b) + nrm(2 * g) + conv(2 * g, 4 * g, 3, b) + nrm(4 * g)
  total += n_blocks * 2 * (conv(4 * g, 4 * g, 3, b) + nrm(4 * g))
  total += conv(4 * g, 2 * g, 3, b) + nrm(2 * g) + conv(2 * g, g, 3, b) + nrm(g)
  total += conv(g, output_nc, 7, True)  # the last conv keeps torch's default bias
  return total


def nlayer_count(input_nc, ndf, n_layers, norm):
  """NLayerDiscriminator: conv (bias) ndf; n_layers - 1 strided convs + norms; a stride-1 conv + norm;
  the 1-channel conv (bias)."""
  b = norm == "instance"
  nrm = bn if norm == "batch" else (lambda c: 0)
  total, prev = conv(input_nc, ndf, 4, True), ndf
  for n in range(1, n_layers + 1):
    width = ndf * min(2 ** n, 8)
    total += conv(prev, width, 4, b) + nrm(width)
    prev = width
  return total + conv(prev, 1, 4, True)


def pixel_count(input_nc, ndf, norm):
  b = norm == "instance"
  nrm = bn if norm == "batch" else (lambda c: 0)
  return conv(input_nc, ndf, 1, True) + conv(ndf, 2 * ndf, 1, b) + nrm(2 * ndf) + conv(2 * ndf, 1, 1, b)


def _key(seed):
  """PRNG keys for the tests' inits and dropout masks: XLA:CPU compiles a jitted init of these
  nets ~8x faster with 'unsafe_rbg' than with threefry (3 s against 24 s measured for a 1-block
  ResnetGenerator); the tests check structure and behaviour, not particular random draws."""
  return jax.random.key(seed, impl="unsafe_rbg")


def _count(module, shape):
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape)))
  return translation.param_count(variables["params"])


def test_published_counts_by_hand():
  # The formulas above, evaluated at the published settings, written out once more as plain sums.
  # unet_256, 3 -> 3, ngf 64, batch norm (no conv biases but the output layer's):
  #   outermost 3*64*16 + 128*3*16 + 3 = 9,219; (64,128) 131,072 + 256 + 262,144 + 128 = 393,600;
  #   (128,256) 1,573,632; (256,512) 6,292,992; 3 x (512,512) 3 x 12,584,960; innermost 8,389,632.
  assert unet_count(3, 3, 8, 64, "batch") == (9_219 + 393_600 + 1_573_632 + 6_292_992 + 3 * 12_584_960 + 8_389_632)
  assert unet_count(3, 3, 8, 64, "batch") == 54_413_955      # printed "54.414 M"
  # The reference's printout for input_nc = output_nc = 1 (pytorch-CycleGAN-and-pix2pix issue #1152,
  # "54.408 M" and "2.765 M"): 2048 + 4096 + 2 fewer G params, 4 * 64 * 16 fewer D params.
  assert round(unet_count(1, 1, 8, 64, "batch") / 1e6, 3) == 54.408
  assert round(nlayer_count(2, 64, 3, "batch") / 1e6, 3) == 2.765
  # 70x70 D on (input, output) pairs, 6 channels, batch norm: 6*64*16 + 64 = 6,208; 131,072 + 256;
  # 524,288 + 512; 2,097,152 + 1,024; 512*16 + 1 = 8,193.
  assert nlayer_count(6, 64, 3, "batch") == 6_208 + 131_328 + 524_800 + 2_098_176 + 8_193 == 2_768_705
  # resnet_9blocks, instance norm (every conv has a bias): 9,472 + 73,856 + 295,168 + 9 x 1,180,160
  # + 295,040 + 73,792 + 9,411.
  assert resnet_count(3, 3, 64, 9, "instance") == (9_472 + 73_856 + 295_168 + 9 * 1_180_160 + 295_040 + 73_792
                                                   + 9_411) == 11_378_179
  # CycleGAN's D: 3 channels, instance norm (biases, no norm params): 3,136 + 131,200 + 524,544 +
  # 2,097,664 + 8,193.
  assert nlayer_count(3, 64, 3, "instance") == 3_136 + 131_200 + 524_544 + 2_097_664 + 8_193 == 2_764_737


@pytest.mark.parametrize("name,shape,norm,expected", [
    ("unet_256", (1, 256, 256, 3), "batch", 54_413_955),
    ("unet_128", (1, 128, 128, 3), "batch", unet_count(3, 3, 7, 64, "batch")),
    ("unet_256", (1, 256, 256, 3), "instance", unet_count(3, 3, 8, 64, "instance")),
    ("resnet_9blocks", (1, 256, 256, 3), "instance", 11_378_179),
    ("resnet_6blocks", (1, 128, 128, 3), "instance", resnet_count(3, 3, 64, 6, "instance")),
    ("resnet_9blocks", (1, 256, 256, 3), "batch", resnet_count(3, 3, 64, 9, "batch")),
])
def test_generator_param_counts(name, shape, norm, expected):
  g = translation.define_G(name, output_nc=3, ngf=64, norm=norm, use_dropout=name.startswith("unet"))
  assert _count(g, shape) == expected


@pytest.mark.parametrize("name,n_layers,cin,norm,expected", [
    ("basic", 3, 6, "batch", 2_768_705),            # pix2pix's 70x70 PatchGAN on pairs
    ("basic", 3, 3, "instance", 2_764_737),         # CycleGAN's D
    ("n_layers", 1, 6, "batch", nlayer_count(6, 64, 1, "batch")),   # 16x16 PatchGAN
    ("n_layers", 5, 6, "none", nlayer_count(6, 64, 5, "none")),     # 286x286; nf_mult capped at 8
    ("pixel", 3, 6, "batch", pixel_count(6, 64, "batch")),          # 1x1 PixelGAN
    ("pixel", 3, 3, "instance", pixel_count(3, 64, "instance")),
])
def test_discriminator_param_counts(name, n_layers, cin, norm, expected):
  d = translation.define_D(name, ndf=64, n_layers=n_layers, norm=norm)
  assert _count(d, (1, 256, 256, cin)) == expected


def test_small_counts_by_hand():
  # The formulas on the non-default sizes, as plain numbers (ngf 64): 16x16 D, PixelGAN, unet_128, resnet_6.
  assert nlayer_count(6, 64, 1, "batch") == 6_208 + (64 * 128 * 16 + 256) + (128 * 16 + 1) == 139_585
  assert pixel_count(6, 64, "batch") == (6 * 64 + 64) + 64 * 128 + 256 + 128 == 9_024
  assert unet_count(3, 3, 7, 64, "batch") == 54_413_955 - 12_584_960 == 41_828_995
  assert resnet_count(3, 3, 64, 6, "instance") == 11_378_179 - 3 * 1_180_160 == 7_837_699


@pytest.mark.parametrize("name,size,out", [("basic", 256, 30), ("n_layers", 256, 126), ("pixel", 64, 64)])
def test_discriminator_output_shapes(name, size, out):
  d = translation.define_D(name, ndf=8, n_layers=1, norm="batch")
  x = jnp.zeros((2, size, size, 6))
  shape = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(0), x), x)).shape
  assert shape == (2, out, out, 1)


@pytest.mark.parametrize("name,size", [("unet_256", 256), ("unet_128", 128), ("resnet_9blocks", 256),
                                       ("resnet_6blocks", 68)])
def test_generator_output_shapes(name, size):
  g = translation.define_G(name, output_nc=2, ngf=8, norm="batch", use_dropout=True)
  x = jnp.zeros((2, size, size, 3))
  shape = jax.eval_shape(lambda: g.apply(g.init(jax.random.key(0), x), x)).shape
  assert shape == (2, size, size, 2)


@pytest.mark.parametrize("n_layers,field,start", [(3, 70, lambda o: 8 * o - 23), (1, 16, lambda o: 2 * o - 5)])
def test_patchgan_receptive_field(n_layers, field, start):
  # The gradient of one logit w.r.t. the input is nonzero exactly on a field x field window: each 4x4
  # conv widens it by 3 steps of its input grid, 1 + 3 * (1 + 2 + 4 + 8 + 8) = 70 for convs with
  # strides 2, 2, 2, 1, 1 and 1 + 3 * (1 + 2 + 2) = 16 for strides 2, 1, 1; padding 1 puts logit o's
  # window at 8 o - 23 (resp. 2 o - 5). LeakyReLU's slopes are never 0, so nothing inside vanishes.
  d = translation.define_D("n_layers", ndf=2, n_layers=n_layers, norm="none")
  size, o = 72, 3   # logit 3's 70x70 window [1, 70] lies inside the 72x72 input
  x = jax.random.normal(jax.random.key(1), (1, size, size, 3))
  params = jax.jit(d.init)(_key(0), x)
  grad = jax.jit(jax.grad(lambda x: d.apply(params, x)[0, o, o, 0]))(x)
  support = np.abs(np.asarray(grad[0])).sum(-1) > 0
  rows, cols = np.nonzero(support)
  assert rows.min() == cols.min() == start(o)
  assert rows.max() - rows.min() + 1 == cols.max() - cols.min() + 1 == field
  assert support.sum() == field * field


def test_instance_norm_per_sample_per_channel():
  x = (jax.random.normal(jax.random.key(0), (3, 8, 8, 4)) * jnp.arange(1.0, 5.0).reshape(1, 1, 1, 4)
       + 10 * jnp.arange(4.0).reshape(1, 1, 1, 4))
  y = np.asarray(translation.instance_norm(x), np.float64)
  # Mean 0 up to float32 rounding (|y| <= 3 here, 64 terms: < 1e-5); variance var / (var + 1e-5)
  # with var >= ~0.1 for these samples: within 1e-4 of 1, and float32 rounding adds < 1e-5.
  assert np.abs(y.mean(axis=(1, 2))).max() < 1e-5
  assert np.abs(y.var(axis=(1, 2)) - 1.0).max() < 1e-4
  # Per sample: changing sample 2 leaves samples 0 and 1 untouched.
  y2 = translation.instance_norm(x.at[2].multiply(7.0))
  np.testing.assert_array_equal(np.asarray(y2[:2]), y[:2].astype(np.float32))


def test_instance_norm_network_has_no_statistics_and_ignores_train():
  g = translation.ResnetGenerator(output_nc=3, ngf=4, n_blocks=1, norm="instance")
  x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3), minval=-1, maxval=1)
  variables = jax.jit(g.init)(_key(0), x)
  assert set(variables) == {"params"}

  @jax.jit
  def run(v, x):
    # train=True / False, and sample 1 replaced: one compile for the three.
    return g.apply(v, x, train=True), g.apply(v, x, train=False), g.apply(v, x.at[1].set(0.3), train=True)

  a, b, c = (np.asarray(y) for y in run(variables, x))
  np.testing.assert_array_equal(a, b)
  # Per sample: sample 0's output does not depend on sample 1.
  np.testing.assert_array_equal(a[0], c[0])


@pytest.fixture(scope="module")
def small_unet():
  """A 6-level U-Net (64x64, one (8 ngf, 8 ngf) dropout level) with moved running statistics."""
  g = translation.UnetGenerator(output_nc=3, num_downs=6, ngf=2, norm="batch", use_dropout=True)
  x = jax.random.uniform(jax.random.key(3), (2, 64, 64, 3), minval=-1, maxval=1)
  variables = flax.core.unfreeze(jax.jit(g.init)(_key(0), x))
  # Running statistics away from their init (a mean shift of the size of the activations, ~1e-3,
  # keeps both signs of every unit alive after the ReLUs).
  rng = np.random.default_rng(0)
  variables["batch_stats"] = jax.tree.map(lambda s: s + 1e-3 * rng.standard_normal(s.shape, np.float32),
                                          variables["batch_stats"])

  @functools.partial(jax.jit, static_argnums=(3, 4))
  def run(variables, x, x_other, train, dropout):
    """Outputs for x with 'dropout' rngs 0 and 1, for x with sample 1 replaced, and the new statistics
    (inputs are arguments, not constants, so XLA does not fold one of the three calls differently)."""
    def apply(x, seed):
      return g.apply(variables, x, train=train, dropout=dropout, rngs={"dropout": _key(seed)},
                     mutable=["batch_stats"])
    (a, stats), (b, _), (c, _) = apply(x, 0), apply(x, 1), apply(x_other, 0)
    return a, b, c, stats["batch_stats"]

  return functools.partial(run, variables, x), x, variables["batch_stats"]


def test_train_and_dropout_are_independent(small_unet):
  run, x, stats0 = small_unet
  x_other = x.at[1].set(-x[1])
  for train, dropout in [(False, False), (False, True), (True, False), (True, True), (True, None)]:
    a, b, c, stats = jax.tree.map(np.asarray, run(x_other, train, dropout))
    on = train if dropout is None else dropout   # dropout=None means `train`
    # Dropout: a different 'dropout' rng changes the output iff dropout is on.
    assert np.array_equal(a, b) != on, (train, dropout)
    # train: batch statistics couple the samples (sample 0 sees sample 1) iff train is on.
    assert np.array_equal(a[0], c[0]) != train, (train, dropout)
    # Running statistics move iff train (torch momentum 0.1).
    moved = any(not np.array_equal(s, np.asarray(s0)) for s, s0 in zip(jax.tree.leaves(stats), jax.tree.leaves(stats0)))
    assert moved == train, (train, dropout)


def test_no_dropout_without_the_inner_levels():
  # num_downs 5 has no (8 ngf, 8 ngf) intermediate level, so use_dropout changes nothing: the rng is unused.
  g = translation.UnetGenerator(output_nc=3, num_downs=5, ngf=2, norm="batch", use_dropout=True)
  x = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = jax.jit(g.init)(_key(0), x)

  @jax.jit
  def run(v, x):
    return [g.apply(v, x, train=True, rngs={"dropout": _key(i)}, mutable=["batch_stats"])[0] for i in (0, 1)]

  a, b = run(variables, x)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dropout_block_zeroes_half_and_scales_by_two():
  # An intermediate (8 ngf, 8 ngf) block with dropout: its output is concat(x, Dropout(0.5)(up)); the
  # skip half is untouched and each up unit is 0 or 2x its dropout-free value.
  c = 16
  block = translation.UnetSkipConnectionBlock(((c, c, True), (c, c, False)), norm="batch")
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, c))
  variables = jax.jit(block.init)(_key(1), x)
  off = np.asarray(jax.jit(lambda v, x: block.apply(v, x, dropout=False))(variables, x))
  on = np.asarray(jax.jit(lambda v, x, r: block.apply(v, x, dropout=True, rngs={"dropout": r}))(
      variables, x, _key(2)))
  np.testing.assert_array_equal(on[..., :c], np.asarray(x))
  kept = on[..., c:] != 0
  np.testing.assert_allclose(on[..., c:][kept], 2 * off[..., c:][kept], rtol=1e-6)
  # 4096 Bernoulli(1/2) draws: the kept fraction is within 0.5 +- 0.04 (5 standard deviations).
  assert abs(kept.mean() - 0.5) < 0.04


def test_conv_transpose3x3_matches_dilated_conv():
  # torch ConvTranspose2d(k3, s2, p1, output_padding 1) = the lhs-dilated conv with pads (1, 2).
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  want = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  got = translation.conv_transpose3x3_2x(x, kernel)
  assert got.shape == (2, 10, 14, 4)
  # 9 products of N(0, 1) terms summed in another order: float32 rounding < 1e-5 here.
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_init_is_reference_normal():
  d = translation.define_D("basic", ndf=64, norm="batch")
  params = jax.jit(d.init)(_key(0), jnp.zeros((1, 64, 64, 6)))["params"]
  w = np.asarray(params["conv_3"]["kernel"])   # 256 * 512 * 16 = 2M draws of N(0, 0.02^2)
  # Standard error of the std estimate: 0.02 / sqrt(2 n) ~ 1e-5; 1e-4 is 10 of them.
  assert abs(w.std() - 0.02) < 1e-4 and abs(w.mean()) < 1e-4
  assert np.all(np.asarray(params["conv_0"]["bias"]) == 0)
  scale = np.asarray(params["norm_3"]["scale"])
  # 512 draws of N(1, 0.02^2): the mean is within 5 standard errors (0.02 / sqrt(512) ~ 9e-4).
  assert abs(scale.mean() - 1.0) < 5e-3 and 0.01 < scale.std() < 0.03


def test_bad_names_raise_clear_errors():
  with pytest.raises(ValueError, match="unknown generator"):
    translation.define_G("unet_512")
  with pytest.raises(ValueError, match="unknown discriminator"):
    translation.define_D("patch")
  with pytest.raises(ValueError, match="unknown norm"):
    translation.define_G("unet_256", norm="layer")
  with pytest.raises(ValueError, match="multiples of 256"):
    g = translation.define_G("unet_256")
    jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 128, 128, 3))))


def test_same_function_as_the_pytorch_twin():
  """ganzoo's networks and experiments/torch_translation.py's, written separately from the layer
  list, compute the same function when the params are copied (train-mode BatchNorm included, and
  the running statistics' update with torch's unbiased variance)."""
  torch = pytest.importorskip("torch")
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
  import torch_translation  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  # Small instances of each class (every block kind: U-Net outermost/intermediate/dropout-level/innermost,
  # ResNet blocks with both paddings, the strided and stride-1 PatchGAN convs).
  cases = [("unet", translation.UnetGenerator(2, 6, 2, "batch", use_dropout=False),
            torch_translation.UnetGenerator(3, 2, 6, 2, "batch", use_dropout=False), 64, 3),
           ("resnet", translation.ResnetGenerator(2, 4, 2, "instance"),
            torch_translation.ResnetGenerator(3, 2, 4, 2, "instance"), 12, 3),
           ("resnet-bn", translation.ResnetGenerator(2, 4, 1, "batch"),
            torch_translation.ResnetGenerator(3, 2, 4, 1, "batch"), 12, 3),
           ("basic", translation.NLayerDiscriminator(4, 3, "batch"),
            torch_translation.NLayerDiscriminator(6, 4, 3, "batch"), 40, 6)]
  for name, m, t, size, cin in cases:
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, cin)).astype(np.float32)
    variables = jax.jit(m.init)(_key(0), x)
    # Perturb every leaf (biases and statistics are 0/1 at init) so each one matters.
    rng = np.random.default_rng(1)
    variables = jax.tree.map(lambda a: np.asarray(a) + 0.1 * rng.standard_normal(a.shape, np.float32), variables)
    torch_translation.load_flax_params(t, variables["params"], variables.get("batch_stats"))
    t.train(True)
    y, new = jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    with torch.no_grad():
      yt = t(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    # float32 rounding through up to 14 layers of O(1) activations: observed ~5e-6; 1e-4 leaves room for
    # other summation orders while a wrong padding, flip or concat order is off by O(0.1).
    np.testing.assert_allclose(np.asarray(y), yt, atol=1e-4, err_msg=name)
    buffers = dict(t.named_buffers())
    for path, value in jax.tree_util.tree_leaves_with_path(new.get("batch_stats", {})):
      key = ".".join(k.key for k in path[:-1]) + ".running_" + path[-1].key
      np.testing.assert_allclose(np.asarray(value), buffers[key].numpy(), atol=1e-5, rtol=1e-5, err_msg=key)
    assert translation.param_count(variables["params"]) == torch_translation.param_count(t)
