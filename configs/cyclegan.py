"""CycleGAN (Zhu et al. 2017, arXiv:1703.10593): unpaired translation, horse2zebra by default.

  python -m ganzoo.main --config=configs/cyclegan.py --workdir=workdirs/cyclegan_h2z
  python -m ganzoo.main --config=configs/cyclegan.py:cpu --workdir=workdirs/cyclegan_h2z_cpu \
      --config.data.path=../shared/data/horse2zebra
  python -m ganzoo.main --config=configs/cyclegan.py:tfds --workdir=workdirs/cyclegan_h2z_tfds

Variants:
  horse2zebra (default): the published setting (pytorch-CycleGAN-and-pix2pix, `--model cycle_gan`):
    256 px (load 286, random crop 256, flip), resnet_9blocks G, 70x70 PatchGAN D, InstanceNorm, LSGAN,
    lambda_A = lambda_B = 10, lambda_identity 0.5, pool 50, Adam 2e-4 (0.5, 0.999), batch 1,
    100 epochs at constant lr + 100 epochs of linear decay, an epoch being max(|trainA|, |trainB|)
    = 1,334 images (unaligned_dataset.py's __len__): 266,800 steps, decay from step 133,400.
  cpu: the run that fits a 2-core CPU: 64 px (load 72 = 64 * 286 / 256, crop 64), resnet_6blocks
    (the reference's choice at 128 px and below), the rest as published (widths included), one epoch
    = 1,334 steps: constant lr for 667, then linear to 0 (the 100 + 100 epochs' shape shrunk to one
    epoch). The results in experiments/results/cyclegan_horse2zebra.json come from this variant's
    earlier 200-step setting (100 + 100 steps, 8-13 s a step on a shared CPU).
  tfds: the same data from tfds `cycle_gan/horse2zebra` (splits trainA, trainB, testA, testB), prepared
    in TFDS_DATA_DIR (`tfds build cycle_gan/horse2zebra` on a machine with internet).
  128: 128 px (load 143), resnet_6blocks.
  tiny: the family's test size.

Data: the root of a CycleGAN folder layout `<root>/{trainA,trainB,testA,testB}` (the CycleGAN
datasets page's horse2zebra.zip unpacked, or any such layout) is `data.path` (default
data/horse2zebra). `config.data` (stream 'a') reads split trainA and `config.data_b` (stream 'b')
split trainB; a 'folder' source reads the subfolder `<path>/<split>`. data_b's name, source,
data_dir, path, image_size, max_examples and batch_size are references to data's, so
`--config.data.path=ROOT` (or `--config.data.image_size=...`) sets both streams. Greyscale files
(seven in horse2zebra's trainB) load as RGB (ganzoo.data.sources.FolderSource converts every file to
the mode of the first).
"""

from ganzoo.config import data_config, get_base_config
from ganzoo.methods.cyclegan import load_size, model_config, CycleGAN

VARIANTS = ("horse2zebra", "cpu", "tfds", "128", "tiny")
EPOCH = 1334   # max(|trainA| = 1,067, |trainB| = 1,334) for horse2zebra


def link_b(c):
  """data_b's fields other than its split follow data's (FieldReferences: an override of data.x moves both)."""
  for key in ("name", "source", "data_dir", "path", "image_size", "max_examples", "batch_size", "center_crop"):
    c.data_b[key] = c.data.get_ref(key)


def set_size(c, crop: int, net_g: str):
  c.model.crop_size = crop
  c.model.netG = net_g
  c.data.image_size = load_size(crop)


def set_epochs(c, epochs_constant: int, epochs_decay: int, epoch: int = EPOCH):
  """niter / niter_decay in steps at batch 1: constant lr for niter epochs, linear to 0 over niter_decay."""
  c.train.num_steps = (epochs_constant + epochs_decay) * epoch // c.data.batch_size
  for net in ("g", "d"):
    c.nets[net].optim.decay_start = epochs_constant * epoch // c.data.batch_size


def get_config(arg=None):
  c = get_base_config()
  c.method = "cyclegan"
  c.model = model_config()
  c.data.name = "folder"
  c.data.path = "data/horse2zebra"
  c.data.split = "trainA"
  c.data.batch_size = 1
  c.data_b = data_config()
  link_b(c)
  c.data_b.split = "trainB"
  set_size(c, 256, "resnet_9blocks")
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="linear"))
  set_epochs(c, 100, 100)
  c.train.log_every = 100
  c.train.sample_every = 5_000
  c.train.checkpoint_every = 5_000
  c.train.num_sample_images = 36     # 6 columns: rows A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))
  c.eval.every = 0                   # FID per direction on the test split: experiments/cyclegan_results.py
  c.eval.metrics = ""
  for variant in [v.strip() for v in (arg or "").split(",") if v.strip()]:
    if variant == "horse2zebra":
      pass
    elif variant == "cpu":
      set_size(c, 64, "resnet_6blocks")
      c.train.num_steps = EPOCH          # one epoch: constant lr for half, then linear to 0
      for net in ("g", "d"):
        c.nets[net].optim.decay_start = EPOCH // 2
      c.train.log_every = 20
      c.train.sample_every = 200
      c.train.checkpoint_every = 100
    elif variant == "128":
      set_size(c, 128, "resnet_6blocks")
    elif variant == "tfds":
      c.data.name = "cycle_gan/horse2zebra"
      c.data.source = "tfds"
    elif variant == "tiny":
      t, _ = CycleGAN.test_config()
      c.model = t.model
      c.model.b_source = "data_b"
      c.data.image_size = load_size(t.model.crop_size)
      c.data.batch_size = t.data.batch_size
      for key in ("num_steps", "log_every", "sample_every", "checkpoint_every", "num_sample_images"):
        c.train[key] = t.train[key]
      for net in ("g", "d"):
        c.nets[net].optim.decay_start = 1
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
  return c
