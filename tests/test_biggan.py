"""Tests for the 'biggan' models: paper parameter counts, tiny apply, projection head, skip-z."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models
from ganzoo.models import biggan


def _count_128(**model_cfg):
  cfg = ml_collections.ConfigDict({'name': 'biggan', **model_cfg})
  g, d = models.build(cfg, (128, 128, 3), 1000)
  z, y = jnp.zeros((2, g.z_dim)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  dv = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((2, 128, 128, 3)), y)
  return biggan.num_params(gv['params']), biggan.num_params(dv['params']), gv


@pytest.mark.parametrize('model_cfg, paper_millions', [
    ({'ch': 96}, 158.3),  # BigGAN: shared embedding + skip-z
    ({'ch': 64}, 71.3),
    ({'ch': 96, 'hier': False}, 160.6),  # shared, no skip-z
    ({'ch': 96, 'hier': False, 'shared_dim': 0}, 173.5),  # neither
])
def test_param_counts_match_table1(model_cfg, paper_millions):
  """BigGAN Table 1 (arXiv:1809.11096) at 128x128, 1000 classes, G + D, within 1%."""
  ng, nd, gv = _count_128(**model_cfg)
  assert abs((ng + nd) / (paper_millions * 1e6) - 1) < 0.01, (ng, nd)
  # SN u-vectors live outside the model; BN running statistics are 'batch_stats', not params.
  assert set(gv) == {'params', 'batch_stats'}


def test_param_counts_exact_layout_128_ch96():
  """BigGAN-PyTorch's layout at ch=96 gives exactly these counts (G 70.43M, D 87.98M)."""
  ng, nd, gv = _count_128(ch=96)
  assert (ng, nd) == (70_433_988, 87_982_370)
  p = gv['params']
  assert p['shared']['embedding'].shape == (1000, 128)
  assert p['linear']['kernel'].shape == (20, 4 * 4 * 16 * 96)  # z chunk 0 of 6 (120 / 6)
  assert p['block0']['bn1']['gain']['kernel'].shape == (128 + 20, 16 * 96)
  assert p['attn3']['f']['kernel'].shape == (1, 1, 192, 24)  # attention at 64x64, after block 3


# BigGAN's tables (arXiv:1809.11096 App. B; BigGAN-PyTorch BigGAN.py G_arch / D_arch; at 512 D as
# google/compare_gan resnet_biggan.py), written out independently of the model:
# G (in, out) per up block, D (in, out, down) per block, with its attention resolution and z.
BIGGAN_TABLES = {
    128: ([(16, 16), (16, 8), (8, 4), (4, 2), (2, 1)],
          [(0, 1, 1), (1, 2, 1), (2, 4, 1), (4, 8, 1), (8, 16, 1), (16, 16, 0)], 64, 120),
    256: ([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)],
          [(0, 1, 1), (1, 2, 1), (2, 4, 1), (4, 8, 1), (8, 8, 1), (8, 16, 1), (16, 16, 0)], 128, 140),
    512: ([(16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1), (1, 1)],
          [(0, 1, 1), (1, 1, 1), (1, 2, 1), (2, 4, 1), (4, 8, 1), (8, 8, 1), (8, 16, 1), (16, 16, 0)],
          64, 128),
}


