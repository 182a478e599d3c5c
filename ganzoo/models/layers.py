"""Layers shared by the ganzoo architectures.

- `ConvTranspose2x`: the DCGAN/SNGAN up-sampling layer (PyTorch `ConvTranspose2d(k=4, s=2, p=1)`,
  flax `nn.ConvTranspose(kernel_size=(4, 4), strides=(2, 2), padding='SAME')`), computed as a
  stride-1 sub-pixel convolution (fast on XLA:CPU, identical parameters).
- `Conv`, `BatchNorm`, `avg_pool2`: drop-ins for `nn.Conv`, `nn.BatchNorm`, `nn.avg_pool(2x2)` with
  the same params, whose gradients avoid XLA:CPU's slow paths (lhs-dilated convolutions for the
  input gradient of strided convs, reduce-window for large reductions). Every model uses them;
  `experiments/layer_speed.py` times each against flax.
- `ConditionalBatchNorm`: class-conditional batch normalization (de Vries et al. 2017,
  arXiv:1707.00683; Dumoulin et al. 2017, arXiv:1610.07629), as in the SNGAN-projection generator
  (Miyato & Koyama 2018, arXiv:1802.05637).
- `batch_norm`, `dcgan_normal`, `glorot_uniform`: the normalization and initializers that the zoo
  uses everywhere.
"""

import functools
from typing import Any, Callable, ClassVar

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


def batch_norm(train: bool, name: str | None = None, **kwargs: Any) -> 'BatchNorm':
  """The zoo's BatchNorm: batch statistics in training, running averages otherwise.

  y = gamma * (x - mean) / sqrt(var + 1e-5) + beta, statistics over all axes but the last; running
  statistics in the 'batch_stats' collection with momentum 0.9.
  """
  return BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
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


_DN = ('NHWC', 'HWIO', 'NHWC')


def _conv_s2(x: Array, kernel: Array, precision: Any = None) -> Array:
  """The 4x4, stride-2, padding-1 convolution (PyTorch `Conv2d(k=4, s=2, p=1)`), XLA's own op."""
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN,
                                      precision=precision)


def _flip_swap(kernel: Array) -> Array:
  """(4, 4, A, B) -> (4, 4, B, A) spatially flipped: the kernel of the adjoint 4x4/s2/p1 operator.

  Per spatial axis conv_s2 computes y[m] = sum_k x[2m - 1 + k] w[k], and the transposed conv
  (`conv_transpose_2x`) y[j] = sum_{2m + 2 - k = j} x[m] w[k]; substituting k -> 3 - k maps one onto
  the adjoint of the other, with input and output channels exchanged.
  """
  return jnp.swapaxes(kernel[::-1, ::-1], 2, 3)


def _conv_transpose_2x_fwd_only(x: Array, kernel: Array, precision: Any = None) -> Array:
  """The transposed conv's forward: per-phase convolutions on small inputs, else one sub-pixel conv.

  The single sub-pixel conv computes all four phases on the (H+1) x (W+1) padded grid, which
  wastes (H+1)(W+1)/(HW) - 1 of its FLOPs (56% at 4x4, DCGAN's first layer); there, four exact
  per-phase 2x2 convs are faster (~5% of a DCGAN step), while on larger inputs the one wide conv wins.
  """
  n, h, w, _ = x.shape
  if (h + 1) * (w + 1) >= 1.5 * h * w and kernel.shape[-1] >= 64:
    return _phase_conv(x, kernel, precision)
  return _subpixel_conv(x, _subpixel_kernel(kernel), precision)


