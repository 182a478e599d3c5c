"""The VAE's bounds, likelihoods and published sizes, with numbers (ganzoo/methods/vae.py, ganzoo/models/vae.py).

The bounds are checked on a linear Gaussian model, where everything has a closed form:
  p(z) = N(0, I_d),  p(x|z) = N(W z + b, s^2 I_D)  =>  p(x) = N(b, W W^T + s^2 I),
  exact posterior p(z|x) = N(S W^T (x - b) / s^2, S) with S = (I + W^T W / s^2)^-1,
  and for q = N(m, diag v): ELBO = -D/2 log(2 pi s^2) - (|x - W m - b|^2 + tr(W diag(v) W^T)) / (2 s^2)
                                   - KL(q || N(0, I)).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as scipy_logsumexp

from ganzoo import nets as nets_lib
from ganzoo.methods import vae as vae_lib
from ganzoo.models import vae as vae_models

D, Z = 5, 3


@pytest.fixture(autouse=True)
def _float64():
  with jax.enable_x64(True):
    yield


def _linear_model(seed=0, n=8):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(D, Z))
  b = rng.normal(size=D)
  s = 0.7
  x = rng.normal(size=(n, D)) * 2.0
  return w, b, s, x


def _log_marginal(w, b, s, x):
  cov = w @ w.T + s * s * np.eye(D)
  diff = x - b
  _, logdet = np.linalg.slogdet(cov)
  return -0.5 * (D * math.log(2 * math.pi) + logdet + np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff))


def _posterior(w, b, s, x):
  cov = np.linalg.inv(np.eye(Z) + w.T @ w / s ** 2)
  return (x - b) @ w @ cov.T / s ** 2, cov


def _log_lik_fn(w, b, s, x):
  w, b, x = jnp.asarray(w), jnp.asarray(b), jnp.asarray(x)
  return lambda z: vae_models.log_normal(x, z @ w.T + b[None], jnp.full_like(x, math.log(s)))


def test_elbo_with_the_exact_posterior_is_log_p_x():
  """q = p(z|x): log p(x, z) - log q(z|x) = log p(x) for every z, so each importance log-weight (the
  ELBO's integrand) and the IWAE bound at any K equal log p(x) exactly, and the ELBO estimate with the
  closed-form KL matches it within 5 Monte-Carlo standard errors. The exact posterior's covariance is
  not diagonal in general; a rotation of z makes it so: with W = U diag(l) V^T the model z' = V^T z
  has the same p(x) and a diagonal posterior."""
  w, b, s, x = _linear_model()
  u, lam, _ = np.linalg.svd(w, full_matrices=False)
  w_rot = u * lam                           # W V: z' = V^T z ~ N(0, I) again
  mean, cov = _posterior(w_rot, b, s, x)
  assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-12)
  log_std = np.broadcast_to(0.5 * np.log(np.diag(cov)), mean.shape)
  log_p = _log_marginal(w, b, s, x)
  args = (_log_lik_fn(w_rot, b, s, x), jnp.asarray(mean), jnp.asarray(log_std))
  eps = jax.random.normal(jax.random.PRNGKey(0), (4000, *mean.shape), jnp.float64)
  log_w = np.asarray(vae_lib.importance_log_weights(*args, eps[:3]))
  # float64 sums of ~10 terms of size <= 1e2: rounding below 1e-12.
  np.testing.assert_allclose(log_w, np.broadcast_to(log_p, log_w.shape), rtol=0, atol=1e-10)
  np.testing.assert_allclose(np.asarray(vae_lib.iwae_bound(*args, eps[:7])), log_p, rtol=0, atol=1e-10)
  got = np.asarray(vae_lib.elbo(*args, eps))
  terms = np.asarray(jax.vmap(lambda e: args[0](args[1] + jnp.exp(args[2]) * e))(eps))
  se = terms.std(0) / math.sqrt(len(eps))
  assert np.all(np.abs(got - log_p) < 5 * se), (got - log_p, se)


def test_elbo_of_a_given_gaussian_equals_its_closed_form():
  """q = N(m, diag v) away from the posterior: the estimate (K samples, closed-form KL) matches the
  closed-form ELBO within 5 Monte-Carlo standard errors (sample std / sqrt(K): a chance of < 1e-6 per
  example of failing for correct code), and the gap to log p(x) is real (> 0.1 nats here)."""
  w, b, s, x = _linear_model(1)
  mean, cov = _posterior(w, b, s, x)
  m = mean + 0.4
  log_std = np.broadcast_to(0.5 * np.log(np.diag(cov)) + 0.2, m.shape)
  v = np.exp(2 * log_std)
  kl = 0.5 * np.sum(m ** 2 + v - np.log(v) - 1, axis=1)
  resid = x - m @ w.T - b
  closed = (-0.5 * D * math.log(2 * math.pi * s * s)
            - (np.sum(resid ** 2, 1) + np.einsum("ij,nj,ij->n", w, v, w)) / (2 * s * s) - kl)
  k = 20_000
  eps = jax.random.normal(jax.random.PRNGKey(1), (k, *m.shape), jnp.float64)
  log_lik = _log_lik_fn(w, b, s, x)
  got = np.asarray(vae_lib.elbo(log_lik, jnp.asarray(m), jnp.asarray(log_std), eps))
  terms = np.asarray(jax.vmap(lambda e: log_lik(jnp.asarray(m) + jnp.exp(jnp.asarray(log_std)) * e))(eps))
  se = terms.std(0) / math.sqrt(k)
  assert np.all(np.abs(got - closed) < 5 * se), (got - closed, se)
  assert np.all(_log_marginal(w, b, s, x) - closed > 0.1)


def test_iwae_bound_is_above_the_elbo_and_approaches_log_p_x():
  """IWAE_K >= the ELBO estimate on the same samples (Jensen: log-mean-exp >= mean-log, exact for any
  samples); its mean over examples and sample groups rises with K (1, 10, 100), and at K = 4000 its gap
  to log p(x) is within 3x the asymptotic gap Var[w / p(x)] / (2K) (the delta method on log of a sample
  mean; e.g. Maddison et al. 2017, arXiv:1705.09279) plus 5 standard errors of the estimate, and far
  below the ELBO's gap."""
  w, b, s, x = _linear_model(2, n=16)
  mean, cov = _posterior(w, b, s, x)
  m = mean + 0.3
  log_std = np.broadcast_to(0.5 * np.log(np.diag(cov)) + 0.25, m.shape)   # wider than p(z|x): finite variance
  log_lik = _log_lik_fn(w, b, s, x)
  log_p = _log_marginal(w, b, s, x)
  mj, lj = jnp.asarray(m), jnp.asarray(log_std)
  eps = jax.random.normal(jax.random.PRNGKey(2), (4000, *m.shape), jnp.float64)
  log_w = np.asarray(vae_lib.importance_log_weights(log_lik, mj, lj, eps))
  # log w with the analytic KL's ELBO: E_q[log w] = ELBO.
  elbo_same = np.asarray(vae_lib.elbo(log_lik, mj, lj, eps[:10]))
  iwae_10 = np.asarray(vae_lib.iwae_bound(log_lik, mj, lj, eps[:10]))
  mc_elbo_10 = log_w[:10].mean(0)
  assert np.all(iwae_10 >= mc_elbo_10)
  # E[IWAE_K] by the mean over the 4000 / K disjoint groups of K samples (log-weights computed once).
  iwae_k = lambda k: log_w.reshape(4000 // k, k, -1)
  gaps = [float(np.mean(log_p - (scipy_logsumexp(iwae_k(k), axis=1) - math.log(k)))) for k in (1, 10, 100)]
  assert gaps[0] > gaps[1] > gaps[2], gaps
  assert float(np.mean(log_p - elbo_same)) > 0.2
  rel = np.exp(log_w - log_p)                       # w / p(x): mean 1
  asymptotic = rel.var(0) / (2 * 4000)
  se = rel.std(0) / math.sqrt(4000)                 # error of log-mean-exp ~ std of the mean of w / p(x)
  gap_4000 = log_p - np.asarray(vae_lib.iwae_bound(log_lik, mj, lj, eps))
  assert np.all(np.abs(gap_4000) <= 3 * asymptotic + 5 * se), (gap_4000, asymptotic, se)
  assert np.mean(gap_4000) < 0.05 * gaps[0]


def test_kl_of_two_diagonal_gaussians_equals_the_matrix_formula():
  """KL(N(m1, S1) || N(m2, S2)) = 1/2 [tr(S2^-1 S1) + (m2 - m1)^T S2^-1 (m2 - m1) - d + ln det S2 / det S1]
  with S diagonal, against the pure function; KL(q || q) = 0; the N(0, I) special case."""
  rng = np.random.default_rng(3)
  m1, m2 = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
  l1, l2 = rng.normal(size=(4, 6)) * 0.5, rng.normal(size=(4, 6)) * 0.5
  want = []
  for i in range(4):
    s1, s2 = np.diag(np.exp(2 * l1[i])), np.diag(np.exp(2 * l2[i]))
    inv2 = np.linalg.inv(s2)
    d = m2[i] - m1[i]
    want.append(0.5 * (np.trace(inv2 @ s1) + d @ inv2 @ d - 6 + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1]))
  got = vae_lib.kl_diag_gaussians(*map(jnp.asarray, (m1, l1, m2, l2)))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(vae_lib.kl_diag_gaussians(*map(jnp.asarray, (m1, l1, m1, l1)))), 0, atol=1e-14)
  np.testing.assert_allclose(np.asarray(vae_lib.kl_standard_normal(jnp.asarray(m1), jnp.asarray(l1))),
                             0.5 * np.sum(m1 ** 2 + np.exp(2 * l1) - 2 * l1 - 1, axis=1), rtol=1e-12)