def biggan_layer_list_counts(size, ch=96, shared=128, classes=1000):
  """(G, D) parameter counts summed over BIGGAN_TABLES[size] (in multiple 0 = the 3 RGB channels)."""
  g_blocks, d_blocks, attn, z_dim = BIGGAN_TABLES[size]
  chunk = z_dim // (len(g_blocks) + 1)
  attention = lambda c: 2 * c * (c // 8) + 2 * c * (c // 2) + 1
  g = classes * shared + chunk * 16 * 16 * ch + 16 * 16 * ch    # shared; linear z_0 -> 4x4x16ch
  res = 4
  for m_in, m_out in g_blocks:
    cin, cout = m_in * ch, m_out * ch
    g += 2 * (shared + chunk) * (cin + cout)                    # CBN gains and biases
    g += (9 * cin * cout + cout) + (9 * cout * cout + cout) + (cin * cout + cout)
    res *= 2
    g += attention(cout) if res == attn else 0
  g += 2 * ch + 9 * ch * 3 + 3
  d, res = 0, size
  for m_in, m_out, down in d_blocks:
    cin, cout = (m_in * ch or 3), m_out * ch
    d += (9 * cin * cout + cout) + (9 * cout * cout + cout)
    d += cin * cout + cout if (down or cin != cout) else 0
    res = res // 2 if down else res
    d += attention(cout) if res == attn else 0
  return g, d + 16 * ch + 1 + classes * 16 * ch


def _count(size):
  s = (size, size, 3)
  g, d = models.build(ml_collections.ConfigDict({'name': 'biggan'}), s, 1000)
  z, y = jnp.zeros((2, g.z_dim)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  dv = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((2, *s)), y)
  return g, biggan.num_params(gv['params']), biggan.num_params(dv['params'])


@pytest.mark.parametrize('size, want_g, want_d', [
    (128, 70_433_988, 87_982_370),  # the layer lists reproduce the Table 1 layout above
    (256, 82_097_604, 99_191_330),
    (512, 82_296_804, 99_401_282),
])
def test_param_counts_256_512_match_the_layer_lists(size, want_g, want_d):
  """BigGAN at ch=96, 1000 classes (paper defaults by size: z 120 / 140 / 128, attention at
  64 / 128 / 64): exact against the layer lists. The paper states no counts at 256 or 512."""
  g, ng, nd = _count(size)
  assert (g.z_dim, g.attention) == (BIGGAN_TABLES[size][3], (BIGGAN_TABLES[size][2],))
  assert (ng, nd) == biggan_layer_list_counts(size) == (want_g, want_d)


@pytest.mark.parametrize('variant, size, z_dim, attn', [('imagenet256', 256, 140, 128),
                                                        ('imagenet512', 512, 128, 64)])
def test_imagenet256_512_configs(variant, size, z_dim, attn):
  from tests.test_steps import load_config  # pylint: disable=g-import-not-at-top
  c = load_config('biggan', variant)
  base = load_config('biggan', 'imagenet128')
  assert (c.data.name, c.data.image_size, c.model.z_dim, c.model.attention_resolution) == (
      'imagenet2012', size, z_dim, attn)
  assert c.nets.to_dict() == base.nets.to_dict() and c.train.to_dict() == base.train.to_dict()
  with pytest.raises(ValueError, match='one data set'):
    load_config('biggan', f'imagenet128,{variant}')


def _tiny(num_classes=10, size=32, **extra):
  cfg = ml_collections.ConfigDict({'name': 'biggan', 'size': 'tiny', **extra})
  return models.build(cfg, (size, size, 3), num_classes)


@pytest.fixture(scope='module')
def tiny32():
  g, d = _tiny()
  z = jax.random.normal(jax.random.key(0), (4, g.z_dim))
  y = jnp.array([0, 3, 3, 9], jnp.int32)
  gv = jax.jit(functools.partial(g.init, train=True))(jax.random.key(1), z, y)
  x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3), minval=-1.0, maxval=1.0)
  dv = jax.jit(d.init)(jax.random.key(3), x, y)
  return g, d, gv, dv, z, y, x


def test_tiny_generator_apply(tiny32):
  g, _, gv, _, z, y, _ = tiny32
  assert g.z_dim == 128 and g.num_slots == 4  # 3 blocks + linear
  out, upd = g.apply(gv, z, y, train=True, mutable=['batch_stats'])
  assert out.shape == (4, 32, 32, 3) and out.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(out))) <= 1.0
  # train=True updates the running statistics (momentum 0.9 from mean 0)
  old = gv['batch_stats']['block0']['bn1']['bn']['mean']
  new = upd['batch_stats']['block0']['bn1']['bn']['mean']
  assert float(jnp.max(jnp.abs(new - old))) > 0
  out_eval = g.apply(gv, z, y, train=False)
  assert out_eval.shape == out.shape and out_eval.dtype == jnp.float32
  assert 'attn1' in gv['params']  # tiny: attention at 16x16


