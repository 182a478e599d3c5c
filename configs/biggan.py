"""BigGAN (Brock et al. 2019, arXiv:1809.11096): class-conditional ResNet GAN at large batch.

  python -m ganzoo.main --config=configs/biggan.py --workdir=workdirs/biggan128          # imagenet128
  python -m ganzoo.main --config=configs/biggan.py:imagenet128,ch64 --workdir=workdirs/biggan128_ch64
  python -m ganzoo.main --config=configs/biggan.py:imagenet256 --workdir=workdirs/biggan256
  python -m ganzoo.main --config=configs/biggan.py:imagenet512 --workdir=workdirs/biggan512
  python -m ganzoo.main --config=configs/biggan.py:cifar10 --workdir=workdirs/biggan_c10
  python -m ganzoo.main --config=configs/biggan.py:tiny --workdir=/tmp/biggan_tiny     # smoke test

  # the data set must be prepared for tfds (TFRecord or ArrayRecord); e.g. 8 accelerators, 2048 = 8 x 256:
  python -m ganzoo.main --config=configs/biggan.py --workdir=... --config.data.data_dir=/data/tfds

imagenet128 (default; paper Sec. 4, App. B/C, the 'BigGAN' row of Table 1): ImageNet 128x128,
  G and D at ch=96 (`ch64` variant: ch=64, 71.3M params), shared class embedding (128-d) and
  hierarchical latent (skip-z, z 120 = 6 chunks of 20), self-attention at 64x64 in G and D,
  orthogonal init, hinge loss, spectral norm in G and D, Adam(beta1=0, beta2=0.999, eps=1e-6),
  G lr 5e-5 / D lr 2e-4 and 2 D steps per G step (App. C: the settings of the batch-2048 model),
  orthogonal regularization beta=1e-4 on G, EMA of G with decay 0.9999 from step 20k.
  Batch 2048 = `train.grad_accum` 8 micro-batches of 256 (per update), so one update needs the
  memory of a 256 batch; on N devices each holds 256 / N examples of a micro-batch. Raise
  grad_accum if it does not fit, lower it (to 1) when it does: the result does not depend on it
  for D (no batch statistics); G's BatchNorm normalizes each micro-batch on its own, as in
  BigGAN-PyTorch's accumulation. The paper stops each run at its best FID before collapse
  (roughly 100k-250k iterations); num_steps=250k is an upper bound.
imagenet256 / imagenet512 (paper App. B, the BigGAN tables at 256x256 and 512x512): ImageNet
  resized to 256 / 512, G and D at ch=96, z 140 = 7 chunks of 20 with attention at 128x128 / z 128
  = 8 chunks of 16 with attention at 64x64 (the TF-Hub modules biggan-256 / biggan-512, as
  BigGAN-PyTorch's TFHub/converter.py sets dim_z and G_attn), D's attention at the same
  resolution. The training settings are imagenet128's (this config has no separate source for
  them at 256 / 512); the same batch of 2048 needs more memory per micro-batch: raise grad_accum.
`pytorch` variant: BigGAN-PyTorch's launch_BigGAN_bs256x8.sh (the public reproduction, batch
  256 x 8 accumulations): G lr 1e-4 / D lr 4e-4, 1 D step per G step, no orthogonal
  regularization (`--G_ortho 0.0`); everything else as above.
Spectral norm eps 1e-6 in G and D for imagenet128 (both variants): `--SN_eps 1e-6` of
  ajbrock/BigGAN-PyTorch scripts/launch_BigGAN_bs256x8.sh (and its other ImageNet launch
  scripts); the floor on the norms of the power iteration's u and v (F.normalize(., eps) in its
  layers.py power_iteration), as ganzoo.spectral_norm uses it. The paper does not state it.
cifar10: BigGAN-PyTorch's CIFAR-10 script as it stands (ajbrock/BigGAN-PyTorch
  scripts/launch_cifar_ema.sh, commit b588d62 "Improve docs, update scripts"; its first version
  had batch 64, 1 D step, 1e-4/4e-4 and Xavier init): `--batch_size 50 --num_D_steps 4 --G_lr 2e-4
  --D_lr 2e-4 --G_init N02 --D_init N02` (init N(0, 0.02)), `--G_ortho 0.0`, no attention, EMA
  0.9999 from step 1000 (`--ema_start 1000`), 500 epochs: each step reads 4 x 50 images
  (train.py's D_batch_size), so 250 steps per epoch (drop_last) and 125k steps. The rest are
  utils.py's defaults: ch 64 (every block 256 channels), z 128, no shared embedding and no
  skip-z (per-class BN gain/bias tables), Adam(0, 0.999, eps 1e-8), SN eps 1e-8, G batch = D
  batch; hinge loss, SN in G and D. Batch 50 divides over 1, 2, 5 or 10 devices (the script
  uses 2); on 8, pass e.g. --config.data.batch_size=48.
tiny: test size (ch=8, batch 8 in 2 micro-batches, 32x32 images).
"""

