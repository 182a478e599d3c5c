"""Tests for ganzoo.equalized_lr: the forward at init, the gradient and optimizer steps, the multiplier."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganzoo import equalized_lr as eql
from ganzoo import nets as nets_lib


class _Net(nn.Module):
  """A 2-layer 'mapping' MLP and a conv layer: the leaves equalized LR handles."""

  @nn.compact
  def __call__(self, z, x):
    h = nn.Dense(16, name="mapping_fc0")(z)
    h = nn.Dense(8, name="mapping_fc1")(nn.leaky_relu(h, 0.2))
    y = nn.Conv(8, (3, 3), name="conv")(x)
    return jnp.mean(y, axis=(1, 2)) + h


def _setup():
  z = jax.random.normal(jax.random.key(1), (4, 32))
  x = jax.random.normal(jax.random.key(2), (4, 5, 5, 6))
  plain = _Net().init(jax.random.key(0), z, x)["params"]
  # Nonzero biases so the bias scale shows in the numbers.
  plain = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.5 if p[-1].key == "bias" else v, plain)
  return plain, z, x


EQ = eql.equalized_lr(lr_mul=[("mapping", 0.01)])


def test_scales_and_multipliers_by_path():
  plain, _, _ = _setup()
  scales = EQ.scales(plain)
  # c = m / sqrt(fan_in): fan_in 32 and 16 for the mapping layers (m = 0.01), 3*3*6 = 54 for the conv.
  assert scales["mapping_fc0/kernel"] == pytest.approx(0.01 / math.sqrt(32), rel=1e-15)
  assert scales["mapping_fc1/kernel"] == pytest.approx(0.01 / 4.0, rel=1e-15)
  assert scales["conv/kernel"] == pytest.approx(1.0 / math.sqrt(54), rel=1e-15)
  assert scales["mapping_fc0/bias"] == 0.01 and scales["conv/bias"] == 1.0
  assert EQ.lr_muls(plain) == {"conv/kernel": 1.0, "mapping_fc0/kernel": 0.01, "mapping_fc1/kernel": 0.01}


def test_init_draws_unit_normal_over_lr_mul():
  plain, _, _ = _setup()
  stored = EQ.init(plain, jax.random.key(3))
  # Sample std of n N(0, s^2) draws: sd of the estimate ~ s / sqrt(2n); 5 of those is the bound.
  for name, leaf, m in [("mapping_fc0", stored["mapping_fc0"]["kernel"], 0.01),
                        ("conv", stored["conv"]["kernel"], 1.0)]:
    n = leaf.size
    assert abs(float(jnp.std(leaf)) * m - 1.0) < 5 / math.sqrt(2 * n), name
  # Biases stored b / m, so the effective bias at init is the model's own (here 0.5).
  np.testing.assert_allclose(stored["mapping_fc0"]["bias"], 0.5 / 0.01, rtol=1e-6)
  eff = EQ.apply(stored)
  np.testing.assert_allclose(eff["mapping_fc0"]["bias"], 0.5, rtol=1e-6)
  # Effective kernels: N(0, 1 / fan_in) whatever m (He's init).
  k = eff["mapping_fc0"]["kernel"]
  assert abs(float(jnp.std(k)) * math.sqrt(32) - 1.0) < 5 / math.sqrt(2 * k.size)


def test_forward_equals_plain_weights_scaled():
  plain, z, x = _setup()
  stored = EQ.init(plain, jax.random.key(3))
  out = _Net().apply({"params": EQ.apply(stored)}, z, x)
  # The same network with plain weights W = c w, B = m b written out by hand (numpy, float64).
  w0 = np.asarray(stored["mapping_fc0"]["kernel"], np.float64) * 0.01 / math.sqrt(32)
  b0 = np.asarray(stored["mapping_fc0"]["bias"], np.float64) * 0.01
  w1 = np.asarray(stored["mapping_fc1"]["kernel"], np.float64) * 0.01 / 4.0
  b1 = np.asarray(stored["mapping_fc1"]["bias"], np.float64) * 0.01
  h = np.asarray(z, np.float64) @ w0 + b0
  h = np.where(h > 0, h, 0.2 * h) @ w1 + b1
  scaled = {**stored, "conv": {"kernel": stored["conv"]["kernel"] / math.sqrt(54), "bias": stored["conv"]["bias"]}}
  conv_only = _Net().apply({"params": {**scaled, "mapping_fc1": {"kernel": jnp.zeros_like(w1, jnp.float32),
                                                                  "bias": jnp.zeros(8)}}}, z, x)
  # float32 forward of O(1) values through <= 54-term sums: error <= 54 * 2^-24 * sum|terms| ~ 1e-5.
  np.testing.assert_allclose(np.asarray(out), np.asarray(conv_only) + h, atol=2e-5)


def _loss(params, z, x):
  return jnp.sum(jnp.sin(_Net().apply({"params": params}, z, x)))


def test_gradient_is_plain_gradient_times_scale():
  plain, z, x = _setup()
  stored = EQ.init(plain, jax.random.key(3))
  g_stored = jax.grad(lambda p: _loss(EQ.apply(p), z, x))(stored)
  g_plain = jax.grad(_loss)(EQ.apply(stored), z, x)    # gradient w.r.t. the effective weights
  scales = EQ.scales(stored)
  for path, c in scales.items():
    a, b = path.split("/")
    # One extra float32 multiply by c: relative error 2^-24 per entry, plus the rounding of the
    # backward pass itself (identical ops on both sides): rtol 1e-6.
    np.testing.assert_allclose(g_stored[a][b], c * np.asarray(g_plain[a][b]), rtol=1e-6, atol=1e-12)


def test_adam_and_sgd_move_effective_weights_by_scale():
  """Adam's first step moves a stored weight by lr * sign(g), so the effective one moves by
  c * lr = m * lr / sqrt(fan_in): the paper's per-layer learning rate; SGD moves it by c^2 lr g."""
  plain, z, x = _setup()
  stored = EQ.init(plain, jax.random.key(3))
  lr = 1e-3
  g_stored = jax.grad(lambda p: _loss(EQ.apply(p), z, x))(stored)
  g_plain = jax.grad(_loss)(EQ.apply(stored), z, x)
  scales = EQ.scales(stored)
  for tx, kind in [(optax.adam(lr, b1=0.0, b2=0.99, eps=1e-8), "adam"), (optax.sgd(lr), "sgd")]:
    upd, _ = tx.update(g_stored, tx.init(stored), stored)
    new_eff = EQ.apply(optax.apply_updates(stored, upd))
    old_eff = EQ.apply(stored)
    for path, c in scales.items():
      a, b = path.split("/")
      delta = np.asarray(new_eff[a][b], np.float64) - np.asarray(old_eff[a][b], np.float64)
      g = np.asarray(g_plain[a][b], np.float64)
      gs = np.asarray(g_stored[a][b], np.float64)
      if kind == "adam":
        # Adam's step is lr * g / (|g| + eps): off sign(g) by eps / |g_stored|; keep entries with
        # |g_stored| > 1e-4 (relative error <= 1e-4).
        keep = np.abs(gs) > 1e-4
        expected = -c * lr * np.sign(g)
      else:
        keep = np.ones_like(g, bool)
        expected = -c * c * lr * g
      # Rounding in float32: w + dw (half an ulp, 2^-24 |w|, times c), then the two products by c
      # (2^-24 |w_eff| each): 3 * 2^-24 |w_eff|, bounded by 2^-22 |w_eff|; the gradients' own float32
      # error (1e-6 relative) is inside the 1e-4 relative term.
      bound = 1e-4 * np.abs(expected) + 2.0 ** -22 * np.abs(np.asarray(old_eff[a][b])) + 1e-12
      assert keep.mean() > 0.5, path
      assert np.all(np.abs(delta - expected)[keep] <= bound[keep]), (kind, path)


