"""The `cyclegan` family: unpaired image-to-image translation (Zhu et al. 2017, arXiv:1703.10593).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/cycle_gan_model.py (losses, update order),
util/image_pool.py (the pool), data/unaligned_dataset.py + data/base_dataset.py (data, jitter),
options/{base,train}_options.py (defaults). Names follow the code, not the paper: G_A: A -> B (the
paper's G), G_B: B -> A (F), D_A judges domain B (D_Y), D_B judges domain A (D_X).

Networks (`ganzoo.models.translation`): G_A, G_B = define_G(model.netG) ('resnet_9blocks' at 256 px,
'resnet_6blocks' at 128 and below; reflection padding, InstanceNorm, no dropout), D_A, D_B =
define_D(model.netD = 'basic', the 70x70 PatchGAN, InstanceNorm); N(0, 0.02) weights, zero biases.
Optimizers: config.nets.g is the reference's optimizer_G (Adam over G_A and G_B), config.nets.d its
optimizer_D; Adam is elementwise, so one Adam per network, built from the shared section, is the
same update. Adam 2e-4 (0.5, 0.999); lr constant for niter epochs, then linear to 0 over
niter_decay epochs (configs/cyclegan.py turns epochs into steps).

Data: stream 'a' reads `config.data` (split 'trainA'), stream 'b' the section `model.b_source`
(default `data_b`, split 'trainB'); the two streams are independent orders, which makes the pairs
unaligned as the reference's random B index does (unaligned_dataset.py). Images arrive at
`data.image_size` = load_size (286 for 256 px) and are jittered on the devices from the phase key,
per image: a random crop_size square (`model.crop_size`) and a random horizontal flip (base_dataset's
'resize_and_crop' + flip). The test-time images (sheets, `sample`, experiments/cyclegan_results.py)
are the test splits resized to crop_size, no crop and no flip (test_options.py sets load_size =
crop_size).

Losses (LSGAN, `model.gan_mode = 'lsgan'`: MSE to target maps of 1 and 0, networks.GANLoss):
  L_G = GAN(D_A(G_A(A)), 1) + GAN(D_B(G_B(B)), 1)
        + lambda_A |G_B(G_A(A)) - A|_1 + lambda_B |G_A(G_B(B)) - B|_1
        + lambda_idt (lambda_B |G_A(B) - B|_1 + lambda_A |G_B(A) - A|_1)
  L_D_A = 0.5 (GAN(D_A(B), 1) + GAN(D_A(pool_B(G_A(A))), 0)),
  L_D_B = 0.5 (GAN(D_B(A), 1) + GAN(D_B(pool_A(G_B(B))), 0)),
|.|_1 the mean absolute error (torch L1Loss), lambda_A = lambda_B = 10, lambda_idt = 0.5.

Update order (optimize_parameters): forward with G_t, a G step on L_G with D_t frozen, then a D step
on L_D with D_t and the pooled fakes of that forward (made by G_t, not by the updated G). Both steps
therefore take their gradients at (G_t, D_t), and here they are one phase 'cycle' that trains all
four networks on L_G + L_D: L_G sees D's params through stop_gradient, L_D sees fakes made outside
the gradient, so G gets exactly dL_G/dG and D exactly dL_D/dD, and each network's Adam steps once.
The phase's `prepare` (outside the gradient) jitters both streams, makes G_t's fakes and queries the
pools with them (`Phase.prepare_extras`: the pools live in `state.extras`); the loss recomputes
G_t's fakes differentiably (the same values up to rounding: the same params and inputs).

The pool (`pool_query`, util/image_pool.py): 50 images per domain plus a fill count, in the
checkpointed state, so a resumed run equals an unbroken one; its coin flips and indices come from
the phase key. A batch queries it per image, in batch order, as the reference loops: a later
image of the batch can draw an image stored by an earlier one. With data parallelism the pool is
global (replicated): the query runs over the global batch, so 8 devices give the 1-device pool.

Not reproduced: the reference's learning rate moves once per epoch (LambdaLR factor
1 - max(0, epoch - niter) / (niter_decay + 1)); here it moves every step on the same line (to 0 at
the last step). The reference's epoch visits the A images by a shuffled index modulo |A| and B
uniformly with replacement; here each stream visits its images once per its own epoch.
"""

