"""The `stylegan2` family (Karras et al. 2020, arXiv:1912.04958), trained as stylegan2-ada-pytorch
training/loss.py (StyleGAN2Loss) and training/training_loop.py do.

Networks: 'g' (mapping + synthesis, ganzoo/models/stylegan2.py) and 'd', both with equalized
learning rate (`nets.<g|d>.eqlr`; the mapping layers with lr multiplier 0.01), Adam(lr, 0, 0.99,
eps 1e-8) at the preset's lr.

Phases per step, in the reference's order (G main, G reg, D main, D reg):
  g      non-saturating loss softplus(-D(G(z))).
  g_reg  every `pl_every` (4) steps: path-length regularization on a batch / `pl_batch_shrink` (2):
         a = || J_w^T y ||_2 per sample, y ~ N(0, I) / sqrt(H W) over the image, J_w the Jacobian of
         the image w.r.t. the ws (the squared norm summed over w_dim, averaged over the num_ws copies,
         then the root: loss.py's pl_lengths); the running mean a_bar <- a_bar + pl_decay (mean a - a_bar)
         (decay 0.01, `state.extras['pl_mean']`, the updated value used in the penalty, as the
         reference), penalty pl_weight (2) * mean (a - a_bar)^2, times the interval (lazy).
  d      softplus(D(G(z))) + softplus(-D(x)).
  d_reg  every `r1_every` (16) steps: R1, (r1_gamma / 2) mean ||grad_x D(x)||^2, times the interval,
         on the real batch of the `d` phase.
Lazy regularization's second correction: a network with a regularizer every k steps gets Adam's lr
and betas rescaled by k / (k + 1) (`nets.build_optimizer(lazy_ratio=...)`, training_loop.py's
mb_ratio). With pl_weight 0 (the cifar preset) there is no g_reg phase and G's ratio is 1.

Latents and style mixing (loss.py run_G): w = mapping(z) broadcast to the num_ws layers; with
probability `style_mixing` (0.9) one cutoff in [1, num_ws) per batch, and the ws from the cutoff on
come from the mapping of a second z. Every G forward draws fresh per-pixel noise.
w_avg (truncation's centre, `state.extras['w_avg']`): lerp(mean_batch w, w_avg, 0.995) once per
step, from the g phase's latents with G before its update (the reference updates it on every
training forward of the mapping, i.e. several times per step with the same beta; here it moves once
per step, so its time constant counts steps rather than mapping calls).
EMA of G (training_loop.py): beta = 0.5 ** (batch / max(ema_nimg, 1e-8)) with ema_nimg =
ema_kimg * 1000, capped at cur_nimg * ema_rampup when a ramp-up is set (cur_nimg = images shown
before this step), updated once per step after G's last update.

Augmentation of every image D sees (`config.augment.diffaugment` or `config.augment.ada`, ganzoo/augment.py),
as stylegan2-ada-pytorch's loss.py run_D does: the fakes of the g phase (inside G's loss, differentiated
through), the reals and fakes of the d phase, and the reals of R1, which is taken w.r.t. the images before
augmentation through a fresh augmentation, ||grad_x D(A(x))||^2 (loss.py: real_img_tmp requires grad and
run_D augments it). ADA's adaptive p: every D evaluation of reals (the d phase's and R1's, both report
Loss/signs/real in loss.py) adds sign(D(real)) to `state.extras` ('ada_signs', 'ada_count'); after the last
D phase of a step, p ('ada_p') moves when the completed steps are a multiple of `augment.ada.interval`
(training_loop.py), so a resumed run continues with the same p and statistics.

Config (`config.loss`, the family's knobs): name 'stylegan2', r1_gamma, r1_every, pl_weight,
pl_every, pl_decay, pl_batch_shrink, style_mixing, w_avg_beta, ema_kimg, ema_rampup (None = off).
`config.model`: size (a preset of ganzoo.models.stylegan2.PRESETS), truncation_psi (sampling).
"""

import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import regularizers
from ganzoo import step as step_lib
from ganzoo.models import stylegan2 as sg
from ganzoo.state import TrainState

G_KEY, G_REG_KEY, D_KEY, D_REG_KEY = 0, 1, 2, 3


def lazy_ratio(every: int) -> float:
  """k / (k + 1) for a regularizer every k steps, 1 without one (arXiv:1912.04958 App. B; training_loop.py)."""
  return every / (every + 1.0) if every else 1.0


def update_pl_mean(pl_mean: jax.Array, pl_lengths: jax.Array, decay: float) -> jax.Array:
  """a_bar + decay (mean(a) - a_bar), i.e. lerp(a_bar, mean a, decay) (loss.py; decay 0.01)."""
  return pl_mean + decay * (jnp.mean(jax.lax.stop_gradient(pl_lengths)) - pl_mean)


