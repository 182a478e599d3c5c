"""Tests for ganzoo.regularizers: closed-form penalties of known critics, ortho reg, clipping."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import regularizers as reg

# Tolerances. The penalties below are means of functions of per-example input-gradient norms over
# 18 values: a sum of squares (no cancellation) within gamma_18 = 1.1e-6 relative in float32 on
# any machine; (||g|| - t)^2 scales that by 2 ||g|| / | ||g|| - t | < 4 here (||w|| = W_NORM ~ 4.2,
# t = 1 or 2) and the reference (numpy float32 or exact) adds as much again: < 1e-5 (rtol). A
# wrong target, a shared interpolation eps or a missing mean over examples is off by > 1e-2.
SHAPE = (4, 3, 3, 2)  # small NHWC batch
W = jnp.asarray(np.random.RandomState(0).normal(size=SHAPE[1:]).astype(np.float32))
W_NORM = float(np.linalg.norm(np.asarray(W)))


def linear_d(x):
  """D(x) = <w, x> + b per example: input gradient w, norm ||w|| everywhere."""
  return jnp.sum(x * W[None], axis=(1, 2, 3)) + 0.3


def quadratic_d(x):
  """D(x) = ||x||^2 / 2 per example: input gradient x."""
  return 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))


def _batches():
  rs = np.random.RandomState(1)
  real = jnp.asarray(rs.normal(size=SHAPE).astype(np.float32))
  fake = jnp.asarray(rs.normal(size=SHAPE).astype(np.float32))
  return real, fake


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_penalty_linear_critic(seed):
  real, fake = _batches()
  gp = reg.gradient_penalty(linear_d, real, fake, jax.random.key(seed))
  np.testing.assert_allclose(float(gp), (W_NORM - 1.0) ** 2, rtol=1e-5)
  gp2 = reg.gradient_penalty(linear_d, real, fake, jax.random.key(seed), target=2.0)
  np.testing.assert_allclose(float(gp2), (W_NORM - 2.0) ** 2, rtol=1e-5)


def test_gradient_penalty_interpolates_per_example():
  # With D = ||x||^2/2 the gradient is x_hat itself; x_hat = eps*real + (1-eps)*fake with one
  # eps per example, which we recover and check lies in [0, 1] and is not shared.
  real, fake = _batches()
  rng = jax.random.key(3)
  eps = jax.random.uniform(rng, (SHAPE[0], 1, 1, 1))
  x_hat = eps * real + (1 - eps) * fake
  expected = np.mean((np.linalg.norm(np.asarray(x_hat).reshape(SHAPE[0], -1), axis=1) - 1) ** 2)
  np.testing.assert_allclose(float(reg.gradient_penalty(quadratic_d, real, fake, rng)),
                             expected, rtol=1e-5)
  assert len(set(np.asarray(eps).ravel().tolist())) == SHAPE[0]


def test_gradient_penalty_differentiable_wrt_params():
  real, fake = _batches()

  def gp_of_scale(s):
    return reg.gradient_penalty(lambda x: s * linear_d(x), real, fake, jax.random.key(0))

  # (s||w|| - 1)^2 -> derivative 2 (s||w|| - 1) ||w||
  g = jax.grad(gp_of_scale)(0.5)
  np.testing.assert_allclose(float(g), 2 * (0.5 * W_NORM - 1) * W_NORM, rtol=1e-5)


def test_gradient_penalty_zero_gradient_is_finite():
  real, fake = _batches()
  g = jax.grad(lambda s: reg.gradient_penalty(lambda x: s * linear_d(x), real, fake,
                                              jax.random.key(0)))(0.0)
  assert np.isfinite(float(g))


def test_r1_linear_and_quadratic():
  real, _ = _batches()
  np.testing.assert_allclose(float(reg.r1_penalty(linear_d, real)), W_NORM ** 2, rtol=1e-5)
  expected = np.mean(np.sum(np.asarray(real).reshape(SHAPE[0], -1) ** 2, axis=1))
  np.testing.assert_allclose(float(reg.r1_penalty(quadratic_d, real)), expected, rtol=1e-5)


def test_dragan_linear_critic_and_points():
  real, _ = _batches()
  p = reg.dragan_penalty(linear_d, real, jax.random.key(0))
  np.testing.assert_allclose(float(p), (W_NORM - 1.0) ** 2, rtol=1e-5)
  std = float(np.std(np.asarray(real)))
  for interpolate in (True, False):
    pts = reg.dragan_points(real, jax.random.key(1), scale=0.5, interpolate=interpolate)
    delta = np.asarray(pts - real)
    assert delta.shape == SHAPE
    # pts - real in float32 rounds the sum and the difference once each: <= 1 ulp of |real| <= 4.5
    # (4.8e-7), plus the std's own rounding (gamma_72 relative): 1e-6 covers both.
    assert delta.min() >= 0.0 and delta.max() <= 0.5 * std + 1e-6
    assert delta.max() > 0.25 * std  # the noise is not degenerate


def test_penalty_registry():
  real, fake = _batches()
  rng = jax.random.key(0)
  assert reg.penalty_names() == ["dragan", "gradient_penalty", "r1", "r2"]
  np.testing.assert_allclose(float(reg.get_penalty("gradient_penalty")(linear_d, real, fake, rng)),
                             (W_NORM - 1) ** 2, rtol=1e-5)
  sq = lambda a: np.mean(np.sum(np.asarray(a).reshape(SHAPE[0], -1) ** 2, axis=1))
  np.testing.assert_allclose(float(reg.get_penalty("r1")(quadratic_d, real, fake, rng)), sq(real),
                             rtol=1e-5)
  np.testing.assert_allclose(float(reg.get_penalty("r2")(quadratic_d, real, fake, rng)), sq(fake),
                             rtol=1e-5)
  np.testing.assert_allclose(
      float(reg.get_penalty("dragan", target=2.0)(linear_d, real, fake, rng)),
      (W_NORM - 2) ** 2, rtol=1e-5)
  with pytest.raises(ValueError, match="r1"):
    reg.get_penalty("gp2")
  with pytest.raises(ValueError, match="unexpected"):
    reg.get_penalty("r1", gamma=10.0)


def test_bad_d_fn_output():
  real, fake = _batches()
  with pytest.raises(ValueError, match="shape"):
    reg.r1_penalty(lambda x: jnp.sum(x, axis=(1, 2)), real)
  with pytest.raises(ValueError, match="logits"):
    reg.r1_penalty(lambda x: {"logits": linear_d(x)}, real)


def test_orthogonal_regularization_by_hand():
  # W (in=3, out=2): columns c1=(1,2,0), c2=(0,1,1); W^T W = [[5, 2], [2, 2]] -> off-diag 2, 2.
  w32 = jnp.array([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
  # W (2x2): columns (1,1), (1,-1) are orthogonal -> 0.
  w22 = jnp.array([[1.0, 1.0], [1.0, -1.0]])
  params = {"a": {"kernel": w32, "bias": jnp.ones(2)}, "b": {"kernel": w22}}
  # Small integers: every product and sum is exact in float32, so rtol 1e-6 only absorbs formatting.
  np.testing.assert_allclose(float(reg.orthogonal_regularization(params)), 8.0, rtol=1e-6)
  w22b = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # W^T W off-diag = 1*2 + 3*4 = 14
  params["b"]["kernel"] = w22b
  np.testing.assert_allclose(float(reg.orthogonal_regularization(params)), 8.0 + 2 * 14.0 ** 2,
                             rtol=1e-6)
  np.testing.assert_allclose(float(reg.orthogonal_regularization(params, include="^a/")), 8.0,
                             rtol=1e-6)
  np.testing.assert_allclose(float(reg.orthogonal_regularization(params, exclude="^a/")),
                             2 * 14.0 ** 2, rtol=1e-6)


def test_orthogonal_regularization_conv_orientation():
  # A conv kernel (kh, kw, in, out) is reshaped to (kh*kw*in, out): the Gram matrix is out x out.
  k = np.random.RandomState(0).normal(size=(3, 3, 2, 4)).astype(np.float32)
  m = k.reshape(-1, 4).astype(np.float64)
  gram = m.T @ m
  expected = np.sum((gram * (1 - np.eye(4))) ** 2)
  got = reg.orthogonal_regularization({"Conv_0": {"kernel": jnp.asarray(k)}})
  # float32 vs float64: each Gram entry is an 18-term sum within gamma_18 * sum|m_ki m_kj| ~ 1.1e-6
  # * 11.5 = 1.3e-5 of entries ~ sqrt(18) = 4.2, i.e. 3e-6 relative, 6e-6 once squared; the sum of
  # positive squares adds nothing: rtol 3e-5 holds anywhere. The transposed Gram (18 x 18) is O(1) off.
  np.testing.assert_allclose(float(got), expected, rtol=3e-5)
  # An orthogonal (fan_in >= out) kernel has zero penalty, whatever the column norms.
  q, _ = np.linalg.qr(np.random.RandomState(1).normal(size=(18, 4)))
  ortho = (q * np.array([1.0, 2.0, 3.0, 4.0])).reshape(3, 3, 2, 4).astype(np.float32)
  # Rounding q to float32 (u relative per entry) and the 18-term sums leave each off-diagonal Gram
  # entry within (2u + gamma_18) * sum|q_ki q_kj| * s_i s_j <= 1.2e-6 * 12 = 1.5e-5: squares summed
  # over 12 entries <= 3e-9 < 1e-8 on any machine; a non-orthogonal kernel is O(1).
  assert float(reg.orthogonal_regularization({"c": {"kernel": jnp.asarray(ortho)}})) < 1e-8


def test_orthogonal_regularization_flax_tree_and_grad():
  model = nn.Sequential([nn.Conv(4, (3, 3)), nn.relu, nn.Dense(3)])
  params = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))["params"]
  kernels = [params["layers_0"]["kernel"], params["layers_2"]["kernel"]]
  expected = 0.0
  for k in kernels:
    m = np.asarray(k, np.float64).reshape(-1, k.shape[-1])
    g = m.T @ m
    expected += np.sum((g * (1 - np.eye(g.shape[0]))) ** 2)
  val, grads = jax.value_and_grad(reg.orthogonal_regularization)(params)
  np.testing.assert_allclose(float(val), expected, rtol=3e-5)   # the conv-orientation bound above
  assert float(jnp.abs(grads["layers_0"]["bias"]).max()) == 0.0
  # d/dW ||W^T W (1-I)||^2 = 4 W (W^T W (1-I))
  m = np.asarray(params["layers_2"]["kernel"])
  off = (m.T @ m) * (1 - np.eye(3))
  # A 4x3 kernel: sums of 4 and 3 terms of entries < 1, so both float32 sides are within a few ulps
  # of gradient entries <~ 0.1 (1e-8 absolute); atol 1e-6 / rtol 1e-4 hold anywhere, and a missing
  # factor 4 or a transposed W is O(1) off.
  np.testing.assert_allclose(np.asarray(grads["layers_2"]["kernel"]), 4 * m @ off, rtol=1e-4,
                             atol=1e-6)


def test_clip_weights():
  params = {"Dense_0": {"kernel": jnp.array([[-2.0, 0.005], [0.5, -0.001]]),
                        "bias": jnp.array([0.3, -0.3])}}
  out = reg.clip_weights(params, 0.01)   # clipping is exact: the default rtol (1e-7) is formatting only
  np.testing.assert_allclose(np.asarray(out["Dense_0"]["kernel"]),
                             [[-0.01, 0.005], [0.01, -0.001]])
  np.testing.assert_allclose(np.asarray(out["Dense_0"]["bias"]), [0.01, -0.01])
  only_k = reg.clip_weights(params, 0.01, include="kernel$")
  assert only_k["Dense_0"]["bias"] is params["Dense_0"]["bias"]
  np.testing.assert_allclose(np.asarray(only_k["Dense_0"]["kernel"]),
                             [[-0.01, 0.005], [0.01, -0.001]])
  jitted = jax.jit(lambda p: reg.clip_weights(p, 0.1))(params)
  assert float(jnp.max(jnp.abs(jitted["Dense_0"]["kernel"]))) == pytest.approx(0.1)
  with pytest.raises(ValueError, match="clip_value"):
    reg.clip_weights(params, 0.0)
