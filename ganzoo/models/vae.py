"""VAE encoders, decoders, decoder likelihoods and the CQ discriminator.

Variational autoencoder: Kingma & Welling 2014 (arXiv:1312.6114). CQ (the VAE with an adversarial
quality term) and VAE-F / CQ-F (the decoder's Gaussian on the features of an invertible flow):
Lucas, Shmelkov, Alahari, Schmid & Verbeek, "Coverage and quality driven training of generative
image models" (arXiv:1901.01091; seed 003). The seed's slides state no encoder, decoder or
discriminator architecture, so none is offered under its name; the architectures here are:

  mlp          the Flax example (google/flax examples/vae/models.py, train.py): encoder x (784) ->
               Dense(500) -> ReLU -> Dense(20) mean and Dense(20) log-variance; decoder z (20) ->
               Dense(500) -> ReLU -> Dense(784) logits. `hidden` and `z_dim` are config fields.
  compare_gan  the VAE of google/compare_gan (compare_gan/src/gans/VAE.py, the VAE row of Lucic et
               al. 2018, arXiv:1711.10337): encoder conv 64 4x4/2 -> lReLU(0.2) -> conv 128 4x4/2
               [-> BN] -> lReLU -> fc 1024 [-> BN] -> lReLU -> fc 2 z_dim (mean, std = 1e-6 +
               softplus); BN in the encoder only with compare_gan's `discriminator_batchnorm`
               (False for its VAE: params.py VAEHyperParams); decoder fc 1024 -> BN -> ReLU -> fc
               128 (H/4)(W/4) -> BN -> ReLU -> deconv 64 4x4/2 -> BN -> ReLU -> deconv C 4x4/2 ->
               sigmoid. Weights N(0, 0.02^2) (its ops.py), biases 0. Needs H, W divisible by 4.
  resnet       the "Residual" rows of the seed's second table (the seed states no layer sizes):
               encoder = SNGAN's residual D blocks (ganzoo/models/sngan.py DBlock: optimized 64 /2,
               128 /2) -> ReLU -> fc 2 z_dim (mean, std = 1e-6 + softplus, as compare_gan's);
               decoder = fc 128 (H/4)(W/4) -> SNGAN's G blocks (GBlock: 128 x2, 64 x2) -> BN ->
               ReLU -> conv 3x3 C k. compare_gan's widths (64, 128) so that only the blocks change.
  tiny         the mlp at hidden 16, z_dim 4 (tests).

Decoder likelihoods (`likelihood`), each on pixels p in {0, ..., 255} of the data:
  bernoulli             binary data: x = 1[p >= 128] (deterministic threshold binarization), the
                        decoder's logits; the Flax example's model (binarized MNIST). Its bits/dim
                        is that of the binarized images (1 bit per pixel at most), not comparable
                        with 8-bit figures.
  gaussian              the seed's factorized Gaussian (eq. 5) on dequantized data y = (p + u) / 256,
                        u ~ U[0, 1)^D, with its mean from a sigmoid (y lies in [0, 1]) and its
                        standard deviation either fixed (`sigma`) or learned per pixel as a function
                        of z (`learn_sigma`, sigma(z) of eq. 5: min_sigma + softplus). A density on
                        [0, 1]^D: -log P(p) <= E_u[-log p(y)] + D ln 256 (Theis et al. 2016,
                        arXiv:1511.01844; ganzoo.metrics.likelihood.bits_per_dim).
  discretized_gaussian  the same Gaussian integrated over each pixel's bin [p/256, (p+1)/256) (the
                        two outer bins extended to -inf and +inf): a distribution over the 256
                        values, so its ELBO bounds -log P(p) with no dequantization noise. Offered
                        because Fashion-MNIST is ~50% exact-zero background pixels: a continuous
                        Gaussian with learned sigma pays for dequantization noise there that a
                        discrete model does not; the gaussian's bound is the one VAE-F shares (the
                        flow's density is continuous), so the two VAE rows of the seed's table use it.

VAE-F hook (seed eq. 6-8): `VAE.flow` is any Flax module with `forward(x, train) -> (y, logdet)`
(and `inverse(y, train) -> x` for samples), x the dequantized images in [0, 1] (NHWC), y of the same
shape, logdet [N] = log |det df/dx| including any pre-processing the flow applies to x. With a flow,
the decoder's Gaussian (config.model.mean_activation 'auto': identity, y is unbounded; sigmoid without
a flow) is placed on y = f(x) and
log p(x|z) = log N(f(x); mu(z), sigma(z)) + logdet. ganzoo/methods/vae.py builds the flow from
`FLOWS[config.model.flow]`; 'realnvp' (registered below) is ganzoo/models/realnvp.py's RealNVP:

  flow_size 'seed'  the seed's CQ-F flow: one scale (4 checkerboard couplings, no squeeze). The slides
                    give no flow size; one scale is read off the second table, whose last row adds
                    "+2 scales" to CQ-F (3.48 bits/dim against 3.74-3.90 for the other CQ-F rows), and
                    the couplings are the 'small' Real NVP's (32 features, 2 residual blocks).
  flow_size 'cpu' / 'small' / 'cifar10' / 'tiny'  ganzoo.models.realnvp.SIZES ('cifar10' the published
                    Real NVP: 2 scales, 8 blocks, 64 features); `flow_scales`, `flow_features`,
                    `flow_blocks` override (flow_scales=2 is the "+2 scales" row); `flow_norm`
                    ('batch' | 'act' | 'none'), `flow_logit_alpha` (0.05; the logit's log-det is in
                    the flow's logdet).

Discriminator (CQ, CQ-F; seed eq. 1-2): D looks at images x in [-1, 1], not at the flow's features:
eq. 1 has D(x) of training images x, and eq. 2 has D(G(z)) with G(z) = f^-1(mu(z)) an image
(eq. 7). `d_arch` 'compare_gan' (compare_gan's GAN D), 'resnet' (SNGAN's residual D blocks, the
residual rows) or 'tiny'; `d_width` multiplies D's widths (2 = the "large Discr." row: the slides give
no size, so twice the channels and fc units).
"""

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from ganzoo.models import layers
from ganzoo.models import sngan

