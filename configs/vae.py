"""VAE (Kingma & Welling 2014, arXiv:1312.6114) and CQ (Lucas et al., arXiv:1901.01091; seed 003).

  python -m ganzoo.main --config=configs/vae.py --workdir=workdirs/vae_mlp
  python -m ganzoo.main --config=configs/vae.py:conv --workdir=workdirs/vae_conv
  python -m ganzoo.main --config=configs/vae.py:conv,fashion_mnist --workdir=workdirs/vae_fm
  python -m ganzoo.main --config=configs/vae.py:conv,fashion_mnist,cq --workdir=workdirs/cq_fm
  python -m ganzoo.main --config=configs/vae.py:conv,fashion_mnist,cpu --workdir=workdirs/vae_fm

Variants (ganzoo/methods/vae.py, ganzoo/models/vae.py):
  mlp (default)  the Flax example (google/flax examples/vae: train.py, configs/default.py): encoder
                 784-500-20, decoder 20-500-784, Bernoulli decoder on binarized 28x28 images (the
                 example reads tfds 'binarized_mnist'; here Fashion-MNIST or MNIST pixels are
                 thresholded at 128: a different data set from binarized MNIST),
                 Adam(1e-3) with optax/flax defaults (0.9, 0.999), batch 128, 30 epochs of 50,000 // 128
                 = 390 steps = 11,700 steps, one posterior sample per image, the KL in closed form.
  conv           google/compare_gan's VAE (compare_gan/src/gans/VAE.py; the VAE row of Lucic et al.
                 2018, arXiv:1711.10337) with its defaults (params.py VAEHyperParams,
                 generate_tasks_lib.py): z_dim 64, batch 64, Adam(5e-5, beta1 0.5; TF's beta2 0.999),
                 no encoder BN (discriminator_batchnorm False), 20 epochs of 50,000 // 64 = 15,625
                 steps, the Bernoulli decoder (compare_gan scores [0, 1] grey levels with the Bernoulli
                 cross-entropy, which is no likelihood of 8-bit data; here its images are binarized).
  fashion_mnist  the 8-bit setting of the seed: the factorized Gaussian decoder with per-pixel sigma(z)
                 (seed eq. 5) on uniformly dequantized pixels, bits/dim on the test split with the
                 D ln 256 correction; z ~ N(0, I) decoded to the mean image for samples.
  mnist          the same data choice for MNIST.
  cq             CQ: the adversarial quality term (seed eq. 1-2) with loss.quality_weight = 1 (untuned:
                 the seed's slides give no weight) and compare_gan's GAN discriminator (its encoder body
                 with BN and one logit; the seed states no D architecture), Adam(2e-4, 0.5) for D.
  cpu            the run on this 2-core CPU: compare_gan's network, Adam(3e-4, 0.9, 0.999)
                 (compare_gan's 5e-5 needs its 15,625 steps; 1e-3 diverged, below), 2,500 steps of
                 batch 64 (2.7 epochs; 1.5-2.5 steps/s measured on the shared CPU), at the end FID of
                 2,000 decoded-mean samples against the test split and the ELBO's bits/dim on the first
                 2,000 test images (the whole test split: experiments/vae_results.py). Measured
                 (experiments/results/vae_fashion_mnist.json): at lr 1e-3 the learned per-pixel
                 sigma(z) of the background pixels (p = 0, sigma -> 1/256/sqrt(12)) made the loss
                 stiff, and the run diverged after step 2,200 (test ELBO bits/dim 9.43 at step 2,500
                 against 5.49 at 2,000); at 3e-4 it trains through: 5.03 bits/dim (ELBO, all test
                 images; IWAE-100 4.84), FID 200.8 at step 2,500, 601 s (experiments/results/vae_fashion_mnist_lr3e-4.json).
  vae            the default (named for the ablation's rows).
  vae_f          VAE-F (seed eq. 6-8): the factorized Gaussian decoder on y = f(x) of the Real NVP flow
                 (ganzoo/models/vae.py `realnvp_flow`, flow_size 'seed': one scale), the flow trained
                 jointly with encoder and decoder by L_C; implies the Gaussian likelihood.
  cq_f           CQ-F: vae_f + cq (L_Q trains decoder and flow; D looks at images f^-1(mu(z))).
  gan            the seed's GAN row at the same size: cq with loss.coverage_weight = 0 (L_Q alone trains
                 the decoder; same G, D, losses and optimizers as cq: ganzoo/methods/vae.py says why).
  flow2          the "+2 scales" flow of the seed's last row (flow_scales = 2).
  flow_cifar10   the flow at the published Real NVP size (2 scales, 8 blocks, 64 features).
  residual       the "Residual" rows: the residual encoder/decoder (and, with cq, the residual D).
  large_d        the "large Discr." row: D at twice the widths (d_width = 2; the seed gives no size).
  ablation       the Fashion-MNIST ablation run here (with one of vae, vae_f, cq, cq_f, gan and
                 fashion_mnist): the cpu setting for ABLATION_STEPS (500) steps, a one-scale flow of 8-feature
                 couplings, FID of 1,000 samples at the end.
  tiny           tests.

The ablation (experiments/results/ablation_fashion_mnist.json, experiments/vae_results.py):
  nice -n 10 python -m ganzoo.main --config=configs/vae.py:fashion_mnist,ROW,ablation \
      --workdir=/work/runs/ablation_ROW          # ROW in vae, vae_f, cq, cq_f, gan
"""

