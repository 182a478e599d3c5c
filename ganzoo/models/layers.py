"""Layers shared by the ganzoo architectures.

- `ConvTranspose2x`: the DCGAN/SNGAN up-sampling layer (PyTorch `ConvTranspose2d(k=4, s=2, p=1)`,
  flax `nn.ConvTranspose(kernel_size=(4, 4), strides=(2, 2), padding='SAME')`), computed as a
  stride-1 sub-pixel convolution (fast on XLA:CPU, identical parameters).
- `ConditionalBatchNorm`: class-conditional batch normalization (de Vries et al. 2017,
  arXiv:1707.00683; Dumoulin et al. 2017, arXiv:1610.07629), as in the SNGAN-projection generator
  (Miyato & Koyama 2018, arXiv:1802.05637).
- `batch_norm`, `dcgan_normal`, `glorot_uniform`: the normalization and initializers that the zoo
  uses everywhere.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[..., Array]

# Batch-norm settings every ganzoo model uses (PyTorch-like: running = 0.9 * running + 0.1 * batch).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

dcgan_normal: Initializer = nn.initializers.normal(stddev=0.02)
"""N(0, 0.02^2) weight init of DCGAN (Radford et al. 2016, arXiv:1511.06434) and SNGAN's CNN."""


def dcgan_bn_scale(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """N(1, 0.02^2) init for batch-norm scales, as in the DCGAN reference code (arXiv:1511.06434)."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def glorot_uniform(gain: float = 1.0) -> Initializer:
  """Chainer's `GlorotUniform(scale=gain)`: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).

  Fans count the receptive field (kh * kw * C), as chainer and flax both do. The SNGAN ResNets
  (Miyato et al. 2018, arXiv:1802.05957) use gain sqrt(2) in residual 3x3 convs and gain 1
  elsewhere.
  """
  return nn.initializers.variance_scaling(gain * gain, 'fan_avg', 'uniform')


def batch_norm(train: bool, name: str | None = None, **kwargs: Any) -> nn.BatchNorm:
  """The zoo's BatchNorm: batch statistics in training, running averages otherwise.

  y = gamma * (x - mean) / sqrt(var + 1e-5) + beta, statistics over all axes but the last; running
  statistics in the 'batch_stats' collection with momentum 0.9.
  """
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                      name=name, **kwargs)


def _subpixel_kernel(kernel: Array) -> Array:
  """Rearranges a (4, 4, Cin, Cout) transposed-conv kernel into a (2, 2, Cin, 4 * Cout) conv kernel.

  Per spatial axis, output phase a (output index 2m + a) sums over taps t in {0, 1} of the input
  padded by one, at padded index m + a + t, with the transposed-conv tap k = 2t + a (derivation in
  `ConvTranspose2x`). The output channels are ordered (a_h, a_w, Cout).
  """
  kh, kw, cin, cout = kernel.shape
  if (kh, kw) != (4, 4):
    raise ValueError(f"ConvTranspose2x needs a 4x4 kernel; got {kh}x{kw}")
  k = kernel.reshape(2, 2, 2, 2, cin, cout)  # (t_h, a_h, t_w, a_w, Cin, Cout)
  k = k.transpose(0, 2, 4, 1, 3, 5)  # (t_h, t_w, Cin, a_h, a_w, Cout)
  return k.reshape(2, 2, cin, 4 * cout)


def conv_transpose_2x(x: Array, kernel: Array, precision: Any = None) -> Array:
  """y = conv_transpose(x, kernel, strides=2, padding='SAME') for a (4, 4, Cin, Cout) kernel.

  x: [N, H, W, Cin] -> y: [N, 2H, 2W, Cout]. Computed as one stride-1 2x2 VALID convolution of x
  padded by one pixel, producing the four output phases as 4 * Cout channels, then depth-to-space.
  """
  return _subpixel_conv(x, _subpixel_kernel(kernel), precision)


# Per spatial axis, conv3x3(pad 1) of a nearest-2x up-sampled input at output 2m + a only sees input
# pixels m - 1 + a + t (t = 0, 1): phase 0 taps (w0, w1 + w2), phase 1 taps (w0 + w1, w2).
# _UPCONV_TAPS[a, t, k] = 1 where 3x3 tap k lands on 2-tap t of phase a.
_UPCONV_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def upsample_conv3x3(x: Array, kernel: Array, precision: Any = None) -> Array:
  """y = conv3x3(upsample_nearest_2x(x), kernel, padding 1) for a (3, 3, Cin, Cout) kernel.

  x: [N, H, W, Cin] -> y: [N, 2H, 2W, Cout]. Each of the four output phases of the up-sampled
  convolution is a 2x2 convolution of x with summed taps (`_UPCONV_TAPS`), so this computes one
  2x2 convolution with 4 * Cout outputs on x padded by one, then depth-to-space: 16 (H+1)^2 / (36 H^2)
  of the FLOPs (0.49x at H = 16) and no up-sampled copy. Equal to the plain form up to float
  rounding (the taps are summed before the multiply).
  """
  kh, kw, cin, cout = kernel.shape
  if (kh, kw) != (3, 3):
    raise ValueError(f"upsample_conv3x3 needs a 3x3 kernel; got {kh}x{kw}")
  taps = jnp.asarray(_UPCONV_TAPS, kernel.dtype)
  k = jnp.einsum('atk,bsl,klio->tsiabo', taps, taps, kernel, precision=precision)
  return _subpixel_conv(x, k.reshape(2, 2, cin, 4 * cout), precision)


def _subpixel_conv(x: Array, kernel: Array, precision: Any = None) -> Array:
  """Phases (a_h, a_w) of a 2x up-sampling layer from a (2, 2, Cin, 4 * Cout) kernel ordered (a_h, a_w, Cout).

  Output pixel (2m + a_h, 2l + a_w) = sum over taps (t_h, t_w) of x_padded[m + a_h + t_h, l + a_w + t_w]
  times the kernel's tap (t_h, t_w) of phase (a_h, a_w); x is padded by one pixel on every side.
  """
  n, h, w, _ = x.shape
  cout = kernel.shape[-1] // 4
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  z = jax.lax.conv_general_dilated(
      xp, kernel, window_strides=(1, 1), padding='VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=precision)
  z = z.reshape(n, h + 1, w + 1, 2, 2, cout)
  # Phase (a_h, a_w) is the window of z starting at (a_h, a_w).
  rows = []
  for a_h in range(2):
    cols = [z[:, a_h:a_h + h, a_w:a_w + w, a_h, a_w, :] for a_w in range(2)]
    rows.append(jnp.stack(cols, axis=3))  # [N, H, W, 2(a_w), Cout]
  y = jnp.stack(rows, axis=2)  # [N, H, 2(a_h), W, 2(a_w), Cout]
  return y.reshape(n, 2 * h, 2 * w, cout)


class ConvTranspose2x(nn.Module):
  """Exact, fast `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`.

  The DCGAN up-sampling layer (PyTorch `ConvTranspose2d(k=4, s=2, p=1)`): [N, H, W, Cin] ->
  [N, 2H, 2W, features], with the same params as `nn.ConvTranspose` (`kernel` (4, 4, Cin, Cout),
  `bias` (Cout,)), so checkpoints are interchangeable.

  With flax's (unflipped) kernel w, per spatial axis
    y[2m]     = x[m - 1] w[0] + x[m] w[2],
    y[2m + 1] = x[m] w[1]     + x[m + 1] w[3],
  i.e. each output phase is a stride-1 2-tap convolution of x padded by one. All four phases come
  from one 2x2 convolution with 4 * Cout outputs followed by depth-to-space: the same FLOPs as the
  transposed conv, but without XLA:CPU's very slow kernel gradient of lhs-dilated convolutions
  (see shared PERF_NOTES; jax-ml/jax#23783).
  """
  features: int
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"ConvTranspose2x expects NHWC inputs; got shape {x.shape}")
    kernel = self.param('kernel', self.kernel_init, (4, 4, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv_transpose_2x(x, kernel, self.precision)
    if bias is not None:
      y = y + bias.reshape(1, 1, 1, -1)
    return y


class UpsampleConv3x3(nn.Module):
  """`nn.Conv(features, (3, 3), padding=1)` applied to a nearest-neighbour 2x up-sampled input.

  The SNGAN/BigGAN generator block's "up-sample then 3x3 conv": [N, H, W, Cin] -> [N, 2H, 2W,
  features], with the params of `nn.Conv` (`kernel` (3, 3, Cin, Cout), `bias` (Cout,)), so
  checkpoints are interchangeable. Computed by `upsample_conv3x3` (a sub-pixel 2x2 convolution on
  the low-resolution input: about half the FLOPs, for speed).
  """
  features: int
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"UpsampleConv3x3 expects NHWC inputs; got shape {x.shape}")
    kernel = self.param('kernel', self.kernel_init, (3, 3, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = upsample_conv3x3(x, kernel, self.precision)
    if bias is not None:
      y = y + bias.reshape(1, 1, 1, -1)
    return y


class ConditionalBatchNorm(nn.Module):
  """Class-conditional BatchNorm: y = gamma[c] * BN(x) + beta[c], BN without its own affine.

  de Vries et al. 2017 (arXiv:1707.00683), Dumoulin et al. 2017 (arXiv:1610.07629); the
  SNGAN-projection generator (Miyato & Koyama 2018, arXiv:1802.05637). `gamma` and `beta` are
  `nn.Embed(num_classes, C)` tables initialized to 1 and 0 (param leaves `gamma/embedding`,
  `beta/embedding`; exclude them if you spectrally normalize a generator). Called as
  `cbn(x, y, train)` with x [N, ..., C] and int labels y [N].
  """
  num_classes: int

  @nn.compact
  def __call__(self, x: Array, y: Array, train: bool = True) -> Array:
    features = x.shape[-1]
    h = batch_norm(train, use_scale=False, use_bias=False, name='bn')(x)
    gamma = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones_init(),
                     name='gamma')(y)
    beta = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros_init(),
                    name='beta')(y)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return h * gamma.reshape(shape) + beta.reshape(shape)


def check_size(family: str, size: str, sizes: tuple[str, ...]) -> None:
  """Raises a one-line ValueError for an unknown `config.model.size`."""
  if size not in sizes:
    raise ValueError(f"{family} has sizes {list(sizes)}; got size={size!r} — set "
                     f"config.model.size to one of them")
