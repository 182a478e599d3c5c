"""The `lapgan` family: a Laplacian pyramid of GANs (Denton et al. 2015, arXiv:1506.05751).

Pyramid (paper Sec. 3.1). With d = blur-and-decimate and u = smooth-and-expand:
  Gaussian pyramid  I_0 = x (e.g. 32x32), I_{k+1} = d(I_k) (16x16, 8x8);
  low-pass          l_k = u(I_{k+1});   band-pass  h_k = I_k - l_k  (k < K);   h_K = I_K.
d and u are those of the authors' CIFAR-10 scripts, Torch7 `image.scale` (mode 'bilinear') from
32 to 16 and back (facebook/eyescream cifar/datasets/coarse_to_fine_cifar10.lua, makeCoarse):
for a factor of two its `scaleLinear_rowcol` averages each 2x2 block (the box blur + decimation)
when shrinking, and interpolates linearly with the corner pixels aligned, src = dst * (n - 1) /
(2n - 1), when growing. Both are separable linear maps, applied here as matrices.

Networks (`ganzoo.models.lapgan`): per level k a pair (g<k>, d<k>). The coarsest level K is an
unconditional GAN on I_K (fully connected); each finer level a conditional GAN: G_k(z_k, l_k)
generates the residual h~_k, D_k scores (h_k or h~_k, l_k) (paper Eq. 2 and Sec. 3.2).

Training (paper Sec. 3.2: "each level is trained independently"): every level trains on the
pyramid of the real batch, never on the output of a coarser G. With `model.schedule`:
  'joint'       every step runs d<K>, g<K>, ..., d0, g0 on levels of the same real batch;
  'sequential'  the steps are split into K equal blocks, coarsest level first: one level's two
                phases per step (one compiled step per level).
Each level's update follows eyescream cifar/train/conditional_adversarial.lua (and adversarial.lua
for the coarsest): from a batch of B images (the scripts' batchSize = 128), D sees the B/2 first
as reals and B/2 fakes conditioned on the low-pass images of the B/2 others; its loss is the BCE
mean over those B examples (half the sum of the real and the fake mean: 0.5 * objective.d_loss).
G then makes B fakes, conditioned on all B low-pass images, and minimizes -log D (BCE against 1).
Noise is U(-1, 1) (a 100-d vector at the coarsest level, one plane the size of l_k elsewhere).
D's dropout is on in both phases, as in the scripts (the model is never put in evaluate mode).

Optimizer: SGD in Torch7's form (`optim.sgd`, whose dampening defaults to the momentum):
v_1 = g_1, v_t = m v_{t-1} + (1 - m) g_t, step -lr v_t. Paper Sec. 4: lr 0.02 decreased by a
factor (1 + 4e-5) and momentum 0.5 raised by 0.0008 per epoch up to 0.8; the config spreads both
over the updates of an epoch (`optim.decay='exponential'`, `optim.momentum_final` with a linear
ramp). Set `model.torch_sgd=False` for ganzoo's other optimizers (`nets.build_optimizer`).

Sampling (paper Eq. 3, coarse to fine): I~_K = G_K(z_K); I~_k = u(I~_{k+1}) + G_k(z_k, u(I~_{k+1})).
The output is clipped to the data range [-1, 1] (the generated residuals are unbounded).
"""

import functools
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import objectives
from ganzoo import step as step_lib
from ganzoo.models import lapgan as models
from ganzoo.state import TrainState


# ---------------------------------------------------------------------------------------------
# The pyramid.

