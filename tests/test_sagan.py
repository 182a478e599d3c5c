"""Tests for the SAGAN self-attention block and the 'sagan' models."""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models
from ganzoo.models import attention
from ganzoo.models import biggan


def _attention_numpy(x, p, pool):
  """The SAGAN equations written out directly: s_ij = f_i^T g_j, softmax over i, v(sum beta h)."""
  n, hgt, wid, c = x.shape
  f = x @ p['f']['kernel'][0, 0]
  g = x @ p['g']['kernel'][0, 0]
  h = x @ p['h']['kernel'][0, 0]
  if pool:
    def mp(a):
      return a.reshape(n, hgt // 2, 2, wid // 2, 2, -1).max(axis=(2, 4))
    f, h = mp(f), mp(h)
  f = f.reshape(n, -1, f.shape[-1])
  h = h.reshape(n, -1, h.shape[-1])
  g = g.reshape(n, hgt * wid, -1)
  out = np.zeros_like(x).reshape(n, hgt * wid, c)
  for b in range(n):
    for j in range(hgt * wid):  # noqa: small loops on a 4x4 map
      s = np.array([f[b, i] @ g[b, j] for i in range(f.shape[1])])
      beta = np.exp(s - s.max())
      beta /= beta.sum()
      o = sum(beta[i] * h[b, i] for i in range(h.shape[1]))
      out[b, j] = o @ p['v']['kernel'][0, 0]
  return x + p['gamma'] * out.reshape(x.shape)


@pytest.mark.parametrize('pool', [True, False])
def test_attention_shapes_identity_and_equations(pool):
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 16))
  block = attention.SelfAttention(pool=pool)
  variables = block.init(jax.random.key(1), x)
  p = variables['params']
  assert p['f']['kernel'].shape == (1, 1, 16, 2)
  assert p['g']['kernel'].shape == (1, 1, 16, 2)
  assert p['h']['kernel'].shape == (1, 1, 16, 8)
  assert p['v']['kernel'].shape == (1, 1, 8, 16)
  assert float(p['gamma']) == 0.0
  y = block.apply(variables, x)
  assert y.shape == x.shape and y.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(y), np.asarray(x))  # gamma = 0: exactly the identity
  p = flax.core.unfreeze(p)
  p['gamma'] = jnp.asarray(0.7)
  y = np.asarray(block.apply({'params': p}, x))
  want = _attention_numpy(np.asarray(x, np.float64),
                          jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p), pool)
  # float32 vs float64: four stages (1x1 convs over 16 channels, the 2-channel scores, the softmax
  # over <= 16 positions, the weighted sum of <= 16 values, the 8-channel output conv), each sum
  # of <= 16 terms within gamma_16 = 1e-6 of its sum|terms| (<~ 4 here); the softmax carries
  # absolute score errors into relative weight errors one to one. Worst case ~2e-5 on |out| ~ 1,
  # times gamma 0.7: 1.4e-5, inside atol 3e-5 alone. A wrong axis, scale or pooling is O(1e-1).
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=3e-5)
  assert np.abs(y - np.asarray(x)).max() > 1e-3  # the attention branch does contribute


def test_attention_rejects_too_few_channels():
  with pytest.raises(ValueError, match='channels'):
    attention.SelfAttention().init(jax.random.key(0), jnp.zeros((1, 4, 4, 4)))


def test_sagan_tiny_apply_32():
  cfg = ml_collections.ConfigDict({'name': 'sagan', 'size': 'tiny'})
  g, d = models.build(cfg, (32, 32, 3), 10)
  z = jax.random.normal(jax.random.key(0), (2, 128))
  y = jnp.array([1, 7], jnp.int32)
  gv = jax.jit(functools.partial(g.init, train=True))(jax.random.key(1), z, y)
  assert set(gv) == {'params', 'batch_stats'}
  x, upd = g.apply(gv, z, y, train=True, mutable=['batch_stats'])
  assert x.shape == (2, 32, 32, 3) and x.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  assert set(upd) == {'batch_stats'}
  x_eval = g.apply(gv, z, y, train=False)
  assert x_eval.shape == x.shape
  assert float(jnp.max(jnp.abs(x_eval - x))) > 0  # running stats differ from batch stats
  # per-class BN tables (no shared embedding, no skip-z); attention at 16 in G (after block 1)
  assert gv['params']['block0']['bn1']['gamma']['embedding'].shape == (10, 32)
  assert 'attn1' in gv['params'] and 'shared' not in gv['params']
  dv = jax.jit(d.init)(jax.random.key(2), x, y)
  logits = d.apply(dv, x, y, train=True)
  assert logits.shape == (2,) and logits.dtype == jnp.float32
  assert 'attn0' in dv['params']  # D block 0 outputs 16x16
  # changing the label changes D's output through the projection
  assert float(jnp.max(jnp.abs(d.apply(dv, x, y[::-1], train=False) - logits))) > 0


def _shapes_128(name, ch=None, num_classes=1000, size='paper'):
  cfg = ml_collections.ConfigDict({'name': name, 'size': size})
  if ch:
    cfg.ch = ch
  g, d = models.build(cfg, (128, 128, 3), num_classes)
  z_dim = g.z_dim
  z, y = jnp.zeros((2, z_dim)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  dv = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((2, 128, 128, 3)), y)
  x = jax.eval_shape(functools.partial(g.apply, train=False), gv, z, y)
  logits = jax.eval_shape(d.apply, dv, jnp.zeros((2, 128, 128, 3)), y)
  return gv, dv, x, logits


def test_sagan_tiny_128_shapes():
  gv, dv, x, logits = _shapes_128('sagan', size='tiny', num_classes=10)
  assert x.shape == (2, 128, 128, 3) and x.dtype == jnp.float32
  assert logits.shape == (2,) and logits.dtype == jnp.float32
  assert 'attn3' in gv['params'] and 'attn0' in dv['params']  # feat64 in G and D


def test_sagan_param_count_128_matches_biggan_baseline():
  """BigGAN Table 1's SA-GAN baseline at ch=64: 81.5M (G + D, 1000 classes)."""
  gv, dv, _, _ = _shapes_128('sagan')
  total = biggan.num_params(gv['params']) + biggan.num_params(dv['params'])
  assert abs(total / 81.5e6 - 1) < 0.01, total
  assert 'batch_stats' in gv and biggan.num_params(gv['batch_stats']) > 0  # state, not counted