def test_discretized_gaussian_is_a_distribution_over_the_256_values():
  """The 256 bin masses sum to 1 for any mean and scale (also far outside [0, 1] and for scales far below
  a bin: the stable tails), and a bin's mass is Phi(hi) - Phi(lo)."""
  pixels = jnp.arange(256.0).reshape(256, 1)
  for mean, std in ((0.3, 0.1), (0.0, 1e-3), (1.02, 0.004), (-3.0, 0.5), (0.5, 30.0), (0.998, 2e-3)):
    lp = vae_models.discretized_gaussian_log_prob(pixels, jnp.full((256, 1), mean), jnp.full((256, 1), math.log(std)))
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(lp))), 1.0, rtol=1e-9)
  from scipy.stats import norm
  lp = vae_models.discretized_gaussian_log_prob(jnp.array([[77.0]]), jnp.array([[0.3]]), jnp.array([[math.log(0.05)]]))
  np.testing.assert_allclose(float(lp[0]), math.log(norm.cdf(78 / 256, 0.3, 0.05) - norm.cdf(77 / 256, 0.3, 0.05)),
                             rtol=1e-10)


def _count(module, *inputs):
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *inputs, train=False))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


def test_parameter_counts_of_the_published_architectures():
  """The Flax example's MLP (784-500-20) and compare_gan's conv VAE at 28x28x1 (z 64) and 32x32x3,
  from their layer lists: dense (in + 1) * out, conv k*k*in*out + out, BN 2 * channels."""
  dense = lambda i, o: (i + 1) * o
  conv = lambda i, o, k=4: k * k * i * o + o
  bn = lambda c: 2 * c
  x28 = jnp.zeros((2, 28, 28, 1))
  enc = vae_models.MLPEncoder(500, 20)
  dec = vae_models.MLPDecoder((28, 28, 1), 500, 1)
  assert _count(enc, x28) == dense(784, 500) + 2 * dense(500, 20) == 412_540
  assert _count(dec, jnp.zeros((2, 20))) == dense(20, 500) + dense(500, 784) == 403_284
  for (h, c), z in (((28, 1), 64), ((32, 3), 64)):
    flat = 128 * (h // 4) ** 2
    enc = vae_models.ConvEncoder(z_dim=z)
    dec = vae_models.ConvDecoder((h, h, c))
    assert _count(enc, jnp.zeros((2, h, h, c))) == conv(c, 64) + conv(64, 128) + dense(flat, 1024) + dense(1024, 2 * z)
    assert _count(dec, jnp.zeros((2, z))) == (dense(z, 1024) + bn(1024) + dense(1024, flat) + bn(flat)
                                              + conv(128, 64) + bn(64) + conv(64, c))
  assert _count(vae_models.ConvEncoder(z_dim=64), x28) == 6_687_040
  d = vae_models.build_discriminator({"d_arch": "compare_gan"}, (28, 28, 1))
  assert _count(d, x28) == conv(1, 64) + conv(64, 128) + bn(128) + dense(6272, 1024) + bn(1024) + dense(1024, 1)


def test_bits_per_dim_of_the_dequantized_gaussian_matches_the_discrete_likelihood():
  """The family's nll in bits per 8-bit dimension: with the encoder zeroed (q = N(0, I) for every image,
  KL = 0, the same z) and a fixed sigma = 0.3 (77 bins wide), the dequantized Gaussian's bound
  -log p(y) + D ln 256 and the discretized Gaussian's -log P(p) differ only by the density's change
  inside a bin: <= |d log p / dy| / 256 <= (1 / 0.3^2) / 256 = 0.043 nats per pixel with a random sign
  per pixel, so their means over 256 pixels and 16 images agree within 0.01 bits/dim. Leaving out the
  D ln 256 correction would be 8 bits off; and the discrete figure equals scipy's bin masses. Pixels 0 and
  255 are left out: their discrete bins extend to -inf / +inf (mass Phi(-1.7) = 0.05 there vs 0.0013
  for the density over one bin)."""
  from scipy.stats import norm
  from ganzoo import methods
  out = {}
  with jax.enable_x64(False):
    for lik in ("gaussian", "discretized_gaussian"):
      config, data = methods.get("vae").test_config()
      config.model.update(dict(likelihood=lik, learn_sigma=False, sigma=0.3))
      method = methods.build(config, data)
      state = method.init(jax.random.PRNGKey(0))
      vae = state.nets["vae"]
      params = dict(vae.params)
      params["encoder"] = jax.tree.map(jnp.zeros_like, params["encoder"])
      state = state.replace(nets={"vae": vae.replace(params=params)})
      pixels = np.random.default_rng(0).integers(1, 255, (16, *data.image_shape))   # no outer bins (below)
      image = jnp.asarray(pixels / 127.5 - 1.0, jnp.float32)
      out[lik] = float(method.nll(state, {"image": image}))
  assert abs(out["gaussian"] - out["discretized_gaussian"]) < 0.01, out
  # The discretized figure by hand: z from the evaluation key, the decoder's sigmoid mean, scipy's masses.
  eps = jax.random.normal(jax.random.split(method.eval_key)[0], (1, 16, 4), jnp.float32)[0]
  raw = method.model.apply({"params": params}, eps, method="decode", train=False)
  mean = np.asarray(jax.nn.sigmoid(raw), np.float64)
  lo = np.where(pixels == 0, -np.inf, pixels / 256)
  hi = np.where(pixels == 255, np.inf, (pixels + 1) / 256)
  mass = norm.cdf(hi, mean, 0.3) - norm.cdf(lo, mean, 0.3)
  want = -np.log(mass).sum((1, 2, 3)).mean() / (256 * math.log(2))
  np.testing.assert_allclose(out["discretized_gaussian"], want, rtol=1e-5)   # float32 log-masses of 256 pixels


def test_cq_losses_are_the_seeds_equations_1_and_2():
  """The `cq` family's D loss is -[E ln D(x) + E ln(1 - D(G(z)))] (seed 003 eq. 1, negated to minimize) and
  its quality term L_Q = -E ln(D(G(z)) / (1 - D(G(z)))) (eq. 2), from D's probabilities in numpy; the VAE
  phase's loss is L_C + w L_Q (w = loss.quality_weight)."""
  from ganzoo import methods
  from ganzoo import nets as nets_lib
  from ganzoo import step as step_lib
  with jax.enable_x64(False):
    config, data = methods.get("cq").test_config()
    config.loss.quality_weight = 0.7
    method = methods.build(config, data)
    state = method.init(jax.random.PRNGKey(0))
    names = tuple(method.nets)
    params = {n: state.nets[n].params for n in names}
    ctx = step_lib.Context(method.nets, params, {n: state.nets[n].batch_stats for n in names}, (), {}, state.step)
    ctx.batch_size = 8
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.integers(0, 256, (8, *data.image_shape)) / 127.5 - 1.0, jnp.float32)
    d_inputs, _ = method._d_prepare(ctx, {"image": image}, jax.random.PRNGKey(1))
    d_loss, _ = method._d_loss(ctx, d_inputs)
    prob = lambda x: 1.0 / (1.0 + np.exp(-np.asarray(nets_lib.forward(method.nets["d"], params["d"], {}, x,
                                                                        train=True)[0], np.float64)))
    p_real, p_fake = prob(d_inputs["real"]), prob(d_inputs["fake"])
    np.testing.assert_allclose(float(d_loss), -(np.log(p_real).mean() + np.log(1 - p_fake).mean()), rtol=1e-5)
    inputs, _ = method._vae_prepare(ctx, {"image": image}, jax.random.PRNGKey(2))
    loss, metrics = method._vae_loss(ctx, inputs)
    fake = method._images(lambda *a, **k: ctx.apply("vae", *a, **k), inputs["z"], None, train=True)
    p = prob(fake)
    np.testing.assert_allclose(float(metrics["quality_loss"]), -np.mean(np.log(p / (1 - p))), rtol=1e-4, atol=1e-6)
    want = float(metrics["vae_loss"]) + 0.7 * float(metrics["quality_loss"])
    np.testing.assert_allclose(float(loss), want, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# VAE-F (seed 003 eq. 6-8): the decoder's Gaussian on y = f(x) with log |det df/dx|.

class _AffineFlow(nn.Module):
  """y = a x + b per dimension (a > 0 fixed by `seed`; a = 1, b = 0 is the identity), log-det sum log a,
  or 0 with `drop_logdet` (the same y: the difference of two bounds is then the log-det alone)."""
  seed: int = -1
  drop_logdet: bool = False

  def _ab(self, shape):
    if self.seed < 0:
      return np.ones(shape[1:]), np.zeros(shape[1:])
    rng = np.random.default_rng(self.seed)
    return rng.uniform(0.3, 3.0, shape[1:]), rng.normal(size=shape[1:])

  def forward(self, x, train=True):
    a, b = self._ab(x.shape)
    logdet = jnp.zeros(x.shape[:1], x.dtype) + (0.0 if self.drop_logdet else float(np.log(a).sum()))
    return x * jnp.asarray(a, x.dtype)[None] + jnp.asarray(b, x.dtype)[None], logdet

  def inverse(self, y, train=True):
    a, b = self._ab(y.shape)
    return (y - jnp.asarray(b, y.dtype)[None]) / jnp.asarray(a, y.dtype)[None]


vae_models.register_flow("test_identity", lambda cfg, shape: _AffineFlow())
vae_models.register_flow("test_affine", lambda cfg, shape: _AffineFlow(seed=3))
vae_models.register_flow("test_affine_no_logdet", lambda cfg, shape: _AffineFlow(seed=3, drop_logdet=True))


def _vae_f(flow, **model):
  from ganzoo import methods
  config, data = methods.get("vae").test_config()
  config.model.update(dict(flow=flow, **model))
  return methods.build(config, data), data


def _images(data, n=16, seed=0):
  pixels = np.random.default_rng(seed).integers(0, 256, (n, *data.image_shape))
  return jnp.asarray(pixels / 127.5 - 1.0)


def test_vae_f_with_an_identity_flow_is_the_vae():
  """f = identity (log-det 0) and the VAE's sigmoid mean: VAE-F's ELBO, IWAE-5 and bits/dim on the same
  params, batch and key equal the plain VAE's. Both compute the same float64 operations on the same
  numbers (y = 1 * x + 0 is exact), so the tolerance is float64 rounding: 1e-12 relative."""
  plain, data = _vae_f("none")
  ident, _ = _vae_f("test_identity", mean_activation="sigmoid")
  state = plain.init(jax.random.PRNGKey(0))
  image = _images(data)
  for kind, k in (("elbo", 1), ("iwae", 5)):
    np.testing.assert_allclose(np.asarray(ident.bound(state, image, plain.eval_key, kind, k)),
                               np.asarray(plain.bound(state, image, plain.eval_key, kind, k)), rtol=1e-12)
  np.testing.assert_allclose(float(ident.nll(state, {"image": image})), float(plain.nll(state, {"image": image})),
                             rtol=1e-12)


def test_vae_f_bits_per_dim_shift_by_the_affine_flows_log_det():
  """y = a x + b with a_j ~ U[0.3, 3] per dimension: log |det df/dx| = sum_j log a_j (by hand, numpy), so
  VAE-F's bound minus the same model's with the log-det dropped is sum_j log a_j nats per image and its
  bits/dim lower by sum_j log a_j / (D ln 2). A wrong sign or a missing log-det fails by that amount
  (here ~0.1 bits/dim). Float64 throughout: 1e-9 absolute (bounds of ~1e3 nats)."""
  with_ld, data = _vae_f("test_affine")
  without, _ = _vae_f("test_affine_no_logdet")
  state = with_ld.init(jax.random.PRNGKey(1))
  image = _images(data, seed=1)
  a = np.random.default_rng(3).uniform(0.3, 3.0, data.image_shape)
  log_det = float(np.log(a).sum())
  assert abs(log_det) > 5.0   # a shift the test can see
  diff = with_ld.bound(state, image, with_ld.eval_key) - without.bound(state, image, with_ld.eval_key)
  np.testing.assert_allclose(np.asarray(diff), log_det, atol=1e-9)
  d = math.prod(data.image_shape)
  shift = float(with_ld.nll(state, {"image": image})) - float(without.nll(state, {"image": image}))
  np.testing.assert_allclose(shift, -log_det / (d * math.log(2.0)), atol=1e-11)


def test_realnvp_flow_under_the_vae_at_initialization():
  """config.model.flow='realnvp' builds ganzoo/models/realnvp.py's RealNVP on x = (p + u) / 256 in [0, 1]:
  at initialization (inference mode) every coupling's s and t are 0 and each output BN divides by
  sqrt(1 + eps) (running var 1, eps 1e-4) with log-det -1/2 log(1 + eps) per updated unit. One scale
  (flow_scales=1) = 4 checkerboard couplings, each updating half of the D units, so every unit is updated
  twice: y = logit(s) / (1 + eps) and logdet = sum log((1 - 2 alpha) / (s (1 - s))) - D log(1 + eps),
  s = alpha + (1 - 2 alpha) x, alpha = 0.05: the logit's log-det is in the flow's. Float64 with float32
  params: 1e-9 relative."""
  method, data = _vae_f("realnvp", flow_size="tiny", flow_scales=1)
  state = method.init(jax.random.PRNGKey(0))
  assert sorted(state.nets["vae"].params["flow"]) == [f"scale0_checker{i}" for i in range(4)]
  spec = method.nets["vae"]
  x01 = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (4, *data.image_shape)))
  y, logdet = nets_lib.forward(spec, state.nets["vae"].params, state.nets["vae"].batch_stats, x01,
                               method="features", train=False)[0]
  s = 0.05 + 0.9 * np.asarray(x01)
  eps = 1e-4
  np.testing.assert_allclose(np.asarray(y), np.log(s / (1 - s)) / (1 + eps), rtol=1e-9)
  want = np.log(0.9 / (s * (1 - s))).sum((1, 2, 3)) - math.prod(data.image_shape) * math.log(1 + eps)
  np.testing.assert_allclose(np.asarray(logdet), want, rtol=1e-9)


