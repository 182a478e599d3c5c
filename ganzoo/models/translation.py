"""The image-to-image translation networks of pix2pix and CycleGAN.

pix2pix: Isola et al. 2017 (arXiv:1611.07004); CycleGAN: Zhu et al. 2017 (arXiv:1703.10593). The
layer lists are those of the authors' code, junyanz/pytorch-CycleGAN-and-pix2pix
`models/networks.py` (`define_G`, `define_D`, `UnetGenerator`, `UnetSkipConnectionBlock`,
`ResnetGenerator`, `ResnetBlock`, `NLayerDiscriminator`, `PixelDiscriminator`), with the same
parameter counts (tests/test_translation_models.py computes them from that layer list by hand):

  UnetGenerator (`unet_256`: 8 downsamplings, 256 -> 1; `unet_128`: 7, 128 -> 1), built from
  `UnetSkipConnectionBlock`s, outermost to innermost (outer_nc, inner_nc) = (output_nc, ngf),
  (ngf, 2 ngf), (2 ngf, 4 ngf), (4 ngf, 8 ngf), then num_downs - 5 blocks (8 ngf, 8 ngf) with
  dropout, then the innermost (8 ngf, 8 ngf). A block maps x [.., outer] to concat(x, up(sub(down(x)))):
    outermost:    Conv4x4 s2 p1 -> sub -> ReLU -> ConvT4x4 s2 p1 (with bias) -> tanh   (no concat)
    intermediate: LReLU(0.2) -> Conv4x4 s2 p1 -> norm -> sub -> ReLU -> ConvT4x4 s2 p1 -> norm
                  [-> Dropout(0.5) in the (8 ngf, 8 ngf) blocks when use_dropout]
    innermost:    LReLU(0.2) -> Conv4x4 s2 p1 -> ReLU -> ConvT4x4 s2 p1 -> norm  (no norm at 1x1)
  ResnetGenerator (`resnet_9blocks`, `resnet_6blocks`): ReflectionPad 3, Conv7x7 (ngf), norm, ReLU;
  2 x [Conv3x3 s2 p1 (x2 channels), norm, ReLU]; n_blocks ResnetBlocks at 4 ngf (x + [ReflPad 1,
  Conv3x3, norm, ReLU, (Dropout 0.5), ReflPad 1, Conv3x3, norm]); 2 x [ConvT3x3 s2 p1
  output_padding 1 (/2 channels), norm, ReLU]; ReflectionPad 3, Conv7x7 (output_nc, with bias), tanh.
  NLayerDiscriminator (`basic` = n_layers 3, the 70x70 PatchGAN; n_layers 1 is the 16x16 one):
  Conv4x4 s2 p1 (ndf, with bias), LReLU(0.2); for n in 1..n_layers-1: Conv4x4 s2 p1
  (ndf min(2^n, 8)), norm, LReLU; Conv4x4 s1 p1 (ndf min(2^n_layers, 8)), norm, LReLU;
  Conv4x4 s1 p1 (1, with bias) -> logits [N, h, w, 1] (256 -> 30x30 for the 70x70 D).
  PixelDiscriminator (`pixel`, the 1x1 PixelGAN): Conv1x1 (ndf, with bias), LReLU, Conv1x1 (2 ndf),
  norm, LReLU, Conv1x1 (1).

As in the reference:
- `use_bias = (norm == 'instance')` for every conv followed by a norm (a bias before BatchNorm is
  cancelled; InstanceNorm there has no affine part, so the conv keeps its bias); the layers marked
  "with bias" above always have one, and with norm 'none' the other convs have none (the reference's
  `use_bias` is False then too).
- Norms (`get_norm_layer`): 'batch' is BatchNorm2d(affine) with eps 1e-5 and momentum 0.1 (0.9 here),
  its running variance updated with the unbiased batch variance as torch does; 'instance' is
  InstanceNorm2d(affine=False, track_running_stats=False): per sample and channel over H, W, eps
  1e-5, no params and no statistics; 'none' is the identity.
- Init (`init_weights`, init_type 'normal', gain 0.02): conv weights N(0, 0.02), biases 0,
  BatchNorm scales N(1, 0.02) and offsets 0. 'xavier', 'kaiming' and 'orthogonal' follow torch's
  initializers in distribution.
- Reflection padding is torch's ReflectionPad2d (numpy 'reflect': the edge pixel is not repeated).
- Transposed convs keep flax's `nn.ConvTranspose` kernel layout (k, k, Cin, Cout), spatially flipped
  relative to torch's (Cin, Cout, k, k) weight: y = conv(dilate_2(x), kernel) with the padding that
  gives torch's output size (4x4 s2 p1 -> 2H; 3x3 s2 p1 output_padding 1 -> 2H).

Modes: `train` picks BatchNorm's batch statistics (and updates its running averages: pass
`mutable=['batch_stats']`) versus the running averages; `dropout` switches dropout, default `train`
(the 'dropout' rng feeds it). They are independent because pix2pix's test time (the paper's Sec. 3.3
and the reference's test.py, which never calls `model.eval()` unless `--eval`) runs BatchNorm on the
test batch's statistics with dropout on: call `G(x, train=True, dropout=True)` there and drop the
returned statistics if the running averages must not move.
"""

