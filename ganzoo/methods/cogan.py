"""The `cogan` family: coupled GANs (Liu & Tuzel 2016, arXiv:1606.07536) (`config.method = 'cogan'`).

Two GANs, (G1, D1) on domain 1 and (G2, D2) on domain 2, trained on unpaired batches. G1 and G2
share their first layers and D1 and D2 their last ones (`ganzoo.models.cogan`): the state has one
generator 'g' = {shared, head_a, head_b} and one discriminator 'd' = {head_a, head_b, shared}, each
shared layer once, so it gets the sum of both domains' gradients. Both G heads read one z, so a
trained CoGAN draws a pair (G1(z), G2(z)) that the weight sharing makes correspond.

The digit <-> edge task (paper Sec. 5; reference mingyuliutw/CoGAN): domain 1 is the images of one
half of the training set, domain 2 the edge images (3x3 dilation minus the image,
`ganzoo.metrics.agreement`) of the other half, so no image appears in both domains. Here:

  stream 'a' reads `config.data` (configs/cogan.py: split 'train[:50%]'),
  stream 'b' reads the section `model.b_source` (configs/cogan.py: `data_b`, split 'train[50%:]')
    and `model.b_transform = 'edge'` turns its images into edge images in the step. The transform
    is exact: the pixels are recovered from [-1, 1] and transformed in integers
    (`agreement.edge_pixels`), so the images equal those of an edge data set made on the host.
  With `model.b_source = 'data'` (the family's test config), both streams read one source in two
  independent orders: the halves are then not disjoint.

Losses (the reference's: Caffe SoftmaxWithLoss over the 4B-row batch [real_1, fake_1, real_2,
fake_2], D at even and G at odd iterations with the fake labels switched to "real" for G, i.e. the
non-saturating G loss; cogan_pytorch trainer_cogan_mnistedge.py likewise):
  D: (1/4) sum_i [ mean softplus(-D_i(x_i)) + mean softplus(D_i(G_i(z))) ]
  G: (1/4) sum_i mean softplus(-D_i(G_i(z)))
with `config.loss.name` (default 'non_saturating') giving the per-domain terms; the 1/4 is the
mean over the reference's 4B rows, which sets the balance against the weight decay: Caffe's
weight_decay 5e-4 on weights (decay_mult 1; biases, BN shifts and PReLU slopes 0), added to the
gradient before Adam, i.e. the loss term (wd / 2) sum W^2 (`model.weight_decay`). Adam lr 2e-4,
betas (0.5, 0.999), batch 128 per domain (cogan/models/mnist.edge.cogan/*.ptt). One step is one D
update then one G update, each on fresh z ~ U(-1, 1)^100 (Caffe's RandomNoise UNIFORM [-1, 1]);
Caffe's 50,000 alternating iterations are 25,000 steps.

Not reproduced: Caffe's lr_mult 2 on the biases of D's FC layers, and Adam's bias correction
counted over all iterations (Caffe's AlterAdam skips the other network's iterations but counts
them in t).

Sampling: `sample` gives domain-1 images (`condition=1`: domain 2); the sample grids show pairs:
rows alternate G1(z) and G2(z) for the same z. `agreement` is the paper's metric.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import objectives
from ganzoo import step as step_lib
from ganzoo.metrics import agreement as agreement_lib
from ganzoo.models import cogan as cogan_models
from ganzoo.state import TrainState

D_KEY, G_KEY = 0, 1
B_TRANSFORMS = ("edge", "none")


def kernel_l2(params) -> jax.Array:
  """sum of squares of the weight matrices and kernels (leaves named 'kernel'): Caffe's decay_mult 1 set."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return sum(jnp.vdot(x, x) for path, x in leaves if getattr(path[-1], "key", None) == "kernel")


