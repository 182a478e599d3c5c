"""BigGAN (Brock et al. 2019, arXiv:1809.11096) in the BigGAN-PyTorch layout; also SAGAN's ResNets.

Generator (paper Fig. 15 and Appendix B; BigGAN-PyTorch `G_arch`):
  hierarchical latent ("skip-z"): z in R^{z_dim} is split into (num_blocks + 1) equal chunks;
  chunk 0 -> Linear -> [bw, bw, 16ch] (bw = 4); for block b, cond_b = [shared(y), z_{b+1}] with
  shared(y) in R^128 one class embedding shared by all blocks.
  ResBlock up (G block b):  h = conv3x3(ReLU(CBN_2(conv3x3(up(ReLU(CBN_1(x, cond_b)))), cond_b)))
                            out = h + conv1x1(up(x))           (up = 2x nearest neighbour)
  CBN(x, c) = BN(x) * (1 + W_gain c) + W_bias c, BN without its own affine, W_* linear, no bias.
  self-attention (arXiv:1805.08318) after the block that outputs the attention resolution,
  then BN -> ReLU -> conv3x3 -> tanh.
Discriminator: ResBlock down (ReLU pre-activation except in block 0; conv3x3 -> ReLU -> conv3x3
  -> 2x2 avg-pool; shortcut conv1x1 + avg-pool), self-attention, ReLU, global sum pooling phi(x),
  and the projection head (Miyato & Koyama 2018, arXiv:1802.05637)
    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,   psi linear (with bias).

Widths (multiples of `ch`), BigGAN-PyTorch `G_arch` / `D_arch`:
  128: G 16,16,8,4,2 -> 16,8,4,2,1;  D 1,2,4,8,16,16 (last block keeps 4x4).
  256: G 16,16,8,8,4,2 -> 16,8,8,4,2,1;  D 1,2,4,8,8,16,16.    64: G 16,16,8,4 -> 16,8,4,2.
  512: G 16,16,8,8,4,2,1 -> 16,8,8,4,2,1,1 (BigGAN-PyTorch `G_arch[512]`);  D 1,1,2,4,8,8,16,16
       (google/compare_gan architectures/resnet_biggan.py: a ch-wide down block before the 256 layout).
   32: G 4,4,4 -> 4,4,4;  D 4,4,4,4 (down, down, same, same): with ch=64 every block has 256 channels,
       the CIFAR-10 ResNet of SNGAN that BigGAN's 32x32 models use.

Parameter count convention: the trainable `params` collection only; spectral-norm u vectors and
BN running statistics are state, not parameters (PyTorch `buffers`, which is how the paper's
Table 1 counts). At 128x128 with 1000 classes this gives G + D = 70,433,988 + 87,982,370 =
158.42M at ch=96 (paper: 158.3M) and 71.43M at ch=64 (paper: 71.3M); without shared embedding
and skip-z (per-class BN tables, the SA-GAN baseline) 81.33M at ch=64 (paper: 81.5M). At 256 / 512
(ch=96, z 140 / 128): G 82,097,604 / 82,296,804 and D 99,191,330 / 99,401,282.

Leaves use standard names so the zoo's transforms apply without special cases: convs and linears
'kernel' (+ 'bias'), the embeddings 'embedding', BN 'scale'/'bias', attention gate 'gamma'.
BigGAN-PyTorch spectrally normalizes every G/D conv and linear (including the CBN gain/bias
projections) and D's projection embedding, but NOT G's shared class embedding (path
`shared/embedding`) nor the per-class BN tables: exclude G's 'embedding' leaves from SN.
Init: orthogonal for every kernel and embedding (BigGAN-PyTorch `--G_init ortho --D_init ortho`),
zero biases.
"""

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import register
from ganzoo.models import layers
from ganzoo.models.attention import SelfAttention

Array = jax.Array
Initializer = Callable[..., Array]

