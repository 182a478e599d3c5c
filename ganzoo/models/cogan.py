"""CoGAN's coupled networks for 28x28 digits (Liu & Tuzel 2016, arXiv:1606.07536, Table 1).

The layer list is the authors' Caffe network for the digit <-> edge task (mingyuliutw/CoGAN
cogan/scripts/run_mnist.edge.cogan.sh: --g_neurons 1024,512,256,128,1 --g_kernels 4,3,3,3,6
--g_strides 0,2,2,2,1 --g_pads 0,1,1,1,1 --d_neurons 20,50,500 --d_kernels 5,5,0, built by
cogan/tools/make_mnist.edge.cogan_net.py and gan_lib.py), which is the paper's Table 1:

  G (z: 100-d, U(-1, 1))                                              shared?
    1  FC 100 -> 4x4x1024 (the "FCONV K4 on a 1x1 input"), BN, bias, PReLU   yes
    2  FCONV 3x3 stride 2 pad 1 -> 7x7x512, BN, bias, PReLU                  yes
    3  FCONV 3x3 stride 2 pad 1 -> 13x13x256, BN, bias, PReLU                yes
    4  FCONV 3x3 stride 2 pad 1 -> 25x25x128, BN, bias, PReLU                yes
    5  FCONV 6x6 stride 1 pad 1 -> 28x28x1, sigmoid                          no (one per domain)
  D
    1  CONV 5x5 (20), max-pool 2                                              no (one per domain)
    2  CONV 5x5 (50), max-pool 2                                              yes
    3  FC 500, PReLU, dropout 0.5                                             yes
    4  FC 1, sigmoid                                                          yes

Sharing is structural: each network is one module whose params are {'shared': ..., 'head_a': ...,
'head_b': ...}; the shared layers exist once and run on both domains, so their gradient is the sum
of the two domains' gradients. With `domains=('a',)` the same module is one plain GAN network
(shared layers + one head), which the tests use to check the coupling against two separate GANs.

Choices, each from the Caffe reference unless said:
- BN is Caffe's BatchNorm (no scale) followed by a learned per-channel Bias layer: use_scale=False,
  use_bias=True. The reference's convolutions before BN carry biases that BN cancels (zero
  gradient); they are left out. Running statistics with the zoo's momentum 0.9 (Caffe accumulates
  with 0.999 and a bias correction; 0.9 needs no correction and suits short runs).
- PReLU is Caffe's: one slope per channel, initialized to 0.25 (the PyTorch port uses one slope
  for the whole layer).
- D's conv layers have no nonlinearity before pooling (the reference's layer list has none).
- D's output is FC 1 + sigmoid as in the paper's table; Caffe's reference uses FC 2 + softmax,
  which is the same classifier (sigmoid of the logit difference) with 501 more parameters.
- Dropout 0.5 after D's FC 500 (Caffe's `dropout_layer`; the PyTorch port has none): `d_dropout`.
- Weights MSRA (Caffe's "msra" filler: N(0, 2 / fan_in), fan_in = count / shape[0] of the Caffe
  blob: in * k * k for conv and FC, out * k * k for deconvolution), biases 0.
- Output: the paper's sigmoid maps to [0, 1]; the zoo's images live in [-1, 1], so G outputs
  2 sigmoid(a) - 1, the same function under y -> 2y - 1, and D sees 2y - 1 (a fixed affine change
  of its first layer's input).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo.models import layers

Array = jax.Array

DOMAINS = ("a", "b")
SIZES = {
    # The paper's / reference's widths.
    "paper": dict(g_widths=(1024, 512, 256, 128), d_widths=(20, 50, 500)),
    # CPU-sized: G widths / 8 (configs/cogan.py:cpu); D as published.
    "cpu": dict(g_widths=(128, 64, 32, 16), d_widths=(20, 50, 500)),
    "tiny": dict(g_widths=(8, 8, 8, 4), d_widths=(4, 4, 8)),
}

# Caffe's MSRAFiller: N(0, 2 / fan_in).
msra = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# A Caffe Deconvolution blob is (C_in, C_out, k, k), so its fan_in is C_out * k * k; the flax kernel
# is (k, k, C_in, C_out): fan "in" is the last axis.
msra_deconv = nn.initializers.variance_scaling(2.0, "fan_in", "normal", in_axis=-1, out_axis=-2)


class PReLU(nn.Module):
  """Caffe's PReLU (He et al. 2015, arXiv:1502.01852): max(0, x) + a_c min(0, x), a_c per channel, a = 0.25."""
  init: float = 0.25

  @nn.compact
  def __call__(self, x: Array) -> Array:
    a = self.param("slope", nn.initializers.constant(self.init), (x.shape[-1],), jnp.float32)
    return jnp.maximum(x, 0.0) + a.reshape((1,) * (x.ndim - 1) + (-1,)) * jnp.minimum(x, 0.0)


