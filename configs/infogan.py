"""InfoGAN (Chen et al. 2016, arXiv:1606.03657) at the official MNIST setting.

  python -m ganzoo.main --config=configs/infogan.py --workdir=workdirs/infogan_fm
  python -m ganzoo.main --config=configs/infogan.py:mnist --workdir=workdirs/infogan_mnist

The MNIST experiment of the paper (Sec. 7.2, Appendix C) as its launcher runs it
(openai/InfoGAN launchers/run_mnist_exp.py, infogan_trainer.py): latents z ~ U(-1, 1)^62, c_cat ~
Cat(10), c_cont ~ U(-1, 1)^2; the MNIST networks of Appendix C Table 1 (ganzoo/models/infogan.py);
Q's continuous head a Gaussian with std fixed to 1; lambda = 1 on both the categorical and the
continuous term; Adam beta1 0.5 with G lr 1e-3 and D (and Q) lr 2e-4; batch 128; one D update and
one G update per step; the launcher's 50 epochs of 100 updates = 5,000 steps. The sample grid has
100 images: row r is c_cat = r, columns sweep c_cont[0] from -1 to 1.
Variants: fashion_mnist (default), mnist, tiny, cpu.

`cpu` keeps the published networks and update rule and sets the length of the Fashion-MNIST run
on this shared 2-core CPU (0.13-0.64 steps/s there, median 0.42, beside 4 other runs; the two
6,272 x 1,024 FC layers dominate): 800 steps (1.7 epochs), a grid and a checkpoint every 100
steps, no in-training FID (the Inception features ran at 1-2.6 images/s on that machine).
Cluster accuracy, both code sheets and FID come from experiments/infogan_fashion_mnist.py on the
checkpoint.
"""

from ganzoo.config import apply_variants, get_base_config
from ganzoo.methods.infogan import add_config_fields


def get_config(arg=None):
  c = add_config_fields(get_base_config())
  c.data.name = "fashion_mnist"
  c.data.batch_size = 128
  c.model.size = "paper"
  for net, lr in (("g", 1e-3), ("d", 2e-4), ("q", 2e-4)):
    c.nets[net].optim.update(dict(name="adam", lr=lr, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 5_000
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  c.train.num_sample_images = 100
  variants = [v for v in (arg or "").split(",") if v]
  if "cpu" in variants:
    c.train.num_steps = 800
    c.train.log_every = 25
    c.train.sample_every = 100
    c.train.checkpoint_every = 100
    c.eval.every = 0
    c.eval.num_samples = 2_000
    variants.remove("cpu")
  return apply_variants(c, ",".join(variants), ("fashion_mnist", "mnist"))