from ganzoo.config import get_base_config, tiny

DATASETS = ("imagenet128", "imagenet256", "imagenet512", "cifar10")


def _imagenet128(c):
  c.data.name = "imagenet2012"
  c.data.image_size = 128
  c.data.batch_size = 2048
  c.train.grad_accum = 8
  c.model.ch = 96
  c.model.z_dim = 120
  c.model.shared_dim = 128
  c.model.hier = True
  c.model.attention_resolution = 64
  c.model.init = "ortho"
  for net, lr in (("g", 5e-5), ("d", 2e-4)):
    c.nets[net].optim.update(dict(name="adam", lr=lr, b1=0.0, b2=0.999, eps=1e-6, decay="none"))
    c.nets[net].sn.eps = 1e-6           # --SN_eps 1e-6 (launch_BigGAN_bs256x8.sh)
  c.train.d_steps = 2
  c.nets.g.ortho = 1e-4
  c.nets.g.ema.decay = 0.9999
  c.nets.g.ema.start = 20_000
  c.train.num_steps = 250_000
  c.train.checkpoint_every = 2_000
  c.train.sample_every = 2_000


def _cifar10(c):
  c.data.name = "cifar10"
  c.data.image_size = None
  c.data.batch_size = 50                # --batch_size 50
  c.train.grad_accum = 1
  c.model.ch = 64
  c.model.z_dim = 128
  c.model.shared_dim = 0
  c.model.hier = False
  c.model.attention_resolution = 0
  c.model.init = "normal"               # --G_init N02 --D_init N02
  for net in ("g", "d"):                # --G_lr 2e-4 --D_lr 2e-4; utils.py: B1 0, B2 0.999, adam_eps 1e-8
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.0, b2=0.999, eps=1e-8, decay="none"))
    c.nets[net].sn.eps = 1e-8           # utils.py --SN_eps default
  c.train.d_steps = 4                   # --num_D_steps 4
  c.nets.g.ortho = 0.0
  c.nets.g.ema.decay = 0.9999
  c.nets.g.ema.start = 1_000
  c.train.num_steps = 125_000           # 500 epochs x 50000 // (50 x 4)
  c.train.checkpoint_every = 2_000
  c.train.sample_every = 2_000


def get_config(arg=None):
  c = get_base_config()
  c.model.name = "biggan"
  c.model.conditional = True
  c.loss.name = "hinge"
  c.nets.g.sn.enabled = True
  c.nets.d.sn.enabled = True
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  unknown = set(variants) - {*DATASETS, "ch64", "pytorch", "tiny"}
  if unknown:
    raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from {sorted({*DATASETS, 'ch64', 'pytorch', 'tiny'})}")
  if len(set(variants) & set(DATASETS)) > 1:
    raise ValueError(f"choose one data set variant of {list(DATASETS)}; got {sorted(set(variants) & set(DATASETS))}")
  (_cifar10 if "cifar10" in variants else _imagenet128)(c)
  if "imagenet256" in variants:         # paper App. B, BigGAN 256x256
    c.data.image_size, c.model.z_dim, c.model.attention_resolution = 256, 140, 128
  if "imagenet512" in variants:         # paper App. B, BigGAN 512x512
    c.data.image_size, c.model.z_dim, c.model.attention_resolution = 512, 128, 64
  if "ch64" in variants:
    c.model.ch = 64
  if "pytorch" in variants:
    c.nets.g.optim.lr, c.nets.d.optim.lr = 1e-4, 4e-4
    c.train.d_steps = 1
    c.nets.g.ortho = 0.0
  if "tiny" in variants:
    tiny(c)
    c.model.ch = 0                      # 0 = the family's tiny width
    c.train.grad_accum = 2              # exercise accumulation: 2 micro-batches of 4
    c.nets.g.ema.start = 1
    if c.model.shared_dim:
      c.model.shared_dim = 16
    if c.data.image_size and c.data.image_size > 32:
      c.data.image_size = 32
      c.model.attention_resolution = 16
  return c