def _phase_taps(k: int, stride: int, padding: int) -> tuple[np.ndarray, np.ndarray, int, int]:
  """Per axis, for output phase r = o mod s and window tap a: the kernel tap t that the transposed
  convolution y[o] = sum_t x[(o + t - P) / s] w[t] (P = k - 1 - p, integer quotients only; the
  definition of `lax.conv_transpose` without kernel flip) uses, or -1. Returns (taps [s, K'],
  valid [s, K'], offset of tap 0, K')."""
  big_p = k - 1 - padding
  deltas = [(r + t - big_p) // stride for r in range(stride) for t in range(k) if (r + t - big_p) % stride == 0]
  lo, hi = min(deltas), max(deltas)
  taps = np.full((stride, hi - lo + 1), -1, np.int32)
  for r in range(stride):
    for a in range(hi - lo + 1):
      t = stride * (a + lo) + big_p - r
      if 0 <= t < k:
        taps[r, a] = t
  return taps, taps >= 0, lo, hi - lo + 1


def conv_transpose_phases(x: Array, w: Array, stride: int, padding: int) -> Array:
  """`lax.conv_transpose(x, w, (s, s), ((P, P), (P, P)))` with P = k - 1 - p (PyTorch's
  ConvTranspose2d(k, s, p) up to the kernel's orientation), computed without an input dilation.

  Output phase (r, c) (rows o = s m + r, columns s n + c) is a stride-1 convolution of x with the
  taps of w that reach it; all s^2 phases are one convolution with s^2 * C_out channels, followed by
  a depth-to-space and a crop to (i - 1) s - 2p + k. Stride-1 convolutions keep XLA:CPU on its fast
  path (its lhs-dilated convolutions and their gradients are ~15x slower here), with the same
  values up to the order of the sums.
  """
  k = w.shape[0]
  n, size, _, cin = x.shape
  cout = w.shape[-1]
  out = (size - 1) * stride - 2 * padding + k
  taps, valid, lo, kk = _phase_taps(k, stride, padding)
  m = -(-out // stride)
  hi_pad = (m - 1) + (lo + kk - 1) - (size - 1)
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (-lo, hi_pad, 0), (-lo, hi_pad, 0), (0, 0, 0)))
  # kernel [a, b, cin, r, c, cout] = w[taps[r, a], taps[c, b]] where both taps exist, else 0.
  t = np.maximum(taps, 0)
  mask = (valid[:, :, None, None] & valid[None, None, :, :]).transpose(1, 3, 0, 2)   # [a, b, r, c]
  big = w[t.T[:, None, :, None], t.T[None, :, None, :]]                               # [a, b, r, c, cin, cout]
  big = big * jnp.asarray(mask, w.dtype)[..., None, None]
  big = big.transpose(0, 1, 4, 2, 3, 5).reshape(kk, kk, cin, stride * stride * cout)
  y = jax.lax.conv_general_dilated(x, big, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  y = y.reshape(n, m, m, stride, stride, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, m * stride, m * stride, cout)
  return y[:, :out, :out]


class Deconv(nn.Module):
  """Caffe's Deconvolution (PyTorch ConvTranspose2d(k, stride, padding)): output (i - 1) s - 2p + k.

  A transposed convolution is the convolution of the stride-dilated input padded by k - 1 - p
  (`lax.conv_transpose` with that explicit padding); `conv_transpose_phases` computes it.
  """
  features: int
  kernel: int
  stride: int
  padding: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel
    w = self.param("kernel", msra_deconv, (k, k, x.shape[-1], self.features), jnp.float32)
    y = conv_transpose_phases(x, w, self.stride, self.padding)
    if self.use_bias:
      b = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
      y = y + b.reshape(1, 1, 1, -1)
    return y


def _bn(train: bool, name: str) -> layers.BatchNorm:
  # Caffe BatchNorm (no affine) + Bias layer: a BN with a learned shift and no scale.
  return layers.batch_norm(train, name=name, use_scale=False)


class _GShared(nn.Module):
  widths: tuple[int, ...]

  @nn.compact
  def __call__(self, z: Array, train: bool) -> Array:
    w0 = self.widths[0]
    h = nn.Dense(4 * 4 * w0, use_bias=False, kernel_init=msra, name="fc0")(z).reshape(z.shape[0], 4, 4, w0)
    h = PReLU(name="prelu0")(_bn(train, "bn0")(h))
    for i, w in enumerate(self.widths[1:], start=1):
      h = Deconv(w, 3, 2, 1, use_bias=False, name=f"dconv{i}")(h)
      h = PReLU(name=f"prelu{i}")(_bn(train, f"bn{i}")(h))
    return h


class _DeconvParams(nn.Module):
  """The kernel [k, k, C_in, C_out] and bias [C_out] of one `Deconv`, for heads computed together."""
  features: int
  kernel: int
  cin: int

  @nn.compact
  def __call__(self) -> tuple[Array, Array]:
    k = self.kernel
    return (self.param("kernel", msra_deconv, (k, k, self.cin, self.features), jnp.float32),
            self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32))