def test_skip_z_and_class_embedding(tiny32):
  g, _, gv, _, z, y, _ = tiny32
  chunks = g.apply(gv, z, method=g.split_z)
  assert [c.shape for c in chunks] == [(4, 32)] * 4
  np.testing.assert_array_equal(np.concatenate(chunks, -1), np.asarray(z))
  e = g.apply(gv, y, method=g.embed)
  assert e.shape == (4, 16)
  np.testing.assert_array_equal(np.asarray(e), np.asarray(gv['params']['shared']['embedding'])[y])
  a = g.apply(gv, z, y, train=False)
  b = g.apply(gv, z, None, train=False, class_vector=e)
  # The same ops on the same values (the class vector is an exact gather): equal up to any
  # fusion difference between the two calls, a few ulps of |x| <= 1 (tanh); 1e-6 is 16 ulps.
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  # the last z chunk reaches the image only through the last block's CBN: it must matter
  z2 = z.at[:, -1].add(1.0)
  assert float(jnp.max(jnp.abs(g.apply(gv, z2, y, train=False) - a))) > 1e-4


def test_projection_discriminator_equals_formula(tiny32):
  """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018) on known inputs."""
  _, d, _, dv, _, y, x = tiny32
  out = d.apply(dv, x, y, train=True)
  assert out.shape == (4,) and out.dtype == jnp.float32
  phi = np.asarray(d.apply(dv, x, method=d.features), np.float64)
  assert phi.shape == (4, 32) and (phi >= 0).all()  # sum-pooled ReLU features
  p = dv['params']
  w, b = np.asarray(p['linear']['kernel'], np.float64), np.asarray(p['linear']['bias'], np.float64)
  emb = np.asarray(p['embed']['embedding'], np.float64)
  want = (phi @ w)[:, 0] + b[0] + np.sum(emb[np.asarray(y)] * phi, axis=-1)
  # From D's own phi (the same ops, no batch statistics), the logit is float32 sums of 2F + 1
  # terms: within gamma_{2F+1} * sum|terms| on any machine (Higham Sec. 3.1, any order).
  n = 2 * phi.shape[1] + 1
  gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)

  def bound(e):
    return 1.01 * gamma * (np.abs(phi) @ np.abs(w)[:, 0] + abs(b[0]) + np.sum(np.abs(e[np.asarray(y)] * phi), -1))

  assert np.all(np.abs(np.asarray(out, np.float64) - want) <= bound(emb))
  # set the embedding to known values: <embed(y), phi> must move D by exactly that amount (each
  # logit within its bound; the float32 subtraction adds one rounding of |out2 - out|)
  p2 = jax.tree_util.tree_map(lambda a: a, p)
  p2['embed'] = {'embedding': p['embed']['embedding'] + 0.5}
  out2 = d.apply({'params': p2}, x, y)
  diff = np.asarray(out2 - out, np.float64)
  slack = bound(emb) + bound(emb + 0.5) + 2.0 ** -24 * np.abs(diff)
  assert np.all(np.abs(diff - 0.5 * phi.sum(-1)) <= slack)


def test_unconditional_and_errors():
  g, d = _tiny(num_classes=0)
  z = jnp.zeros((2, g.z_dim))
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z)
  assert 'shared' not in gv['params']
  assert gv['params']['block0']['bn1']['gain']['kernel'].shape[0] == 32  # z chunk only
  out = jax.eval_shape(functools.partial(g.apply, train=False), gv, z)
  assert out.shape == (2, 32, 32, 3)
  dv = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  assert 'embed' not in dv['params']
  with pytest.raises(ValueError, match='z_dim'):
    g2, _ = _tiny(z_dim=30)
    jax.eval_shape(functools.partial(g2.init, train=False), jax.random.key(0), jnp.zeros((2, 30)))
  with pytest.raises(ValueError, match='attention_resolution'):
    g3, _ = _tiny(attention_resolution=12)
    jax.eval_shape(functools.partial(g3.init, train=False), jax.random.key(0), z)
  with pytest.raises(ValueError, match='image'):
    _tiny(size=48)


def test_parse_resolutions():
  assert biggan.parse_resolutions('32_64') == (32, 64)
  assert biggan.parse_resolutions(64) == (64,)
  assert biggan.parse_resolutions(0) == ()
  assert biggan.parse_resolutions([16]) == (16,)
