"""SAGAN (Zhang et al. 2019, arXiv:1805.08318): self-attention in a class-conditional ResNet GAN.

  python -m ganzoo.main --config=configs/sagan.py --workdir=workdirs/sagan128          # imagenet128
  python -m ganzoo.main --config=configs/sagan.py:cifar10 --workdir=workdirs/sagan_c10
  python -m ganzoo.main --config=configs/sagan.py:tiny --workdir=/tmp/sagan_tiny

Paper settings (Sec. 5, ImageNet 128x128): hinge loss, spectral normalization in G and in D,
TTUR: G lr 1e-4, D lr 4e-4 (one D step per G step), Adam(beta1=0, beta2=0.9), batch 256,
class-conditional BN in G (per-class gain/bias tables) and the projection discriminator,
self-attention at 64x64 ("feat64", the final model of Table 2) in G and D, ch=64, z 128,
about 1M iterations. Init: Glorot (Xavier) uniform, as the authors' code.
cifar10: the same recipe at 32x32 (attention at 16x16, BigGAN's 32x32 widths); the paper has no
CIFAR-10 model. tiny: test size (ch=8, batch 8, 32x32 images).
"""

from ganzoo.config import get_base_config, tiny


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "imagenet2012"
  c.data.image_size = 128
  c.data.batch_size = 256
  c.model.name = "sagan"
  c.model.conditional = True
  c.model.z_dim = 128
  c.model.ch = 64
  c.model.attention_resolution = 64
  c.model.init = "glorot"
  c.loss.name = "hinge"
  c.nets.g.sn.enabled = True
  c.nets.d.sn.enabled = True
  for net, lr in (("g", 1e-4), ("d", 4e-4)):
    c.nets[net].optim.update(dict(name="adam", lr=lr, b1=0.0, b2=0.9, eps=1e-8, decay="none"))
  c.train.d_steps = 1
  c.train.num_steps = 1_000_000
  c.train.checkpoint_every = 2_000
  c.train.sample_every = 2_000
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  unknown = set(variants) - {"imagenet128", "cifar10", "tiny"}
  if unknown:
    raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from ['cifar10', 'imagenet128', 'tiny']")
  if "cifar10" in variants:
    c.data.name = "cifar10"
    c.data.image_size = None
    c.data.batch_size = 64
    c.model.attention_resolution = 16
    c.train.num_steps = 200_000
  if "tiny" in variants:
    tiny(c)
    c.model.ch = 0                      # 0 = the family's tiny width
    if c.data.image_size and c.data.image_size > 32:
      c.data.image_size = 32
    c.model.attention_resolution = 16
  return c
