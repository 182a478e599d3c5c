"""Tests for cGAN ('cgan') and AC-GAN ('acgan') and the auxiliary classifier loss that training uses."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models
from ganzoo.methods import gan
from ganzoo.models import biggan

U32 = 2.0 ** -24  # unit roundoff of float32


def gamma(n):
  """Higham's gamma_n = n u / (1 - n u): |fl(sum of n products) - exact| <= gamma_n * sum |terms|, in
  any summation order (blocked, pairwise or with FMA) (Higham, Accuracy and Stability, Sec. 3.1)."""
  return n * U32 / (1 - n * U32)


def test_aux_classifier_loss_known_logits():
  """The AC-GAN class term of `GAN._d_loss` / `GAN._g_loss`: mean softmax cross-entropy."""
  logits = jnp.array([[0.0, 0.0], [np.log(3.0), 0.0]])
  labels = jnp.array([1, 0], jnp.int32)
  # -log(1/2) and -log(3/4), averaged. float32: log-sum-exp of 2 terms and a mean of 2, a few ulps
  # of values ~0.5, so 1e-6 relative (~17 ulps) holds anywhere; a wrong label or sign is off by > 10%.
  want = 0.5 * (np.log(2.0) - np.log(0.75))
  np.testing.assert_allclose(float(gan.aux_classifier_loss(logits, labels)), want, rtol=1e-6)
  swapped = 0.5 * (np.log(2.0) - np.log(0.25))
  np.testing.assert_allclose(float(gan.aux_classifier_loss(logits, 1 - labels)), swapped, rtol=1e-6)


def _build(name, shape, **extra):
  cfg = ml_collections.ConfigDict({'name': name, 'size': 'tiny', **extra})
  return models.build(cfg, shape, 10)


def test_cgan_mlp_paper_sizes_and_apply():
  g, d = models.build(ml_collections.ConfigDict({'name': 'cgan'}), (28, 28, 1), 10)
  z, y = jnp.zeros((2, 100)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  dv = jax.eval_shape(functools.partial(d.init, train=False), jax.random.key(0),
                      jnp.zeros((2, 28, 28, 1)), y)
  p = gv['params']
  assert (p['z_fc']['kernel'].shape, p['y_fc']['kernel'].shape) == ((100, 200), (10, 1000))
  assert p['joint_fc']['kernel'].shape == (1200, 1200) and p['out']['kernel'].shape == (1200, 784)
  q = dv['params']
  assert q['x_maxout']['dense']['kernel'].shape == (784, 240 * 5)
  assert q['y_maxout']['dense']['kernel'].shape == (10, 50 * 5)
  assert q['joint_maxout']['dense']['kernel'].shape == (290, 240 * 4)

  g, d = _build('cgan', (28, 28, 1))
  z = jax.random.normal(jax.random.key(0), (4, 100))
  y = jnp.array([0, 1, 2, 3], jnp.int32)
  rngs = {'params': jax.random.key(1), 'dropout': jax.random.key(2)}
  gv = jax.jit(functools.partial(g.init, train=False))(rngs, z, y)
  x = g.apply(gv, z, y, train=True, rngs={'dropout': jax.random.key(3)})
  assert x.shape == (4, 28, 28, 1) and x.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  dv = jax.jit(functools.partial(d.init, train=False))(rngs, x, y)
  out = d.apply(dv, x, y, train=True, rngs={'dropout': jax.random.key(4)})
  assert out.shape == (4,) and out.dtype == jnp.float32
  ev = d.apply(dv, x, y, train=False)
  assert float(jnp.max(jnp.abs(d.apply(dv, x, (y + 1) % 10, train=False) - ev))) > 0
  # Train mode draws its dropout masks from the key: the same key gives the same output, another key
  # (or eval mode, no dropout) a different one.
  again = d.apply(dv, x, y, train=True, rngs={'dropout': jax.random.key(4)})
  other = d.apply(dv, x, y, train=True, rngs={'dropout': jax.random.key(5)})
  np.testing.assert_array_equal(np.asarray(again), np.asarray(out))
  assert float(jnp.min(jnp.abs(other - out))) > 0 and float(jnp.min(jnp.abs(ev - out))) > 0


def _maxout(h, units, pieces, piece_major=False):
  if piece_major:  # the wrong grouping (pieces as the major axis), to show the test can tell
    return h.reshape(h.shape[0], pieces, units).max(1)
  return h.reshape(h.shape[0], units, pieces).max(-1)


def test_cgan_mlp_discriminator_equals_the_papers_formula():
  """Eval-mode D(x, y) of the cGAN MLP (arXiv:1411.1784 Sec. 4.1: maxout on x, on one-hot(y), on
  their concatenation, then a linear logit) equals the formula evaluated in float64 numpy."""
  _, d = _build('cgan', (28, 28, 1))
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
  y = np.array([0, 3, 7, 9], np.int32)
  dv = d.init({'params': jax.random.key(1), 'dropout': jax.random.key(2)}, x, y, train=False)
  got = np.asarray(jax.jit(functools.partial(d.apply, train=False))(dv, x, y), np.float64)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), dv['params'])
  units, pieces = (24, 8, 24), (5, 5, 4)  # the tiny widths (ganzoo.models.conditional.build_cgan)

  # Running error bound of the float32 evaluation (Higham Sec. 3.1): a dense layer over inputs with
  # error e_in has error <= |W|^T e_in + gamma_{K+1} (|W|^T |h| + |b|); maxout and concatenation do
  # not increase the max error. The bound holds for any summation order, i.e. on any machine; the
  # float64 reference adds ~1e-16 relative (the 1e-12 slack).
  def dense(q, h, e):
    w, b = q['kernel'], q['bias']
    return h @ w + b, e @ np.abs(w) + gamma(w.shape[0] + 1) * (np.abs(h) @ np.abs(w) + np.abs(b))

  def formula(piece_major=False):
    def maxout(q, h, e, i):
      out, err = dense(q['dense'], h, e)
      return _maxout(out, units[i], pieces[i], piece_major), _maxout(err, units[i], pieces[i], piece_major)

    xf, onehot = x.reshape(4, -1).astype(np.float64), np.eye(10)[y]
    hx, ex = maxout(p['x_maxout'], xf, np.zeros_like(xf), 0)
    hy, ey = maxout(p['y_maxout'], onehot, np.zeros_like(onehot), 1)
    h, e = maxout(p['joint_maxout'], np.concatenate([hx, hy], -1), np.concatenate([ex, ey], -1), 2)
    want, bound = dense(p['out'], h, e)
    return want[:, 0], bound[:, 0]

  want, bound = formula()
  assert np.all(np.abs(got - want) <= bound + 1e-12), (got, want, bound)
  wrong, _ = formula(piece_major=True)
  assert np.all(np.abs(got - wrong) > bound)  # the worst-case bound still tells a wrong layer apart


def test_cgan_conv_apply():
  g, d = _build('cgan', (32, 32, 3), arch='conv')
  z = jax.random.normal(jax.random.key(0), (2, 100))
  y = jnp.array([5, 9], jnp.int32)
  gv = jax.jit(functools.partial(g.init, train=True))(jax.random.key(1), z, y)
  x, upd = g.apply(gv, z, y, train=True, mutable=['batch_stats'])
  assert x.shape == (2, 32, 32, 3) and 'batch_stats' in upd
  assert g.apply(gv, z, y, train=False).shape == (2, 32, 32, 3)
  dv = jax.jit(d.init)(jax.random.key(2), x, y)
  out = d.apply(dv, x, y)
  assert out.shape == (2,) and out.dtype == jnp.float32
  assert dv['params']['conv0']['kernel'].shape == (4, 4, 3 + 10, 8)  # labels as input maps


def test_acgan_paper_shapes_and_tiny_apply():
  g, d = models.build(ml_collections.ConfigDict({'name': 'acgan'}), (32, 32, 3), 10)
  z, y = jnp.zeros((2, 100)), jnp.zeros((2,), jnp.int32)
  gv = jax.eval_shape(functools.partial(g.init, train=False), jax.random.key(0), z, y)
  assert gv['params']['fc']['kernel'].shape == (110, 4 * 4 * 384)
  assert gv['params']['up0']['kernel'].shape == (5, 5, 384, 192)
  dv = jax.eval_shape(functools.partial(d.init, train=False), jax.random.key(0),
                      jnp.zeros((2, 32, 32, 3)))
  assert dv['params']['conv5']['kernel'].shape == (3, 3, 256, 512)
  assert dv['params']['classifier']['kernel'].shape == (4 * 4 * 512, 10)

  g, d = _build('acgan', (32, 32, 3))
  z = jax.random.normal(jax.random.key(0), (2, 100))
  y = jnp.array([2, 8], jnp.int32)
  gv = jax.jit(functools.partial(g.init, train=True))(jax.random.key(1), z, y)
  x, _ = g.apply(gv, z, y, train=True, mutable=['batch_stats'])
  assert x.shape == (2, 32, 32, 3) and float(jnp.max(jnp.abs(x))) <= 1.0
  dv = jax.jit(functools.partial(d.init, train=False))(
      {'params': jax.random.key(2), 'dropout': jax.random.key(3)}, x)
  out, upd = d.apply(dv, x, y, train=True, mutable=['batch_stats'],
                     rngs={'dropout': jax.random.key(4)})
  assert set(out) == {'logits', 'class_logits'} and 'batch_stats' in upd
  assert out['logits'].shape == (2,) and out['class_logits'].shape == (2, 10)
  ev = d.apply(dv, x, train=False)
  assert ev['class_logits'].dtype == jnp.float32
  loss = gan.aux_classifier_loss(ev['class_logits'], y)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert biggan.num_params(gv['params']) > 0


def test_conditional_models_need_labels():
  with pytest.raises(ValueError, match='num_classes'):
    models.build(ml_collections.ConfigDict({'name': 'acgan'}), (32, 32, 3), 0)
  g, _ = _build('cgan', (28, 28, 1))
  with pytest.raises(ValueError, match='labels'):
    g.init(jax.random.key(0), jnp.zeros((1, 100)), None, train=False)