Array = jax.Array
LIKELIHOODS = ("bernoulli", "gaussian", "discretized_gaussian")
ARCHITECTURES = ("mlp", "compare_gan", "resnet", "tiny")
LOG_2PI = math.log(2.0 * math.pi)

# Flows for VAE-F / CQ-F: name -> builder(model_cfg, image_shape) -> a Flax module with
# `forward(x, train) -> (y, logdet)` and `inverse(y, train) -> x`. The Real NVP family adds 'realnvp'.
FLOWS: dict[str, Callable[..., nn.Module]] = {}


def register_flow(name: str, builder: Callable[..., nn.Module]) -> None:
  """Makes `config.model.flow = name` build `builder(model_cfg, image_shape)` as the VAE's flow."""
  FLOWS[name] = builder


def params_per_dim(likelihood: str, learn_sigma: bool) -> int:
  """Decoder outputs per data dimension: logits (bernoulli), mean [and sigma] (Gaussians)."""
  if likelihood not in LIKELIHOODS:
    raise ValueError(f"unknown config.model.likelihood {likelihood!r}; choose from {LIKELIHOODS}")
  return 2 if likelihood != "bernoulli" and learn_sigma else 1


# ---------------------------------------------------------------------------------------------
# Networks. Encoders return (mean, log_std) of q(z|x) [N, z_dim]; decoders return raw outputs
# [N, H, W, C * params_per_dim] that `decoder_distribution` turns into the likelihood's parameters.

