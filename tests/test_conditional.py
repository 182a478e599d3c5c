"""Tests for cGAN ('cgan') and AC-GAN ('acgan') and the auxiliary classifier loss."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganzoo import models
from ganzoo.models import biggan
from ganzoo.models import conditional


def test_auxiliary_classifier_loss_known_logits():
  logits = jnp.array([[0.0, 0.0], [np.log(3.0), 0.0]])
  labels = jnp.array([1, 0], jnp.int32)
  # -log(1/2) and -log(3/4), averaged
  want = 0.5 * (np.log(2.0) - np.log(0.75))
  np.testing.assert_allclose(float(conditional.auxiliary_classifier_loss(logits, labels)), want,
                             rtol=1e-6)
  with pytest.raises(ValueError):
    conditional.auxiliary_classifier_loss(logits, labels[:1])


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
  np.testing.assert_array_equal(np.asarray(ev), np.asarray(d.apply(dv, x, y, train=False)))
  assert float(jnp.max(jnp.abs(d.apply(dv, x, (y + 1) % 10, train=False) - ev))) > 0


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
  loss = conditional.auxiliary_classifier_loss(ev['class_logits'], y)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert biggan.num_params(gv['params']) > 0


def test_conditional_models_need_labels():
  with pytest.raises(ValueError, match='num_classes'):
    models.build(ml_collections.ConfigDict({'name': 'acgan'}), (32, 32, 3), 0)
  g, _ = _build('cgan', (28, 28, 1))
  with pytest.raises(ValueError, match='labels'):
    g.init(jax.random.key(0), jnp.zeros((1, 100)), None, train=False)
