"""The `vae` family: the variational autoencoder (Kingma & Welling 2014, arXiv:1312.6114) and CQ, the
VAE with the adversarial quality term of Lucas, Shmelkov, Alahari, Schmid & Verbeek ("Coverage and
quality driven training of generative image models", arXiv:1901.01091; seed 003). `cq` is the same
class registered under a second name with the adversarial term required.

Model: p(z) = N(0, I), p(x|z) the decoder's likelihood (ganzoo/models/vae.py: Bernoulli, the seed's
factorized Gaussian of eq. 5 on dequantized data, or the discretized Gaussian), q(z|x) = N(mu(x),
diag sigma(x)^2) with the reparameterization z = mu + sigma * eps, eps ~ N(0, I) (arXiv:1312.6114
Sec. 2.4). The bounds, as pure functions below:
  ELBO(x)   = E_q[log p(x|z)] - KL(q(z|x) || p(z))                          (arXiv:1312.6114 eq. 10)
              with the KL of two diagonal Gaussians in closed form and E_q by K samples;
  IWAE_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x)           (Burda et al. 2016,
              arXiv:1509.00519 eq. 8): ELBO <= IWAE_K <= IWAE_{K+1} <= log p(x).

Training (`config.loss`): one phase `vae` training encoder + decoder (one network 'vae', one Adam,
as the Flax example and compare_gan) on L_C = -mean_n ELBO(x_n), one posterior sample per image and
the KL in closed form (both references). With `loss.quality_weight` w > 0 (CQ, the seed's
L_C + w L_Q) a discriminator 'd' joins, and each step first runs phase `d`:
  L_D = -E_x[ln D(x)] - E_z[ln(1 - D(G(z)))]          (the seed's eq. 1, D(.) = sigmoid(logit)),
then the `vae` phase adds w L_Q with L_Q = -E_z[ln D(G(z)) / (1 - D(G(z)))] = -E_z[logit(G(z))]
(the seed's eq. 2, Sonderby et al. 2017), G(z) the decoder's mean image of z ~ N(0, I) (the
flow's inverse of the mean features under VAE-F). L_C is in nats per image (the seed's eq. 3), L_Q
in nats per generated image; the relative weight is the config value, untuned here (the seed's
slides give none).

Bits per dimension (`nll`): -bound / (D ln 2) on the batch's 8-bit pixels p (recovered exactly
from batch['image'] = p / 127.5 - 1), with posterior samples and dequantization noise from a fixed
key (`loss.eval_bound` 'elbo' or 'iwae', `loss.eval_samples` K), so the figure is deterministic:
  gaussian: density on y = (p + u) / 256 in [0, 1]^D, so -log P(p) <= -log p(y) + D ln 256 in
    expectation over u (ganzoo.metrics.likelihood.bits_per_dim's rule; arXiv:1511.01844);
  discretized_gaussian: a distribution over the 256 values: the bound is on -log P(p) directly;
  bernoulli: the bits/dim of the binarized images 1[p >= 128] (a different data set: <= 1 bit).

VAE-F / CQ-F (seed eq. 6-8): `config.model.flow = '<name>'` puts the decoder's Gaussian on y = f(x)
of a flow registered in `ganzoo.models.vae.FLOWS` (a module with `forward(x, train) -> (y, logdet)`
on dequantized x in [0, 1], and `inverse(y, train) -> x` for samples); log p(x|z) = log N(f(x);
mu(z), sigma(z)) + logdet. The flow's params are part of network 'vae' (trained by L_C and L_Q, as
the seed's decoder; D looks at images, see ganzoo/models/vae.py), so nothing else changes: ELBO, IWAE, nll and the phases are written in terms of
`features` and `to_image`, which are the identity without a flow. It needs likelihood 'gaussian'.

GAN row of the seed's tables (`loss.coverage_weight = 0` with quality_weight > 0): L_Q alone trains the
decoder (and flow), the encoder is unused. Decision: the GAN of the ablation is this, not the `gan`
family with a matching G, so that G (the decoder's mean network), D, the D loss (eq. 1), the G loss
(eq. 2), the optimizers and the data pipeline are those of CQ exactly and only the L_C term differs.
Its `nll` is still the ELBO through the untrained encoder and sigma head: a valid but loose bound, not
a likelihood of the GAN (the seed's GAN BPD is starred for the same reason).

Sampling (`model.sample`): 'mean' (default; the Flax example's `generate` and compare_gan's
`fake_images` show the decoder mean) or 'sample' (a draw from p(x|z)), of z ~ N(0, I), in [-1, 1].
"""

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.metrics.likelihood import UINT8_DEQUANTIZATION_NATS
from ganzoo.models import vae as vae_models
from ganzoo.state import TrainState

