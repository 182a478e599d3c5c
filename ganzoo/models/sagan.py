"""SAGAN (Zhang et al. 2019, arXiv:1805.08318): ResNet G/D with self-attention, registered 'sagan'.

The architecture of the authors' ImageNet code, which BigGAN (arXiv:1809.11096) later used as its
"SA-GAN baseline" (Table 1, first rows):
- G: z (128) -> Linear -> 4x4x16ch -> ResBlock up x5 (16,8,4,2,1 x ch) -> BN, ReLU, conv3x3, tanh.
  Each ResBlock up uses class-conditional BN with per-class gain and bias tables
  (`layers.ConditionalBatchNorm`, gamma init 1, beta init 0); no shared embedding, no skip-z.
- D: ResBlock down (1,2,4,8,16,16 x ch), ReLU, global sum pooling, projection head
  psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, arXiv:1802.05637).
- Self-attention (`ganzoo.models.attention.SelfAttention`) after the block that outputs
  `attention_resolution` in G and the block that outputs it in D. Default at 128x128: 64
  ("feat64"), the paper's final model: Table 2 reports SAGAN at FID 18.65 / IS 52.52, the feat64
  column of Table 1 (feat32 had the best FID, 18.28). At 32x32 the default is 16 (the same
  half-resolution placement); the paper has no 32x32 model.
- ch = 64 ('paper'); at 128x128 and 1000 classes G + D = 81.46M parameters (BigGAN Table 1
  SA-GAN baseline: 81.5M, which used z_dim 120: 81.33M). 32x32 uses BigGAN's 32x32 layout
  (every block 4ch = 256 channels, D down, down, same, same).
- Init: Glorot (Xavier) uniform kernels and embeddings, zero biases (the SNGAN/SAGAN reference code);
  model_cfg.init='ortho' switches to BigGAN's orthogonal init.
Training (not here): hinge loss, SN in G and D, TTUR lr 1e-4 (G) / 4e-4 (D), Adam(0, 0.9).
"""

import flax.linen as nn
import ml_collections

from ganzoo.models import biggan
from ganzoo.models import layers
from ganzoo.models import register

# image size -> (ch, z_dim, attention resolution).
PAPER = {32: (64, 128, (16,)), 64: (64, 128, (32,)), 128: (64, 128, (64,)),
         256: (64, 128, (128,))}
TINY_CH = 8



@register('sagan')
def build(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
          num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """SAGAN (G, D). model_cfg keys (all optional but `name`):

  size ('paper' | 'tiny'), ch, d_ch (default ch), z_dim (128), attention_resolution (G and D; int,
  '32_64', list, 0 = none; default image_size // 2), d_attention_resolution, attention_pool (True:
  max-pool keys/values by 2 as the reference code; False: the paper's equations), init ('glorot' |
  'ortho' | 'normal').
  """
  size = model_cfg.get('size', 'paper')
  layers.check_size('sagan', size, ('paper', 'tiny'))
  s = biggan.image_size_of(image_shape, 'sagan')
  ch, z_dim, attn = PAPER[s]
  if size == 'tiny':
    ch = TINY_CH
  ch = model_cfg.get('ch', None) or ch
  d_ch = model_cfg.get('d_ch', None) or ch
  z_dim = model_cfg.get('z_dim', None) or z_dim
  g_attn, d_attn, pool = biggan.attention_settings(model_cfg, attn)
  init = biggan.init_of(model_cfg, 'glorot', 'sagan')
  g = biggan.Generator(ch=ch, image_size=s, z_dim=z_dim, num_classes=num_classes, shared_dim=0,
                       hier=False, attention=g_attn, attention_pool=pool,
                       out_channels=image_shape[2], kernel_init=init)
  d = biggan.Discriminator(ch=d_ch, image_size=s, num_classes=num_classes, attention=d_attn,
                           attention_pool=pool, kernel_init=init)
  return g, d
