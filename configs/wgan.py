"""WGAN with weight clipping (Arjovsky et al. 2017, arXiv:1701.07875).

  python -m ganzoo.main --config=configs/wgan.py --workdir=workdirs/wgan

Paper settings (Algorithm 1): RMSprop(lr=5e-5), clipping c=0.01, n_critic=5, batch 64, the DCGAN
architecture; critic loss E[D(G(z))] - E[D(x)], generator loss -E[D(G(z))]. The paper's data is
LSUN bedrooms 64x64; the default here is CIFAR-10 32x32.
n_critic schedule of the reference code (martinarjovsky/WassersteinGAN main.py: `Diters = 100`
while `gen_iterations < 25 or gen_iterations % 500 == 0`, else `--Diters 5`): 100 critic updates
at the first 25 steps and at every 500th (`train.d_steps_warmup`), 5 otherwise. The reference
stops a critic loop early at an epoch's end; here every critic update has a full batch.
Variants: cifar10 (default), mnist, fashion_mnist, celeb_a, tiny (n_critic 5 at every step: the
warm-up's 100 unrolled critic updates would dominate a test's compile time).
"""

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "dcgan"
  c.model.z_dim = 100
  c.loss.name = "wasserstein"
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="rmsprop", lr=5e-5, decay_rate=0.99, eps=1e-8, decay="none"))
  c.train.d_steps = 5
  c.train.d_steps_warmup.update(dict(steps=25, d_steps=100, every=500))
  c.nets.d.clip = 0.01
  c.train.num_steps = 100_000
  c = apply_variants(c, arg, ("cifar10", "mnist", "fashion_mnist", "celeb_a"))
  if "tiny" in [v.strip() for v in (arg or "").split(",")]:
    c.train.d_steps_warmup.d_steps = 0
  return c
