"""The `began` family: Boundary Equilibrium GAN (Berthelot, Schumm & Metz 2017, arXiv:1703.10717).

D is an autoencoder; a sample's "energy" is its L1 reconstruction error
  L(v) = mean over pixels of |v - D(v)|                                              (Eq. 1, eta = 1)
and the objectives with the control variable k_t (Sec. 3.4, Eq. 4)
  L_D = L(x) - k_t L(G(z_D)),    L_G = L(G(z_G)),
  k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1),   k_0 = 0,
with the diversity ratio gamma = E[L(G(z))] / E[L(x)] (0.5 in the paper's default) and the
proportional gain lambda_k = 0.001. The convergence measure (Sec. 3.4.1)
  M_global = L(x) + |gamma L(x) - L(G(z_G))|
is logged every step as `train/m_global`, with `train/k` (k_t, the value this step's D loss used),
`train/l_real` (L(x)), `train/l_fake` (L(G(z_D)) in the D phase) and `train/g_loss` (L(G(z_G))).

Config (`config.loss`): name 'began', gamma, lambda_k, k_init (k_0). Latents z ~ U(-1, 1)^z_dim
(the paper's Nz; carpedm20/BEGAN-tensorflow and compare_gan draw them uniform in [-1, 1]).
Networks: ganzoo/models/began.py (`config.model.size`: the paper's network or compare_gan's).

Phases per step: `d` (one D update on a real batch and fresh fakes G(z_D)), then `g` (one G update
on fresh z_G). State: `extras['k']` (k_t) and `extras['l_real']` (this step's L(x), handed from the
D phase to the G phase's k update); both are checkpointed, so a resumed run continues with the same
k (tests/test_began.py).

Decisions:
- The quantities of the k update and of M_global are the ones the two updates were computed with:
  L(x) at D's parameters before its update, L(G(z_G)) at G's parameters before its update and D's
  after it (the G phase runs after the D phase). carpedm20 computes all three losses in one graph
  at the parameters before both updates; compare_gan (BEGAN.py `after_training_step_hook`)
  re-evaluates them after both updates. The difference is one optimizer step of lr 1e-4.
- k is clipped to [0, 1] as in the paper (Eq. 4 and Algorithm 1; carpedm20 clips too). compare_gan's
  `update_k` does not clip.
- One D update per G update, as in the paper's Algorithm 1 and carpedm20 (compare_gan's default
  `disc_iters` is 5; not offered here).
- The paper halves the learning rate "when the measure of convergence stalls" (Sec. 4.1) without
  saying how a stall is detected; carpedm20 halves it every `lr_update_step` (100k) steps. Not
  done here: with ganzoo's optimizers a data-dependent lr would need the lr in the state and a
  stall rule the paper does not give; a fixed halving schedule only matters for runs of 1e5+
  steps (the paper's), not the CPU runs here. `config.nets.<g|d>.optim.decay` offers ganzoo's
  linear and exponential decays.
"""

import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.models import began as began_models
from ganzoo.state import TrainState

D_KEY, G_KEY = 0, 1


def reconstruction_loss(v: jax.Array, reconstruction: jax.Array) -> jax.Array:
  """L(v) = mean |v - D(v)| over the batch and every pixel and channel (arXiv:1703.10717 Eq. 1)."""
  return jnp.mean(jnp.abs(v - reconstruction))


def update_k(k: jax.Array, l_real: jax.Array, l_gen: jax.Array, gamma: float, lambda_k: float) -> jax.Array:
  """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) (arXiv:1703.10717 Eq. 4)."""
  return jnp.clip(k + lambda_k * (gamma * l_real - l_gen), 0.0, 1.0)


def convergence_measure(l_real: jax.Array, l_gen: jax.Array, gamma: float) -> jax.Array:
  """M_global = L(x) + |gamma L(x) - L(G(z_G))| (arXiv:1703.10717 Sec. 3.4.1)."""
  return l_real + jnp.abs(gamma * l_real - l_gen)


