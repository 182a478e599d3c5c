"""LSGAN (Mao et al. 2017, arXiv:1611.04076).

  python -m ganzoo.main --config=configs/lsgan.py --workdir=workdirs/lsgan

Paper settings: least-squares loss with a=0 (fake), b=1 (real), c=1 (the 0-1 coding; the paper's
other choice a=-1, b=1, c=0 is `--config.loss.a=-1 --config.loss.c=0`), Adam(lr=2e-4, beta1=0.5),
batch 64. The paper's scene generator is a larger DCGAN-style network on LSUN 112x112; the
default here is the DCGAN architecture on CIFAR-10.
Variants: cifar10 (default), mnist, fashion_mnist, celeb_a, tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "dcgan"
  c.model.z_dim = 100
  c.loss.name = "least_squares"
  c.loss.a = 0.0
  c.loss.b = 1.0
  c.loss.c = 1.0
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 100_000
  return apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist", "celeb_a"))
