"""pix2pix (Isola et al. 2017, arXiv:1611.07004) on facades, labels -> photo.

  python -m ganzoo.main --config=configs/pix2pix.py --workdir=workdirs/pix2pix_facades
  python -m ganzoo.main --config=configs/pix2pix.py:cpu --workdir=workdirs/pix2pix_facades_cpu \
      --config.data.path=/path/to/facades/train
  python experiments/pix2pix_results.py --workdir=workdirs/pix2pix_facades_cpu \
      --out=experiments/results/pix2pix_facades

Data: the pix2pix release of the CMP facades (the pix2pix datasets page's facades.tar.gz: `train/`
400, `val/` 100, `test/` 106 AB images of 512x256, photo on the left = A, label map on the right = B),
read from `data.path` = `<root>/train` (default `data/facades/train`, relative to the working
directory; override with `--config.data.path=...`). The sample sheets read the sibling `val/`, the
results script `test/`. Direction BtoA: label map -> photo (the reference's `--direction BtoA`).

Variants:
  facades (default): the published setting (the reference's facades script:
    `--netG unet_256 --direction BtoA --lambda_L1 100 --norm batch`, load 286, crop 256, batch 1,
    Adam 2e-4 (0.5, 0.999), 100 epochs at constant rate + 100 epochs of linear decay to 0):
    400 images / batch 1 = 400 steps per epoch, 80,000 steps, decay from step 40,000.
  cpu: unet_128 at 128 px (load 143, crop 128: the reference's `--load_size 143 --crop_size 128`
    proportion), batch 1, half the published widths (ngf = ndf = 32: G 10.5M, D 0.70M parameters;
    `--config.model.ngf=64 --config.model.ndf=64` restores them), and the reference's schedule shape
    (half constant, half linear decay to 0) over CPU_STEPS = 2,000 steps (5 epochs of the 400
    images). Measured on this shared 2-core CPU (load ~11, the other runs and tests beside it): 0.5 to
    1.4 steps/s at widths 32 against 0.32 at 64; the recorded run (experiments/results/
    pix2pix_facades.json) took 2,476 s for its 2,000 steps (0.88 steps/s), where the published
    widths would have fit ~500 steps (1.2 epochs).
  tiny: a test-size model (ganzoo.methods.pix2pix.Pix2Pix.test_config).
  atob: direction AtoB (photo -> labels on facades).
  instance: InstanceNorm instead of BatchNorm.
  eval: inference with running statistics and no dropout (the reference's --eval) instead of the
    paper's test-time dropout and test-batch statistics.
"""

from ganzoo.config import get_base_config
from ganzoo.methods import pix2pix as pix2pix_lib

TRAIN_IMAGES = {"facades": 400}
EPOCHS = (100, 100)        # niter, niter_decay (the reference's --n_epochs 100 --n_epochs_decay 100)
CPU_STEPS = 2_000          # the cpu variant's steps (measured: see the module docstring)
VARIANTS = ("facades", "cpu", "tiny", "atob", "instance", "eval")


def set_schedule(c, num_steps: int, decay_start: int) -> None:
  """num_steps in all; the learning rate constant until decay_start, then linear to 0 (both nets)."""
  c.train.num_steps = int(num_steps)
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="linear",
                                  decay_start=int(decay_start)))


def get_config(arg=None):
  c = get_base_config()
  pix2pix_lib.set_model_defaults(c)
  c.data.name = "folder"
  c.data.source = "folder"
  c.data.path = "data/facades/train"
  c.data.batch_size = 1
  c.model.direction = "BtoA"
  steps_per_epoch = TRAIN_IMAGES["facades"] // c.data.batch_size
  set_schedule(c, sum(EPOCHS) * steps_per_epoch, EPOCHS[0] * steps_per_epoch)
  c.train.log_every = 100
  c.train.sample_every = 2_000
  c.train.checkpoint_every = 2_000
  c.train.num_sample_images = 8
  variants = [v.strip() for v in (arg or "").split(",") if v.strip()]
  for variant in variants:
    if variant == "facades":
      pass
    elif variant == "cpu":
      c.model.netG = "unet_128"
      c.model.load_size = 143
      c.model.crop_size = 128
      c.model.ngf = c.model.ndf = 32
      set_schedule(c, CPU_STEPS, CPU_STEPS // 2)
      c.train.log_every = 50
      c.train.sample_every = 500
      c.train.checkpoint_every = 250
    elif variant == "tiny":
      tiny_config, _ = pix2pix_lib.Pix2Pix.test_config()
      c.model.update(tiny_config.model.to_dict())
      c.model.direction = "BtoA"
      c.data.batch_size = tiny_config.data.batch_size
      c.train.update(tiny_config.train.to_dict())
      set_schedule(c, c.train.num_steps, 1)
    elif variant == "atob":
      c.model.direction = "AtoB"
    elif variant == "instance":
      c.model.norm = "instance"
    elif variant == "eval":
      c.model.eval_mode = "eval"
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
  return c
