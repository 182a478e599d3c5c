"""Tests for the 'biggan_deep' models: parameter counts from the layer lists and the published ones,
the bottleneck blocks' skips, tiny apply, and configs/biggan_deep.py against its launch script.

One training step of the tiny config through the registered family (with the hinge formulas
checked on its logits) is tests/test_train_objectives.py::test_one_step_logs_the_objectives_formula, which
runs every config in configs/.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models
from ganzoo.models import biggan_deep
from tests.test_steps import load_config

# The paper's BigGAN-deep tables (arXiv:1809.11096 App. B; BigGAN-PyTorch BigGANdeep.py G_arch /
# D_arch; google/compare_gan resnet_biggan_deep.py at 512), written out here independently of the
# model: per resolution (in, out) width multipliers of G and of D.
TABLES = {
    128: ([(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)],
          [(1, 2), (2, 4), (4, 8), (8, 16), (16, 16)]),
    256: ([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)],
          [(1, 2), (2, 4), (4, 8), (8, 8), (8, 16), (16, 16)]),
    512: ([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1), (1, 1)],
          [(1, 1), (1, 2), (2, 4), (4, 8), (8, 8), (8, 16), (16, 16)]),
}


def _attention(c):
  return 2 * c * (c // 8) + 2 * c * (c // 2) + 1  # f, g: C -> C/8; h: C -> C/2; v: C/2 -> C; gamma


def layer_list_counts(size, ch=128, z_dim=128, shared=128, classes=1000):
  """(G, D) parameter counts summed over the layers of TABLES[size]; attention at 64x64."""
  g_stages, d_stages = TABLES[size]
  cond = shared + z_dim
  g = classes * shared + cond * 16 * 16 * ch + 16 * 16 * ch   # shared embedding; linear c -> 4x4x16ch
  res = 4
  for m_in, m_out in g_stages:
    for cin, cout in ((m_in * ch, m_in * ch), (m_in * ch, m_out * ch)):   # in -> in, in -> out (up)
      hid = cin // 4
      g += 2 * cond * (cin + 3 * hid)                          # CBN gain and bias of bn1..bn4
      g += (cin * hid + hid) + 2 * (9 * hid * hid + hid) + (hid * cout + cout)
    res *= 2
    if res == 64:
      g += _attention(m_out * ch)
  g += 2 * ch + 9 * ch * 3 + 3                                 # BN scale/bias, conv3x3 ch -> 3
  d = 9 * 3 * ch + ch                                          # stem conv3x3 3 -> ch
  res = size
  for m_in, m_out in d_stages:
    for cin, cout in ((m_in * ch, m_out * ch), (m_out * ch, m_out * ch)):  # down, then same size
      hid = cout // 4
      d += (cin * hid + hid) + 2 * (9 * hid * hid + hid) + (hid * cout + cout)
      d += cin * (cout - cin) + (cout - cin) if cout > cin else 0   # the concatenated 1x1 channels
    res //= 2
    if res == 64:
      d += _attention(m_out * ch)
  d += 16 * ch + 1 + classes * 16 * ch                         # psi and the projection embedding
  return g, d


def _count(size, **model_cfg):
  cfg = ml_collections.ConfigDict({'name': 'biggan_deep', **model_cfg})
  g, d = models.build(cfg, (size, size, 3), 1000)
  z, y = jnp.zeros((2, g.z_dim)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  dv = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((2, size, size, 3)), y)
  return biggan_deep.num_params(gv['params']), biggan_deep.num_params(dv['params']), gv, dv


# TF-Hub biggan-deep-{128,256,512} generators: 50.4M / 55.9M / 56.2M parameters, as stated by
# huggingface/pytorch-pretrained-BigGAN's README (its op-for-op port of the TF-Hub modules; one
# decimal of millions). That port's final conv `conv_to_rgb` maps ch -> ch channels and keeps the
# first 3 (google/compare_gan's `experimental_fast_conv_to_rgb`: 128 outputs); the paper's tables
# and BigGAN-PyTorch have ch -> 3, as here, 9 * ch * (ch - 3) + (ch - 3) = 144,125 fewer at ch=128.
TFHUB_G_MILLIONS = {128: 50.4, 256: 55.9, 512: 56.2}


@pytest.mark.parametrize('size, want_g, want_d', [
    (128, 50_244_484, 34_590_210),
    (256, 55_736_708, 38_247_426),
    (512, 56_019_780, 38_301_122),
])
def test_param_counts_match_the_layer_lists_and_tfhub(size, want_g, want_d):
  """ch=128, z 128, shared 128, 1000 classes: exact against the layer lists (TABLES); G plus the
  TF-Hub final conv's extra channels rounds to the published count."""
  ng, nd, gv, _ = _count(size)
  assert (ng, nd) == layer_list_counts(size) == (want_g, want_d)
  ch = 128
  tfhub = ng + 9 * ch * (ch - 3) + (ch - 3)
  assert round(tfhub / 1e6, 1) == TFHUB_G_MILLIONS[size], tfhub
  assert round(ng / 1e6, 1) != TFHUB_G_MILLIONS[size]  # the difference is that conv, not noise
  # SN u-vectors live outside the model; BN running statistics are 'batch_stats', not params.
  assert set(gv) == {'params', 'batch_stats'}


