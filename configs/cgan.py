"""Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): labels fed to G and D, MNIST.

  python -m ganzoo.main --config=configs/cgan.py --workdir=workdirs/cgan
  python -m ganzoo.main --config=configs/cgan.py:fashion_mnist --workdir=workdirs/cgan_fm
  python -m ganzoo.main --config=configs/cgan.py:cifar10,conv --workdir=workdirs/cgan_c10

Paper settings (Sec. 4.1, MNIST): G: z (100-d) -> 200 ReLU, one-hot y -> 1000 ReLU, joined ->
1200 ReLU -> 784 sigmoid; D: maxout x 240x5, y 50x5, joined 240x4 -> sigmoid; dropout 0.5 in
both (ganzoo.models.conditional); SGD with mini-batches of 100, learning rate 0.1 and momentum
0.5. Differences: the paper decays the lr exponentially (factor 1.00004 per update, down to
1e-6) and raises the momentum to 0.7; the zoo keeps both constant. The paper's z prior is
uniform; the zoo samples N(0, I). The non-saturating G loss -log D(G(z|y)|y).
Variants: mnist (default), fashion_mnist, cifar10, conv (a DCGAN-style conv G/D fed one-hot
labels, Adam(2e-4, 0.5) as DCGAN), tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "mnist"
  c.data.batch_size = 100
  c.model.name = "cgan"
  c.model.conditional = True
  c.model.arch = "mlp"
  c.model.z_dim = 100
  c.loss.name = "non_saturating"
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="sgd", lr=0.1, momentum=0.5, decay="none"))
  c.train.num_steps = 100_000
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  if "conv" in variants:
    variants.remove("conv")
    c.model.arch = "conv"
    for net in ("g", "d"):
      c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  return apply_variants(c, ",".join(variants), ("mnist", "fashion_mnist", "cifar10"))
