"""SNGAN architectures (Miyato et al. 2018, arXiv:1802.05957, appendix B) and the projection cGAN
(Miyato & Koyama 2018, arXiv:1802.05637).

Spectral normalization is not in these modules: apply `ganzoo.spectral_norm` to D's params.

The generator's bottom resolution b and number of up-sampling stages n derive from image_shape
(H = W = b * 2^n, halving H while the half is even and >= 4): 32x32 -> 4x4 and 3 stages (CIFAR),
48x48 -> 6x6 and 3 (STL-10), 28x28 -> 7x7 and 2, 64x64 -> 4x4 and 4.

'sngan_cnn' ("standard CNN", Table 3):
  G: z -> Dense(b*b*g_ch) -> BN -> ReLU -> [ConvTranspose 4x4 s2 (g_ch / 2^(i+1)) -> BN -> ReLU] x n
     -> Conv 3x3 (C) -> tanh.                                      (paper: g_ch = 512)
  D: Conv3x3 d, Conv4x4 s2 d, Conv3x3 2d, Conv4x4 s2 2d, Conv3x3 4d, Conv4x4 s2 4d, Conv3x3 8d,
     each followed by LeakyReLU(0.1) -> flatten -> Dense(1).         (paper: d = d_ch = 64)
  Init N(0, 0.02) as in the authors' chainer code; every layer has a bias. The code's BN after the
  dense layer normalizes each of the b*b*g_ch features; here it is per channel after the reshape.
'sngan_resnet' (Table 4, CIFAR-10):
  G: z -> Dense(b*b*g_ch) -> n x GBlock(up) -> BN -> ReLU -> Conv3x3 (C) -> tanh.   (g_ch = 256)
     GBlock: BN-ReLU-up(nearest)-Conv3x3-BN-ReLU-Conv3x3 + up-Conv1x1 shortcut.
  D: OptimizedBlock(d_ch, down) -> DBlock(down) -> DBlock -> DBlock -> ReLU -> global sum pool
     -> Dense(1).                                                         (d_ch = 128)
     DBlock: ReLU-Conv3x3-ReLU-Conv3x3[-avgpool2] + Conv1x1[-avgpool2] shortcut when down-sampling.
  Init as the chainer code: Glorot uniform, gain sqrt(2) for the blocks' 3x3 convs, gain 1 for the
  1x1 shortcuts, the dense layers, the output conv and the class embedding; biases 0. The same
  D is used at every resolution (the paper's deeper STL-10 D is not built).

Class-conditional (num_classes > 0, projection discriminator, arXiv:1802.05637):
  G's BNs (all of them in sngan_cnn; those in the GBlocks in sngan_resnet) become
  `ConditionalBatchNorm`, and D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, where phi(x) is the
  feature vector fed to the final Dense psi and `embed` is nn.Embed(num_classes, dim phi) (leaf
  `embed/embedding`, spectrally normalized like the kernels). phi(x) is sown as
  `intermediates/features`.

`config.model`: `size` ('paper' | 'tiny'), `z_dim` (default 128, as the paper), `g_ch`, `d_ch`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import layers
from ganzoo.models import register

Array = jax.Array

CNN_SIZES = {'paper': dict(g_ch=512, d_ch=64), 'tiny': dict(g_ch=32, d_ch=8)}
RESNET_SIZES = {'paper': dict(g_ch=256, d_ch=128), 'tiny': dict(g_ch=16, d_ch=16)}

_XAVIER = layers.glorot_uniform(1.0)
_XAVIER_RELU = layers.glorot_uniform(2.0 ** 0.5)


def generator_plan(image_shape: tuple[int, ...], family: str) -> tuple[int, int]:
  """(bottom b, number n of 2x up-samplings) with b * 2^n == H, halving while even and >= 4."""
  if len(image_shape) != 3 or image_shape[0] != image_shape[1]:
    raise ValueError(f"{family} needs square (H, W, C) images; got {image_shape} — set "
                     "config.data.image_size to e.g. 28, 32, 48 or 64")
  bottom, n_up = int(image_shape[0]), 0
  while bottom % 2 == 0 and bottom // 2 >= 4:
    bottom, n_up = bottom // 2, n_up + 1
  if n_up == 0:
    raise ValueError(f"{family} needs H = b * 2^n with b >= 4 and n >= 1; got {image_shape} — "
                     "set config.data.image_size to e.g. 28, 32, 48 or 64")
  return bottom, n_up


upsample_nearest = layers.upsample_nearest
avg_pool2 = layers.avg_pool2


def _norm(num_classes: int, train: bool, name: str, y: Array | None, x: Array) -> Array:
  """BN, or conditional BN with labels y when num_classes > 0."""
  if num_classes > 0:
    if y is None:
      raise ValueError("this generator is class-conditional: pass labels y (int32 [N])")
    return layers.ConditionalBatchNorm(num_classes, name=name)(x, y, train)
  return layers.batch_norm(train, name=name)(x)


def _projection(num_classes: int, phi: Array, y: Array | None, out: Array,
                module: nn.Module) -> Array:
  """out + <embed(y), phi> (arXiv:1802.05637) when num_classes > 0; `module` owns the Embed."""
  module.sow('intermediates', 'features', phi)
  if num_classes <= 0:
    return out
  if y is None:
    raise ValueError("this discriminator is class-conditional: pass labels y (int32 [N])")
  emb = nn.Embed(num_classes, phi.shape[-1], embedding_init=_XAVIER, name='embed')(y)
  return out + jnp.sum(emb * phi, axis=-1)


# ---------------------------------------------------------------------------------------------
# Standard CNN.


class SNGANCNNGenerator(nn.Module):
  """SNGAN standard-CNN generator (arXiv:1802.05957, Table 3a)."""
  image_shape: tuple[int, int, int]
  g_ch: int = 512
  z_dim: int = 128
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    bottom, n_up = generator_plan(self.image_shape, 'sngan_cnn')
    h = nn.Dense(bottom * bottom * self.g_ch, kernel_init=layers.dcgan_normal, name='project')(z)
    h = h.reshape(z.shape[0], bottom, bottom, self.g_ch)
    h = nn.relu(_norm(self.num_classes, train, 'bn_project', y, h))
    for i in range(n_up):
      h = layers.ConvTranspose2x(self.g_ch // 2 ** (i + 1), kernel_init=layers.dcgan_normal,
                                 name=f'up_{i}')(h)
      h = nn.relu(_norm(self.num_classes, train, f'bn_{i}', y, h))
    h = layers.Conv(self.image_shape[2], (3, 3), padding=((1, 1), (1, 1)),
                    kernel_init=layers.dcgan_normal, name='out')(h)
    return jnp.tanh(h)


class SNGANCNNDiscriminator(nn.Module):
  """SNGAN standard-CNN discriminator (arXiv:1802.05957, Table 3b); projection if num_classes>0."""
  d_ch: int = 64
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del train  # No batch norm.
    plan = [(1, 3, 1), (1, 4, 2), (2, 3, 1), (2, 4, 2), (4, 3, 1), (4, 4, 2), (8, 3, 1)]
    h = x
    for i, (mult, k, s) in enumerate(plan):
      h = layers.Conv(self.d_ch * mult, (k, k), strides=(s, s), padding=((1, 1), (1, 1)),
                      kernel_init=layers.dcgan_normal, name=f'conv_{i}')(h)
      h = nn.leaky_relu(h, 0.1)
    phi = h.reshape(h.shape[0], -1)
    out = nn.Dense(1, kernel_init=layers.dcgan_normal, name='out')(phi)[:, 0]
    return _projection(self.num_classes, phi, y, out, self)


# ---------------------------------------------------------------------------------------------
# ResNet.


def _conv3(features: int, name: str) -> layers.Conv:
  return layers.Conv(features, (3, 3), padding=((1, 1), (1, 1)), kernel_init=_XAVIER_RELU, name=name)


def _conv1(features: int, name: str) -> layers.Conv:
  return layers.Conv(features, (1, 1), padding='VALID', kernel_init=_XAVIER, name=name)


class GBlock(nn.Module):
  """Generator residual block: x -> [BN-ReLU-up-Conv3-BN-ReLU-Conv3](x) + [up-Conv1](x).

  BNs are ConditionalBatchNorm when num_classes > 0. The 1x1 shortcut conv exists when the block
  up-samples or changes width (Conv1x1 then nearest up-sampling, which equals up-sampling first).
  Every conv has a bias, as in the authors' chainer code, although G's final BatchNorm cancels
  them all (their gradient is rounding noise; see tests/test_steps.py on Adam's eps).
  """
  features: int
  upsample: bool = True
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    h = nn.relu(_norm(self.num_classes, train, 'bn1', y, x))
    if self.upsample:
      # For speed: up-sample + conv3x3 as one sub-pixel conv on the small input (same 'conv1'
      # params as nn.Conv, ~half the FLOPs; layers.upsample_conv3x3).
      h = layers.UpsampleConv3x3(self.features, kernel_init=_XAVIER_RELU, name='conv1')(h)
    else:
      h = _conv3(self.features, 'conv1')(h)
    h = nn.relu(_norm(self.num_classes, train, 'bn2', y, h))
    h = _conv3(self.features, 'conv2')(h)
    sc = x
    if self.upsample or x.shape[-1] != self.features:
      sc = _conv1(self.features, 'shortcut')(sc)
      if self.upsample:
        sc = upsample_nearest(sc)
    return h + sc


class DBlock(nn.Module):
  """Discriminator residual block: [ReLU-Conv3-ReLU-Conv3-(avgpool)](x) + [Conv1-(avgpool)](x).

  With `optimized=True` (D's first block, on images): [Conv3-ReLU-Conv3-avgpool](x) +
  [avgpool-Conv1](x). Hidden width = input width (optimized: output width), as the chainer code.
  """
  features: int
  downsample: bool = True
  optimized: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.optimized:
      h = _conv3(self.features, 'conv1')(x)
      h = _conv3(self.features, 'conv2')(nn.relu(h))
      h = avg_pool2(h)
      return h + _conv1(self.features, 'shortcut')(avg_pool2(x))
    h = _conv3(x.shape[-1], 'conv1')(nn.relu(x))
    h = _conv3(self.features, 'conv2')(nn.relu(h))
    if self.downsample:
      h = avg_pool2(h)
    sc = x
    if self.downsample or x.shape[-1] != self.features:
      sc = _conv1(self.features, 'shortcut')(sc)
      if self.downsample:
        sc = avg_pool2(sc)
    return h + sc


class SNGANResNetGenerator(nn.Module):
  """SNGAN ResNet generator (arXiv:1802.05957, Table 4a; conditional as arXiv:1802.05637)."""
  image_shape: tuple[int, int, int]
  g_ch: int = 256
  z_dim: int = 128
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    bottom, n_up = generator_plan(self.image_shape, 'sngan_resnet')
    h = nn.Dense(bottom * bottom * self.g_ch, kernel_init=_XAVIER, name='project')(z)
    h = h.reshape(z.shape[0], bottom, bottom, self.g_ch)
    for i in range(n_up):
      h = GBlock(self.g_ch, upsample=True, num_classes=self.num_classes, name=f'block_{i}')(
          h, y, train)
    h = nn.relu(layers.batch_norm(train, name='bn_out')(h))
    h = layers.Conv(self.image_shape[2], (3, 3), padding=((1, 1), (1, 1)), kernel_init=_XAVIER,
                    name='out')(h)
    return jnp.tanh(h)


class SNGANResNetDiscriminator(nn.Module):
  """SNGAN ResNet discriminator (arXiv:1802.05957, Table 4b); projection (arXiv:1802.05637).

  phi(x) = sum_{h,w} ReLU(blocks(x)) in R^{d_ch}; D(x, y) = w^T phi + b + <embed(y), phi>.
  """
  d_ch: int = 128
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del train  # No batch norm.
    h = DBlock(self.d_ch, optimized=True, name='block_0')(x)
    h = DBlock(self.d_ch, downsample=True, name='block_1')(h)
    h = DBlock(self.d_ch, downsample=False, name='block_2')(h)
    h = DBlock(self.d_ch, downsample=False, name='block_3')(h)
    phi = jnp.sum(nn.relu(h), axis=(1, 2))
    out = nn.Dense(1, kernel_init=_XAVIER, name='out')(phi)[:, 0]
    return _projection(self.num_classes, phi, y, out, self)


def _widths(model_cfg: ml_collections.ConfigDict, family: str,
            sizes: dict[str, dict[str, int]]) -> tuple[int, int]:
  size = model_cfg.get('size', 'paper')
  layers.check_size(family, size, tuple(sizes))
  g_ch = int(model_cfg.get('g_ch', None) or sizes[size]['g_ch'])
  d_ch = int(model_cfg.get('d_ch', None) or sizes[size]['d_ch'])
  return g_ch, d_ch


def _check_classes(num_classes: int) -> int:
  if num_classes < 0:
    raise ValueError(f"num_classes must be >= 0; got {num_classes}")
  return int(num_classes)


@register('sngan_cnn')
def build_cnn(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
              num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """(SNGANCNNGenerator, SNGANCNNDiscriminator); class-conditional when num_classes > 0."""
  g_ch, d_ch = _widths(model_cfg, 'sngan_cnn', CNN_SIZES)
  shape = tuple(int(d) for d in image_shape)
  _, n_up = generator_plan(shape, 'sngan_cnn')
  if g_ch // 2 ** n_up < 1:
    raise ValueError(f"sngan_cnn g_ch={g_ch} is too small for {n_up} up-sampling stages — set "
                     f"config.model.g_ch >= {2 ** n_up}")
  num_classes = _check_classes(num_classes)
  g = SNGANCNNGenerator(image_shape=shape, g_ch=g_ch, z_dim=int(model_cfg.get('z_dim', 128)),
                        num_classes=num_classes)
  return g, SNGANCNNDiscriminator(d_ch=d_ch, num_classes=num_classes)


@register('sngan_resnet')
def build_resnet(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
                 num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """(SNGANResNetGenerator, SNGANResNetDiscriminator); projection cGAN when num_classes > 0."""
  g_ch, d_ch = _widths(model_cfg, 'sngan_resnet', RESNET_SIZES)
  shape = tuple(int(d) for d in image_shape)
  generator_plan(shape, 'sngan_resnet')
  if shape[0] % 4:
    raise ValueError(f"sngan_resnet's discriminator down-samples twice by 2, so H must be a "
                     f"multiple of 4; got {shape} — set config.data.image_size to e.g. 28, 32, "
                     "48")
  num_classes = _check_classes(num_classes)
  g = SNGANResNetGenerator(image_shape=shape, g_ch=g_ch, z_dim=int(model_cfg.get('z_dim', 128)),
                           num_classes=num_classes)
  return g, SNGANResNetDiscriminator(d_ch=d_ch, num_classes=num_classes)
