"""Class-conditional GANs: cGAN (arXiv:1411.1784), registered 'cgan'; AC-GAN (arXiv:1610.09585), 'acgan'.

cGAN, `model_cfg.arch='mlp'` (default): the paper's MNIST model (Mirza & Osindero 2014, Sec. 4.1)
  G: z (100) -> Dense 200 + ReLU;  one-hot(y) -> Dense 1000 + ReLU;  concat -> Dense 1200 + ReLU
     -> Dense H*W*C -> tanh (the paper ends in a sigmoid on [0, 1] pixels; the zoo uses [-1, 1]).
  D: x -> maxout 240 units x 5 pieces;  one-hot(y) -> maxout 50 x 5;  concat -> maxout 240 x 4
     -> Dense 1 (logit; the paper's sigmoid lives in the loss).
  Dropout 0.5 in G and D as in the paper (`g_dropout`, `d_dropout`); with dropout > 0, callers pass
  `rngs={'dropout': key}` when train=True. The paper samples z from a uniform prior (the step's
  concern, not the model's).
cGAN, `model_cfg.arch='conv'`: a DCGAN-style version: G: [z, one-hot(y)] -> Dense s0 x s0 x C0 -> BN,
  ReLU -> (ConvTranspose 4x4/2 -> BN -> ReLU)* -> ConvTranspose 4x4/2 -> tanh; D: [x, one-hot(y)
  broadcast as K constant maps] -> (Conv 4x4/2 -> LeakyReLU 0.2)* -> Dense 1. N(0, 0.02) init.

AC-GAN (Odena et al. 2017, Appendix, CIFAR-10 model):
  G: [z (100), one-hot(y) (10)] = 110 -> Dense 4x4x384 + ReLU -> ConvTranspose 5x5/2 192, BN, ReLU
     -> ConvTranspose 5x5/2 96, BN, ReLU -> ConvTranspose 5x5/2 C, tanh.
  D: Conv 3x3 16/2, 32/1, 64/2, 128/1, 256/2, 512/1; LeakyReLU 0.2 and dropout 0.5 after each; BN
     on all but the first; flatten -> Dense 1 (source logit) and Dense K (class logits).
  Returns {'logits': [N], 'class_logits': [N, K]}. D has BatchNorm: pass mutable=['batch_stats'].
  `label_mode='embed'` replaces the one-hot by a learned nn.Embed(K, K) (leaf 'embedding').
  The auxiliary loss is `ganzoo.methods.gan.aux_classifier_loss` (the one training uses).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import layers
from ganzoo.models import register

Array = jax.Array


def _require_labels(y: Array | None, who: str) -> Array:
  if y is None:
    raise ValueError(f"{who} is class-conditional: pass labels y (int32 [N])")
  return y


class Maxout(nn.Module):
  """Maxout layer (Goodfellow et al. 2013, arXiv:1302.4389): h_i = max_k (W x + b)_{i,k}."""
  units: int
  pieces: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = nn.Dense(self.units * self.pieces, name='dense')(x)
    return jnp.max(h.reshape(x.shape[0], self.units, self.pieces), axis=-1)


# ---------------------------------------------------------------------------------------------
# cGAN (Mirza & Osindero 2014)


class CGANMLPGenerator(nn.Module):
  """cGAN MNIST generator (arXiv:1411.1784, Sec. 4.1), see the module docstring."""
  image_shape: tuple[int, int, int]
  num_classes: int
  widths: tuple[int, int, int] = (200, 1000, 1200)
  dropout: float = 0.5

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    y = _require_labels(y, 'cgan generator')
    drop = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)
    hz = drop(nn.relu(nn.Dense(self.widths[0], name='z_fc')(z)))
    hy = drop(nn.relu(nn.Dense(self.widths[1], name='y_fc')(
        jax.nn.one_hot(y, self.num_classes, dtype=z.dtype))))
    h = drop(nn.relu(nn.Dense(self.widths[2], name='joint_fc')(jnp.concatenate([hz, hy], -1))))
    out = nn.Dense(self.image_shape[0] * self.image_shape[1] * self.image_shape[2], name='out')(h)
    return jnp.tanh(out).reshape((z.shape[0],) + tuple(self.image_shape))


class CGANMLPDiscriminator(nn.Module):
  """cGAN MNIST discriminator with maxout units (arXiv:1411.1784, Sec. 4.1)."""
  num_classes: int
  units: tuple[int, int, int] = (240, 50, 240)
  pieces: tuple[int, int, int] = (5, 5, 4)
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    y = _require_labels(y, 'cgan discriminator')
    drop = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)
    x = x.reshape(x.shape[0], -1)
    hx = drop(Maxout(self.units[0], self.pieces[0], name='x_maxout')(x))
    hy = drop(Maxout(self.units[1], self.pieces[1], name='y_maxout')(
        jax.nn.one_hot(y, self.num_classes, dtype=x.dtype)))
    h = drop(Maxout(self.units[2], self.pieces[2], name='joint_maxout')(
        jnp.concatenate([hx, hy], -1)))
    return nn.Dense(1, name='out')(h)[:, 0]


def _num_upsamplings(size: int) -> int:
  """Number k of 2x steps from a start size s0 = size / 2^k in [4, 7] (28 -> 7, 32 -> 4)."""
  k = 0
  while size % 2 == 0 and size // 2 >= 4:
    size //= 2
    k += 1
  if k == 0:
    raise ValueError(f"the conv cGAN needs an image size of the form s0 * 2^k with s0 in [4, 7]; "
                     f"got {size} — use config.model.arch='mlp' or resize the data")
  return k


class CGANConvGenerator(nn.Module):
  """DCGAN-style conditional generator: [z, one-hot(y)] -> Dense -> ConvTranspose stack -> tanh."""
  image_shape: tuple[int, int, int]
  num_classes: int
  ch: int = 64

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    y = _require_labels(y, 'cgan generator')
    h_img, _, c_img = self.image_shape
    k = _num_upsamplings(h_img)
    s0 = h_img // 2 ** k
    h = jnp.concatenate([z, jax.nn.one_hot(y, self.num_classes, dtype=z.dtype)], -1)
    width = self.ch * 2 ** (k - 1)
    h = nn.Dense(s0 * s0 * width, kernel_init=layers.dcgan_normal, name='fc')(h)
    h = h.reshape(z.shape[0], s0, s0, width)
    h = nn.relu(layers.batch_norm(train, scale_init=layers.dcgan_bn_scale, name='bn0')(h))
    for i in range(k - 1):
      width //= 2
      h = layers.ConvTranspose2x(width, kernel_init=layers.dcgan_normal, name=f'up{i}')(h)
      h = nn.relu(layers.batch_norm(train, scale_init=layers.dcgan_bn_scale,
                                    name=f'bn{i + 1}')(h))
    h = layers.ConvTranspose2x(c_img, kernel_init=layers.dcgan_normal, name=f'up{k - 1}')(h)
    return jnp.tanh(h)


class CGANConvDiscriminator(nn.Module):
  """DCGAN-style conditional discriminator on [x, one-hot(y) as constant maps]."""
  num_classes: int
  ch: int = 64

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    y = _require_labels(y, 'cgan discriminator')
    n, hgt, wid, _ = x.shape
    k = _num_upsamplings(hgt)
    onehot = jax.nn.one_hot(y, self.num_classes, dtype=x.dtype)[:, None, None, :]
    h = jnp.concatenate([x, jnp.broadcast_to(onehot, (n, hgt, wid, self.num_classes))], -1)
    for i in range(k):
      h = layers.Conv(self.ch * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                      kernel_init=layers.dcgan_normal, name=f'conv{i}')(h)
      h = nn.leaky_relu(h, 0.2)
    return nn.Dense(1, kernel_init=layers.dcgan_normal, name='out')(h.reshape(n, -1))[:, 0]


@register('cgan')
def build_cgan(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
               num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """cGAN (G, D). model_cfg keys: arch ('mlp' | 'conv'), size ('paper' | 'tiny'), z_dim (100),
  g_dropout / d_dropout (0.5, mlp only), ch (conv width, 64)."""
  if num_classes <= 0:
    raise ValueError("cgan is class-conditional: use a labelled dataset (num_classes > 0)")
  size = model_cfg.get('size', 'paper')
  layers.check_size('cgan', size, ('paper', 'tiny'))
  arch = model_cfg.get('arch', 'mlp')
  tiny = size == 'tiny'
  if arch == 'mlp':
    g_drop = model_cfg.get('g_dropout', 0.5)
    d_drop = model_cfg.get('d_dropout', 0.5)
    g = CGANMLPGenerator(tuple(image_shape), num_classes,
                         widths=(20, 50, 60) if tiny else (200, 1000, 1200), dropout=g_drop)
    d = CGANMLPDiscriminator(num_classes, units=(24, 8, 24) if tiny else (240, 50, 240),
                             dropout=d_drop)
    return g, d
  if arch == 'conv':
    ch = model_cfg.get('ch', None) or (8 if tiny else 64)
    return (CGANConvGenerator(tuple(image_shape), num_classes, ch),
            CGANConvDiscriminator(num_classes, ch))
  raise ValueError(f"cgan: unknown arch {arch!r}; set config.model.arch to 'mlp' or 'conv'")


# ---------------------------------------------------------------------------------------------
# AC-GAN (Odena et al. 2017)


class ACGANGenerator(nn.Module):
  """AC-GAN CIFAR-10 generator (arXiv:1610.09585, Appendix), see the module docstring.

  Transposed convs are flax `nn.ConvTranspose` 5x5/2 'SAME' (the paper's kernel size). Init
  N(0, 0.02) (DCGAN, as the AC-GAN code base).
  """
  image_shape: tuple[int, int, int]
  num_classes: int
  widths: tuple[int, ...] = (384, 192, 96)
  label_mode: str = 'onehot'

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    y = _require_labels(y, 'acgan generator')
    h_img, w_img, c_img = self.image_shape
    k = len(self.widths)
    s0 = h_img // 2 ** k
    if s0 * 2 ** k != h_img or h_img != w_img:
      raise ValueError(f"acgan's generator makes square {2 ** k}*s0 images; got {h_img}x{w_img}")
    lab = (nn.Embed(self.num_classes, self.num_classes, name='label_embed')(y)
           if self.label_mode == 'embed' else jax.nn.one_hot(y, self.num_classes, dtype=z.dtype))
    h = jnp.concatenate([z, lab], -1)
    h = nn.Dense(s0 * s0 * self.widths[0], kernel_init=layers.dcgan_normal, name='fc')(h)
    h = nn.relu(h.reshape(z.shape[0], s0, s0, self.widths[0]))
    for i, width in enumerate(self.widths[1:] + (c_img,)):
      h = nn.ConvTranspose(width, (5, 5), strides=(2, 2), padding='SAME',
                           kernel_init=layers.dcgan_normal, name=f'up{i}')(h)
      if i < k - 1:
        h = nn.relu(layers.batch_norm(train, name=f'bn{i}')(h))
    return jnp.tanh(h)


class ACGANDiscriminator(nn.Module):
  """AC-GAN CIFAR-10 discriminator (arXiv:1610.09585, Appendix) with source and class heads."""
  num_classes: int
  widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
  strides: tuple[int, ...] = (2, 1, 2, 1, 2, 1)
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> dict[str, Array]:
    del y  # AC-GAN's D does not see the label; it predicts it
    drop = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)
    h = x
    for i, (width, stride) in enumerate(zip(self.widths, self.strides)):
      h = layers.Conv(width, (3, 3), strides=(stride, stride), padding='SAME',
                      kernel_init=layers.dcgan_normal, name=f'conv{i}')(h)
      if i > 0:
        h = layers.batch_norm(train, name=f'bn{i}')(h)
      h = drop(nn.leaky_relu(h, 0.2))
    h = h.reshape(x.shape[0], -1)
    logits = nn.Dense(1, kernel_init=layers.dcgan_normal, name='source')(h)[:, 0]
    class_logits = nn.Dense(self.num_classes, kernel_init=layers.dcgan_normal, name='classifier')(h)
    return {'logits': logits, 'class_logits': class_logits}


@register('acgan')
def build_acgan(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
                num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """AC-GAN (G, D). model_cfg keys: size ('paper' | 'tiny'), z_dim (100; with one-hot 10 the
  paper's 110-d input), label_mode ('onehot' | 'embed'), d_dropout (0.5)."""
  if num_classes <= 0:
    raise ValueError("acgan is class-conditional: use a labelled dataset (num_classes > 0)")
  size = model_cfg.get('size', 'paper')
  layers.check_size('acgan', size, ('paper', 'tiny'))
  tiny = size == 'tiny'
  g_widths = (24, 12, 6) if tiny else (384, 192, 96)
  d_widths = (4, 4, 8, 8, 16, 16) if tiny else (16, 32, 64, 128, 256, 512)
  label_mode = model_cfg.get('label_mode', 'onehot')
  if label_mode not in ('onehot', 'embed'):
    raise ValueError(f"acgan: unknown label_mode {label_mode!r}; use 'onehot' or 'embed'")
  g = ACGANGenerator(tuple(image_shape), num_classes, g_widths, label_mode)
  d = ACGANDiscriminator(num_classes, d_widths, dropout=model_cfg.get('d_dropout', 0.5))
  return g, d