from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganzoo.models import layers

Array = jax.Array
Initializer = Callable[..., Array]

NORMS = ('batch', 'instance', 'none')
INIT_TYPES = ('normal', 'xavier', 'kaiming', 'orthogonal')
GENERATORS = ('unet_256', 'unet_128', 'resnet_9blocks', 'resnet_6blocks')
DISCRIMINATORS = ('basic', 'n_layers', 'pixel')

# torch: InstanceNorm2d / BatchNorm2d eps; BatchNorm2d momentum 0.1 = flax's 0.9 (ra = 0.9 ra + 0.1 batch).
EPS = 1e-5
BN_MOMENTUM = 0.9
LEAK = 0.2


def _check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")


def use_bias_for(norm: str) -> bool:
  """The reference's `use_bias`: convs that feed a norm have a bias only under InstanceNorm."""
  _check_norm(norm)
  return norm == 'instance'


def kernel_init(init_type: str = 'normal', gain: float = 0.02, transposed: bool = False) -> Initializer:
  """`init_weights`' conv initializer for a flax (k, k, Cin, Cout) kernel.

  'normal': N(0, gain^2). 'xavier': torch `xavier_normal_(gain)`, std = gain sqrt(2 / (fan_in + fan_out)).
  'kaiming': `kaiming_normal_(a=0, mode='fan_in')`, std = sqrt(2 / fan_in), with torch's fan_in of a
  transposed conv (its weight's dim 1, the output channels). 'orthogonal': `orthogonal_(gain)` with
  torch's rows (dim 0: Cout of a conv, Cin of a transposed conv).
  """
  if init_type == 'normal':
    return nn.initializers.normal(stddev=gain)
  if init_type == 'xavier':
    return nn.initializers.variance_scaling(gain * gain, 'fan_avg', 'normal')
  if init_type == 'kaiming':
    in_axis, out_axis = (-1, -2) if transposed else (-2, -1)
    return nn.initializers.variance_scaling(2.0, 'fan_in', 'normal', in_axis=in_axis, out_axis=out_axis)
  if init_type == 'orthogonal':
    return nn.initializers.orthogonal(scale=gain, column_axis=-2 if transposed else -1)
  raise ValueError(f"unknown init_type {init_type!r}; use one of {INIT_TYPES}")


def bn_scale_init(gain: float = 0.02) -> Initializer:
  """BatchNorm scales ~ N(1, gain^2) (`init_weights`, whatever the init_type)."""
  def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    return 1.0 + gain * jax.random.normal(key, shape, dtype)
  return init


def _channels(v: Array, x: Array) -> Array:
  return v.reshape((1,) * (x.ndim - 1) + (-1,))