import math

from absl import logging
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

CYCLE_KEY = 0
GAN_MODES = ("lsgan", "vanilla")
POOL_NAMES = ("pool_fake_a", "pool_fake_b")   # fake_A_pool (G_B's outputs, for D_B), fake_B_pool (G_A's, for D_A)
NET_NAMES = ("g_a", "g_b", "d_a", "d_b")


# ---------------------------------------------------------------------------------------------
# Pure pieces, tested on numbers (tests/test_cyclegan.py).

def gan_loss(pred: jax.Array, target_is_real: bool, mode: str = "lsgan") -> jax.Array:
  """networks.GANLoss: 'lsgan' mean((pred - t)^2), 'vanilla' BCE-with-logits, t = 1 (real) or 0 (fake)."""
  t = 1.0 if target_is_real else 0.0
  if mode == "lsgan":
    return jnp.mean((pred - t) ** 2)
  if mode == "vanilla":
    return jnp.mean(jax.nn.softplus(-pred) if target_is_real else jax.nn.softplus(pred))
  raise ValueError(f"model.gan_mode={mode!r}; choose from {GAN_MODES}")


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """torch.nn.L1Loss(): the mean absolute difference."""
  return jnp.mean(jnp.abs(x - y))


def generator_terms(real_a, real_b, rec_a, rec_b, idt_a, idt_b, d_a_fake_b, d_b_fake_a, lambda_a: float = 10.0,
                    lambda_b: float = 10.0, lambda_idt: float = 0.5, mode: str = "lsgan") -> dict[str, jax.Array]:
  """The terms of backward_G, named as the reference's loss_names: idt_A = G_A(B) (so it is compared
  with B, weighted lambda_B * lambda_idt), idt_B = G_B(A); rec_A = G_B(G_A(A)), rec_B = G_A(G_B(B));
  d_a_fake_b = D_A(G_A(A)), d_b_fake_a = D_B(G_B(B)). idt_a/idt_b None when lambda_idt is 0."""
  terms = {"g_a": gan_loss(d_a_fake_b, True, mode), "g_b": gan_loss(d_b_fake_a, True, mode),
           "cycle_a": lambda_a * l1(rec_a, real_a), "cycle_b": lambda_b * l1(rec_b, real_b)}
  if lambda_idt > 0:
    terms["idt_a"] = lambda_b * lambda_idt * l1(idt_a, real_b)
    terms["idt_b"] = lambda_a * lambda_idt * l1(idt_b, real_a)
  return terms


def discriminator_loss(pred_real: jax.Array, pred_fake: jax.Array, mode: str = "lsgan") -> jax.Array:
  """backward_D_basic: 0.5 (GAN(D(real), 1) + GAN(D(fake), 0)), the fake from the pool."""
  return 0.5 * (gan_loss(pred_real, True, mode) + gan_loss(pred_fake, False, mode))


