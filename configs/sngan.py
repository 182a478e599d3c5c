"""SNGAN (Miyato et al. 2018, arXiv:1802.05957): spectral normalization in D, hinge loss, ResNet.

  python -m ganzoo.main --config=configs/sngan.py --workdir=workdirs/sngan
  python -m ganzoo.main --config=configs/sngan.py:fashion_mnist --workdir=workdirs/sngan_fm

Paper settings (CIFAR-10, ResNet of appendix B, Table 3 setting with n_dis=5): hinge loss,
Adam(lr=2e-4, beta1=0, beta2=0.9), n_critic=5, batch 64, one power iteration per update,
50k generator updates with the learning rate decayed linearly to 0.
Variants: cifar10 (default), mnist, fashion_mnist, cnn (the paper's "standard CNN" instead of the
ResNet), tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "sngan_resnet"
  c.model.z_dim = 128
  c.loss.name = "hinge"
  c.sn.d = True
  for net in ("g", "d"):
    c.optim[net] = dict(name="adam", lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear")
  c.train.d_steps = 5
  c.train.num_steps = 50_000
  c.train.checkpoint_every = 1_000
  variants = [v for v in (arg or "").split(",") if v]
  if "cnn" in variants:
    c.model.name = "sngan_cnn"
    variants.remove("cnn")
  return apply_variants(c, ",".join(variants), ("cifar10", "mnist", "fashion_mnist"))