class BatchNorm(nn.Module):
  """torch `BatchNorm2d(affine=True)`: batch statistics when `train`, running averages otherwise.

  Params `scale`, `bias` and batch_stats `mean`, `var` as in flax. The normalization uses the
  biased batch variance; the running variance is updated with the unbiased one (x n / (n - 1),
  n = N H W), as torch does, so running statistics match the reference's.
  """
  train: bool = False
  momentum: float = BN_MOMENTUM
  epsilon: float = EPS
  scale_init: Initializer = bn_scale_init()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = self.param('scale', self.scale_init, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (c,), jnp.float32)
    if not self.train:
      inv = jax.lax.rsqrt(ra_var.value + self.epsilon)
      return (x - _channels(ra_mean.value, x)) * _channels(inv * scale, x) + _channels(bias, x)
    # layers' BatchNorm kernel: batch moments as matrix products, hand-written backward (fast on CPU).
    y, mean, var = layers._normalize_train(x, scale, bias, self.epsilon)  # pylint: disable=protected-access
    if not self.is_initializing():
      n = x.size // c
      unbiased = var * (n / max(n - 1, 1))
      mean, unbiased = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(unbiased)
      ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * unbiased
    return y


def instance_norm(x: Array, epsilon: float = EPS) -> Array:
  """torch `InstanceNorm2d(affine=False, track_running_stats=False)` on NHWC: per sample and channel,
  (x - mean_hw) / sqrt(var_hw + eps) with the biased variance, in train and test alike."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  centered = x - mean
  var = jnp.mean(centered * centered, axis=(1, 2), keepdims=True)
  return centered * jax.lax.rsqrt(var + epsilon)


def _norm(kind: str, train: bool, gain: float, name: str) -> Callable[[Array], Array]:
  """The reference's `norm_layer(channels)` for norm `kind`."""
  if kind == 'batch':
    return BatchNorm(train=train, scale_init=bn_scale_init(gain), name=name)
  if kind == 'instance':
    return instance_norm
  _check_norm(kind)
  return lambda x: x


def reflect_pad(x: Array, p: int) -> Array:
  """torch `ReflectionPad2d(p)` on NHWC (the border pixel itself is not repeated)."""
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')


def leaky_relu(x: Array) -> Array:
  return nn.leaky_relu(x, LEAK)


def _conv(features: int, k: int, stride: int, pad: int, use_bias: bool, init: Initializer, name: str) -> layers.Conv:
  """torch `Conv2d(k, stride, padding=pad)` (zero padding); the 4x4/s2/p1 form takes layers' fast path."""
  return layers.Conv(features, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                     use_bias=use_bias, kernel_init=init, name=name)


_DN = ('NHWC', 'HWIO', 'NHWC')


