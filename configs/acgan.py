"""AC-GAN (Odena et al. 2017, arXiv:1610.09585): D predicts the source and the class, CIFAR-10.

  python -m ganzoo.main --config=configs/acgan.py --workdir=workdirs/acgan
  python -m ganzoo.main --config=configs/acgan.py:tiny --workdir=/tmp/acgan_tiny

Paper settings (Appendix, CIFAR-10 model): G: [z (100), one-hot y (10)] -> Dense 4x4x384 ->
transposed convs 5x5/2 (192, 96, 3) with BN and ReLU, tanh; D: 6 convs 3x3 (16..512), LeakyReLU
0.2, dropout 0.5, BN, then a source logit and K class logits (ganzoo.models.conditional).
Objective: D maximizes L_S + L_C, G maximizes L_C - L_S, L_C the log-likelihood of the right
class on real and generated images: here the non-saturating source loss plus `loss.aux_weight`
(1.0) times the class cross-entropy, for D on real and fake and for G on fake images.
Adam(lr=2e-4, beta1=0.5, beta2=0.999), batch 100.
Variants: cifar10 (default), mnist, fashion_mnist, tiny.
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 100
  c.model.name = "acgan"
  c.model.conditional = True
  c.model.z_dim = 100
  c.loss.name = "non_saturating"
  c.loss.aux_weight = 1.0
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 50_000
  return apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist"))