def ema_beta(cur_nimg: jax.Array, batch_size: int, ema_kimg: float, rampup: float | None) -> jax.Array:
  """0.5 ** (batch / max(ema_nimg, 1e-8)), ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup) (training_loop.py)."""
  ema_nimg = jnp.asarray(ema_kimg * 1000.0, jnp.float32)
  if rampup is not None:
    ema_nimg = jnp.minimum(ema_nimg, cur_nimg.astype(jnp.float32) * rampup)
  return 0.5 ** (batch_size / jnp.maximum(ema_nimg, 1e-8))


@methods.register("stylegan2")
class StyleGAN2(methods.Method):
  """StyleGAN2: networks 'g' and 'd'; `state.extras` = {'pl_mean', 'w_avg'} (+ ADA's p and statistics)."""

  augments = True   # DiffAugment / ADA (ganzoo.augment)
  truncation_cutoff: int | None = None   # truncate every layer (the StyleGAN family sets its cutoff)

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    # stylegan2-ada-pytorch trains without instance noise (R1 regularizes D; ADA / DiffAugment are its
    # augmentations of D's inputs): a one-line error, not a silent no-op.
    augment.refuse_instance_noise(config, "stylegan2")
    self.image_shape = tuple(data.image_shape)
    self.augment = augment.augmentation(config)   # None when off
    if self.augment:
      self.augment.check(self.image_shape)
    adaptive = bool(self.augment and self.augment.adaptive)
    loss = config.loss
    if loss.get("name", "stylegan2") != "stylegan2":
      raise ValueError(f"the 'stylegan2' family has its own objective: set config.loss.name='stylegan2' "
                       f"(got {loss.name!r})")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'stylegan2' family trains networks 'g' and 'd'")
    self.r1_gamma = float(loss.get("r1_gamma", 10.0))
    self.r1_every = int(loss.get("r1_every", 16))
    self.pl_weight = float(loss.get("pl_weight", 2.0))
    self.pl_every = int(loss.get("pl_every", 4)) if self.pl_weight > 0 else 0
    self.pl_decay = float(loss.get("pl_decay", 0.01))
    self.pl_shrink = int(loss.get("pl_batch_shrink", 2))
    self.style_mixing = float(loss.get("style_mixing", 0.9))
    self.w_avg_beta = float(loss.get("w_avg_beta", 0.995))
    self.ema_kimg = float(loss.get("ema_kimg", 10.0))
    self.ema_rampup = loss.get("ema_rampup", None)
    self.truncation_psi = float(config.model.get("truncation_psi", 1.0))
    if self.r1_every < 1 or (self.pl_weight > 0 and self.pl_every < 1):
      raise ValueError("config.loss.r1_every and pl_every must be >= 1 (1 = every step, not lazy)")
    if self.pl_weight > 0 and self.batch_size % self.pl_shrink:
      raise ValueError(f"config.data.batch_size={self.batch_size} must be a multiple of "
                       f"loss.pl_batch_shrink={self.pl_shrink}")
    self.generator, self.discriminator = sg.build(config.model, self.image_shape)
    self.z_dim, self.w_dim = self.generator.z_dim, self.generator.w_dim
    self.num_ws = sg.num_ws(self.generator.resolution)
    num_steps = int(config.train.num_steps)
    g_spec = nets_lib.build_spec(self.generator, config.nets.g, num_steps, lazy_ratio=lazy_ratio(self.pl_every))
    batch, kimg, ramp = self.batch_size, self.ema_kimg, self.ema_rampup
    if kimg > 0:   # the EMA by half-life in images, with ramp-up (replaces nets.g.ema.decay)
      g_spec = g_spec._replace(ema_decay=lambda step: ema_beta(step * batch, batch, kimg, ramp))
    self.nets = {"g": g_spec,
                 "d": nets_lib.build_spec(self.discriminator, config.nets.d, num_steps,
                                          lazy_ratio=lazy_ratio(self.r1_every))}
    g_main = step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, key=G_KEY, prepare_once=True,
                            prepare_extras=True)
    self._g_main_last = g_main
    self._g_main_before_reg = g_main._replace(ema=False)   # the EMA moves after G's last update
    phases = [g_main]
    if self.pl_every:
      phases.append(step_lib.Phase("g_reg", ("g",), self._pl_loss, self._pl_prepare, every=self.pl_every,
                                   scale=float(self.pl_every), key=G_REG_KEY, after=self._after_pl))
    d_main = step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream="real", key=D_KEY,
                            after=self._ada_after_last if adaptive else None)
    # ADA: p moves after the step's last D phase; the d phase before an R1 phase only gathers statistics.
    self._d_main_before_reg = d_main._replace(after=self._ada_after if adaptive else None)
    phases.append(d_main)
    phases.append(step_lib.Phase("d_reg", ("d",), self._r1_loss, self._r1_prepare, every=self.r1_every,
                                 scale=float(self.r1_every), stream="real", key=D_REG_KEY,
                                 after=self._ada_after_last_r1 if adaptive else None))
    self.phases = tuple(phases)

  def plan(self, step: int) -> step_lib.StepPlan:
    plan = step_lib.plan_for_step(self.phases, int(step))
    if any(p.name == "g_reg" for p in plan.phases):
      plan = step_lib.StepPlan(tuple(self._g_main_before_reg if p.name == "g" else p for p in plan.phases), plan.tag)
    if self.augment and self.augment.adaptive and any(p.name == "d_reg" for p in plan.phases):
      plan = step_lib.StepPlan(tuple(self._d_main_before_reg if p.name == "d" else p for p in plan.phases), plan.tag)
    return plan

  # -- state ----------------------------------------------------------------------------------
  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_gsn, rng_dsn = jax.random.split(rng, 5)
    z = jnp.zeros((2, self.z_dim), jnp.float32)
    g_vars = self.generator.init({"params": rng_g}, z, train=False)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)   # minibatch stddev groups min(group, 2)
    d_vars = self.discriminator.init({"params": rng_d}, x, train=False)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_gsn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_dsn)}
    extras = {"pl_mean": jnp.zeros((), jnp.float32), "w_avg": jnp.zeros((self.w_dim,), jnp.float32)}
    if self.augment:
      extras.update(self.augment.init_extras())
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras=extras)

  # -- G forward with style mixing ------------------------------------------------------------
  def _ws(self, ctx, z, z2, mix_key):
    """ws [N, num_ws, w_dim]: mapping(z), the layers from a random cutoff on from mapping(z2) with
    probability `style_mixing` (loss.py run_G)."""
    w = ctx.apply("g", z, method="mapping")
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
    if self.style_mixing > 0:
      k_cut, k_p = jax.random.split(mix_key)
      cutoff = jax.random.randint(k_cut, (), 1, self.num_ws)
      cutoff = jnp.where(jax.random.uniform(k_p, ()) < self.style_mixing, cutoff, self.num_ws)
      w2 = ctx.apply("g", z2, method="mapping")
      layer = jnp.arange(self.num_ws).reshape(1, -1, 1)
      ws = jnp.where(layer >= cutoff, w2[:, None], ws)
    return ws, w

  def _latents(self, ctx, key, n):
    k_z, k_z2 = jax.random.split(key)
    return (ctx.shard(jax.random.normal(k_z, (n, self.z_dim), jnp.float32)),
            ctx.shard(jax.random.normal(k_z2, (n, self.z_dim), jnp.float32)))

  # -- phases ----------------------------------------------------------------------------------
  def _g_prepare(self, ctx, data, key):
    del data
    k_lat, k_mix, k_noise = jax.random.split(key, 3)
    z, z2 = self._latents(ctx, k_lat, ctx.batch_size)
    w = jax.lax.stop_gradient(ctx.apply("g", z, method="mapping"))
    extras = {**ctx.extras, "w_avg": sg.update_w_avg(ctx.extras["w_avg"], w, self.w_avg_beta).astype(
        ctx.extras["w_avg"].dtype)}
    keys = {"mix": k_mix, "noise": k_noise}
    if self.augment:
      keys["aug"] = jax.random.fold_in(key, augment.AUG_FAKE_KEY)
    return {"z": z, "z2": z2}, keys, extras

  def _g_loss(self, ctx, inp):
    ws, _ = self._ws(ctx, inp["z"], inp["z2"], inp["mix"])
    fake = ctx.apply("g", ws, inp["noise"], method="synthesis")
    if self.augment:
      fake = self.augment(fake, inp["aug"], ctx.extras)
    loss = jnp.mean(jax.nn.softplus(-ctx.apply("d", fake)))
    return loss, {"g_loss": loss}

  def _pl_prepare(self, ctx, data, key):
    del data
    k_lat, k_mix, k_noise, k_y = jax.random.split(key, 4)
    n = ctx.batch_size // self.pl_shrink
    z, z2 = self._latents(ctx, k_lat, n)
    h, w, c = self.image_shape
    y = ctx.shard(jax.random.normal(k_y, (n, h, w, c), jnp.float32) / jnp.sqrt(float(h * w)))
    return {"z": z, "z2": z2, "pl_noise": y}, {"mix": k_mix, "noise": k_noise}

  def _pl_loss(self, ctx, inp):
    ws, _ = self._ws(ctx, inp["z"], inp["z2"], inp["mix"])
    y = inp["pl_noise"].astype(ws.dtype)
    synth = lambda ws_: jnp.sum(ctx.apply("g", ws_, inp["noise"], method="synthesis") * y)
    grads = jax.grad(synth)(ws)                                          # J_w^T y, [N, num_ws, w_dim]
    lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))
    pl_mean = update_pl_mean(ctx.extras["pl_mean"].astype(lengths.dtype), lengths, self.pl_decay)
    penalty = jnp.mean(jnp.square(lengths - pl_mean))
    loss = self.pl_weight * penalty
    return loss, {"pl_penalty": penalty, "pl_mean": pl_mean, "pl_length": jnp.mean(lengths)}

  def _after_pl(self, extras, metrics, step):
    del step
    return {**extras, "pl_mean": metrics["pl_mean"].astype(extras["pl_mean"].dtype)}

  def _d_prepare(self, ctx, data, key):
    k_lat, k_mix, k_noise = jax.random.split(key, 3)
    real = data["image"]
    z, z2 = self._latents(ctx, k_lat, real.shape[0])
    ws, _ = self._ws(ctx, z, z2, k_mix)
    fake = jax.lax.stop_gradient(ctx.apply("g", ws, k_noise, method="synthesis"))
    if self.augment:   # not differentiated: augmented here, outside the gradient
      real = ctx.shard(self.augment(real, jax.random.fold_in(key, augment.AUG_REAL_KEY), ctx.extras))
      fake = ctx.shard(self.augment(fake, jax.random.fold_in(key, augment.AUG_FAKE_KEY), ctx.extras))
    return {"real": real, "fake": fake}, {}

  def _d_loss(self, ctx, inp):
    fake_logits = ctx.apply("d", inp["fake"])
    real_logits = ctx.apply("d", inp["real"])
    loss_fake = jnp.mean(jax.nn.softplus(fake_logits))
    loss_real = jnp.mean(jax.nn.softplus(-real_logits))
    loss = loss_fake + loss_real
    metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
    if self.augment and self.augment.adaptive:
      metrics.update(ada_sign=jnp.mean(jnp.sign(real_logits)), ada_p=ctx.extras["ada_p"])
    return loss, metrics

  def _r1_prepare(self, ctx, data, key):
    keys = {"aug": jax.random.fold_in(key, augment.AUG_REAL_KEY)} if self.augment else {}
    return {"real": data["image"]}, keys

  def _r1_loss(self, ctx, inp):
    if not self.augment:
      r1 = regularizers.r1_penalty(lambda x: ctx.apply("d", x), inp["real"])
      return (self.r1_gamma / 2.0) * r1, {"r1": r1}
    # R1 through the augmentation, w.r.t. the reals before it (loss.py); one forward gives the logits for ADA.
    logits, pullback = jax.vjp(lambda x: ctx.apply("d", self.augment(x, inp["aug"], ctx.extras)), inp["real"])
    grads = pullback(jnp.ones_like(logits))[0]
    r1 = jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))
    metrics = {"r1": r1}
    if self.augment.adaptive:
      metrics["r1_ada_sign"] = jnp.mean(jnp.sign(logits))
    return (self.r1_gamma / 2.0) * r1, metrics

  # ADA's adaptive p: statistics from every D evaluation of reals, the adjustment after the step's last D phase.
  def _ada_after(self, extras, metrics, step):
    del step
    return self.augment.accumulate(extras, metrics["ada_sign"], self.batch_size)

  def _ada_after_last(self, extras, metrics, step):
    return self.augment.adjust(self._ada_after(extras, metrics, step), step, self.batch_size)

  def _ada_after_last_r1(self, extras, metrics, step):
    extras = self.augment.accumulate(extras, metrics["r1_ada_sign"], self.batch_size)
    return self.augment.adjust(extras, step, self.batch_size)

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, z: jax.Array, noise_rng: jax.Array | None, use_ema: bool = True,
               psi: float | None = None) -> jax.Array:
    """G(z) from the EMA weights, truncated around w_avg by psi (the config's truncation_psi) on the first
    `truncation_cutoff` layers (all when None), clipped to [-1, 1]."""
    spec = self.nets["g"]
    params, bs = nets_lib.inference_variables(spec, state.nets["g"], use_ema)
    w, _ = nets_lib.forward(spec, params, bs, z, train=False, method="mapping")
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
    psi = self.truncation_psi if psi is None else psi
    if psi != 1.0:
      ws = sg.truncate(ws, state.extras["w_avg"].astype(ws.dtype), psi, self.truncation_cutoff)
    img, _ = nets_lib.forward(spec, params, bs, ws, noise_rng, train=False, method="synthesis")
    return jnp.clip(img, -1.0, 1.0)

  def sample(self, state, rng, n, condition=None):
    del condition
    k_z, k_noise = jax.random.split(rng)
    return self.generate(state, jax.random.normal(k_z, (n, self.z_dim), jnp.float32), k_noise)

  def fixed_inputs(self, seed: int, n: int):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3)
    return {"z": jax.random.normal(key, (n, self.z_dim), jnp.float32), "noise": jax.random.fold_in(key, 1)}

  def sample_fixed(self, state, inputs, n):
    return self.generate(state, inputs["z"], inputs["noise"])

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()   # configs/stylegan2.py:tiny, built here (configs/ is not a package)
    apply_preset(c, "tiny")
    config_lib.tiny(c)
    c.data.batch_size = 16
    # 8x8 (two synthesis blocks, 4 and 8): every kind of layer (const input, modulated convs, noise,
    # FIR up/down, toRGB skips, residual D blocks, minibatch stddev) at the smallest size that has an
    # up- and a downsampling block; the step with R1 and path length (double backprop through both
    # networks) compiles in a third less than at 16x16, which counts in CI.
    c.model.resolution = 8
    c.data.image_size = 8
    # Both regularizers every 2 steps, so the tests' steps 0 and 2 (the resumed step) run them; an
    # EMA ramp-up so the EMA differs from G.
    c.loss.update(dict(r1_every=2, pl_every=2, r1_gamma=1.0, ema_kimg=0.01, ema_rampup=0.5))
    for net in ("g", "d"):
      c.nets[net].optim.lr = 2e-3
    return c, methods.DataSpec((8, 8, 1), 10)


