"""LAPGAN (Denton et al. 2015, arXiv:1506.05751): a Laplacian pyramid of GANs, 8 -> 16 -> 32.

  python -m ganzoo.main --config=configs/lapgan.py --workdir=workdirs/lapgan
  python -m ganzoo.main --config=configs/lapgan.py:fashion_mnist,cpu --workdir=workdirs/lapgan_fm

Paper settings (CIFAR-10, Sec. 4; networks and update from facebook/eyescream's CIFAR scripts,
see ganzoo/methods/lapgan.py and ganzoo/models/lapgan.py): three levels, 8x8 fully connected
(G 1200, D 600 units per hidden layer, z 100-d U[-1, 1]), 16x16 and 32x32 convnets (G: 3 layers,
D: 2 layers, 64 channels, the noise as an extra input plane); non-saturating BCE; SGD (Torch7
form) lr 0.02 / (1 + 4e-5) per epoch, momentum 0.5 + 0.0008 per epoch up to 0.8; batch 128
(64 reals and 64 fakes per D update, 128 fakes per G update); every level trained on the pyramid
of the real images. (The paper's CIFAR-10 run trains on four 28x28 crops per image, 8 -> 14 -> 28;
the eyescream scripts and this config use the whole 32x32 image, 8 -> 16 -> 32.)
Variants: cifar10 (default), mnist, fashion_mnist (both resized to 32x32: data.image_size = 32),
sequential (one level after the other instead of all levels every step), cpu, tiny.

`cpu` sizes a run for a 2-core CPU: the same layer lists and update rule at widths g_ch = d_ch = 16
(instead of 64; at 64 the two 7x7 64-channel convolutions of G_0 at 32x32 cost ~0.2 GMAC per image),
dense levels 600 / 300 units (instead of 1200 / 600), batch 64, 1,500 steps (~1.2 s a step on the
shared 2-core machine), FID on 2,000 samples at the end, and Adam(2e-4, b1 0.5) instead of the
paper's SGD: at lr 0.02 the SGD of the scripts moves the 8x8 G by ~1e-2 in 1,500 steps (its first
gradient norm is ~3e-4 under D's N(0, 0.005) init); the paper trains for hundreds of epochs.
"""

from ganzoo.config import apply_variants
from ganzoo.methods.lapgan import get_family_config

# Training-set size / reals per D update: eyescream trains on 45,000 CIFAR-10 images with 64 reals.
EPOCH_IMAGES = {"cifar10": 45_000, "mnist": 60_000, "fashion_mnist": 60_000}


def get_config(arg=None):
  variants = [v for v in (arg or "").split(",") if v]
  data = next((v for v in variants if v in EPOCH_IMAGES), "cifar10")
  cpu = "cpu" in variants
  batch = 64 if cpu else 128
  c = get_family_config(levels=3, epoch_updates=EPOCH_IMAGES[data] / (batch // 2))
  c.data.name = "cifar10"
  c.data.batch_size = batch
  c.train.num_steps = 200_000
  c.train.checkpoint_every = 5_000
  c.train.sample_every = 5_000
  if data in ("mnist", "fashion_mnist"):
    c.data.image_size = 32
  if "sequential" in variants:
    c.model.schedule = "sequential"
    variants.remove("sequential")
  if cpu:
    c.model.update(dict(g_ch=16, d_ch=16, g_hidden=600, d_hidden=300))
    for name in c.nets:
      c.nets[name].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, decay="none", momentum_final=None))
    c.train.num_steps = 1_500
    c.train.log_every = 50
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
    c.eval.every = 1_500
    c.eval.num_samples = 2_000
    variants.remove("cpu")
  if "tiny" in variants:
    c.model.update(dict(z_dim=8, g_hidden=16, d_hidden=16, g_ch=4, d_ch=4))
  return apply_variants(c, ",".join(variants), tuple(EPOCH_IMAGES))
