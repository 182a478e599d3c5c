"""BigGAN-deep (Brock et al. 2019, arXiv:1809.11096, App. B, Fig. 16) in the BigGAN-PyTorch layout.

References: ajbrock/BigGAN-PyTorch `BigGANdeep.py` (G_arch / D_arch, GBlock, DBlock; 32 to 256)
and scripts/launch_BigGAN_deep.sh; the 512x512 widths (absent there) are those of
google/compare_gan `architectures/resnet_biggan_deep.py` (its "Table 7-9" of the paper) and, for G,
of the TF-Hub module biggan-deep-512 (huggingface/pytorch-pretrained-BigGAN's port of it).

Generator: no skip-z chunks. The whole z (128) and the shared class embedding shared(y) (128) form
  one conditioning vector c = [shared(y), z] (256) that feeds the first linear layer
  (c -> 4 x 4 x 16ch, with bias) and the conditional BatchNorm of every block.
  Each resolution has `depth` = 2 bottleneck blocks: in -> in (same size), then in -> out (2x up).
  GBlock(in, out), hidden = in / 4 (channel ratio 4), CBN(x, c) of biggan.LinearConditionalBatchNorm:
    h = conv1x1_{in->hid}(ReLU(CBN_1(x)));  h = ReLU(CBN_2(h));  [h = up(h)]
    h = conv3x3_{hid->hid}(h);  h = conv3x3_{hid->hid}(ReLU(CBN_3(h)));  h = conv1x1_{hid->out}(ReLU(CBN_4(h)))
    out = h + [up](x[..., :out])       (the skip keeps the first `out` channels: no skip conv)
  self-attention (arXiv:1805.08318) after the pair of blocks that outputs the attention
  resolution, then BN -> ReLU -> conv3x3 (ch -> 3) -> tanh.
Discriminator: conv3x3 (3 -> ch), then per resolution `depth` = 2 blocks: in -> out (2x down),
  out -> out. DBlock(in, out), hidden = out / 4:
    h = conv1x1_{in->hid}(ReLU(x));  h = conv3x3(ReLU(h));  h = conv3x3(ReLU(h));  h = ReLU(h)
    [h = avgpool(h)];  h = conv1x1_{hid->out}(h)
    out = h + [x', conv1x1_{in->out-in}(x')],  x' = [avgpool](x)   (concatenation when in < out)
  self-attention after the pair that outputs the attention resolution, ReLU, global sum pooling
  phi(x), and the projection head D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (arXiv:1802.05637).

Widths (multiples of ch, per resolution; G in -> out, D in -> out):
  128: G 16,16,8,4,2 -> 16,8,4,2,1;        D 1,2,4,8,16 -> 2,4,8,16,16.
  256: G 16,16,8,8,4,2 -> 16,8,8,4,2,1;    D 1,2,4,8,8,16 -> 2,4,8,8,16,16.
  512: G 16,16,8,8,4,2,1 -> 16,8,8,4,2,1,1;  D 1,1,2,4,8,8,16 -> 1,2,4,8,8,16,16.
   64: G 16,16,8,4 -> 16,8,4,2;             D 1,2,4,8 -> 2,4,8,16.
   32: G 4,4,4 -> 4,4,4;                    D 4,4,4 -> 4,4,4 (down, down, same).
Paper defaults at every size: ch 128, z 128, shared embedding 128, attention at 64x64 in G and D.

Parameters: the trainable `params` collection (SN u vectors and BN running statistics are state);
at ch=128 with 1000 classes G has 50,244,484 / 55,736,708 / 56,019,780 parameters at
128 / 256 / 512 and D 34,590,210 / 38,247,426 / 38,301,122 (tests/test_biggan_deep.py derives
them from the layer lists). The TF-Hub generators' published 50.4M / 55.9M / 56.2M count a final
conv with ch outputs of which the first 3 are kept (+144,125 at ch=128); here it has 3, as in the
paper's tables and BigGAN-PyTorch. Leaf names and SN/ortho conventions as in ganzoo.models.biggan (G's
'embedding' leaves are not spectrally normalized); init orthogonal, biases zero.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import biggan
from ganzoo.models import layers
from ganzoo.models import register
from ganzoo.models.attention import SelfAttention

Array = jax.Array
Initializer = biggan.Initializer

# image size -> (G in, G out, D in, D out, D downsample): width multipliers per resolution.
ARCH: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]] = {
    32: ((4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (True, True, False)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2), (1, 2, 4, 8), (2, 4, 8, 16), (True,) * 4),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1), (1, 2, 4, 8, 16), (2, 4, 8, 16, 16), (True,) * 5),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1), (1, 2, 4, 8, 8, 16), (2, 4, 8, 8, 16, 16),
          (True,) * 6),
    512: ((16, 16, 8, 8, 4, 2, 1), (16, 8, 8, 4, 2, 1, 1), (1, 1, 2, 4, 8, 8, 16),
          (1, 2, 4, 8, 8, 16, 16), (True,) * 7),
}
BOTTOM_WIDTH = 4
CHANNEL_RATIO = 4
num_params = biggan.num_params


class GBlock(nn.Module):
  """Bottleneck ResBlock of G (BigGAN-deep): 1x1 -> [up] 3x3 -> 3x3 -> 1x1, each after CBN-ReLU.

  The skip drops channels (keeps x[..., :features]) and up-samples; conv3x3(up(.)) is computed as
  `layers.UpsampleConv3x3` (the same kernel and result as up-sampling first).
  """
  features: int
  upsample: bool
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array, cond: Array, train: bool = True) -> Array:
    c_in = x.shape[-1]
    if self.features > c_in:
      raise ValueError(f"BigGAN-deep G blocks only keep or drop channels; got {c_in} -> {self.features}")
    hid = c_in // CHANNEL_RATIO

    def cbn(name: str, h: Array) -> Array:
      return nn.relu(biggan.LinearConditionalBatchNorm(self.kernel_init, name=name)(h, cond, train))

    def conv(features: int, k: int, name: str) -> layers.Conv:
      return layers.Conv(features, (k, k), padding='SAME', kernel_init=self.kernel_init, name=name)

    h = conv(hid, 1, 'conv1')(cbn('bn1', x))
    h = cbn('bn2', h)
    if self.upsample:
      h = layers.UpsampleConv3x3(hid, kernel_init=self.kernel_init, name='conv2')(h)
    else:
      h = conv(hid, 3, 'conv2')(h)
    h = conv(hid, 3, 'conv3')(cbn('bn3', h))
    h = conv(self.features, 1, 'conv4')(cbn('bn4', h))
    sc = x[..., :self.features]
    if self.upsample:
      sc = layers.upsample_nearest(sc)
    return h + sc


class DBlock(nn.Module):
  """Bottleneck ResBlock of D (BigGAN-deep): ReLU-1x1, ReLU-3x3, ReLU-3x3, ReLU, [pool], 1x1.

  Shortcut: [avg-pool], then the input channels unchanged, concatenated with a 1x1 conv's
  `features - in` new channels when the block widens.
  """
  features: int
  downsample: bool
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c_in = x.shape[-1]
    if self.features < c_in:
      raise ValueError(f"BigGAN-deep D blocks only keep or add channels; got {c_in} -> {self.features}")
    hid = self.features // CHANNEL_RATIO

    def conv(features: int, k: int, name: str) -> layers.Conv:
      return layers.Conv(features, (k, k), padding='SAME', kernel_init=self.kernel_init, name=name)

    h = conv(hid, 1, 'conv1')(nn.relu(x))
    h = conv(hid, 3, 'conv2')(nn.relu(h))
    h = nn.relu(conv(hid, 3, 'conv3')(nn.relu(h)))
    if self.downsample:
      h = layers.avg_pool2(h)
    h = conv(self.features, 1, 'conv4')(h)
    sc = layers.avg_pool2(x) if self.downsample else x
    if self.features > c_in:
      sc = jnp.concatenate([sc, conv(self.features - c_in, 1, 'conv_sc')(sc)], axis=-1)
    return h + sc


def _stage_resolutions(image_size: int) -> tuple[list[int], list[int]]:
  """Output resolution of each G stage and of each D stage."""
  _, g_out, _, _, d_down = ARCH[image_size]
  g_res = [BOTTOM_WIDTH * 2 ** (i + 1) for i in range(len(g_out))]
  d_res, r = [], image_size
  for down in d_down:
    r = r // 2 if down else r
    d_res.append(r)
  return g_res, d_res


def _check(image_size: int, depth: int) -> None:
  if image_size not in ARCH:
    raise ValueError(f"BigGAN-deep supports image sizes {sorted(ARCH)}; got {image_size}")
  if depth < 1:
    raise ValueError(f"BigGAN-deep needs at least one block per resolution; set config.model.depth "
                     f">= 1 (paper: 2), got {depth}")


class Generator(nn.Module):
  """BigGAN-deep generator G(z, y) -> [N, S, S, C] in [-1, 1] (arXiv:1809.11096, App. B, Fig. 16).

  Attributes:
    ch: width multiplier (paper and TF-Hub modules: 128).
    image_size: a key of ARCH (32, 64, 128, 256, 512).
    z_dim: latent size (paper: 128); all of z conditions every block.
    num_classes: 0 for unconditional (then c = z).
    shared_dim: size of the shared class embedding (paper: 128).
    depth: blocks per resolution (paper: 2; BigGAN-PyTorch `G_depth`).
    attention: resolutions with a self-attention block after their stage.
  """
  ch: int
  image_size: int
  z_dim: int = 128
  num_classes: int = 0
  shared_dim: int = 128
  depth: int = 2
  attention: tuple[int, ...] = (64,)
  attention_pool: bool = True
  out_channels: int = 3
  kernel_init: Initializer = nn.initializers.orthogonal()

  def setup(self):
    _check(self.image_size, self.depth)
    if self.num_classes > 0 and self.shared_dim <= 0:
      raise ValueError("BigGAN-deep conditions on a shared class embedding: set "
                       "config.model.shared_dim > 0 (paper: 128)")
    g_in, g_out, _, _, _ = ARCH[self.image_size]
    g_res, _ = _stage_resolutions(self.image_size)
    self._attn_at = biggan._attention_indices(self.attention, g_res, 'generator')  # pylint: disable=protected-access
    if self.num_classes > 0:
      self.shared = nn.Embed(self.num_classes, self.shared_dim, embedding_init=self.kernel_init,
                             name='shared')
    self.linear = nn.Dense(BOTTOM_WIDTH * BOTTOM_WIDTH * g_in[0] * self.ch,
                           kernel_init=self.kernel_init, name='linear')
    blocks = []
    for s, (m_in, m_out) in enumerate(zip(g_in, g_out)):
      for j in range(self.depth):
        last = j == self.depth - 1
        blocks.append(GBlock((m_out if last else m_in) * self.ch, upsample=last,
                             kernel_init=self.kernel_init, name=f'block{s}_{j}'))
    self.blocks = blocks
    self.attn = [SelfAttention(pool=self.attention_pool, kernel_init=self.kernel_init,
                               name=f'attn{s}') for s in self._attn_at]
    self.out_bn = layers.BatchNorm(momentum=layers.BN_MOMENTUM, epsilon=layers.BN_EPSILON,
                                   name='out_bn')
    self.out_conv = layers.Conv(self.out_channels, (3, 3), padding='SAME',
                                kernel_init=self.kernel_init, name='out_conv')

  def embed(self, y: Array) -> Array:
    """The shared class embedding shared(y): [N] int -> [N, shared_dim]."""
    if self.num_classes <= 0:
      raise ValueError("this generator is unconditional: it has no class embedding")
    return self.shared(y)

  def __call__(self, z: Array, y: Array | None = None, train: bool = True,
               class_vector: Array | None = None) -> Array:
    """G(z, y). `class_vector` ([N, shared_dim]) replaces shared(y), e.g. to interpolate classes."""
    if z.ndim != 2 or z.shape[-1] != self.z_dim:
      raise ValueError(f"generator expects z of shape [N, {self.z_dim}]; got {z.shape}")
    cond = z
    if self.num_classes > 0:
      if y is None and class_vector is None:
        raise ValueError("this generator is class-conditional: pass labels y (int32 [N])")
      cls = class_vector if class_vector is not None else self.shared(y)
      cond = jnp.concatenate([cls, z], axis=-1)  # BigGAN-PyTorch: torch.cat([y, z], 1)
    h = self.linear(cond).reshape(z.shape[0], BOTTOM_WIDTH, BOTTOM_WIDTH, -1)
    a = 0
    for s in range(len(ARCH[self.image_size][0])):
      for j in range(self.depth):
        h = self.blocks[s * self.depth + j](h, cond, train)
      if s in self._attn_at:
        h = self.attn[a](h)
        a += 1
    h = nn.relu(self.out_bn(h, use_running_average=not train))
    return jnp.tanh(self.out_conv(h))


class Discriminator(nn.Module):
  """BigGAN-deep projection discriminator D(x, y) = psi(phi(x)) + <embed(y), phi(x)>.

  arXiv:1809.11096 App. B; BigGAN-PyTorch BigGANdeep.py `Discriminator` (D_depth 2, stem conv).
  """
  ch: int
  image_size: int
  num_classes: int = 0
  depth: int = 2
  attention: tuple[int, ...] = (64,)
  attention_pool: bool = True
  kernel_init: Initializer = nn.initializers.orthogonal()

  def setup(self):
    _check(self.image_size, self.depth)
    _, _, d_in, d_out, d_down = ARCH[self.image_size]
    _, d_res = _stage_resolutions(self.image_size)
    self._attn_at = biggan._attention_indices(self.attention, d_res, 'discriminator')  # pylint: disable=protected-access
    self.input_conv = layers.Conv(d_in[0] * self.ch, (3, 3), padding='SAME',
                                  kernel_init=self.kernel_init, name='input_conv')
    self.blocks = [DBlock(m * self.ch, downsample=down and j == 0, kernel_init=self.kernel_init,
                          name=f'block{s}_{j}')
                   for s, (m, down) in enumerate(zip(d_out, d_down)) for j in range(self.depth)]
    self.attn = [SelfAttention(pool=self.attention_pool, kernel_init=self.kernel_init,
                               name=f'attn{s}') for s in self._attn_at]
    self.linear = nn.Dense(1, kernel_init=self.kernel_init, name='linear')
    if self.num_classes > 0:
      self.embed = nn.Embed(self.num_classes, d_out[-1] * self.ch,
                            embedding_init=self.kernel_init, name='embed')

  def features(self, x: Array, train: bool = True) -> Array:
    """phi(x): [N, S, S, C] -> [N, 16ch] (global sum pooling after a final ReLU)."""
    del train  # no batch statistics or dropout in D
    if x.ndim != 4 or x.shape[1] != self.image_size or x.shape[2] != self.image_size:
      raise ValueError(f"discriminator expects [N, {self.image_size}, {self.image_size}, C] "
                       f"images; got {x.shape}")
    h = self.input_conv(x)
    a = 0
    for s in range(len(ARCH[self.image_size][3])):
      for j in range(self.depth):
        h = self.blocks[s * self.depth + j](h)
      if s in self._attn_at:
        h = self.attn[a](h)
        a += 1
    return jnp.sum(nn.relu(h), axis=(1, 2))

  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    phi = self.features(x, train)
    out = self.linear(phi)[:, 0]
    if self.num_classes > 0:
      if y is None:
        raise ValueError("this discriminator is class-conditional: pass labels y (int32 [N])")
      out = out + jnp.sum(self.embed(y) * phi, axis=-1)
    return out


# Paper / TF-Hub / launch_BigGAN_deep.sh defaults at every size: ch 128, z 128, attention at 64.
PAPER_CH, PAPER_Z, PAPER_ATTENTION = 128, 128, (64,)
# 'tiny' (tests): ch=8, shared_dim 16, attention at half the image size.
TINY_CH = 8


def image_size_of(image_shape: tuple[int, int, int]) -> int:
  h, w, _ = image_shape
  if h != w or h not in ARCH:
    raise ValueError(f"biggan_deep supports square images of size {sorted(ARCH)}; got {h}x{w} — "
                     f"resize the data (config.data.image_size)")
  return h


@register('biggan_deep')
def build(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
          num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """BigGAN-deep (G, D). model_cfg keys (all optional but `name`):

  size ('paper' | 'tiny'), ch (128), d_ch (default ch), z_dim (128), shared_dim (128), depth (2),
  attention_resolution (G and D; int, '32_64', list, 0 = none), d_attention_resolution (default
  attention_resolution), attention_pool (True), init ('ortho').
  """
  size = model_cfg.get('size', 'paper')
  layers.check_size('biggan_deep', size, ('paper', 'tiny'))
  s = image_size_of(image_shape)
  ch, shared_dim, attn = PAPER_CH, 128, PAPER_ATTENTION
  if size == 'tiny':
    ch, shared_dim, attn = TINY_CH, 16, (s // 2,)
  ch = model_cfg.get('ch', None) or ch
  d_ch = model_cfg.get('d_ch', None) or ch
  z_dim = model_cfg.get('z_dim', None) or PAPER_Z
  sd: Any = model_cfg.get('shared_dim', None)
  shared_dim = sd if sd is not None else shared_dim
  depth = model_cfg.get('depth', None) or 2
  g_attn, d_attn, pool = biggan.attention_settings(model_cfg, attn)
  init = biggan.init_of(model_cfg, 'ortho', 'biggan_deep')
  g = Generator(ch=ch, image_size=s, z_dim=z_dim, num_classes=num_classes, shared_dim=shared_dim,
                depth=depth, attention=g_attn, attention_pool=pool, out_channels=image_shape[2],
                kernel_init=init)
  d = Discriminator(ch=d_ch, image_size=s, num_classes=num_classes, depth=depth, attention=d_attn,
                    attention_pool=pool, kernel_init=init)
  return g, d