def conv_transpose3x3_2x(x: Array, kernel: Array, precision: Any = None) -> Array:
  """torch `ConvTranspose2d(k=3, s=2, p=1, output_padding=1)`: [N, H, W, Cin] -> [N, 2H, 2W, Cout].

  `kernel` is flax's (3, 3, Cin, Cout) transposed-conv kernel (spatially flipped torch weight), i.e.
  the result equals `lax.conv_general_dilated(x, kernel, (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2))`.
  Per spatial axis y[2m] = w[1] x[m] and y[2m + 1] = w[0] x[m] + w[2] x[m + 1] (x[H] = 0), so each of
  the four output phases is its own small stride-1 convolution (1x1, 1x2, 2x1 and 2x2 taps: the 9
  taps once, no multiplications by the dilation's zeros), interleaved by a reshape. Autodiff of these
  stays on stride-1 convolutions: measured 1.4-1.6x faster fwd+bwd than one sub-pixel 2x2 conv with
  4 * Cout outputs (which multiplies 16 taps), and ~20x faster than XLA:CPU's gradients of the
  lhs-dilated form, at the ResnetGenerator's sizes (64x64x256 -> 128, 128x128x128 -> 64).
  """
  kh, kw, _, cout = kernel.shape
  if (kh, kw) != (3, 3):
    raise ValueError(f"conv_transpose3x3_2x needs a 3x3 kernel; got {kh}x{kw}")
  n, h, w, _ = x.shape

  def conv(inp, k, pad_h, pad_w):
    inp = jnp.pad(inp, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    return jax.lax.conv_general_dilated(inp, k, (1, 1), 'VALID', dimension_numbers=_DN, precision=precision)

  even_rows = jnp.stack([conv(x, kernel[1:2, 1:2], 0, 0), conv(x, kernel[1:2, 0::2], 0, 1)], axis=3)
  odd_rows = jnp.stack([conv(x, kernel[0::2, 1:2], 1, 0), conv(x, kernel[0::2, 0::2], 1, 1)], axis=3)
  return jnp.stack([even_rows, odd_rows], axis=2).reshape(n, 2 * h, 2 * w, cout)


class ConvTranspose3x3(layers._UpsampleLayer):  # pylint: disable=protected-access
  """The ResnetGenerator's up-sampling layer, torch `ConvTranspose2d(k=3, s=2, p=1, output_padding=1)`,
  with `nn.ConvTranspose`'s params (`kernel` (3, 3, Cin, Cout), `bias`)."""
  kernel_size: ClassVar[int] = 3

  def _compute(self, x: Array, kernel: Array) -> Array:
    return conv_transpose3x3_2x(x, kernel, self.precision)


class UnetSkipConnectionBlock(nn.Module):
  """One U-Net level and everything inside it (the reference's `UnetSkipConnectionBlock`).

  `chain` lists (outer_nc, inner_nc, use_dropout) for this block and the blocks nested inside it,
  outer to inner; the last entry is the innermost block. The nested block is the submodule
  `submodule`, so the param tree nests as the reference's `model.model[1].model[3]...` does.
  Input channels come from x (the outermost block's input_nc).
  """
  chain: tuple[tuple[int, int, bool], ...]
  outermost: bool = False
  norm: str = 'batch'
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False, dropout: bool = False) -> Array:
    outer_nc, inner_nc, use_dropout = self.chain[0]
    innermost = len(self.chain) == 1
    use_bias = use_bias_for(self.norm)
    init = kernel_init(self.init_type, self.init_gain)
    init_t = kernel_init(self.init_type, self.init_gain, transposed=True)
    h = x if self.outermost else leaky_relu(x)
    h = _conv(inner_nc, 4, 2, 1, use_bias, init, 'down')(h)
    if not (self.outermost or innermost):
      h = _norm(self.norm, train, self.init_gain, 'down_norm')(h)
    if not innermost:
      h = UnetSkipConnectionBlock(self.chain[1:], norm=self.norm, init_type=self.init_type,
                                  init_gain=self.init_gain, name='submodule')(h, train, dropout)
    h = nn.relu(h)
    # The outermost ConvTranspose2d keeps torch's default bias=True.
    h = layers.ConvTranspose2x(outer_nc, use_bias=self.outermost or use_bias, kernel_init=init_t, name='up')(h)
    if self.outermost:
      return jnp.tanh(h)
    h = _norm(self.norm, train, self.init_gain, 'up_norm')(h)
    if use_dropout:
      h = nn.Dropout(0.5, deterministic=not dropout)(h)
    return jnp.concatenate([x, h], axis=-1)


class UnetGenerator(nn.Module):
  """The pix2pix U-Net (arXiv:1611.07004, Sec. 3.2.1 and App. 6.1.1): x [N, H, W, C] -> tanh [N, H, W, output_nc].

  H and W must be divisible by 2^num_downs (256 for unet_256, 128 for unet_128).
  """
  output_nc: int = 3
  num_downs: int = 8
  ngf: int = 64
  norm: str = 'batch'
  use_dropout: bool = True
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False, dropout: bool | None = None) -> Array:
    if self.num_downs < 5:
      raise ValueError(f"UnetGenerator needs num_downs >= 5; got {self.num_downs}")
    size = 2 ** self.num_downs
    if x.ndim != 4 or x.shape[1] % size or x.shape[2] % size:
      raise ValueError(f"a U-Net with {self.num_downs} downsamplings needs NHWC images whose height and width "
                       f"are multiples of {size}; got shape {x.shape}")
    dropout = train if dropout is None else dropout
    g = self.ngf
    chain = ((self.output_nc, g, False), (g, 2 * g, False), (2 * g, 4 * g, False), (4 * g, 8 * g, False))
    chain += ((8 * g, 8 * g, self.use_dropout),) * (self.num_downs - 5) + ((8 * g, 8 * g, False),)
    return UnetSkipConnectionBlock(chain, outermost=True, norm=self.norm, init_type=self.init_type,
                                   init_gain=self.init_gain, name='unet')(x, train, dropout)


