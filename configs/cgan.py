"""Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): labels fed to G and D, MNIST.

  python -m ganzoo.main --config=configs/cgan.py --workdir=workdirs/cgan
  python -m ganzoo.main --config=configs/cgan.py:fashion_mnist --workdir=workdirs/cgan_fm
  python -m ganzoo.main --config=configs/cgan.py:cifar10,conv --workdir=workdirs/cgan_c10

Paper settings (Sec. 4.1, MNIST): G: z (100-d) -> 200 ReLU, one-hot y -> 1000 ReLU, joined ->
1200 ReLU -> 784 sigmoid; D: maxout x 240x5, y 50x5, joined 240x4 -> sigmoid; dropout 0.5 in
both (ganzoo.models.conditional); SGD with mini-batches of 100, "initial learning rate of 0.1
which was exponentially decreased down to .000001 with decay factor of 1.00004" and "momentum
... with initial value of .5 which was increased up to 0.7".
  lr: 0.1 / 1.00004**t after t updates, floored at 1e-6 (optim.decay 'exponential'; pylearn2's
    ExponentialDecay(decay_factor, min_lr), the callback of the authors' pylearn2 setup).
  momentum: 0.5 ramped linearly to 0.7 (optim.momentum_final). The paper gives no ramp length and
    its code is not public; the numbers here are those of the GAN code the paper builds on
    (goodfeli/adversarial mnist.yaml, Goodfellow et al. 2014: the same SGD, lr 0.1, momentum
    0.5 -> 0.7, min_lr 1e-6, batch 100; its decay_factor is 1.000004, the paper's 1.00004 is kept
    here), MomentumAdjustor(start=1, saturate=250) in epochs, i.e.
    steps 600 -> 150k at 600 steps per MNIST epoch (60k / 100). The SGD step has pylearn2's
    momentum form (v = m v - lr g).
  num_steps 300k (500 epochs): the paper gives no length; by then the lr has reached its floor
    (update ln(1e5) / ln(1.00004) = 287.8k) and the momentum its final value.
Differences: the paper's z prior is uniform; the zoo samples N(0, I). The non-saturating G loss
-log D(G(z|y)|y).
Variants: mnist (default), fashion_mnist, cifar10, conv (a DCGAN-style conv G/D fed one-hot
labels, Adam(2e-4, 0.5) as DCGAN, constant lr), tiny.
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
  steps_per_epoch = 600                 # MNIST's 60k training images / batch 100
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="sgd", lr=0.1, momentum=0.5, decay="exponential", decay_factor=1.00004,
                                  min_lr=1e-6, momentum_final=0.7, momentum_start=1 * steps_per_epoch,
                                  momentum_saturate=250 * steps_per_epoch))
  c.train.num_steps = 500 * steps_per_epoch
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  if "conv" in variants:
    variants.remove("conv")
    c.model.arch = "conv"
    for net in ("g", "d"):
      c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none",
                                    momentum_final=None))
  return apply_variants(c, ",".join(variants), ("mnist", "fashion_mnist", "cifar10"))
