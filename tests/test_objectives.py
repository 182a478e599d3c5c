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

# f-GAN rows from Table 2 of Nowozin et al. 2016 as printed: T = g_f(v) and f*(T) composed in float64
# (no hand simplification), so the library's simplified forms are checked against the table itself.
_FGAN_TABLE = {
    "kl": (lambda v: v, lambda t: math.exp(t - 1.0)),
    "reverse_kl": (lambda v: -math.exp(-v), lambda t: -1.0 - math.log(-t)),
    "pearson": (lambda v: v, lambda t: 0.25 * t * t + t),
    "hellinger": (lambda v: 1.0 - math.exp(-v), lambda t: t / (1.0 - t)),
    "js": (lambda v: math.log(2.0) - math.log(1.0 + math.exp(-v)), lambda t: -math.log(2.0 - math.exp(t))),
    "gan": (lambda v: -math.log(1.0 + math.exp(-v)), lambda t: -math.log(1.0 - math.exp(t))),
}
for _div, (_g, _fstar) in _FGAN_TABLE.items():
  HAND[f"fgan_{_div}"] = (_mean([_fstar(_g(f)) for f in FAKE]) - _mean([_g(r) for r in REAL]),
                          -_mean([_g(f) for f in FAKE]))


def _tolerance(name):
  """(rtol, atol). The f-GAN D losses are differences of means whose terms reach |20| (exp(3) in
  reverse_kl's g_f) while the result can be ~0.15: each float32 term is within 4 ulps (exp, expm1,
  softplus), and the two means and one difference add 3 roundings, so the absolute error is below
  8 * 2^-24 * 20 < 1e-5; relative to the result that is more than the 1e-6 of the other rows."""
  return (1e-6, 1e-5) if name.startswith("fgan_") else (1e-6, 0.0)


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
  rtol, atol = _tolerance(name)
  np.testing.assert_allclose(float(d), HAND[name][0], rtol=rtol, atol=atol)
  np.testing.assert_allclose(float(g), HAND[name][1], rtol=rtol, atol=atol)
  np.testing.assert_allclose(float(obj.g_loss(fake)), HAND[name][1], rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(HAND))
def test_jit_and_bf16_inputs(name):
  obj = objectives.get_objective(name)
  real, fake = jnp.array(REAL, jnp.bfloat16), jnp.array(FAKE, jnp.bfloat16)
  d = jax.jit(obj.d_loss)(real, fake)
  assert d.dtype == jnp.float32
  rtol, atol = _tolerance(name)
  np.testing.assert_allclose(float(d), HAND[name][0], rtol=rtol, atol=atol)  # these logits are exact in bf16


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


# ---------------------------------------------------------------------------------------------
# f-GAN: the variational bound is tight at T* = f'(p / q) (Nowozin et al. 2016, Eq. 4-5).

_P = np.array([0.5, 0.25, 0.125, 0.125])   # 8 samples of P: 4, 2, 1, 1 copies of the 4 points
_Q = np.array([0.25, 0.25, 0.25, 0.25])    # 4 samples of Q: one of each
# V*(x) = g_f^{-1}(f'(r)), r = p(x) / q(x), from Table 1's f and Table 2's g_f (derived by hand):
_V_STAR = {
    "kl": lambda r: 1.0 + np.log(r),          # f' = 1 + log r, g_f = identity
    "reverse_kl": lambda r: np.log(r),        # f' = -1 / r = -exp(-v)
    "pearson": lambda r: 2.0 * (r - 1.0),     # f' = 2 (r - 1)
    "hellinger": lambda r: 0.5 * np.log(r),   # f' = 1 - 1 / sqrt(r) = 1 - exp(-v)
    "js": lambda r: np.log(r),                # f' = log(2r / (1 + r)) = log 2 + log sigmoid(v)
    "gan": lambda r: np.log(r),               # f' = log(r / (1 + r)) = log sigmoid(v)
}
_M = (_P + _Q) / 2
_JS2 = float(np.sum(_P * np.log(_P / _M)) + np.sum(_Q * np.log(_Q / _M)))
_DIVERGENCE = {
    "kl": float(np.sum(_P * np.log(_P / _Q))),
    "reverse_kl": float(np.sum(_Q * np.log(_Q / _P))),
    "pearson": float(np.sum((_P - _Q) ** 2 / _Q)),
    "hellinger": float(np.sum((np.sqrt(_P) - np.sqrt(_Q)) ** 2)),
    "js": _JS2,
    "gan": _JS2 - math.log(4.0),
}


