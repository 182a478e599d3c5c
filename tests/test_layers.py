"""Tests for ganzoo.models.layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo.models import layers


def _key(seed: int) -> jax.Array:
  """A PRNG key. 'rbg' because XLA:CPU compiles threefry-based inits ~7x slower (14 s vs 2 s for
  8 normal draws on the shared 2-core machine), which would dominate these tests."""
  return jax.random.key(seed, impl='rbg')


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def _tol(k: int) -> float:
  """Bound on `_rel_err` between two float32 evaluations of the same K-term sums in different orders.

  Worst case the two differ by 2 gamma_K sum|terms| (Higham, Accuracy and Stability, Sec. 3.1);
  with independent rounding errors (Higham & Mary 2019, SIAM J. Sci. Comput. 41:A2815) by
  2 lambda sqrt(K) u sum|terms|, and for the zero-mean random data here sum|terms| ~ sqrt(K) max|b|.
  So rel_err <~ 2 lambda K u; lambda = 4 (a 4-sigma bound on every machine): 8 K u, at least 1e-6.
  A wrong tap, phase or padding is an O(1) error, so the tests still fail on one.
  """
  return max(8 * k * 2.0 ** -24, 1e-6)


@pytest.mark.parametrize('shape,features', [((2, 5, 7, 3), 4), ((2, 4, 4, 6), 3),
                                            ((1, 1, 1, 2), 5),
                                            ((2, 4, 4, 3), 64), ((1, 2, 3, 2), 64)])  # per-phase path
def test_conv_transpose_2x_matches_flax_conv_transpose(shape, features):
  """Outputs and gradients w.r.t. input, kernel and bias equal nn.ConvTranspose(k4, s2, SAME)."""
  kx, kp, kr, kb = jax.random.split(_key(0), 4)
  x = jax.random.normal(kx, shape)
  ref = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')
  fast = layers.ConvTranspose2x(features)
  params = jax.jit(ref.init)(kp, x)
  # Same parameter layout, so checkpoints are interchangeable.
  fast_params = jax.eval_shape(fast.init, kp, x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, fast_params)
  # A non-zero bias so the bias path is exercised too.
  params = {'params': {'kernel': params['params']['kernel'],
                       'bias': jax.random.normal(kb, (features,))}}
  out_shape = (shape[0], 2 * shape[1], 2 * shape[2], features)
  cot = jax.random.normal(kr, out_shape)

  def loss(module, p, x):
    y = module.apply(p, x)
    assert y.shape == out_shape
    return jnp.sum(y * cot), y

  (l_ref, y_ref), (gp_ref, gx_ref) = jax.jit(jax.value_and_grad(
      lambda p, x: loss(ref, p, x), argnums=(0, 1), has_aux=True))(params, x)
  (l_fast, y_fast), (gp_fast, gx_fast) = jax.jit(jax.value_and_grad(
      lambda p, x: loss(fast, p, x), argnums=(0, 1), has_aux=True))(params, x)
  # Longest sums: y and the loss sum 16 * Cin taps (flax's dilated kernel; the loss's own sum is the
  # same reduction on both sides, so only y's differences enter it), dx 16 * features, the kernel
  # gradient the N * H * W input pixels, the bias gradient the N * 2H * 2W output pixels.
  n, h, w, cin = shape
  tol = _tol(max(16 * cin, 16 * features, n * h * w, 4 * n * h * w))
  assert _rel_err(y_fast, y_ref) < tol
  assert _rel_err(l_fast, l_ref) < tol
  assert _rel_err(gx_fast, gx_ref) < tol
  assert _rel_err(gp_fast['params']['kernel'], gp_ref['params']['kernel']) < tol
  assert _rel_err(gp_fast['params']['bias'], gp_ref['params']['bias']) < tol


def test_conv_transpose_2x_known_values():
  """1x1 input of ones, Cin=Cout=1: y[2m+a, 2n+b] sums the taps (2t+a, 2s+b) that hit the pixel."""
  kernel = jnp.arange(16.0).reshape(4, 4, 1, 1)
  y = layers.conv_transpose_2x(jnp.ones((1, 1, 1, 1)), kernel)[0, :, :, 0]
  # y[0] (phase 0, m=0) uses x[m]=x[0] with tap 2; y[1] (phase 1) uses x[m]=x[0] with tap 1.
  # One tap per output pixel, times 1.0: exact in float32 (assert_allclose's default rtol 1e-7).
  np.testing.assert_allclose(y, [[kernel[2, 2, 0, 0], kernel[2, 1, 0, 0]],
                                 [kernel[1, 2, 0, 0], kernel[1, 1, 0, 0]]])


def test_conv_transpose_2x_without_bias():
  x = jnp.ones((2, 3, 3, 2))
  variables = jax.eval_shape(layers.ConvTranspose2x(4, use_bias=False).init, _key(0), x)
  assert set(variables['params']) == {'kernel'}
  assert variables['params']['kernel'].shape == (4, 4, 2, 4)


def _cbn_reference(x, y, gamma, beta):
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))
  xhat = (x - mean) / np.sqrt(var + layers.BN_EPSILON)
  return gamma[y][:, None, None, :] * xhat + beta[y][:, None, None, :]


def test_conditional_batch_norm():
  kx, kg, kb = jax.random.split(_key(1), 3)
  x = 3.0 + 2.0 * jax.random.normal(kx, (4, 3, 3, 5))
  y = jnp.array([0, 2, 1, 2], jnp.int32)
  cbn = layers.ConditionalBatchNorm(num_classes=3)
  variables = cbn.init(_key(0), x, y, True)
  params = variables['params']
  assert set(params) == {'gamma', 'beta'}  # The BN itself has no affine parameters.
  np.testing.assert_array_equal(params['gamma']['embedding'], np.ones((3, 5)))
  np.testing.assert_array_equal(params['beta']['embedding'], np.zeros((3, 5)))

  gamma = jax.random.normal(kg, (3, 5))
  beta = jax.random.normal(kb, (3, 5))
  variables = {'params': {'gamma': {'embedding': gamma}, 'beta': {'embedding': beta}},
               'batch_stats': variables['batch_stats']}
  out, updates = cbn.apply(variables, x, y, True, mutable=['batch_stats'])
  # Both sides in float32: mean and variance over 36 values of x ~ 3 +- 2 (all of one sign, so no
  # cancellation) are within gamma_36 = 2e-6 relative; |x - mean| / std <= 4 and |gamma| <= 4 here,
  # so |out - ref| <= ~1e-5 (the var's rsqrt adds a few ulps): 1e-4 leaves 10x, and a wrong class
  # row of gamma/beta or eps 1e-3 instead of 1e-5 (a 2.5e-4 relative change of 1/std) still fails.
  np.testing.assert_allclose(out, _cbn_reference(np.asarray(x), np.asarray(y), np.asarray(gamma),
                                                 np.asarray(beta)), rtol=1e-4, atol=1e-4)
  # Running statistics: 0.9 * init + 0.1 * batch (mean init 0; var init 1, unbiased=False); the
  # 36-term means of one-signed values are within gamma_36 = 2e-6 relative on both sides: 1e-5.
  stats = jax.tree.map(np.asarray, updates['batch_stats']['bn'])
  np.testing.assert_allclose(stats['mean'], 0.1 * np.asarray(x).mean(axis=(0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * np.asarray(x).var(axis=(0, 1, 2)),
                             rtol=1e-5)

  # Eval mode uses the running statistics.
  variables = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  out_eval = cbn.apply(variables, x, y, False)
  xhat = (np.asarray(x) - stats['mean']) / np.sqrt(stats['var'] + layers.BN_EPSILON)
  expected = np.asarray(gamma)[y][:, None, None, :] * xhat + np.asarray(beta)[y][:, None, None, :]
  np.testing.assert_allclose(out_eval, expected, rtol=1e-4, atol=1e-4)  # elementwise; bound as above


def test_glorot_uniform_bound():
  w = layers.glorot_uniform(2.0 ** 0.5)(_key(0), (3, 3, 16, 32))
  bound = 2.0 ** 0.5 * np.sqrt(6.0 / (9 * 16 + 9 * 32))
  assert np.max(np.abs(w)) <= bound
  # Sampling bounds (any key): P(max of 4608 uniforms < 0.98 bound) = 0.99^4608 ~ 1e-20; the sample
  # std of n = 4608 has relative std error ~ 0.45 / sqrt(n) = 0.7%, so 3% of bound (5%) is 7 sigma.
  assert np.max(np.abs(w)) > 0.98 * bound  # Uniform on [-bound, bound]: the max gets close.
  assert abs(np.std(w) - bound / np.sqrt(3.0)) < 0.03 * bound


def test_dcgan_inits():
  # Sampling bounds: std 0.02 over n = 4096 draws has std error 0.02 / sqrt(2n) = 2.2e-4 and the
  # mean 0.02 / sqrt(n) = 3e-4; 0.002 is > 6 sigma for both; a wrong std (0.01, 1.0) fails.
  w = layers.dcgan_normal(_key(0), (64, 64))
  assert abs(np.std(w) - 0.02) < 0.002 and abs(np.mean(w)) < 0.002
  s = layers.dcgan_bn_scale(_key(1), (4096,))
  assert abs(np.mean(s) - 1.0) < 0.002 and abs(np.std(s) - 0.02) < 0.002


def test_check_size():
  layers.check_size('dcgan', 'tiny', ('paper', 'tiny'))
  with pytest.raises(ValueError, match='config.model.size'):
    layers.check_size('dcgan', 'huge', ('paper', 'tiny'))


@pytest.mark.parametrize('shape,features', [((2, 5, 7, 3), 4), ((1, 4, 4, 6), 3)])
def test_upsample_conv3x3_matches_upsample_then_flax_conv(shape, features):
  """UpsampleConv3x3 == nn.Conv(3x3, pad 1) on the nearest-2x up-sampled input: values, grads, params."""
  kx, kp, kr, kb = jax.random.split(_key(1), 4)
  x = jax.random.normal(kx, shape)
  n, h, w, c = shape
  up = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)
  ref = nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), precision='highest')
  fast = layers.UpsampleConv3x3(features, precision='highest')
  params = jax.jit(ref.init)(kp, up)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, jax.eval_shape(fast.init, kp, x))
  params = {'params': {'kernel': params['params']['kernel'], 'bias': jax.random.normal(kb, (features,))}}
  cot = jax.random.normal(kr, (n, 2 * h, 2 * w, features))

  def ref_fn(p, x):
    xu = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)
    return ref.apply(p, xu)

  y_ref, y_fast = ref_fn(params, x), fast.apply(params, x)
  assert y_fast.shape == (n, 2 * h, 2 * w, features)
  # Longest sums: y 9 * C taps, dx 9 * features (x 4 up-sampled copies), the kernel gradient
  # N * 2H * 2W pixels, the bias gradient as many.
  tol = _tol(max(9 * c, 36 * features, 4 * n * h * w))
  assert _rel_err(y_fast, y_ref) < tol
  g_ref = jax.grad(lambda p, x: jnp.sum(ref_fn(p, x) * cot), (0, 1))(params, x)
  g_fast = jax.grad(lambda p, x: jnp.sum(fast.apply(p, x) * cot), (0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    assert _rel_err(a, b) < tol


def _value_and_grads(module, variables, x, cot):
  """(y, new batch_stats, grads w.r.t. (variables, x)) of sum(module(x) * cot), train mode."""
  def loss(v, x):
    if 'batch_stats' in v:
      y, mutated = module.apply(v, x, mutable=['batch_stats'])
    else:
      y, mutated = module.apply(v, x), {}
    return jnp.sum(y * cot), (y, mutated)
  (_, (y, mutated)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables, x)
  return y, mutated, grads


@pytest.mark.parametrize('shape', [(8, 6, 6, 5), (64, 4, 4, 3), (16, 7)])
def test_batch_norm_matches_flax(shape):
  """layers.BatchNorm == nn.BatchNorm: params layout, outputs, running stats, all gradients; eval mode."""
  kx, ks, kb, kc = jax.random.split(_key(2), 4)
  x = 3.0 * jax.random.normal(kx, shape) + 1.5
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  fast = layers.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  variables = ref.init(_key(0), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, fast.init(_key(0), x))
  c = shape[-1]
  variables = {'params': {'scale': 1.0 + jax.random.normal(ks, (c,)), 'bias': jax.random.normal(kb, (c,))},
               'batch_stats': {'mean': jnp.full((c,), 0.5), 'var': jnp.full((c,), 2.0)}}
  cot = jax.random.normal(kc, shape)
  y_ref, stats_ref, g_ref = _value_and_grads(ref, variables, x, cot)
  y_fast, stats_fast, g_fast = _value_and_grads(fast, variables, x, cot)
  # Longest sums: the batch mean/variance and the scale/bias gradients over M = N * H * W rows
  # (statistics of x = 1.5 + 3 z, gradients of zero-mean products: _tol's model). _tol(M) is up
  # to 4.9e-4 here, above what a wrong eps changes in train mode (5e-5); the eval check pins eps.
  m = int(np.prod(shape[:-1]))
  assert _rel_err(y_fast, y_ref) < _tol(m)
  for a, b in zip(jax.tree.leaves((stats_fast, g_fast)), jax.tree.leaves((stats_ref, g_ref))):
    assert _rel_err(a, b) < _tol(m)
  # The batch statistics themselves: mean 1.5 and variance 9 up to sampling, updated with momentum 0.9;
  # the M-term mean of values of one sign mostly: within gamma_M <= 6e-5 relative, 0.1x of it here.
  np.testing.assert_allclose(stats_fast['batch_stats']['mean'],
                             0.9 * 0.5 + 0.1 * np.asarray(x).reshape(-1, c).mean(0), rtol=1e-5)
  eval_ref = nn.BatchNorm(use_running_average=True, epsilon=1e-5).apply(variables, x)
  eval_fast = layers.BatchNorm(epsilon=1e-5).apply(variables, x, use_running_average=True)
  # Eval mode is elementwise ((x - mean) * rsqrt(var + eps) * scale + bias): a few ulps (< 1e-6 of
  # max|y|) between orders of these 4 operations; eps 1e-3 vs 1e-5 with var 2 is a 2.5e-4 change.
  assert _rel_err(eval_fast, eval_ref) < 1e-6


@pytest.mark.parametrize('kwargs,shape', [
    (dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1))), (4, 8, 6, 3)),   # conv_down_2x
    (dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1))), (2, 7, 5, 3)),   # odd: plain conv
    (dict(kernel_size=(3, 3), padding='SAME'), (2, 6, 6, 4)),
    (dict(kernel_size=(3, 3), strides=(2, 2), padding=1), (2, 6, 6, 4)),
    (dict(kernel_size=(1, 1), padding='VALID', use_bias=False), (2, 5, 5, 4)),
])
def test_conv_matches_flax(kwargs, shape):
  """layers.Conv == nn.Conv: same params, outputs, gradients w.r.t. input, kernel and bias."""
  kx, kb, kc = jax.random.split(_key(3), 3)
  x = jax.random.normal(kx, shape)
  ref, fast = nn.Conv(5, **kwargs), layers.Conv(5, **kwargs)
  variables = ref.init(_key(0), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, fast.init(_key(0), x))
  if 'bias' in variables['params']:
    variables = {'params': {**variables['params'], 'bias': jax.random.normal(kb, (5,))}}
  y_ref = ref.apply(variables, x)
  cot = jax.random.normal(kc, y_ref.shape)
  y_ref, _, g_ref = _value_and_grads(ref, variables, x, cot)
  y_fast, _, g_fast = _value_and_grads(fast, variables, x, cot)
  # Longest sums: y kh * kw * Cin taps, dx kh * kw * 5, the kernel/bias gradients N * Ho * Wo pixels.
  kh, kw = kwargs['kernel_size']
  tol = _tol(max(kh * kw * shape[-1], kh * kw * 5, int(np.prod(y_ref.shape[:-1]))))
  assert _rel_err(y_fast, y_ref) < tol
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    assert _rel_err(a, b) < tol


def test_row_sum_and_bias_add():
  x = jnp.arange(24.0).reshape(2, 3, 4)
  np.testing.assert_array_equal(layers.row_sum(x), np.arange(24.0).reshape(6, 4).sum(0))
  # Sums of 6 small integers are exact in float32; the mean's one division rounds once (< 1e-7).
  np.testing.assert_allclose(layers.row_mean(x), np.arange(24.0).reshape(6, 4).mean(0))
  g = jax.grad(lambda b: jnp.sum(layers.bias_add(x, b) * x))(jnp.zeros(4))
  np.testing.assert_array_equal(g, np.arange(24.0).reshape(6, 4).sum(0))


def test_avg_pool2_and_upsample_nearest():
  """avg_pool2 == nn.avg_pool(2x2, stride 2) in value and gradient; upsample repeats pixels 2x2."""
  x = jax.random.normal(_key(4), (2, 6, 4, 3))
  cot = jax.random.normal(_key(5), (2, 3, 2, 3))
  # 4-term sums of |x| <~ 4, times 1/4 (exact): two orders differ by <= 2 gamma_4 * 16 = 8e-6 worst
  # case; a few ulps of values < 4 (~1e-6) in practice. atol 1e-5 is the worst-case bound.
  np.testing.assert_allclose(layers.avg_pool2(x), nn.avg_pool(x, (2, 2), strides=(2, 2)), atol=1e-5)
  g = jax.grad(lambda x: jnp.sum(layers.avg_pool2(x) * cot))(x)
  g_ref = jax.grad(lambda x: jnp.sum(nn.avg_pool(x, (2, 2), strides=(2, 2)) * cot))(x)
  np.testing.assert_allclose(g, g_ref, atol=1e-6)  # cot / 4 for each pixel: one exact scaling
  up = layers.upsample_nearest(jnp.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0]
  np.testing.assert_array_equal(up, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize('which', ['conv_down', 'conv_transpose', 'batch_norm'])
def test_double_backward_matches_flax(which):
  """Gradient penalties differentiate through the custom VJPs: d/dparams |d layer / dx|^2 equals flax's."""
  k4s2 = dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  ref, fast, shape = {
      'conv_down': (nn.Conv(4, **k4s2), layers.Conv(4, **k4s2), (2, 6, 6, 3)),
      'conv_transpose': (nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding='SAME'),
                         layers.ConvTranspose2x(4), (2, 3, 3, 3)),
      'batch_norm': (nn.BatchNorm(use_running_average=False), layers.BatchNorm(use_running_average=False),
                     (6, 2, 2, 3)),
  }[which]
  x = jax.random.normal(_key(6), shape)
  variables = ref.init(_key(7), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(_key(8), p.shape), variables['params'])
  rest = {k: v for k, v in variables.items() if k != 'params'}

  def penalty(module, params):
    def out(x):
      v = {'params': params, **rest}
      y = module.apply(v, x, mutable=['batch_stats'])[0] if rest else module.apply(v, x)
      return jnp.sum(jnp.sin(y))
    return jnp.sum(jax.grad(out)(x) ** 2)

  g_ref = jax.grad(lambda p: penalty(ref, p))(params)
  g_fast = jax.grad(lambda p: penalty(fast, p))(params)
  # Second-order: the penalty's gradient chains a forward, a VJP and its VJP; each stage sums over
  # the longest reduction above (N * H * W pixels or 16 taps x channels), so three _tol errors add.
  k = max(int(np.prod(shape[:-1])) * 4, 16 * max(shape[-1], 4))
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    assert _rel_err(a, b) < 3 * _tol(k)
