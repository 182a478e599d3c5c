"""Tests for ganzoo.objectives: values at known logits, D* property, saturation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import objectives

# Exact in float32 and bfloat16. Tolerance rtol 1e-6 (~16 ulps of float32) everywhere below: the
# linear, hinge and least-squares losses of these logits are exact in float32; softplus is within a
# few ulps (log1p(exp(-|x|)) + max(x, 0)), and a mean of two such terms plus one more sum of
# same-sign values adds two roundings: < 8 ulps on any machine. A wrong sign, a missing mean or
# log(sigmoid) instead of softplus is off by > 1e-2.
REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def _sig(x):
  return 1.0 / (1.0 + math.exp(-x))


def _mean(xs):
  return sum(xs) / len(xs)


def _bce_d():
  return (-_mean([math.log(_sig(r)) for r in REAL])
          - _mean([math.log(1.0 - _sig(f)) for f in FAKE]))


HAND = {
    "minimax": (_bce_d(), _mean([math.log(1.0 - _sig(f)) for f in FAKE])),
    "non_saturating": (_bce_d(), -_mean([math.log(_sig(f)) for f in FAKE])),
    "wasserstein": (_mean(FAKE) - _mean(REAL), -_mean(FAKE)),
    "least_squares": (0.5 * _mean([(r - 1.0) ** 2 for r in REAL])
                      + 0.5 * _mean([(f - 0.0) ** 2 for f in FAKE]),
                      0.5 * _mean([(f - 1.0) ** 2 for f in FAKE])),
    "hinge": (_mean([max(0.0, 1.0 - r) for r in REAL]) + _mean([max(0.0, 1.0 + f) for f in FAKE]),
              -_mean(FAKE)),
}


def test_registry_names():
  assert objectives.names() == sorted(HAND)


@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(HAND))
def test_values_at_known_logits(name):
  obj = objectives.get_objective(name)
  assert obj.name == name
  real, fake = jnp.array(REAL), jnp.array(FAKE)
  d, g = obj.d_loss(real, fake), obj.g_loss(fake, real)
  assert d.shape == () and d.dtype == jnp.float32
  assert g.shape == () and g.dtype == jnp.float32
  np.testing.assert_allclose(float(d), HAND[name][0], rtol=1e-6)
  np.testing.assert_allclose(float(g), HAND[name][1], rtol=1e-6)
  np.testing.assert_allclose(float(obj.g_loss(fake)), HAND[name][1], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(HAND))
def test_jit_and_bf16_inputs(name):
  obj = objectives.get_objective(name)
  real, fake = jnp.array(REAL, jnp.bfloat16), jnp.array(FAKE, jnp.bfloat16)
  d = jax.jit(obj.d_loss)(real, fake)
  assert d.dtype == jnp.float32
  np.testing.assert_allclose(float(d), HAND[name][0], rtol=1e-6)  # these logits are exact in bf16


def test_least_squares_kwargs():
  obj = objectives.get_objective("least_squares", a=-1.0, b=1.0, c=0.0)
  real, fake = jnp.array(REAL), jnp.array(FAKE)
  d = 0.5 * _mean([(r - 1.0) ** 2 for r in REAL]) + 0.5 * _mean([(f + 1.0) ** 2 for f in FAKE])
  g = 0.5 * _mean([f ** 2 for f in FAKE])
  np.testing.assert_allclose(float(obj.d_loss(real, fake)), d, rtol=1e-6)
  np.testing.assert_allclose(float(obj.g_loss(fake)), g, rtol=1e-6)


def test_minimax_d_loss_at_optimum_is_2_log_2():
  obj = objectives.get_objective("minimax")
  zeros = jnp.zeros((8,))
  np.testing.assert_allclose(float(obj.d_loss(zeros, zeros)), 2 * math.log(2), rtol=1e-6)


def test_saturating_vs_non_saturating_gradient():
  fake = jnp.array([-20.0, -30.0])  # D(G(z)) -> 0: D confidently rejects fakes
  g_sat = jax.grad(objectives.get_objective("minimax").g_loss)(fake)
  g_ns = jax.grad(objectives.get_objective("non_saturating").g_loss)(fake)
  # d/dl of -softplus(l) is -sigmoid(l) ~ -e^l -> 0; d/dl softplus(-l) = -sigmoid(-l) -> -1.
  # sigmoid(-20) / 2 = 1.0e-9 (and e^-30 / 2): far below 1e-8; sigmoid(20, 30) = 1 in float32, so
  # the non-saturating gradient is exactly -1 / N.
  assert np.max(np.abs(np.asarray(g_sat))) < 1e-8
  np.testing.assert_allclose(np.asarray(g_ns), [-0.5, -0.5], rtol=1e-6)  # -1 / N each


def test_stable_for_extreme_logits():
  big = jnp.array([100.0, -100.0])
  for name in ("minimax", "non_saturating"):
    obj = objectives.get_objective(name)
    d, gd = jax.value_and_grad(obj.d_loss)(big, big)
    g, gg = jax.value_and_grad(obj.g_loss)(big)
    assert np.isfinite(float(d)) and np.isfinite(float(g))
    assert np.all(np.isfinite(gd)) and np.all(np.isfinite(gg))
    # -log sigmoid(-100) = 100 (+tiny): log(sigmoid(.)) would give inf in float32. softplus(100)
    # rounds to exactly 100 in float32 (e^-100 is below half an ulp), so rtol 1e-6 is formatting.
    np.testing.assert_allclose(float(d), (100.0 + 100.0) / 2, rtol=1e-6)


def test_errors():
  with pytest.raises(ValueError, match="hinge"):
    objectives.get_objective("nope")
  with pytest.raises(ValueError, match="unexpected"):
    objectives.get_objective("hinge", a=1.0)
  with pytest.raises(ValueError, match="logits"):
    objectives.get_objective("hinge").d_loss({"logits": jnp.zeros(2)}, jnp.zeros(2))
