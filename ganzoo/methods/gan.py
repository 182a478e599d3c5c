"""The `gan` family: one generator G(z[, y]) and one discriminator D(x[, y]) (`config.method = 'gan'`).

Every adversarial objective of `ganzoo.objectives`, the penalties of `ganzoo.regularizers`,
AC-GAN's auxiliary classifier, projection and conditional-BN conditioning, TTUR (per-network
optimizers), n_critic, weight clipping, orthogonal regularization, spectral norm on either
network, an EMA of G, gradient accumulation, and instance noise, DiffAugment or ADA on every D input
(`config.augment`, ganzoo/augment.py). Phases per step:

  d       `train.d_steps` updates of D (n_critic), each on its own real batch and fresh fakes;
          adversarial loss + AC-GAN term + every penalty with `every == 1`. With
          `train.d_steps_warmup` = {steps, d_steps, every}, steps s < steps (and s % every == 0
          when every > 0) run d_steps updates instead: WGAN's reference (martinarjovsky/
          WassersteinGAN main.py: Diters = 100 while gen_iterations < 25 or % 500 == 0); each such
          step is its own plan (one more compiled step) and reads d_steps real batches.
  d_reg   every k steps when penalties have `every = k > 1` (lazy regularization, Karras et al.
          2020, arXiv:1912.04958 Sec. 4 and stylegan2-ada-pytorch training/loss.py): the penalties
          alone, times k, on the real batch of D's last update; D's Adam lr and betas are scaled
          by k / (k + 1) (`nets.build_optimizer`).
  g       `train.g_steps` updates of G on fresh latents, `train.g_batch_size` of them per update
          (default data.batch_size; WGAN-GP's CIFAR ResNet, igul222/improved_wgan_training
          gan_cifar_resnet.py GEN_BS_MULTIPLE = 2, and the projection cGAN's n_gen_samples use
          twice D's batch).

Schedules count each network's optimizer updates, so the family passes build_spec the exact
number of D updates in the first s steps (n_critic schedule and lazy updates included): a linear
decay of D's lr ends at D's last update.

Decisions (each is what the reference implementations do unless said otherwise):
- Each D update draws fresh z (and fake labels); so does each G update (BigGAN-PyTorch does this;
  the DCGAN PyTorch example reuses the D step's fakes, which is cheaper but correlates the updates).
  `train.reuse_fakes=True` is that example's rule (pytorch/examples dcgan/main.py: `fake = netG(noise)`,
  D on `fake.detach()`, then G's loss on `netD(fake)` with the updated D): the G update takes the
  latents, fake labels and G dropout key of D's last update in the step, kept in `state.extras`
  ('reuse_z', 'reuse_y', 'reuse_rng'; written by the d phase's `prepare`, so the stored fakes are a
  function of the step's key and a resume is exact), and G's forward in train mode on them is the D
  update's forward (same params, same BatchNorm batch statistics). In one jitted step XLA computes
  the two forwards once when the n_critic loop is unrolled (CPU); elsewhere the saving may not
  materialize but the update is the same. Off by default (it changes the computation); it needs one
  G update per step of data.batch_size latents (train.g_steps 1, g_batch_size unset) and
  train.grad_accum 1.
  With `train.grad_accum` = k, z is drawn and G run per micro-batch (the step calls `prepare` per
  micro-batch), so a D update holds one micro-batch of fakes; G's BatchNorm then normalizes each
  micro-batch of fakes on its own statistics, as in BigGAN-PyTorch's accumulation loop.
- D sees the real and the fake batch in two separate calls, so a D with BatchNorm normalizes each
  batch on its own statistics (DCGAN practice). Its running statistics are updated in D updates
  only; G's only in G updates.
- Spectral normalization: the power iteration runs once per update of the normalized network (D's
  vectors in D updates, G's in G updates); the other network is normalized with its stored
  vectors. The new vector is computed first and W/sigma is differentiated with it, which makes
  gradient accumulation over micro-batches exact.
- DiffAugment / ADA (`config.augment.diffaugment`, `.ada`): D's real and fake batches are augmented in
  `prepare` (so the penalties of the d and d_reg phases see the augmented images, as they see instance
  noise) and G's fakes inside G's loss (differentiated through, DiffAugment's and ADA's G update). ADA's
  adaptive p: the d phase adds sign(D(real)) of each update to `state.extras`, the g phase (last in the
  step) moves p every `augment.ada.interval` steps (ganzoo.augment.Augment.adjust).
- Penalties see the labels of the images they are evaluated on (`regularizers.PENALTY_INPUTS`:
  R2 on fakes with the fake labels; R1, DRAGAN and the WGAN-GP interpolates with the real labels,
  the interpolate's label being its real endpoint's as in StudioGAN). A penalty needs
  per-example input gradients, which BatchNorm's batch statistics couple: a D with batch
  statistics and a penalty is refused.
"""

