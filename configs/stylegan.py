"""StyleGAN v1 (Karras et al. 2019, arXiv:1812.04948), NVlabs/stylegan's networks with structure='fixed'.

  python -m ganzoo.main --config=configs/stylegan.py:ffhq --workdir=workdirs/sg1_ffhq
  python -m ganzoo.main --config=configs/stylegan.py:256 --workdir=workdirs/sg1_256
  python -m ganzoo.main --config=configs/stylegan.py:small,fashion_mnist --workdir=workdirs/sg1_fm

Presets (networks in ganzoo/models/stylegan.py, training in ganzoo/methods/stylegan.py): all
Adam(lr, 0, 0.99, eps 1e-8), equalized LR on G and D with the mapping at lr multiplier 0.01,
non-saturating logistic loss with R1 (gamma 10) in D's loss, style mixing 0.9, w_avg beta 0.995,
G EMA half-life 10 kimg, sampling untruncated by default (the reference's FID); --config.model.truncation_psi=0.7 truncates
the first 8 layers as G_style's default.
  ffhq:  1024x1024, the reference's default network (fmap_base 8192, fmap_max 512, mapping 8 x 512,
         z = w = 512), lr 0.003, batch 32 (train.py at 1024), 25,000 kimg.
  512:   the same network at 512x512 (lr 0.003, batch 32); 256: at 256x256 (lr 0.002, batch 32).
  small: 32x32, fmap_base 1024 / max 128, z = w = 128, 4 mapping layers, lr 0.001, batch 32 (a CPU size).
  tiny:  16x16, for tests.
No progressive growing (the reference's default): every resolution trains from the first step.
Data variants: fashion_mnist, mnist, cifar10 (resized to the preset's resolution); ffhq by default
for the large presets.
"""

from ganzoo.config import sized_config
from ganzoo.methods.stylegan import apply_preset
from ganzoo.models.stylegan import PRESETS

KIMG = {"ffhq": 25_000, "512": 25_000, "256": 25_000, "small": 1_000, "tiny": 1}


def get_config(arg=None):
  return sized_config(arg, PRESETS, apply_preset, KIMG, default_data={"small": "cifar10"})
