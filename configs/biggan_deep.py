"""BigGAN-deep (Brock et al. 2019, arXiv:1809.11096, App. B): BigGAN with bottleneck blocks, two per resolution.

  python -m ganzoo.main --config=configs/biggan_deep.py --workdir=workdirs/biggan_deep128      # imagenet128
  python -m ganzoo.main --config=configs/biggan_deep.py:imagenet256 --workdir=workdirs/biggan_deep256
  python -m ganzoo.main --config=configs/biggan_deep.py:imagenet512 --workdir=workdirs/biggan_deep512
  python -m ganzoo.main --config=configs/biggan_deep.py:tiny --workdir=/tmp/biggan_deep_tiny   # smoke test

Model (ganzoo/models/biggan_deep.py): ch=128, depth 2 (two blocks per resolution), z 128 and the
  128-d shared class embedding concatenated (no skip-z chunks) into every conditional BN,
  self-attention at 64x64 in G and D at every image size, orthogonal init: the paper's BigGAN-deep
  tables, the TF-Hub biggan-deep modules (ch 128, z 128, attention at 64) and
  ajbrock/BigGAN-PyTorch scripts/launch_BigGAN_deep.sh (`--G_ch 128 --D_ch 128 --G_depth 2
  --D_depth 2 --G_attn 64 --D_attn 64 --hier --dim_z 128 --shared_dim 128 --G_shared --G_init ortho
  --D_init ortho`). The data set is ImageNet resized to 128 / 256 / 512 (imagenet2012).
Training: launch_BigGAN_deep.sh, the one public script for BigGAN-deep (its README calls it
  untested; the paper does not list BigGAN-deep's own training settings in a form this config can
  cite), at every image size:
  batch 2048 = 256 x 8 accumulations (`--batch_size 256 --num_G_accumulations 8
  --num_D_accumulations 8`; here train.grad_accum 8), 1 D step per G step (`--num_D_steps 1`),
  Adam G lr 1e-4 / D lr 4e-4 (`--G_lr 1e-4 --D_lr 4e-4`), beta1 0 (utils.py default), beta2 0.999
  (`--G_B2 0.999 --D_B2 0.999`), eps 1e-6 (`--adam_eps 1e-6`), SN eps 1e-6 (`--SN_eps 1e-6`) in G
  and D, no orthogonal regularization (`--G_ortho 0.0`), EMA of G with decay 0.9999 (utils.py
  default) from step 20k (`--ema --use_ema --ema_start 20000`), hinge loss (utils.py default),
  BN eps 1e-5 (`--BN_eps 1e-5`, the zoo's BatchNorm eps). Length: the script keeps utils.py's
  `--num_epochs 100`; with `--use_multiepoch_sampler` and drop_last one run is
  floor(100 x 1,281,167 / 2048) = 62,556 updates (train.py's D batch = 256 x 1 x 8).
  At 256 / 512 the same batch of 2048 needs more memory per micro-batch: raise grad_accum.
tiny: test size (ch=8, shared embedding 16, batch 8 in 2 micro-batches, 32x32 images, attention
  at 16x16; the 32x32 layout keeps 4ch throughout, so tests/test_biggan_deep.py checks G's channel
  dropping and D's concatenation on single blocks).
"""

from ganzoo.config import get_base_config, tiny

DATASETS = ("imagenet128", "imagenet256", "imagenet512")
VARIANTS = (*DATASETS, "tiny")


def get_config(arg=None):
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  unknown = set(variants) - set(VARIANTS)
  if unknown:
    raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from {sorted(VARIANTS)}")
  sizes = [int(v[len("imagenet"):]) for v in variants if v in DATASETS]
  if len(sizes) > 1:
    raise ValueError(f"choose one data set variant of {list(DATASETS)}; got {sorted(set(variants) & set(DATASETS))}")
  c = get_base_config()
  c.model.name = "biggan_deep"
  c.model.conditional = True
  c.loss.name = "hinge"
  c.data.name = "imagenet2012"
  c.data.image_size = sizes[0] if sizes else 128
  c.data.batch_size = 2048              # 256 x 8 accumulations
  c.train.grad_accum = 8
  c.model.ch = 128
  c.model.z_dim = 128
  c.model.shared_dim = 128
  c.model.depth = 2
  c.model.attention_resolution = 64
  c.model.init = "ortho"
  for net, lr in (("g", 1e-4), ("d", 4e-4)):
    c.nets[net].optim.update(dict(name="adam", lr=lr, b1=0.0, b2=0.999, eps=1e-6, decay="none"))
    c.nets[net].sn.enabled = True
    c.nets[net].sn.eps = 1e-6
  c.train.d_steps = 1
  c.nets.g.ortho = 0.0
  c.nets.g.ema.decay = 0.9999
  c.nets.g.ema.start = 20_000
  c.train.num_steps = 62_556            # 100 epochs of 1,281,167 images at 2048 (drop_last)
  c.train.checkpoint_every = 2_000
  c.train.sample_every = 2_000
  if "tiny" in variants:
    tiny(c)
    c.model.ch = 0                      # 0 = the family's tiny width
    c.model.shared_dim = 16
    c.train.grad_accum = 2              # exercise accumulation: 2 micro-batches of 4
    c.nets.g.ema.start = 1
    c.data.image_size = 32
    c.model.attention_resolution = 16
  return c