# The preset training settings of stylegan2-ada-pytorch train.py (cfg_specs): lr, R1 gamma, EMA
# half-life (kimg) and ramp-up, batch; cifar turns off path length and style mixing.
TRAIN_PRESETS = {
    "cifar": dict(lr=0.0025, r1_gamma=0.01, ema_kimg=500.0, ema_rampup=0.05, batch=64, pl_weight=0.0, style_mixing=0.0),
    "paper256": dict(lr=0.0025, r1_gamma=1.0, ema_kimg=20.0, ema_rampup=None, batch=64, pl_weight=2.0,
                     style_mixing=0.9),
    "stylegan2": dict(lr=0.002, r1_gamma=10.0, ema_kimg=10.0, ema_rampup=None, batch=32, pl_weight=2.0,
                      style_mixing=0.9),
    "small": dict(lr=0.0025, r1_gamma=0.05, ema_kimg=2.0, ema_rampup=0.05, batch=32, pl_weight=2.0, style_mixing=0.9),
    "tiny": dict(lr=0.0025, r1_gamma=1.0, ema_kimg=1.0, ema_rampup=0.05, batch=16, pl_weight=2.0, style_mixing=0.9),
}


def apply_preset(c: ml_collections.ConfigDict, size: str) -> None:
  """Sets the family, the preset's network and its training settings on a base config (configs/stylegan2.py)."""
  t = TRAIN_PRESETS[size]
  c.method = "stylegan2"
  c.model = ml_collections.ConfigDict(dict(name="stylegan2", size=size, z_dim=sg.PRESETS[size]["z_dim"],
                                           conditional=False, truncation_psi=1.0, conv_clamp=256.0))
  c.data.image_size = sg.PRESETS[size]["resolution"]
  c.data.batch_size = t["batch"]
  c.loss = ml_collections.ConfigDict(dict(
      name="stylegan2", r1_gamma=t["r1_gamma"], r1_every=16, pl_weight=t["pl_weight"], pl_every=4, pl_decay=0.01,
      pl_batch_shrink=2, style_mixing=t["style_mixing"], w_avg_beta=0.995, ema_kimg=t["ema_kimg"],
      ema_rampup=ml_collections.FieldReference(t["ema_rampup"], field_type=float)))
  for net in ("g", "d"):
    c.nets[net] = nets_lib.net_config(name="adam", lr=t["lr"], b1=0.0, b2=0.99, eps=1e-8)
    c.nets[net].eqlr.enabled = True
  c.nets.g.eqlr.lr_mul = 0.01
  c.nets.g.eqlr.lr_mul_include = "mapping"
