"""Real NVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803): a multi-scale affine-coupling flow.

Reference: the authors' TF code, tensorflow/models research/real_nvp (real_nvp_multiscale_dataset.py,
real_nvp_utils.py). Written from the paper and that code's structure, not copied.

The flow maps data x in [0, 1]^D (dequantized pixels, `dequantize`) to z of the same shape:

    flow = RealNVP(num_scales=2, features=64, num_blocks=8)           # the CIFAR-10 network (Sec. 4.1)
    variables = flow.init(rng, x, train=False)
    z, logdet = flow.apply(variables, x, train=False)                 # log p(x) = log N(z; 0, I) + logdet
    (z, logdet), upd = flow.apply(variables, x, train=True, mutable=['batch_stats'])
    x = flow.apply(variables, z, method=RealNVP.inverse)              # inference mode (running averages)
    y, logdet = flow.apply(variables, x, method=RealNVP.forward)      # = __call__; for VAE-F's y = f(x)

`forward(x, train) -> (y, logdet)` is the call a decoder that sits on the flow's features uses
(VAE-F / CQ-F, Lucas et al. 2018, arXiv:1901.01091): y has x's shape, logdet [N] is
log |det df/dx| per example, including the logit pre-processing.

Pieces (paper section / reference function):
- logit pre-processing (Sec. 4.1; `data_constraint` .9): y = logit(alpha + (1 - 2 alpha) x), alpha = 0.05,
  log-det sum log(1 - 2 alpha) - log s - log(1 - s) with s = alpha + (1 - 2 alpha) x.
- affine coupling (Eq. 7-9): y_b = x_b, y_(1-b) = x_(1-b) * exp(s(x_b)) + t(x_b), log-det sum s. As the
  reference (`masked_conv_aff_coupling`), s = c * tanh(raw) with a learned scalar c initialized at 0, so
  every coupling starts with unit Jacobian. The reference shifts then scales, y = (x + t) exp(s); here the
  paper's order (Eq. 9). Checkerboard masks b(h, w) = (h + w + parity) mod 2 and channel masks (the
  first or second half of the channels) alternate parity, as Fig. 3 and the reference.
- s/t network (`resnet`, `residual_block`): a 3x3 conv, residual blocks (BN, ReLU, 3x3 conv, BN, ReLU,
  3x3 conv, + input), 1x1 skip convs from every block summed, BN, ReLU, a 1x1 conv to [t, raw s]. Its input
  is the reference's: BN of the conditioning part (times 2 for the checkerboard, whose other half is 0;
  here set back to 0 there after the BN),
  concatenated with its negation (a concatenated ReLU) and, for checkerboard couplings, with the mask.
  Convolutions are weight-normalized (Salimans & Kingma 2016, arXiv:1602.07868; the reference's
  `conv_layer(weight_norm=True)`): w = g v / |v| per output channel, with g only where the reference has
  `scale=True`. Decision: the last 1x1 conv starts at g = 0 for its t outputs, so t = 0 and (with c = 0)
  s = 0: the whole flow is the identity at initialization in inference mode (Glow, arXiv:1807.03039
  Sec. 3.3, zero-initializes its last convolution). Its raw-s outputs keep g = 1: zero raw s and c = 0
  together would be a stationary point (dL/dc = sum tanh(raw) ... = 0 and dL/draw = c ... = 0), and s
  would never train. The reference draws the whole conv at random (its s starts at 0 through c = 0).
  Without weight norm the t half of the last kernel starts at 0 (a mask on the He-normal kernel).
- normalization of each coupling's output with an exact log-det (Sec. 3.7, App. E; the reference's
  `batch_norm_log_diff` 'bn_out', no learned scale or shift): on the updated units only,
  y' = (y - mu) / sqrt(var + eps), log-det -1/2 sum log(var + eps), with per-channel moments over the
  batch and the updated positions. Training mode uses the batch moments (the gradient flows through them,
  as through the reference's `tf.nn.moments`) and updates running averages (momentum 0.9: the
  reference's decay .1); inference mode and `inverse` use the running averages, as the reference's
  eval and reverse paths (`train=False`). The reference's moments include the masked-out zeros of a
  checkerboard coupling; here only the updated positions count. `norm='act'`: activation normalization
  instead (a learned per-channel log-scale and bias on the updated units, initialized at 0, no
  data-dependent initialization); `norm='none'`.
- squeeze (Sec. 3.6, Fig. 3): [N, H, W, C] -> [N, H/2, W/2, 4C], channel order (dh, dw, c).
- multi-scale (Sec. 3.6, `rec_masked_conv_coupling`): at each scale but the last, 3 checkerboard couplings,
  squeeze, 3 channel couplings, then half of the channels are factored out (they are z) and the other half
  goes to the next scale; the last scale has 4 checkerboard couplings. z is put back in x's layout (the
  factored halves concatenated and un-squeezed), a permutation, so log N(z; 0, I) is unchanged. Feature
  maps double at each scale and channel couplings use twice the scale's features, as the reference
  (`dim = base_dim * 2 ** scale_idx`, `dim=2 * dim` for `conv_ch_coupling`).

Sizes: 'cifar10' = 2 scales (the paper: "downscale only once"), 8 residual blocks, 64 feature maps
(Sec. 4.1); 'small' = 2 scales, 2 blocks, 32 features (the reference's defaults: residual_blocks 2,
base_dim 32); 'cpu' = 'small' at 16 features (the 2-core CPU runs here); 'tiny' for tests.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganzoo.models import layers

Array = jax.Array

SIZES = {
    "cifar10": dict(num_scales=2, features=64, num_blocks=8),
    "small": dict(num_scales=2, features=32, num_blocks=2),
    "cpu": dict(num_scales=2, features=16, num_blocks=2),
    "tiny": dict(num_scales=2, features=4, num_blocks=1),
}
LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# Shape and pre-processing helpers (pure functions).

def squeeze(x: Array) -> Array:
  """[N, H, W, C] -> [N, H/2, W/2, 4C]: each 2x2 block of pixels becomes 4 channels (order dh, dw, c)."""
  n, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f"squeeze needs even spatial sizes; got {x.shape}: use an image size divisible by "
                     "2 ** (num_scales - 1)")
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // 2, w // 2, 4 * c)


def unsqueeze(x: Array) -> Array:
  """The inverse of `squeeze`: [N, H, W, 4C] -> [N, 2H, 2W, C]."""
  n, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, c)


def checkerboard(h: int, w: int, parity: int, dtype: Any = jnp.float32) -> Array:
  """The mask b [1, H, W, 1] = (row + column + parity) mod 2; b = 1 marks the conditioning units."""
  b = (jnp.arange(h)[:, None] + jnp.arange(w)[None, :] + parity) % 2
  return b.astype(dtype)[None, :, :, None]


def logit_transform(x: Array, alpha: float) -> tuple[Array, Array]:
  """y = logit(alpha + (1 - 2 alpha) x) and its log-det per example, sum log(1 - 2 alpha) - log s(1 - s)."""
  s = alpha + (1.0 - 2.0 * alpha) * x
  y = jnp.log(s) - jnp.log1p(-s)
  logdet = jnp.sum(math.log(1.0 - 2.0 * alpha) - jnp.log(s) - jnp.log1p(-s), axis=tuple(range(1, x.ndim)))
  return y, logdet


def logit_inverse(y: Array, alpha: float) -> Array:
  """x = (sigmoid(y) - alpha) / (1 - 2 alpha), the inverse of `logit_transform`."""
  return (jax.nn.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)


def standard_normal_logpdf(z: Array) -> Array:
  """log N(z; 0, I) per example: -1/2 sum (z^2 + log 2 pi)."""
  return -0.5 * jnp.sum(z * z + LOG_2PI, axis=tuple(range(1, z.ndim)))


def dequantize(image: Array, rng: Array) -> Array:
  """Images in [-1, 1] made from uint8 pixels p (p / 127.5 - 1) -> (p + u) / 256 in [0, 1), u ~ U[0, 1)^D.

  p is recovered by rounding (x + 1) 127.5, exact for the step's pixel table (`ganzoo.step.PIXEL_TABLE`).
  Uniform dequantization as the paper (Sec. 4.1) and the reference ((x + U[0, 1)) / 256)."""
  pixels = jnp.round((image + 1.0) * 127.5)
  return (pixels + jax.random.uniform(rng, image.shape, image.dtype)) / 256.0


def bits_per_dim(nll_nats: Array, num_dims: int) -> Array:
  """Bits/dim of the discrete pixels from -log p(x) of x in [0, 1]^D: (nll + D ln 256) / (D ln 2).

  The rule of `ganzoo.metrics.likelihood.bits_per_dim(..., scaled_to_unit_interval=True)`, in jnp."""
  return (nll_nats + num_dims * math.log(256.0)) / (num_dims * math.log(2.0))


# ---------------------------------------------------------------------------------------------
# Layers.

def _channels(v: Array) -> Array:
  """A per-channel vector [C] as [1, 1, 1, C] (explicit rank promotion, as tests/conftest.py demands)."""
  return v.reshape(1, 1, 1, -1)


def _half_zero_init(key, shape, dtype=jnp.float32):
  """[C] with 0 for the first C // 2 entries and 1 for the rest (the t and raw-s halves of an s/t output)."""
  del key
  return (jnp.arange(shape[0]) >= shape[0] // 2).astype(dtype)


class WNConv(nn.Module):
  """A 'SAME' convolution, weight-normalized: w = g v / |v| (per output channel), g only if `use_scale`.

  `zero_scale`: g starts at 0 (the output is the bias: 0). Without weight norm: a plain conv with
  He-normal kernel (zero kernel when `zero_scale`)."""
  features: int
  kernel: int
  use_scale: bool = True
  use_bias: bool = True
  weight_norm: bool = True
  zero_scale: bool = False   # g (or the kernel) starts at 0 for the first half of the output channels

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k, cin = self.kernel, x.shape[-1]
    shape = (k, k, cin, self.features)
    if self.weight_norm:
      v = self.param("v", nn.initializers.normal(0.05), shape, jnp.float32)
      w = v * jax.lax.rsqrt(jnp.sum(v * v, axis=(0, 1, 2), keepdims=True))
      if self.use_scale:
        g = self.param("g", _half_zero_init if self.zero_scale else nn.initializers.ones_init(),
                       (self.features,), jnp.float32)
        w = w * g.reshape(1, 1, 1, -1)
    else:
      def init(key, shape, dtype=jnp.float32):
        kernel = nn.initializers.he_normal()(key, shape, dtype)
        return kernel * _half_zero_init(None, shape[-1:], dtype).reshape(1, 1, 1, -1) if self.zero_scale else kernel
      w = self.param("kernel", init, shape, jnp.float32)
    dtype = jnp.result_type(x, w)   # a float64 state computes in float64 whatever the input's dtype
    y = jax.lax.conv_general_dilated(x.astype(dtype), w.astype(dtype), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + _channels(self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32))
    return y


class ResNet(nn.Module):
  """The s/t network of a coupling (the reference's `resnet` with skip=True, `residual_block`)."""
  features: int
  out_features: int
  num_blocks: int
  weight_norm: bool = True
  bn_momentum: float = 0.9
  bn_eps: float = 1e-4
  zero_first_half: bool = True   # the last conv's g starts at 0 for the first half of its outputs (t)

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv = lambda f, k, **kw: WNConv(f, k, weight_norm=self.weight_norm, **kw)
    bn = lambda name: layers.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                       epsilon=self.bn_eps, use_scale=False, name=name)
    h = conv(self.features, 3, use_scale=False, name="h_in")(x)
    out = conv(self.features, 1, name="skip_in")(h)
    for i in range(self.num_blocks):
      r = nn.relu(bn(f"block_{i}_bn_in")(h))
      r = conv(self.features, 3, use_scale=False, use_bias=False, name=f"block_{i}_h0")(r)
      r = nn.relu(bn(f"block_{i}_bn0")(r))
      h = h + conv(self.features, 3, name=f"block_{i}_out")(r)
      out = out + conv(self.features, 1, name=f"skip_{i}")(h)
    h = nn.relu(bn("bn_pre_out")(out))
    return conv(self.out_features, 1, zero_scale=self.zero_first_half, name="out")(h)