class MLPEncoder(nn.Module):
  """x [N, H, W, C] in [-1, 1] -> (mean, log_std): Dense(hidden) -> ReLU -> two Dense(z_dim) heads
  (the Flax example's fc1, fc2_mean, fc2_logvar; log_std = logvar / 2)."""
  hidden: int = 500
  z_dim: int = 20

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> tuple[Array, Array]:
    h = nn.relu(nn.Dense(self.hidden, name="fc1")(x.reshape(x.shape[0], -1)))
    mean = nn.Dense(self.z_dim, name="fc2_mean")(h)
    log_var = nn.Dense(self.z_dim, name="fc2_logvar")(h)
    return mean, 0.5 * log_var


class MLPDecoder(nn.Module):
  """z -> Dense(hidden) -> ReLU -> Dense(H W C k) (the Flax example's decoder, k outputs per pixel)."""
  image_shape: tuple[int, int, int]
  hidden: int = 500
  outputs_per_dim: int = 1

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    h, w, c = self.image_shape
    out = nn.Dense(h * w * c * self.outputs_per_dim, name="fc2")(nn.relu(nn.Dense(self.hidden, name="fc1")(z)))
    return out.reshape(z.shape[0], h, w, c * self.outputs_per_dim)


_DOWN = dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=layers.dcgan_normal)


class ConvEncoder(nn.Module):
  """compare_gan's VAE encoder (compare_gan/src/gans/VAE.py `encoder`); `outputs` = 2 z_dim there.
  With outputs = 1 and batchnorm=True it is compare_gan's GAN discriminator body + head (the CQ D)."""
  z_dim: int = 64
  batchnorm: bool = False
  outputs: int = 0   # 0: 2 z_dim (mean, std)
  width: int = 1     # channel and fc multiplier (2: the seed's "large Discr.")

  @nn.compact
  def __call__(self, x: Array, train: bool = True):
    w = self.width
    h = nn.leaky_relu(layers.Conv(64 * w, name="en_conv1", **_DOWN)(x), 0.2)
    h = layers.Conv(128 * w, name="en_conv2", **_DOWN)(h)
    if self.batchnorm:
      h = layers.batch_norm(train, name="en_bn2")(h)
    h = nn.leaky_relu(h, 0.2).reshape(x.shape[0], -1)
    h = nn.Dense(1024 * w, kernel_init=layers.dcgan_normal, name="en_fc3")(h)
    if self.batchnorm:
      h = layers.batch_norm(train, name="en_bn3")(h)
    h = nn.leaky_relu(h, 0.2)
    n_out = self.outputs or 2 * self.z_dim
    out = nn.Dense(n_out, kernel_init=layers.dcgan_normal, name="en_fc4")(h)
    if self.outputs:
      return out[:, 0] if self.outputs == 1 else out
    std = 1e-6 + nn.softplus(out[:, self.z_dim:])   # compare_gan's stddev = 1e-6 + softplus
    return out[:, :self.z_dim], jnp.log(std)


