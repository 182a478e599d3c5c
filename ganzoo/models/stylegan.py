"""StyleGAN (v1) networks (Karras et al. 2019, "A Style-Based Generator Architecture for Generative
Adversarial Networks", arXiv:1812.04948), at the architecture of NVlabs/stylegan
training/networks_stylegan.py (G_style = G_mapping + G_synthesis, D_basic) with structure='fixed'.

Scope: the reference trains with progressive growing (structure 'linear' / 'recursive': a ToRGB and
a FromRGB per resolution, blended by lod). Its networks also have structure='fixed' (every
resolution present from the first step, one ToRGB at the output and one FromRGB at the input, no
growing); that is what is built here. Growing for StyleGAN v1 is not built yet.

Generator:
  mapping (G_mapping): z -> pixel norm (x / sqrt(mean(x^2) + 1e-8)) -> `map_layers` x [dense
    (gain sqrt(2)) + bias + leaky ReLU 0.2] -> w [N, w_dim], with lr multiplier 0.01 on these
    layers' weights and biases (equalized LR, `ganzoo.equalized_lr`, selected by the path
    'mapping'). It differs from StyleGAN2's mapping (`ganzoo.models.stylegan2.MappingNetwork`) in
    where the sqrt(2) sits: v1 scales the weight (lrelu(sqrt(2) x W + b)), v2 the activation
    (sqrt(2) lrelu(x W + b)), so the bias learns at a different speed; hence a mapping of its own.
  synthesis (G_synthesis): num_ws = 2 log2(R) - 2 layers, each ending in the layer epilogue
      noise (N(0, 1) per pixel, shared by the channels, times a learned per-channel weight, init 0)
      -> bias -> leaky ReLU 0.2 -> instance norm (per sample and channel over H, W; eps 1e-8)
      -> style modulation (AdaIN: [y_s, y_b] = dense(w_i) (gain 1) + bias; x (y_s + 1) + y_b)
    4x4: a learned constant (init ones) -> epilogue 0; conv 3x3 -> epilogue 1.
    r = 8 ... R: 2x upsampling conv 3x3 -> [1,2,1] blur -> epilogue; conv 3x3 -> epilogue.
    ToRGB: conv 1x1 (gain 1) + bias at R, no activation.
  Channels nf(stage) = min(fmap_base / 2^stage, fmap_max); the block at resolution 2^k has
  nf(k - 1) (fmap_decay 1).
Discriminator (D_basic): FromRGB conv 1x1 + bias + lrelu (nf(log2 R - 1)); per resolution
  r = R ... 8: conv 3x3 (nf(k-1)) + bias + lrelu, [1,2,1] blur, conv 3x3 (nf(k-2)) with 2x
  downsampling + bias + lrelu; at 4x4: minibatch stddev (group 4, 1 feature; StyleGAN2's layer,
  the same computation), conv 3x3 (nf(1)), dense nf(0) + lrelu, dense 1 (gain 1).
All weights have equalized LR in the reference (use_wscale): he_std = gain / sqrt(fan_in), gain
sqrt(2) but where said otherwise.

Parametrization: as ganzoo/models/stylegan2.py, the modules are written in effective weights:
kernels are drawn N(0, 1 / fan_in) and each layer multiplies its product by its own gain (sqrt(2)
or 1), so with `nets.<name>.eqlr` on (gain 1 in the config, lr_mul 0.01 for 'mapping') the stored
weights are N(0, 1) / m and the runtime coefficient is gain * m / sqrt(fan_in), the reference's
get_weight(use_wscale=True). Biases start at 0 (and the constant at 1, noise weights at 0: no
equalized LR on them, as the reference).

Resampling, as the reference computes it:
  upsampling conv: below 128x128 output, nearest-neighbour 2x then the conv (upscale2d, conv2d);
    at >= 128 the reference fuses them into a stride-2 transposed conv whose 4x4 kernel is the sum
    of the four shifted copies of the 3x3 kernel (fused_scale='auto'). That fused map equals
    nearest 2x then the conv with the kernel flipped in both spatial axes (worked out from
    conv2d_transpose's SAME padding, checked in tests/test_stylegan.py against the transpose of a
    stride-2 conv); it is computed that way here, so the weights mean what they mean there.
  downsampling conv: the conv then 2x2 average pooling (below 128x128 input), or the fused stride-2
    conv with the 4x4 kernel 0.25 * (sum of shifts) (>= 128); the two are the same map, so one form.
  blur: the depthwise [1,2,1] x [1,2,1] / 16 filter with zero padding 1 (blur2d, SAME).
Differences kept on purpose: NHWC instead of NCHW, so D's dense after the 4x4 conv flattens
(H, W, C) instead of (C, H, W) (a permutation of that layer's weight rows; same distribution).
Not built: progressive growing, label conditioning, the Table 1/4 ablations (use_styles=False,
pixel norm in G, no constant input).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo.models import stylegan2 as sg2

Array = jax.Array

SQRT2 = math.sqrt(2.0)
BLUR = (1.0, 2.0, 1.0)
FUSED_MIN_RES = 128   # fused_scale='auto': fused up/down-sampling convs at >= 128x128


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
  """Feature maps of a stage: min(int(fmap_base / 2^stage), fmap_max) (networks_stylegan.py nf, fmap_decay 1)."""
  return min(int(fmap_base / (2.0 ** stage)), fmap_max)


def num_layers(resolution: int) -> int:
  """Synthesis layers (= ws, = noise inputs): 2 log2(R) - 2 (18 at 1024, 8 at 32)."""
  return sg2.num_ws(resolution)


def noise_shapes(resolution: int) -> tuple[tuple[int, int, int], ...]:
  """The per-pixel noise buffers [H, W, 1] in layer order: two per resolution from 4x4 (the
  constant's epilogue and the conv's at 4x4; conv0 and conv1 above), one per w."""
  return tuple((2 ** i, 2 ** i, 1) for i in range(2, int(math.log2(resolution)) + 1) for _ in (0, 1))


# Presets. 'ffhq' is the reference's default network (G_synthesis / D_basic defaults: fmap_base 8192,
# fmap_max 512; G_mapping: 8 layers of 512, z = w = 512) at 1024x1024; '512' and '256' the same
# network at the FFHQ-512 / -256 configs of train.py. 'small' is a 32x32 CPU size, 'tiny' for tests.
PRESETS = {
    "ffhq": dict(resolution=1024, fmap_base=8192, fmap_max=512, z_dim=512, w_dim=512, map_layers=8, mbstd_group=4),
    "512": dict(resolution=512, fmap_base=8192, fmap_max=512, z_dim=512, w_dim=512, map_layers=8, mbstd_group=4),
    "256": dict(resolution=256, fmap_base=8192, fmap_max=512, z_dim=512, w_dim=512, map_layers=8, mbstd_group=4),
    "small": dict(resolution=32, fmap_base=1024, fmap_max=128, z_dim=128, w_dim=128, map_layers=4, mbstd_group=4),
    "tiny": dict(resolution=16, fmap_base=64, fmap_max=16, z_dim=16, w_dim=16, map_layers=2, mbstd_group=4),
}


# ---------------------------------------------------------------------------------------------
# Ops.

def lrelu(x: Array) -> Array:
  """max(x, 0.2 x): the reference's leaky_relu (its sqrt(2) gain lives in the weights)."""
  return jnp.where(x >= 0, x, 0.2 * x)