def test_exact_layout_128():
  """BigGAN-deep 128 (BigGAN-PyTorch BigGANdeep.py, ch=128): the leaves the paper's table names."""
  _, _, gv, dv = _count(128)
  g, d = gv['params'], dv['params']
  assert g['shared']['embedding'].shape == (1000, 128)
  assert g['linear']['kernel'].shape == (256, 4 * 4 * 16 * 128)  # [shared(y), z], no chunks
  assert g['block0_0']['bn1']['gain']['kernel'].shape == (256, 2048)  # the whole c in every CBN
  assert g['block0_0']['conv1']['kernel'].shape == (1, 1, 2048, 512)  # bottleneck: in / 4
  assert g['block3_1']['conv4']['kernel'].shape == (1, 1, 128, 256)   # 4ch -> 2ch, hidden 4ch / 4
  assert 'conv_sc' not in g['block1_1']  # G's skip drops channels: no conv
  assert g['attn3']['f']['kernel'].shape == (1, 1, 256, 32)  # attention at 64x64, after stage 3
  assert g['out_conv']['kernel'].shape == (3, 3, 128, 3)
  assert len([k for k in g if k.startswith('block')]) == 10  # 2 blocks x 5 resolutions
  assert d['input_conv']['kernel'].shape == (3, 3, 3, 128)
  assert d['block0_0']['conv_sc']['kernel'].shape == (1, 1, 128, 128)  # ch -> 2ch adds ch channels
  assert d['block0_0']['conv1']['kernel'].shape == (1, 1, 128, 64)    # hidden = out / 4
  assert 'conv_sc' not in d['block0_1'] and 'conv_sc' not in d['block4_0']  # 2ch->2ch, 16ch->16ch
  assert d['attn0']['f']['kernel'].shape == (1, 1, 256, 32)  # at 64x64, after stage 0
  assert d['embed']['embedding'].shape == (1000, 2048)


def _zero_last_conv(params):
  p = jax.tree_util.tree_map(lambda a: a, params)
  p['conv4'] = jax.tree_util.tree_map(jnp.zeros_like, params['conv4'])
  return p


def test_g_block_skip_keeps_the_first_channels():
  """With the residual branch's last conv at 0, GBlock(16 -> 8, up) is up(x[..., :8]) exactly."""
  block = biggan_deep.GBlock(8, upsample=True)
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 16))
  cond = jax.random.normal(jax.random.key(1), (2, 6))
  v = block.init(jax.random.key(2), x, cond, train=True)
  out, _ = block.apply(v, x, cond, train=True, mutable=['batch_stats'])
  assert out.shape == (2, 8, 8, 8)
  v0 = {**v, 'params': _zero_last_conv(v['params'])}
  out0, _ = block.apply(v0, x, cond, train=True, mutable=['batch_stats'])
  want = np.repeat(np.repeat(np.asarray(x)[..., :8], 2, axis=1), 2, axis=2)
  np.testing.assert_array_equal(np.asarray(out0), want)  # h + skip with h = 0 exactly
  assert float(jnp.max(jnp.abs(out - out0))) > 1e-3  # the branch contributes when it is not zeroed


def test_d_block_skip_concatenates_new_channels():
  """With conv4 at 0, DBlock(4 -> 12, down) is [pool(x), conv_sc(pool(x))]: the first 4 channels
  exactly, the 8 new ones a 1x1 conv of 4 terms plus bias."""
  block = biggan_deep.DBlock(12, downsample=True)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  v = block.init(jax.random.key(1), x)
  out = block.apply(v, x)
  assert out.shape == (2, 4, 4, 12)
  out0 = np.asarray(block.apply({'params': _zero_last_conv(v['params'])}, x), np.float64)
  u = 2.0 ** -24
  x64 = np.asarray(x, np.float64).reshape(2, 4, 2, 4, 2, 4)
  xp, xa = x64.mean(axis=(2, 4)), np.abs(x64).mean(axis=(2, 4))
  # avg_pool2 = 0.25 * ((a + b) + (c + d)) in float32: 3 roundings, |err| <= gamma_3 * xa
  assert np.all(np.abs(out0[..., :4] - xp) <= 1.01 * 3 * u * xa)
  w = np.asarray(v['params']['conv_sc']['kernel'], np.float64)[0, 0]
  b = np.asarray(v['params']['conv_sc']['bias'], np.float64)
  # a float32 1x1 conv of the float32 pooled x: a sum of 4 products plus the bias, any order
  # (Higham Sec. 3.1: gamma_5), plus the pooling's error carried through |w|
  bound = 1.01 * (5 * u * (np.abs(xp) @ np.abs(w) + np.abs(b)) + 3 * u * xa @ np.abs(w))
  assert np.all(np.abs(out0[..., 4:] - (xp @ w + b)) <= bound)
  assert 'conv_sc' not in biggan_deep.DBlock(4, downsample=False).init(jax.random.key(1), x)['params']