def test_cq_decoder_running_statistics_come_from_the_likelihood_pass_only():
  """CQ's decoder BatchNorm running averages advance on the L_C pass (posterior decodes) only: scaling L_Q's prior
  latents by 3 leaves them bit-identical after a step (before the fix they moved with L_Q's decodes and the
  eval-mode ELBO was far off the train-mode one), while the decoder's params, which L_Q trains, differ."""
  from ganzoo import methods, parallel  # pylint: disable=g-import-not-at-top
  from tests.test_families import _run  # pylint: disable=g-import-not-at-top
  config, _ = methods.get("cq").test_config()
  config.model.update(dict(arch="compare_gan", flow="none"))
  config.data.batch_size = 8
  data = methods.DataSpec((16, 16, 1), 0)
  mesh = parallel.make_mesh(jax.devices()[:1])
  base, _ = _run(config, data, mesh, 1)
  original = vae_lib.VAEMethod._vae_prepare

  def scaled_prior(self, ctx, batch, key):
    inputs, aux = original(self, ctx, batch, key)
    return {**inputs, "z": 3.0 * inputs["z"]}, aux

  vae_lib.VAEMethod._vae_prepare = scaled_prior
  try:
    scaled, _ = _run(config, data, mesh, 1)
  finally:
    vae_lib.VAEMethod._vae_prepare = original
  stats_a, stats_b = base.nets["vae"].batch_stats, scaled.nets["vae"].batch_stats
  assert jax.tree.leaves(stats_a), "the compare_gan decoder has BatchNorm"
  for a, b in zip(jax.tree.leaves(stats_a), jax.tree.leaves(stats_b)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(base.nets["vae"].params), jax.tree.leaves(scaled.nets["vae"].params)))
  assert moved > 0, "L_Q (on the scaled latents) reached the decoder's update"