def pool_init(pool_size: int, image_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
  """An empty pool: (images float32 [pool_size, *image_shape], fill count int32 scalar)."""
  return jnp.zeros((pool_size, *image_shape), jnp.float32), jnp.zeros((), jnp.int32)


def pool_query(images: jax.Array, count: jax.Array, new: jax.Array, key: jax.Array
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """util/image_pool.py's ImagePool.query, image by image in batch order, on the devices.

  For each image x of `new` [B, ...] in order: while the pool holds fewer than P = images.shape[0]
  images, x is stored (slot `count`) and returned; once full, with probability 1/2 a stored image at
  a uniform index is returned and x is stored in its place, else x is returned. Per image one key
  (from `key`): a uniform coin (`> 0.5` returns a stored image, the reference's `p > 0.5`) and a
  uniform index in [0, P). P = 0 returns `new` (the reference's pool_size 0).
  Returns (returned images [B, ...], new pool images, new count).
  """
  size = images.shape[0]
  if size == 0:
    return new, images, count

  def one(carry, xs):
    pool, n = carry
    x, k = xs
    k_coin, k_index = jax.random.split(k)
    full = n >= size
    swap = full & (jax.random.uniform(k_coin, ()) > 0.5)
    slot = jnp.where(full, jax.random.randint(k_index, (), 0, size), n)
    stored = pool[slot]
    out = jnp.where(swap, stored, x)
    pool = pool.at[slot].set(jnp.where(full & ~swap, stored, x))
    return (pool, jnp.minimum(n + 1, size)), out

  keys = jax.random.split(key, new.shape[0])
  (images, count), out = jax.lax.scan(one, (images, count.astype(jnp.int32)), (new.astype(images.dtype), keys))
  return out.astype(new.dtype), images, count


def jitter(x: jax.Array, key: jax.Array, crop_size: int, flip: bool = True) -> jax.Array:
  """base_dataset.get_transform's random crop of crop_size and random horizontal flip, per image
  (x [B, L, L, C] at load_size L); offsets uniform in [0, L - crop_size] as torchvision's RandomCrop."""
  b, h, w = x.shape[:3]
  if h < crop_size or w < crop_size:
    raise ValueError(f"images of {h}x{w} are smaller than model.crop_size={crop_size}: set data.image_size "
                     f"(the load size) >= crop_size")
  k_y, k_x, k_f = jax.random.split(key, 3)
  oy = jax.random.randint(k_y, (b,), 0, h - crop_size + 1)
  ox = jax.random.randint(k_x, (b,), 0, w - crop_size + 1)
  crop = jax.vmap(lambda im, i, j: jax.lax.dynamic_slice(im, (i, j, 0), (crop_size, crop_size, im.shape[-1])))
  out = crop(x, oy, ox)
  if flip:
    flips = jax.random.bernoulli(k_f, 0.5, (b,))
    out = jnp.where(flips[:, None, None, None], out[:, :, ::-1], out)
  return out


def load_size(crop_size: int) -> int:
  """The reference's load size 286 for crop 256, in the same proportion for other sizes
  (round(crop * 286 / 256): 64 -> 72, 128 -> 143, 256 -> 286)."""
  return int(round(crop_size * 286 / 256))


def sheet_layout(real_a, fake_b, rec_a, real_b, fake_a, rec_b, n: int) -> jax.Array:
  """n images for a grid of w = ceil(sqrt(n)) columns in blocks of six rows: A, G_A(A), G_B(G_A(A)),
  B, G_B(B), G_A(G_B(B)); block g shows test images g * w .. g * w + w - 1 (modulo their number)."""
  w = int(math.ceil(math.sqrt(n)))
  rows = jnp.stack([real_a, fake_b, rec_a, real_b, fake_a, rec_b])
  m = real_a.shape[0]
  kind = [((i // w) % 6) for i in range(n)]
  index = [(((i // w) // 6) * w + i % w) % m for i in range(n)]
  return rows[jnp.asarray(kind), jnp.asarray(index)]


# ---------------------------------------------------------------------------------------------

def build_generator(m: ml_collections.ConfigDict):
  """define_G(model.netG) (model.n_blocks, when set, overrides a ResNet generator's block count)."""
  use_dropout = not bool(m.get("no_dropout", True))
  n_blocks = m.get("n_blocks", None)
  if n_blocks is not None and str(m.netG).startswith("resnet"):
    return translation.ResnetGenerator(output_nc=3, ngf=int(m.ngf), n_blocks=int(n_blocks), norm=str(m.norm),
                                       use_dropout=use_dropout)
  return translation.define_G(str(m.netG), output_nc=3, ngf=int(m.ngf), norm=str(m.norm), use_dropout=use_dropout)


def build_discriminator(m: ml_collections.ConfigDict):
  return translation.define_D(str(m.netD), ndf=int(m.ndf), n_layers=int(m.n_layers_D), norm=str(m.norm))


@methods.register("cyclegan")
class CycleGAN(methods.Method):
  """CycleGAN: G_A, G_B, D_A, D_B on two unpaired streams 'a' and 'b', pools in state.extras."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    augment.refuse_instance_noise(config, 'cyclegan')
    m = config.model
    self.crop_size = int(m.crop_size)
    self.load_shape = tuple(data.image_shape)
    if len(self.load_shape) != 3 or self.load_shape[-1] != 3:
      raise ValueError(f"cyclegan translates RGB images; the data are {self.load_shape}: convert the images to "
                       "RGB (a folder whose first file is greyscale loads as one channel)")
    self.image_shape = (self.crop_size, self.crop_size, 3)
    self.flip = not bool(m.get("no_flip", False))
    self.gan_mode = str(m.get("gan_mode", "lsgan"))
    if self.gan_mode not in GAN_MODES:
      raise ValueError(f"config.model.gan_mode={self.gan_mode!r}; choose from {GAN_MODES}")
    self.lambda_a, self.lambda_b = float(m.lambda_A), float(m.lambda_B)
    self.lambda_idt = float(m.lambda_identity)
    self.pool_size = int(m.pool_size)
    self.b_source = str(m.get("b_source", "data_b"))
    if self.b_source != "data" and self.b_source not in config:
      raise ValueError(f"config.model.b_source={self.b_source!r} names no config section: add config.{self.b_source} "
                       "(a data section, see configs/cyclegan.py) or set config.model.b_source='data'")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'cyclegan' family's sections are 'g' (G_A and G_B, "
                       "the reference's optimizer_G) and 'd' (D_A and D_B)")
    n = int(config.train.num_steps)
    self.nets = {name: nets_lib.build_spec(build_generator(m) if name[0] == "g" else build_discriminator(m),
                                           config.nets[name[0]], n) for name in NET_NAMES}
    self.phases = (step_lib.Phase("cycle", NET_NAMES, self._loss, self._prepare, stream=("a", "b"), key=CYCLE_KEY,
                                  prepare_once=True, prepare_extras=True),)
    self._test_images = None

  def streams(self, plan):
    counts = step_lib.stream_counts(plan)
    sources = {"a": "data", "b": self.b_source}
    return {s: methods.StreamSpec(self.batch_size, c, sources[s]) for s, c in counts.items()}

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_sn, *rng_nets = jax.random.split(rng, 2 + len(NET_NAMES))
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    nets = {name: nets_lib.init_net(self.nets[name], self.nets[name].module.init(r, x, train=False), rng_sn)
            for name, r in zip(NET_NAMES, rng_nets)}
    extras = {}
    for name in POOL_NAMES:
      extras[name], extras[name + "_count"] = pool_init(self.pool_size, self.image_shape)
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras=extras)

  # -- the phase -------------------------------------------------------------------------------
  def _prepare(self, ctx: step_lib.Context, data, key):
    k_a, k_b, k_pool_a, k_pool_b, k_drop = jax.random.split(key, 5)
    real_a = ctx.shard(jitter(data["a"]["image"], k_a, self.crop_size, self.flip))
    real_b = ctx.shard(jitter(data["b"]["image"], k_b, self.crop_size, self.flip))
    k_ga, k_gb = jax.random.split(k_drop)
    fake_b = jax.lax.stop_gradient(ctx.apply("g_a", real_a, train=True, rng=k_ga))   # G_t's fakes
    fake_a = jax.lax.stop_gradient(ctx.apply("g_b", real_b, train=True, rng=k_gb))
    extras = dict(ctx.extras)
    pooled = {}
    for name, fake, k in (("pool_fake_a", fake_a, k_pool_a), ("pool_fake_b", fake_b, k_pool_b)):
      pooled[name], extras[name], extras[name + "_count"] = pool_query(extras[name], extras[name + "_count"], fake, k)
    inputs = {"real_a": real_a, "real_b": real_b, "pooled_fake_a": pooled["pool_fake_a"],
              "pooled_fake_b": pooled["pool_fake_b"]}
    return inputs, {"drop_g_a": k_ga, "drop_g_b": k_gb}, extras

  def _frozen(self, ctx, name, x):
    """D's output with its params behind stop_gradient: the G loss's 'Ds frozen' (set_requires_grad False)."""
    params = jax.lax.stop_gradient(ctx.params(name))
    return nets_lib.forward(ctx.specs[name], params, ctx.batch_stats[name], x, train=True)[0]

  def _loss(self, ctx, inp):
    real_a, real_b = inp["real_a"], inp["real_b"]
    fake_b = ctx.apply("g_a", real_a, rng=inp["drop_g_a"])       # the prepare's fakes, differentiably
    fake_a = ctx.apply("g_b", real_b, rng=inp["drop_g_b"])
    k_a, k_b = jax.random.split(inp["drop_g_a"])   # further G calls: their own dropout masks
    rec_a = ctx.apply("g_b", fake_b, rng=k_b)
    rec_b = ctx.apply("g_a", fake_a, rng=k_a)
    idt_a = idt_b = None
    if self.lambda_idt > 0:
      idt_a = ctx.apply("g_a", real_b, rng=jax.random.fold_in(k_a, 1))
      idt_b = ctx.apply("g_b", real_a, rng=jax.random.fold_in(k_b, 1))
    terms = generator_terms(real_a, real_b, rec_a, rec_b, idt_a, idt_b, self._frozen(ctx, "d_a", fake_b),
                            self._frozen(ctx, "d_b", fake_a), self.lambda_a, self.lambda_b, self.lambda_idt,
                            self.gan_mode)
    loss_g = sum(terms.values())
    pred_real_b, pred_pool_b = ctx.apply("d_a", real_b), ctx.apply("d_a", inp["pooled_fake_b"])
    pred_real_a, pred_pool_a = ctx.apply("d_b", real_a), ctx.apply("d_b", inp["pooled_fake_a"])
    loss_d_a = discriminator_loss(pred_real_b, pred_pool_b, self.gan_mode)
    loss_d_b = discriminator_loss(pred_real_a, pred_pool_a, self.gan_mode)
    metrics = {f"{k}_loss": v for k, v in terms.items()}
    metrics.update(g_loss=loss_g, d_a_loss=loss_d_a, d_b_loss=loss_d_b, d_loss=loss_d_a + loss_d_b,
                   d_a_real=pred_real_b.mean(), d_a_fake=pred_pool_b.mean(),
                   d_b_real=pred_real_a.mean(), d_b_fake=pred_pool_a.mean())
    return loss_g + loss_d_a + loss_d_b, metrics

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, name: str, x: jax.Array) -> jax.Array:
    """G_A ('g_a') or G_B ('g_b') on x in inference mode."""
    spec = self.nets[name]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets[name])
    return nets_lib.forward(spec, params, batch_stats, x, train=False)[0]

  def translation_spec(self):
    return methods.TranslationSpec(self.image_shape, ("A", "B"), "B")

  def translate(self, state, x, target=None, rng=None):
    """target 'B' (default, AtoB): G_A(x); 'A' (BtoA): G_B(x)."""
    target = "B" if target is None else str(target)
    if target not in ("A", "B"):
      raise ValueError(f"--target={target!r}: a CycleGAN translates into domain 'A' or 'B'")
    if tuple(x.shape[1:]) != self.image_shape:
      raise ValueError(f"cyclegan translates images of {self.image_shape}; got {tuple(x.shape[1:])}")
    return self.generate(state, "g_a" if target == "B" else "g_b", x)

  def test_images(self, max_images: int = 128) -> dict[str, np.ndarray]:
    """Up to `max_images` of each test split ('a': model.test_split_a of config.data, 'b':
    model.test_split_b of the b source), resized to crop_size, as float32 in [-1, 1] (host; read once).
    A source without those splits gives its training images instead (logged)."""
    if self._test_images is None:
      self._test_images = {s: read_images(self.config, src, split, self.crop_size, max_images)
                           for s, src, split in (("a", "data", self.config.model.test_split_a),
                                                 ("b", self.b_source, self.config.model.test_split_b))}
    return self._test_images

  def sample(self, state, rng, n, condition=None):
    """Translations of test images drawn uniformly (from `test_images`): G_A(A) (condition None or 'B'),
    G_B(B) (condition 'A')."""
    to_a = condition is not None and str(condition) == "A"
    images = jnp.asarray(self.test_images()["b" if to_a else "a"])
    x = images[jax.random.randint(rng, (n,), 0, images.shape[0])]
    return self.generate(state, "g_b" if to_a else "g_a", x)

  def fixed_inputs(self, seed: int, n: int):
    """The sheet's test images: w = ceil(sqrt(n)) per block of six rows, of each domain (the first ones)."""
    del seed
    w = int(math.ceil(math.sqrt(n)))
    blocks = -(-(-(-n // w)) // 6)     # ceil(rows / 6), rows = ceil(n / w)
    m = w * blocks
    imgs = self.test_images()
    return {s: jnp.asarray(np.resize(imgs[s], (m, *self.image_shape))) for s in ("a", "b")}

  def sample_fixed(self, state, inputs, n):
    """A -> G_A(A) -> G_B(G_A(A)) and B -> G_B(B) -> G_A(G_B(B)) rows (`sheet_layout`)."""
    a, b = inputs["a"], inputs["b"]
    fake_b, fake_a = self.generate(state, "g_a", a), self.generate(state, "g_b", b)
    return sheet_layout(a, fake_b, self.generate(state, "g_b", fake_b), b, fake_a,
                        self.generate(state, "g_a", fake_a), n)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.method = "cyclegan"
    c.model = model_config()
    c.model.update(dict(netG="resnet_6blocks", n_blocks=0, ngf=4, ndf=4, netD="n_layers", n_layers_D=2, crop_size=16,
                        pool_size=3, b_source="data"))
    c.data.batch_size = 8
    c.eval.metrics = ""
    for net in ("g", "d"):
      c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, decay="linear", decay_start=1))
    return c, methods.DataSpec((18, 18, 3), 0)


def model_config() -> ml_collections.ConfigDict:
  """config.model of the cyclegan family: the reference's defaults (options/*.py, cycle_gan_model.py)."""
  return ml_collections.ConfigDict(dict(
      name="cyclegan",
      netG="resnet_9blocks",       # define_G: resnet_9blocks | resnet_6blocks | unet_256 | unet_128
      n_blocks=ml_collections.FieldReference(None, field_type=int),   # override a ResNet G's block count
      netD="basic",                # define_D: basic (70x70 PatchGAN) | n_layers | pixel
      n_layers_D=3,
      ngf=64,
      ndf=64,
      norm="instance",
      no_dropout=True,             # "default CycleGAN did not use dropout"
      crop_size=256,               # the model's image size; data.image_size is the load size (286)
      no_flip=False,
      gan_mode="lsgan",
      lambda_A=10.0,
      lambda_B=10.0,
      lambda_identity=0.5,
      pool_size=50,
      b_source="data_b",
      test_split_a="testA",
      test_split_b="testB",
  ))


def read_images(config: ml_collections.ConfigDict, source: str, split: str, size: int,
                max_images: int | None = None) -> np.ndarray:
  """Images of split `split` of the data section `source`, resized to size x size, float32 [-1, 1]
  (the training split when the source has no such split)."""
  from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
  cfg = ml_collections.ConfigDict(config[source].to_dict())
  train_split = cfg.split
  cfg.split, cfg.image_size, cfg.max_examples, cfg.batch_size = split, size, max_images, 1
  try:
    ds = data_lib.build_dataset(cfg, 0, 0, 1)
    if ds.image_shape[-1] != 3 or ds.is_synthetic:
      raise ValueError(f"{ds.name}: not RGB images")
  except ValueError as e:   # DatasetNotFoundError is a ValueError
    logging.warning("cyclegan: no test split %r in config.%s (%s); the sheets use split %r", split, source, e,
                    train_split)
    cfg.split = train_split
    ds = data_lib.build_dataset(cfg, 0, 0, 1)
  n = int(ds.num_examples) if max_images is None else min(int(ds.num_examples), int(max_images))
  return data_lib.to_float(ds.source.get(np.arange(n))["image"])

