"""CoGAN (Liu & Tuzel 2016, arXiv:1606.07536): the digit <-> edge task.

  python -m ganzoo.main --config=configs/cogan.py --workdir=workdirs/cogan_fm
  python -m ganzoo.main --config=configs/cogan.py:mnist --workdir=workdirs/cogan_mnist
  python -m ganzoo.main --config=configs/cogan.py:cpu --workdir=workdirs/cogan_fm_cpu

Settings of the authors' Caffe experiment (mingyuliutw/CoGAN cogan/scripts/run_mnist.edge.cogan.sh,
cogan/models/mnist.edge.cogan/*.ptt): the networks of the paper's Table 1 (`ganzoo.models.cogan`),
z ~ U(-1, 1)^100, batch 128 per domain, Adam(2e-4, 0.5, 0.999), weight decay 5e-4 on weights,
50,000 alternating D/G iterations = 25,000 steps of one D and one G update. The reference shuffles
the training set and splits it in two halves: domain 1 the images of one half, domain 2 the
edge images (3x3 dilation minus the image) of the other. Here the halves are the IDX file's first
and second 30,000 images (`data.split = 'train[:50%]'`, `data_b.split = 'train[50%:]'`), read in
shuffled order by each stream; the edge transform is applied in the step (`model.b_transform`).

Variants: fashion_mnist (default; the digits' stand-in here), mnist, tiny, and
  cpu: G's widths / 8 (128, 64, 32, 16; D as published), batch 32 per domain, 5,000 steps: the
  run that fits this shared 2-core CPU in ~45 min (experiments/results/cogan_fashion_mnist.json:
  2,000 steps, then resumed to 5,000 with --config.train.num_steps=5000, which is exact here).
"""

from ganzoo.config import data_config, get_base_config, tiny

DATASETS = ("fashion_mnist", "mnist")


def get_config(arg=None):
  c = get_base_config()
  c.method = "cogan"
  c.data.name = "fashion_mnist"
  c.data.split = "train[:50%]"
  c.data.batch_size = 128
  c.data_b = data_config()
  c.data_b.name = "fashion_mnist"
  c.data_b.split = "train[50%:]"
  c.model.name = "cogan"
  c.model.size = "paper"
  c.model.z_dim = 100
  c.model.d_dropout = 0.5
  c.model.weight_decay = 5e-4
  c.model.b_source = "data_b"
  c.model.b_transform = "edge"
  c.loss.name = "non_saturating"
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.train.num_steps = 25_000
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  for variant in [v.strip() for v in (arg or "").split(",") if v.strip()]:
    if variant in DATASETS:
      c.data.name = c.data_b.name = variant
    elif variant == "tiny":
      tiny(c)
    elif variant == "cpu":
      c.model.size = "cpu"
      c.data.batch_size = 32
      c.train.num_steps = 5_000
      c.train.log_every = 50
      c.train.sample_every = 250
      c.train.checkpoint_every = 250
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted({'tiny', 'cpu', *DATASETS})}")
  c.data_b.batch_size = c.data.batch_size   # both streams read data.batch_size images per step
  return c