# image size -> (G in-width multipliers, G out-width multipliers, D out-widths, D downsample).
ARCH: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[bool, ...]]] = {
    32: ((4, 4, 4), (4, 4, 4), (4, 4, 4, 4), (True, True, False, False)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2), (1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16),
          (True, True, True, True, True, False)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1), (1, 2, 4, 8, 8, 16, 16),
          (True, True, True, True, True, True, False)),
    512: ((16, 16, 8, 8, 4, 2, 1), (16, 8, 8, 4, 2, 1, 1), (1, 1, 2, 4, 8, 8, 16, 16),
          (True, True, True, True, True, True, True, False)),
}
BOTTOM_WIDTH = 4


def num_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or ShapeDtypeStructs (e.g. variables['params'])."""
  return int(sum(int(x.size) for x in jax.tree_util.tree_leaves(tree)))


_upsample = layers.upsample_nearest
_avg_pool = layers.avg_pool2


class LinearConditionalBatchNorm(nn.Module):
  """BigGAN's CBN: y = BN(x) * (1 + W_gain c) + W_bias c (arXiv:1809.11096, Sec. 4 / App. B).

  c: [N, D] conditioning vector (shared class embedding ++ z chunk); W_gain, W_bias: Dense without
  bias (leaves 'gain/kernel', 'bias/kernel'); BN without affine, statistics in 'batch_stats'.
  """
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array, cond: Array, train: bool = True) -> Array:
    c = x.shape[-1]
    h = layers.batch_norm(train, use_scale=False, use_bias=False, name='bn')(x)
    gain = 1.0 + nn.Dense(c, use_bias=False, kernel_init=self.kernel_init, name='gain')(cond)
    bias = nn.Dense(c, use_bias=False, kernel_init=self.kernel_init, name='bias')(cond)
    return h * gain[:, None, None, :] + bias[:, None, None, :]


def _cond_bn(mode: str, num_classes: int, kernel_init: Initializer, name: str, x: Array,
             cond: Array | None, y: Array | None, train: bool) -> Array:
  """The generator's normalization: 'linear' (BigGAN CBN), 'table' (per-class), 'none' (plain BN)."""
  if mode == 'linear':
    return LinearConditionalBatchNorm(kernel_init, name=name)(x, cond, train)
  if mode == 'table':
    return layers.ConditionalBatchNorm(num_classes, name=name)(x, y, train)
  return layers.batch_norm(train, name=name)(x)


class GBlock(nn.Module):
  """ResBlock up: conv3x3(ReLU(CBN(conv3x3(up(ReLU(CBN(x))))))) + conv1x1(up(x)).

  Computed in the equal, cheaper forms `layers.UpsampleConv3x3` for conv3x3(up(.)) and
  up(conv1x1(x)) for the shortcut (a 1x1 conv commutes with nearest up-sampling); the params are
  those of the plain layers.
  """
  features: int
  cbn: str = 'linear'
  num_classes: int = 0
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array, cond: Array | None, y: Array | None,
               train: bool = True) -> Array:
    conv = lambda k, name: layers.Conv(self.features, (k, k), padding='SAME',
                                       kernel_init=self.kernel_init, name=name)
    h = nn.relu(_cond_bn(self.cbn, self.num_classes, self.kernel_init, 'bn1', x, cond, y, train))
    h = layers.UpsampleConv3x3(self.features, kernel_init=self.kernel_init, name='conv1')(h)
    h = nn.relu(_cond_bn(self.cbn, self.num_classes, self.kernel_init, 'bn2', h, cond, y, train))
    h = conv(3, 'conv2')(h)
    return h + _upsample(conv(1, 'conv_sc')(x))


class DBlock(nn.Module):
  """ResBlock down: [ReLU] -> conv3x3 -> ReLU -> conv3x3 -> [avgpool], + learnable shortcut.

  Shortcut (BigGAN-PyTorch): pre-activated blocks conv1x1 then pool; block 0 pools then conv1x1;
  identity when the width is kept and there is no downsampling.
  """
  features: int
  downsample: bool = True
  preactivation: bool = True
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    conv = lambda k, name: layers.Conv(self.features, (k, k), padding='SAME',
                                       kernel_init=self.kernel_init, name=name)
    h = nn.relu(x) if self.preactivation else x
    h = conv(3, 'conv2')(nn.relu(conv(3, 'conv1')(h)))
    if self.downsample:
      h = _avg_pool(h)
    sc = x
    if self.downsample or x.shape[-1] != self.features:
      if self.preactivation:
        sc = conv(1, 'conv_sc')(sc)
        sc = _avg_pool(sc) if self.downsample else sc
      else:
        sc = _avg_pool(sc) if self.downsample else sc
        sc = conv(1, 'conv_sc')(sc)
    return h + sc


