"""Real NVP (Dinh, Sohl-Dickstein & Bengio 2017, arXiv:1605.08803) trained by maximum likelihood.

  python -m ganzoo.main --config=configs/realnvp.py --workdir=workdirs/realnvp_cifar10
  python -m ganzoo.main --config=configs/realnvp.py:fashion_mnist --workdir=workdirs/realnvp_fm
  python -m ganzoo.evaluate --workdir=workdirs/realnvp_fm --metrics=bpd,fid

Paper settings (Sec. 4.1; ganzoo/methods/realnvp.py, ganzoo/models/realnvp.py): CIFAR-10 32x32, 2 scales
("downscale only once"), 8 residual blocks of 64 feature maps (doubling at the second scale and in
channel couplings, as the reference code), batch normalization in the couplings and the s/t networks,
weight normalization, logit pre-processing with alpha = 0.05, uniform dequantization, Adam(1e-3,
0.9, 0.999, eps 1e-8), L2 5e-5 on the weight-norm scales, batch 64 (the reference's default). The
paper reports 3.49 bits/dim on CIFAR-10's test set.

Variants:
  cifar10 (default): the published setting;
  fashion_mnist: Fashion-MNIST at 28x28 (28 halves once: 2 scales fit), the 'cpu' network (2 scales,
    2 residual blocks, 16 features; the reference's defaults `residual_blocks=2, base_dim=32` are the
    'small' size: 0.2 steps/s at batch 64 on the shared 2-core CPU here), batch 32, 2,000 steps; bits/dim
    on 2,000 test images at the end;
  tiny: tests.
"""

import ml_collections

from ganzoo import nets as nets_lib
from ganzoo.config import apply_variants, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.method = "realnvp"
  c.data.name = "cifar10"
  c.data.image_size = 32
  c.data.batch_size = 64
  c.model = ml_collections.ConfigDict(dict(
      name="realnvp", size="cifar10", norm="batch", weight_norm=True, logit_alpha=0.05, temperature=1.0,
      num_scales=ml_collections.FieldReference(None, field_type=int),
      features=ml_collections.FieldReference(None, field_type=int),
      num_blocks=ml_collections.FieldReference(None, field_type=int)))
  c.loss = ml_collections.ConfigDict(dict(name="realnvp", l2=5e-5))
  c.nets = ml_collections.ConfigDict({"flow": nets_lib.net_config(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8)})
  c.train.num_steps = 500_000
  c.train.log_every = 100
  c.eval.metrics = ""              # bits/dim every eval (the family's nll); FID via ganzoo.evaluate
  c.eval.every = 10_000
  variants = [v for v in (arg or "").split(",") if v]
  if "cifar10" in variants:
    variants.remove("cifar10")
  if "fashion_mnist" in variants:
    c.data.name = "fashion_mnist"
    c.data.image_size = None         # 28x28 as stored
    c.model.size = "cpu"
    c.data.batch_size = 32
    c.train.num_steps = 2_000
    c.train.log_every = 50
    c.train.sample_every = 250
    c.train.checkpoint_every = 250
    c.eval.every = c.train.num_steps
    c.eval.num_samples = 2_000
    c.eval.batch_size = 100
    variants.remove("fashion_mnist")
  if "tiny" in variants:
    c.data.image_size = 16
    c.data.batch_size = 16
    variants.remove("tiny")
    variants.append("tiny")
  return apply_variants(c, ",".join(variants), ())