def test_mapping_multiplier_slows_the_effective_step_by_100():
  """The same fan-in, m = 0.01 vs m = 1: Adam moves the effective weight 100 times less."""
  params = {"mapping": {"kernel": jnp.zeros((16, 4))}, "synth": {"kernel": jnp.zeros((16, 4))}}
  eq = eql.equalized_lr(lr_mul=[("mapping", 0.01)])
  stored = eq.init(params, jax.random.key(0))
  grads = jax.tree.map(jnp.ones_like, stored)
  tx = optax.adam(0.1, eps=1e-12)
  upd, _ = tx.update(grads, tx.init(stored), stored)
  new, old = eq.apply(optax.apply_updates(stored, upd)), eq.apply(stored)
  step_map = np.asarray(old["mapping"]["kernel"] - new["mapping"]["kernel"], np.float64)
  step_syn = np.asarray(old["synth"]["kernel"] - new["synth"]["kernel"], np.float64)
  # Expected 0.1 * m / sqrt(16). The stored step 0.1 is added in float32 to |w| < 5 sd: synth
  # |w| < 5, ulp 2^-21 = 5e-7, i.e. 5e-6 of the step (rtol 2e-5); mapping |w| < 500, ulp 2^-14 =
  # 6e-5, i.e. 6e-4 of the step (rtol 2e-3); the scaling adds 2^-24 relative.
  np.testing.assert_allclose(step_syn, 0.1 / 4, rtol=2e-5)
  np.testing.assert_allclose(step_map, 0.001 / 4, rtol=2e-3)
  assert np.allclose(step_map / step_syn, 0.01, rtol=3e-3)


def test_wired_through_nets_config():
  plain, z, x = _setup()
  cfg = nets_lib.net_config()
  cfg.eqlr.enabled = True
  cfg.eqlr.lr_mul = 0.01
  cfg.eqlr.lr_mul_include = "mapping"
  spec = nets_lib.build_spec(_Net(), cfg, num_steps=10)
  net = nets_lib.init_net(spec, {"params": plain}, jax.random.key(5))
  # Stored kernels were redrawn N(0, 1) / m (not the module's lecun init, std 1 / sqrt(fan_in)).
  assert float(jnp.std(net.params["mapping_fc0"]["kernel"])) > 50
  assert 0.8 < float(jnp.std(net.params["conv"]["kernel"])) < 1.2
  eff, _ = nets_lib.normalize(spec, net.params, net.sn)
  np.testing.assert_allclose(eff["mapping_fc1"]["kernel"], net.params["mapping_fc1"]["kernel"] * 0.0025, rtol=1e-6)
  np.testing.assert_allclose(eff["conv"]["kernel"], net.params["conv"]["kernel"] / math.sqrt(54), rtol=1e-6)
  # Off (the default): the module's params pass through init and normalize untouched.
  off = nets_lib.build_spec(_Net(), nets_lib.net_config(), num_steps=10)
  assert off.eqlr is None
  net_off = nets_lib.init_net(off, {"params": plain}, jax.random.key(5))
  assert net_off.params["conv"]["kernel"] is plain["conv"]["kernel"]
  eff_off, _ = nets_lib.normalize(off, net_off.params, net_off.sn)
  assert eff_off["conv"]["kernel"] is plain["conv"]["kernel"]
