"""WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028) with the paper's CIFAR-10 ResNet.

  python -m ganzoo.main --config=configs/wgan_gp.py --workdir=workdirs/wgan_gp

Settings of the reference CIFAR-10 ResNet code, igul222/improved_wgan_training gan_cifar_resnet.py
(the paper's Table 3 / Sec. 5 ResNet, unconditional: its CONDITIONAL = False):
  lambda = 10 (the gradient penalty), N_CRITIC = 5, Adam(LR = 2e-4, beta1 = 0, beta2 = 0.9)
  decayed linearly to 0 over ITERS = 100k generator iterations (DECAY = True: lr * (1 - it /
  ITERS) for G and D), BATCH_SIZE = 64 for the critic and GEN_BS_MULTIPLE = 2, i.e. 128 latents
  per generator update (`train.g_batch_size`, tied to data.batch_size so overrides keep the
  ratio), DIM_G = DIM_D = 128, BatchNorm in G and no normalization in the critic.
  The paper's Algorithm 1 lists lr 1e-4 as its default hyper-parameters; the ResNet code uses 2e-4.
Not reproduced: the reference adds uniform dequantization noise (1/128) to the real images.
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
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear"))
  c.train.d_steps = 5
  c.train.g_batch_size = c.data.get_ref("batch_size") * 2   # GEN_BS_MULTIPLE = 2
  c.train.num_steps = 100_000
  return apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist"))