class ResnetBlock(nn.Module):
  """x + [ReflPad 1, Conv3x3, norm, ReLU, (Dropout 0.5), ReflPad 1, Conv3x3, norm](x) (`ResnetBlock`,
  padding_type 'reflect')."""
  dim: int
  norm: str = 'instance'
  use_dropout: bool = False
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False, dropout: bool = False) -> Array:
    use_bias = use_bias_for(self.norm)
    init = kernel_init(self.init_type, self.init_gain)
    h = _conv(self.dim, 3, 1, 0, use_bias, init, 'conv_0')(reflect_pad(x, 1))
    h = nn.relu(_norm(self.norm, train, self.init_gain, 'norm_0')(h))
    if self.use_dropout:
      h = nn.Dropout(0.5, deterministic=not dropout)(h)
    h = _conv(self.dim, 3, 1, 0, use_bias, init, 'conv_1')(reflect_pad(h, 1))
    return x + _norm(self.norm, train, self.init_gain, 'norm_1')(h)


class ResnetGenerator(nn.Module):
  """The CycleGAN generator (arXiv:1703.10593, App. 7.2; Johnson et al. 2016): x -> tanh [N, H, W, output_nc].

  H and W must be divisible by 4 (two stride-2 downsamplings, two 2x transposed convs).
  """
  output_nc: int = 3
  ngf: int = 64
  n_blocks: int = 9
  norm: str = 'instance'
  use_dropout: bool = False
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False, dropout: bool | None = None) -> Array:
    if x.ndim != 4 or x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"ResnetGenerator needs NHWC images whose height and width are multiples of 4; got {x.shape}")
    dropout = train if dropout is None else dropout
    use_bias = use_bias_for(self.norm)
    init = kernel_init(self.init_type, self.init_gain)
    init_t = kernel_init(self.init_type, self.init_gain, transposed=True)
    g = self.ngf
    h = _conv(g, 7, 1, 0, use_bias, init, 'conv_in')(reflect_pad(x, 3))
    h = nn.relu(_norm(self.norm, train, self.init_gain, 'norm_in')(h))
    for i in range(2):
      h = _conv(g * 2 ** (i + 1), 3, 2, 1, use_bias, init, f'down_{i}')(h)
      h = nn.relu(_norm(self.norm, train, self.init_gain, f'down_norm_{i}')(h))
    for i in range(self.n_blocks):
      h = ResnetBlock(4 * g, self.norm, self.use_dropout, self.init_type, self.init_gain,
                      name=f'block_{i}')(h, train, dropout)
    for i in range(2):
      h = ConvTranspose3x3(g * 2 ** (1 - i), use_bias=use_bias, kernel_init=init_t, name=f'up_{i}')(h)
      h = nn.relu(_norm(self.norm, train, self.init_gain, f'up_norm_{i}')(h))
    h = _conv(self.output_nc, 7, 1, 0, True, init, 'conv_out')(reflect_pad(h, 3))
    return jnp.tanh(h)


