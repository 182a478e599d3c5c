"""WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028).

  python -m ganzoo.main --config=configs/wgan_gp.py --workdir=workdirs/wgan_gp

Paper settings (Algorithm 1, CIFAR-10): lambda=10, n_critic=5, Adam(lr=1e-4, beta1=0, beta2=0.9),
batch 64, no BatchNorm in the critic; the CIFAR-10 ResNet with 128 channels in G and D (the
architecture SNGAN's ResNet is derived from), 100k generator iterations with linear lr decay.
Variants: cifar10 (default), mnist, fashion_mnist, tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "sngan_resnet"
  c.model.g_ch = 128
  c.model.d_ch = 128
  c.loss.name = "wasserstein"
  c.penalties.gradient_penalty = dict(weight=10.0, every=1)
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=1e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear"))
  c.train.d_steps = 5
  c.train.num_steps = 100_000
  return apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist"))