@methods.register("began")
class BEGAN(methods.Method):
  """BEGAN: networks 'g' (generator) and 'd' (autoencoder), k_t in `state.extras['k']`."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    if data.num_classes and bool(config.model.get("conditional", False)):
      raise ValueError("the 'began' family is unconditional: set config.model.conditional=False")
    self.image_shape = tuple(data.image_shape)
    self.z_dim = int(config.model.z_dim)
    loss = config.loss
    if loss.get("name", "began") != "began":
      raise ValueError(f"the 'began' family has its own objective: set config.loss.name='began' (got {loss.name!r})")
    self.gamma = float(loss.get("gamma", 0.5))
    self.lambda_k = float(loss.get("lambda_k", 0.001))
    self.instance_noise = augment.instance_noise(config)   # on every image D sees (ganzoo.augment)
    self.k_init = float(loss.get("k_init", 0.0))
    if not 0.0 <= self.gamma <= 1.0:
      raise ValueError(f"config.loss.gamma={self.gamma} must lie in [0, 1] (the diversity ratio; the paper uses 0.5)")
    if not 0.0 <= self.k_init <= 1.0:
      raise ValueError(f"config.loss.k_init={self.k_init} must lie in [0, 1] (k_t is clipped there; "
                       "the paper's k_0 = 0)")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'began' family trains networks 'g' and 'd'")
    t = config.train
    for key in ("d_steps", "g_steps"):
      if int(t.get(key, 1)) != 1:
        raise ValueError(f"the 'began' family runs one D and one G update per step (the paper's Algorithm 1): "
                         f"set config.train.{key}=1")
    self.generator, self.autoencoder = began_models.build(config.model, self.image_shape)
    num_steps = int(t.num_steps)
    self.nets = {"g": nets_lib.build_spec(self.generator, config.nets.g, num_steps),
                 "d": nets_lib.build_spec(self.autoencoder, config.nets.d, num_steps)}
    self.phases = (
        step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream="real", key=D_KEY, after=self._after_d),
        step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, key=G_KEY, after=self._after_g),
    )

  # -- latents and state -----------------------------------------------------------------------
  def sample_latents(self, rng: jax.Array, n: int) -> jax.Array:
    """z ~ U(-1, 1)^[n, z_dim]."""
    return jax.random.uniform(rng, (n, self.z_dim), jnp.float32, -1.0, 1.0)

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_sn = jax.random.split(rng, 4)
    g_vars = self.generator.init(rng_g, self.sample_latents(rng_run, 2), None, train=False)
    d_vars = self.autoencoder.init(rng_d, jnp.zeros((2, *self.image_shape), jnp.float32), None, train=False)
    rng_gsn, rng_dsn = jax.random.split(rng_sn)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_gsn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_dsn)}
    extras = {"k": jnp.full((), self.k_init, jnp.float32), "l_real": jnp.zeros((), jnp.float32)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras=extras)

  # -- phases ----------------------------------------------------------------------------------
  def _d_prepare(self, ctx: step_lib.Context, data, key):
    real = data["image"]
    z = ctx.shard(self.sample_latents(key, real.shape[0]))
    fake = jax.lax.stop_gradient(ctx.apply("g", z, None, train=True))
    noisy = lambda x, tag: augment.perturb(self.instance_noise, x, key, ctx.step, tag, ctx.shard)
    return {"real": noisy(real, augment.REAL_NOISE_KEY), "fake": noisy(fake, augment.FAKE_NOISE_KEY)}, {}

  def _d_loss(self, ctx: step_lib.Context, inp):
    l_real = reconstruction_loss(inp["real"], ctx.apply("d", inp["real"]))
    l_fake = reconstruction_loss(inp["fake"], ctx.apply("d", inp["fake"]))
    k = ctx.extras["k"]
    loss = l_real - k * l_fake
    return loss, {"d_loss": loss, "l_real": l_real, "l_fake": l_fake}

  def _after_d(self, extras, metrics, step):
    del step
    return {**extras, "l_real": metrics["l_real"].astype(extras["l_real"].dtype)}

  def _g_prepare(self, ctx, data, key):
    del data
    inputs = {"z": ctx.shard(self.sample_latents(key, ctx.batch_size))}
    if self.instance_noise:   # G's fakes reach D with noise too
      zeros = jnp.zeros((ctx.batch_size, *self.image_shape), jnp.float32)
      inputs["noise"] = augment.perturb(self.instance_noise, zeros, key, ctx.step, augment.FAKE_NOISE_KEY, ctx.shard)
    return inputs, {}

  def _g_loss(self, ctx, inp):
    fake = ctx.apply("g", inp["z"], None)
    if "noise" in inp:
      fake = fake + inp["noise"]
    l_gen = reconstruction_loss(fake, ctx.apply("d", fake))
    l_real = ctx.extras["l_real"]
    m_global = convergence_measure(l_real, jax.lax.stop_gradient(l_gen), self.gamma)
    return l_gen, {"g_loss": l_gen, "m_global": m_global, "k": ctx.extras["k"]}

  def _after_g(self, extras, metrics, step):
    del step
    k = update_k(extras["k"], extras["l_real"], metrics["g_loss"], self.gamma, self.lambda_k)
    return {**extras, "k": k.astype(extras["k"].dtype)}

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, z: jax.Array, use_ema: bool = True) -> jax.Array:
    """G(z) in inference mode, clipped to [-1, 1] (the paper network's output is linear)."""
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"], use_ema)
    images, _ = nets_lib.forward(spec, params, batch_stats, z, None, train=False)
    return jnp.clip(images, -1.0, 1.0)

  def reconstruct(self, state: TrainState, x: jax.Array) -> jax.Array:
    """D(x), the autoencoder's reconstruction, in inference mode."""
    spec = self.nets["d"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["d"], use_ema=False)
    return nets_lib.forward(spec, params, batch_stats, x, None, train=False)[0]

  def sample(self, state, rng, n, condition=None):
    del condition
    return self.generate(state, self.sample_latents(rng, n))

  def fixed_inputs(self, seed: int, n: int):
    return self.sample_latents(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), n)

  def sample_fixed(self, state, inputs, n):
    return self.generate(state, inputs)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()   # configs/began.py:tiny, built here (configs/ is not a package)
    config_lib.tiny(c)
    c.method = "began"
    c.data.batch_size = 16
    c.model.name = "began"
    c.model.z_dim = 8
    c.model.h_dim = 8
    # k_0 = 0.3 and lambda_k 0.05 so that k moves visibly within the parametrized tests' few steps: their
    # resumed == unbroken comparison of the whole state then checks the restored k.
    c.loss = ml_collections.ConfigDict(dict(name="began", gamma=0.5, lambda_k=0.05, k_init=0.3))
    for net in ("g", "d"):   # lr 1e-3: two steps move the params by more than the test's 1e-4
      c.nets[net].optim.update(dict(name="adam", lr=1e-3, b1=0.5, b2=0.999))
    return c, methods.DataSpec((16, 16, 1), 10)
