"""BEGAN's networks (Berthelot, Schumm & Metz 2017, arXiv:1703.10717): an autoencoder D and a G
with the autoencoder's decoder architecture (separate weights).

Two architectures, chosen by `config.model.size`:

'paper' (and 'tiny', 'cpu': the same network at smaller widths): the network of the paper's
Fig. 1 / Sec. 3.5 ("Model architecture"), as in the reference implementation the paper's authors
point to (carpedm20/BEGAN-tensorflow models.py: GeneratorCNN, DiscriminatorCNN):
  decoder(h) : Dense(8*8*n) (no nonlinearity) -> [8, 8, n]
               -> B blocks of `repeat` x [Conv 3x3 (n) -> ELU], a nearest-neighbour 2x up-sampling
                  between blocks -> Conv 3x3 (C), linear output
  encoder(x) : Conv 3x3 (n) -> ELU
               -> block i = 0..B-1: `repeat` x [Conv 3x3 (n (i+1)) -> ELU], and between blocks a
                  stride-2 Conv 3x3 (n (i+1)) -> ELU (the sub-sampling)
               -> flatten [8, 8, n B] -> Dense(h) (no nonlinearity)
  with B = log2(H / 8) + 1 blocks (4 at 64x64, 3 at 32x32): the filters grow linearly with each
  sub-sampling (n, 2n, 3n, ...), the embedding h is reached by fully connected layers without
  nonlinearities, "typically 2" repetitions per block (`model.repeat`).
  Decisions: the sub-sampling conv keeps the block's width (carpedm20: `conv2d(x, channel_num, 3,
  2)`) and, as the paper says of every conv layer ("ELUs applied at their outputs"), has an ELU
  (carpedm20 leaves it linear). Weights Glorot-uniform, biases 0 (tf.contrib.slim's defaults, which
  carpedm20 uses). The decoder's output is linear (carpedm20's tanh is commented out); images are
  in [-1, 1] and sampling clips to that range.
  `model.skip`: the paper's skip connections (Sec. 3.5, "vanishing residuals ... skip
  connections"): the decoder's first tensor h0 = [8, 8, n] is up-sampled (nearest neighbour) to
  each block's size and concatenated to that block's input (the block's first conv then reads 2n
  channels). Off by default, as in carpedm20.

'compare_gan': the smaller network of google/compare_gan (compare_gan/src/gans/BEGAN.py
  `discriminator`, the generator of compare_gan/src/gans/abstract_gan.py), for H, W divisible by 4:
  D encoder : Conv 4x4 s2 (64) -> LReLU(0.2) -> Conv 4x4 s2 (128) -> flatten -> Dense(h) -> LReLU
  D decoder : Dense(128 H/4 W/4) -> LReLU -> ConvT 4x4 s2 (64) -> LReLU -> ConvT 4x4 s2 (C)
  G         : Dense(1024) -> BN -> LReLU -> Dense(128 H/4 W/4) -> BN -> LReLU -> ConvT 4x4 s2 (64)
              -> BN -> LReLU -> ConvT 4x4 s2 (C)
  compare_gan's BEGAN default has no BN in D (`discriminator_batchnorm` False, params.py
  BEGANHyperParams), so D has none here. Every layer has a bias and N(0, 0.02) weights (compare_gan
  ops.linear / conv2d / deconv2d), BN decay 0.999 and epsilon 1e-3 (ops.batch_norm). compare_gan's
  outputs are sigmoids of images in [0, 1]; ganzoo's images are in [-1, 1], so the outputs are
  tanh (2 sigmoid(2a) - 1 = tanh(a): the same family of functions).

Every module takes (input, y=None, train=True); y is ignored (unconditional).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import layers

Array = jax.Array

# model.size -> (architecture, n: the paper network's base width)
SIZES = {"paper": ("paper", 128), "cpu": ("paper", 16), "tiny": ("paper", 4), "compare_gan": ("compare_gan", 0)}
BOTTOM = 8   # the paper network's smallest feature map (8 x 8)

_glorot = layers.glorot_uniform()


def num_blocks(height: int) -> int:
  """B = log2(H / 8) + 1 blocks of the paper network; H must be 8 * 2^k."""
  b = math.log2(height / BOTTOM) if height >= BOTTOM else -1
  if b != int(b) or b < 0:
    raise ValueError(f"BEGAN's paper network needs square images of side 8 * 2^k (8, 16, 32, 64, 128); got "
                     f"{height}: set config.data.image_size (e.g. 32 for 28x28 data) or "
                     "config.model.size='compare_gan'")
  return int(b) + 1


def _conv(features: int, name: str, strides: int = 1) -> layers.Conv:
  return layers.Conv(features, (3, 3), strides=(strides, strides), padding="SAME", kernel_init=_glorot, name=name)


class PaperDecoder(nn.Module):
  """h [N, h_dim] -> images [N, H, W, C] (the paper's decoder; also BEGAN's generator)."""
  image_shape: tuple[int, int, int]
  n: int = 128
  repeat: int = 2
  skip: bool = False

  @nn.compact
  def __call__(self, h: Array, y: Array | None = None, train: bool = True) -> Array:
    del y, train
    height, _, c_img = self.image_shape
    blocks = num_blocks(height)
    h0 = nn.Dense(BOTTOM * BOTTOM * self.n, kernel_init=_glorot, name="project")(h)
    h0 = h0.reshape(h.shape[0], BOTTOM, BOTTOM, self.n)
    x, skip = h0, h0
    for i in range(blocks):
      for r in range(self.repeat):
        x = nn.elu(_conv(self.n, f"block{i}_conv{r}")(x))
      if i < blocks - 1:
        x = layers.upsample_nearest(x)
        if self.skip:
          skip = layers.upsample_nearest(skip)
          x = jnp.concatenate([x, skip], axis=-1)
    return _conv(c_img, "out")(x)


class PaperEncoder(nn.Module):
  """images [N, H, W, C] -> embedding [N, h_dim] (the paper's encoder)."""
  n: int = 128
  h_dim: int = 64
  repeat: int = 2

  @nn.compact
  def __call__(self, x: Array) -> Array:
    blocks = num_blocks(x.shape[1])
    x = nn.elu(_conv(self.n, "in")(x))
    for i in range(blocks):
      width = self.n * (i + 1)
      for r in range(self.repeat):
        x = nn.elu(_conv(width, f"block{i}_conv{r}")(x))
      if i < blocks - 1:
        x = nn.elu(_conv(width, f"block{i}_down", strides=2)(x))
    return nn.Dense(self.h_dim, kernel_init=_glorot, name="embed")(x.reshape(x.shape[0], -1))


class PaperAutoencoder(nn.Module):
  """D(x) = decoder(encoder(x)): the reconstruction [N, H, W, C] of x."""
  image_shape: tuple[int, int, int]
  n: int = 128
  h_dim: int = 64
  repeat: int = 2
  skip: bool = False

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del y
    h = PaperEncoder(self.n, self.h_dim, self.repeat, name="encoder")(x)
    return PaperDecoder(self.image_shape, self.n, self.repeat, self.skip, name="decoder")(h, train=train)


def _lrelu(x: Array) -> Array:
  return nn.leaky_relu(x, 0.2)


def _bn(train: bool, name: str) -> layers.BatchNorm:
  # compare_gan ops.batch_norm: decay 0.999, epsilon 0.001, scale and center.
  return layers.BatchNorm(use_running_average=not train, momentum=0.999, epsilon=1e-3, name=name)


def _bottom(image_shape: tuple[int, int, int]) -> tuple[int, int]:
  h, w, _ = image_shape
  if h % 4 or w % 4:
    raise ValueError(f"compare_gan's BEGAN network needs H and W divisible by 4; got {h}x{w}: "
                     "set config.data.image_size")
  return h // 4, w // 4


class CompareGANGenerator(nn.Module):
  """z [N, z_dim] -> images [N, H, W, C] in [-1, 1] (compare_gan abstract_gan.py `generator`)."""
  image_shape: tuple[int, int, int]

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    del y
    bh, bw = _bottom(self.image_shape)
    init = layers.dcgan_normal
    x = _lrelu(_bn(train, "g_bn1")(nn.Dense(1024, kernel_init=init, name="g_fc1")(z)))
    x = _lrelu(_bn(train, "g_bn2")(nn.Dense(128 * bh * bw, kernel_init=init, name="g_fc2")(x)))
    x = x.reshape(z.shape[0], bh, bw, 128)
    x = _lrelu(_bn(train, "g_bn3")(layers.ConvTranspose2x(64, kernel_init=init, name="g_dc3")(x)))
    return jnp.tanh(layers.ConvTranspose2x(self.image_shape[-1], kernel_init=init, name="g_dc4")(x))


class CompareGANAutoencoder(nn.Module):
  """x -> reconstruction in [-1, 1] (compare_gan BEGAN.py `discriminator`, no BN)."""
  image_shape: tuple[int, int, int]
  h_dim: int = 64

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del y, train
    bh, bw = _bottom(self.image_shape)
    init = layers.dcgan_normal
    pad = ((1, 1), (1, 1))   # TF 'SAME' for a 4x4 stride-2 conv on even sizes
    h = _lrelu(layers.Conv(64, (4, 4), strides=(2, 2), padding=pad, kernel_init=init, name="d_conv1")(x))
    h = layers.Conv(128, (4, 4), strides=(2, 2), padding=pad, kernel_init=init, name="d_conv2")(h)
    code = _lrelu(nn.Dense(self.h_dim, kernel_init=init, name="d_fc6")(h.reshape(x.shape[0], -1)))
    h = _lrelu(nn.Dense(128 * bh * bw, kernel_init=init, name="d_fc1")(code)).reshape(x.shape[0], bh, bw, 128)
    h = _lrelu(layers.ConvTranspose2x(64, kernel_init=init, name="d_deconv1")(h))
    return jnp.tanh(layers.ConvTranspose2x(self.image_shape[-1], kernel_init=init, name="d_deconv2")(h))


def build(model: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
  """(generator, autoencoder discriminator) from `config.model`: size ('paper' | 'cpu' | 'tiny' |
  'compare_gan'), n_filters (overrides the size's n), h_dim (the embedding; default z_dim, the
  paper's Nz = Nh), repeat (convs per block), skip (the paper's skip connections)."""
  size = model.get("size", "paper")
  if size not in SIZES:
    raise ValueError(f"unknown BEGAN config.model.size {size!r}; choose from {sorted(SIZES)}")
  arch, n = SIZES[size]
  z_dim = int(model.z_dim)
  h_dim = int(model.get("h_dim", None) or z_dim)
  if arch == "compare_gan":
    return CompareGANGenerator(image_shape), CompareGANAutoencoder(image_shape, h_dim)
  n = int(model.get("n_filters", None) or n)
  repeat, skip = int(model.get("repeat", 2)), bool(model.get("skip", False))
  if image_shape[0] != image_shape[1]:
    raise ValueError(f"BEGAN's paper network needs square images; got {image_shape[:2]}: set config.data.image_size")
  num_blocks(image_shape[0])
  return PaperDecoder(image_shape, n, repeat, skip), PaperAutoencoder(image_shape, n, h_dim, repeat, skip)