def _phase_conv(x: Array, kernel: Array, precision: Any = None) -> Array:
  """Phase (a_h, a_w) of the transposed conv as its own 2x2 VALID conv on the window of x padded by one."""
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  k = kernel.reshape(2, 2, 2, 2, cin, cout)  # (t_h, a_h, t_w, a_w, Cin, Cout)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = []
  for a_h in range(2):
    cols = [jax.lax.conv_general_dilated(xp[:, a_h:a_h + h + 1, a_w:a_w + w + 1], k[:, a_h, :, a_w], (1, 1),
                                         'VALID', dimension_numbers=_DN, precision=precision)
            for a_w in range(2)]
    rows.append(jnp.stack(cols, 3))
  return jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_transpose_2x(x: Array, kernel: Array, precision: Any = None) -> Array:
  """y = conv_transpose(x, kernel, strides=2, padding='SAME') for a (4, 4, Cin, Cout) kernel.

  x: [N, H, W, Cin] -> y: [N, 2H, 2W, Cout]. Forward: one stride-1 2x2 VALID convolution of x
  padded by one pixel, producing the four output phases as 4 * Cout channels, then depth-to-space
  (per-phase convolutions on small inputs, `_conv_transpose_2x_fwd_only`). Backward (custom VJP, for speed on XLA:CPU): the input gradient is the adjoint strided
  convolution `conv_s2(g, flip_swap(kernel))` and the kernel gradient is XLA's kernel gradient of
  that strided convolution, both fast stride-2 ops, where autodiff of the sub-pixel form would
  add depth-to-space transposes and the padding's extra FLOPs (1.56x at 4x4 inputs).
  """
  return _conv_transpose_2x_fwd_only(x, kernel, precision)


def _conv_transpose_2x_vjp_fwd(x, kernel, precision):
  return _conv_transpose_2x_fwd_only(x, kernel, precision), (x, kernel)


def _conv_transpose_2x_vjp_bwd(precision, res, g):
  x, kernel = res
  adjoint = _flip_swap(kernel)
  dx = _conv_s2(g, adjoint, precision)
  _, kernel_vjp = jax.vjp(lambda w: _conv_s2(g, w, precision), adjoint)
  return dx, _flip_swap(kernel_vjp(x)[0])


