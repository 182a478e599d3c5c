"""Real NVP (ganzoo/models/realnvp.py, arXiv:1605.08803): exact inverses, exact log-determinants,
the identity at initialization, bits/dim, and the CIFAR-10 network's size."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo.metrics import likelihood
from ganzoo.models import realnvp
from tests.test_steps import as_float64, float64_mode


def _randomize(variables, rng, scale=0.3, rescale_mean=1.0):
  """Every param drawn N(0, scale^2) (the couplings' rescale c ~ rescale_mean + N), running means N(0, 0.25) and
  variances in [0.5, 1.5]: far from the identity initialization, so that s, t and the normalization all act."""
  leaves, tree = jax.tree.flatten_with_path(variables)
  keys = jax.random.split(rng, len(leaves))
  out = []
  for (path, leaf), key in zip(leaves, keys):
    name = jax.tree_util.keystr(path)
    if "batch_stats" in name and "var" in name:
      out.append(jax.random.uniform(key, leaf.shape, leaf.dtype, 0.5, 1.5))
    elif "batch_stats" in name:
      out.append(0.5 * jax.random.normal(key, leaf.shape, leaf.dtype))
    elif name.endswith("['rescale']"):
      out.append(rescale_mean + scale * jax.random.normal(key, leaf.shape, leaf.dtype))
    else:
      out.append(scale * jax.random.normal(key, leaf.shape, leaf.dtype) + (1.0 if name.endswith("['g']") else 0.0))
  return jax.tree.unflatten(tree, out)


# Each mask with both parities and both normalizations, in 4 rows (not all 8: CI time).
COUPLINGS = [("checkerboard", 0, "batch"), ("checkerboard", 1, "act"), ("channel", 0, "act"), ("channel", 1, "batch")]


@pytest.mark.parametrize("mask,parity,norm", COUPLINGS)
def test_coupling_inverts_and_its_logdet_is_the_jacobian_logdet(mask, parity, norm):
  """Inference mode, random params: x -> y -> x within 1e-5 in float32, and logdet == log|det dy/dx| of
  jax.jacfwd in float64 (a 1x4x4x4 input, D = 64).

  Inversion bound: |x| < 5 and |s| <= |c| < 2; the forward and inverse each do < 10 float32 operations
  per unit on values < 50 (relative rounding 6e-8), so the error is < 2 * 10 * 50 * 6e-8 = 6e-5 in the worst
  case and ~1e-6 in practice with values ~ 1; 1e-5 (the issue's bound) holds with a margin of 10 over
  the typical size. A wrong inverse (e.g. the shift undone before the scale) is off by O(1).
  Log-det: both sides are float64 computations of the same quantity (slogdet of a 64x64 matrix with
  condition number < 1e3): agreement to 1e-8 is 1e5 x the rounding; a missing term (the normalization's
  -1/2 sum log var, or s over the conditioning units) is off by > 0.1."""
  layer = realnvp.Coupling(mask, parity, features=4, num_blocks=1, norm=norm)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 4))
  variables = _randomize(layer.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(2))
  y, _ = layer.apply(variables, x)
  x_back, _ = layer.apply(variables, y, reverse=True)
  assert float(jnp.max(jnp.abs(y - x))) > 0.1, "the coupling acts"
  np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), atol=1e-5, rtol=0)
  with float64_mode():
    v64 = as_float64(variables)
    x1 = jnp.asarray(x[:1], jnp.float64)
    f = lambda u: layer.apply(v64, u.reshape(x1.shape))[0].reshape(-1)
    jac = jax.jacfwd(f)(x1.reshape(-1))
    _, expected = np.linalg.slogdet(np.asarray(jac))
    _, logdet = layer.apply(v64, x1)
    _, inv_logdet = layer.apply(v64, layer.apply(v64, x1)[0], reverse=True)
    np.testing.assert_allclose(float(logdet[0]), expected, atol=1e-8)
    np.testing.assert_allclose(float(inv_logdet[0]), -expected, atol=1e-8)


def test_squeeze_is_the_2x2_space_to_depth_permutation_and_inverts():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  y = realnvp.squeeze(x)
  assert y.shape == (2, 2, 3, 12)
  for dh in range(2):
    for dw in range(2):
      np.testing.assert_array_equal(y[..., (2 * dh + dw) * 3:(2 * dh + dw + 1) * 3], x[:, dh::2, dw::2, :])
  np.testing.assert_array_equal(realnvp.unsqueeze(y), x)


def test_whole_flow_inverts_and_its_logdet_is_the_jacobian_logdet():
  """The tiny 2-scale flow (13 couplings) with logit pre-processing and random params, inference mode, in
  float64: x in (0, 1) -> z -> x within 1e-9 and the total logdet == log|det dz/dx| by jax.jacfwd on a
  1x4x4x1 input within 1e-8. Bounds: the Jacobian's condition number here is ~7e2 and |z| < 30, so
  rounding (1e-16 relative, < 100 operations a unit) reaches < 7e2 * 30 * 100 * 1e-16 = 2e-10 in the
  inverse. (In float32 the same composition loses ~6e-6, too close to 1e-5 for a bound; each coupling's
  float32 inverse is tested above.) A skipped layer or a wrong factor-out order is off by O(1)."""
  flow = realnvp.RealNVP(**realnvp.SIZES["tiny"])
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 4, 4, 1), minval=0.02, maxval=0.98)
  variables = _randomize(flow.init(jax.random.PRNGKey(1), x), jax.random.PRNGKey(3), scale=0.2, rescale_mean=0.0)
  with float64_mode():
    v64, x64 = as_float64(variables), jnp.asarray(x, jnp.float64)
    z, _ = flow.apply(v64, x64)
    assert float(jnp.max(jnp.abs(z - realnvp.logit_transform(x64, 0.05)[0]))) > 0.1, "the couplings act"
    back = flow.apply(v64, z, method=realnvp.RealNVP.inverse)
    np.testing.assert_allclose(np.asarray(back), np.asarray(x64), atol=1e-9, rtol=0)
    x1 = x64[:1]
    jac = jax.jacfwd(lambda u: flow.apply(v64, u.reshape(x1.shape))[0].reshape(-1))(x1.reshape(-1))
    _, expected = np.linalg.slogdet(np.asarray(jac))
    _, logdet = flow.apply(v64, x1, method=realnvp.RealNVP.forward)
    np.testing.assert_allclose(float(logdet[0]), expected, atol=1e-8)


@pytest.mark.parametrize("norm", ["batch", "act", "none"])
def test_flow_at_initialization_is_the_identity_and_gives_the_standard_normal_likelihood(norm):
  """At initialization (c = 0 in every s = c tanh(.), the last conv's g = 0, running mean 0 and var 1;
  bn_eps = 0 so that the normalization is exactly 1), in inference mode, z == x and
  log p(x) == -1/2 sum(x^2 + log 2 pi), the analytic N(0, I) log-density; with the logit pre-processing,
  log p(x) == log N(logit(s)) + sum log((1 - 2 alpha) / (s (1 - s))), s = alpha + (1 - 2 alpha) x, in
  closed form in float64 here. Float32 sums of 2 * 8 * 8 terms of size < 10: tolerance 1e-4 relative."""
  flow = realnvp.RealNVP(**realnvp.SIZES["tiny"], norm=norm, logit_alpha=None, bn_eps=0.0)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 2))
  variables = flow.init(jax.random.PRNGKey(1), x)
  z, logdet = flow.apply(variables, x)
  np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(logdet), 0.0)
  xd = np.asarray(x, np.float64)
  analytic = -0.5 * np.sum(xd ** 2 + np.log(2 * np.pi), axis=(1, 2, 3))
  np.testing.assert_allclose(np.asarray(flow.apply(variables, x, method=realnvp.RealNVP.log_prob)), analytic, rtol=1e-5)

  alpha = 0.05
  logit_flow = realnvp.RealNVP(**realnvp.SIZES["tiny"], norm=norm, logit_alpha=alpha, bn_eps=0.0)
  u = jax.random.uniform(jax.random.PRNGKey(2), (4, 8, 8, 2))
  s = alpha + (1 - 2 * alpha) * np.asarray(u, np.float64)
  y = np.log(s / (1 - s))
  expected = (-0.5 * np.sum(y ** 2 + np.log(2 * np.pi), axis=(1, 2, 3))
              + np.sum(np.log((1 - 2 * alpha) / (s * (1 - s))), axis=(1, 2, 3)))
  got = logit_flow.apply(variables, u, method=realnvp.RealNVP.log_prob)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)


def test_bits_per_dim_of_uniform_noise_under_a_uniform_model_is_8():
  """The uniform density on [0, 1]^D has -log p = 0 for any dequantized image, so its discrete
  -log P(x) is D ln 256 nats: 8 bits/dim (ganzoo.metrics.likelihood's rule, and the jnp copy the
  family uses). A model that is uniform on [-1, 1]^D instead (density 2^-D) gets 7 + 1 = 8 after the
  rescaling's log-det D ln 2; the wrong rule (no D ln 256) would give 0."""
  d = 28 * 28
  noise = jax.random.uniform(jax.random.PRNGKey(0), (5, 28, 28, 1))
  nll_uniform = jnp.zeros((noise.shape[0],))                    # -log 1 for every image
  assert likelihood.bits_per_dim(np.asarray(nll_uniform), d, scaled_to_unit_interval=True).tolist() == [8.0] * 5
  np.testing.assert_allclose(np.asarray(realnvp.bits_per_dim(nll_uniform, d)), 8.0, rtol=1e-6)
  # On [-1, 1]: -log p(2u - 1) = D ln 2, and the change of variables u -> 2u - 1 adds -D ln 2.
  nll_pm1 = d * math.log(2.0) - d * math.log(2.0)
  assert likelihood.bits_per_dim(nll_pm1, d, scaled_to_unit_interval=True) == 8.0


def _wn(k, cin, cout, scale=True, bias=True):
  return k * k * cin * cout + cout * scale + cout * bias


def _resnet(din, dim, dout, blocks):
  """h_in (3x3, bias), skip_in (1x1), per block: 2 BN biases, 3x3 (no g, no bias), 3x3, skip 1x1;
  BN bias, out (1x1)."""
  per_block = 2 * dim + _wn(3, dim, dim, False, False) + _wn(3, dim, dim) + _wn(1, dim, dim)
  return _wn(3, din, dim, scale=False) + _wn(1, dim, dim) + blocks * per_block + dim + _wn(1, dim, dout)


def test_cifar10_architecture_parameter_count():
  """arXiv:1605.08803 Sec. 4.1 (CIFAR-10: 8 residual blocks, 64 feature maps, one downscaling) counted
  from the layer list: scale 0 (32x32x3): 3 checkerboard couplings at 64 features (s/t input 2*3 + 1
  channels: x b, -x b, the mask), squeeze, 3 channel couplings at 128 (input 2*6); scale 1 (16x16x6):
  4 checkerboard couplings at 128. Each coupling adds its input BN's biases and the scalar c."""
  checker = lambda c, dim: c + _resnet(2 * c + 1, dim, 2 * c, 8) + 1
  channel = lambda c, dim: c // 2 + _resnet(c, dim, c, 8) + 1
  expected = 3 * checker(3, 64) + 3 * channel(12, 128) + 4 * checker(6, 128)
  flow = realnvp.build({"size": "cifar10"})
  shapes = jax.eval_shape(lambda: flow.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))
  assert count == expected == 19_609_545, (count, expected)


def test_evaluate_workdir_reports_bits_per_dim_of_the_test_split(tmp_path):
  """`python -m ganzoo.evaluate --workdir=RUN --metrics=bpd` (evaluate_workdir): the realnvp family's exact
  bits/dim, the mean over the first num_samples images of eval.real_split of `Method.nll` (dequantized
  with the family's fixed key), appended to metrics.jsonl as eval/bpd; here computed again from
  log p(x) of the restored flow with the same noise. Float32 means of <= 4 * 256 terms: rtol 1e-5."""
  from ganzoo import evaluate, methods, parallel, runs, train  # pylint: disable=g-import-not-at-top
  from tests.test_train import write_npz  # pylint: disable=g-import-not-at-top
  config, data = methods.get("realnvp").test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=24, shape=data.image_shape)
  config.train.num_steps = 2
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, mesh=parallel.make_mesh(jax.devices()[:1]), progress=False)
  result = evaluate.evaluate_workdir(workdir, "bpd", num_samples=10, batch_size=4)
  assert result["step"] == 2 and set(result) == {"bpd", "bpd_split", "step"}
  method = runs.build_method(runs.load_run_config(workdir))
  state, _ = runs.restore_state(method, workdir)
  pixels = np.load(tmp_path / "d.npz")["images"][:10].astype(np.float32)
  expected = []
  log_prob = jax.jit(method.log_prob)   # one compiled flow (eagerly, each op of the flow dispatched and compiled alone)
  for lo in range(0, 10, 4):   # the evaluation's batches: the same noise key for each
    image = jnp.asarray(pixels[lo:lo + 4] / 127.5 - 1.0)
    noise = jax.random.uniform(method.eval_key, image.shape, image.dtype)
    x = (pixels[lo:lo + 4] + noise) / 256.0
    nll = -np.asarray(log_prob(state, x), np.float64)
    expected.extend((nll + x[0].size * np.log(256.0)) / (x[0].size * np.log(2.0)))
  np.testing.assert_allclose(result["bpd"], np.mean(expected), rtol=1e-5)
  last = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")][-1]
  assert last["step"] == 2 and last["eval/bpd"] == pytest.approx(result["bpd"], rel=1e-12)


def test_scales_get_gradients_at_identity_initialization():
  """At initialization s = c tanh(raw) with c = 0; the raw-s half of the last conv is not zeroed, so
  dL/dc = sum tanh(raw) dL/ds != 0 and s trains (zeroing raw s too made (c, raw) a stationary point:
  both gradients exactly 0, s = 0 for ever). The t half starts at 0 and its g gets a gradient."""
  layer = realnvp.Coupling("checkerboard", 0, features=4, num_blocks=1, norm="batch")
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 4, 2))
  variables = layer.init(jax.random.PRNGKey(1), x)

  def nll(params):
    (y, logdet), _ = layer.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.mean(0.5 * jnp.sum(y ** 2, axis=(1, 2, 3)) - logdet)

  grads = jax.grad(nll)(variables["params"])
  assert abs(float(grads["rescale"])) > 1e-3
  g_out = np.asarray(grads["resnet"]["out"]["g"])
  assert np.all(np.asarray(variables["params"]["resnet"]["out"]["g"])[:2] == 0) and np.abs(g_out[:2]).min() > 0
