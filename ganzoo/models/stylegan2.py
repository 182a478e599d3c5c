"""StyleGAN2 networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN",
arXiv:1912.04958), at the architecture of NVlabs/stylegan2-ada-pytorch training/networks.py and
the presets of its train.py.

Generator = mapping network + synthesis network:
  mapping: z -> pixel norm (x / sqrt(mean(x^2) + 1e-8)) -> `map_layers` x [FC(w_dim) + lrelu]
    -> w, broadcast to `num_ws` = 2 log2(R) - 2 copies. These layers train with lr multiplier 0.01
    (equalized LR, `ganzoo.equalized_lr`, selected by the path 'mapping'). `update_w_avg` is the
    running mean of w (beta 0.995) that truncation uses; the family keeps it in its state.
  synthesis, 'skip' architecture: a learned constant 4x4 input; per resolution r = 4, 8, ..., R a
    block of two modulated 3x3 convs (one at r = 4; the first of the others upsamples 2x) and a
    toRGB (modulated 1x1 conv, no demodulation); the images of the toRGBs are summed, each
    upsampled 2x by the FIR filter [1, 3, 3, 1] (gain 4) to the next resolution.
  modulated conv: styles s = affine(w) (FC, bias init 1); w'_{o,i,k} = w_{o,i,k} s_i;
    demodulation w''_{o,i,k} = w'_{o,i,k} / sqrt(sum_{i,k} w'^2 + 1e-8) (Eq. 1-3 of the paper);
    then noise (per-pixel N(0, 1) times a learned scalar strength, init 0), bias, leaky ReLU 0.2
    with gain sqrt(2), clamp to +-conv_clamp. Computed unfused (x * s -> conv -> * demod), the
    reference's training path; 2x upsampling is a stride-2 transposed conv followed by the FIR
    filter (padding 1: the reference's conv2d_resample sizes).
Discriminator, 'resnet' (or 'orig', the cifar preset's): per resolution R, ..., 8 a block:
  fromRGB (1x1, first block only), conv 3x3, conv 3x3 with 2x FIR downsampling (filter, then
  stride 2); 'resnet' adds a 1x1 skip (no bias, FIR down) and both branches are scaled by sqrt(0.5).
  Epilogue at 4x4: minibatch stddev (group size `mbstd_group`, `mbstd_channels` features: the
  stddev over each group, averaged over channel groups and pixels), conv 3x3, FC(C) + lrelu, FC(1).
Channel widths: C(r) = min(channel_base // r, channel_max) for G and D alike.

Parametrization: these modules are written in the *effective* weights. Their initializers draw
kernels N(0, 1 / fan_in) and the reference's biases, so without equalized LR they are the same
networks at init; with `nets.<name>.eqlr` on (the configs do: gain 1, lr_mul 0.01 for 'mapping')
the stored weights are N(0, 1) / m and the forward scales them, as the reference does. The one
difference from the reference's scaling: its ToRGB multiplies the styles by 1 / sqrt(fan_in)
instead of the weight; modulation is bilinear, so the output is the same. Demodulation's 1e-8 is
added to a sum of effective (not stored) squared weights, i.e. relative to a sum ~1 instead of
~fan_in: a difference of < 1e-8 relative in the output.

Not built: mixed precision (num_fp16_res; the clamp is kept: conv_clamp 256 as the presets),
class conditioning (c_dim > 0), the 'resnet' generator and the 'skip' discriminator.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

Array = jax.Array

FIR = (1.0, 3.0, 3.0, 1.0)
LRELU_GAIN = math.sqrt(2.0)


def he_normal(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """N(0, 1 / fan_in), untruncated (the reference draws randn and scales by 1 / sqrt(fan_in))."""
  return jax.random.normal(key, shape, dtype) / math.sqrt(math.prod(shape[:-1]))


# Presets of stylegan2-ada-pytorch train.py (cfg_specs): channel_base = fmaps * 32768,
# channel_max 512, z_dim = w_dim = 512, conv_clamp 256; cifar's D is 'orig' (train.py disables the
# residual D, style mixing and path length for cifar). 'tiny' is for tests (16x16).
PRESETS = {
    "cifar": dict(resolution=32, channel_base=32768, channel_max=512, z_dim=512, w_dim=512, map_layers=2,
                  mbstd_group=32, d_architecture="orig"),
    "paper256": dict(resolution=256, channel_base=16384, channel_max=512, z_dim=512, w_dim=512, map_layers=8,
                     mbstd_group=8, d_architecture="resnet"),
    "stylegan2": dict(resolution=1024, channel_base=32768, channel_max=512, z_dim=512, w_dim=512, map_layers=8,
                      mbstd_group=4, d_architecture="resnet"),
    "small": dict(resolution=32, channel_base=2048, channel_max=128, z_dim=128, w_dim=128, map_layers=4,
                  mbstd_group=4, d_architecture="resnet"),
    "tiny": dict(resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16, map_layers=2,
                 mbstd_group=4, d_architecture="resnet"),
}


def channels(res: int, channel_base: int, channel_max: int) -> int:
  """C(r) = min(channel_base // r, channel_max) (training/networks.py, channels_dict)."""
  return min(channel_base // res, channel_max)


def num_ws(resolution: int) -> int:
  """Number of w vectors the synthesis network consumes: 2 log2(R) - 2 (18 at 1024, 8 at 32)."""
  return 2 * int(math.log2(resolution)) - 2


def noise_shapes(resolution: int) -> tuple[tuple[int, int, int], ...]:
  """The per-pixel noise buffers [H, W, 1] in the order SynthesisNetwork consumes them: b4's one
  conv, then conv0 and conv1 of every later block (toRGB takes none): num_ws - 1 buffers."""
  res = [2 ** i for i in range(3, int(math.log2(resolution)) + 1)]
  return ((4, 4, 1),) + tuple((r, r, 1) for r in res for _ in (0, 1))


# ---------------------------------------------------------------------------------------------
# Ops.

def pixel_norm(x: Array, eps: float = 1e-8) -> Array:
  """x / sqrt(mean(x^2 over the last axis) + eps) (normalize_2nd_moment)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def lrelu(x: Array, gain: float = 1.0, clamp: float | None = None) -> Array:
  """Leaky ReLU 0.2 times sqrt(2) * gain, clamped to +-clamp * gain (bias_act 'lrelu')."""
  x = jnp.where(x >= 0, x, 0.2 * x) * (LRELU_GAIN * gain)
  if clamp is not None:
    x = jnp.clip(x, -clamp * gain, clamp * gain)
  return x


def fir_filter(up: int = 1) -> np.ndarray:
  """The 2D FIR [1,3,3,1] x [1,3,3,1], normalized to sum 1, times up^2 (keeps the mean when upsampling)."""
  f = np.asarray(FIR, np.float64)
  f2 = np.outer(f, f)
  return (f2 / f2.sum() * up * up).astype(np.float32)


def upfirdn(x: Array, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Array:
  """upfirdn2d with the FIR filter, NHWC: zero-insert by `up`, pad (before, after), filter, keep every
  `down`-th pixel (torch_utils/ops/upfirdn2d.py; the filter is symmetric, so correlation = convolution)."""
  n, h, w, c = x.shape
  if up > 1:
    x = jnp.zeros((n, h, up, w, up, c), x.dtype).at[:, :, 0, :, 0, :].set(x).reshape(n, h * up, w * up, c)
  x = jnp.pad(x, ((0, 0), pad, pad, (0, 0)))
  f = jnp.asarray(fir_filter(up), x.dtype)
  kernel = jnp.tile(f[:, :, None, None], (1, 1, 1, c))   # depthwise (4, 4, 1, C)
  return jax.lax.conv_general_dilated(x, kernel, (down, down), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=c)


def upsample2d(x: Array) -> Array:
  """2x FIR upsampling of an image: padding (2, 1), gain 4 (upfirdn2d.upsample2d)."""
  return upfirdn(x, up=2, pad=(2, 1))


def conv2d(x: Array, kernel: Array, up: int = 1, down: int = 1) -> Array:
  """A k x k conv with 'same' size, or with 2x FIR resampling as conv2d_resample does it:
  up: stride-2 transposed conv (2H + k - 2) then the filter with padding 1 (-> 2H, for k = 3);
  down: the filter with padding 2 (k = 3) or 1 (k = 1) then the conv with stride 2 (-> H / 2)."""
  k = kernel.shape[0]
  dn = ("NHWC", "HWIO", "NHWC")
  dtype = jnp.result_type(x, kernel)   # float32 images into a float64 network compute in float64
  x, kernel = x.astype(dtype), kernel.astype(dtype)
  if up > 1:
    if k != 3:
      raise ValueError(f"2x upsampling conv is built for 3x3 kernels (the synthesis layers); got {k}x{k}")
    y = jax.lax.conv_transpose(x, kernel, (2, 2), "VALID", dimension_numbers=dn)   # 2H + 1
    return upfirdn(y, pad=(1, 1)) * 4.0   # the filter's up gain 4, as upfirdn2d(gain=up**2)
  if down > 1:
    p = (k + 1) // 2   # 2 for k = 3, 1 for k = 1
    y = upfirdn(x, pad=(p, p))
    return jax.lax.conv_general_dilated(y, kernel, (2, 2), "VALID", dimension_numbers=dn)
  p = k // 2
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)), dimension_numbers=dn)


def modulated_conv(x: Array, kernel: Array, styles: Array, demodulate: bool = True, up: int = 1) -> Array:
  """Modulated convolution (arXiv:1912.04958 Eq. 1-3): weights w_{k,i,o} s_i, divided (demodulate)
  by sqrt(sum_{k,i} (w_{k,i,o} s_i)^2 + 1e-8) per sample and output channel; computed unfused:
  conv(x * s) * d, which is the same linear map."""
  x = x * styles[:, None, None, :].astype(x.dtype)
  y = conv2d(x, kernel, up=up)
  if demodulate:
    w = kernel[None] * styles[:, None, None, :, None]                      # [N, k, k, I, O]
    d = jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8)        # [N, O]
    y = y * d[:, None, None, :]
  return y


def update_w_avg(w_avg: Array, w: Array, beta: float = 0.995) -> Array:
  """The running mean of w that truncation uses: lerp(mean_batch(w), w_avg, beta) (MappingNetwork)."""
  return beta * w_avg + (1.0 - beta) * jnp.mean(jax.lax.stop_gradient(w), axis=0)


def truncate(ws: Array, w_avg: Array, psi: float, cutoff: int | None = None) -> Array:
  """w_avg + psi (w - w_avg) for the first `cutoff` ws (all when None) (truncation trick)."""
  w_avg = w_avg.reshape((1,) * (ws.ndim - 1) + (-1,))
  t = w_avg + psi * (ws - w_avg)
  if cutoff is None:
    return t
  return ws.at[:, :cutoff].set(t[:, :cutoff])


# ---------------------------------------------------------------------------------------------
# Layers.

class FC(nn.Module):
  """Fully connected layer with bias (init `bias_init`) and an optional leaky ReLU (FullyConnectedLayer)."""
  features: int
  activation: bool = False
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", he_normal, (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
    y = x @ kernel + bias.reshape((1,) * (x.ndim - 1) + (-1,))
    return lrelu(y) if self.activation else y


class Conv(nn.Module):
  """Conv2dLayer: k x k conv (optionally 2x FIR down), bias, leaky ReLU with gain, clamp."""
  features: int
  kernel_size: int = 3
  down: int = 1
  use_bias: bool = True
  activation: bool = True
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, gain: float = 1.0):
    k = self.kernel_size
    kernel = self.param("kernel", he_normal, (k, k, x.shape[-1], self.features))
    y = conv2d(x, kernel, down=self.down)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).reshape(1, 1, 1, -1)
    if self.activation:
      return lrelu(y, gain, self.conv_clamp)
    y = y * gain
    return jnp.clip(y, -self.conv_clamp * gain, self.conv_clamp * gain) if self.conv_clamp is not None else y


class SynthesisLayer(nn.Module):
  """Modulated 3x3 conv (optionally 2x up) + noise * strength + bias + lrelu (SynthesisLayer)."""
  features: int
  up: int = 1
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, w, noise_rng):
    styles = FC(x.shape[-1], bias_init=1.0, name="affine")(w)
    kernel = self.param("kernel", he_normal, (3, 3, x.shape[-1], self.features))
    y = modulated_conv(x, kernel, styles, demodulate=True, up=self.up)
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    if noise_rng is not None:   # a key, or a given [N, H, W, 1] buffer (the projector's optimized noise)
      noise = noise_rng if jnp.ndim(noise_rng) == 4 else jax.random.normal(noise_rng, y.shape[:3] + (1,), y.dtype)
      y = y + noise.astype(y.dtype) * strength
    y = y + self.param("bias", nn.initializers.zeros, (self.features,)).reshape(1, 1, 1, -1)
    return lrelu(y, 1.0, self.conv_clamp)


class ToRGB(nn.Module):
  """Modulated 1x1 conv without demodulation + bias, clamped (ToRGBLayer)."""
  channels: int
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, w):
    styles = FC(x.shape[-1], bias_init=1.0, name="affine")(w)
    kernel = self.param("kernel", he_normal, (1, 1, x.shape[-1], self.channels))
    y = modulated_conv(x, kernel, styles, demodulate=False)
    y = y + self.param("bias", nn.initializers.zeros, (self.channels,)).reshape(1, 1, 1, -1)
    return jnp.clip(y, -self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y


def minibatch_stddev(x: Array, group_size: int | None, num_channels: int = 1) -> Array:
  """Appends `num_channels` feature maps: the stddev over groups of G = min(group_size, N) samples
  (sample i in group i mod N/G, as the reference's reshape), averaged over the C / F channels of each
  channel group and over pixels (MinibatchStdLayer; ProGAN arXiv:1710.10196 Sec. 3)."""
  n, h, w, c = x.shape
  g = n if group_size is None else min(group_size, n)
  f = num_channels
  if n % g or c % f:
    raise ValueError(f"minibatch stddev: the batch {n} must be a multiple of the group size {g} and the "
                     f"{c} channels of mbstd_channels {f}; set model.mbstd_group to a divisor of the batch")
  y = x.reshape(g, n // g, h, w, f, c // f)
  y = y - jnp.mean(y, axis=0, keepdims=True)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)        # [n/G, H, W, F, c]
  y = jnp.mean(y, axis=(1, 2, 4))                              # [n/G, F]
  y = jnp.tile(y, (g, 1))[:, None, None, :]                    # sample i -> group row i mod n/G
  y = jnp.broadcast_to(y, (n, h, w, f))
  return jnp.concatenate([x, y], axis=-1)


# ---------------------------------------------------------------------------------------------
# Networks.

class MappingNetwork(nn.Module):
  """z -> pixel norm -> num_layers x (FC + lrelu) -> w [N, w_dim] (lr multiplier 0.01 by config)."""
  w_dim: int
  num_layers: int

  @nn.compact
  def __call__(self, z):
    x = pixel_norm(z)
    for i in range(self.num_layers):
      x = FC(self.w_dim, activation=True, name=f"fc{i}")(x)
    return x


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> images [N, R, R, C] ('skip' architecture, SynthesisNetwork)."""
  resolution: int
  out_channels: int
  channel_base: int
  channel_max: int
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, ws, noise_rng=None):
    n = ws.shape[0]
    ch = lambda r: channels(r, self.channel_base, self.channel_max)
    log2 = int(math.log2(self.resolution))
    if 2 ** log2 != self.resolution or self.resolution < 4:
      raise ValueError(f"StyleGAN2 needs a power-of-two resolution >= 4; got {self.resolution}: "
                       "set config.data.image_size to 16, 32, 64, ...")
    if ws.shape[1] != num_ws(self.resolution):
      raise ValueError(f"the synthesis network takes {num_ws(self.resolution)} ws; got {ws.shape[1]}")
    if isinstance(noise_rng, (list, tuple)):   # per-layer noise buffers, in layer order (ganzoo.latent)
      keys = iter(noise_rng)
    else:
      keys = iter(jax.random.split(noise_rng, 2 * log2)) if noise_rng is not None else None
    nxt = lambda: next(keys) if keys is not None else None
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)))
    x = jnp.broadcast_to(const[None], (n, 4, 4, ch(4)))
    img, wi = None, 0
    for r in (2 ** i for i in range(2, log2 + 1)):
      name = f"b{r}"
      if r == 4:
        x = SynthesisLayer(ch(4), conv_clamp=self.conv_clamp, name=f"{name}_conv1")(x, ws[:, 0], nxt())
        rgb_w = ws[:, 1]
        wi = 1
      else:
        x = SynthesisLayer(ch(r), up=2, conv_clamp=self.conv_clamp, name=f"{name}_conv0")(x, ws[:, wi], nxt())
        x = SynthesisLayer(ch(r), conv_clamp=self.conv_clamp, name=f"{name}_conv1")(x, ws[:, wi + 1], nxt())
        rgb_w = ws[:, wi + 2]
        wi += 2
      if img is not None:
        img = upsample2d(img)
      y = ToRGB(self.out_channels, conv_clamp=self.conv_clamp, name=f"{name}_torgb")(x, rgb_w)
      img = y if img is None else img + y
    return img


