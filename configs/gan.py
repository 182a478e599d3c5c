"""The original GAN (Goodfellow et al. 2014, arXiv:1406.2661): MLP G and D on MNIST.

  python -m ganzoo.main --config=configs/gan.py --workdir=workdirs/gan
  python -m ganzoo.main --config=configs/gan.py:fashion_mnist,minimax --workdir=workdirs/gan_fm

Paper settings (its pylearn2 MNIST experiment): batch 100, k=1 D step per G step, SGD with
momentum 0.5 and learning rate 0.1, G trained with the non-saturating loss -log D(G(z)) that the
paper recommends in practice; the 'minimax' variant uses the saturating log(1 - D(G(z))).
Variants: mnist (default), fashion_mnist, cifar10, minimax, tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "mnist"
  c.data.batch_size = 100
  c.model.name = "mlp"
  c.model.z_dim = 100
  c.loss.name = "non_saturating"
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="sgd", lr=0.1, momentum=0.5, decay="none"))
  c.train.num_steps = 100_000
  variants = [v for v in (arg or "").split(",") if v]
  if "minimax" in variants:
    c.loss.name = "minimax"
    variants.remove("minimax")
  return apply_variants(c, ",".join(variants), ("mnist", "fashion_mnist", "cifar10"))