def downsample(x: jax.Array) -> jax.Array:
  """d: [N, H, W, C] -> [N, H/2, W/2, C], the mean of each 2x2 block (Torch7 image.scale, shrinking)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


@functools.lru_cache(maxsize=None)
def upsample_matrix(n: int) -> np.ndarray:
  """[2n, n] linear interpolation with aligned corners: row i samples position i (n - 1) / (2n - 1)
  (Torch7 image.scale's scaleLinear_rowcol, growing; the last row copies the last pixel)."""
  m = np.zeros((2 * n, n), np.float64)
  if n == 1:
    m[:, 0] = 1.0
    return m
  for i in range(2 * n):
    pos = i * (n - 1) / (2 * n - 1)
    j = min(int(np.floor(pos)), n - 2)
    f = pos - j
    m[i, j] += 1.0 - f
    m[i, j + 1] += f
  return m


def upsample(x: jax.Array) -> jax.Array:
  """u: [N, H, W, C] -> [N, 2H, 2W, C], separable linear interpolation (`upsample_matrix`)."""
  uh = jnp.asarray(upsample_matrix(x.shape[1]), x.dtype)
  uw = jnp.asarray(upsample_matrix(x.shape[2]), x.dtype)
  return jnp.einsum("ih,nhwc,jw->nijc", uh, x, uw)


def gaussian_pyramid(x: jax.Array, levels: int) -> list[jax.Array]:
  """[I_0 = x, I_1 = d(I_0), ..., I_{levels-1}]."""
  out = [x]
  for _ in range(levels - 1):
    out.append(downsample(out[-1]))
  return out


def laplacian_pyramid(x: jax.Array, levels: int) -> tuple[list[jax.Array], list[jax.Array]]:
  """(h, l): band-pass h_k = I_k - u(I_{k+1}) and low-pass l_k = u(I_{k+1}) for k < levels - 1,
  h_{K} = l_{K} = I_K at the coarsest level K = levels - 1."""
  gauss = gaussian_pyramid(x, levels)
  lows = [upsample(gauss[k + 1]) for k in range(levels - 1)] + [gauss[-1]]
  highs = [gauss[k] - lows[k] for k in range(levels - 1)] + [gauss[-1]]
  return highs, lows


def reconstruct(highs: list[jax.Array]) -> jax.Array:
  """I_0 from [h_0, ..., h_K]: I_K = h_K, I_k = u(I_{k+1}) + h_k (paper Eq. 1)."""
  image = highs[-1]
  for h in reversed(highs[:-1]):
    image = upsample(image) + h
  return image


# ---------------------------------------------------------------------------------------------
# Torch7's SGD.

def torch_sgd(learning_rate, momentum) -> optax.GradientTransformation:
  """SGD as Torch7's `optim.sgd` with dampening = momentum (its default) and no weight decay:
  v_1 = g_1, v_t = m_t v_{t-1} + (1 - m_t) g_t, update = -lr_t v_t, with t counted from 0 for the
  schedules `learning_rate(t)` and `momentum(t)` (callables or constants)."""
  lr_fn = learning_rate if callable(learning_rate) else (lambda t: learning_rate)
  m_fn = momentum if callable(momentum) else (lambda t: momentum)

  def init(params):
    return {"count": jnp.zeros((), jnp.int32), "v": jax.tree.map(jnp.zeros_like, params)}

  def update(grads, state, params=None):
    del params
    t = state["count"]
    m, lr = m_fn(t), lr_fn(t)

    def trace(v, g):
      mm = jnp.asarray(m, g.dtype)
      return jnp.where(t == 0, g, mm * v + (1 - mm) * g)

    v = jax.tree.map(trace, state["v"], grads)
    updates = jax.tree.map(lambda x: -jnp.asarray(lr, x.dtype) * x, v)
    return updates, {"count": t + 1, "v": v}

  return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------------------------------------
# The family.

def level_names(k: int) -> tuple[str, str]:
  return f"g{k}", f"d{k}"


@methods.register("lapgan")
class LAPGAN(methods.Method):
  """K = model.levels levels over square images whose side is divisible by 2**(K - 1)."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    m = config.model
    self.image_shape = tuple(int(s) for s in data.image_shape)
    h, w, c = self.image_shape
    self.levels = int(m.get("levels", 3))
    if self.levels < 2:
      raise ValueError(f"model.levels={self.levels} must be >= 2 (a coarse GAN and at least one conditional level)")
    f = 2 ** (self.levels - 1)
    if h != w or h % f:
      raise ValueError(f"lapgan needs square images whose side divides by 2**(levels - 1) = {f}; got {h}x{w}: "
                       f"set data.image_size (e.g. 32) or model.levels")
    self.sizes = [h // 2 ** k for k in range(self.levels)]          # level k's side
    if models.d_output_size(self.sizes[-2]) < 1:
      raise ValueError(f"level {self.levels - 2} is {self.sizes[-2]}x{self.sizes[-2]}; D's two 5x5 'valid' "
                       "convolutions need at least 13x13: use fewer model.levels or larger images")
    if self.batch_size % 2:
      raise ValueError(f"data.batch_size={self.batch_size} must be even: D sees half reals, half fakes")
    if data.num_classes and m.get("conditional", False):
      raise ValueError("the lapgan family is unconditional (model.conditional=False)")
    self.z_dim = int(m.z_dim)
    self.channels = c
    self.schedule = str(m.get("schedule", "joint"))
    if self.schedule not in ("joint", "sequential"):
      raise ValueError(f"model.schedule must be 'joint' or 'sequential'; got {self.schedule!r}")
    loss_cfg = config.loss.to_dict()
    self.objective = objectives.get_objective(loss_cfg.pop("name"), **loss_cfg)
    # Instance noise (ganzoo.augment) on the image each level's D judges (the real or generated band-pass
    # residual, or the coarsest image), not on the low-pass conditioning, which is real for both.
    self.instance_noise = augment.instance_noise(config)
    coarse = self.levels - 1
    self.modules = {}
    for k in range(self.levels):
      g, d = level_names(k)
      if k == coarse:
        self.modules[g] = models.DenseGenerator((self.sizes[k], self.sizes[k], c), int(m.g_hidden))
        self.modules[d] = models.DenseDiscriminator(int(m.d_hidden))
      else:
        self.modules[g] = models.ConditionalGenerator(c, int(m.g_ch))
        self.modules[d] = models.ConditionalDiscriminator(int(m.d_ch), str(m.get("d_condition", "add")))
    expected = set(self.modules)
    if set(config.nets.keys()) != expected:
      raise ValueError(f"config.nets has {sorted(config.nets.keys())}; a {self.levels}-level lapgan trains "
                       f"{sorted(expected)} (one section each)")
    num_steps = int(config.train.num_steps)
    self.torch_sgd = bool(m.get("torch_sgd", True))
    self.nets = {}
    self._level_phases = {}
    for k in reversed(range(self.levels)):     # coarse to fine: the order of the phases
      until = functools.partial(self.updates_until, k)
      for name in level_names(k)[::-1]:        # d<k> before g<k>
        self.nets[name] = self._spec(name, config.nets[name], num_steps, until)
      g, d = level_names(k)
      self._level_phases[k] = (
          step_lib.Phase(d, (d,), functools.partial(self._d_loss, k), functools.partial(self._d_prepare, k),
                         stream="real", key=2 * k + 100),
          step_lib.Phase(g, (g,), functools.partial(self._g_loss, k), functools.partial(self._g_prepare, k),
                         stream="real", key=2 * k + 101))
    self.phases = tuple(p for k in reversed(range(self.levels)) for p in self._level_phases[k])

  # -- networks and schedule -------------------------------------------------------------------
  def _spec(self, name: str, cfg: ml_collections.ConfigDict, num_steps: int, until) -> nets_lib.NetSpec:
    """nets.build_spec, with Torch7's SGD for optim.name == 'sgd' when model.torch_sgd."""
    spec = nets_lib.build_spec(self.modules[name], cfg, num_steps, updates_until=until)
    if not (self.torch_sgd and cfg.optim.name == "sgd"):
      return spec
    o = cfg.optim
    lr = nets_lib.learning_rate(o, until(num_steps), until(int(o.get("decay_start", 0))))
    momentum = float(o.get("momentum", 0.0))
    if o.get("momentum_final", None) is not None:
      start = until(int(o.momentum_start))   # a level with no updates in the ramp still gets a valid one
      momentum = nets_lib.momentum_schedule(o, start, max(until(int(o.momentum_saturate)), start + 1))
    return spec._replace(tx=torch_sgd(lr, momentum))

  def _block(self, j: int) -> int:
    """First step of the j-th block of the sequential schedule (j = 0: the coarsest level)."""
    return (j * int(self.config.train.num_steps)) // self.levels

  def updates_until(self, level: int, steps: int) -> int:
    """Updates of level `level`'s networks in the first `steps` steps (one per step it runs)."""
    steps = int(steps)
    if self.schedule == "joint":
      return steps
    j = self.levels - 1 - level
    return int(np.clip(steps - self._block(j), 0, self._block(j + 1) - self._block(j)))

  def level_at(self, step: int) -> int:
    """The level the sequential schedule trains at `step` (completed steps)."""
    j = self.levels - 1
    while j > 0 and step < self._block(j):
      j -= 1
    return self.levels - 1 - j

  def plan(self, step: int) -> step_lib.StepPlan:
    if self.schedule == "joint":
      return step_lib.StepPlan(self.phases)
    return step_lib.StepPlan(self._level_phases[self.level_at(int(step))])

  def init(self, rng: jax.Array) -> TrainState:
    keys = jax.random.split(rng, 2 * self.levels + 2)
    rng_run, rng_sn = keys[0], keys[1]
    nets = {}
    for k in range(self.levels):
      g, d = level_names(k)
      s = self.sizes[k]
      x = jnp.zeros((2, s, s, self.channels), jnp.float32)
      if k == self.levels - 1:
        g_vars = self.modules[g].init(keys[2 + 2 * k], jnp.zeros((2, self.z_dim), jnp.float32), train=False)
        d_vars = self.modules[d].init(keys[3 + 2 * k], x, train=False)
      else:
        g_vars = self.modules[g].init(keys[2 + 2 * k], jnp.zeros((2, s, s, 1), jnp.float32), x, train=False)
        d_vars = self.modules[d].init(keys[3 + 2 * k], x, x, train=False)
      nets[g] = nets_lib.init_net(self.nets[g], g_vars, rng_sn)
      nets[d] = nets_lib.init_net(self.nets[d], d_vars, rng_sn)
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets={n: nets[n] for n in self.nets}, extras={})

  # -- phases ----------------------------------------------------------------------------------
  def noise(self, k: int, rng: jax.Array, n: int) -> jax.Array:
    """z_k ~ U(-1, 1): [n, z_dim] at the coarsest level, [n, s_k, s_k, 1] (one plane) elsewhere."""
    shape = (n, self.z_dim) if k == self.levels - 1 else (n, self.sizes[k], self.sizes[k], 1)
    return jax.random.uniform(rng, shape, jnp.float32, -1.0, 1.0)

  def _level_data(self, k: int, images: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """(h_k, l_k) of the batch; l_k None at the coarsest level (h_K = I_K)."""
    gauss = gaussian_pyramid(images, k + 2 if k < self.levels - 1 else k + 1)
    if k == self.levels - 1:
      return gauss[k], None
    low = upsample(gauss[k + 1])
    return gauss[k] - low, low

  def _generate_level(self, ctx, k, z, low, rng):
    g = level_names(k)[0]
    return ctx.apply(g, z, rng=rng) if low is None else ctx.apply(g, z, low, rng=rng)

  def _discriminate(self, ctx, k, x, low, rng):
    d = level_names(k)[1]
    return ctx.apply(d, x, rng=rng) if low is None else ctx.apply(d, x, low, rng=rng)

  def _d_prepare(self, k, ctx: step_lib.Context, data, key):
    high, low = self._level_data(k, data["image"])
    half = high.shape[0] // 2
    rng_z, rng_g, rng_real, rng_fake = jax.random.split(key, 4)
    fake_low = None if low is None else low[half:]
    z = ctx.shard(self.noise(k, rng_z, high.shape[0] - half))
    fake = jax.lax.stop_gradient(self._generate_level(ctx, k, z, fake_low, rng_g))
    noisy = lambda x, tag: augment.perturb(self.instance_noise, x, key, ctx.step, tag, ctx.shard)
    inputs = {"real": noisy(high[:half], augment.REAL_NOISE_KEY), "real_low": None if low is None else low[:half],
              "fake": noisy(fake, augment.FAKE_NOISE_KEY), "fake_low": fake_low}
    return inputs, {"drop_real": rng_real, "drop_fake": rng_fake}

  def _d_loss(self, k, ctx, inp):
    real = self._discriminate(ctx, k, inp["real"], inp["real_low"], inp["drop_real"])
    fake = self._discriminate(ctx, k, inp["fake"], inp["fake_low"], inp["drop_fake"])
    # The scripts' BCECriterion averages over the B/2 reals and B/2 fakes of one batch.
    loss = 0.5 * self.objective.d_loss(real, fake)
    return loss, {f"d{k}_loss": loss, f"d{k}_real": real.mean(), f"d{k}_fake": fake.mean()}

  def _g_prepare(self, k, ctx, data, key):
    high, low = self._level_data(k, data["image"])
    rng_z, rng_g, rng_d = jax.random.split(key, 3)
    n = data["image"].shape[0]
    inputs = {"z": ctx.shard(self.noise(k, rng_z, n)), "low": low}
    if self.instance_noise:   # G's residuals reach D with noise too
      inputs["inst_noise"] = augment.perturb(self.instance_noise, jnp.zeros(high.shape, jnp.float32), key, ctx.step,
                                             augment.FAKE_NOISE_KEY, ctx.shard)
    return inputs, {"drop_g": rng_g, "drop_d": rng_d}

  def _g_loss(self, k, ctx, inp):
    fake = self._generate_level(ctx, k, inp["z"], inp["low"], inp["drop_g"])
    if "inst_noise" in inp:
      fake = fake + inp["inst_noise"]
    logits = self._discriminate(ctx, k, fake, inp["low"], inp["drop_d"])
    loss = self.objective.g_loss(logits, None)
    return loss, {f"g{k}_loss": loss}

  # -- inference -------------------------------------------------------------------------------
  def generate_level(self, state: TrainState, k: int, z: jax.Array, low: jax.Array | None) -> jax.Array:
    """G_k in inference mode: I~_K at the coarsest level, else the residual h~_k given l_k."""
    spec = self.nets[level_names(k)[0]]
    params, bs = nets_lib.inference_variables(spec, state.nets[level_names(k)[0]])
    inputs = (z,) if low is None else (z, low)
    return nets_lib.forward(spec, params, bs, *inputs, train=False)[0]

  def sample_pyramid(self, state: TrainState, rng: jax.Array, n: int) -> list[jax.Array]:
    """[I~_0, ..., I~_K], coarse to fine: I~_K = G_K(z_K), I~_k = u(I~_{k+1}) + G_k(z_k, u(I~_{k+1}))
    (paper Eq. 3), unclipped; each level draws its own noise from fold_in(rng, k)."""
    coarse = self.levels - 1
    image = self.generate_level(state, coarse, self.noise(coarse, jax.random.fold_in(rng, coarse), n), None)
    out = [image]
    for k in reversed(range(coarse)):
      low = upsample(image)
      image = low + self.generate_level(state, k, self.noise(k, jax.random.fold_in(rng, k), n), low)
      out.append(image)
    return out[::-1]

  def sample(self, state, rng, n, condition=None):
    del condition
    return jnp.clip(self.sample_pyramid(state, rng, n)[0], -1.0, 1.0)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    # Two levels (8x8 dense, 16x16 conv: the smallest conditional level D's convolutions allow)
    # keep the compiled steps of the parametrized tests small; tests/test_lapgan.py uses three.
    c = get_family_config(levels=2)
    config_lib.tiny(c)
    c.data.batch_size = 16
    c.model.update(dict(z_dim=4, g_hidden=8, d_hidden=8, g_ch=3, d_ch=3))
    return c, methods.DataSpec((16, 16, 1), 0)


def get_family_config(levels: int = 3, epoch_updates: float = 45_000 / 64) -> ml_collections.ConfigDict:
  """The paper's CIFAR-10 settings (Sec. 4) as a base config: SGD lr 0.02 / (1 + 4e-5) per epoch
  (floor 1e-6, eyescream's scripts), momentum 0.5 + 0.0008 per epoch up to 0.8, per-update factors
  from `epoch_updates` (eyescream: 45,000 training images, 64 reals per update), batch 128."""
  from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.get_base_config()
  c.method = "lapgan"
  c.model.name = "lapgan"
  c.model.levels = levels
  c.model.z_dim = 100
  c.model.g_hidden = 1200
  c.model.d_hidden = 600
  c.model.g_ch = 64
  c.model.d_ch = 64
  c.model.d_condition = "add"
  c.model.schedule = "joint"
  c.model.torch_sgd = True
  c.loss.name = "non_saturating"
  c.data.batch_size = 128
  optim = dict(name="sgd", lr=0.02, momentum=0.5, momentum_final=0.8, momentum_start=0,
               momentum_saturate=int(round(0.3 / 0.0008 * epoch_updates)), decay="exponential",
               decay_factor=float((1.0 + 4e-5) ** (1.0 / epoch_updates)), min_lr=1e-6)
  c.nets = ml_collections.ConfigDict()
  for k in reversed(range(levels)):
    for name in level_names(k):
      c.nets[name] = nets_lib.net_config(**optim)
  return c


def level_sheet(method: LAPGAN, state: TrainState, rng: jax.Array, n: int) -> np.ndarray:
  """[levels, n, H, W, C]: each level's sample upsampled to full size (coarsest first), for a sheet
  of the coarse-to-fine chain (clipped to [-1, 1])."""
  pyr = method.sample_pyramid(state, rng, n)
  rows = []
  for k in reversed(range(method.levels)):
    x = pyr[k]
    for _ in range(k):
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)   # nearest: show the coarse pixels as they are
    rows.append(jnp.clip(x, -1.0, 1.0))
  return np.asarray(jnp.stack(rows))

