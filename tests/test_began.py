"""BEGAN (arXiv:1703.10717): the energy L, the k_t update and its clipping, M_global, one step of the
family against those formulas, the published networks' parameter counts from their layer lists, and
k after a resume (the 8 == 1 device and resumed == unbroken tests are in tests/test_families.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import step as step_lib
from ganzoo.methods import began
from tests.test_steps import load_config


def test_reconstruction_loss_is_the_mean_absolute_error():
  """L(v) = mean |v - D(v)| over batch, pixels and channels: here |diffs| = 0.5, 1, 0, 2.5 (x2 images)."""
  v = jnp.array([[[[0.5], [-1.0]], [[0.0], [1.0]]], [[[1.0], [1.0]], [[-1.0], [0.25]]]])   # [2, 2, 2, 1]
  r = jnp.array([[[[0.0], [0.0]], [[0.0], [-1.5]]], [[[1.0], [0.0]], [[1.0], [0.25]]]])
  # |v - r| = 0.5, 1, 0, 2.5 | 0, 1, 2, 0  -> sum 7 over 8 entries.
  assert float(began.reconstruction_loss(v, r)) == pytest.approx(7.0 / 8.0, abs=1e-7)
  assert float(began.reconstruction_loss(v, v)) == 0.0


def test_k_update_on_a_fixed_sequence_with_clipping_at_both_ends():
  """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G)), 0, 1), gamma 0.5, lambda_k 0.1, by hand from
  k_0 = 0: the sequence walks up, is clipped at 1 (1.05), walks down, is clipped at 0 (-0.3), rises."""
  gamma, lam = 0.5, 0.1
  pairs = [(0.4, 0.1), (1.0, 0.1), (10.0, 0.0), (10.0, 0.0), (0.0, 3.0), (0.0, 5.0), (0.0, 5.0), (2.0, 0.0)]
  # steps:     +0.01       +0.04       +0.5        +0.5 -> 1.05 clip 1   -0.3       -0.5       -0.5 -> clip 0   +0.1
  want = [0.0, 0.01, 0.05, 0.55, 1.0, 0.7, 0.2, 0.0, 0.1]
  k = jnp.float32(0.0)
  got = [0.0]
  for l_real, l_gen in pairs:
    k = began.update_k(k, jnp.float32(l_real), jnp.float32(l_gen), gamma, lam)
    got.append(float(k))
  # float32 arithmetic on values of order 1, eight steps: error < 8 * 2 ulp(1) ~ 2e-6.
  np.testing.assert_allclose(got, want, atol=2e-6)
  assert got[4] == 1.0 and got[7] == 0.0   # exactly at the bounds after clipping


def test_convergence_measure():
  """M_global = L(x) + |gamma L(x) - L(G)|: 0.4 + |0.2 - 0.1| = 0.5; 0.4 + |0.2 - 0.5| = 0.7; at
  equilibrium (L(G) = gamma L(x)) it is L(x)."""
  m = lambda a, b: float(began.convergence_measure(jnp.float32(a), jnp.float32(b), 0.5))
  assert m(0.4, 0.1) == pytest.approx(0.5, abs=1e-7)
  assert m(0.4, 0.5) == pytest.approx(0.7, abs=1e-7)
  assert m(0.4, 0.2) == pytest.approx(0.4, abs=1e-7)


def _build(arg, shape):
  config = load_config("began", arg)
  return config, methods.build(config, methods.DataSpec(shape, 10))


def _counts(method):
  return method.param_counts(jax.eval_shape(method.init, jax.random.PRNGKey(0)))


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


def _dense(din, dout):
  return din * dout + dout


def test_paper_network_parameter_count_at_64x64():
  """The paper's network (Fig. 1; carpedm20 models.py) at 64x64x3, n = 128, Nz = Nh = 64, 2 convs
  per block, B = 4 blocks, counted from the layer list."""
  n, c, h, blocks = 128, 3, 64, 4
  decoder = _dense(h, 8 * 8 * n) + blocks * 2 * _conv(3, n, n) + _conv(3, n, c)
  encoder = _conv(3, c, n)
  for i in range(blocks):
    width, cin = n * (i + 1), n * max(i, 1)     # block i reads the previous block's width (block 0: n)
    encoder += _conv(3, cin, width) + _conv(3, width, width)
    if i < blocks - 1:
      encoder += _conv(3, width, width)         # the stride-2 sub-sampling conv
  encoder += _dense(8 * 8 * n * blocks, h)
  _, method = _build("", (64, 64, 3))
  assert _counts(method) == {"params/g": decoder, "params/d": encoder + decoder}
  assert decoder == 1_716_611 and encoder + decoder == 13_405_379
  # Skip connections: the first conv of blocks 1..B-1 reads 2n channels (n more inputs each).
  skip = (blocks - 1) * 9 * n * n
  _, method = _build("skip", (64, 64, 3))
  assert _counts(method) == {"params/g": decoder + skip, "params/d": encoder + decoder + skip}


def test_compare_gan_network_parameter_count_at_28x28():
  """compare_gan's BEGAN (src/gans/BEGAN.py discriminator, abstract_gan.py generator) at 28x28x1,
  z_dim = code = 64: 4x4 convs / transposed convs, Dense layers, BN (scale and offset) in G only."""
  bottom = 7 * 7 * 128
  d = (_conv(4, 1, 64) + _conv(4, 64, 128) + _dense(bottom, 64)            # encoder
       + _dense(64, bottom) + _conv(4, 128, 64) + _conv(4, 64, 1))         # decoder
  g = (_dense(64, 1024) + 2 * 1024 + _dense(1024, bottom) + 2 * bottom
       + _conv(4, 128, 64) + 2 * 64 + _conv(4, 64, 1))
  config, method = _build("fashion_mnist,compare_gan", (28, 28, 1))
  assert config.data.image_size is None and config.data.batch_size == 64 and config.loss.gamma == 0.75
  assert _counts(method) == {"params/g": g, "params/d": d}
  assert (g, d) == (6_642_241, 1_073_601)


def test_paper_network_refuses_sizes_it_cannot_build():
  with pytest.raises(ValueError, match="8 \\* 2\\^k.*image_size"):
    _build("", (28, 28, 1))


def test_one_step_follows_the_formulas():
  """One step of the family: train/d_loss = L(x) - k_t L(G(z_D)), M_global and the k update from the
  step's own L(x) and L(G(z_G)), with D and G recomputed here from the step's inputs."""
  config, data = began.BEGAN.test_config()
  config.loss.k_init = 0.3       # k_0 = 0 would leave k clipped at 0 (gamma L(x) < L(G) at init)
  config.loss.lambda_k = 0.05
  method = methods.build(config, data)
  s0 = method.init(jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = {"real": {"image": rng.integers(0, 256, (1, 16, *data.image_shape), dtype=np.uint8)}}
  s1, m = step_lib.make_step(method, method.plan(0), donate=False)(s0, batch)
  m = jax.device_get(m)
  # Recompute L(x) with D before its update, L(G(z_G)) with D after its update and G before its own.
  x = step_lib.to_float_pixels(batch["real"]["image"][0])
  l_real = float(began.reconstruction_loss(x, method.reconstruct(s0, x)))
  step_key = jax.random.fold_in(s0.rng, 0)
  # A phase's update j draws from split(fold_in(step key, phase key), repeats)[j] (ganzoo.step.make_step).
  update_key = lambda phase_key: jax.random.split(jax.random.fold_in(step_key, phase_key), 1)[0]
  z_d = method.sample_latents(update_key(began.D_KEY), 16)
  z_g = method.sample_latents(update_key(began.G_KEY), 16)
  raw = lambda st, z: method.nets["g"].module.apply({"params": st.nets["g"].params}, z, None)
  fake_d = raw(s0, z_d)
  l_fake = float(began.reconstruction_loss(fake_d, method.reconstruct(s0, fake_d)))
  mid = s0.replace(nets={"g": s0.nets["g"], "d": s1.nets["d"]})
  fake_g = raw(s0, z_g)
  l_gen = float(began.reconstruction_loss(fake_g, method.reconstruct(mid, fake_g)))
  # float32 means of 4096 values of order 1 and a few convolutions: relative error < 1e-5.
  tol = dict(rel=1e-5, abs=1e-6)
  assert float(m["train/l_real"]) == pytest.approx(l_real, **tol)
  assert float(m["train/l_fake"]) == pytest.approx(l_fake, **tol)
  assert float(m["train/d_loss"]) == pytest.approx(l_real - 0.3 * l_fake, **tol)
  assert float(m["train/g_loss"]) == pytest.approx(l_gen, **tol)
  assert float(m["train/m_global"]) == pytest.approx(l_real + abs(0.5 * l_real - l_gen), **tol)
  assert float(m["train/k"]) == pytest.approx(0.3)
  k1 = float(s1.extras["k"])
  assert k1 == pytest.approx(0.3 + 0.05 * (0.5 * l_real - l_gen), **tol)
  assert abs(k1 - 0.3) > 1e-4    # k moved