def _samples(v):
  return jnp.asarray(np.repeat(v, (8 * _P).astype(int)), jnp.float32), jnp.asarray(v, jnp.float32)


@pytest.mark.parametrize("div", sorted(_DIVERGENCE))
def test_f_gan_bound_is_the_divergence_at_the_optimal_critic(div):
  obj = objectives.get_objective(f"fgan_{div}")
  v_star = _V_STAR[div](_P / _Q)
  real, fake = _samples(v_star)
  # -D's loss is the variational bound F. At V* it equals D_f(P || Q) (computed above from the
  # divergence's closed form): float32 terms of magnitude < 3, 12 of them, so |error| < 1e-5.
  np.testing.assert_allclose(-float(obj.d_loss(real, fake)), _DIVERGENCE[div], atol=1e-5)
  # Any other critic gives a smaller bound: F is strictly concave in T around T*, and the smallest
  # drop for these perturbations (0.2 in one point's logit) is > 1e-4, far above the 1e-5 error.
  for i in range(4):
    for delta in (-0.2, 0.2):
      v = v_star.copy()
      v[i] += delta
      assert -float(obj.d_loss(*_samples(v))) < _DIVERGENCE[div] - 1e-4, (div, i, delta)


def test_f_gan_gan_divergence_is_the_gan_objective():
  real, fake = jnp.array(REAL), jnp.array(FAKE)
  gan, ns = objectives.get_objective("fgan_gan"), objectives.get_objective("non_saturating")
  np.testing.assert_allclose(float(gan.d_loss(real, fake)), float(ns.d_loss(real, fake)), rtol=1e-6)
  np.testing.assert_allclose(float(gan.g_loss(fake)), float(ns.g_loss(fake)), rtol=1e-6)
  sat = objectives.get_objective("fgan_gan", generator="saturating")
  np.testing.assert_allclose(float(sat.g_loss(fake)), float(objectives.get_objective("minimax").g_loss(fake)),
                             rtol=1e-6)


@pytest.mark.parametrize("div", ["reverse_kl", "pearson", "js", "gan"])
def test_f_gan_stable_where_the_composition_overflows(div):
  # At fake logits of +-100 the table's composition f*(g_f(v)) is not finite in float32 for these
  # (reverse_kl: -1 - log(exp(100)) after exp overflows; js: -log(2 - 2) at v = 100; gan: -log(1 - 1)),
  # the simplified forms are. (Real logits stay moderate: reverse_kl's g_f(-100) = -e^100 itself
  # overflows, and kl/hellinger's conjugates grow like exp(v); that is the divergence, see objectives.py.)
  obj = objectives.get_objective(f"fgan_{div}")
  real, big = jnp.array([0.5, -0.5]), jnp.array([100.0, -100.0])
  d, grads = jax.value_and_grad(obj.d_loss, argnums=(0, 1))(real, big)
  g, gg = jax.value_and_grad(obj.g_loss, argnums=0)(jnp.array([100.0, 0.0]))
  assert np.isfinite(float(d)) and np.isfinite(float(g)), (d, g)
  assert all(np.all(np.isfinite(x)) for x in (*grads, gg))
  softplus = lambda v: max(v, 0.0) + math.log1p(math.exp(-abs(v)))
  conj = {"reverse_kl": lambda v: v - 1.0, "pearson": lambda v: v * v / 4 + v,
          "js": lambda v: softplus(v) - math.log(2.0), "gan": softplus}[div]
  g_f = _FGAN_TABLE[div][0]
  want = _mean([conj(x) for x in (100.0, -100.0)]) - _mean([g_f(x) for x in (0.5, -0.5)])
  # Terms up to 2600 (pearson's 100^2 / 4): 4 float32 roundings of at most 2^-24 relative each.
  np.testing.assert_allclose(float(d), want, rtol=1e-6)


def test_f_gan_errors():
  with pytest.raises(ValueError, match="alternative"):
    objectives.get_objective("fgan_kl", generator="nope")
