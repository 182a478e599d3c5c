"""StarGAN (Choi et al. 2018, arXiv:1711.09020): multi-domain image-to-image translation.

  python -m ganzoo.main --config=configs/stargan.py:celeba --workdir=workdirs/stargan_celeba \
      --config.data.path=/path/to/celeba
  python -m ganzoo.main --config=configs/stargan.py:fashion_mnist --workdir=workdirs/stargan_fm
  python -m ganzoo.main --config=configs/stargan.py:fashion_mnist,cpu --workdir=workdirs/stargan_fm_cpu

Variants:
  celeba (default): the published CelebA setting (yunjey/stargan main.py defaults): `data.path` is a
    folder with `img_align_celeba/` and `list_attr_celeba.txt` (the standard CelebA download; the
    reference's data/celeba/images is the same images), attributes Black_Hair, Blond_Hair,
    Brown_Hair, Male, Young as multi-hot labels (c_dim 5), centre crop 178, resize 128, random
    flips, the reference's split (the first 1,999 lines of the shuffled attribute file are the test
    set: ganzoo.data.celeba). G conv_dim 64 with 6 residual blocks, D conv_dim 64 with 6 strided
    convs (G 8,430,528 and D 44,762,048 parameters), lambda_cls 1, lambda_rec 10, lambda_gp 10,
    n_critic 5, Adam(1e-4, 0.5, 0.999), batch 16, 200,000 iterations (train steps = D updates), the
    rate decaying over the last 100,000 (model.lr_schedule: 'paper' = to 0 on the reference's
    1000-iteration staircase; 'reference' = the released code's arithmetic, 0.1% in total).
  fashion_mnist: a STAND-IN for CelebA on this CPU (CelebA cannot be had offline): the 10
    Fashion-MNIST classes as single-label domains (c = one-hot, softmax cross-entropy as the
    reference's RaFD setting), 28x28 grey images; D with 3 strided convs (28 -> 14 -> 7 -> 3,
    cls kernel int(28 / 8) = 3); otherwise the published losses, optimizer, batch and n_critic.
  cpu: the widths cut to fit the shared 2-core CPU (G conv_dim 16, 3 residual blocks; D conv_dim 16)
    and the step count of the committed run (experiments/results/stargan_fashion_mnist.json), the
    decay over its second half in 25 steps of the staircase (lr_update_step 100).
  tiny: test size.
"""

from ganzoo.config import get_base_config, tiny
from ganzoo.methods.stargan import add_config_fields

VARIANTS = ("celeba", "fashion_mnist", "cpu", "tiny")


def get_config(arg=None):
  c = get_base_config()
  c.method = "stargan"
  add_config_fields(c)
  c.data.name = "celeba"
  c.data.split = "train"
  c.data.center_crop = 178
  c.data.image_size = 128
  c.data.batch_size = 16
  c.train.num_steps = 200_000
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 10_000
  c.train.num_sample_images = 36      # 6 columns: a row of inputs, then one row per attribute
  c.eval.metrics = ""                 # FID of translations: experiments/stargan_results.py
  c.eval.real_split = "test"
  for variant in [v.strip() for v in (arg or "").split(",") if v.strip()]:
    if variant == "celeba":
      pass
    elif variant == "fashion_mnist":
      c.data.name = "fashion_mnist"
      c.data.center_crop = None
      c.data.image_size = None
      c.model.d_repeat_num = 3
      c.train.num_sample_images = 121   # 11 columns: a row of inputs, then one row per class
    elif variant == "cpu":
      c.model.g_conv_dim = 16
      c.model.g_repeat_num = 3
      c.model.d_conv_dim = 16
      c.train.num_steps = 5_000
      c.model.num_iters_decay = 2_500
      c.model.lr_update_step = 100    # 25 drops over the decay (the reference: 100 over 100k)
      c.train.log_every = 50
      c.train.sample_every = 500
      c.train.checkpoint_every = 500
    elif variant == "tiny":
      tiny(c)
      c.data.batch_size = 16
      c.model.update(dict(g_conv_dim=4, d_conv_dim=4, g_repeat_num=1, n_critic=2, num_iters_decay=2,
                          lr_update_step=1))
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
  return c
