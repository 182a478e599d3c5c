"""The `pix2pix` family: conditional adversarial image-to-image translation on paired images
(Isola et al. 2017, arXiv:1611.07004; reference junyanz/pytorch-CycleGAN-and-pix2pix,
models/pix2pix_model.py, data/aligned_dataset.py, data/base_dataset.py) (`config.method = 'pix2pix'`).

Data: the "AB" folder layout `<root>/{train,val,test}/*.jpg`, each file the pair side by side, A =
the left half, B = the right half (aligned_dataset.py: `A = AB.crop((0, 0, w2, h))`, `B =
AB.crop((w2, 0, w, h))`, w2 = int(w / 2)). It is read as it is stored by `data.name = 'folder'`,
`data.path = <root>/train` (FolderSource: sorted file names), and split on the devices.
`model.direction` 'AtoB' maps A to B, 'BtoA' B to A (facades: the photo is A, the label map B, so
labels -> photo is BtoA, as the reference's `--direction BtoA`).

Random jitter (paper Sec. 6.1 and App. 6.2; base_dataset.py get_params / get_transform with
`--preprocess resize_and_crop`): both halves resized to `model.load_size` squared (bicubic), one
crop of `model.crop_size` at (x, y) uniform in [0, load - crop]^2 (inclusive, `random.randint`) and
one horizontal flip with probability 1/2 (`random.random() > 0.5`), the same crop and flip on A and
B. The reference draws them on the host per example; here they are drawn on the devices from the
step's key (`jitter`), so a run is a pure function of (config, seed) and a resumed run equals an
unbroken one. The resize is `jax.image.resize(..., 'bicubic')` (Keys' cubic, a = -0.5, widened when
shrinking, as PIL's BICUBIC), clipped and rounded to the 8-bit levels that PIL returns: on facades
photos it differs from PIL's resize by 0.16 levels on average and at most 3 levels (256 -> 286, 143
and 128). The published setting resizes 256 to 286 and crops 256; the 128-pixel setting keeps the
reference's proportion, `--load_size 143 --crop_size 128` (143 = 128 * 286 / 256 rounded up).
Test time (options/test_options.py: `load_size = crop_size`, test.py: `no_flip`): each half resized
to crop_size, no crop, no flip (`load_pairs`, `fixed_inputs`).

Networks (`ganzoo.models.translation`, the reference's networks.py): G = `define_G(model.netG)`
(`unet_256`, `unet_128`; `unet_<2^k>` = UnetGenerator(num_downs=k) for small test sizes), dropout 0.5
in the inner decoder blocks; D = `define_D(model.netD)` ('basic' = the 70x70 PatchGAN, 'n_layers'
with `model.n_layers_D` (1: 16x16), 'pixel' = the 1x1 PixelGAN) on the 6-channel concat(input,
output). Norm `model.norm` 'batch' (default, pix2pix_model.py `set_defaults(norm='batch')`) or
'instance'. Weights N(0, 0.02), biases 0.

Losses (GANLoss 'vanilla' = BCEWithLogits against a map of ones / zeros the shape of D's patch
output; 'lsgan' = MSE against it, the reference's other option):
  D:  0.5 * (BCE(D(A, G(A)), 0) + BCE(D(A, B), 1))                  (backward_D, the 0.5 factor)
  G:  BCE(D(A, G(A)), 1) + lambda_L1 * mean |G(A) - B|, lambda_L1 = 100   (backward_G; torch L1Loss mean)
Update order (optimize_parameters): fake_B = G(A) is computed once; D is updated on it (detached);
then G is updated through the updated D (D frozen). Here the D phase computes G(A) in its
`prepare` (outside the gradient) and the G phase recomputes G(A) from the same inputs: both phases
use one key (`STEP_KEY`), so they see the same jittered pair and the same dropout mask, and G's
params and batch statistics are the same in both (G changes only in its own phase): the G phase's
G(A) is the D phase's fake_B, the one the reference back-propagates through. D calls: the fake
pair first, then the real pair (backward_D's order; with BatchNorm each call normalizes its own
batch). G's running statistics advance once per step (the reference's one forward); D's twice (in
the D update; the reference also advances them a third time in backward_G, where D stays in train
mode; here D's statistics are batch statistics there too, but not stored). Only G is used at test
time, so D's running statistics never reach an output.

Optimizers: Adam 2e-4, betas (0.5, 0.999), batch 1; lr constant for `niter` epochs, then linear to
0 over `niter_decay` epochs (networks.py get_scheduler 'linear'): configs/pix2pix.py sets
`nets.<g|d>.optim.decay = 'linear'` and `decay_start` = niter epochs in steps (epochs * train images
/ batch). The reference steps the rate once per epoch (a staircase); here it decays every step.

Inference (paper Sec. 3.3 and 6.1: "we apply dropout at test time, and we apply batch normalization
using the statistics of the test batch"; the reference tests in train mode with batch size 1, and
`--eval` switches to eval mode): `model.eval_mode = 'paper'` runs G in training mode per image
(batch statistics of that one image, i.e. instance-norm-like; dropout on, from `rng`) without
changing any stored statistics, so an image's translation does not depend on the batch it comes
in; 'eval' uses the running statistics and no dropout (the reference's --eval). `translate`,
`sample` and the sample sheets use this mode.

Sample sheets (`fixed_inputs` / `sample_fixed`): rows input | output | target of the first
`train.num_sample_images` validation pairs (the folder `model.val_path`, by default the sibling
`val` of data.path when that exists, else the training data), at test-time preprocessing, as one
image. `sample(state, rng, n)` returns n translations of those inputs (cycled, dropout from rng): a
pix2pix run has no unconditional samples; its metrics (L1, PSNR, SSIM, FID/KID on the test split)
come from experiments/pix2pix_results.py.
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.models import translation
from ganzoo.state import TrainState

STEP_KEY = 0            # the D and G phases share one key: the same jitter and the same G(A) (docstring)
DIRECTIONS = ("AtoB", "BtoA")
EVAL_MODES = ("paper", "eval")
GAN_MODES = ("vanilla", "lsgan")
SHEET_PAD = 2           # pixels of black between the sheet's tiles


# ---------------------------------------------------------------------------------------------
# Data: AB images, resizing, jitter.

def split_ab(images: jax.Array, direction: str = "AtoB") -> tuple[jax.Array, jax.Array]:
  """AB images [N, H, W, C] -> (input, target): A = columns [0, W // 2), B = [W // 2, W)
  (aligned_dataset.py); 'AtoB' returns (A, B), 'BtoA' (B, A)."""
  w2 = images.shape[2] // 2
  a, b = images[:, :, :w2], images[:, :, w2:]
  return (a, b) if direction == "AtoB" else (b, a)


def resize_square(x: jax.Array, size: int) -> jax.Array:
  """Images [N, h, w, C] in [-1, 1] -> [N, size, size, C]: bicubic (antialiased when shrinking, as
  PIL's BICUBIC that the reference's transforms.Resize calls), clipped to [-1, 1] and rounded to the
  8-bit levels PIL returns. Unchanged when already of that size."""
  n, h, w, c = x.shape
  if (h, w) == (size, size):
    return x
  y = jax.image.resize(x, (n, size, size, c), "bicubic", antialias=True)
  y = jnp.clip(y, -1.0, 1.0)
  return jnp.round((y + 1.0) * 127.5) / 127.5 - 1.0


def jitter_params(key: jax.Array, n: int, load_size: int, crop_size: int, flip: bool) -> dict[str, jax.Array]:
  """Per-example crop corners and flips (base_dataset.py get_params): x, y uniform integers in
  [0, load - crop] (both ends included, `random.randint`) and flip with probability 1/2."""
  k_x, k_y, k_f = jax.random.split(key, 3)
  span = load_size - crop_size
  x0 = jax.random.randint(k_x, (n,), 0, span + 1)
  y0 = jax.random.randint(k_y, (n,), 0, span + 1)
  flips = jax.random.bernoulli(k_f, 0.5, (n,)) if flip else jnp.zeros((n,), bool)
  return {"x": x0, "y": y0, "flip": flips}


def apply_jitter(images: jax.Array, params: dict[str, jax.Array], crop_size: int) -> jax.Array:
  """Crops [N, L, L, C] at the per-example corners of `params` to crop_size and flips where asked."""

  def one(img, x0, y0, f):
    out = jax.lax.dynamic_slice(img, (y0, x0, 0), (crop_size, crop_size, img.shape[-1]))
    return jnp.where(jnp.broadcast_to(f, out.shape), out[:, ::-1], out)

  return jax.vmap(one)(images, params["x"], params["y"], params["flip"])


def jitter(key: jax.Array, a: jax.Array, b: jax.Array, load_size: int, crop_size: int,
           flip: bool = True) -> tuple[jax.Array, jax.Array]:
  """The reference's random jitter of a pair: both resized to load_size, then one crop and one flip
  per example, the same for a and b (aligned_dataset.py: one get_params for A_transform and B_transform)."""
  a, b = resize_square(a, load_size), resize_square(b, load_size)
  params = jitter_params(key, a.shape[0], load_size, crop_size, flip)
  return apply_jitter(a, params, crop_size), apply_jitter(b, params, crop_size)


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 pixels -> float32 in [-1, 1], exactly as the step maps them (`step.PIXEL_TABLE`)."""
  return step_lib.PIXEL_TABLE[np.asarray(images, np.uint8)]


def load_pairs(path: str, direction: str, size: int, max_examples: int | None = None,
               data_cfg: ml_collections.ConfigDict | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, targets) float32 [N, size, size, C] in [-1, 1] of an AB folder (sorted file order)
  at test-time preprocessing: each half resized to `size`, no crop, no flip (test_options.py
  load_size = crop_size). `data_cfg` other than a folder (an .npz in tests) is read as configured."""
  from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
  if data_cfg is not None and data_cfg.name != "folder" and data_cfg.get("source", "auto") != "folder":
    raw = data_lib.load_images(data_cfg.name, split=data_cfg.split, data_dir=data_cfg.get("data_dir"),
                               path=data_cfg.get("path"), source=data_cfg.get("source", "auto"),
                               max_examples=max_examples)
  else:
    raw = data_lib.load_images("folder", path=path, source="folder", max_examples=max_examples)
  images = jnp.asarray(to_float(raw["image"]))
  a, b = split_ab(images, direction)
  resize = jax.jit(resize_square, static_argnums=1)
  return np.asarray(resize(a, size)), np.asarray(resize(b, size))


def split_path(data_path: str | None, split: str) -> str | None:
  """The sibling folder `split` of an AB training folder `<root>/train` (None when there is none)."""
  if not data_path:
    return None
  sibling = pathlib.Path(data_path).expanduser().parent / split
  return str(sibling) if sibling.is_dir() else None


# ---------------------------------------------------------------------------------------------
# Losses (networks.py GANLoss, pix2pix_model.py backward_D / backward_G).

def gan_loss(logits: jax.Array, target_is_real: bool, mode: str = "vanilla") -> jax.Array:
  """GANLoss: 'vanilla' = BCEWithLogits(logits, t) = mean softplus(-logits) for t = 1 and mean
  softplus(logits) for t = 0; 'lsgan' = mean (logits - t)^2; t a map of 1s or 0s of the logits' shape."""
  if mode == "vanilla":
    return jnp.mean(jax.nn.softplus(-logits if target_is_real else logits))
  if mode == "lsgan":
    return jnp.mean((logits - (1.0 if target_is_real else 0.0)) ** 2)
  raise ValueError(f"unknown loss.name {mode!r} for pix2pix; choose from {GAN_MODES}")


def d_loss(real_logits: jax.Array, fake_logits: jax.Array, mode: str = "vanilla") -> jax.Array:
  """0.5 * (GANLoss(D(A, G(A)), False) + GANLoss(D(A, B), True)) (backward_D's 0.5 factor)."""
  return 0.5 * (gan_loss(fake_logits, False, mode) + gan_loss(real_logits, True, mode))


def l1_loss(fake: jax.Array, target: jax.Array) -> jax.Array:
  """mean |G(A) - B| over every pixel and channel (torch.nn.L1Loss, reduction 'mean')."""
  return jnp.mean(jnp.abs(fake - target))


def g_loss(fake_logits: jax.Array, fake: jax.Array, target: jax.Array, lambda_l1: float = 100.0,
           mode: str = "vanilla") -> jax.Array:
  """GANLoss(D(A, G(A)), True) + lambda_L1 * mean |G(A) - B| (backward_G)."""
  return gan_loss(fake_logits, True, mode) + lambda_l1 * l1_loss(fake, target)


def pair_input(a: jax.Array, b: jax.Array) -> jax.Array:
  """D's input: the channel concat (input, output) (torch.cat((real_A, fake_B), 1))."""
  return jnp.concatenate([a, b], axis=-1)


# ---------------------------------------------------------------------------------------------
# Networks.

def build_generator(m: ml_collections.ConfigDict, channels: int):
  """`define_G(model.netG)`; `unet_<2^k>` other than 256 / 128 is UnetGenerator(num_downs=k)."""
  name = str(m.netG)
  kw = dict(output_nc=channels, ngf=int(m.ngf), norm=str(m.norm), use_dropout=bool(m.use_dropout))
  if name in ("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"):
    return translation.define_G(name, **kw)
  if name.startswith("unet_") and name[5:].isdigit():
    size = int(name[5:])
    k = int(round(math.log2(size))) if size > 0 else 0
    if 2 ** k != size or k < 5:
      raise ValueError(f"model.netG={name!r}: a U-Net needs a power-of-two size >= 32 (unet_32 ... unet_256)")
    return translation.UnetGenerator(num_downs=k, **kw)
  raise ValueError(f"unknown model.netG {name!r}; use unet_256, unet_128 (or unet_<2^k>), resnet_9blocks, resnet_6blocks")


def unet_downs(name: str) -> int:
  """Downsamplings of a U-Net name (0 for other generators)."""
  if name.startswith("unet_") and name[5:].isdigit():
    return int(round(math.log2(int(name[5:]))))
  return 0


# ---------------------------------------------------------------------------------------------
# The family.

@methods.register("pix2pix")
class Pix2Pix(methods.Method):
  """U-Net G, PatchGAN D on (input, output), cGAN + L1 (module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    augment.refuse_instance_noise(config, 'pix2pix')
    m = config.model
    shape = tuple(data.image_shape)
    if len(shape) != 3 or shape[1] < 2:
      raise ValueError(f"pix2pix reads AB images (the pair side by side); the data have shape {shape}: "
                       "set data.name='folder' and data.path to an AB folder such as facades/train")
    self.ab_shape = shape
    self.channels = int(shape[2])
    self.direction = str(m.direction)
    if self.direction not in DIRECTIONS:
      raise ValueError(f"config.model.direction={self.direction!r}; choose from {DIRECTIONS}")
    self.eval_mode = str(m.eval_mode)
    if self.eval_mode not in EVAL_MODES:
      raise ValueError(f"config.model.eval_mode={self.eval_mode!r}; choose 'paper' (dropout and test-batch "
                       "statistics) or 'eval' (running statistics, no dropout)")
    self.gan_mode = str(config.loss.name)
    if self.gan_mode not in GAN_MODES:
      raise ValueError(f"config.loss.name={self.gan_mode!r} for pix2pix; choose from {GAN_MODES}")
    self.load_size, self.crop_size = int(m.load_size), int(m.crop_size)
    if not 1 <= self.crop_size <= self.load_size:
      raise ValueError(f"config.model.crop_size={self.crop_size} must lie in [1, model.load_size={self.load_size}] "
                       "(the reference asserts load_size >= crop_size)")
    downs = unet_downs(str(m.netG))
    if downs and self.crop_size % (2 ** downs):
      raise ValueError(f"model.netG={m.netG!r} halves the image {downs} times; model.crop_size={self.crop_size} "
                       f"must be a multiple of {2 ** downs} (unet_256: 256, unet_128: 128)")
    self.flip = bool(m.flip)
    self.lambda_l1 = float(m.lambda_L1)
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'pix2pix' family trains networks 'g' and 'd'")
    self.generator = build_generator(m, self.channels)
    self.discriminator = translation.define_D(str(m.netD), ndf=int(m.ndf), n_layers=int(m.n_layers_D), norm=str(m.norm))
    n = int(config.train.num_steps)
    self.nets = {"g": nets_lib.build_spec(self.generator, config.nets.g, n),
                 "d": nets_lib.build_spec(self.discriminator, config.nets.d, n)}
    self.phases = (step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream="real", key=STEP_KEY),
                   step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, stream="real", key=STEP_KEY))
    self._sheet_pairs = None

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """The translated images' shape: crop_size squared."""
    return (self.crop_size, self.crop_size, self.channels)

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_drop, rng_sn = jax.random.split(rng, 5)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    g_vars = self.generator.init({"params": rng_g, "dropout": rng_drop}, x, train=False)
    d_vars = self.discriminator.init({"params": rng_d}, pair_input(x, x), train=False)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_sn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_sn)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  # -- phases ----------------------------------------------------------------------------------
  def training_pair(self, images: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(real_A, real_B) of a batch of AB images in [-1, 1]: split by direction, then jittered."""
    a, b = split_ab(images, self.direction)
    return jitter(key, a, b, self.load_size, self.crop_size, self.flip)

  def _pair_and_keys(self, ctx, data, key):
    k_jitter, k_drop = jax.random.split(key)
    a, b = self.training_pair(data["image"], k_jitter)
    return ctx.shard(a), ctx.shard(b), k_drop

  def _d_prepare(self, ctx: step_lib.Context, data, key):
    a, b, k_drop = self._pair_and_keys(ctx, data, key)
    fake = jax.lax.stop_gradient(ctx.apply("g", a, train=True, rng=k_drop))   # fake_B.detach()
    return {"real_a": a, "real_b": b, "fake_b": fake}, {}

  def _d_loss(self, ctx, inp):
    a = inp["real_a"]
    fake_logits = ctx.apply("d", pair_input(a, inp["fake_b"]))   # backward_D: the fake pair first
    real_logits = ctx.apply("d", pair_input(a, inp["real_b"]))
    loss = d_loss(real_logits, fake_logits, self.gan_mode)
    return loss, {"d_loss": loss, "d_real": gan_loss(real_logits, True, self.gan_mode),
                  "d_fake": gan_loss(fake_logits, False, self.gan_mode),
                  "d_real_logit": real_logits.mean(), "d_fake_logit": fake_logits.mean()}

  def _g_prepare(self, ctx, data, key):
    a, b, k_drop = self._pair_and_keys(ctx, data, key)
    return {"real_a": a, "real_b": b}, {"drop": k_drop}

  def _g_loss(self, ctx, inp):
    a, b = inp["real_a"], inp["real_b"]
    fake = ctx.apply("g", a, rng=inp["drop"])              # = the D phase's fake_B (same inputs, params, key)
    logits = ctx.apply("d", pair_input(a, fake), train=True)   # D in train mode (batch statistics), frozen
    gan = gan_loss(logits, True, self.gan_mode)
    l1 = l1_loss(fake, b)
    loss = gan + self.lambda_l1 * l1
    return loss, {"g_loss": loss, "g_gan": gan, "g_l1": l1}

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, x: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """G(x) in the inference mode `model.eval_mode` (module docstring); rng=None is a fixed key."""
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"])
    if self.eval_mode == "eval":
      return nets_lib.forward(spec, params, batch_stats, x, train=False)[0]
    rng = jax.random.PRNGKey(0) if rng is None else rng
    # Image i's dropout key is fold_in(rng, i): the first k images of a batch translate as they do alone.
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(x.shape[0]))

    def one(xi, key):   # train mode on a batch of one image; the returned statistics are dropped
      return nets_lib.forward(spec, params, batch_stats, xi[None], train=True, rng=key)[0][0]

    return jax.vmap(one)(x, keys)

  def translation_spec(self) -> methods.TranslationSpec:
    return methods.TranslationSpec(image_shape=self.image_shape, targets=(), default_target=None)

  def translate(self, state, x, target=None, rng=None):
    if target is not None:
      raise ValueError(f"pix2pix has one mapping ({self.direction}); drop --target (got {target!r})")
    return self.generate(state, x, rng)

  def sheet_pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of the first n validation pairs at test-time preprocessing (cached)."""
    if self._sheet_pairs is None or len(self._sheet_pairs[0]) < n:
      d = self.config.data
      is_folder = d.name == "folder" or d.get("source", "auto") == "folder"
      path = self.config.model.get("val_path", None) or (split_path(d.path, "val") if is_folder else None)
      self._sheet_pairs = load_pairs(path or d.path, self.direction, self.crop_size, n,
                                     data_cfg=None if is_folder else d)
    return self._sheet_pairs[0][:n], self._sheet_pairs[1][:n]

  def fixed_inputs(self, seed: int, n: int):
    """The sheet's validation pairs (inputs, targets) and the key of its dropout masks."""
    a, b = self.sheet_pairs(n)
    return jnp.asarray(a), jnp.asarray(b), jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3)

  def sample_fixed(self, state, inputs, n):
    """One image: rows input | output | target of the fixed validation pairs (SHEET_PAD black pixels apart)."""
    a, b, key = inputs
    return triplet_sheet(a, self.generate(state, a, key), b)[None]

  def sample(self, state, rng, n, condition=None):
    """n translations of the sheet's fixed validation inputs (cycled), dropout from rng."""
    a, _ = self.sheet_pairs(int(self.config.train.num_sample_images))
    x = jnp.asarray(a)[jnp.arange(n) % a.shape[0]]
    return self.generate(state, x, rng)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    set_model_defaults(c)
    # The smallest U-Net (5 downsamplings, hence no dropout block: tests/test_pix2pix.py tests dropout
    # on unet_64) and the 16x16 PatchGAN: this config's step compiles in a third of unet_64's time.
    c.model.netG = "unet_32"
    c.model.netD = "n_layers"
    c.model.n_layers_D = 1
    c.model.ngf = 4
    c.model.ndf = 4
    c.model.load_size = 36        # 32 * 286 / 256 rounded up: the resize, crop and flip all run
    c.model.crop_size = 32
    c.data.batch_size = 8
    for net in ("g", "d"):        # a schedule over num_steps: a resume must not re-slope it
      c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, decay="linear", decay_start=1))
    return c, methods.DataSpec((32, 64, 3), 0)