D_KEY, VAE_KEY = 0, 1
NLL_KEY = 0x6E11   # folded into PRNGKey(config.seed) for the fixed evaluation noise
BOUNDS = ("elbo", "iwae")


# ---------------------------------------------------------------------------------------------
# The bounds (pure functions; per example).

def kl_diag_gaussians(mean_q: jax.Array, log_std_q: jax.Array, mean_p: jax.Array, log_std_p: jax.Array) -> jax.Array:
  """KL(N(mean_q, diag s_q^2) || N(mean_p, diag s_p^2)) summed over the last axis:
  sum_j [log s_p - log s_q + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2]."""
  var_ratio = jnp.exp(2.0 * (log_std_q - log_std_p))
  mahalanobis = jnp.square((mean_q - mean_p) * jnp.exp(-log_std_p))
  return jnp.sum(log_std_p - log_std_q + 0.5 * (var_ratio + mahalanobis) - 0.5, axis=-1)


def kl_standard_normal(mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """KL(N(mean, diag exp(log_std)^2) || N(0, I)) = 1/2 sum_j [mean^2 + s^2 - 2 log s - 1]
  (arXiv:1312.6114 Appendix B)."""
  return kl_diag_gaussians(mean, log_std, jnp.zeros_like(mean), jnp.zeros_like(log_std))


def reparameterize(mean: jax.Array, log_std: jax.Array, eps: jax.Array) -> jax.Array:
  """z = mean + exp(log_std) * eps (eps [..., N, z_dim] broadcasts over leading sample axes)."""
  return mean + jnp.exp(log_std) * eps


def elbo(log_lik_fn: Callable[[jax.Array], jax.Array], mean: jax.Array, log_std: jax.Array,
         eps: jax.Array) -> jax.Array:
  """ELBO estimate [N]: mean over the K samples z_k = mean + s eps_k (eps [K, N, z_dim]) of
  log p(x|z_k) = `log_lik_fn(z_k)` [N], minus KL(q || N(0, I)) in closed form."""
  log_lik = jax.lax.map(lambda e: log_lik_fn(reparameterize(mean, log_std, e)), eps)
  return log_lik.mean(0) - kl_standard_normal(mean, log_std)


def importance_log_weights(log_lik_fn: Callable[[jax.Array], jax.Array], mean: jax.Array, log_std: jax.Array,
                           eps: jax.Array) -> jax.Array:
  """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) [K, N] for z_k = mean + s eps_k."""
  def one(e):
    z = reparameterize(mean, log_std, e)
    log_q = jnp.sum(-0.5 * vae_models.LOG_2PI - log_std - 0.5 * e * e, axis=-1)
    log_p = jnp.sum(-0.5 * vae_models.LOG_2PI - 0.5 * z * z, axis=-1)
    return log_lik_fn(z) + log_p - log_q
  return jax.lax.map(one, eps)


def iwae_bound(log_lik_fn: Callable[[jax.Array], jax.Array], mean: jax.Array, log_std: jax.Array,
               eps: jax.Array) -> jax.Array:
  """IWAE_K [N] = logsumexp_k log w_k - log K over eps [K, N, z_dim] (arXiv:1509.00519 eq. 8)."""
  log_w = importance_log_weights(log_lik_fn, mean, log_std, eps)
  return jax.nn.logsumexp(log_w, axis=0) - math.log(eps.shape[0])


def pixels_of(image: jax.Array) -> jax.Array:
  """uint8 pixel values p (as floats) from images p / 127.5 - 1 (exact: the rounding undoes float error)."""
  return jnp.round((image + 1.0) * 127.5)


# ---------------------------------------------------------------------------------------------

def add_config_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The vae family's config sections on a base config (configs/vae.py starts from this)."""
  c.method = "vae"
  c.model = ml_collections.ConfigDict(dict(
      name="vae", size="paper", conditional=False,
      arch="mlp", z_dim=20, hidden=500, likelihood="bernoulli", learn_sigma=False, sigma=0.1, min_sigma=1e-3,
      encoder_batchnorm=False, flow="none", sample="mean", d_arch="compare_gan", d_hidden=16, d_width=1,
      mean_activation="auto", flow_size="seed", flow_norm="batch", flow_logit_alpha=0.05,
      flow_scales=ml_collections.FieldReference(None, field_type=int),
      flow_features=ml_collections.FieldReference(None, field_type=int),
      flow_blocks=ml_collections.FieldReference(None, field_type=int)))
  c.loss = ml_collections.ConfigDict(dict(name="vae", coverage_weight=1.0, quality_weight=0.0, eval_bound="elbo",
                                          eval_samples=1))
  c.nets = ml_collections.ConfigDict({"vae": nets_lib.net_config(name="adam", lr=1e-3, b1=0.9, b2=0.999)})
  return c


@methods.register("vae")
class VAEMethod(methods.Method):
  """VAE (network 'vae' = encoder + decoder [+ flow]) and, with loss.quality_weight > 0, CQ (+ 'd')."""

  requires_quality = False

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    # The VAE has no D; CQ's D is trained as the seed's eq. 1 on clean images: a one-line error, not a no-op.
    augment.refuse_instance_noise(config, self.name)
    m, loss = config.model, config.loss
    if bool(m.get("conditional", False)):
      raise ValueError(f"the {self.name!r} family is unconditional: set config.model.conditional=False")
    if loss.get("name", "vae") != "vae":
      raise ValueError(f"the {self.name!r} family has its own objective: set config.loss.name='vae' "
                       f"(got {loss.name!r})")
    self.image_shape = tuple(int(d) for d in data.image_shape)
    self.num_dims = math.prod(self.image_shape)
    self.z_dim = int(m.z_dim)
    self.likelihood = m.get("likelihood", "bernoulli")
    self.learn_sigma = bool(m.get("learn_sigma", False))
    self.sigma, self.min_sigma = float(m.get("sigma", 0.1)), float(m.get("min_sigma", 1e-3))
    self.sample_mode = m.get("sample", "mean")
    if self.sample_mode not in ("mean", "sample"):
      raise ValueError(f"config.model.sample={self.sample_mode!r}: use 'mean' or 'sample'")
    self.has_flow = (m.get("flow", "none") or "none") != "none"
    if self.has_flow and self.likelihood != "gaussian":
      raise ValueError("a flow (VAE-F) puts the decoder's Gaussian on its features: "
                       "set config.model.likelihood='gaussian'")
    self.mean_activation = m.get("mean_activation", "auto")
    if self.mean_activation == "auto":   # y of a flow is unbounded; images without one lie in [0, 1]
      self.mean_activation = "identity" if self.has_flow else "sigmoid"
    if self.mean_activation not in ("sigmoid", "identity"):
      raise ValueError(f"config.model.mean_activation={self.mean_activation!r}: use 'auto', 'sigmoid' or 'identity'")
    self.coverage_weight = float(loss.get("coverage_weight", 1.0))
    self.quality_weight = float(loss.get("quality_weight", 0.0))
    if self.coverage_weight < 0 or self.coverage_weight + self.quality_weight <= 0:
      raise ValueError(f"config.loss.coverage_weight={self.coverage_weight} must be >= 0 and not both it and "
                       "quality_weight 0 (coverage_weight 0 with quality_weight > 0 is the GAN row)")
    if self.quality_weight < 0:
      raise ValueError(f"config.loss.quality_weight={self.quality_weight} must be >= 0 (0 = VAE, > 0 = CQ)")
    if self.requires_quality and self.quality_weight <= 0:
      raise ValueError("the 'cq' family is the VAE with its adversarial term: set config.loss.quality_weight > 0")
    self.eval_bound = loss.get("eval_bound", "elbo")
    self.eval_samples = int(loss.get("eval_samples", 1))
    if self.eval_bound not in BOUNDS or self.eval_samples < 1:
      raise ValueError(f"config.loss.eval_bound must be one of {BOUNDS} and eval_samples >= 1; "
                       f"got {self.eval_bound!r}, {self.eval_samples}")
    self.adversarial = self.quality_weight > 0
    wanted = {"vae", "d"} if self.adversarial else {"vae"}
    if set(config.nets.keys()) != wanted:
      raise ValueError(f"config.nets has {sorted(config.nets.keys())}; the {self.name!r} family with "
                       f"quality_weight={self.quality_weight} trains {sorted(wanted)}: start from configs/vae.py")
    self.model = vae_models.build(m, self.image_shape)
    n = int(config.train.num_steps)
    self.nets = {"vae": nets_lib.build_spec(self.model, config.nets.vae, n)}
    phases = [step_lib.Phase("vae", ("vae",), self._vae_loss, self._vae_prepare, stream="real", key=VAE_KEY)]
    if self.adversarial:
      self.discriminator = vae_models.build_discriminator(m, self.image_shape)
      self.nets["d"] = nets_lib.build_spec(self.discriminator, config.nets.d, n)
      phases.insert(0, step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream="real", key=D_KEY))
    self.phases = tuple(phases)
    self.eval_key = jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), NLL_KEY)

  # -- state -----------------------------------------------------------------------------------
  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_vae, rng_d, rng_sn = jax.random.split(rng, 4)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    v = self.model.init(rng_vae, x, jnp.zeros((2, self.z_dim), jnp.float32), train=False)
    rng_sn_v, rng_sn_d = jax.random.split(rng_sn)
    nets = {"vae": nets_lib.init_net(self.nets["vae"], v, rng_sn_v)}
    if self.adversarial:
      nets["d"] = nets_lib.init_net(self.nets["d"], self.discriminator.init(rng_d, x, train=False), rng_sn_d)
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  # -- the model's pieces, given an `apply(*inputs, method=..., train=...)` of network 'vae' -----
  def _data(self, apply: Callable, image: jax.Array, noise: jax.Array | None, train: bool):
    """(encoder input in [0, 1], likelihood target, log-det [N], nats added for bits/dim)."""
    pixels = pixels_of(image)
    if self.likelihood == "bernoulli":
      binary = (pixels >= 128).astype(image.dtype)
      return binary, binary, jnp.zeros((image.shape[0],), image.dtype), 0.0
    if self.likelihood == "discretized_gaussian":
      return pixels / 255.0, pixels, jnp.zeros((image.shape[0],), image.dtype), 0.0
    dequantized = (pixels + noise) / 256.0
    y, logdet = apply(dequantized, method="features", train=train)
    return dequantized, y, logdet, self.num_dims * UINT8_DEQUANTIZATION_NATS

  def _distribution(self, raw: jax.Array) -> dict[str, jax.Array]:
    return vae_models.decoder_distribution(raw, self.likelihood, self.learn_sigma, self.sigma, self.min_sigma,
                                           self.mean_activation)

  def _log_lik(self, dist: dict[str, jax.Array], target: jax.Array) -> jax.Array:
    if self.likelihood == "bernoulli":
      return vae_models.bernoulli_log_prob(target, dist["logits"])
    if self.likelihood == "discretized_gaussian":
      return vae_models.discretized_gaussian_log_prob(target, dist["mean"], dist["log_std"])
    return vae_models.log_normal(target, dist["mean"], dist["log_std"])

  def _images(self, apply: Callable, z: jax.Array, noise_key: jax.Array | None, train: bool) -> jax.Array:
    """Images in [-1, 1] of latents z: the decoder's mean (or, with noise_key, a draw) mapped to pixels."""
    dist = self._distribution(apply(z, method="decode", train=train))
    if self.likelihood == "bernoulli":
      x01 = jax.nn.sigmoid(dist["logits"])
      if noise_key is not None:
        x01 = jax.random.bernoulli(noise_key, x01).astype(x01.dtype)
    else:
      y = dist["mean"]
      if noise_key is not None:
        y = y + jnp.exp(dist["log_std"]) * jax.random.normal(noise_key, y.shape, y.dtype)
      x01 = apply(y, method="to_image", train=train) if self.has_flow else y
      x01 = jnp.clip(x01, 0.0, 1.0)
    return 2.0 * x01 - 1.0

  def _noise(self, key: jax.Array, image: jax.Array) -> jax.Array | None:
    return jax.random.uniform(key, image.shape, image.dtype) if self.likelihood == "gaussian" else None

  # -- phases ----------------------------------------------------------------------------------
  def _vae_prepare(self, ctx: step_lib.Context, data, key):
    image = data["image"]
    k_eps, k_u, k_z = jax.random.split(key, 3)
    inputs = {"image": image, "eps": ctx.shard(jax.random.normal(k_eps, (image.shape[0], self.z_dim), image.dtype))}
    if self.likelihood == "gaussian":
      inputs["noise"] = ctx.shard(self._noise(k_u, image))
    if self.adversarial:
      inputs["z"] = ctx.shard(jax.random.normal(k_z, (image.shape[0], self.z_dim), image.dtype))
    return inputs, {}

  def _vae_loss(self, ctx: step_lib.Context, inp):
    apply = lambda *a, **k: ctx.apply("vae", *a, **k)
    loss, metrics = 0.0, {}
    if self.coverage_weight > 0:   # 0: the GAN row (L_Q alone), the encoder and L_C not computed
      enc_in, target, logdet, offset = self._data(apply, inp["image"], inp.get("noise"), train=True)
      mean, log_std = apply(2.0 * enc_in - 1.0, method="encode", train=True)
      z = reparameterize(mean, log_std, inp["eps"])
      rec = self._log_lik(self._distribution(apply(z, method="decode", train=True)), target) + logdet
      kl = kl_standard_normal(mean, log_std)
      l_c = jnp.mean(kl - rec)
      metrics = {"vae_loss": l_c, "kl": kl.mean(), "rec_nll": -rec.mean(),
                 "bpd": (l_c + offset) / (self.num_dims * math.log(2.0))}
      if self.has_flow:   # (without a flow the zeros carry the input's dtype, not the float64 of the 8 == 1 test)
        metrics["logdet"] = logdet.mean()
      loss = self.coverage_weight * l_c
    if self.adversarial:
      # The decoder's BatchNorm running averages come from the L_C pass alone (decodes of posterior
      # samples): they are what evaluation uses for the ELBO / bits/dim, and prior-sample decodes mixed
      # into them put the eval-mode decoder off its training statistics (CQ's test ELBO was 22.8 bits/dim
      # with them mixed in, 5.8 with batch statistics, Fashion-MNIST, 500 steps). L_Q still decodes with
      # batch statistics, as a GAN's G does. The GAN row (no L_C pass) keeps L_Q's statistics: it has no others.
      q_apply = lambda *a, **k: ctx.apply("vae", *a, update_stats=self.coverage_weight <= 0, **k)
      l_q = -jnp.mean(ctx.apply("d", self._images(q_apply, inp["z"], None, train=True)))
      loss = loss + self.quality_weight * l_q
      metrics["quality_loss"] = l_q
    metrics["loss"] = loss
    return loss, metrics

  def _d_prepare(self, ctx: step_lib.Context, data, key):
    image = data["image"]
    z = ctx.shard(jax.random.normal(key, (image.shape[0], self.z_dim), image.dtype))
    apply = lambda *a, **k: ctx.apply("vae", *a, **k)
    fake = jax.lax.stop_gradient(self._images(apply, z, None, train=True))
    return {"real": image, "fake": fake}, {}

  def _d_loss(self, ctx: step_lib.Context, inp):
    real, fake = ctx.apply("d", inp["real"]), ctx.apply("d", inp["fake"])
    loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))   # the seed's eq. 1, negated
    return loss, {"d_loss": loss, "d_real": jnp.mean(real), "d_fake": jnp.mean(fake)}

  # -- inference -------------------------------------------------------------------------------
  def _inference_apply(self, state: TrainState) -> Callable:
    spec = self.nets["vae"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["vae"], use_ema=True)
    return lambda *a, **k: nets_lib.forward(spec, params, batch_stats, *a, **k)[0]

  def bound(self, state: TrainState, image: jax.Array, key: jax.Array, kind: str = "elbo",
            num_samples: int = 1) -> jax.Array:
    """The `kind` bound on log P(pixels) per image [N], in nats (inference mode; K = num_samples)."""
    apply = self._inference_apply(state)
    k_eps, k_u = jax.random.split(key)
    enc_in, target, logdet, offset = self._data(apply, image, self._noise(k_u, image), train=False)
    mean, log_std = apply(2.0 * enc_in - 1.0, method="encode", train=False)
    log_lik = lambda z: self._log_lik(self._distribution(apply(z, method="decode", train=False)), target) + logdet
    eps = jax.random.normal(k_eps, (num_samples, *mean.shape), mean.dtype)
    value = (elbo if kind == "elbo" else iwae_bound)(log_lik, mean, log_std, eps)
    return value - offset

  def nll(self, state: TrainState, batch) -> jax.Array:
    """Mean bits/dim of the batch (loss.eval_bound with loss.eval_samples samples, fixed key)."""
    value = self.bound(state, batch["image"], self.eval_key, self.eval_bound, self.eval_samples)
    return jnp.mean(-value) / (self.num_dims * math.log(2.0))

  def sample(self, state, rng, n, condition=None):
    del condition
    k_z, k_x = jax.random.split(rng)
    z = jax.random.normal(k_z, (n, self.z_dim), jnp.float32)
    return self._images(self._inference_apply(state), z, k_x if self.sample_mode == "sample" else None, train=False)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = add_config_fields(config_lib.get_base_config())   # configs/vae.py:tiny, built here
    config_lib.tiny(c)
    c.method = cls.name
    c.data.batch_size = 16
    c.model.update(dict(arch="tiny", z_dim=4, hidden=16, likelihood="gaussian", learn_sigma=True, d_arch="tiny"))
    if cls.requires_quality:
      # The cq row is CQ-F (the tiny Real NVP under the decoder): the family tests then cover the flow's
      # params and batch statistics in network 'vae' and L_Q through the flow's inverse; CQ without a
      # flow runs the same code with `features` the identity (the vae row).
      c.loss.quality_weight = 1.0
      c.model.update(dict(flow="realnvp", flow_size="tiny", flow_scales=1))
      c.nets.d = nets_lib.net_config(name="adam", lr=1e-3, b1=0.5, b2=0.999)
    return c, methods.DataSpec((16, 16, 1), 0)


@methods.register("cq")
class CQMethod(VAEMethod):
  """CQ (arXiv:1901.01091): the `vae` family with loss.quality_weight > 0 required (a second name so that
  the parametrized family tests run the adversarial path too)."""
  requires_quality = True