import ml_collections

from ganzoo import nets as nets_lib
from ganzoo.config import apply_variants, get_base_config
from ganzoo.methods.vae import add_config_fields


ABLATION_STEPS = 500


def get_config(arg=None):
  c = add_config_fields(get_base_config())
  c.data.name = "fashion_mnist"
  c.data.batch_size = 128
  c.model.update(dict(arch="mlp", z_dim=20, hidden=500, likelihood="bernoulli"))
  c.nets.vae.optim.update(dict(name="adam", lr=1e-3, b1=0.9, b2=0.999, eps=1e-8))
  c.train.num_steps = 11_700
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  c.eval.metrics = "fid"
  variants = [v for v in (arg or "").split(",") if v]
  if "mlp" in variants:
    variants.remove("mlp")
  if "conv" in variants:
    c.model.update(dict(arch="compare_gan", z_dim=64, encoder_batchnorm=False))
    c.data.batch_size = 64
    c.nets.vae.optim.update(dict(lr=5e-5, b1=0.5))
    c.train.num_steps = 15_625
    variants.remove("conv")
  for name in ("fashion_mnist", "mnist"):
    if name in variants:
      c.data.name = name
      c.model.update(dict(likelihood="gaussian", learn_sigma=True))
      variants.remove(name)
  if "vae" in variants:   # the default: named so that the ablation's five rows have five names
    variants.remove("vae")
  for name, flow, quality in (("vae_f", True, False), ("cq", False, True), ("cq_f", True, True), ("gan", False, True)):
    if name not in variants:
      continue
    variants.remove(name)
    if flow:
      c.model.update(dict(flow="realnvp", flow_size="seed", likelihood="gaussian", learn_sigma=True))
    if quality:
      c.loss.quality_weight = 1.0
      c.model.d_arch = "compare_gan"
      c.nets.d = nets_lib.net_config(name="adam", lr=2e-4, b1=0.5, b2=0.999)
    if name == "gan":
      c.loss.coverage_weight = 0.0
  if "flow2" in variants:
    c.model.flow_scales = 2
    variants.remove("flow2")
  if "flow_cifar10" in variants:
    c.model.flow_size = "cifar10"
    variants.remove("flow_cifar10")
  if "residual" in variants:
    c.model.update(dict(arch="resnet", z_dim=64))
    if c.loss.quality_weight > 0:
      c.model.d_arch = "resnet"
    variants.remove("residual")
  if "large_d" in variants:
    c.model.d_width = 2
    variants.remove("large_d")
  if "cpu" in variants:
    c.model.update(dict(arch="compare_gan", z_dim=64))
    c.data.batch_size = 64
    c.nets.vae.optim.update(dict(lr=3e-4, b1=0.9, b2=0.999))
    c.train.num_steps = 2_500
    c.train.log_every = 50
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
    c.eval.every = c.train.num_steps
    c.eval.num_samples = 2_000
    variants.remove("cpu")
  if "ablation" in variants:
    # The seed's first table on Fashion-MNIST (experiments/results/ablation_fashion_mnist.json): the `cpu`
    # setting at ABLATION_STEPS for every row; the flow has the seed's one scale with couplings of 8
    # features and 1 residual block (the 'cpu' couplings, 16 and 2, ran at 0.7 steps/s under VAE-F on the
    # shared 2-core CPU here, 4x slower than the VAE); FID of 1,000 samples against 1,000 test images at
    # the end (the 10,000-sample figure: `python -m ganzoo.evaluate --workdir=RUN --metrics=fid
    # --num_samples=10000`).
    c.model.update(dict(arch="compare_gan", z_dim=64))
    c.data.batch_size = 64
    c.nets.vae.optim.update(dict(lr=3e-4, b1=0.9, b2=0.999))
    if c.model.flow != "none":
      c.model.update(dict(flow_size="cpu", flow_scales=1, flow_features=8, flow_blocks=1))
    c.train.num_steps = ABLATION_STEPS
    c.train.log_every = 50
    c.train.sample_every = 250
    c.train.checkpoint_every = 250
    c.eval.every = c.train.num_steps
    c.eval.num_samples = 1_000
    variants.remove("ablation")
  if "tiny" in variants:
    c.model.update(dict(arch="tiny", z_dim=4, hidden=16, d_arch="tiny"))
    if c.model.flow != "none":
      c.model.update(dict(flow_size="tiny", flow_scales=1))
    c.data.image_size = 16
  if isinstance(c.get("nets"), ml_collections.ConfigDict) and "d" in c.nets and c.loss.quality_weight <= 0:
    del c.nets["d"]
  return apply_variants(c, ",".join(variants), ())