def set_model_defaults(c: ml_collections.ConfigDict) -> None:
  """The pix2pix fields of `config.model` and `config.loss` at the reference's defaults
  (pix2pix_model.py modify_commandline_options, options/base_options.py, train_options.py)."""
  c.method = "pix2pix"
  c.model.name = "pix2pix"
  c.model.direction = "AtoB"
  c.model.netG = "unet_256"
  c.model.netD = "basic"
  c.model.n_layers_D = 3
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.norm = "batch"
  c.model.use_dropout = True
  c.model.load_size = 286
  c.model.crop_size = 256
  c.model.flip = True
  c.model.lambda_L1 = 100.0
  c.model.eval_mode = "paper"
  c.model.val_path = ml_collections.FieldReference(None, field_type=str)
  c.loss.name = "vanilla"
  c.eval.metrics = ""            # no unconditional FID during training: experiments/pix2pix_results.py


def triplet_sheet(inputs: jax.Array, outputs: jax.Array, targets: jax.Array, pad: int = SHEET_PAD) -> jax.Array:
  """[N, h, w, C] x 3 -> one image [N (h + p) - p, 3 (w + p) - p, C]: row i = input_i | output_i | target_i."""
  tiles = jnp.stack([inputs, outputs, targets], axis=1)                     # [N, 3, h, w, C]
  tiles = jnp.pad(tiles, ((0, 0), (0, 0), (0, pad), (0, pad), (0, 0)), constant_values=-1.0)
  n, _, h, w, c = tiles.shape
  sheet = jnp.transpose(tiles, (0, 2, 1, 3, 4)).reshape(n * h, 3 * w, c)
  return sheet[:n * h - pad, :3 * w - pad]