def _attention_indices(resolutions: Sequence[int], out_res: Sequence[int], who: str) -> list[int]:
  """Indices of the blocks whose output resolution is one of `resolutions`."""
  idx = []
  for r in resolutions:
    if r not in out_res:
      raise ValueError(f"{who}: no block outputs {r}x{r}; set config.model.attention_resolution to "
                       f"one of {sorted(set(out_res))} (or 0 for none)")
    idx.append(out_res.index(r))
  return sorted(set(idx))


class Generator(nn.Module):
  """BigGAN / SAGAN generator G(z, y) -> [N, S, S, C] in [-1, 1] (arXiv:1809.11096, App. B).

  Attributes:
    ch: width multiplier (paper: 96 for BigGAN 128x128, 64 for the ch=64 rows).
    image_size: 32, 64, 128 or 256 (ARCH).
    z_dim: latent size (paper: 120 at 128x128 with skip-z; 128 at 32x32).
    num_classes: 0 for unconditional.
    shared_dim: size of the shared class embedding (paper 128); 0 means per-class BN gains and
      biases (`layers.ConditionalBatchNorm` tables: SAGAN and the "Shared ✗" rows of Table 1).
    hier: skip-z, z split into len(blocks) + 1 chunks (needs shared_dim > 0 or num_classes == 0).
    attention: resolutions with a self-attention block after the G block that outputs them.
  """
  ch: int
  image_size: int
  z_dim: int
  num_classes: int = 0
  shared_dim: int = 128
  hier: bool = True
  attention: tuple[int, ...] = (64,)
  attention_pool: bool = True
  out_channels: int = 3
  kernel_init: Initializer = nn.initializers.orthogonal()

  @property
  def num_slots(self) -> int:
    return len(ARCH[self.image_size][0]) + 1 if self.hier else 1

  @property
  def cbn_mode(self) -> str:
    if self.shared_dim > 0 and self.num_classes > 0:
      return 'linear'
    if self.hier:
      return 'linear'  # unconditional with skip-z: gains/biases from the z chunk only
    return 'table' if self.num_classes > 0 else 'none'

  def setup(self):
    if self.image_size not in ARCH:
      raise ValueError(f"BigGAN/SAGAN support image sizes {sorted(ARCH)}; got {self.image_size}")
    if self.hier and self.num_classes > 0 and self.shared_dim <= 0:
      raise ValueError("skip-z (hier=True) needs a shared embedding: set config.model.shared_dim "
                       "> 0 or config.model.hier=False")
    if self.z_dim % self.num_slots:
      raise ValueError(f"z_dim={self.z_dim} must split into {self.num_slots} equal chunks with "
                       f"skip-z; set config.model.z_dim to a multiple of {self.num_slots}")
    g_in, g_out, _, _ = ARCH[self.image_size]
    out_res = [BOTTOM_WIDTH * 2 ** (i + 1) for i in range(len(g_out))]
    self._attn_at = _attention_indices(self.attention, out_res, 'generator')
    if self.num_classes > 0 and self.shared_dim > 0:
      self.shared = nn.Embed(self.num_classes, self.shared_dim, embedding_init=self.kernel_init,
                             name='shared')
    self.linear = nn.Dense(BOTTOM_WIDTH * BOTTOM_WIDTH * g_in[0] * self.ch,
                           kernel_init=self.kernel_init, name='linear')
    self.blocks = [GBlock(m * self.ch, self.cbn_mode, self.num_classes, self.kernel_init,
                          name=f'block{i}') for i, m in enumerate(g_out)]
    self.attn = [SelfAttention(pool=self.attention_pool, kernel_init=self.kernel_init,
                               name=f'attn{i}') for i in self._attn_at]
    self.out_bn = layers.BatchNorm(momentum=layers.BN_MOMENTUM, epsilon=layers.BN_EPSILON,
                                   name='out_bn')  # use_running_average is given per call
    self.out_conv = layers.Conv(self.out_channels, (3, 3), padding='SAME',
                                kernel_init=self.kernel_init, name='out_conv')

  def embed(self, y: Array) -> Array:
    """The shared class embedding shared(y): [N] int -> [N, shared_dim]."""
    if not (self.num_classes > 0 and self.shared_dim > 0):
      raise ValueError("this generator has no shared class embedding (num_classes or shared_dim "
                       "is 0)")
    return self.shared(y)

  def split_z(self, z: Array) -> list[Array]:
    """Skip-z chunks: [z_0 (to the linear layer), z_1, ..., z_B (one per block)]."""
    return jnp.split(z, self.num_slots, axis=-1)

  def __call__(self, z: Array, y: Array | None = None, train: bool = True,
               class_vector: Array | None = None) -> Array:
    """G(z, y). `class_vector` ([N, shared_dim]) replaces shared(y), e.g. to interpolate classes."""
    if z.ndim != 2 or z.shape[-1] != self.z_dim:
      raise ValueError(f"generator expects z of shape [N, {self.z_dim}]; got {z.shape}")
    n = z.shape[0]
    nb = len(self.blocks)
    chunks = self.split_z(z) if self.hier else [z]
    cls = None
    if self.num_classes > 0:
      if y is None and class_vector is None:
        raise ValueError("this generator is class-conditional: pass labels y (int32 [N])")
      if self.shared_dim > 0:
        cls = class_vector if class_vector is not None else self.shared(y)
    conds: list[Array | None] = []
    for b in range(nb):
      parts = ([cls] if cls is not None else []) + ([chunks[b + 1]] if self.hier else [])
      conds.append(jnp.concatenate(parts, axis=-1) if parts else None)
    h = self.linear(chunks[0]).reshape(n, BOTTOM_WIDTH, BOTTOM_WIDTH, -1)
    a = 0
    for b, block in enumerate(self.blocks):
      h = block(h, conds[b], y, train)
      if b in self._attn_at:
        h = self.attn[a](h)
        a += 1
    h = nn.relu(self.out_bn(h, use_running_average=not train))
    return jnp.tanh(self.out_conv(h))


