"""DCGAN (Radford, Metz & Chintala 2016, arXiv:1511.06434) for 28x28, 32x32 and 64x64 images.

G: z -> Dense(b*b*w_0) -> reshape [b, b, w_0] -> BN -> ReLU
     -> [ConvTranspose 4x4 s2 -> BN -> ReLU] x (n - 1) -> ConvTranspose 4x4 s2 (C) -> tanh,
   with bottom b = 7 for 28x28 and 4 otherwise, n = log2(H / b) up-sampling layers and widths
   w_i = g_ch * 2^(n - 1 - i) (64x64 with g_ch=128: 1024, 512, 256, 128, as in the paper's Fig. 1).
D: Conv 4x4 s2 (d_ch) -> LeakyReLU(0.2) -> [Conv 4x4 s2 -> BN -> LeakyReLU(0.2)] x (n - 1)
     -> flatten -> Dense(1); widths d_ch * 2^i (no BN on the first layer, as in the paper).

As in the DCGAN reference code: weights N(0, 0.02), BN scales N(1, 0.02), no bias on layers that
feed a BN (it would be cancelled) nor on G's output layer; D's first conv and final Dense have
biases. The up-sampling layer is `layers.ConvTranspose2x` (== nn.ConvTranspose k4 s2 SAME).

`config.model`: `size` ('paper': g_ch=d_ch=128 | 'tiny': 8), `z_dim` (default 128; the paper uses
100), overrides `g_ch`, `d_ch`. Unconditional: `y` is accepted and ignored; num_classes > 0 raises
ValueError. With g_ch=64 at 64x64 and z_dim=100, G is the PyTorch DCGAN example's generator
(3,576,704 params).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import layers
from ganzoo.models import register

Array = jax.Array

SIZES = {'paper': dict(g_ch=128, d_ch=128), 'tiny': dict(g_ch=8, d_ch=8)}
_BOTTOM = {28: 7, 32: 4, 64: 4}


def _bn(train: bool, name: str) -> layers.BatchNorm:
  return layers.batch_norm(train, name=name, scale_init=layers.dcgan_bn_scale)


class DCGANGenerator(nn.Module):
  """z [N, z_dim] -> images [N, H, W, C] in [-1, 1] (arXiv:1511.06434, Fig. 1)."""
  image_shape: tuple[int, int, int]
  g_ch: int = 128
  z_dim: int = 128

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    del y  # Unconditional.
    h_img, _, c_img = self.image_shape
    bottom = _BOTTOM[h_img]
    n_up = int(math.log2(h_img // bottom))
    width = self.g_ch * 2 ** (n_up - 1)
    h = nn.Dense(bottom * bottom * width, use_bias=False, kernel_init=layers.dcgan_normal,
                 name='project')(z)
    h = h.reshape(z.shape[0], bottom, bottom, width)
    h = nn.relu(_bn(train, 'bn_project')(h))
    for i in range(n_up - 1):
      width //= 2
      h = layers.ConvTranspose2x(width, use_bias=False, kernel_init=layers.dcgan_normal,
                                 name=f'up_{i}')(h)
      h = nn.relu(_bn(train, f'bn_{i}')(h))
    h = layers.ConvTranspose2x(c_img, use_bias=False, kernel_init=layers.dcgan_normal,
                               name='out')(h)
    return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
  """images [N, H, W, C] -> logits [N] (arXiv:1511.06434)."""
  image_shape: tuple[int, int, int]
  d_ch: int = 128

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del y  # Unconditional.
    n_down = int(math.log2(self.image_shape[0] // _BOTTOM[self.image_shape[0]]))
    h = x
    for i in range(n_down):
      first = i == 0
      h = layers.Conv(self.d_ch * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                      use_bias=first, kernel_init=layers.dcgan_normal, name=f'conv_{i}')(h)
      if not first:
        h = _bn(train, f'bn_{i}')(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    return nn.Dense(1, kernel_init=layers.dcgan_normal, name='out')(h)[:, 0]


def check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
  """Returns (H, W, C) or raises a one-line ValueError saying what to change."""
  if len(image_shape) != 3 or image_shape[0] != image_shape[1] or image_shape[0] not in _BOTTOM:
    raise ValueError(f"dcgan supports 28x28, 32x32, 64x64 images (H, W, C); got {image_shape} — "
                     "set config.data.image_size to 28, 32 or 64")
  if image_shape[2] < 1:
    raise ValueError(f"dcgan needs >= 1 image channel; got {image_shape} — fix config.data")
  return tuple(int(d) for d in image_shape)


@register('dcgan')
def build(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
          num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """(DCGANGenerator, DCGANDiscriminator) at `image_shape` (28, 32 or 64 square, any channels)."""
  if num_classes:
    raise ValueError(f"dcgan is unconditional; got num_classes={num_classes} — set "
                     "config.model.conditional=False or pick a conditional model (e.g. cgan, "
                     "sngan_resnet)")
  size = model_cfg.get('size', 'paper')
  layers.check_size('dcgan', size, tuple(SIZES))
  shape = check_image_shape(tuple(image_shape))
  g_ch = int(model_cfg.get('g_ch', None) or SIZES[size]['g_ch'])
  d_ch = int(model_cfg.get('d_ch', None) or SIZES[size]['d_ch'])
  g = DCGANGenerator(image_shape=shape, g_ch=g_ch, z_dim=int(model_cfg.get('z_dim', 128)))
  d = DCGANDiscriminator(image_shape=shape, d_ch=d_ch)
  return g, d
