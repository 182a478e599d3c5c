"""cGAN with a projection discriminator (Miyato & Koyama 2018, arXiv:1802.05637) on SNGAN.

  python -m ganzoo.main --config=configs/sngan_projection.py --workdir=workdirs/sngan_proj_c10
  python -m ganzoo.main --config=configs/sngan_projection.py:imagenet128 --workdir=workdirs/sngan_proj128

D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: the class enters D as an inner product of a learned
class embedding with D's feature vector; G uses class-conditional BatchNorm (per-class gain and
bias). Spectral normalization in D only (including the embedding), hinge loss.
Each G update draws twice D's batch of latents (`train.g_batch_size` = 2 x data.batch_size):
  the updater's `n_gen_samples` (pfnet-research/sngan_projection updater.py) is 128 for a batch
  of 64 in configs/sn_cifar10_conditional.yml and 32 per GPU for 16 per GPU (4 GPUs, README_paper
  .md) in configs/sn_projection.yml.
cifar10 (default): the SNGAN CIFAR-10 ResNet (`sngan_resnet`, g_ch 256, d_ch 128) made
  conditional; configs/sn_cifar10_conditional.yml: Adam(alpha 2e-4, beta1 0, beta2 0.9),
  n_dis 5, batchsize 64, iteration 50k with the lr decayed linearly to 0 from
  iteration_decay_start 0 (train_mn.py's LinearShift of alpha).
imagenet128: the paper's ImageNet 128x128 ResNet (G: 4x4x1024 -> 5 up blocks 16,8,4,2,1 x 64;
  D: 6 down blocks 1,2,4,8,16,16 x 64, sum pooling, projection) -- the SAGAN layout without
  attention, so it is `sagan` with attention_resolution=0 and no SN in G. Init Glorot uniform.
  configs/sn_projection.yml: Adam(2e-4, 0, 0.9), n_dis 5, batch 4 x 16 = 64, iteration 450k,
  the lr constant until iteration_decay_start 400k, then linear to 0 at 450k (optim.decay_start).
tiny: test size.
"""

from ganzoo.config import get_base_config, tiny


def get_config(arg=None):
  c = get_base_config()
  c.data.name = "cifar10"
  c.data.batch_size = 64
  c.model.name = "sngan_resnet"
  c.model.conditional = True
  c.model.z_dim = 128
  c.loss.name = "hinge"
  c.nets.d.sn.enabled = True
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.0, b2=0.9, eps=1e-8, decay="linear"))
  c.train.d_steps = 5
  c.train.g_batch_size = c.data.get_ref("batch_size") * 2   # n_gen_samples
  c.train.num_steps = 50_000
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  unknown = set(variants) - {"cifar10", "imagenet128", "tiny"}
  if unknown:
    raise ValueError(f"unknown variant(s) {sorted(unknown)}; choose from ['cifar10', 'imagenet128', 'tiny']")
  if "imagenet128" in variants:
    c.data.name = "imagenet2012"
    c.data.image_size = 128
    c.model.name = "sagan"
    c.model.ch = 64
    c.model.attention_resolution = 0
    c.model.init = "glorot"
    for net in ("g", "d"):
      c.nets[net].optim.decay_start = 400_000   # iteration_decay_start
    c.train.num_steps = 450_000
    c.train.checkpoint_every = 5_000
  if "tiny" in variants:
    tiny(c)
    if "imagenet128" in variants:
      c.model.ch = 0                    # 0 = the family's tiny width
      c.data.image_size = 32
  return c