def blur_kernel() -> np.ndarray:
  """[1,2,1] x [1,2,1] normalized to sum 1 (= / 16), float32 (blur2d's filter)."""
  f = np.asarray(BLUR, np.float64)
  f2 = np.outer(f, f)
  return (f2 / f2.sum()).astype(np.float32)


def blur2d(x: Array) -> Array:
  """Depthwise 3x3 blur of NHWC x, zero padding 1 (TF 'SAME' for a 3x3 filter)."""
  c = x.shape[-1]
  k = jnp.tile(jnp.asarray(blur_kernel(), x.dtype)[:, :, None, None], (1, 1, 1, c))
  return jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=c)


def upscale2d(x: Array) -> Array:
  """Nearest-neighbour 2x (each pixel repeated 2x2; upscale2d)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downscale2d(x: Array) -> Array:
  """2x2 average pooling (downscale2d: the [0.5, 0.5] x [0.5, 0.5] filter with stride 2)."""
  n, h, w, c = x.shape
  return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def conv(x: Array, kernel: Array) -> Array:
  """k x k conv, stride 1, zero 'same' padding (TF SAME for odd k)."""
  p = kernel.shape[0] // 2
  dtype = jnp.result_type(x, kernel)
  return jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), (1, 1), ((p, p), (p, p)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def upscale_conv(x: Array, kernel: Array, fused: bool) -> Array:
  """upscale2d_conv2d: nearest 2x then the conv; `fused` (output >= 128): the reference's transposed
  conv, which is the same with the kernel flipped spatially (see the module docstring)."""
  if fused:
    kernel = kernel[::-1, ::-1]
  return conv(upscale2d(x), kernel)


def instance_norm(x: Array, eps: float = 1e-8) -> Array:
  """(x - mean) / sqrt(mean((x - mean)^2) + eps) over H, W per sample and channel, in float32 at least
  (instance_norm casts half precision up; float64 stays float64)."""
  y = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  y = y - jnp.mean(y, axis=(1, 2), keepdims=True)
  y = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=(1, 2), keepdims=True) + eps)
  return y.astype(x.dtype)


def style_mod(x: Array, style: Array) -> Array:
  """AdaIN's modulation: style [N, 2C] = [y_s, y_b]; x (y_s + 1) + y_b per channel (style_mod)."""
  c = x.shape[-1]
  dtype = jnp.result_type(x, style)
  scale, bias = style[:, None, None, :c].astype(dtype), style[:, None, None, c:].astype(dtype)
  return x.astype(dtype) * (scale + 1.0) + bias