import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ganzoo import augment
from ganzoo import methods
from ganzoo import models
from ganzoo import nets as nets_lib
from ganzoo import objectives
from ganzoo import regularizers
from ganzoo import step as step_lib
from ganzoo.state import TrainState

# The phase keys of the step that preceded the protocol (rng_d, rng_g = split(fold_in(rng, step)),
# i.e. fold_in(., 0) and fold_in(., 1)): runs and checkpoints from before it continue unchanged.
D_KEY, G_KEY, D_REG_KEY = 0, 1, 2


def split_d_output(out: Any) -> tuple[jax.Array, jax.Array | None]:
  """D returns logits [N] or {'logits': [N], 'class_logits': [N, K]} (auxiliary classifier)."""
  if isinstance(out, dict):
    return out["logits"], out.get("class_logits")
  return out, None


def aux_classifier_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
  """AC-GAN's class term (Odena et al. 2017, 1610.09585): mean softmax cross-entropy."""
  return optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()


def build_penalties(cfg: ml_collections.ConfigDict) -> list[tuple[str, float, int, Any]]:
  """[(name, weight, every, penalty_fn)] from `config.penalties` ({name: {weight, every, **kwargs}})."""
  out = []
  for name, p in cfg.items():
    kwargs = {k: v for k, v in p.items() if k not in ("weight", "every")}
    try:
      fn = regularizers.get_penalty(name, **kwargs)
    except ValueError as e:
      raise ValueError(f"config.penalties.{name}: {e}") from None
    every = int(p.get("every", 1))
    if every < 1:
      raise ValueError(f"config.penalties.{name}.every must be >= 1; got {every}")
    out.append((name, float(p.get("weight", 0.0)), every, fn))
  return out


def _d_steps_warmup(t: ml_collections.ConfigDict) -> tuple[int, int, int] | None:
  """(steps, d_steps, every) from `train.d_steps_warmup`, or None when it is off (d_steps 0)."""
  w = t.get("d_steps_warmup", None)
  if w is None or not int(w.get("d_steps", 0)):
    return None
  first, d_steps, every = int(w.get("steps", 0)), int(w.d_steps), int(w.get("every", 0))
  if d_steps < 1 or first < 0 or every < 0 or (first == 0 and every == 0):
    raise ValueError(f"train.d_steps_warmup needs d_steps >= 1 and steps >= 0, every >= 0, not both 0; got "
                     f"{dict(steps=first, d_steps=d_steps, every=every)}")
  return first, d_steps, every


def _g_batch_size(t: ml_collections.ConfigDict, batch_size: int, grad_accum: int) -> int:
  """`train.g_batch_size` (default: data.batch_size), checked against devices and micro-batches.

  data.batch_size is checked against the mesh by train.setup; a G batch that is a multiple of it
  divides wherever that one does. Other sizes are checked against all devices (the default mesh).
  """
  g = t.get("g_batch_size", None)
  g = batch_size if g is None else int(g)
  n = jax.device_count()
  if g < 1 or (g % batch_size and g % (n * grad_accum)):
    raise ValueError(f"train.g_batch_size={g} must be divisible by the number of devices ({n})"
                     + (f" times train.grad_accum ({grad_accum})" if grad_accum > 1 else "")
                     + f"; use a multiple of {n * grad_accum} or of data.batch_size ({batch_size})")
  return g


