"""BEGAN (Berthelot, Schumm & Metz 2017, arXiv:1703.10717): autoencoder D, L1 energies, k_t control.

  python -m ganzoo.main --config=configs/began.py --workdir=workdirs/began
  python -m ganzoo.main --config=configs/began.py:fashion_mnist,cpu --workdir=workdirs/began_fm
  python -m ganzoo.main --config=configs/began.py:fashion_mnist,compare_gan --workdir=workdirs/began_cg

Paper settings (Sec. 4.1; ganzoo/methods/began.py, ganzoo/models/began.py): CelebA 64x64, the
paper's network (3x3 conv + ELU blocks, n = 128 filters growing linearly, stride-2 sub-sampling,
nearest-neighbour up-sampling, embedding Nh = 64, z ~ U(-1, 1)^Nz with Nz = 64), batch 16,
Adam(lr 1e-4, beta1 0.5, beta2 0.999) for G and D (the paper gives lr only; the betas are those
of carpedm20/BEGAN-tensorflow config.py and of compare_gan's BEGAN defaults), gamma 0.5,
lambda_k 0.001, k_0 = 0. n = 128 is carpedm20's default ("n in the paper", choices 64 and 128).
The paper's lr halving "when the measure of convergence stalls" is not implemented (reasons in
ganzoo/methods/began.py).

Variants:
  celeb_a (default, 64x64), cifar10 (32x32), mnist / fashion_mnist (resized to 32x32: the paper's
    network needs sides 8 * 2^k);
  compare_gan: google/compare_gan's smaller BEGAN network (compare_gan/src/gans/BEGAN.py) and its
    defaults (params.py BEGANHyperParams, generate_tasks_lib.py): 28x28 kept for (Fashion-)MNIST,
    batch 64, Adam(1e-4, beta1 0.5; TF's beta2 0.999), gamma 0.75, lambda_k 0.001, z_dim 64 (its
    disc_iters = 5 is not offered: one D update per G update, as in the paper);
  cpu: the paper's network at n = 16 instead of 128 (the 128-filter 3x3 convolutions at 32x32
    cost seconds per step on a 2-core CPU), batch 16 as in the paper, 1,500 steps (0.8 to 2 steps/s
    measured on the shared 2-core CPU), FID on 2,000 samples against the test split at the end;
  skip: the paper's skip connections (Sec. 3.5);
  tiny: tests.
"""

import ml_collections

from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.method = "began"
  c.data.name = "celeb_a"
  c.data.image_size = 64
  c.data.batch_size = 16
  c.model.name = "began"
  c.model.size = "paper"
  c.model.z_dim = 64                 # Nz
  c.model.h_dim = 64                 # Nh
  c.model.n_filters = ml_collections.FieldReference(None, field_type=int)   # None: the size's n
  c.model.repeat = 2
  c.model.skip = False
  c.loss = ml_collections.ConfigDict(dict(name="began", gamma=0.5, lambda_k=0.001, k_init=0.0))
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=1e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 200_000
  c.train.log_every = 100
  c.eval.metrics = "fid"
  variants = [v for v in (arg or "").split(",") if v]
  for name in ("mnist", "fashion_mnist", "cifar10", "celeb_a"):
    if name in variants:
      c.data.name = name
      c.data.image_size = 64 if name == "celeb_a" else 32
      variants.remove(name)
  if "compare_gan" in variants:
    c.model.size = "compare_gan"
    if c.data.name in ("mnist", "fashion_mnist"):
      c.data.image_size = None       # compare_gan trains at 28x28
    c.data.batch_size = 64
    c.loss.gamma = 0.75
    variants.remove("compare_gan")
  if "cpu" in variants:
    if c.model.size == "paper":      # compare_gan's network is CPU-sized already
      c.model.size = "cpu"
    c.train.num_steps = 1_500
    c.train.log_every = 50
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
    c.eval.every = c.train.num_steps
    c.eval.num_samples = 2_000
    variants.remove("cpu")
  if "skip" in variants:
    c.model.skip = True
    variants.remove("skip")
  if "tiny" in variants:
    c.data.image_size = 16
    c.model.z_dim = 8
    c.model.h_dim = 8
    variants.remove("tiny")
    variants.append("tiny")
  return apply_variants(c, ",".join(variants), ())