conv_transpose_2x.defvjp(_conv_transpose_2x_vjp_fwd, _conv_transpose_2x_vjp_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_down_2x(x: Array, kernel: Array, precision: Any = None) -> Array:
  """The 4x4, stride-2, padding-1 convolution (DCGAN's down-sampling layer) with a fast input gradient.

  x: [N, 2H, 2W, Cin] (even sizes) -> [N, H, W, Cout]. Forward and kernel gradient are XLA's; the
  input gradient, which autodiff would compute as an lhs-dilated convolution (2-3x slower than the
  forward on XLA:CPU, jax-ml/jax#23783), is the transposed convolution `conv_transpose_2x(g,
  flip_swap(kernel))` in its stride-1 sub-pixel form. Values equal the plain op up to rounding.
  """
  return _conv_s2(x, kernel, precision)


def _conv_down_2x_vjp_fwd(x, kernel, precision):
  return _conv_s2(x, kernel, precision), (x, kernel)


def _conv_down_2x_vjp_bwd(precision, res, g):
  x, kernel = res
  dx = _conv_transpose_2x_fwd_only(g, _flip_swap(kernel), precision)
  _, kernel_vjp = jax.vjp(lambda w: _conv_s2(x, w, precision), kernel)
  return dx, kernel_vjp(g)[0]


conv_down_2x.defvjp(_conv_down_2x_vjp_fwd, _conv_down_2x_vjp_bwd)


# ---------------------------------------------------------------------------------------------
# Reductions as matrix products. XLA:CPU (jaxlib 0.10) lowers a large reduce (BatchNorm
# statistics, bias gradients) through its tree-reduction rewrite to an unvectorized reduce-window:
# 2 ms for the channel sums of a [64, 16, 16, 128] tensor, against 0.2 ms as `ones @ x`; a
# BatchNorm fwd+bwd there takes 14.1 ms in flax and 3.1 ms here (`experiments/layer_speed.py`).
# These helpers keep those sums on the matmul path.

def _channels(v: Array, x: Array) -> Array:
  """A per-channel vector [C] shaped to broadcast against x [..., C] (explicit rank promotion)."""
  return v.reshape((1,) * (x.ndim - 1) + (-1,))


def row_sum(x: Array) -> Array:
  """Sum over every axis but the last, as one matrix-vector product: [..., C] -> [C]."""
  x2 = x.reshape(-1, x.shape[-1])
  return jnp.ones((x2.shape[0],), x2.dtype) @ x2


def row_mean(x: Array) -> Array:
  """Mean over every axis but the last (`row_sum` / count)."""
  return row_sum(x) / (x.size // x.shape[-1])


@jax.custom_vjp
def bias_add(y: Array, bias: Array) -> Array:
  """y + bias over the last axis, whose bias gradient is `row_sum(g)` instead of a slow reduce."""
  return y + _channels(bias, y)


def _bias_add_fwd(y, bias):
  return bias_add(y, bias), None


def _bias_add_bwd(_, g):
  return g, row_sum(g)


bias_add.defvjp(_bias_add_fwd, _bias_add_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalize_train(x: Array, scale: Array, bias: Array, epsilon: float) -> tuple[Array, Array, Array]:
  return _normalize_train_fwd(x, scale, bias, epsilon)[0]


def _batch_moments(x: Array) -> tuple[Array, Array]:
  """Mean and biased variance over all axes but the last, E[x^2] - E[x]^2 as flax computes it."""
  mean = row_mean(x)
  var = jnp.maximum(row_mean(x * x) - mean * mean, 0.0)
  return mean, var


def _normalize_train_fwd(x, scale, bias, epsilon):
  mean, var = _batch_moments(x)
  inv = jax.lax.rsqrt(var + epsilon)
  y = (x - _channels(mean, x)) * _channels(inv * scale, x) + _channels(bias, x)
  return (y, mean, var), (x, mean, inv, scale)


def _normalize_train_bwd(epsilon, res, cotangents):
  """The batch-norm backward pass (Ioffe & Szegedy 2015, Sec. 3) with every channel sum a `row_sum`.

  The statistics outputs are running-average inputs only, so their cotangents are ignored.
  """
  del epsilon
  x, mean, inv, scale = res
  g = cotangents[0]
  x_hat = (x - _channels(mean, x)) * _channels(inv, x)
  n = x.size // x.shape[-1]
  d_bias = row_sum(g)
  d_scale = row_sum(g * x_hat)
  dx = _channels(inv * scale, x) * (g - _channels(d_bias / n, x) - x_hat * _channels(d_scale / n, x))
  return dx, d_scale, d_bias


_normalize_train.defvjp(_normalize_train_fwd, _normalize_train_bwd)


def upsample_nearest(x: Array) -> Array:
  """[N, H, W, C] -> [N, 2H, 2W, C], each pixel repeated 2x2."""
  n, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
  return x.reshape(n, 2 * h, 2 * w, c)


@jax.custom_vjp
def avg_pool2(x: Array) -> Array:
  """2x2 average pooling with stride 2 ([N, H, W, C] -> [N, H/2, W/2, C], even H and W).

  The mean of the four phases; its gradient is the nearest-neighbour up-sampling of g / 4 (a
  custom VJP: `nn.avg_pool`'s reduce-window and its transpose are ~8x slower on XLA:CPU).
  """
  n, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f"avg_pool2 needs even spatial sizes; got {x.shape}")
  y = x.reshape(n, h // 2, 2, w // 2, 2, c)
  return 0.25 * ((y[:, :, 0, :, 0] + y[:, :, 0, :, 1]) + (y[:, :, 1, :, 0] + y[:, :, 1, :, 1]))


def _avg_pool2_fwd(x):
  return avg_pool2(x), None


def _avg_pool2_bwd(_, g):
  return (upsample_nearest(0.25 * g),)


avg_pool2.defvjp(_avg_pool2_fwd, _avg_pool2_bwd)


class BatchNorm(nn.Module):
  """`nn.BatchNorm` for NHWC / NC inputs with the same params and statistics, faster on XLA:CPU.

  Params `scale`, `bias` ([C]) and batch stats `mean`, `var` ([C]) as in flax, so checkpoints are
  interchangeable; outputs, gradients and running averages equal `nn.BatchNorm` (flax's fast
  variance E[x^2] - E[x]^2, biased, `ra = momentum * ra + (1 - momentum) * batch`) up to rounding.
  Training mode normalizes with the batch statistics over all axes but the last, computed as
  matrix products (`row_sum`), with a hand-written backward pass that keeps its sums there too.
  """
  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Initializer = nn.initializers.ones_init()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None) -> Array:
    use_running_average = nn.merge_param('use_running_average', self.use_running_average,
                                         use_running_average)
    c = x.shape[-1]
    if jnp.finfo(x.dtype).bits < 32:   # half-precision compute (ganzoo.precision): normalize in float32,
      out_dtype, x = x.dtype, x.astype(jnp.float32)   # as flax's norms reduce (E[x^2] - E[x]^2 cancels)
    else:
      out_dtype = None
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = self.param('scale', self.scale_init, (c,), jnp.float32) if self.use_scale else jnp.ones((c,), x.dtype)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32) if self.use_bias else jnp.zeros((c,), x.dtype)
    if out_dtype is not None:
      scale, bias = scale.astype(jnp.float32), bias.astype(jnp.float32)
    if use_running_average:
      inv = jax.lax.rsqrt(ra_var.value + self.epsilon)
      y = (x - _channels(ra_mean.value, x)) * _channels(inv * scale, x) + _channels(bias, x)
      return y if out_dtype is None else y.astype(out_dtype)
    y, mean, var = _normalize_train(x, scale, bias, self.epsilon)
    if not self.is_initializing():
      mean, var = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
      ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * var
    return y if out_dtype is None else y.astype(out_dtype)


def conv_padding(padding: Any, ndim: int = 2) -> Any:
  """flax's padding forms ('SAME', 'VALID', int, ((lo, hi), ...)) in `lax.conv_general_dilated`'s."""
  if isinstance(padding, str):
    return padding
  if isinstance(padding, int):
    return ((padding, padding),) * ndim
  return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


class Conv(nn.Module):
  """`nn.Conv` for 2-D NHWC inputs with the same params (`kernel` (kh, kw, Cin, Cout), `bias`), faster on XLA:CPU.

  Its bias gradient is a matrix product (`bias_add`), and the 4x4 / stride-2 / padding-1
  down-sampling conv on even-sized inputs uses `conv_down_2x` (fast input gradient). Everything else
  is `lax.conv_general_dilated`, as in flax.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Any = 'SAME'
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  precision: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"layers.Conv expects NHWC inputs; got shape {x.shape}")
    kernel = self.param('kernel', self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    if x.dtype != kernel.dtype:   # e.g. float32 pixels into a float64 state's kernel: compute in the wider type
      x, kernel = nn.dtypes.promote_dtype(x, kernel)
    padding = conv_padding(self.padding)
    strides = tuple(self.strides)
    if (tuple(self.kernel_size) == (4, 4) and strides == (2, 2) and padding == ((1, 1), (1, 1))
        and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0):
      y = conv_down_2x(x, kernel, self.precision)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DN,
                                       precision=self.precision)
    if self.use_bias:
      y = bias_add(y, self.param('bias', self.bias_init, (self.features,), jnp.float32))
    return y


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


class _UpsampleLayer(nn.Module):
  """The params and body shared by the 2x up-sampling layers: a (k, k, Cin, features) `kernel` and a
  `bias`, named as in the flax layer each replaces; subclasses set `kernel_size` and `_compute`."""
  features: int
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_size: ClassVar[int] = 0

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"{type(self).__name__} expects NHWC inputs; got shape {x.shape}")
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features), self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = self._compute(x, kernel)
    return y if bias is None else bias_add(y, bias)


class ConvTranspose2x(_UpsampleLayer):
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
  kernel_size: ClassVar[int] = 4

  def _compute(self, x: Array, kernel: Array) -> Array:
    return conv_transpose_2x(x, kernel, self.precision)


class UpsampleConv3x3(_UpsampleLayer):
  """`nn.Conv(features, (3, 3), padding=1)` applied to a nearest-neighbour 2x up-sampled input.

  The SNGAN/BigGAN generator block's "up-sample then 3x3 conv": [N, H, W, Cin] -> [N, 2H, 2W,
  features], with the params of `nn.Conv` (`kernel` (3, 3, Cin, Cout), `bias` (Cout,)), so
  checkpoints are interchangeable. Computed by `upsample_conv3x3` (a sub-pixel 2x2 convolution on
  the low-resolution input: about half the FLOPs, for speed).
  """
  kernel_size: ClassVar[int] = 3

  def _compute(self, x: Array, kernel: Array) -> Array:
    return upsample_conv3x3(x, kernel, self.precision)


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
