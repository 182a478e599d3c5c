"""ProGAN's networks (Karras et al. 2018, "Progressive Growing of GANs", arXiv:1710.10196, Table 2),
as tkarras/progressive_growing_of_gans networks.py G_paper and D_paper build them.

Generator (one block per resolution 2^r, r = 2 .. log2(R)):
  4x4:   pixel norm of z; dense z -> 16 nf(1) (gain sqrt(2)/4, reshaped to nf(1) x 4 x 4 in the
         reference's NCHW order), bias, leaky ReLU 0.2, pixel norm; conv 3x3 nf(1), same activations.
  2^r:   nearest 2x up-sampling + conv 3x3 nf(r-1) (the reference's fused `upscale2d_conv2d`, the
         same function), conv 3x3 nf(r-1); each conv: bias, leaky ReLU, pixel norm.
  ToRGB at every resolution: conv 1x1 to the image channels (gain 1), bias, linear.
Discriminator (the mirror image):
  FromRGB at every resolution: conv 1x1 nf(r-1), bias, leaky ReLU.
  2^r:   conv 3x3 nf(r-1), conv 3x3 nf(r-2) + 2x2 average pooling (the reference's fused
         `conv2d_downscale2d`: one 4x4 stride-2 conv with the kernel of their composition), each
         with bias and leaky ReLU.
  4x4:   minibatch stddev (group min(4, N), one feature map), conv 3x3 nf(1), dense nf(0),
         dense 1 (gain 1, linear).
Feature maps nf(s) = min(fmap_base / 2^(s fmap_decay), fmap_max); CelebA-HQ: base 8192, max 512.

Growing (the reference's lod, "level of detail": log2(R) - log2(resolution), fractional during a fade):
`__call__(..., level=k, alpha=a)` runs the networks at resolution 4 * 2^k only (the reference's
'recursive' structure, which computes the same function as its 'linear' one and leaves the blocks
above unused), and during a fade blends the new block with the old path:
  G:  img = lerp(ToRGB_k(x_k), up(ToRGB_{k-1}(x_{k-1})), t),
  D:  x   = lerp(block_k(FromRGB_k(img)), FromRGB_{k-1}(down(img)), t),
with t = lod - floor(lod) = 1 - alpha (alpha: the weight of the new layers, 0 -> 1 over a fade).
`generate_full(z, lod)` is the reference's full-resolution output at a dynamic lod (lower levels
nearest-neighbour up-sampled), used for sample grids and evaluation at any point of training.

Parametrization: the modules are written in the effective weights with He's init N(0, 2 / fan_in);
each layer multiplies its kernel by gain / sqrt(2), so without equalized LR a layer has the
reference's init N(0, gain^2 / fan_in), and with `nets.<g|d>.eqlr` (gain sqrt(2), the configs set
it) the stored weights are N(0, 1) and the effective kernel is gain / sqrt(fan_in) times them:
the reference's `use_wscale`.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo.models import layers
from ganzoo.models.stylegan2 import minibatch_stddev, pixel_norm

Array = jax.Array
SQRT2 = math.sqrt(2.0)

# Networks by size: the paper's CelebA-HQ 1024 network (Table 2), its CIFAR-10 network (Sec. 6.4:
# the CelebA-HQ network and training setup, grown to 32x32 only), a CPU size and a test size.
PRESETS = {
    "celebahq": dict(resolution=1024, fmap_base=8192, fmap_decay=1.0, fmap_max=512, latent_size=512, mbstd_group=16),
    "cifar10": dict(resolution=32, fmap_base=8192, fmap_decay=1.0, fmap_max=512, latent_size=512, mbstd_group=16),
    "small": dict(resolution=32, fmap_base=512, fmap_decay=1.0, fmap_max=64, latent_size=64, mbstd_group=4),
    "tiny": dict(resolution=8, fmap_base=32, fmap_decay=1.0, fmap_max=8, latent_size=8, mbstd_group=4),
}


def nf(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
  """Feature maps of a stage: min(int(fmap_base / 2^(stage fmap_decay)), fmap_max) (networks.py nf)."""
  return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def he_normal(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """N(0, 2 / fan_in), untruncated (the reference's get_weight with gain sqrt(2))."""
  return jax.random.normal(key, shape, dtype) * (SQRT2 / math.sqrt(math.prod(shape[:-1])))


def leaky_relu(x: Array, slope: float = 0.2) -> Array:
  """max(slope x, x) (networks.py leaky_relu, no gain)."""
  return jnp.maximum(x * slope, x)


def fused_down_kernel(kernel: Array) -> Array:
  """The 4x4 kernel of conv 3x3 followed by 2x2 average pooling (networks.py conv2d_downscale2d):
  the 3x3 kernel padded by one, its four shifts summed, times 1/4."""
  w = jnp.pad(kernel, ((1, 1), (1, 1), (0, 0), (0, 0)))
  return (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25


def lerp(a: Array, b: Array, t: Array) -> Array:
  """a + (b - a) t (tfutil.lerp)."""
  return a + (b - a) * t


class WSConv(nn.Module):
  """k x k conv (optionally after 2x nearest up-sampling, or before 2x2 average pooling) + bias.

  `gain` is the reference's layer gain (sqrt(2) for layers followed by a leaky ReLU, 1 for the
  linear ToRGB); the kernel is multiplied by gain / sqrt(2) (see the module docstring)."""
  features: int
  kernel_size: int = 3
  gain: float = SQRT2
  resample: str = "none"   # none | up | down

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param("kernel", he_normal, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)   # float32 pixels into a float64 state: float64
    if self.gain != SQRT2:
      kernel = kernel * (self.gain / SQRT2)
    if self.resample == "up":
      y = layers.upsample_conv3x3(x, kernel)
    elif self.resample == "down":
      y = layers.conv_down_2x(x, fused_down_kernel(kernel))
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.reshape(1, 1, 1, -1)


class WSDense(nn.Module):
  """Dense + bias over the flattened input (NCHW order, as the reference flattens), gain as `WSConv`."""
  features: int
  gain: float = SQRT2
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim == 4:
      x = jnp.transpose(x, (0, 3, 1, 2))
    x = x.reshape(x.shape[0], -1)
    kernel = self.param("kernel", he_normal, (x.shape[-1], self.features))
    x, kernel = nn.dtypes.promote_dtype(x, kernel)
    if self.gain != SQRT2:
      kernel = kernel * (self.gain / SQRT2)
    y = x @ kernel
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype).reshape(1, -1)
    return y


class Generator(nn.Module):
  """G_paper: z [N, latent_size] -> images [N, R, R, C] at the level's resolution (see the module docstring)."""
  resolution: int
  channels: int
  fmap_base: int = 8192
  fmap_decay: float = 1.0
  fmap_max: int = 512
  latent_size: int = 512
  normalize_latents: bool = True
  use_pixelnorm: bool = True
  pixelnorm_epsilon: float = 1e-8
  use_leakyrelu: bool = True

  @property
  def z_dim(self) -> int:
    return self.latent_size

  @property
  def num_levels(self) -> int:
    return int(math.log2(self.resolution)) - 1   # 4x4 is level 0

  def _nf(self, stage):
    return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

  def _pn(self, x):
    return pixel_norm(x, self.pixelnorm_epsilon) if self.use_pixelnorm else x

  def _act(self, x):
    return leaky_relu(x) if self.use_leakyrelu else jax.nn.relu(x)

  def setup(self):
    blocks, torgb = [], []
    for level in range(self.num_levels):
      r = level + 2
      n = self._nf(r - 1)
      if level == 0:
        blocks.append((WSDense(n * 16, gain=SQRT2 / 4, use_bias=False, name="b4_dense"),
                       self.param("b4_dense_bias", nn.initializers.zeros, (n,)),
                       WSConv(n, 3, name="b4_conv")))
      else:
        blocks.append((WSConv(n, 3, resample="up", name=f"b{2 ** r}_conv0_up"), WSConv(n, 3, name=f"b{2 ** r}_conv1")))
      torgb.append(WSConv(self.channels, 1, gain=1.0, name=f"torgb_{2 ** r}"))
    self.blocks, self.torgb = blocks, torgb

  def _block(self, x, level):
    if level == 0:
      dense, dense_bias, conv = self.blocks[0]
      if self.normalize_latents:
        x = pixel_norm(x, self.pixelnorm_epsilon)
      n = dense_bias.shape[0]
      x = dense(x).reshape(x.shape[0], n, 4, 4).transpose(0, 2, 3, 1)   # the reference's NCHW reshape
      x = self._pn(self._act(x + dense_bias.astype(x.dtype).reshape(1, 1, 1, -1)))
      return self._pn(self._act(conv(x)))
    up, conv = self.blocks[level]
    return self._pn(self._act(conv(self._pn(self._act(up(x))))))

  def __call__(self, z: Array, y: Array | None = None, train: bool = True, level: int | None = None,
               alpha: Array | float = 1.0) -> Array:
    """Images at resolution 4 * 2^level (default: the full resolution, fully grown); during a fade
    (alpha < 1) lerp(new, up(old), 1 - alpha). Linear output, not clipped (as the reference)."""
    del y, train
    level = self.num_levels - 1 if level is None else int(level)
    x = z
    prev = None
    for k in range(level + 1):
      prev = x
      x = self._block(x, k)
    img = self.torgb[level](x)
    if level > 0 and not (isinstance(alpha, float) and alpha == 1.0):
      old = layers.upsample_nearest(self.torgb[level - 1](prev))
      img = lerp(img, old, 1.0 - jnp.asarray(alpha, img.dtype))
    return img

  def generate_full(self, z: Array, lod: Array, train: bool = False) -> Array:
    """The reference's 'linear' G at a dynamic lod: every level computed, images_out =
    lerp_clip(ToRGB_k(x_k), up(images_out), lod - (L - k)) going up, [N, R, R, C] at the full resolution."""
    del train
    x = self._block(z, 0)
    images = self.torgb[0](x)
    top = self.num_levels - 1
    for k in range(1, self.num_levels):
      x = self._block(x, k)
      t = jnp.clip(lod - (top - k), 0.0, 1.0).astype(images.dtype)
      images = lerp(self.torgb[k](x), layers.upsample_nearest(images), t)
    return images


class Discriminator(nn.Module):
  """D_paper: images [N, r, r, C] at the level's resolution -> scores [N] (see the module docstring)."""
  resolution: int
  fmap_base: int = 8192
  fmap_decay: float = 1.0
  fmap_max: int = 512
  mbstd_group: int = 4

  @property
  def num_levels(self) -> int:
    return int(math.log2(self.resolution)) - 1

  def _nf(self, stage):
    return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

  def setup(self):
    blocks, fromrgb = [], []
    for level in range(self.num_levels):
      r = level + 2
      if level == 0:
        blocks.append((WSConv(self._nf(1), 3, name="b4_conv"), WSDense(self._nf(0), name="b4_dense0"),
                       WSDense(1, gain=1.0, name="b4_dense1")))
      else:
        blocks.append((WSConv(self._nf(r - 1), 3, name=f"b{2 ** r}_conv0"),
                       WSConv(self._nf(r - 2), 3, resample="down", name=f"b{2 ** r}_conv1_down")))
      fromrgb.append(WSConv(self._nf(r - 1), 1, name=f"fromrgb_{2 ** r}"))
    self.blocks, self.fromrgb = blocks, fromrgb

  def _block(self, x, level):
    if level == 0:
      conv, dense0, dense1 = self.blocks[0]
      if self.mbstd_group > 1:
        x = minibatch_stddev(x, self.mbstd_group, 1)
      x = leaky_relu(conv(x))
      x = leaky_relu(dense0(x))
      return dense1(x)[:, 0]
    conv0, conv1 = self.blocks[level]
    return leaky_relu(conv1(leaky_relu(conv0(x))))

  def __call__(self, x: Array, y: Array | None = None, train: bool = True, level: int | None = None,
               alpha: Array | float = 1.0) -> Array:
    """Scores of images at resolution 4 * 2^level (default: the full resolution); during a fade the
    new block's features are blended with FromRGB of the 2x2-average-pooled input by 1 - alpha."""
    del y, train
    level = self.num_levels - 1 if level is None else int(level)
    expected = 4 * 2 ** level
    if x.shape[1:3] != (expected, expected):
      raise ValueError(f"the discriminator at level {level} takes {expected}x{expected} images; got {x.shape}")
    h = leaky_relu(self.fromrgb[level](x))
    if level > 0:
      h = self._block(h, level)
      if not (isinstance(alpha, float) and alpha == 1.0):
        old = leaky_relu(self.fromrgb[level - 1](layers.avg_pool2(x)))
        h = lerp(h, old, 1.0 - jnp.asarray(alpha, h.dtype))
      for k in range(level - 1, 0, -1):
        h = self._block(h, k)
    return self._block(h, 0)

  def every_level(self, x: Array) -> Array:
    """The full-resolution scores plus FromRGB at every lower resolution (creates every parameter at init)."""
    out = self(x)
    for level in range(self.num_levels - 1):
      x_k = x
      for _ in range(self.num_levels - 1 - level):
        x_k = layers.avg_pool2(x_k)
      out = out + 0.0 * jnp.sum(self.fromrgb[level](x_k))
    return out


def build(model: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> tuple[Generator, Discriminator]:
  """(G, D) of preset `model.size` (fields of `model` override the preset's) for images `image_shape`."""
  size = model.get("size", "small")
  if size not in PRESETS:
    raise ValueError(f"unknown ProGAN size {size!r}; set config.model.size to one of {sorted(PRESETS)}")
  p = dict(PRESETS[size])
  p.update({k: model[k] for k in ("fmap_base", "fmap_max", "mbstd_group") if model.get(k, None) is not None})
  if model.get("z_dim", None) is not None:
    p["latent_size"] = int(model.z_dim)
  h, w, c = image_shape
  if h != w or h < 4 or h & (h - 1):
    raise ValueError(f"ProGAN needs square images with a power-of-two side >= 4; got {h}x{w}: set config.data.image_size")
  g = Generator(resolution=h, channels=c, fmap_base=p["fmap_base"], fmap_decay=p["fmap_decay"], fmap_max=p["fmap_max"],
                latent_size=p["latent_size"], normalize_latents=bool(model.get("normalize_latents", True)),
                use_pixelnorm=bool(model.get("use_pixelnorm", True)),
                pixelnorm_epsilon=float(model.get("pixelnorm_epsilon", 1e-8)),
                use_leakyrelu=bool(model.get("use_leakyrelu", True)))
  d = Discriminator(resolution=h, fmap_base=p["fmap_base"], fmap_decay=p["fmap_decay"], fmap_max=p["fmap_max"],
                    mbstd_group=p["mbstd_group"])
  return g, d


def level_of(resolution: int) -> int:
  """4 -> 0, 8 -> 1, ..., the level index of a power-of-two resolution."""
  return int(np.log2(resolution)) - 2