@pytest.fixture(scope='module')
def tiny32():
  cfg = ml_collections.ConfigDict({'name': 'biggan_deep', 'size': 'tiny'})
  g, d = models.build(cfg, (32, 32, 3), 10)
  z = jax.random.normal(jax.random.key(0), (4, g.z_dim))
  y = jnp.array([0, 3, 3, 9], jnp.int32)
  gv = jax.jit(functools.partial(g.init, train=True))(jax.random.key(1), z, y)
  x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3), minval=-1.0, maxval=1.0)
  dv = jax.jit(d.init)(jax.random.key(3), x, y)
  return g, d, gv, dv, z, y, x


def test_tiny_apply(tiny32):
  g, d, gv, dv, z, y, x = tiny32
  assert (g.ch, g.z_dim, g.shared_dim, g.attention) == (8, 128, 16, (16,))
  out, upd = g.apply(gv, z, y, train=True, mutable=['batch_stats'])
  assert out.shape == (4, 32, 32, 3) and out.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(out))) <= 1.0
  old = gv['batch_stats']['block0_0']['bn1']['bn']['mean']
  assert float(jnp.max(jnp.abs(upd['batch_stats']['block0_0']['bn1']['bn']['mean'] - old))) > 0
  assert gv['params']['block0_0']['bn1']['gain']['kernel'].shape == (16 + 128, 32)
  a = g.apply(gv, z, y, train=False)
  # the last z coordinate reaches every block's CBN (no chunks): it must change the image
  assert float(jnp.max(jnp.abs(g.apply(gv, z.at[:, -1].add(1.0), y, train=False) - a))) > 1e-4
  logits = d.apply(dv, x, y)
  assert logits.shape == (4,) and logits.dtype == jnp.float32
  assert 'attn1' in gv['params'] and 'attn0' in dv['params']  # at 16x16 in both


def test_errors():
  cfg = ml_collections.ConfigDict({'name': 'biggan_deep', 'size': 'tiny'})
  with pytest.raises(ValueError, match='square images of size'):
    models.build(cfg, (48, 48, 3), 10)
  g, _ = models.build(ml_collections.ConfigDict({**cfg.to_dict(), 'attention_resolution': 12}), (32, 32, 3), 10)
  with pytest.raises(ValueError, match='attention_resolution'):
    jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), jnp.zeros((2, 128)),
                   jnp.zeros((2,), jnp.int32))
  with pytest.raises(ValueError, match='one data set'):
    load_config('biggan_deep', 'imagenet128,imagenet256')
  with pytest.raises(ValueError, match='unknown variant'):
    load_config('biggan_deep', 'imagenet1024')


@pytest.mark.parametrize('variant, size', [('', 128), ('imagenet256', 256), ('imagenet512', 512)])
def test_config_matches_the_launch_script(variant, size):
  """ajbrock/BigGAN-PyTorch scripts/launch_BigGAN_deep.sh: --batch_size 256 x 8 accumulations,
  --num_D_steps 1 --G_lr 1e-4 --D_lr 4e-4 --G_B2/--D_B2 0.999 --adam_eps 1e-6 --SN_eps 1e-6
  --G_ortho 0.0 --G_ch/--D_ch 128 --G_depth/--D_depth 2 --G_attn/--D_attn 64 --dim_z 128
  --shared_dim 128 --ema_start 20000; utils.py: B1 0, ema_decay 0.9999, 100 epochs."""
  c = load_config('biggan_deep', variant)
  assert (c.data.name, c.data.image_size, c.data.batch_size, c.train.grad_accum) == ('imagenet2012', size, 2048, 8)
  assert (c.model.name, c.model.ch, c.model.depth, c.model.z_dim, c.model.shared_dim) == ('biggan_deep', 128, 2, 128, 128)
  assert (c.model.attention_resolution, c.model.init, c.loss.name, c.train.d_steps) == (64, 'ortho', 'hinge', 1)
  for net, lr in (('g', 1e-4), ('d', 4e-4)):
    o = c.nets[net].optim
    assert (o.name, o.lr, o.b1, o.b2, o.eps) == ('adam', lr, 0.0, 0.999, 1e-6)
    assert c.nets[net].sn.enabled and c.nets[net].sn.eps == 1e-6
  assert (c.nets.g.ortho, c.nets.g.ema.decay, c.nets.g.ema.start) == (0.0, 0.9999, 20_000)
  assert c.train.num_steps == 100 * 1_281_167 // 2048
