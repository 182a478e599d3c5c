"""Tests for the ganzoo.models architectures (mlp, dcgan, sngan_cnn, sngan_resnet)."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models

BATCH = 4


def _key(seed: int) -> jax.Array:
  """A PRNG key. 'rbg' because XLA:CPU compiles threefry-based inits ~7x slower (14 s vs 2 s for
  8 normal draws on the shared 2-core machine), which would dominate these tests."""
  return jax.random.key(seed, impl='rbg')


# Tiny forward passes: compile time dominates, and XLA's -O0 halves it on CPU.
_FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}

# (family, image_shape, num_classes) at size 'tiny'.
CASES = [
    ('mlp', (28, 28, 1), 0),
    ('mlp', (2,), 0),
    ('dcgan', (28, 28, 1), 0),
    ('dcgan', (32, 32, 3), 0),
    ('dcgan', (64, 64, 3), 0),
    ('sngan_cnn', (28, 28, 1), 0),
    ('sngan_cnn', (32, 32, 3), 0),
    ('sngan_cnn', (48, 48, 3), 0),
    ('sngan_cnn', (32, 32, 3), 5),
    ('sngan_resnet', (28, 28, 1), 0),
    ('sngan_resnet', (32, 32, 3), 0),
    ('sngan_resnet', (48, 48, 3), 0),
    ('sngan_resnet', (32, 32, 3), 5),
]
HAS_BN = {'mlp': False, 'dcgan': True, 'sngan_cnn': True, 'sngan_resnet': True}


def _cfg(name, size='tiny', **kw):
  return ml_collections.ConfigDict(dict(name=name, size=size, **kw))


def _labels(num_classes):
  return jnp.arange(BATCH, dtype=jnp.int32) % num_classes if num_classes else None


def _n_params(variables):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables['params']))


def test_families_are_registered():
  assert {'mlp', 'dcgan', 'sngan_cnn', 'sngan_resnet'} == {c[0] for c in CASES}
  assert {c[0] for c in CASES} <= set(models.names())


@pytest.mark.parametrize('name,image_shape,num_classes', CASES)
def test_tiny_forward(name, image_shape, num_classes):
  g, d = models.build(_cfg(name), image_shape, num_classes)
  kz, kg, kd = jax.random.split(_key(0), 3)
  z = jax.random.normal(kz, (BATCH, g.z_dim))
  y = _labels(num_classes)

  x0 = jnp.zeros((BATCH,) + tuple(image_shape))

  @functools.partial(jax.jit, compiler_options=_FAST_COMPILE)
  def run(kg, kd, z, y, x0):
    """Init; train mode (batch statistics, updated running stats); eval mode (running stats)."""
    vg, vd = g.init(kg, z, y, train=False), d.init(kd, x0, y, train=False)
    x_tr, upd_g = g.apply(vg, z, y, train=True, mutable=['batch_stats'])
    logits_tr, _ = d.apply(vd, x_tr, y, train=True, mutable=['batch_stats'])
    x_ev = g.apply(vg, z, y, train=False)
    return vg, (x_tr, logits_tr), (x_ev, d.apply(vd, x_ev, y, train=False)), upd_g

  vg, train_out, eval_out, upd_g = run(kg, kd, z, y, x0)
  assert ('batch_stats' in vg) == HAS_BN[name]
  for x, logits in (train_out, eval_out):
    assert x.shape == (BATCH,) + tuple(image_shape) and x.dtype == jnp.float32
    assert logits.shape == (BATCH,) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(logits))
    assert np.max(np.abs(x)) <= 1.0
    assert np.std(x) > 0.0 and np.std(logits) > 0.0  # Not constant.
  # In train mode BN normalizes each layer, so the output has a sizeable spread.
  assert np.std(train_out[0]) > 1e-3
  if HAS_BN[name]:
    # Training mode moved the running means away from their initial zeros.
    means = [a for p, a in jax.tree_util.tree_leaves_with_path(upd_g['batch_stats'])
             if p[-1].key == 'mean']
    assert means and min(float(np.max(np.abs(m))) for m in means) > 0.0


def test_mlp_identity_output_is_unbounded():
  g, _ = models.build(_cfg('mlp', size='small', output_activation='none'), (2,))
  z = jnp.ones((BATCH, g.z_dim))
  variables = g.init(_key(0), z)
  variables = jax.tree.map(lambda a: 50.0 * a, variables)
  x = g.apply(variables, z)
  assert x.shape == (BATCH, 2)
  assert np.max(np.abs(x)) > 1.0


def test_mlp_maxout():
  _, d = models.build(_cfg('mlp', d_hidden=[3], d_maxout_pieces=2), (2,))
  x = jnp.array([[1.0, -2.0], [0.5, 0.25]])
  variables = d.init(_key(0), x)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables['params'])
  w1, b1, w2, b2 = p['hidden_0']['kernel'], p['hidden_0']['bias'], p['out']['kernel'], p['out']['bias']
  xf = np.asarray(x, np.float64)
  h = (xf @ w1 + b1).reshape(2, 3, 2).max(axis=-1)
  expected = (h @ w2 + b2)[:, 0]
  # Rigorous float32 bound (Higham Sec. 3.1, any summation order): gamma_{K+1} (|W|^T |h| + |b|) per
  # dense layer plus the propagated input error; max over pieces does not increase the error.
  u = 2.0 ** -24
  e_h = (3 * u * (np.abs(xf) @ np.abs(w1) + np.abs(b1))).reshape(2, 3, 2).max(axis=-1)
  bound = (e_h @ np.abs(w2) + 4 * u * (np.abs(h) @ np.abs(w2) + np.abs(b2)))[:, 0] * 1.01
  assert np.all(np.abs(np.asarray(d.apply(variables, x), np.float64) - expected) <= bound)


@pytest.mark.parametrize('name', ['sngan_resnet', 'sngan_cnn'])
def test_projection_discriminator(name):
  """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (arXiv:1802.05637), with known params."""
  num_classes = 3
  _, d = models.build(_cfg(name), (32, 32, 3), num_classes)
  _, d_uncond = models.build(_cfg(name), (32, 32, 3), 0)
  kx, kp, ke = jax.random.split(_key(2), 3)
  x = jax.random.uniform(kx, (BATCH, 32, 32, 3), minval=-1.0, maxval=1.0)
  y = jnp.array([2, 0, 1, 2], jnp.int32)
  variables = jax.jit(d.init, compiler_options=_FAST_COMPILE)(kp, x, y)
  params = variables['params']
  emb = jax.random.normal(ke, params['embed']['embedding'].shape)
  params = {**params, 'embed': {'embedding': emb}}
  logits, state = jax.jit(functools.partial(d.apply, mutable=['intermediates']))(
      {'params': params}, x, y)
  (phi,) = state['intermediates']['features']
  assert phi.shape == (BATCH, params['out']['kernel'].shape[0])
  phi, w, b = (np.asarray(a, np.float64) for a in (phi, params['out']['kernel'],
                                                   params['out']['bias']))
  psi = phi @ w[:, 0] + b[0]
  proj = np.sum(np.asarray(emb, np.float64)[np.asarray(y)] * phi, axis=1)
  # The projection term is not negligible next to the linear term in this test.
  assert np.max(np.abs(proj)) > np.max(np.abs(psi - b[0]))
  expected = psi + proj
  # From the network's own phi the logit is one float32 sum of 2F + 1 terms: rigorously within
  # gamma_{2F+1} * sum|terms| (Higham Sec. 3.1) on any machine; a missing/transposed projection is
  # O(|proj|), which the assert above makes larger than the linear term.
  f = phi.shape[1]
  gamma = (2 * f + 1) * 2.0 ** -24 / (1 - (2 * f + 1) * 2.0 ** -24)
  emb64 = np.asarray(emb, np.float64)[np.asarray(y)]
  terms = np.abs(phi) @ np.abs(w[:, 0]) + abs(b[0]) + np.sum(np.abs(emb64 * phi), 1)
  assert np.all(np.abs(np.asarray(logits, np.float64) - expected) <= gamma * terms * 1.01)
  # Without the embedding, the same parameters give the unconditional psi(phi(x)). This is another
  # program that recomputes phi: its float32 rounding differs through the whole ResNet, which the
  # probabilistic model (Higham & Mary 2019: lambda sqrt(K) u per layer, K <= 3*3*128, ~10 layers,
  # lambda = 4) bounds by ~4e-5 of the logits' scale; the embedding's term alone is > 1e-1 of it.
  params_uncond = {k: v for k, v in params.items() if k != 'embed'}
  np.testing.assert_allclose(d_uncond.apply({'params': params_uncond}, x), psi, rtol=1e-4,
                             atol=1e-4 * np.max(np.abs(psi)))


def test_conditional_generator_uses_labels():
  g, _ = models.build(_cfg('sngan_resnet'), (32, 32, 3), 3)
  z = jnp.tile(jax.random.normal(_key(0), (1, g.z_dim)), (BATCH, 1))  # Same z for all.
  y = jnp.array([0, 1, 1, 2], jnp.int32)
  variables = g.init(_key(1), z, y, train=False)
  cbn = variables['params']['block_0']['bn1']
  assert set(cbn) == {'gamma', 'beta'}
  assert cbn['gamma']['embedding'].shape == (3, g.g_ch)
  # Give each class its own beta in the first block's first CBN.
  params = jax.tree_util.tree_map_with_path(
      lambda p, a: jax.random.normal(_key(3), a.shape)
      if 'beta' in jax.tree_util.keystr(p) else a, variables['params'])
  x = g.apply({**variables, 'params': params}, z, y, train=False)
  # Same z, same label: the same arithmetic on two rows; a backend may still round rows in other
  # SIMD lanes or tail loops, a few ulps of |x| <= 1 (tanh) carried through the net: 1e-6 is 16 ulps.
  np.testing.assert_allclose(x[1], x[2], atol=1e-6)
  assert np.max(np.abs(x[0] - x[1])) > 1e-3 and np.max(np.abs(x[1] - x[3])) > 1e-3


# Parameter counts of the 'paper' sizes (weights + biases + BN scale/offset; running stats are
# not params). k^2*Cin*Cout per conv; "+b" is a bias of Cout; BN(C) = 2C.
#
# mlp, MNIST (28,28,1), z=100, G 2x1200 ReLU, D 2x240 maxout(5):
#   G: (100*1200+1200) + (1200*1200+1200) + (1200*784+784) = 121,200+1,441,200+941,584 = 2,503,984
#   D: (784*1200+1200) + (240*1200+1200) + (240+1)         = 942,000+289,200+241     = 1,231,441
# dcgan 64x64x3, z=100, g_ch=d_ch=128 (G 1024/512/256/128 as the paper's Fig. 1):
#   G: 100*16*1024 + BN(1024) + 16*(1024*512 + 512*256 + 256*128 + 128*3) + BN(512+256+128)
#      = 1,638,400 + 2,048 + 11,016,192 + 1,792                                 = 12,658,432
#   D: (16*3*128+128) + 16*(128*256 + 256*512 + 512*1024) + BN(256+512+1024) + (16*1024+1)
#      = 6,272 + 11,010,048 + 3,584 + 16,385                                     = 11,036,289
# dcgan 64x64x3, z=100, g_ch=d_ch=64 (the PyTorch DCGAN example, which has no biases):
#   G: 100*16*512 + 16*(512*256 + 256*128 + 128*64 + 64*3) + BN(512+256+128+64)
#      = 819,200 + 2,754,560 + 1,920 + 1,024 = 3,576,704 (exactly the PyTorch example's G)
#   D: 2,765,568 (PyTorch example's D) + 64 (our first conv's bias) + 1 (our Dense bias) = 2,765,633
# dcgan 32x32x3, z=100, paper widths (G 512/256/128, D 128/256/512):
#   G: 100*16*512 + BN(512) + 16*(512*256 + 256*128 + 128*3) + BN(256+128)  = 3,448,576
#   D: (16*3*128+128) + 16*(128*256 + 256*512) + BN(256+512) + (16*512+1)    = 2,637,441
# sngan_cnn 32x32x3, z=128, g_ch=512, d_ch=64 (all layers with bias):
#   G: (128*8192+8192) + BN(512) + (16*512*256+256) + BN(256) + (16*256*128+128) + BN(128)
#      + (16*128*64+64) + BN(64) + (9*64*3+3)                                    = 3,813,379
#   D: (27*64+64) + (16*64*64+64) + (9*64*128+128) + (16*128*128+128) + (9*128*256+256)
#      + (16*256*256+256) + (9*256*512+512) + (4*4*512+1)                       = 2,935,873
# sngan_resnet 32x32x3, z=128, g_ch=256, d_ch=128, biases everywhere (as the chainer code):
#   G: Dense (128*16*256+16*256) = 528,384
#      3 x GBlock[BN(256) + (9*256*256+256) + BN(256) + (9*256*256+256) + (256*256+256)]
#        = 3 x 1,246,976 = 3,740,928
#      BN(256) + (9*256*3+3) = 7,427                                   G total = 4,276,739
#   D: OptimizedBlock (9*3*128+128) + (9*128*128+128) + (3*128+128)             = 151,680
#      down DBlock 2*(9*128*128+128) + (128*128+128)                              = 311,680
#      2 x DBlock 2*(9*128*128+128)                                               = 590,336
#      Dense (128+1)                                                   D total = 1,053,825
#   conditional on K classes: G's 6 block BNs become CBNs (K*2C instead of 2C each):
#      + 6*2*256*(K-1); D adds the projection embedding K*128. K=10: G 4,304,387, D 1,055,105.
PAPER_COUNTS = [
    ('mlp', (28, 28, 1), 0, dict(z_dim=100), 2_503_984, 1_231_441),
    ('dcgan', (64, 64, 3), 0, dict(z_dim=100), 12_658_432, 11_036_289),
    ('dcgan', (64, 64, 3), 0, dict(z_dim=100, g_ch=64, d_ch=64), 3_576_704, 2_765_633),
    ('dcgan', (32, 32, 3), 0, dict(z_dim=100), 3_448_576, 2_637_441),
    ('sngan_cnn', (32, 32, 3), 0, {}, 3_813_379, 2_935_873),
    ('sngan_resnet', (32, 32, 3), 0, {}, 4_276_739, 1_053_825),
    ('sngan_resnet', (32, 32, 3), 10, {}, 4_304_387, 1_055_105),
]


@pytest.mark.parametrize('name,image_shape,num_classes,overrides,n_g,n_d', PAPER_COUNTS)
def test_paper_param_counts(name, image_shape, num_classes, overrides, n_g, n_d):
  g, d = models.build(_cfg(name, size='paper', **overrides), image_shape, num_classes)
  y = _labels(num_classes)
  z = jnp.zeros((BATCH, g.z_dim))
  vg = jax.eval_shape(lambda: g.init(_key(0), z, y, train=False))
  x = jnp.zeros((BATCH,) + tuple(image_shape))
  vd = jax.eval_shape(lambda: d.init(_key(0), x, y, train=False))
  assert (_n_params(vg), _n_params(vd)) == (n_g, n_d)


def test_sngan_generator_plan():
  from ganzoo.models import sngan  # pylint: disable=g-import-not-at-top
  assert sngan.generator_plan((32, 32, 3), 'x') == (4, 3)
  assert sngan.generator_plan((28, 28, 1), 'x') == (7, 2)
  assert sngan.generator_plan((48, 48, 3), 'x') == (6, 3)
  assert sngan.generator_plan((64, 64, 3), 'x') == (4, 4)


def test_inits():
  """DCGAN: N(0, 0.02) weights, N(1, 0.02) BN scales; SNGAN ResNet: Glorot uniform (gain sqrt 2)."""
  init = functools.partial(jax.jit, static_argnums=0, compiler_options=_FAST_COMPILE)(
      lambda m, k, x: m.init(k, x, train=False))
  g, _ = models.build(_cfg('dcgan', size='tiny', g_ch=16), (32, 32, 3))
  vg = init(g, _key(0), jnp.zeros((2, g.z_dim)))
  w = np.asarray(vg['params']['up_0']['kernel'])  # 4x4x64x32.
  # Sampling bounds over n = 32768 draws: the std's std error 0.02 / sqrt(2n) = 8e-5 and the mean's
  # 0.02 / sqrt(n) = 1.1e-4, so 1e-3 is > 9 sigma for any key; the BN scale: 5 sigma of the mean of
  # 64 and 0.4 relative for their std (std error 1 / sqrt(128) = 9%: 4.5 sigma).
  assert abs(float(np.std(w)) - 0.02) < 1e-3 and abs(float(np.mean(w))) < 1e-3
  scale = np.asarray(vg['params']['bn_project']['scale'])  # 64 channels.
  assert abs(float(np.mean(scale)) - 1.0) < 5 * 0.02 / np.sqrt(scale.size)
  assert 0.6 * 0.02 < float(np.std(scale)) < 1.4 * 0.02
  _, d = models.build(_cfg('sngan_resnet', size='tiny'), (32, 32, 3))
  vd = init(d, _key(0), jnp.zeros((2, 32, 32, 3)))
  w = vd['params']['block_1']['conv1']['kernel']  # 3x3x16x16, gain sqrt(2).
  bound = np.sqrt(2.0) * np.sqrt(6.0 / (2 * 9 * 16))
  # Uniform on [-bound, bound]: P(max of n draws < (1 - d) bound) = (1 - d)^n: 0.99^2304 = 1e-10,
  # 0.95^256 = 2e-6 (the float32 bound itself is the uniform's edge, hence <=).
  assert bound * 0.99 < float(np.max(np.abs(w))) <= bound
  w = vd['params']['block_1']['shortcut']['kernel']  # 1x1x16x16, gain 1.
  assert np.sqrt(6.0 / 32) * 0.95 < float(np.max(np.abs(w))) <= np.sqrt(6.0 / 32)


@pytest.mark.parametrize('name,image_shape,cfg,match', [
    ('dcgan', (30, 30, 3), {}, 'dcgan supports 28x28, 32x32, 64x64'),
    ('dcgan', (32, 28, 3), {}, 'config.data.image_size'),
    ('dcgan', (32, 32, 3), dict(size='small'), 'config.model.size'),
    ('mlp', (2,), dict(size='huge'), 'config.model.size'),
    ('mlp', (2,), dict(output_activation='sigmoid'), 'output_activation'),
    ('sngan_cnn', (7, 7, 3), {}, 'config.data.image_size'),
    ('sngan_resnet', (30, 30, 3), {}, 'multiple of 4'),
    ('sngan_resnet', (32, 32, 3), dict(size='large'), 'config.model.size'),
])
def test_bad_config_raises(name, image_shape, cfg, match):
  cfg = {'size': 'tiny', **cfg}
  with pytest.raises(ValueError, match=match):
    models.build(_cfg(name, **cfg), image_shape)


@pytest.mark.parametrize('name', ['mlp', 'dcgan'])
def test_unconditional_families_reject_classes(name):
  with pytest.raises(ValueError, match='unconditional'):
    models.build(_cfg(name), (28, 28, 1), 10)


def test_conditional_models_need_labels():
  g, d = models.build(_cfg('sngan_resnet'), (32, 32, 3), 3)
  with pytest.raises(ValueError, match='pass labels y'):
    g.init(_key(0), jnp.zeros((2, g.z_dim)), None, train=False)
  with pytest.raises(ValueError, match='pass labels y'):
    d.init(_key(0), jnp.zeros((2, 32, 32, 3)), None)