@methods.register("cogan")
class CoGAN(methods.Method):
  """Coupled GANs on two unpaired streams 'a' and 'b'."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    m = config.model
    self.image_shape = tuple(data.image_shape)
    self.z_dim = int(m.z_dim)
    self.generator, self.discriminator = cogan_models.build(m, self.image_shape)
    loss_cfg = config.loss.to_dict()
    self.objective = objectives.get_objective(loss_cfg.pop("name"), **loss_cfg)
    self.weight_decay = float(m.get("weight_decay", 0.0))
    self.b_source = str(m.get("b_source", "data_b"))
    if self.b_source != "data" and self.b_source not in config:
      raise ValueError(f"config.model.b_source={self.b_source!r} names no config section: add config.{self.b_source} "
                       "(a data section, see configs/cogan.py) or set config.model.b_source='data'")
    self.b_transform = str(m.get("b_transform", "edge"))
    self.instance_noise = augment.instance_noise(config)   # on every image D sees (ganzoo.augment)
    if self.b_transform not in B_TRANSFORMS:
      raise ValueError(f"config.model.b_transform={self.b_transform!r}; choose from {B_TRANSFORMS}")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'cogan' family trains networks 'g' and 'd'")
    n = int(config.train.num_steps)
    self.nets = {"g": nets_lib.build_spec(self.generator, config.nets.g, n),
                 "d": nets_lib.build_spec(self.discriminator, config.nets.d, n)}
    self.phases = (step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream=("a", "b"), key=D_KEY),
                   step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, key=G_KEY))

  def streams(self, plan):
    counts = step_lib.stream_counts(plan)
    sources = {"a": "data", "b": self.b_source}
    return {s: methods.StreamSpec(self.batch_size, c, sources[s]) for s, c in counts.items()}

  # -- latents and state -----------------------------------------------------------------------
  def sample_latents(self, rng: jax.Array, n: int) -> jax.Array:
    """z ~ U(-1, 1)^z_dim (the reference's RandomNoise layer, UNIFORM lb -1 ub 1)."""
    return jax.random.uniform(rng, (n, self.z_dim), jnp.float32, -1.0, 1.0)

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_sn = jax.random.split(rng, 4)
    z = self.sample_latents(rng_run, 2)
    g_vars = self.generator.init(rng_g, z, train=False)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    d_vars = self.discriminator.init(rng_d, x, x, train=False)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_sn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_sn)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  def domain_b_images(self, x: jax.Array) -> jax.Array:
    """Stream b's pixels (in [-1, 1]) as domain-2 images: their exact edge images, or as they are."""
    return agreement_lib.edge_pixels(x) if self.b_transform == "edge" else x

  # -- phases ----------------------------------------------------------------------------------
  def _decay(self, ctx, name):
    return 0.5 * self.weight_decay * kernel_l2(ctx.params(name)) if self.weight_decay else 0.0

  def _d_prepare(self, ctx: step_lib.Context, data, key):
    rng_z, rng_real, rng_fake = jax.random.split(key, 3)
    real_a = data["a"]["image"]
    real_b = self.domain_b_images(data["b"]["image"])
    z = ctx.shard(self.sample_latents(rng_z, real_a.shape[0]))
    fake_a, fake_b = jax.lax.stop_gradient(ctx.apply("g", z, train=True))
    noisy = lambda x, tag: augment.perturb(self.instance_noise, x, key, ctx.step, tag, ctx.shard)
    real_a, fake_a = noisy(real_a, augment.REAL_NOISE_KEY), noisy(fake_a, augment.FAKE_NOISE_KEY)
    real_b, fake_b = noisy(real_b, augment.REAL_NOISE_KEY + 2), noisy(fake_b, augment.FAKE_NOISE_KEY + 2)
    return ({"real_a": real_a, "real_b": real_b, "fake_a": fake_a, "fake_b": fake_b},
            {"drop_real": rng_real, "drop_fake": rng_fake})

  def _d_loss(self, ctx, inp):
    real_a, real_b = ctx.apply("d", inp["real_a"], inp["real_b"], rng=inp["drop_real"])
    fake_a, fake_b = ctx.apply("d", inp["fake_a"], inp["fake_b"], rng=inp["drop_fake"])
    loss_a = self.objective.d_loss(real_a, fake_a)
    loss_b = self.objective.d_loss(real_b, fake_b)
    loss = 0.25 * (loss_a + loss_b)
    metrics = {"d_loss": loss, "d_loss_a": loss_a, "d_loss_b": loss_b,
               "d_real_a": real_a.mean(), "d_fake_a": fake_a.mean(),
               "d_real_b": real_b.mean(), "d_fake_b": fake_b.mean()}
    return loss + self._decay(ctx, "d"), metrics

  def _g_prepare(self, ctx, data, key):
    del data
    rng_z, rng_drop = jax.random.split(key)
    inputs = {"z": self.sample_latents(rng_z, ctx.batch_size)}
    if self.instance_noise:   # G's fakes reach D with noise too
      zeros = jnp.zeros((ctx.batch_size, *self.image_shape), jnp.float32)
      inputs["noise"] = tuple(augment.perturb(self.instance_noise, zeros, key, ctx.step, augment.FAKE_NOISE_KEY + i,
                                              ctx.shard) for i in (0, 2))
    return inputs, {"drop_d": rng_drop}

  def _g_loss(self, ctx, inp):
    fake_a, fake_b = ctx.apply("g", inp["z"])
    if "noise" in inp:
      fake_a, fake_b = fake_a + inp["noise"][0], fake_b + inp["noise"][1]
    logits_a, logits_b = ctx.apply("d", fake_a, fake_b, rng=inp["drop_d"])
    loss_a, loss_b = self.objective.g_loss(logits_a, None), self.objective.g_loss(logits_b, None)
    loss = 0.25 * (loss_a + loss_b)
    return loss + self._decay(ctx, "g"), {"g_loss": loss, "g_loss_a": loss_a, "g_loss_b": loss_b}

  # -- inference -------------------------------------------------------------------------------
  @property
  def latent_dim(self) -> int:
    return self.z_dim

  def generate_pair(self, state: TrainState, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(G1(z), G2(z)) in inference mode (running BN statistics; the EMA when G has one)."""
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"])
    return nets_lib.forward(spec, params, batch_stats, z, train=False)[0]

  def sample(self, state, rng, n, condition=None):
    """n domain-1 images; `condition` = 1 gives domain 2 (0 or None: domain 1)."""
    pair = self.generate_pair(state, self.sample_latents(rng, n))
    return pair[1] if condition is not None and int(condition) == 1 else pair[0]

  def fixed_inputs(self, seed: int, n: int):
    """The z of the grids' pairs: n // 2 of them (at least 1)."""
    return self.sample_latents(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), max(n // 2, 1))

  def sample_fixed(self, state, inputs, n):
    """n images laid out for a grid of ceil(sqrt(n)) columns: rows alternate G1(z) and G2(z) of the same z."""
    return pair_layout(*self.generate_pair(state, inputs), n)

  def agreement(self, state: TrainState, rng: jax.Array, num_pairs: int = 10_000, batch_size: int = 500,
                threshold: float = 0.0) -> float:
    """The paper's pixel agreement of edge(G1(z)) and G2(z) over `num_pairs` z (b_transform 'edge')."""
    transform = agreement_lib.edge_transform if self.b_transform == "edge" else None
    return agreement_lib.agreement_of_generator(lambda z: self.generate_pair(state, z), self.sample_latents, rng,
                                                num_pairs, batch_size, threshold, transform)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.method = "cogan"
    c.model.name = "cogan"
    c.model.z_dim = 8
    c.model.weight_decay = 5e-4
    c.model.b_source = "data"     # the parametrized tests give the family one data source
    c.model.b_transform = "edge"
    c.model.d_dropout = 0.5
    c.data.batch_size = 16
    for net in ("g", "d"):
      c.nets[net].optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, decay="linear"))
    return c, methods.DataSpec((28, 28, 1), 10)


def pair_layout(images_1: jax.Array, images_2: jax.Array, n: int) -> jax.Array:
  """n images for a grid of w = ceil(sqrt(n)) columns whose rows alternate G1 and G2 of the same z:
  cell (row r, column c) shows pair (r // 2) * w + c (modulo the number of pairs), domain r % 2."""
  w = int(math.ceil(math.sqrt(n)))
  p = images_1.shape[0]
  order_z = [((i // w) // 2 * w + i % w) % p for i in range(n)]
  order_d = [(i // w) % 2 for i in range(n)]
  both = jnp.stack([images_1, images_2])
  return both[jnp.asarray(order_d), jnp.asarray(order_z)]