class CoupledGenerator(nn.Module):
  """z [N, z_dim] -> (G1(z), G2(z)), each [N, 28, 28, C] in [-1, 1]; one image per domain in `domains`.

  The domains' output layers read the same features, so they run as one convolution whose output
  channels are the heads' (each head's kernel and bias are its own params).
  """
  widths: tuple[int, ...] = SIZES["paper"]["g_widths"]
  channels: int = 1
  domains: tuple[str, ...] = DOMAINS

  @nn.compact
  def __call__(self, z: Array, train: bool = True) -> tuple[Array, ...]:
    h = _GShared(self.widths, name="shared")(z, train)
    heads = [_DeconvParams(self.channels, 6, h.shape[-1], name=f"head_{d}")() for d in self.domains]
    w = jnp.concatenate([k for k, _ in heads], axis=-1)
    b = jnp.concatenate([b for _, b in heads])
    y = 2.0 * jax.nn.sigmoid(conv_transpose_phases(h, w, 1, 1) + b.reshape(1, 1, 1, -1)) - 1.0
    return tuple(jnp.split(y, len(self.domains), axis=-1))


def _max_pool2(x: Array) -> Array:
  """2x2 max pooling, stride 2 (even sizes), as a reshape and max (no reduce-window on XLA:CPU)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class _DShared(nn.Module):
  widths: tuple[int, ...]
  dropout: float

  @nn.compact
  def __call__(self, h: Array, train: bool) -> Array:
    h = _max_pool2(nn.Conv(self.widths[1], (5, 5), padding="VALID", kernel_init=msra, name="conv1")(h))
    h = h.reshape(h.shape[0], -1)
    h = PReLU(name="prelu2")(nn.Dense(self.widths[2], kernel_init=msra, name="fc2")(h))
    h = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)(h)
    return nn.Dense(1, kernel_init=msra, name="fc3")(h)[:, 0]


class CoupledDiscriminator(nn.Module):
  """(x_1, x_2) -> (logits_1 [N], logits_2 [N]); one input per domain in `domains`.

  Each domain's first layer runs on its own images; the shared layers run once on the
  concatenation of both domains' features (as the reference does), so dropout draws one mask over
  the 2N rows.
  """
  widths: tuple[int, ...] = SIZES["paper"]["d_widths"]
  dropout: float = 0.5
  domains: tuple[str, ...] = DOMAINS

  @nn.compact
  def __call__(self, *xs: Array, train: bool = True) -> tuple[Array, ...]:
    if len(xs) != len(self.domains):
      raise ValueError(f"CoupledDiscriminator takes one image batch per domain {self.domains}; got {len(xs)}")
    hs = [_max_pool2(nn.Conv(self.widths[0], (5, 5), padding="VALID", kernel_init=msra, name=f"head_{d}")(x))
          for d, x in zip(self.domains, xs)]
    out = _DShared(self.widths, self.dropout, name="shared")(jnp.concatenate(hs, axis=0), train)
    sizes = [x.shape[0] for x in xs]
    return tuple(jnp.split(out, [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]))


def build(model_cfg: ml_collections.ConfigDict, image_shape: Sequence[int]) -> tuple[nn.Module, nn.Module]:
  """(CoupledGenerator, CoupledDiscriminator) for 28x28 images from `config.model` (size, g_widths,
  d_widths, d_dropout)."""
  shape = tuple(int(s) for s in image_shape)
  if len(shape) != 3 or shape[:2] != (28, 28):
    raise ValueError(f"the CoGAN digit networks take 28x28 images (H, W, C); got {shape}: use a 28x28 data set "
                     "(mnist, fashion_mnist) or set config.data.image_size=28")
  size = model_cfg.get("size", "paper")
  layers.check_size("cogan", size, tuple(SIZES))
  g_widths = tuple(model_cfg.get("g_widths", None) or SIZES[size]["g_widths"])
  d_widths = tuple(model_cfg.get("d_widths", None) or SIZES[size]["d_widths"])
  if len(g_widths) != 4 or len(d_widths) != 3:
    raise ValueError(f"config.model.g_widths needs 4 widths and d_widths 3 (the paper's layers); got {g_widths}, "
                     f"{d_widths}")
  dropout = float(model_cfg.get("d_dropout", 0.5))
  return (CoupledGenerator(widths=g_widths, channels=shape[2]),
          CoupledDiscriminator(widths=d_widths, dropout=dropout))