class Discriminator(nn.Module):
  """BigGAN / SAGAN projection discriminator D(x, y) = psi(phi(x)) + <embed(y), phi(x)>.

  arXiv:1809.11096 App. B; projection head of Miyato & Koyama 2018 (arXiv:1802.05637).
  `features(x)` returns phi(x) = sum_{h,w} ReLU(blocks(x)), [N, C].
  """
  ch: int
  image_size: int
  num_classes: int = 0
  attention: tuple[int, ...] = (64,)
  attention_pool: bool = True
  kernel_init: Initializer = nn.initializers.orthogonal()

  def setup(self):
    if self.image_size not in ARCH:
      raise ValueError(f"BigGAN/SAGAN support image sizes {sorted(ARCH)}; got {self.image_size}")
    _, _, d_out, d_down = ARCH[self.image_size]
    out_res, r = [], self.image_size
    for down in d_down:
      r = r // 2 if down else r
      out_res.append(r)
    self._attn_at = _attention_indices(self.attention, out_res, 'discriminator')
    self.blocks = [DBlock(m * self.ch, down, preactivation=i > 0, kernel_init=self.kernel_init,
                          name=f'block{i}') for i, (m, down) in enumerate(zip(d_out, d_down))]
    self.attn = [SelfAttention(pool=self.attention_pool, kernel_init=self.kernel_init,
                               name=f'attn{i}') for i in self._attn_at]
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
    h = x
    a = 0
    for b, block in enumerate(self.blocks):
      h = block(h)
      if b in self._attn_at:
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


def parse_resolutions(value: Any) -> tuple[int, ...]:
  """Attention resolutions from a config value: 64, '32_64' (BigGAN-PyTorch style), [32, 64], 0."""
  if value is None or value == 0 or value == '' or value == '0':
    return ()
  if isinstance(value, int):
    return (value,)
  if isinstance(value, str):
    return tuple(int(v) for v in value.split('_') if v and v != '0')
  return tuple(int(v) for v in value if int(v) > 0)