class NLayerDiscriminator(nn.Module):
  """The PatchGAN discriminator (arXiv:1611.07004, Sec. 3.2.2): x [N, H, W, C] -> logits [N, h, w, 1].

  n_layers=3 ('basic') has a 70x70 receptive field (256 -> 30x30 logits), n_layers=1 a 16x16 one.
  Returns logits (the reference's use_sigmoid=False; its losses apply the sigmoid).
  """
  ndf: int = 64
  n_layers: int = 3
  norm: str = 'batch'
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    use_bias = use_bias_for(self.norm)
    init = kernel_init(self.init_type, self.init_gain)
    h = leaky_relu(_conv(self.ndf, 4, 2, 1, True, init, 'conv_0')(x))
    for n in range(1, self.n_layers):
      h = _conv(self.ndf * min(2 ** n, 8), 4, 2, 1, use_bias, init, f'conv_{n}')(h)
      h = leaky_relu(_norm(self.norm, train, self.init_gain, f'norm_{n}')(h))
    n = self.n_layers
    h = _conv(self.ndf * min(2 ** n, 8), 4, 1, 1, use_bias, init, f'conv_{n}')(h)
    h = leaky_relu(_norm(self.norm, train, self.init_gain, f'norm_{n}')(h))
    return _conv(1, 4, 1, 1, True, init, 'conv_out')(h)


class PixelDiscriminator(nn.Module):
  """The 1x1 PixelGAN (`PixelDiscriminator`): x [N, H, W, C] -> per-pixel logits [N, H, W, 1]."""
  ndf: int = 64
  norm: str = 'batch'
  init_type: str = 'normal'
  init_gain: float = 0.02

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    use_bias = use_bias_for(self.norm)
    init = kernel_init(self.init_type, self.init_gain)
    h = leaky_relu(_conv(self.ndf, 1, 1, 0, True, init, 'conv_0')(x))
    h = _conv(2 * self.ndf, 1, 1, 0, use_bias, init, 'conv_1')(h)
    h = leaky_relu(_norm(self.norm, train, self.init_gain, 'norm_1')(h))
    return _conv(1, 1, 1, 0, use_bias, init, 'conv_out')(h)


def define_G(name: str, output_nc: int = 3, ngf: int = 64, norm: str = 'batch', use_dropout: bool = False,
             init_type: str = 'normal', init_gain: float = 0.02) -> nn.Module:
  """The reference's `define_G(input_nc, output_nc, ngf, netG, norm, use_dropout, init_type, init_gain)`;
  input channels come from x. Defaults are define_G's (the pix2pix / CycleGAN options set
  norm and dropout: pix2pix batch + dropout, CycleGAN instance, no dropout)."""
  _check_norm(norm)
  kernel_init(init_type)  # validates the name
  common = dict(output_nc=output_nc, ngf=ngf, norm=norm, use_dropout=use_dropout, init_type=init_type,
                init_gain=init_gain)
  if name == 'unet_256':
    return UnetGenerator(num_downs=8, **common)
  if name == 'unet_128':
    return UnetGenerator(num_downs=7, **common)
  if name == 'resnet_9blocks':
    return ResnetGenerator(n_blocks=9, **common)
  if name == 'resnet_6blocks':
    return ResnetGenerator(n_blocks=6, **common)
  raise ValueError(f"unknown generator {name!r}; use one of {GENERATORS}")


def define_D(name: str, ndf: int = 64, n_layers: int = 3, norm: str = 'batch', init_type: str = 'normal',
             init_gain: float = 0.02) -> nn.Module:
  """The reference's `define_D(input_nc, ndf, netD, n_layers_D, norm, init_type, init_gain)`: 'basic' is
  the 70x70 PatchGAN (n_layers 3 whatever `n_layers` says), 'n_layers' uses `n_layers`, 'pixel' the
  1x1 PixelGAN. Input channels come from x (6 for pix2pix's (input, output) pairs)."""
  _check_norm(norm)
  kernel_init(init_type)
  common = dict(ndf=ndf, norm=norm, init_type=init_type, init_gain=init_gain)
  if name == 'basic':
    return NLayerDiscriminator(n_layers=3, **common)
  if name == 'n_layers':
    if n_layers < 1:
      raise ValueError(f"define_D('n_layers') needs n_layers >= 1; got {n_layers}")
    return NLayerDiscriminator(n_layers=n_layers, **common)
  if name == 'pixel':
    return PixelDiscriminator(**common)
  raise ValueError(f"unknown discriminator {name!r}; use one of {DISCRIMINATORS}")


def param_count(params: Any) -> int:
  """Number of trainable parameters in a param tree (what the reference prints at start-up)."""
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
