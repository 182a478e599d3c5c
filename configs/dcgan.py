"""DCGAN (Radford et al. 2016, arXiv:1511.06434).

  python -m ganzoo.main --config=configs/dcgan.py --workdir=workdirs/dcgan
  python -m ganzoo.main --config=configs/dcgan.py:fashion_mnist --workdir=workdirs/dcgan_fm

Paper settings: Adam(lr=2e-4, beta1=0.5), batch 128, z ~ 100-d, weights N(0, 0.02), BN in G and
in D (not on D's first layer), ReLU in G, LeakyReLU(0.2) in D, tanh output, non-saturating loss.
The paper trains on LSUN bedrooms / faces at 64x64 and ImageNet-1k at 32x32; the default here is
CIFAR-10 32x32 (the 32x32 layout of the paper's ImageNet-1k model).
Variants: cifar10 (default), mnist, fashion_mnist (28x28), celeb_a (64x64), tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 128
  c.model.name = "dcgan"
  c.model.z_dim = 100
  c.loss.name = "non_saturating"
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 100_000
  return apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist", "celeb_a"))