def attention_settings(model_cfg: Any, default: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
  """(G's, D's attention resolutions, pooled keys) from a model config: `attention_resolution`
  (default `default`), `d_attention_resolution` (default G's), `attention_pool` (default True)."""
  g_attn = default
  if model_cfg.get('attention_resolution', None) is not None:
    g_attn = parse_resolutions(model_cfg.attention_resolution)
  d_attn = g_attn
  if model_cfg.get('d_attention_resolution', None) is not None:
    d_attn = parse_resolutions(model_cfg.d_attention_resolution)
  return g_attn, d_attn, bool(model_cfg.get('attention_pool', True))


def image_size_of(image_shape: tuple[int, int, int], family: str) -> int:
  """Checks a square image size that ARCH supports and returns it."""
  h, w, _ = image_shape
  if h != w or h not in ARCH:
    raise ValueError(f"{family} supports square images of size {sorted(ARCH)}; got {h}x{w} — "
                     f"resize the data (config.data.image_size)")
  return h


# Paper defaults per image size: (ch, z_dim, attention resolutions).
#   128/256: ch=96, z 120 / 140 (6 / 7 slots of 20), attention at 64 / 128 (paper App. B).
#   512: ch=96, z 128 (8 slots of 16), attention at 64 (paper App. B; the TF-Hub module biggan-512,
#   whose z is 128 and attention at 64, as BigGAN-PyTorch's TFHub/converter.py configures it).
#   32 (CIFAR-10): ch=64 (every block 4ch = 256 channels), z 128 (4 slots of 32); no attention, as
#   BigGAN-PyTorch's CIFAR launch script (`--G_attn 0 --D_attn 0`).
PAPER = {32: (64, 128, ()), 64: (96, 120, (32,)), 128: (96, 120, (64,)), 256: (96, 140, (128,)),
         512: (96, 128, (64,))}
INITS = {'ortho': nn.initializers.orthogonal(), 'glorot': layers.glorot_uniform(),
         'normal': layers.dcgan_normal}


def init_of(model_cfg: ml_collections.ConfigDict, default: str, family: str) -> Initializer:
  """Kernel/embedding init from config.model.init ('ortho' | 'glorot' | 'normal' = N(0, 0.02))."""
  name = model_cfg.get('init', None) or default
  if name not in INITS:
    raise ValueError(f"{family}: unknown init {name!r}; set config.model.init to one of "
                     f"{sorted(INITS)}")
  return INITS[name]


# 'tiny' (tests): ch=8, shared_dim 16, attention at half the image size so the block is exercised.
TINY_CH = 8


@register('biggan')
def build(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
          num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """BigGAN (G, D). model_cfg keys (all optional but `name`):

  size ('paper' | 'tiny'), ch, d_ch (default ch), z_dim, shared_dim (128; 0 = per-class BN
  tables), hier (skip-z, True), attention_resolution (G and D; int, '32_64', list, 0 = none),
  d_attention_resolution (default attention_resolution), attention_pool (True), init ('ortho').
  """
  size = model_cfg.get('size', 'paper')
  layers.check_size('biggan', size, ('paper', 'tiny'))
  s = image_size_of(image_shape, 'biggan')
  ch, z_dim, attn = PAPER[s]
  shared_dim = 128
  if size == 'tiny':
    ch, shared_dim, attn = TINY_CH, 16, (s // 2,)
  ch = model_cfg.get('ch', None) or ch
  d_ch = model_cfg.get('d_ch', None) or ch
  z_dim = model_cfg.get('z_dim', None) or z_dim
  shared_dim = model_cfg.get('shared_dim', shared_dim)
  shared_dim = shared_dim if shared_dim is not None else 128
  hier = bool(model_cfg.get('hier', True))
  g_attn, d_attn, pool = attention_settings(model_cfg, attn)
  init = init_of(model_cfg, 'ortho', 'biggan')
  g = Generator(ch=ch, image_size=s, z_dim=z_dim, num_classes=num_classes, shared_dim=shared_dim,
                hier=hier, attention=g_attn, attention_pool=pool, out_channels=image_shape[2],
                kernel_init=init)
  d = Discriminator(ch=d_ch, image_size=s, num_classes=num_classes, attention=d_attn,
                    attention_pool=pool, kernel_init=init)
  return g, d