class ConvDecoder(nn.Module):
  """compare_gan's VAE decoder (compare_gan/src/gans/VAE.py `decoder`), k outputs per channel."""
  image_shape: tuple[int, int, int]
  outputs_per_dim: int = 1

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    h_img, w_img, c = self.image_shape
    dense = lambda n, name: nn.Dense(n, kernel_init=layers.dcgan_normal, name=name)
    h = nn.relu(layers.batch_norm(train, name="de_bn1")(dense(1024, "de_fc1")(z)))
    h = nn.relu(layers.batch_norm(train, name="de_bn2")(dense(128 * (h_img // 4) * (w_img // 4), "de_fc2")(h)))
    h = h.reshape(z.shape[0], h_img // 4, w_img // 4, 128)
    h = layers.ConvTranspose2x(64, kernel_init=layers.dcgan_normal, name="de_dc3")(h)
    h = nn.relu(layers.batch_norm(train, name="de_bn3")(h))
    return layers.ConvTranspose2x(c * self.outputs_per_dim, kernel_init=layers.dcgan_normal, name="de_dc4")(h)


class ResEncoder(nn.Module):
  """The residual encoder ('resnet', above): SNGAN's D blocks; `outputs` = 1 makes it the residual D."""
  z_dim: int = 64
  outputs: int = 0   # 0: 2 z_dim (mean, std)
  width: int = 1

  @nn.compact
  def __call__(self, x: Array, train: bool = True):
    h = sngan.DBlock(64 * self.width, optimized=True, name="block1")(x)
    h = nn.relu(sngan.DBlock(128 * self.width, name="block2")(h)).reshape(x.shape[0], -1)
    n_out = self.outputs or 2 * self.z_dim
    out = nn.Dense(n_out, kernel_init=layers.dcgan_normal, name="fc")(h)
    if self.outputs:
      return out[:, 0] if self.outputs == 1 else out
    return out[:, :self.z_dim], jnp.log(1e-6 + nn.softplus(out[:, self.z_dim:]))


class ResDecoder(nn.Module):
  """The residual decoder ('resnet', above): fc -> SNGAN's G blocks x2 (up) -> BN -> ReLU -> conv 3x3."""
  image_shape: tuple[int, int, int]
  outputs_per_dim: int = 1

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> Array:
    h_img, w_img, c = self.image_shape
    h = nn.Dense(128 * (h_img // 4) * (w_img // 4), kernel_init=layers.dcgan_normal, name="fc")(z)
    h = h.reshape(z.shape[0], h_img // 4, w_img // 4, 128)
    h = sngan.GBlock(128, name="block1")(h, train=train)
    h = sngan.GBlock(64, name="block2")(h, train=train)
    h = nn.relu(layers.batch_norm(train, name="bn_out")(h))
    return layers.Conv(c * self.outputs_per_dim, (3, 3), padding=((1, 1), (1, 1)), kernel_init=layers.dcgan_normal,
                       name="conv_out")(h)


class MLPDiscriminator(nn.Module):
  """x -> Dense(hidden) -> lReLU(0.2) -> Dense(1): the tiny CQ discriminator (tests)."""
  hidden: int = 16

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> Array:
    h = nn.leaky_relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)), 0.2)
    return nn.Dense(1)(h)[:, 0]


class VAE(nn.Module):
  """Encoder, decoder and an optional flow as one network (one optimizer, as in both references).

  Methods (call with `module.apply(variables, ..., method=...)`): `encode(x) -> (mean, log_std)`,
  `decode(z) -> raw decoder outputs`, `features(x01) -> (y, logdet)` (the flow, identity without one)
  and `to_image(y) -> x01` (its inverse).
  """
  encoder: nn.Module
  decoder: nn.Module
  flow: nn.Module | None = None

  def __call__(self, x: Array, z: Array, train: bool = True):
    """Initializes every part (x [N, H, W, C] in [-1, 1], z [N, z_dim])."""
    out = self.encode(x, train), self.decode(z, train)
    if self.flow is not None:
      y, _ = self.features((x + 1.0) / 2.0, train)
      self.to_image(y, train)
    return out

  def encode(self, x: Array, train: bool = True) -> tuple[Array, Array]:
    return self.encoder(x, train=train)

  def decode(self, z: Array, train: bool = True) -> Array:
    return self.decoder(z, train=train)

  def features(self, x01: Array, train: bool = True) -> tuple[Array, Array]:
    if self.flow is None:
      return x01, jnp.zeros((x01.shape[0],), x01.dtype)
    return self.flow.forward(x01, train=train)

  def to_image(self, y: Array, train: bool = True) -> Array:
    if self.flow is None:
      return y
    return self.flow.inverse(y, train=train)


def build(model_cfg: Any, image_shape: tuple[int, ...]) -> VAE:
  """The VAE of `config.model` (arch, z_dim, hidden, likelihood, learn_sigma, encoder_batchnorm, flow)."""
  if len(image_shape) != 3:
    raise ValueError(f"the vae family needs images (H, W, C); got shape {tuple(image_shape)}")
  shape = tuple(int(d) for d in image_shape)
  arch = model_cfg.get("arch", "mlp")
  if arch not in ARCHITECTURES:
    raise ValueError(f"unknown config.model.arch {arch!r}; choose from {ARCHITECTURES}")
  k = params_per_dim(model_cfg.get("likelihood", "bernoulli"), bool(model_cfg.get("learn_sigma", False)))
  z_dim = int(model_cfg.z_dim)
  if arch in ("compare_gan", "resnet"):
    if shape[0] % 4 or shape[1] % 4:
      raise ValueError(f"the {arch} VAE needs H and W divisible by 4; got {shape}: set config.data.image_size")
    if arch == "resnet":
      encoder, decoder = ResEncoder(z_dim=z_dim), ResDecoder(shape, outputs_per_dim=k)
    else:
      encoder = ConvEncoder(z_dim=z_dim, batchnorm=bool(model_cfg.get("encoder_batchnorm", False)))
      decoder = ConvDecoder(shape, outputs_per_dim=k)
  else:
    hidden = int(model_cfg.get("hidden", None) or (16 if arch == "tiny" else 500))
    encoder, decoder = MLPEncoder(hidden, z_dim), MLPDecoder(shape, hidden, k)
  flow_name = model_cfg.get("flow", "none") or "none"
  flow = None
  if flow_name != "none":
    if flow_name not in FLOWS:
      raise ValueError(f"unknown config.model.flow {flow_name!r}; available: {['none', *sorted(FLOWS)]} "
                       "(VAE-F needs a flow module registered with ganzoo.models.vae.register_flow)")
    flow = FLOWS[flow_name](model_cfg, shape)
  return VAE(encoder, decoder, flow)


def build_discriminator(model_cfg: Any, image_shape: tuple[int, ...]) -> nn.Module:
  """The CQ discriminator (`config.model.d_arch`): 'compare_gan' = compare_gan's GAN discriminator
  (the encoder body with BN and one logit; compare_gan/src/gans/GAN.py), 'resnet' = the residual
  encoder's body with one logit, 'tiny' = MLPDiscriminator; `d_width` multiplies the widths of the
  first two. The seed states no discriminator architecture; it sees images (module docstring)."""
  d_arch = model_cfg.get("d_arch", "compare_gan")
  width = int(model_cfg.get("d_width", 1))
  if width < 1:
    raise ValueError(f"config.model.d_width={width} must be >= 1")
  if d_arch == "compare_gan":
    return ConvEncoder(batchnorm=True, outputs=1, width=width)
  if d_arch == "resnet":
    return ResEncoder(outputs=1, width=width)
  if d_arch == "tiny":
    return MLPDiscriminator(int(model_cfg.get("d_hidden", 16)) * width)
  raise ValueError(f"unknown config.model.d_arch {d_arch!r}; choose from ['compare_gan', 'resnet', 'tiny']")


# ---------------------------------------------------------------------------------------------
# Likelihoods: pure functions, per example (summed over every dimension but the batch axis).

def _sum(x: Array) -> Array:
  return x.reshape(x.shape[0], -1).sum(-1)


def log_normal(x: Array, mean: Array, log_std: Array) -> Array:
  """sum_j log N(x_j; mean_j, exp(log_std_j)^2) over all axes but the first -> [N]."""
  u = (x - mean) * jnp.exp(-log_std)
  return _sum(-0.5 * LOG_2PI - log_std - 0.5 * u * u)


def log_standard_normal(z: Array) -> Array:
  """sum_j log N(z_j; 0, 1) -> [N]."""
  return _sum(-0.5 * LOG_2PI - 0.5 * z * z)


def bernoulli_log_prob(x: Array, logits: Array) -> Array:
  """sum_j [x_j log s(l_j) + (1 - x_j) log(1 - s(l_j))] for x in {0, 1} -> [N]."""
  return _sum(x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits))


def _log_diff_ndtr(hi: Array, lo: Array) -> Array:
  """log(Phi(hi) - Phi(lo)) for hi > lo, stable in both tails (reflect when lo > 0)."""
  flip = lo > 0
  a, b = jnp.where(flip, -lo, hi), jnp.where(flip, -hi, lo)   # log(Phi(a) - Phi(b)), b < a <= 0 side
  la, lb = log_ndtr(a), log_ndtr(b)
  return la + jnp.log1p(-jnp.exp(jnp.minimum(lb - la, -1e-30)))


def discretized_gaussian_log_prob(pixels: Array, mean: Array, log_std: Array) -> Array:
  """sum_j log P(p_j) for p in {0..255} under N(mean, std^2) on [0, 1] integrated over the bin
  [p/256, (p+1)/256), the first bin from -inf and the last to +inf (so the 256 masses sum to 1)."""
  inv = jnp.exp(-log_std)
  lo = (pixels / 256.0 - mean) * inv
  hi = ((pixels + 1.0) / 256.0 - mean) * inv
  log_mass = _log_diff_ndtr(hi, lo)
  log_mass = jnp.where(pixels <= 0, log_ndtr(hi), log_mass)
  log_mass = jnp.where(pixels >= 255, log_ndtr(-lo), log_mass)
  return _sum(log_mass)


def decoder_distribution(raw: Array, likelihood: str, learn_sigma: bool, sigma: float, min_sigma: float,
                         mean_activation: str = "sigmoid") -> dict[str, Array]:
  """The likelihood's parameters from raw decoder outputs [N, H, W, C k]: {'logits'} or {'mean', 'log_std'}."""
  if likelihood == "bernoulli":
    return {"logits": raw}
  if learn_sigma:
    c = raw.shape[-1] // 2
    mean_raw, sigma_raw = raw[..., :c], raw[..., c:]
    log_std = jnp.log(min_sigma + jax.nn.softplus(sigma_raw))
  else:
    mean_raw = raw
    log_std = jnp.full_like(raw, math.log(sigma))
  mean = jax.nn.sigmoid(mean_raw) if mean_activation == "sigmoid" else mean_raw
  return {"mean": mean, "log_std": log_std}


# ---------------------------------------------------------------------------------------------
# The Real NVP flow for VAE-F / CQ-F.

FLOW_SIZES = ("seed", "cpu", "small", "cifar10", "tiny")


def realnvp_flow(model_cfg: Any, image_shape: tuple[int, int, int]) -> nn.Module:
  """ganzoo/models/realnvp.py's RealNVP from the `flow_*` fields of `config.model` (module docstring).

  Its forward is on x in [0, 1] (the logit pre-processing first, its log-det included), which is what
  `VAE.features` passes; its params and batch statistics live in network 'vae' beside the encoder's
  and decoder's, so L_C and (CQ-F) L_Q both train them, as the seed's decoder (the flow is part of
  it: "Use NVP in a VAE decoder", eq. 6-8; eq. 2's G_theta(z) = f^-1(mu(z)) depends on the flow)."""
  from ganzoo.models import realnvp  # pylint: disable=g-import-not-at-top
  size = model_cfg.get("flow_size", "seed")
  if size not in FLOW_SIZES:
    raise ValueError(f"unknown config.model.flow_size {size!r}; choose from {list(FLOW_SIZES)}")
  kw = dict(realnvp.SIZES["small"], num_scales=1) if size == "seed" else dict(realnvp.SIZES[size])
  for key in ("scales", "features", "blocks"):
    value = model_cfg.get(f"flow_{key}", None)
    if value is not None:
      kw["num_" + key if key != "features" else key] = int(value)
  h, w, _ = image_shape
  if h % 2 ** (kw["num_scales"] - 1) or w % 2 ** (kw["num_scales"] - 1):
    raise ValueError(f"a {kw['num_scales']}-scale flow needs H, W divisible by {2 ** (kw['num_scales'] - 1)}; "
                     f"got {image_shape}: set config.data.image_size or config.model.flow_scales")
  alpha = model_cfg.get("flow_logit_alpha", 0.05)
  return realnvp.RealNVP(norm=model_cfg.get("flow_norm", "batch"), logit_alpha=None if alpha is None else float(alpha),
                         **kw)


register_flow("realnvp", realnvp_flow)
