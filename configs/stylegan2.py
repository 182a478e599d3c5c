"""StyleGAN2 (Karras et al. 2020, arXiv:1912.04958) at stylegan2-ada-pytorch's presets.

  python -m ganzoo.main --config=configs/stylegan2.py:cifar --workdir=workdirs/sg2_cifar
  python -m ganzoo.main --config=configs/stylegan2.py:paper256 --workdir=workdirs/sg2_256
  python -m ganzoo.main --config=configs/stylegan2.py:stylegan2 --workdir=workdirs/sg2_ffhq
  python -m ganzoo.main --config=configs/stylegan2.py:small,fashion_mnist --workdir=workdirs/sg2_fm

Presets (train.py cfg_specs; networks in ganzoo/models/stylegan2.py, training in
ganzoo/methods/stylegan2.py): all Adam(lr, 0, 0.99, eps 1e-8), equalized LR on G and D with the
mapping at lr multiplier 0.01, lazy R1 every 16 steps, path length (weight 2, every 4, decay 0.01,
batch shrink 2), style mixing 0.9, w_avg beta 0.995, conv_clamp 256.
  cifar:     32x32, fmaps 1 (channel_base 32768), 2 mapping layers, mbstd group 32, batch 64,
             lr 0.0025, gamma 0.01, EMA 500 kimg with ramp-up 0.05; path length and style mixing off
             and the 'orig' (non-residual) D, as train.py sets for cifar. 100,000 kimg.
  paper256:  256x256, fmaps 0.5, 8 mapping layers, mbstd 8, batch 64, lr 0.0025, gamma 1, EMA 20 kimg.
  stylegan2: 1024x1024 (config F), fmaps 1, mbstd 4, batch 32, lr 0.002, gamma 10, EMA 10 kimg. 25,000 kimg.
  small:     32x32, channel_base 2048 / max 128, z = w = 128, 4 mapping layers, batch 32 (a CPU size).
  tiny:      16x16, for tests.
Data variants: fashion_mnist (resized to 32x32; 16x16 with tiny), cifar10, ffhq/celeb_a names load
where available.
"""

from ganzoo.config import sized_config
from ganzoo.methods.stylegan2 import TRAIN_PRESETS, apply_preset

KIMG = {"cifar": 100_000, "paper256": 25_000, "stylegan2": 25_000, "small": 1_000, "tiny": 1}


def get_config(arg=None):
  return sized_config(arg, TRAIN_PRESETS, apply_preset, KIMG, default_data={"cifar": "cifar10", "small": "cifar10"})