class Coupling(nn.Module):
  """One affine coupling with its output normalization: (x, train, reverse) -> (y, logdet [N]).

  mask 'checkerboard' (b over (h, w), all channels) or 'channel' (the first half of the channels
  conditions when parity is 0, the second half when 1). Inverts exactly in inference mode; in
  training mode the batch normalization uses batch moments, so only the forward direction is defined."""
  mask: str
  parity: int
  features: int
  num_blocks: int
  norm: str = "batch"
  weight_norm: bool = True
  bn_momentum: float = 0.9
  bn_eps: float = 1e-4

  @nn.compact
  def __call__(self, x: Array, train: bool = False, reverse: bool = False) -> tuple[Array, Array]:
    if reverse and train:
      raise ValueError("Coupling: the inverse runs in inference mode (train=False)")
    n, h, w, c = x.shape
    bn_in = layers.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=self.bn_eps,
                             use_scale=False, name="bn_in")
    if self.mask == "checkerboard":
      b = checkerboard(h, w, self.parity, x.dtype)
      m = 1.0 - b                                   # updated units
      # The reference doubles it (half of its units are 0). Decision: the masked units are set back to 0
      # after the BN (the reference leaves them at -mean / std there): where an earlier coupling's output
      # normalization made that mean exactly 0 they would sit on the ReLU's kink, and rounding would pick
      # its gradient (the 8 == 1 device test saw 10% differences in the BN's bias gradient).
      cond = bn_in(x * b) * (2.0 * b)
      inp = jnp.concatenate([cond, -cond], -1)
      inp = jnp.concatenate([nn.relu(inp), jnp.broadcast_to(b, (n, h, w, 1))], -1)
      fixed, update = None, x
      out_c = c
    elif self.mask == "channel":
      if c % 2:
        raise ValueError(f"a channel coupling needs an even channel count; got {c}")
      first, second = x[..., : c // 2], x[..., c // 2:]
      fixed, update = (first, second) if self.parity == 0 else (second, first)
      cond = bn_in(fixed)
      inp = nn.relu(jnp.concatenate([cond, -cond], -1))
      m = jnp.ones((1, 1, 1, 1), x.dtype)
      out_c = c // 2
    else:
      raise ValueError(f"unknown coupling mask {self.mask!r}; use 'checkerboard' or 'channel'")
    st = ResNet(self.features, 2 * out_c, self.num_blocks, self.weight_norm, self.bn_momentum, self.bn_eps,
                name="resnet")(inp, train)
    t, raw = st[..., :out_c], st[..., out_c:]
    rescale = self.param("rescale", nn.initializers.zeros_init(), (), jnp.float32)
    s = (rescale * jnp.tanh(raw)) * m
    t = t * m
    axes = (1, 2, 3)
    if not reverse:
      y = update * jnp.exp(s) + t
      logdet = jnp.sum(s, axis=axes)
      y, ld = self._normalize(y, m, train, reverse=False)
      logdet = logdet + ld
    else:
      y, ld = self._normalize(update, m, train, reverse=True)
      y = (y - t) * jnp.exp(-s)
      logdet = ld - jnp.sum(s, axis=axes)
    if self.mask == "channel":
      y = jnp.concatenate([fixed, y] if self.parity == 0 else [y, fixed], -1)
    return y, logdet

  def _normalize(self, y: Array, m: Array, train: bool, reverse: bool) -> tuple[Array, Array]:
    """The output normalization of the updated units (mask m, broadcast over y) and its log-det per
    example (the inverse's, -forward's, when `reverse`)."""
    c = y.shape[-1]
    count = lambda: (jnp.sum(jnp.broadcast_to(m, (1, *y.shape[1:])), axis=(0, 1, 2)) * y.shape[0])
    if self.norm == "none":
      return y, jnp.zeros(y.shape[:1], y.dtype)
    if self.norm == "act":
      log_scale = _channels(self.param("act_log_scale", nn.initializers.zeros_init(), (c,), jnp.float32))
      bias = _channels(self.param("act_bias", nn.initializers.zeros_init(), (c,), jnp.float32))
      ld = jnp.sum(jnp.broadcast_to(m * log_scale, (1, *y.shape[1:])))
      if reverse:
        return m * ((y - bias) * jnp.exp(-log_scale)) + (1.0 - m) * y, jnp.full(y.shape[:1], -ld, y.dtype)
      return m * (y * jnp.exp(log_scale) + bias) + (1.0 - m) * y, jnp.full(y.shape[:1], ld, y.dtype)
    if self.norm != "batch":
      raise ValueError(f"unknown flow normalization {self.norm!r}; use 'batch', 'act' or 'none'")
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    if train:
      k = count()
      mean = jnp.sum(m * y, axis=(0, 1, 2)) / k
      var = jnp.sum(m * (y - _channels(mean)) ** 2, axis=(0, 1, 2)) / k
      if not self.is_initializing():
        mom = self.bn_momentum
        ra_mean.value = mom * ra_mean.value + (1.0 - mom) * jax.lax.stop_gradient(mean)
        ra_var.value = mom * ra_var.value + (1.0 - mom) * jax.lax.stop_gradient(var)
    else:
      mean, var = ra_mean.value.astype(y.dtype), ra_var.value.astype(y.dtype)
    log_var, mean = _channels(jnp.log(var + self.bn_eps)), _channels(mean)
    ld = -0.5 * jnp.sum(jnp.broadcast_to(m * log_var, (1, *y.shape[1:])))
    if reverse:
      return m * (y * jnp.exp(0.5 * log_var) + mean) + (1.0 - m) * y, jnp.full(y.shape[:1], -ld, y.dtype)
    return m * ((y - mean) * jnp.exp(-0.5 * log_var)) + (1.0 - m) * y, jnp.full(y.shape[:1], ld, y.dtype)


class RealNVP(nn.Module):
  """The multi-scale Real NVP flow (see the module docstring): x in [0, 1]^[H, W, C] <-> z, same shape.

  logit_alpha: the pre-processing's alpha (0.05, the paper's); None applies the flow to x as given
  (then x may be any real tensor)."""
  num_scales: int = 2
  features: int = 64
  num_blocks: int = 8
  norm: str = "batch"
  weight_norm: bool = True
  logit_alpha: float | None = 0.05
  bn_momentum: float = 0.9
  bn_eps: float = 1e-4

  def setup(self):
    kw = dict(num_blocks=self.num_blocks, norm=self.norm, weight_norm=self.weight_norm,
              bn_momentum=self.bn_momentum, bn_eps=self.bn_eps)
    checker, channel = [], []
    for i in range(self.num_scales):
      last = i == self.num_scales - 1
      dim = self.features * 2 ** i
      checker.append([Coupling("checkerboard", j % 2, dim, name=f"scale{i}_checker{j}", **kw)
                      for j in range(4 if last else 3)])
      channel.append([] if last else [Coupling("channel", j % 2, 2 * dim, name=f"scale{i}_channel{j}", **kw)
                                      for j in range(3)])
    self.checker, self.channel = checker, channel

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, Array]:
    """(z, logdet [N]) with log p(x) = log N(z; 0, I) + logdet."""
    return self.forward(x, train)

  def forward(self, x: Array, train: bool = False) -> tuple[Array, Array]:
    """y = f(x) with x's shape and log |det df/dx| [N] (logit pre-processing included)."""
    if x.ndim != 4:
      raise ValueError(f"RealNVP takes NHWC images; got shape {x.shape}")
    logdet = jnp.zeros(x.shape[:1], x.dtype)
    h = x
    if self.logit_alpha is not None:
      h, logdet = logit_transform(x, self.logit_alpha)
    factored = []
    for i in range(self.num_scales):
      for layer in self.checker[i]:
        h, ld = layer(h, train)
        logdet = logdet + ld
      if i < self.num_scales - 1:
        h = squeeze(h)
        for layer in self.channel[i]:
          h, ld = layer(h, train)
          logdet = logdet + ld
        c = h.shape[-1] // 2
        factored.append(h[..., c:])
        h = h[..., :c]
    for part in reversed(factored):
      h = unsqueeze(jnp.concatenate([h, part], -1))
    return h, logdet

  def inverse(self, z: Array, train: bool = False) -> Array:
    """x = f^-1(z) in inference mode (the normalizations' running averages); `train` must be False."""
    del train
    h, factored = z, []
    for _ in range(self.num_scales - 1):
      h = squeeze(h)
      c = h.shape[-1] // 2
      factored.append(h[..., c:])
      h = h[..., :c]
    for i in reversed(range(self.num_scales)):
      if i < self.num_scales - 1:
        h = jnp.concatenate([h, factored[i]], -1)
        for layer in reversed(self.channel[i]):
          h, _ = layer(h, False, reverse=True)
        h = unsqueeze(h)
      for layer in reversed(self.checker[i]):
        h, _ = layer(h, False, reverse=True)
    if self.logit_alpha is not None:
      h = logit_inverse(h, self.logit_alpha)
    return h

  def log_prob(self, x: Array, train: bool = False) -> Array:
    """log p(x) per example [N] (nats), for x in [0, 1]^D."""
    z, logdet = self.forward(x, train)
    return standard_normal_logpdf(z) + logdet


def build(model_cfg: Any) -> RealNVP:
  """The flow of `config.model`: size ('cifar10' | 'small' | 'tiny') and optional overrides
  num_scales, features, num_blocks, norm, weight_norm, logit_alpha."""
  size = model_cfg.get("size", "cifar10")
  if size not in SIZES:
    raise ValueError(f"unknown Real NVP size {size!r}; set config.model.size to one of {sorted(SIZES)}")
  kw = dict(SIZES[size])
  for key in ("num_scales", "features", "num_blocks"):
    if model_cfg.get(key, None) is not None:
      kw[key] = int(model_cfg[key])
  alpha = model_cfg.get("logit_alpha", 0.05)
  return RealNVP(norm=model_cfg.get("norm", "batch"), weight_norm=bool(model_cfg.get("weight_norm", True)),
                 logit_alpha=None if alpha is None else float(alpha), **kw)
