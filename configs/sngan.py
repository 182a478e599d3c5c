"""SNGAN (Miyato et al. 2018, arXiv:1802.05957): spectral normalization in D, hinge loss, ResNet.

  python -m ganzoo.main --config=configs/sngan.py --workdir=workdirs/sngan
  python -m ganzoo.main --config=configs/sngan.py:fashion_mnist --workdir=workdirs/sngan_fm

Paper settings (CIFAR-10, ResNet of appendix B, Table 3 setting with n_dis=5): hinge loss,
Adam(lr=2e-4, beta1=0, beta2=0.9), n_critic=5, batch 64, one power iteration per update,
50k generator updates with the learning rate decayed linearly to 0.
Variants: cifar10 (default), mnist, fashion_mnist, cnn (the paper's "standard CNN" instead of the
ResNet), cpu, tiny.

`cpu` sizes the run for a laptop CPU (the README quick start): the same ResNet and update rule
(hinge, SN, n_critic=5, Adam(2e-4, 0, 0.9), linear decay) at widths g_ch=d_ch=32 instead of 256/128
(the paper's widths cost ~9 s per step on a 2-core CPU: 256-channel 3x3 convolutions at full
resolution), 3,000 generator steps, and FID/KID on 2,000 samples at the end.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "sngan_resnet"
  c.model.z_dim = 128
  c.loss.name = "hinge"
  c.nets.d.sn.enabled = True
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear"))
  c.train.d_steps = 5
  c.train.num_steps = 50_000
  c.train.checkpoint_every = 1_000
  variants = [v for v in (arg or "").split(",") if v]
  if "cnn" in variants:
    c.model.name = "sngan_cnn"
    variants.remove("cnn")
  if "cpu" in variants:
    c.model.g_ch = 32
    c.model.d_ch = 32
    c.train.num_steps = 3_000
    c.train.log_every = 50
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
    c.eval.every = 3_000
    c.eval.num_samples = 2_000
    variants.remove("cpu")
  return apply_variants(c, ",".join(variants), ("cifar10", "mnist", "fashion_mnist"))