# ---------------------------------------------------------------------------------------------
# Layers.

class Dense(nn.Module):
  """dense + bias (+ leaky ReLU): y = gain * x W + b, W drawn N(0, 1 / fan_in) (dense, apply_bias)."""
  features: int
  gain: float = SQRT2
  activation: bool = False

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    kernel = self.param("kernel", sg2.he_normal, (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    dtype = jnp.result_type(x, kernel)   # float32 latents into a float64 network compute in float64
    y = (x.astype(dtype) @ kernel.astype(dtype)) * self.gain + bias.astype(dtype).reshape(1, -1)
    return lrelu(y) if self.activation else y


class Conv(nn.Module):
  """k x k conv (optionally 2x up / 2x down) + bias (+ leaky ReLU); `blur` between the resampling and
  the rest as the reference places it: after the upsampling conv (G), before the downsampling one (D)."""
  features: int
  kernel_size: int = 3
  gain: float = SQRT2
  up: bool = False
  down: bool = False
  blur: bool = False
  bias: bool = True
  activation: bool = True

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", sg2.he_normal, (k, k, x.shape[-1], self.features))
    if self.up:
      y = upscale_conv(x, kernel, fused=2 * x.shape[1] >= FUSED_MIN_RES)
      if self.blur:
        y = blur2d(y)
    elif self.down:
      y = downscale2d(conv(blur2d(x) if self.blur else x, kernel))
    else:
      y = conv(x, kernel)
    y = y * self.gain
    if self.bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype).reshape(1, 1, 1, -1)
    return lrelu(y) if self.activation else y


class Epilogue(nn.Module):
  """layer_epilogue: noise * per-channel weight, bias, leaky ReLU, instance norm, style modulation."""

  @nn.compact
  def __call__(self, x, w, noise):
    c = x.shape[-1]
    weight = self.param("noise_weight", nn.initializers.zeros, (c,))
    if noise is not None:   # a key, or a given [N, H, W, 1] buffer
      noise = noise if jnp.ndim(noise) == 4 else jax.random.normal(noise, x.shape[:3] + (1,), x.dtype)
      x = x + noise.astype(x.dtype) * weight.astype(x.dtype).reshape(1, 1, 1, -1)
    x = x + self.param("bias", nn.initializers.zeros, (c,)).astype(x.dtype).reshape(1, 1, 1, -1)
    x = instance_norm(lrelu(x))
    return style_mod(x, Dense(2 * c, gain=1.0, name="style")(w))


# ---------------------------------------------------------------------------------------------
# Networks.

class MappingNetwork(nn.Module):
  """G_mapping: z -> pixel norm -> num_layers x (dense gain sqrt(2) + bias + lrelu) -> w [N, w_dim]
  (the hidden layers have `fmaps` features, the last w_dim)."""
  w_dim: int
  num_layers: int
  fmaps: int | None = None   # mapping_fmaps; None = w_dim (the reference's 512 = 512)

  @nn.compact
  def __call__(self, z):
    x = sg2.pixel_norm(z)
    for i in range(self.num_layers):
      feats = self.w_dim if i == self.num_layers - 1 else (self.fmaps or self.w_dim)
      x = Dense(feats, gain=SQRT2, activation=True, name=f"dense{i}")(x)
    return x


class SynthesisNetwork(nn.Module):
  """G_synthesis, structure 'fixed': ws [N, num_layers, w_dim] -> images [N, R, R, C]."""
  resolution: int
  out_channels: int
  fmap_base: int = 8192
  fmap_max: int = 512

  @nn.compact
  def __call__(self, ws, noise=None):
    log2 = int(math.log2(self.resolution))
    if 2 ** log2 != self.resolution or self.resolution < 4:
      raise ValueError(f"StyleGAN needs a power-of-two resolution >= 4; got {self.resolution}: "
                       "set config.data.image_size to 8, 16, 32, ...")
    n_layers = num_layers(self.resolution)
    if ws.shape[1] != n_layers:
      raise ValueError(f"the synthesis network takes {n_layers} ws; got {ws.shape[1]}")
    if isinstance(noise, (list, tuple)):   # per-layer noise buffers, in layer order
      noises = list(noise)
    elif noise is not None:
      noises = list(jax.random.split(noise, n_layers))
    else:
      noises = [None] * n_layers
    ch = lambda stage: nf(stage, self.fmap_base, self.fmap_max)
    const = self.param("const", nn.initializers.ones, (4, 4, ch(1)))
    x = jnp.broadcast_to(const[None].astype(jnp.result_type(ws, const)), (ws.shape[0], 4, 4, ch(1)))
    x = Epilogue(name="b4_const")(x, ws[:, 0], noises[0])
    x = Conv(ch(1), bias=False, activation=False, name="b4_conv")(x)
    x = Epilogue(name="b4_conv_epi")(x, ws[:, 1], noises[1])
    for k in range(3, log2 + 1):
      r = 2 ** k
      x = Conv(ch(k - 1), up=True, blur=True, bias=False, activation=False, name=f"b{r}_conv0_up")(x)
      x = Epilogue(name=f"b{r}_conv0_epi")(x, ws[:, 2 * k - 4], noises[2 * k - 4])
      x = Conv(ch(k - 1), bias=False, activation=False, name=f"b{r}_conv1")(x)
      x = Epilogue(name=f"b{r}_conv1_epi")(x, ws[:, 2 * k - 3], noises[2 * k - 3])
    return Conv(self.out_channels, 1, gain=1.0, activation=False, name="torgb")(x)


class Generator(sg2.StyleGenerator):
  """G_style (G_mapping + G_synthesis), with `ganzoo.models.stylegan2.StyleGenerator`'s interface:
  `mapping(z)`, `synthesis(ws, noise)`, `num_ws` = num_layers(R) ws, two noise buffers per resolution."""
  fmap_base: int = 8192
  fmap_max: int = 512

  def setup(self):
    self.mapping_net = MappingNetwork(self.w_dim, self.map_layers, name="mapping")
    self.synthesis_net = SynthesisNetwork(self.resolution, self.out_channels, self.fmap_base, self.fmap_max,
                                          name="synthesis")

  @property
  def noise_shapes(self) -> tuple[tuple[int, int, int], ...]:
    return noise_shapes(self.resolution)


class Discriminator(nn.Module):
  """D_basic, structure 'fixed' -> logits [N]."""
  resolution: int
  fmap_base: int = 8192
  fmap_max: int = 512
  mbstd_group: int = 4
  mbstd_features: int = 1

  @nn.compact
  def __call__(self, x, y=None, train: bool = True):
    del y, train
    log2 = int(math.log2(self.resolution))
    if 2 ** log2 != self.resolution or x.shape[1] != self.resolution or x.shape[2] != self.resolution:
      raise ValueError(f"D expects {self.resolution}x{self.resolution} images; got {x.shape[1:3]}")
    ch = lambda stage: nf(stage, self.fmap_base, self.fmap_max)
    h = Conv(ch(log2 - 1), 1, name="fromrgb")(x)
    for k in range(log2, 2, -1):
      r = 2 ** k
      h = Conv(ch(k - 1), name=f"b{r}_conv0")(h)
      h = Conv(ch(k - 2), down=True, blur=True, name=f"b{r}_conv1_down")(h)
    if self.mbstd_group > 1:
      h = sg2.minibatch_stddev(h, self.mbstd_group, self.mbstd_features)
    h = Conv(ch(1), name="b4_conv")(h)
    h = Dense(ch(0), activation=True, name="b4_dense0")(h)
    return Dense(1, gain=1.0, name="b4_dense1")(h)[:, 0]


def build(model: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> tuple[Generator, Discriminator]:
  """(G, D) from `config.model`: preset `model.size` (PRESETS), any preset field overridable by the same
  name in `config.model`, at `image_shape` (H, W, C); H must equal the preset's resolution."""
  size = model.get("size", "tiny")
  if size not in PRESETS:
    raise ValueError(f"unknown StyleGAN preset {size!r}; set config.model.size to one of {sorted(PRESETS)}")
  p = dict(PRESETS[size])
  for k in p:
    if model.get(k, None) is not None:
      p[k] = model[k]
  h, w, c = image_shape
  if h != w or h != p["resolution"]:
    raise ValueError(f"preset {size!r} is for {p['resolution']}x{p['resolution']} images; the data gives {h}x{w}: "
                     f"set config.data.image_size={p['resolution']} or config.model.resolution={h}")
  g = Generator(p["resolution"], c, z_dim=p["z_dim"], w_dim=p["w_dim"], map_layers=p["map_layers"],
                fmap_base=p["fmap_base"], fmap_max=p["fmap_max"])
  d = Discriminator(p["resolution"], fmap_base=p["fmap_base"], fmap_max=p["fmap_max"], mbstd_group=p["mbstd_group"])
  return g, d