class StyleGenerator(nn.Module):
  """A style-based G: `G.apply(v, z, train=..., rngs={'dropout': key})` -> images (per-layer noise from
  the 'dropout' stream; none without it). Methods `mapping(z)` -> w and `synthesis(ws, noise)` ->
  images (noise: a key, a list of buffers [N, H, W, 1] in `noise_shapes` order, or None); `num_ws`
  ws of `w_dim`. A subclass's `setup` builds `mapping_net` and `synthesis_net` and it defines
  `noise_shapes` (StyleGAN2 below, StyleGAN v1 in ganzoo.models.stylegan). Style mixing and
  truncation live in the families."""
  resolution: int
  out_channels: int
  z_dim: int = 512
  w_dim: int = 512
  map_layers: int = 8

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def mapping(self, z, train: bool = True):
    del train
    return self.mapping_net(z)

  def synthesis(self, ws, noise_rng=None, train: bool = True):
    del train
    return self.synthesis_net(ws, noise_rng)

  def __call__(self, z, y=None, train: bool = True, ws_out: bool = False):
    del y, train   # unconditional; no batch statistics, no dropout
    w = self.mapping_net(z)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
    noise = self.make_rng("dropout") if self.has_rng("dropout") else None
    img = self.synthesis_net(ws, noise)
    return (img, w) if ws_out else img


