"""The config schema: defaults shared by every config in configs/, which start from `get_base_config()`.

Every field a run can read exists here, so `--config.a.b=v` of an unknown key is an error.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"     # tfds name, 'npz', 'folder', 'ring8', 'grid25'
  c.data.split = "train"
  c.data.source = "auto"            # auto | idx | tfds | npz | folder | synthetic
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.path = ml_collections.FieldReference(None, field_type=str)
  c.data.image_size = ml_collections.FieldReference(None, field_type=int)  # resize to this (square)
  c.data.center_crop = ml_collections.FieldReference(None, field_type=int)  # celeb_a: 108 by default
  c.data.max_examples = ml_collections.FieldReference(None, field_type=int)  # keep the first N
  c.data.num_classes = ml_collections.FieldReference(None, field_type=int)   # override
  c.data.batch_size = 64            # global, over all devices and processes
  c.data.prefetch = 2

  c.model = ml_collections.ConfigDict()
  c.model.name = "dcgan"
  c.model.size = "paper"
  c.model.z_dim = 128
  c.model.conditional = False

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "non_saturating"    # see ganzoo.objectives.names()

  c.penalty = ml_collections.ConfigDict()
  c.penalty.name = "none"           # none | gradient_penalty | r1 | r2 | dragan
  c.penalty.weight = 0.0            # lambda (GP: 10); for R1/R2 use gamma/2

  c.sn = ml_collections.ConfigDict()
  c.sn.d = False                    # spectral normalization of D's kernels
  c.sn.g = False                    # ... and of G's (SAGAN, BigGAN)
  c.sn.n_power_iterations = 1
  c.sn.include = ml_collections.FieldReference(None, field_type=str)  # regex on param paths
  # G's class embeddings (BigGAN's shared embedding, conditional-BN tables) are not normalized, as
  # in BigGAN-PyTorch; D's projection embedding is (Miyato & Koyama 2018).
  c.sn.g_exclude = "embedding"
  c.sn.d_exclude = ml_collections.FieldReference(None, field_type=str)

  c.optim = ml_collections.ConfigDict()
  c.optim.g = ml_collections.ConfigDict(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  c.optim.d = ml_collections.ConfigDict(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 10_000        # generator updates
  c.train.d_steps = 1               # D updates per step (n_critic)
  c.train.g_steps = 1
  c.train.grad_accum = 1            # micro-batches per update
  c.train.clip_value = 0.0          # WGAN weight clipping (0 = off)
  c.train.ema_decay = 0.0           # EMA of G's params (0 = off)
  c.train.ema_start = 0
  c.train.g_ortho = 0.0             # orthogonal regularization weight (BigGAN: 1e-4)
  c.train.d_ortho = 0.0
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  c.train.keep_checkpoints = 3
  c.train.num_sample_images = 64   # fixed latent batch for the PNG grids

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 0                  # 0 = no in-training evaluation
  c.eval.num_samples = 10_000
  c.eval.metrics = "fid,kid"
  c.eval.real_split = "test"
  c.eval.batch_size = 100
  c.eval.inception_weights = ml_collections.FieldReference(None, field_type=str)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.distributed = False    # call jax.distributed.initialize()
  c.parallel.coordinator_address = ml_collections.FieldReference(None, field_type=str)
  c.parallel.num_processes = ml_collections.FieldReference(None, field_type=int)
  c.parallel.process_id = ml_collections.FieldReference(None, field_type=int)
  return c


DATASETS = {
    # name: (image_size for the paper-size models, channels)
    "mnist": 28, "fashion_mnist": 28, "cifar10": 32, "celeb_a": 64,
}


def set_data(c: ml_collections.ConfigDict, name: str) -> None:
  """Points a config at a data set by its standard name."""
  c.data.name = name


def tiny(c: ml_collections.ConfigDict) -> None:
  """Test size: a tiny model, a small batch, a couple of steps."""
  c.model.size = "tiny"
  c.data.batch_size = 8
  c.train.num_steps = 2
  c.train.log_every = 1
  c.train.sample_every = 2
  c.train.checkpoint_every = 2
  c.train.num_sample_images = 4
  c.eval.num_samples = 16


def apply_variants(c: ml_collections.ConfigDict, arg: str | None, datasets: tuple[str, ...]) -> ml_collections.ConfigDict:
  """Applies a `--config=f.py:variant[,variant...]` argument: data set names and 'tiny'."""
  for variant in (arg or "").split(","):
    variant = variant.strip()
    if not variant:
      continue
    if variant == "tiny":
      tiny(c)
    elif variant in datasets:
      set_data(c, variant)
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted({'tiny', *datasets})}")
  return c