@methods.register("gan")
class GAN(methods.Method):
  """A GAN built from a config; the pure pieces a step, a sampler or a notebook needs."""

  augments = True   # DiffAugment / ADA (ganzoo.augment)

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    conditional = bool(config.model.get("conditional", False))
    if conditional and data.num_classes <= 0:
      raise ValueError(f"config.model.conditional=True needs a labelled data set; {config.data.name!r} has no labels")
    self.num_classes = int(data.num_classes) if conditional else 0
    self.image_shape = tuple(data.image_shape)
    self.z_dim = int(config.model.z_dim)
    self.generator, self.discriminator = models.build(config.model, self.image_shape, self.num_classes)
    loss_cfg = config.loss.to_dict()
    self.aux_weight = float(loss_cfg.pop("aux_weight", 1.0))
    self.objective = objectives.get_objective(loss_cfg.pop("name"), **loss_cfg)
    t = config.train
    self.d_steps, self.g_steps = int(t.get("d_steps", 1)), int(t.get("g_steps", 1))
    if self.d_steps < 1 or self.g_steps < 1:
      raise ValueError(f"train.d_steps and train.g_steps must be >= 1; got {self.d_steps}, {self.g_steps}")
    self.warmup = _d_steps_warmup(t)
    self.instance_noise = augment.instance_noise(config)   # None when off
    self.augment = augment.augmentation(config)            # DiffAugment / ADA; None when off
    if self.augment:
      self.augment.check(self.image_shape)
    self.g_batch_size = _g_batch_size(t, self.batch_size, self.grad_accum)
    self.reuse_fakes = bool(t.get("reuse_fakes", False))
    if self.reuse_fakes and (self.g_steps != 1 or self.g_batch_size != self.batch_size or self.grad_accum != 1):
      raise ValueError("train.reuse_fakes=True reuses D's last batch of fakes for one G update: it needs "
                       f"train.g_steps=1 (got {self.g_steps}), train.g_batch_size unset or = data.batch_size "
                       f"(got {self.g_batch_size} for {self.batch_size}) and train.grad_accum=1 (got {self.grad_accum})")
    penalties = build_penalties(config.get("penalties", ml_collections.ConfigDict()))
    self.penalties = [p for p in penalties if p[2] == 1]
    self.lazy_penalties = [p for p in penalties if p[2] > 1]
    intervals = {p[2] for p in self.lazy_penalties}
    if len(intervals) > 1:
      raise ValueError(f"lazy penalties must share one interval; config.penalties has every={sorted(intervals)}")
    self.reg_every = intervals.pop() if intervals else 0
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'gan' family trains networks 'g' and 'd'")
    num_steps = int(t.num_steps)
    ratio = self.reg_every / (self.reg_every + 1.0) if self.reg_every else 1.0
    self.nets = {
        "g": nets_lib.build_spec(self.generator, config.nets.g, num_steps, self.g_steps),
        "d": nets_lib.build_spec(self.discriminator, config.nets.d, num_steps, lazy_ratio=ratio,
                                 updates_until=self.d_updates_until),
    }
    adaptive = bool(self.augment and self.augment.adaptive)
    phases = [step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, repeats=self.d_steps, stream="real",
                             key=D_KEY, after=self._ada_accumulate if adaptive else None,
                             prepare_once=self.reuse_fakes, prepare_extras=self.reuse_fakes)]
    if self.reg_every:
      phases.append(step_lib.Phase("d_reg", ("d",), self._d_reg_loss, self._d_prepare, every=self.reg_every,
                                   scale=float(self.reg_every), stream="real", key=D_REG_KEY))
    phases.append(step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, repeats=self.g_steps, key=G_KEY,
                                 after=self._ada_adjust if adaptive else None))
    self.phases = tuple(phases)
    # The same phases with the warm-up's n_critic (built once: plans compare equal step to step).
    self._warm_phases = (phases[0]._replace(repeats=self.warmup[1]), *phases[1:]) if self.warmup else self.phases

  # -- the n_critic schedule -------------------------------------------------------------------
  def d_steps_at(self, step: int) -> int:
    """D updates of the `d` phase at `step` (completed steps): train.d_steps, or the warm-up's."""
    if self.warmup:
      first, d_steps, every = self.warmup
      if step < first or (every and step % every == 0):
        return d_steps
    return self.d_steps

  def d_updates_until(self, steps: int) -> int:
    """D's optimizer updates in the first `steps` steps: the `d` phase's repeats plus the lazy
    regularizer's updates (steps 0, k, 2k, ... < steps), counted exactly."""
    steps = int(steps)
    n = steps * self.d_steps
    if self.warmup:
      first, d_steps, every = self.warmup
      boosted = min(first, steps)
      if every and steps > first:   # multiples of `every` in [first, steps)
        boosted += (steps - 1) // every - (first - 1) // every
      n += boosted * (d_steps - self.d_steps)
    if self.reg_every:
      n += -(-steps // self.reg_every)
    return n

  def plan(self, step: int) -> step_lib.StepPlan:
    """The phases due at `step`, the `d` phase with `d_steps_at(step)` repeats."""
    phases = self._warm_phases if self.d_steps_at(step) != self.d_steps else self.phases
    return step_lib.plan_for_step(phases, int(step))

  # -- latents and state -----------------------------------------------------------------------
  def sample_latents(self, rng: jax.Array, n: int) -> tuple[jax.Array, jax.Array | None]:
    """z ~ N(0, I) of shape [n, z_dim], and uniform labels when the GAN is conditional."""
    rng_z, rng_y = jax.random.split(rng)
    z = jax.random.normal(rng_z, (n, self.z_dim), jnp.float32)
    y = jax.random.randint(rng_y, (n,), 0, self.num_classes) if self.num_classes else None
    return z, y

  def init(self, rng: jax.Array) -> TrainState:
    """Initial state: params, optimizer states, SN vectors, batch stats, EMA copy, base key."""
    rng_run, rng_g, rng_d, rng_gsn, rng_dsn, rng_drop = jax.random.split(rng, 6)
    z, y = self.sample_latents(rng_run, 2)
    g_vars = self.generator.init({"params": rng_g, "dropout": rng_drop}, z, y, train=False)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    d_vars = self.discriminator.init({"params": rng_d, "dropout": rng_drop}, x, y, train=False)
    if d_vars.get("batch_stats") and (self.penalties or self.lazy_penalties):
      raise ValueError(f"model {self.config.model.name!r} has BatchNorm in D, which couples the examples that a "
                       "gradient penalty differentiates one by one: remove config.penalties or use a D without "
                       "BatchNorm (layer norm, spectral norm or none)")
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_gsn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_dsn)}
    extras = self.augment.init_extras() if self.augment else {}
    if self.reuse_fakes:   # overwritten by every D update before the G update reads them
      z, y = self.sample_latents(rng_run, self.batch_size)
      extras.update(reuse_z=jnp.zeros_like(z), reuse_rng=jnp.zeros_like(rng_run))
      if y is not None:
        extras["reuse_y"] = jnp.zeros_like(y)
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras=extras)

  # -- phases ----------------------------------------------------------------------------------
  def _real(self, data):
    return data["image"], (data.get("label") if self.num_classes else None)

  def _d_prepare(self, ctx: step_lib.Context, data, key):
    real, real_y = self._real(data)
    rng_lat, rng_pen, rng_drop, rng_g = jax.random.split(key, 4)
    z, fake_y = self.sample_latents(rng_lat, real.shape[0])
    fake = jax.lax.stop_gradient(ctx.apply("g", ctx.shard(z), fake_y, train=True, rng=rng_g))
    if self.instance_noise:   # D and the penalties see the noisy images (ganzoo.augment)
      noise = self.instance_noise.noise
      real = real + ctx.shard(noise(jax.random.fold_in(key, augment.REAL_NOISE_KEY), ctx.step, real.shape))
      fake = fake + ctx.shard(noise(jax.random.fold_in(key, augment.FAKE_NOISE_KEY), ctx.step, fake.shape))
    if self.augment:   # D and the penalties see the augmented images (ganzoo.augment)
      real = ctx.shard(self.augment(real, jax.random.fold_in(key, augment.AUG_REAL_KEY), ctx.extras))
      fake = ctx.shard(self.augment(fake, jax.random.fold_in(key, augment.AUG_FAKE_KEY), ctx.extras))
    drop_real, drop_fake = jax.random.split(rng_drop)
    inputs = {"real": real, "real_y": real_y, "fake": fake, "fake_y": fake_y}
    keys = {"rng_penalty": rng_pen, "drop_real": drop_real, "drop_fake": drop_fake}
    if not self.reuse_fakes:
      return inputs, keys
    kept = {"reuse_z": z, "reuse_rng": rng_g, **({"reuse_y": fake_y} if fake_y is not None else {})}
    return inputs, keys, {**ctx.extras, **kept}

  def _penalty_terms(self, ctx, penalties, inp, metrics):
    """sum of weight * penalty, each evaluated with the labels of the images it penalizes."""
    total = 0.0
    for name, weight, _, fn in penalties:
      labels = inp["fake_y"] if regularizers.PENALTY_INPUTS[name] == "fake" else inp["real_y"]

      def d_fn(x, labels=labels):
        return split_d_output(ctx.apply("d", x, labels, train=True, rng=inp["drop_real"], update_stats=False))[0]

      value = fn(d_fn, inp["real"], inp["fake"], inp["rng_penalty"])
      metrics["penalty" if len(penalties) == 1 else f"penalty_{name}"] = value
      total = total + weight * value
    return total

  def _d_loss(self, ctx: step_lib.Context, inp):
    real_logits, real_cls = split_d_output(ctx.apply("d", inp["real"], inp["real_y"], rng=inp["drop_real"]))
    fake_logits, fake_cls = split_d_output(ctx.apply("d", inp["fake"], inp["fake_y"], rng=inp["drop_fake"]))
    loss = self.objective.d_loss(real_logits, fake_logits)
    metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
    if self.augment and self.augment.adaptive:   # ADA's r_t statistic and p (not counted in the 3 below)
      metrics["ada_sign"] = jnp.mean(jnp.sign(real_logits))
      metrics["ada_p"] = ctx.extras["ada_p"]
    if real_cls is not None:
      aux = aux_classifier_loss(real_cls, inp["real_y"]) + aux_classifier_loss(fake_cls, inp["fake_y"])
      metrics["d_aux"] = aux
      loss = loss + self.aux_weight * aux
    if self.penalties:
      loss = loss + self._penalty_terms(ctx, self.penalties, inp, metrics)
    if len(metrics) - 2 * bool(self.augment and self.augment.adaptive) > 3:
      metrics["d_total"] = loss  # the loss with the penalty / auxiliary terms
    return loss, metrics

  def _d_reg_loss(self, ctx, inp):
    metrics = {}
    loss = self._penalty_terms(ctx, self.lazy_penalties, inp, metrics)
    return loss, {f"reg_{k}": v for k, v in metrics.items()}

  def _g_prepare(self, ctx, data, key):
    del data
    rng_lat, rng_drop = jax.random.split(key)
    # This micro-batch's latents: ctx.batch_size is data.batch_size / grad_accum (or the whole
    # batch), and G draws train.g_batch_size per update (divisible by devices x grad_accum).
    z, y = self.sample_latents(rng_lat, self.g_batch_size * ctx.batch_size // self.batch_size)
    drop_g, drop_d = jax.random.split(rng_drop)
    if self.reuse_fakes:   # D's last update's latents and G dropout key: its fakes (see the docstring)
      z, y, drop_g = ctx.extras["reuse_z"], ctx.extras.get("reuse_y"), ctx.extras["reuse_rng"]
    inputs = {"z": z, "y": y}
    if self.instance_noise:   # G's fakes reach D with noise too
      inputs["noise"] = ctx.shard(self.instance_noise.noise(jax.random.fold_in(key, augment.FAKE_NOISE_KEY), ctx.step,
                                                            (z.shape[0], *self.image_shape)))
    keys = {"drop_g": drop_g, "drop_d": drop_d}
    if self.augment:   # G's fakes are augmented inside its loss (differentiated through)
      keys["aug"] = jax.random.fold_in(key, augment.AUG_FAKE_KEY)
    return inputs, keys

  def _g_loss(self, ctx, inp):
    fake = ctx.apply("g", inp["z"], inp["y"], rng=inp["drop_g"])
    if "noise" in inp:
      fake = fake + inp["noise"]
    if self.augment:
      fake = self.augment(fake, inp["aug"], ctx.extras)
    fake_logits, fake_cls = split_d_output(ctx.apply("d", fake, inp["y"], rng=inp["drop_d"]))
    loss = self.objective.g_loss(fake_logits, None)
    metrics = {"g_loss": loss}
    if fake_cls is not None:
      aux = aux_classifier_loss(fake_cls, inp["y"])
      metrics["g_aux"] = aux
      loss = loss + self.aux_weight * aux
    return loss, metrics

  # ADA's adaptive p (ganzoo.augment.Augment): statistics from each D update, the adjustment after G's.
  def _ada_accumulate(self, extras, metrics, step):
    del step
    return self.augment.accumulate(extras, metrics["ada_sign"], self.batch_size)

  def _ada_adjust(self, extras, metrics, step):
    del metrics
    return self.augment.adjust(extras, step, self.batch_size)

  # -- inference -------------------------------------------------------------------------------
  @property
  def latent_dim(self) -> int:
    return self.z_dim

  def generate(self, state: TrainState, z: jax.Array, y: jax.Array | None = None, use_ema: bool = True) -> jax.Array:
    """G(z, y) in inference mode (running BN statistics), from the EMA params and EMA statistics
    when G has an EMA and `use_ema`."""
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"], use_ema)
    images, _ = nets_lib.forward(spec, params, batch_stats, z, y, train=False)
    return images

  def discriminate(self, state: TrainState, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
    """D's logits [N] in inference mode, with D's spectral normalization (stored vectors)."""
    spec = self.nets["d"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["d"], use_ema=False)
    out, _ = nets_lib.forward(spec, params, batch_stats, x, y, train=False)
    return split_d_output(out)[0]

  def sample(self, state, rng, n, condition=None):
    z, y = self.sample_latents(rng, n)
    if condition is not None:
      y = jnp.asarray(condition, jnp.int32)
    return self.generate(state, z, y)

  def fixed_inputs(self, seed: int, n: int):
    """The fixed latent batch of the sample grids (classes in order for conditional GANs)."""
    z, _ = self.sample_latents(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), n)
    y = (jnp.arange(n) % self.num_classes).astype(jnp.int32) if self.num_classes else None
    return z, y

  def sample_fixed(self, state, inputs, n):
    z, y = inputs
    return self.generate(state, z, y)

  # -- export ----------------------------------------------------------------------------------
  def generator_spec(self) -> methods.GeneratorSpec:
    """G, rebuilt from the model section alone (`models.build` needs nothing else)."""
    model = json.loads(self.config.model.to_json_best_effort())
    return methods.GeneratorSpec(net="g", config={"model": model}, latent_dim=self.z_dim,
                                 num_classes=self.num_classes, image_shape=self.image_shape)

  @classmethod
  def build_generator(cls, config, data):
    return models.build(ml_collections.ConfigDict(config["model"]), tuple(data.image_shape), data.num_classes)[0]

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.model.name = "dcgan"
    c.data.batch_size = 16
    for net in ("g", "d"):   # a schedule over num_steps: a resume must not re-slope it
      c.nets[net].optim.decay = "linear"
    return c, methods.DataSpec((28, 28, 1), 10)