class Generator(StyleGenerator):
  """StyleGAN2 G (training/networks.py Generator: MappingNetwork + SynthesisNetwork)."""
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = 256.0

  def setup(self):
    self.mapping_net = MappingNetwork(self.w_dim, self.map_layers, name="mapping")
    self.synthesis_net = SynthesisNetwork(self.resolution, self.out_channels, self.channel_base, self.channel_max,
                                          self.conv_clamp, name="synthesis")

  @property
  def noise_shapes(self) -> tuple[tuple[int, int, int], ...]:
    return noise_shapes(self.resolution)


class Discriminator(nn.Module):
  """StyleGAN2 D ('resnet' or 'orig' blocks + epilogue with minibatch stddev) -> logits [N]."""
  resolution: int
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "resnet"
  mbstd_group: int | None = 4
  mbstd_channels: int = 1
  conv_clamp: float | None = 256.0

  @nn.compact
  def __call__(self, x, y=None, train: bool = True):
    del y, train
    if self.architecture not in ("resnet", "orig"):
      raise ValueError(f"StyleGAN2 D architecture must be 'resnet' or 'orig'; got {self.architecture!r}")
    ch = lambda r: channels(r, self.channel_base, self.channel_max)
    log2 = int(math.log2(self.resolution))
    if 2 ** log2 != self.resolution or x.shape[1] != self.resolution:
      raise ValueError(f"D expects {self.resolution}x{self.resolution} images; got {x.shape[1:3]}")
    clamp = self.conv_clamp
    h = None
    for r in (2 ** i for i in range(log2, 2, -1)):
      name = f"b{r}"
      if h is None:
        h = Conv(ch(r), 1, conv_clamp=clamp, name=f"{name}_fromrgb")(x)
      if self.architecture == "resnet":
        s = Conv(ch(r // 2), 1, down=2, use_bias=False, activation=False, name=f"{name}_skip")(h, math.sqrt(0.5))
        h = Conv(ch(r), 3, conv_clamp=clamp, name=f"{name}_conv0")(h)
        h = Conv(ch(r // 2), 3, down=2, conv_clamp=clamp, name=f"{name}_conv1")(h, math.sqrt(0.5))
        h = s + h
      else:
        h = Conv(ch(r), 3, conv_clamp=clamp, name=f"{name}_conv0")(h)
        h = Conv(ch(r // 2), 3, down=2, conv_clamp=clamp, name=f"{name}_conv1")(h)
    c4 = ch(4)
    if self.mbstd_channels > 0:
      h = minibatch_stddev(h, self.mbstd_group, self.mbstd_channels)
    h = Conv(c4, 3, conv_clamp=clamp, name="b4_conv")(h)
    h = FC(c4, activation=True, name="b4_fc")(h.reshape(h.shape[0], -1))
    return FC(1, name="b4_out")(h)[:, 0]


def build(model: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> tuple[Generator, Discriminator]:
  """(G, D) from `config.model` (preset name in `model.size`, any preset field overridable by the
  same name in `config.model`) at `image_shape` (H, W, C); H must equal the preset's resolution
  unless `model.resolution` is set."""
  size = model.get("size", "tiny")
  if size not in PRESETS:
    raise ValueError(f"unknown StyleGAN2 preset {size!r}; set config.model.size to one of {sorted(PRESETS)}")
  p = dict(PRESETS[size])
  for k in p:
    if model.get(k, None) is not None:
      p[k] = model[k]
  h, w, c = image_shape
  if h != w or h != p["resolution"]:
    raise ValueError(f"preset {size!r} is for {p['resolution']}x{p['resolution']} images; the data gives {h}x{w}: "
                     f"set config.data.image_size={p['resolution']} or config.model.resolution={h}")
  clamp = model.get("conv_clamp", 256.0)
  g = Generator(p["resolution"], c, z_dim=p["z_dim"], w_dim=p["w_dim"], map_layers=p["map_layers"],
                channel_base=p["channel_base"], channel_max=p["channel_max"], conv_clamp=clamp)
  d = Discriminator(p["resolution"], channel_base=p["channel_base"], channel_max=p["channel_max"],
                    architecture=p["d_architecture"], mbstd_group=p["mbstd_group"],
                    mbstd_channels=int(model.get("mbstd_channels", 1)), conv_clamp=clamp)
  return g, d
