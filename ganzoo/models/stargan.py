"""StarGAN's generator and discriminator (Choi et al. 2018, arXiv:1711.09020, App. 7 Tables 4-5).

The layer lists are the authors' (yunjey/stargan model.py), in NHWC:

  Generator(conv_dim=64, c_dim=5, repeat_num=6), input: the image with the target label tiled
  over its pixels and concatenated as c_dim more channels:
    conv 7x7 s1 p3 -> conv_dim, IN, ReLU
    2 x (conv 4x4 s2 p1 -> 2x channels, IN, ReLU)                      down-sampling
    repeat_num x residual block (conv 3x3 p1, IN, ReLU, conv 3x3 p1, IN; x + that)
    2 x (transposed conv 4x4 s2 p1 -> channels / 2, IN, ReLU)          up-sampling
    conv 7x7 s1 p3 -> image channels, tanh
    every G conv without bias (bias=False in the reference).
  Discriminator(image_size=128, conv_dim=64, c_dim=5, repeat_num=6):
    repeat_num x (conv 4x4 s2 p1 with bias -> conv_dim * 2^i, LeakyReLU 0.01)
    src: conv 3x3 s1 p1 -> 1 channel, no bias        (the PatchGAN real/fake map)
    cls: conv k x k VALID -> c_dim, no bias, k = image_size / 2^repeat_num (the whole map)

InstanceNorm: the reference's `nn.InstanceNorm2d(affine=True, track_running_stats=True)`. Its
running statistics are only read in eval mode, and the reference never calls `G.eval()` (solver.py
trains and tests in train mode), so every forward pass, at test time too, normalizes each image by
its own statistics. Running statistics would be dead weight here: the layer keeps none (they are
buffers, not parameters, so the parameter counts are unchanged). Biased variance, eps 1e-5, scale 1
and shift 0 at init (PyTorch >= 1.0; PyTorch 0.4 drew the scale from U(0, 1)).

Initialization: the reference does not re-initialize, so every layer has PyTorch's default:
kaiming_uniform(a=sqrt(5)) weights, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases from the
same U(-1/sqrt(fan_in), 1/sqrt(fan_in)). PyTorch's fan_in is weight.size(1) * k * k: in_channels * k * k
for a convolution but out_channels * k * k for a transposed one (its weight is [in, out, k, k]).

Padding: zeros (the reference's comment: label conditioning fails with reflection padding, since
instance normalization removes the constant shift the labels add).
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def torch_uniform(fan_in: int) -> Callable:
  """PyTorch's default conv weight and bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(float(fan_in))

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def conv(x: Array, features: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False,
         name: str | None = None) -> Array:
  """torch.nn.Conv2d(in, features, kernel, stride, padding, bias) with its default init, NHWC."""
  fan_in = x.shape[-1] * kernel * kernel
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((padding, padding), (padding, padding)),
                 use_bias=bias, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in), name=name)(x)


def conv_transpose(x: Array, features: int, name: str | None = None) -> Array:
  """torch.nn.ConvTranspose2d(in, features, 4, stride=2, padding=1, bias=False): the output is 2x the
  input. A transposed conv with padding p pads the dilated input by k - 1 - p = 2 on each side
  (the gradient of the stride-2 conv); fan_in is PyTorch's, features * 4 * 4."""
  return nn.ConvTranspose(features, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                          kernel_init=torch_uniform(features * 16), transpose_kernel=True, name=name)(x)


class InstanceNorm(nn.Module):
  """InstanceNorm2d(affine=True) in train mode: per image and channel, over H and W (see the module docstring)."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), x.dtype)
    shift = self.param("bias", nn.initializers.zeros, (c,), x.dtype)
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale.reshape(1, 1, 1, c) + shift.reshape(1, 1, 1, c)


class ResidualBlock(nn.Module):
  """x + IN(conv3x3(ReLU(IN(conv3x3(x))))) (model.py ResidualBlock; no biases)."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    h = nn.relu(InstanceNorm(name="in1")(conv(x, c, 3, padding=1, name="conv1")))
    h = InstanceNorm(name="in2")(conv(h, c, 3, padding=1, name="conv2"))
    return x + h


class Generator(nn.Module):
  """StarGAN's G: (x [N, H, W, C] in [-1, 1], c [N, c_dim] target labels) -> images [N, H, W, C] in [-1, 1]."""
  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6

  @nn.compact
  def __call__(self, x: Array, c: Array, train: bool = False) -> Array:
    del train   # no train-only behaviour: instance statistics in both modes (module docstring)
    n, h, w, channels = x.shape
    if c.shape != (n, self.c_dim):
      raise ValueError(f"labels must be [N, c_dim] = [{n}, {self.c_dim}], got {c.shape}")
    if h % 4 or w % 4:
      raise ValueError(f"StarGAN's G down-samples twice: image sides must be multiples of 4, got {h}x{w}; "
                       "set data.image_size")
    tiled = jnp.broadcast_to(c.astype(x.dtype)[:, None, None, :], (n, h, w, self.c_dim))
    y = jnp.concatenate([x, tiled], axis=-1)
    y = nn.relu(InstanceNorm(name="in_in")(conv(y, self.conv_dim, 7, padding=3, name="conv_in")))
    dim = self.conv_dim
    for i in range(2):
      y = nn.relu(InstanceNorm(name=f"in_down{i}")(conv(y, dim * 2, 4, 2, 1, name=f"down{i}")))
      dim *= 2
    for i in range(self.repeat_num):
      y = ResidualBlock(name=f"res{i}")(y)
    for i in range(2):
      y = nn.relu(InstanceNorm(name=f"in_up{i}")(conv_transpose(y, dim // 2, name=f"up{i}")))
      dim //= 2
    return jnp.tanh(conv(y, channels, 7, padding=3, name="conv_out"))


class Discriminator(nn.Module):
  """StarGAN's D: x [N, H, W, C] -> (src [N, H / 2^r, W / 2^r, 1] real/fake map, cls [N, c_dim] logits)."""
  image_size: int = 128
  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> tuple[Array, Array]:
    del train
    h = x
    dim = self.conv_dim
    for i in range(self.repeat_num):
      h = nn.leaky_relu(conv(h, dim, 4, 2, 1, bias=True, name=f"conv{i}"), 0.01)
      dim *= 2
    kernel = int(self.image_size / 2 ** self.repeat_num)   # the reference's kernel_size
    if kernel < 1 or h.shape[1:3] != (kernel, kernel):
      raise ValueError(f"the discriminator's last map is {h.shape[1]}x{h.shape[2]} but image_size / 2^repeat_num "
                       f"= {kernel}: set model.d_repeat_num so that image_size / 2^d_repeat_num is the map size")
    src = conv(h, 1, 3, padding=1, name="src")
    cls = conv(h, self.c_dim, kernel, name="cls")
    return src, cls.reshape(cls.shape[0], self.c_dim)
