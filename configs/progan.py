"""ProGAN (Karras et al. 2018, arXiv:1710.10196): progressive growing with the paper's networks.

  python -m ganzoo.main --config=configs/progan.py:celebahq --workdir=workdirs/progan_celebahq
  python -m ganzoo.main --config=configs/progan.py:cifar10 --workdir=workdirs/progan_cifar10
  python -m ganzoo.main --config=configs/progan.py:small,fashion_mnist --workdir=workdirs/progan_fm

Sizes (networks in ganzoo/models/progan.py, training in ganzoo/methods/progan.py); all train with
Adam(0.001, 0, 0.99, eps 1e-8), equalized LR, pixel norm, minibatch stddev, WGAN-GP (lambda 10) +
drift 0.001, EMA of G 0.999, Adam reset at each new stage, the schedule read every 4 minibatches:
  celebahq: the paper's 1024x1024 network (Table 2; G 23,079,115 and D 23,087,249 parameters with
            every resolution's ToRGB / FromRGB) and its training setup (App. A.1; config.py
            preset-v1-1gpu): mbstd group 16, batch 16 up to 128x128 then 256: 14, 512: 6, 1024: 3,
            800k images per stable resolution and per fade, mirror augment, 19,000 kimg.
  cifar10:  the same network and setup grown to 32x32 (Sec. 6.4), with the gradient penalty's
            target 750 (its E[(||grad|| - 750)^2 / 750^2]); no mirror augment (config.py), 19,000 kimg.
  small:    a CPU size: 32x32, fmap_base 512 / max 64, z 64, batch 32 up to 8x8, then 16,
            20k images per stable resolution and per fade, Fashion-MNIST resized to 32x32 (the
            `fashion_mnist` variant); 140 kimg.
  tiny:     8x8 for tests.
Data variants: fashion_mnist, mnist, cifar10 (names the data layer loads; celeba_hq is read from
`--config.data.name=folder --config.data.path=...` at 1024x1024).
"""

from ganzoo.config import apply_variants, get_base_config
from ganzoo.methods.progan import apply_preset, schedule_from_config, steps_for_kimg

# (total kimg, lod_training_kimg, lod_transition_kimg, base batch, batch_sizes, mirror_augment, wgan_target)
TRAINING = {
    "celebahq": (19_000, 800.0, 800.0, 16, "256:14,512:6,1024:3", True, 1.0),
    "cifar10": (19_000, 800.0, 800.0, 16, "", False, 750.0),
    "small": (140, 20.0, 20.0, 32, "16:16,32:16", False, 1.0),
    "tiny": (0.2, 0.016, 0.016, 16, "", False, 1.0),
}


def get_config(arg=None):
  variants = [v for v in (arg or "").split(",") if v]
  size = next((v for v in variants if v in TRAINING), "small")
  variants = [v for v in variants if v not in TRAINING]
  c = get_base_config()
  apply_preset(c, size)
  kimg, training, transition, batch, batch_sizes, mirror, target = TRAINING[size]
  c.data.batch_size = batch
  c.loss.update(dict(lod_training_kimg=training, lod_transition_kimg=transition, batch_sizes=batch_sizes,
                     mirror_augment=mirror, wgan_target=target))
  c.data.name = {"celebahq": "folder", "cifar10": "cifar10"}.get(size, "fashion_mnist")
  for name in ("fashion_mnist", "mnist", "cifar10"):
    if name in variants:
      c.data.name = name
      variants.remove(name)
  if size == "tiny":
    variants.append("tiny")
  c = apply_variants(c, ",".join(variants), ())
  c.train.num_steps = steps_for_kimg(schedule_from_config(c, c.data.image_size), kimg)
  c.train.log_every = 100 if size != "tiny" else 1
  c.eval.metrics = "fid"
  return c
