"""Tests for ganzoo.models.stylegan2: demodulation, the FIR resampling, minibatch stddev, the
parameter counts of the stylegan2-ada-pytorch presets, and the tiny preset's shapes."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo.models import stylegan2 as sg


# ---------------------------------------------------------------------------------------------
# Demodulation.

def test_demodulation_gives_unit_variance_per_output_map():
  """arXiv:1912.04958 Sec. 2.2: with iid unit-variance inputs, output map o of a demodulated conv has
  variance sum_{k,i} w''_{k,i,o}^2 = S / (S + 1e-8), S = sum (w s)^2, i.e. 1 for every sample and map,
  whatever the styles; without demodulation it is S (here far from 1)."""
  rng = np.random.RandomState(0)
  n, cin, cout = 3, 8, 5
  kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) * 0.7, jnp.float32)
  styles = jnp.asarray(rng.uniform(0.2, 3.0, size=(n, cin)), jnp.float32)
  # The per-sample demodulated weights, read off the layer by linearity: the response to a unit
  # impulse at input pixel (2, 2) of channel i is w''[., ., i, o] (flipped; the sum of squares does
  # not care).
  sq = np.zeros((n, cout))
  for i in range(cin):
    x = np.zeros((n, 5, 5, cin), np.float32)
    x[:, 2, 2, i] = 1.0
    y = np.asarray(sg.modulated_conv(jnp.asarray(x), kernel, styles), np.float64)
    sq += np.sum(np.square(y[:, 1:4, 1:4, :]), axis=(1, 2))
  # float32: each weight is a product of 3 roundings and a rsqrt (4 * 2^-24 relative), so each
  # squared weight is within 1e-6 relative; the sum too.
  np.testing.assert_allclose(sq, 1.0, rtol=1e-6)
  s_plain = np.sum(np.square(np.asarray(kernel)[None] * np.asarray(styles)[:, None, None, :, None]), axis=(1, 2, 3))
  assert np.all(np.abs(s_plain - 1) > 0.5)   # the undemodulated variances are not 1

  # Empirically, 1x1 kernels (independent pixels): the sample variance of M = N * 96 * 96 iid
  # outputs of variance 1 has sd sqrt(2 / M) = 0.0085 per (sample, map) with M = 96^2: 5 sd = 0.043.
  k1 = jnp.asarray(rng.normal(size=(1, 1, 16, 4)), jnp.float32)
  s1 = jnp.asarray(rng.uniform(0.2, 3.0, size=(2, 16)), jnp.float32)
  x = jax.random.normal(jax.random.key(0), (2, 96, 96, 16))
  y = np.asarray(sg.modulated_conv(x, k1, s1), np.float64)
  var = y.reshape(2, -1, 4).var(axis=1)
  assert np.all(np.abs(var - 1.0) < 5 * math.sqrt(2 / 96 ** 2)), var
  y0 = np.asarray(sg.modulated_conv(x, k1, s1, demodulate=False), np.float64)
  assert np.all(np.abs(y0.reshape(2, -1, 4).var(axis=1) - 1.0) > 0.5)


def test_modulated_conv_up_equals_per_sample_weights():
  """The unfused path (x * s -> conv -> * d) equals a conv with each sample's own weights w s d."""
  rng = np.random.RandomState(1)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 4, 6)), jnp.float32)
  styles = jnp.asarray(rng.uniform(0.5, 2.0, size=(2, 4)), jnp.float32)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 4)), jnp.float32)
  for up in (1, 2):
    y = sg.modulated_conv(x, kernel, styles, up=up)
    assert y.shape == (2, 4 * up, 4 * up, 6)
    for b in range(2):
      w = kernel * styles[b][None, None, :, None]
      w = w / jnp.sqrt(jnp.sum(w ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
      ref = sg.conv2d(x[b:b + 1], w, up=up)
      # Same ops up to the order of the scaling: float32 sums of 36 terms, |terms| <~ 3: 1e-5.
      np.testing.assert_allclose(y[b:b + 1], ref, atol=2e-5)


# ---------------------------------------------------------------------------------------------
# FIR resampling and minibatch stddev.

def test_fir_filter_and_resampling_keep_constants():
  f = sg.fir_filter()
  np.testing.assert_allclose(f[0], np.array([1, 3, 3, 1]) / 64.0)   # outer([1,3,3,1]) / 64
  x = jnp.ones((1, 8, 8, 2))
  up = np.asarray(sg.upsample2d(x))
  assert up.shape == (1, 16, 16, 2)
  # Zero insertion keeps 1 pixel in 4; the filter's gain 4 restores the mean (interior exactly 1:
  # sums of 16 products of dyadic fractions are exact in float32).
  np.testing.assert_array_equal(up[0, 2:-2, 2:-2], 1.0)
  down = np.asarray(sg.conv2d(x, jnp.ones((3, 3, 2, 1)) / 18.0, down=2))
  assert down.shape == (1, 4, 4, 1)
  np.testing.assert_allclose(down[0, 1:-1, 1:-1], 1.0, rtol=1e-6)


def test_minibatch_stddev_groups():
  # N = 4, group size 2: samples {0, 2} and {1, 3} form the groups (the reference's reshape).
  x = np.zeros((4, 2, 2, 2), np.float32)
  x[0], x[2] = 1.0, 3.0   # group {0, 2}: sd 1 everywhere
  x[1], x[3] = 5.0, 5.0   # group {1, 3}: sd 0
  y = np.asarray(sg.minibatch_stddev(jnp.asarray(x), group_size=2))
  assert y.shape == (4, 2, 2, 3)
  np.testing.assert_allclose(y[[0, 2], ..., 2], 1.0, rtol=1e-6)
  np.testing.assert_allclose(y[[1, 3], ..., 2], math.sqrt(1e-8), rtol=1e-4)
  np.testing.assert_array_equal(y[..., :2], x)
  with pytest.raises(ValueError, match="group size"):
    sg.minibatch_stddev(jnp.zeros((6, 2, 2, 2)), group_size=4)


# ---------------------------------------------------------------------------------------------
# Parameter counts against the published architecture.

def _c(res, base, cmax):
  return min(base // res, cmax)


def _published_counts(resolution, channel_base, channel_max, z_dim, w_dim, map_layers, d_architecture, img=3):
  """Parameter counts of G and D written out from the layer list of stylegan2-ada-pytorch
  training/networks.py (weights + biases per layer), independently of the model under test:

  G: mapping fc_i (in -> w_dim, + bias) x map_layers; const C4 x 4 x 4; per resolution r, synthesis
     layers (affine w_dim -> C_in + bias, weight C_out C_in 3 3, noise strength 1, bias C_out): one
     (C4 -> C4) at r = 4, two (C(r/2) -> C(r), C(r) -> C(r)) above; and a toRGB per r (affine
     w_dim -> C(r) + bias, weight 3 C(r), bias 3).
  D: per resolution r = R .. 8: fromRGB at R (3 C(R) + C(R)), conv0 (9 C(r)^2 + C(r)), conv1
     (9 C(r) C(r/2) + C(r/2)), 'resnet' skip (C(r) C(r/2), no bias); epilogue: conv
     (9 (C4 + 1) C4 + C4, the +1 is the minibatch-stddev map), fc (16 C4 C4 + C4), out (C4 + 1).
  """
  ch = lambda r: _c(r, channel_base, channel_max)
  g = sum((z_dim if i == 0 else w_dim) * w_dim + w_dim for i in range(map_layers))
  g += ch(4) * 16
  synth = lambda cin, cout: (w_dim * cin + cin) + cout * cin * 9 + 1 + cout
  torgb = lambda cin: (w_dim * cin + cin) + img * cin + img
  log2 = int(math.log2(resolution))
  for r in [2 ** i for i in range(2, log2 + 1)]:
    if r == 4:
      g += synth(ch(4), ch(4))
    else:
      g += synth(ch(r // 2), ch(r)) + synth(ch(r), ch(r))
    g += torgb(ch(r))
  d = img * ch(resolution) + ch(resolution)
  for r in [2 ** i for i in range(log2, 2, -1)]:
    d += 9 * ch(r) * ch(r) + ch(r) + 9 * ch(r) * ch(r // 2) + ch(r // 2)
    if d_architecture == "resnet":
      d += ch(r) * ch(r // 2)
  c4 = ch(4)
  d += 9 * (c4 + 1) * c4 + c4 + 16 * c4 * c4 + c4 + c4 + 1
  return g, d


def _model_counts(size):
  p = sg.PRESETS[size]
  r = p["resolution"]
  g, d = sg.build(ml_collections.ConfigDict({"size": size}), (r, r, 3))
  z = jax.ShapeDtypeStruct((4, p["z_dim"]), jnp.float32)
  x = jax.ShapeDtypeStruct((min(p["mbstd_group"], 8) * 4, r, r, 3), jnp.float32)
  count = lambda t: sum(math.prod(v.shape) for v in jax.tree.leaves(t))
  gv = jax.eval_shape(lambda z: g.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, z), z)
  dv = jax.eval_shape(lambda x: d.init(jax.random.key(0), x), x)
  return count(gv["params"]), count(dv["params"])


# The official code prints these totals (training_loop's print_module_summary): D 29,012,513 at
# 1024 with fmaps 1 (a 1024 'auto' run's log, whose G with 2 mapping layers has 28,794,124 =
# 30,370,060 - 6 x 262,656: the stylegan2 preset's G with its 8 mapping layers is 30,370,060).
# The written-out list reproduces them, and the model equals the list for every preset.
OFFICIAL = {"stylegan2": (30_370_060, 29_012_513)}


@pytest.mark.parametrize("size", ["cifar", "paper256", "stylegan2", "tiny"])
def test_parameter_counts_match_published_architecture(size):
  p = sg.PRESETS[size]
  expected = _published_counts(p["resolution"], p["channel_base"], p["channel_max"], p["z_dim"], p["w_dim"],
                               p["map_layers"], p["d_architecture"])
  if size in OFFICIAL:
    assert expected == OFFICIAL[size]
  assert _model_counts(size) == expected


def test_presets_follow_train_py():
  # cfg_specs: channel_base = fmaps * 32768 (cifar 1, paper256 0.5, stylegan2 1), map, mbstd.
  assert (sg.PRESETS["cifar"]["channel_base"], sg.PRESETS["cifar"]["map_layers"],
          sg.PRESETS["cifar"]["mbstd_group"]) == (32768, 2, 32)
  assert (sg.PRESETS["paper256"]["channel_base"], sg.PRESETS["paper256"]["map_layers"],
          sg.PRESETS["paper256"]["mbstd_group"]) == (16384, 8, 8)
  assert (sg.PRESETS["stylegan2"]["channel_base"], sg.PRESETS["stylegan2"]["mbstd_group"]) == (32768, 4)
  assert sg.PRESETS["cifar"]["d_architecture"] == "orig"
  assert [sg.channels(r, 16384, 512) for r in (4, 32, 64, 128, 256)] == [512, 512, 256, 128, 64]
  assert sg.num_ws(1024) == 18 and sg.num_ws(32) == 8


# ---------------------------------------------------------------------------------------------
# The tiny preset end to end.

def test_tiny_generator_and_discriminator():
  g, d = sg.build(ml_collections.ConfigDict({"size": "tiny"}), (16, 16, 3))
  z = jax.random.normal(jax.random.key(0), (8, 16))
  gv = jax.jit(g.init)({"params": jax.random.key(1), "dropout": jax.random.key(2)}, z)
  img = jax.jit(lambda v, z: g.apply(v, z, rngs={"dropout": jax.random.key(3)}))(gv, z)
  assert img.shape == (8, 16, 16, 3) and bool(jnp.all(jnp.isfinite(img)))
  w = jax.jit(lambda v, z: g.apply(v, z, method="mapping"))(gv, z)
  assert w.shape == (8, 16)
  ws = jnp.broadcast_to(w[:, None], (8, sg.num_ws(16), 16))
  plain = jax.jit(g.apply)(gv, z)
  np.testing.assert_allclose(jax.jit(lambda v, ws: g.apply(v, ws, None, method="synthesis"))(gv, ws), plain,
                             rtol=1e-6, atol=1e-6)
  # Noise strength starts at 0: the noise does not change the output at init.
  np.testing.assert_allclose(img, plain, rtol=1e-6, atol=1e-6)
  # The mapping layers' paths carry 'mapping' (the equalized-LR multiplier 0.01 selects them).
  paths = ["/".join(str(k.key) for k in kp) for kp, _ in jax.tree_util.tree_flatten_with_path(gv["params"])[0]]
  assert sum("mapping" in p for p in paths) == 4
  dv = jax.jit(d.init)(jax.random.key(4), img)
  logits = jax.jit(d.apply)(dv, img)
  assert logits.shape == (8,)
  # w_avg: lerp(mean w, w_avg, 0.995).
  avg = sg.update_w_avg(jnp.zeros(16), w)
  np.testing.assert_allclose(avg, 0.005 * jnp.mean(w, axis=0), rtol=1e-5)
  np.testing.assert_allclose(sg.truncate(ws, avg, 0.0), jnp.broadcast_to(avg[None, None], ws.shape), rtol=1e-6)
  with pytest.raises(ValueError, match="image_size"):
    sg.build(ml_collections.ConfigDict({"size": "tiny"}), (32, 32, 3))


# ---------------------------------------------------------------------------------------------
# The family's training rules (ganzoo/methods/stylegan2.py).

def _family(**loss):
  from ganzoo import methods  # pylint: disable=g-import-not-at-top
  config, data = methods.get("stylegan2").test_config()
  config.loss.update(loss)
  return methods.build(config, data), config


def test_lazy_regularization_phases_and_adam_rescaling():
  """R1 every 16 and path length every 4: each regularizer's loss is multiplied by its interval, and
  the network's Adam gets lr * k / (k + 1) and betas ** (k / (k + 1)) (arXiv:1912.04958 App. B)."""
  import optax  # pylint: disable=g-import-not-at-top
  method, config = _family(r1_every=16, pl_every=4)
  by_name = {p.name: p for p in method.phases}
  assert (by_name["d_reg"].every, by_name["d_reg"].scale) == (16, 16.0)
  assert (by_name["g_reg"].every, by_name["g_reg"].scale) == (4, 4.0)
  assert [p.name for p in method.plan(0).phases] == ["g", "g_reg", "d", "d_reg"]
  assert [p.name for p in method.plan(4).phases] == ["g", "g_reg", "d"]
  assert [p.name for p in method.plan(1).phases] == ["g", "d"]
  # The EMA moves once per step, after G's last update.
  assert [p.ema for p in method.plan(4).phases if p.trains == ("g",)] == [False, True]
  assert method.plan(1).phases[0].ema
  lr = config.nets.d.optim.lr
  # t = 200 Adam steps with gradient 1, then one with 10 (b1 = 0): that update is
  # -lr' * 10 / sqrt(v_hat), v_hat = (b2' (1 - b2'^t) + (1 - b2') 100) / (1 - b2'^(t+1)): it shows lr' and b2'.
  t = 200

  def adam_update(lr_, b2):
    v_hat = (b2 * (1 - b2 ** t) + (1 - b2) * 100.0) / (1 - b2 ** (t + 1))
    return -lr_ * 10.0 / (math.sqrt(v_hat) + 1e-8)

  for net, k in (("d", 16), ("g", 4)):
    r = k / (k + 1)
    tx = method.nets[net].tx
    p = {"w": jnp.zeros(())}
    s = tx.init(p)
    step = jax.jit(tx.update)
    for _ in range(t):
      _, s = step({"w": jnp.ones(())}, s, p)
    u, _ = step({"w": jnp.full((), 10.0)}, s, p)
    # float32 Adam over 200 steps: v accumulates ~200 roundings of 2^-24 relative, 1e-5 relative in
    # all; b2 unrescaled moves the step by > 0.5%, both unrescaled by > 3% (k = 4: 4.9%).
    assert float(u["w"]) == pytest.approx(adam_update(lr * r, 0.99 ** r), rel=1e-5), net
    assert abs(float(u["w"]) / adam_update(lr * r, 0.99) - 1) > 5e-3
    assert abs(float(u["w"]) / adam_update(lr, 0.99) - 1) > 0.03
  # Without path length (cifar's pl_weight 0) there is no g_reg phase and G's Adam is not rescaled.
  method0, _ = _family(pl_weight=0.0)
  assert [p.name for p in method0.plan(0).phases] == ["g", "d", "d_reg"]
  tx = method0.nets["g"].tx
  p = {"w": jnp.zeros(())}
  u, _ = tx.update({"w": jnp.ones(())}, tx.init(p), p)
  assert float(u["w"]) == pytest.approx(-lr, rel=1e-5)
  from ganzoo.methods import stylegan2 as sg_family  # pylint: disable=g-import-not-at-top
  assert sg_family.lazy_ratio(16) == 16 / 17 and sg_family.lazy_ratio(0) == 1.0


class _LinearCtx:
  """A stand-in for step.Context: mapping w = z, synthesis img = sum_l ws[:, l] @ M_l (linear in ws)."""

  def __init__(self, m, extras):
    self.m, self.extras = m, extras

  def apply(self, name, *args, method=None, **kwargs):
    assert name == "g"
    if method == "mapping":
      return args[0]
    ws = args[0]
    n = ws.shape[0]
    return jnp.einsum("nlw,lwp->np", ws, self.m).reshape(n, 16, 16, 1)


def test_path_length_lengths_and_mean_update():
  """a = sqrt(mean_l ||M_l^T y||^2) for a synthesis linear in the ws; the mean moves by
  decay * (mean a - a_bar) and the penalty uses the moved mean (loss.py)."""
  from ganzoo.methods import stylegan2 as sg_family  # pylint: disable=g-import-not-at-top
  method, _ = _family(pl_decay=0.01, style_mixing=0.0)
  rng = np.random.RandomState(0)
  num_ws, w_dim = method.num_ws, method.w_dim
  m = rng.normal(size=(num_ws, w_dim, 256)).astype(np.float32)
  y = rng.normal(size=(4, 16, 16, 1)).astype(np.float32) / 16.0
  ctx = _LinearCtx(jnp.asarray(m), {"pl_mean": jnp.asarray(0.5, jnp.float32)})
  inp = {"z": jnp.asarray(rng.normal(size=(4, w_dim)), jnp.float32), "z2": jnp.zeros((4, w_dim), jnp.float32),
         "pl_noise": jnp.asarray(y), "mix": jax.random.key(0), "noise": None}
  loss, metrics = method._pl_loss(ctx, inp)   # pylint: disable=protected-access
  g = np.einsum("lwp,np->nlw", m.astype(np.float64), y.reshape(4, 256).astype(np.float64))
  lengths = np.sqrt(np.mean(np.sum(g ** 2, axis=2), axis=1))
  new_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
  # float32 sums of 256 and 16 products of O(1) numbers: 1e-5 relative.
  np.testing.assert_allclose(float(metrics["pl_length"]), lengths.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["pl_mean"]), new_mean, rtol=1e-5)
  np.testing.assert_allclose(float(loss), 2.0 * np.mean((lengths - new_mean) ** 2), rtol=1e-4)
  np.testing.assert_allclose(float(sg_family.update_pl_mean(jnp.asarray(0.5), jnp.asarray([1.0, 2.0, 3.0]), 0.01)),
                             0.515, rtol=1e-6)
  # The `after` hook stores the moved mean in the state's extras.
  assert float(method._after_pl({"pl_mean": jnp.zeros(())}, metrics, 0)["pl_mean"]) == pytest.approx(new_mean, rel=1e-5)


def test_ema_half_life_and_ramp_up():
  from ganzoo.methods import stylegan2 as sg_family  # pylint: disable=g-import-not-at-top
  # Half-life: after ema_nimg / batch updates the old weights weigh 0.5.
  beta = float(sg_family.ema_beta(jnp.asarray(10 ** 8), 32, 10.0, None))
  assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-4)
  # Ramp-up 0.05: after 1,000 images the half-life is 50 images; at 0 images the EMA copies G.
  assert float(sg_family.ema_beta(jnp.asarray(1000), 32, 10.0, 0.05)) == pytest.approx(0.5 ** (32 / 50), rel=1e-6)
  assert float(sg_family.ema_beta(jnp.asarray(0), 32, 10.0, 0.05)) == 0.0


def test_ema_schedule_and_phase_flag_in_nets():
  """nets.apply_grads with a callable EMA decay evaluates it at the step; update_ema=False (a
  Phase with ema=False: G's main update on a path-length step) leaves the EMA where it was."""
  import optax  # pylint: disable=g-import-not-at-top
  from ganzoo import nets as nets_lib  # pylint: disable=g-import-not-at-top
  from ganzoo import spectral_norm as sn_lib  # pylint: disable=g-import-not-at-top
  spec = nets_lib.NetSpec(module=None, tx=optax.sgd(1.0), sn=sn_lib.spectral_norm(include=lambda p, l: False),
                          ema_decay=lambda step: 0.25 * step)
  assert spec.has_ema
  p = {"w": jnp.asarray(4.0)}
  net = nets_lib.init_net(spec, {"params": p}, jax.random.key(0))
  grads = {"w": jnp.asarray(2.0)}   # the new params are 4 - 2 = 2
  kept = nets_lib.apply_grads(spec, net, grads, jnp.asarray(2), {}, net.sn, update_ema=False)
  assert float(kept.params["w"]) == 2.0 and float(kept.ema["w"]) == 4.0
  moved = nets_lib.apply_grads(spec, net, grads, jnp.asarray(2), {}, net.sn)
  assert float(moved.ema["w"]) == 0.5 * 4.0 + 0.5 * 2.0   # decay(2) = 0.5
