"""The `progan` family: progressive growing (Karras et al. 2018, arXiv:1710.10196), trained as
tkarras/progressive_growing_of_gans train.py (train_progressive_gan, TrainingSchedule,
process_reals) and loss.py (G_wgan_acgan, D_wgangp_acgan) do. Networks: ganzoo/models/progan.py.

Schedule (TrainingSchedule), in images shown (`nimg`; kimg * 1000, rounded to whole images): the
networks start at `lod_initial_resolution` (4), show `lod_training_kimg` thousand real images per
resolution, then fade the next resolution in over `lod_transition_kimg`; the reference's level of
detail lod = log2(R) - log2(current resolution), fractional during a fade. The schedule is read
every `minibatch_repeats` (4) steps from the images shown so far and held for those steps.
A *stage* is a stretch of steps with one (floor(lod), ceil(lod)): a stable resolution or a fade.
Each stage is one plan (`StepPlan.tag` = the `Stage`), so one compiled step per stage, with its
batch size (`loss.batch_sizes`, resolution-specific overrides of `data.batch_size`, the
reference's minibatch_dict) and learning-rate factor (`loss.lrates`, G_lrate_dict / D_lrate_dict,
relative to `nets.<g|d>.optim.lr`). The stage of a step follows from the step count alone (the
batch sizes of the stages before it), so the plan is a pure function of the step.

State: `state.extras` = {'lod': the lod the last step trained at, 'nimg': images shown}; the d
phase of a step sets lod from nimg when step % minibatch_repeats == 0 (else keeps it) and adds the
batch to nimg, so a resumed run continues with the same lod, mid-fade included. The networks'
fade weight is alpha = 1 - (lod - floor(lod)) on the new block (G and D blend as networks.py).

Phases per step (train.py's loop with D_repeats = 1): d, then g.
  d  WGAN-GP + drift (D_wgangp_acgan, unconditional): mean over the batch of
     D(G(z)) - D(x) + lambda / target^2 (||grad D(x_hat)|| - target)^2 + eps_drift D(x)^2,
     x_hat = lerp(x, G(z), u), u ~ U[0, 1] per example, lambda 10, target 1 (CIFAR-10: 750, the
     paper's Sec. 6.4), eps_drift 0.001.
  g  -mean D(G(z)).
Reals (process_reals): the data come at the full resolution R; the step box-filters them (2x2
average pooling, repeated) to the stage's resolution, as the reference's multi-resolution
dataset holds them, and during a fade blends them with their 2x2-pooled-and-up-sampled version by
lod - floor(lod) (FadeLOD); `loss.mirror_augment` flips a random half of them horizontally first.

Decisions (where the reference and this code differ, and why):
- The networks run at the stage's resolution (the reference's 'recursive' structure computes the
  same outputs and feeds them up-sampled to full resolution). The one place where the full
  resolution shows is the gradient penalty: the reference differentiates D w.r.t. the nearest-
  up-sampled full-resolution image, whose gradient norm is that w.r.t. the stage's image divided
  by 2^(log2 R - log2 r); the penalty here uses that norm, so its value is the reference's.
- The reference's lower-resolution data sets round every level to uint8 (dataset_tool.py); here
  the pooling is in float, from the full-resolution pixels.
- Adam's state is reset at the first step of every stage (reset_opt_for_new_lod = True: when
  floor(lod) or ceil(lod) changes), moments and bias correction alike (TF's Adam variables
  include its beta powers). The optimizer wraps Adam with its own update counter (each network
  updates once per step, so the counter is the step): a reset is part of the stage's compiled step,
  not a host-side state change, so a resume needs nothing extra.
- G's EMA (Gs, beta `nets.g.ema.decay` = 0.999, never reset) is updated after G's update of the
  step; the reference's Gs_update_op runs beside D's update, i.e. from G before the step's G update
  (an EMA one G update behind ours).
- `train.grad_accum` > 1 is refused (the per-stage batch sizes would need their own split).

Config (`config.loss`): name 'progan', wgan_lambda, wgan_epsilon, wgan_target,
lod_initial_resolution, lod_training_kimg, lod_transition_kimg, minibatch_repeats,
reset_opt_for_new_lod, mirror_augment, batch_sizes ('res:batch,...'), lrates ('res:lr,...').
`config.model`: size (ganzoo.models.progan.PRESETS) and optional overrides fmap_base, fmap_max,
z_dim (latent size), mbstd_group, use_pixelnorm, normalize_latents, use_leakyrelu.
"""

import json
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import regularizers
from ganzoo import step as step_lib
from ganzoo.models import layers
from ganzoo.models import progan as pg
from ganzoo.state import TrainState

D_KEY, G_KEY = 0, 1


# ---------------------------------------------------------------------------------------------
# The schedule (host side, pure functions of the config and the step count).

class Schedule(NamedTuple):
  """TrainingSchedule's settings in images."""
  num_levels: int        # levels 0 .. num_levels - 1: resolutions 4 .. R
  initial_level: int     # level of lod_initial_resolution
  training_nimg: int
  transition_nimg: int
  base_batch: int
  batch_sizes: tuple[tuple[int, int], ...] = ()   # (resolution, batch) overrides
  lrates: tuple[tuple[int, float], ...] = ()      # (resolution, lr factor) overrides
  repeats: int = 4       # minibatch_repeats

  def batch(self, level: int) -> int:
    return dict(self.batch_sizes).get(4 * 2 ** level, self.base_batch)

  def lr_factor(self, level: int) -> float:
    return dict(self.lrates).get(4 * 2 ** level, 1.0)


class Stage(NamedTuple):
  """One stable resolution or one fade: steps [start_step, end_step) (end None: to the end of training)."""
  index: int
  level: int             # the networks' resolution is 4 * 2^level
  fading: bool           # fading level in from level - 1
  batch: int
  start_step: int
  start_nimg: int
  end_step: int | None

  @property
  def resolution(self) -> int:
    return 4 * 2 ** self.level


def reference_lod(s: Schedule, nimg: int) -> float:
  """lod at `nimg` images shown, as TrainingSchedule computes it (in images instead of kimg)."""
  dur = s.training_nimg + s.transition_nimg
  phase = nimg // dur if dur > 0 else 0
  phase_nimg = nimg - phase * dur
  lod = float(s.num_levels - 1 - s.initial_level - phase)
  if s.transition_nimg > 0:
    lod -= max(phase_nimg - s.training_nimg, 0) / s.transition_nimg
  return max(lod, 0.0)


def _stage_key(s: Schedule, nimg: int) -> tuple[int, int]:
  lod = reference_lod(s, nimg)
  return int(math.floor(lod)), int(math.ceil(lod))


def stages(s: Schedule) -> list[Stage]:
  """Every stage of the schedule, the last one (fully grown) open-ended.

  The schedule is evaluated at the first step of each group of `repeats` steps, from the images
  shown before it; within a stage the batch is constant, so the groups a stage lasts are counted
  in closed form: a stable stage lasts while nimg <= its fade's start (lod still integral there),
  a fade while nimg < its end."""
  out: list[Stage] = []
  step, nimg = 0, 0
  top = s.num_levels - 1
  dur = s.training_nimg + s.transition_nimg
  while True:
    floor_lod, ceil_lod = _stage_key(s, nimg)
    fading = floor_lod != ceil_lod
    level = top - floor_lod
    batch = s.batch(level)
    group = s.repeats * batch
    if not fading and level == top or dur == 0:   # fully grown (or not growing): the last stage
      out.append(Stage(len(out), level, False, batch, step, nimg, None))
      return out
    phase = nimg // dur
    if fading:
      bound = (phase + 1) * dur                      # the fade lasts while nimg < bound
      groups = -(-(bound - nimg) // group)
    elif s.transition_nimg > 0:
      bound = phase * dur + s.training_nimg          # stable while nimg <= bound (lod still integral there)
      groups = (bound - nimg) // group + 1
    else:                                            # no fades: the next level from (phase + 1) * dur on
      bound = (phase + 1) * dur
      groups = -(-(bound - nimg) // group)
    end = step + groups * s.repeats
    out.append(Stage(len(out), level, fading, batch, step, nimg, end))
    step, nimg = end, nimg + groups * group


def stage_at(stage_list: list[Stage], step: int) -> Stage:
  for st in stage_list:
    if st.end_step is None or step < st.end_step:
      return st
  raise AssertionError("the last stage is open-ended")


def steps_for_kimg(s: Schedule, kimg: float) -> int:
  """Train steps until `kimg` thousand images are shown (the reference's total_kimg), whole groups."""
  target = int(round(kimg * 1000))
  step, nimg = 0, 0
  for st in stages(s):
    per_group = s.repeats * st.batch
    if st.end_step is not None:
      end_nimg = nimg + (st.end_step - st.start_step) // s.repeats * per_group
      if end_nimg < target:
        step, nimg = st.end_step, end_nimg
        continue
    return step + -(-(target - nimg) // per_group) * s.repeats
  raise AssertionError("unreachable")


def _parse_pairs(text: str, field: str, kind) -> tuple:
  """'4:128,8:64' -> ((4, 128), (8, 64)), with a one-line error naming the field."""
  out = []
  for item in (text or "").replace(" ", "").split(","):
    if not item:
      continue
    try:
      res, value = item.split(":")
      res, value = int(res), kind(value)
    except ValueError:
      raise ValueError(f"config.loss.{field}={text!r}: write 'resolution:value' pairs separated by commas, "
                       f"e.g. '256:14,512:6'") from None
    if res < 4 or res & (res - 1) or not value > 0:
      raise ValueError(f"config.loss.{field}: {item!r} needs a power-of-two resolution >= 4 and a value > 0")
    out.append((res, value))
  return tuple(out)


def schedule_from_config(config: ml_collections.ConfigDict, resolution: int) -> Schedule:
  """The `Schedule` of `config.loss` for full resolution `resolution`."""
  loss = config.loss
  initial = int(loss.get("lod_initial_resolution", 4))
  if initial < 4 or initial & (initial - 1) or initial > resolution:
    raise ValueError(f"config.loss.lod_initial_resolution={initial} must be a power of two in [4, {resolution}]")
  training, transition = (int(round(float(loss.get(k, 600.0)) * 1000)) for k in ("lod_training_kimg",
                                                                                  "lod_transition_kimg"))
  if training < 0 or transition < 0:
    raise ValueError("config.loss.lod_training_kimg and lod_transition_kimg must be >= 0")
  repeats = int(loss.get("minibatch_repeats", 4))
  if repeats < 1:
    raise ValueError(f"config.loss.minibatch_repeats={repeats} must be >= 1")
  lr = float(config.nets.g.optim.lr)
  lrates = tuple((r, v / lr) for r, v in _parse_pairs(loss.get("lrates", ""), "lrates", float))
  if lrates and float(config.nets.d.optim.lr) != lr:
    raise ValueError("config.loss.lrates scales G's and D's lr alike: set nets.g.optim.lr == nets.d.optim.lr")
  return Schedule(num_levels=pg.level_of(resolution) + 1, initial_level=pg.level_of(initial),
                  training_nimg=training, transition_nimg=transition, base_batch=int(config.data.batch_size),
                  batch_sizes=_parse_pairs(loss.get("batch_sizes", ""), "batch_sizes", int), lrates=lrates,
                  repeats=repeats)


# ---------------------------------------------------------------------------------------------
# Optimizer: Adam reset at each stage's first step, lr factor per stage.

class StagedState(NamedTuple):
  count: jax.Array       # this network's updates so far (= completed steps: one update per step)
  inner: Any


def staged_optimizer(tx: optax.GradientTransformation, starts: tuple[int, ...], factors: tuple[float, ...],
                     reset: bool) -> optax.GradientTransformation:
  """`tx` whose state is re-initialized at update counts `starts[1:]` (reset_optimizer_state) when
  `reset`, and whose updates are scaled by `factors[i]` during stage i (Adam's update is linear in
  its lr, so this is the stage's learning rate)."""
  starts_arr = np.asarray(starts, np.int32)
  scaled = any(f != 1.0 for f in factors)

  def init(params):
    return StagedState(jnp.zeros((), jnp.int32), tx.init(params))

  def update(updates, state, params=None):
    inner = state.inner
    if reset and len(starts) > 1:
      at_start = jnp.any(state.count == jnp.asarray(starts_arr[1:]))
      inner = jax.tree.map(lambda f, s: jnp.where(at_start, f, s), tx.init(updates), inner)
    updates, inner = tx.update(updates, inner, params)
    if scaled:
      idx = jnp.searchsorted(jnp.asarray(starts_arr), state.count, side="right") - 1
      factor = jnp.asarray(factors, jnp.float32)[idx]
      updates = jax.tree.map(lambda u: u * factor.astype(u.dtype), updates)
    return updates, StagedState(state.count + 1, inner)

  return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------------------------------------
# Reals and losses (pure functions).

def downscale(x: jax.Array, times: int) -> jax.Array:
  """2x2 box filter `times` times ([N, R, R, C] -> [N, R / 2^times, ...])."""
  for _ in range(times):
    x = layers.avg_pool2(x)
  return x


def fade_reals(x: jax.Array, t: jax.Array) -> jax.Array:
  """FadeLOD: lerp(x, up(pool(x)), t), t = lod - floor(lod)."""
  return pg.lerp(x, layers.upsample_nearest(layers.avg_pool2(x)), t.astype(x.dtype))


def mirror(x: jax.Array, key: jax.Array) -> jax.Array:
  """MirrorAugment: each image flipped left-right with probability 1/2."""
  flip = jax.random.uniform(key, (x.shape[0], 1, 1, 1)) < 0.5
  return jnp.where(flip, x[:, :, ::-1], x)


def lod_at(nimg: jax.Array, s: Schedule) -> jax.Array:
  """`reference_lod` on the device (float32), from int32 images shown."""
  dur = s.training_nimg + s.transition_nimg
  phase = nimg // dur if dur > 0 else jnp.zeros_like(nimg)
  lod = (s.num_levels - 1 - s.initial_level - phase).astype(jnp.float32)
  if s.transition_nimg > 0:
    over = jnp.maximum(nimg - phase * dur - s.training_nimg, 0).astype(jnp.float32)
    lod = lod - over / s.transition_nimg
  return jnp.maximum(lod, 0.0)


def drift_penalty(real_scores: jax.Array) -> jax.Array:
  """D(x)^2 per example (EpsilonPenalty), weighted by eps_drift (0.001) in the D loss."""
  return jnp.square(real_scores)


def gp_from_norms(norms: jax.Array, target: float) -> jax.Array:
  """(||grad|| - target)^2 / target^2 per example (GradientPenalty; times lambda in the D loss)."""
  return jnp.square(norms - target) / target ** 2


def d_loss_terms(real_scores, fake_scores, norms, wgan_lambda, wgan_epsilon, wgan_target):
  """Per-example D_wgangp_acgan (unconditional): fake - real + lambda GP + eps drift."""
  return (fake_scores - real_scores + wgan_lambda * gp_from_norms(norms, wgan_target)
          + wgan_epsilon * drift_penalty(real_scores))


# ---------------------------------------------------------------------------------------------

@methods.register("progan")
class ProGAN(methods.Method):
  """ProGAN: networks 'g' and 'd'; `state.extras` = {'lod', 'nimg'}."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    augment.refuse_instance_noise(config, "progan")   # the reference trains D on clean images
    loss = config.loss
    if loss.get("name", "progan") != "progan":
      raise ValueError(f"the 'progan' family has its own objective: set config.loss.name='progan' (got {loss.name!r})")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'progan' family trains networks 'g' and 'd'")
    if self.grad_accum != 1:
      raise ValueError("the 'progan' family does not split its per-resolution batches: set config.train.grad_accum=1")
    if data.num_classes and config.model.get("conditional", False):
      raise ValueError("a class-conditional ProGAN (the reference's AC-GAN terms) is not built: set config.model.conditional=False")
    self.image_shape = tuple(data.image_shape)
    self.generator, self.discriminator = pg.build(config.model, self.image_shape)
    self.z_dim = self.generator.latent_size
    self.top = self.generator.num_levels - 1
    self.wgan_lambda = float(loss.get("wgan_lambda", 10.0))
    self.wgan_epsilon = float(loss.get("wgan_epsilon", 0.001))
    self.wgan_target = float(loss.get("wgan_target", 1.0))
    self.mirror_augment = bool(loss.get("mirror_augment", False))
    self.reset_opt = bool(loss.get("reset_opt_for_new_lod", True))
    self.schedule = schedule_from_config(config, self.image_shape[0])
    num_steps = int(config.train.num_steps)
    self.stages = stages(self.schedule)
    starts = tuple(st.start_step for st in self.stages)
    factors = tuple(self.schedule.lr_factor(st.level) for st in self.stages)
    self.nets = {}
    for name, module in (("g", self.generator), ("d", self.discriminator)):
      spec = nets_lib.build_spec(module, config.nets[name], num_steps)
      self.nets[name] = spec._replace(tx=staged_optimizer(spec.tx, starts, factors, self.reset_opt))
    self._plans: dict[int, step_lib.StepPlan] = {}
    self.phases = self.plan(0).phases

  # -- plans -----------------------------------------------------------------------------------
  def stage(self, step: int) -> Stage:
    return stage_at(self.stages, int(step))

  def plan(self, step: int) -> step_lib.StepPlan:
    st = self.stage(step)
    plan = self._plans.get(st.index)
    if plan is None:
      d = step_lib.Phase("d", ("d",), lambda ctx, inp, st=st: self._d_loss(ctx, inp, st),
                         lambda ctx, data, key, st=st: self._d_prepare(ctx, data, key, st),
                         stream="real", key=D_KEY, prepare_once=True, prepare_extras=True)
      g = step_lib.Phase("g", ("g",), lambda ctx, inp, st=st: self._g_loss(ctx, inp, st),
                         lambda ctx, data, key, st=st: self._g_prepare(ctx, data, key, st),
                         key=G_KEY, prepare_once=True)
      plan = self._plans[st.index] = step_lib.StepPlan((d, g), st)
    return plan

  def streams(self, plan: step_lib.StepPlan) -> dict[str, methods.StreamSpec]:
    return {"real": methods.StreamSpec(plan.tag.batch, 1)}

  # -- state ----------------------------------------------------------------------------------
  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_gsn, rng_dsn = jax.random.split(rng, 5)
    # Through the paths that touch every level's ToRGB / FromRGB (a stage's forward uses two at most).
    g_vars = self.generator.init({"params": rng_g}, jnp.zeros((2, self.z_dim), jnp.float32), 0.0,
                                 method="generate_full")
    d_vars = self.discriminator.init({"params": rng_d}, jnp.zeros((2, *self.image_shape), jnp.float32),
                                     method="every_level")
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_gsn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_dsn)}
    extras = {"lod": jnp.asarray(reference_lod(self.schedule, 0), jnp.float32), "nimg": jnp.zeros((), jnp.int32)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras=extras)

  # -- phases ----------------------------------------------------------------------------------
  def _blend(self, lod: jax.Array, st: Stage) -> jax.Array | float:
    """alpha, the weight of the stage's new block: 1 - (lod - floor(lod)); 1.0 (static) when stable."""
    return 1.0 - (lod - (self.top - st.level)) if st.fading else 1.0

  def _d_prepare(self, ctx, data, key, st: Stage):
    extras = ctx.extras
    lod_now = lod_at(extras["nimg"], self.schedule).astype(extras["lod"].dtype)
    lod = jnp.where(ctx.step % self.schedule.repeats == 0, lod_now, extras["lod"])
    new_extras = {**extras, "lod": lod, "nimg": extras["nimg"] + st.batch}
    k_z, k_u, k_mirror = jax.random.split(key, 3)
    real = data["image"]
    if self.mirror_augment:
      real = mirror(real, k_mirror)
    real = downscale(real, self.top - st.level)
    if st.fading:
      real = fade_reals(real, lod - (self.top - st.level))
    z = ctx.shard(jax.random.normal(k_z, (real.shape[0], self.z_dim), jnp.float32))
    fake = jax.lax.stop_gradient(ctx.apply("g", z, level=st.level, alpha=self._blend(lod, st)))
    u = ctx.shard(jax.random.uniform(k_u, (real.shape[0], 1, 1, 1), jnp.float32))
    return {"real": ctx.shard(real), "fake": fake, "u": u}, {}, new_extras

  def _d_loss(self, ctx, inp, st: Stage):
    alpha = self._blend(ctx.extras["lod"], st)
    d = lambda x: ctx.apply("d", x, level=st.level, alpha=alpha)
    dtype = jnp.result_type(inp["real"], inp["fake"])
    real, fake = inp["real"].astype(dtype), inp["fake"].astype(dtype)
    real_scores, fake_scores = d(real), d(fake)
    mixed = pg.lerp(real, fake, inp["u"].astype(real.dtype))
    grads = regularizers.input_gradients(d, mixed)
    # The reference's gradient is w.r.t. the nearest-up-sampled full-resolution image: norm / 2^(top - level).
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=(1, 2, 3))) / 2.0 ** (self.top - st.level)
    per_example = d_loss_terms(real_scores, fake_scores, norms, self.wgan_lambda, self.wgan_epsilon, self.wgan_target)
    loss = jnp.mean(per_example)
    return loss, {"d_loss": loss, "d_real": jnp.mean(real_scores), "d_fake": jnp.mean(fake_scores),
                  "gp": jnp.mean(gp_from_norms(norms, self.wgan_target)), "drift": jnp.mean(drift_penalty(real_scores)),
                  "lod": ctx.extras["lod"], "kimg": ctx.extras["nimg"].astype(ctx.extras["lod"].dtype) / 1000.0}

  def _g_prepare(self, ctx, data, key, st: Stage):
    del data
    return {"z": ctx.shard(jax.random.normal(key, (st.batch, self.z_dim), jnp.float32))}, {}

  def _g_loss(self, ctx, inp, st: Stage):
    alpha = self._blend(ctx.extras["lod"], st)
    fake = ctx.apply("g", inp["z"], level=st.level, alpha=alpha)
    loss = -jnp.mean(ctx.apply("d", fake, level=st.level, alpha=alpha))
    return loss, {"g_loss": loss}

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, z: jax.Array, use_ema: bool = True) -> jax.Array:
    """Gs(z) at the state's lod, at the full resolution (lower levels up-sampled), clipped to [-1, 1]."""
    spec = self.nets["g"]
    params, bs = nets_lib.inference_variables(spec, state.nets["g"], use_ema)
    lod = state.extras["lod"].astype(jnp.float32)
    img, _ = nets_lib.forward(spec, params, bs, z, lod, train=False, method="generate_full")
    return jnp.clip(img, -1.0, 1.0)

  def sample(self, state, rng, n, condition=None):
    del condition
    return self.generate(state, jax.random.normal(rng, (n, self.z_dim), jnp.float32))

  def fixed_inputs(self, seed: int, n: int):
    return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), (n, self.z_dim), jnp.float32)

  def sample_fixed(self, state, inputs, n):
    return self.generate(state, inputs)

  def generator_spec(self) -> methods.GeneratorSpec:
    """G fully grown (lod 0), rebuilt from the model section alone."""
    model = json.loads(self.config.model.to_json_best_effort())
    return methods.GeneratorSpec(net="g", config={"model": model}, latent_dim=self.z_dim, num_classes=0,
                                 image_shape=self.image_shape)

  @classmethod
  def build_generator(cls, config, data):
    return pg.build(ml_collections.ConfigDict(config["model"]), tuple(data.image_shape))[0]

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    apply_preset(c, "tiny")
    config_lib.tiny(c)
    # 8x8 (levels 4 and 8). Step 0 at 4x4 with batch 16 (16 images > the 8 of lod_training), steps 1-2
    # fade 8x8 in at batch 8 (lod 2/3 and 1/3 after 16 and 24 images), step 3 stable at 8x8 (32 images):
    # the tests' two steps cross a stage change into a fade, their resume at step 2 lands mid-fade and
    # step 3 is a second stage change. The schedule is read every step (minibatch_repeats 1).
    c.data.image_size = 8
    c.data.batch_size = 16
    c.loss.update(dict(lod_training_kimg=0.008, lod_transition_kimg=0.024, minibatch_repeats=1, batch_sizes="8:8",
                       mirror_augment=True))
    c.nets.g.ema.decay = 0.9
    return c, methods.DataSpec((8, 8, 1), 10)


def apply_preset(c: ml_collections.ConfigDict, size: str) -> None:
  """Sets the family, the preset's networks and the reference's training settings on a base config:
  Adam(1e-3, 0, 0.99, eps 1e-8) with equalized LR (gain sqrt(2)) on G and D, EMA of G 0.999,
  WGAN-GP (lambda 10, target 1) + drift 0.001, 600 + 600 kimg per resolution, minibatch_repeats 4
  (train.py's defaults); configs/progan.py sets the presets' own schedules."""
  if size not in pg.PRESETS:
    raise ValueError(f"unknown ProGAN size {size!r}; choose from {sorted(pg.PRESETS)}")
  p = pg.PRESETS[size]
  c.method = "progan"
  c.model = ml_collections.ConfigDict(dict(name="progan", size=size, z_dim=p["latent_size"], conditional=False,
                                           dtype="float32"))
  c.data.image_size = p["resolution"]
  c.data.batch_size = 16
  c.loss = ml_collections.ConfigDict(dict(
      name="progan", wgan_lambda=10.0, wgan_epsilon=0.001, wgan_target=1.0, lod_initial_resolution=4,
      lod_training_kimg=600.0, lod_transition_kimg=600.0, minibatch_repeats=4, reset_opt_for_new_lod=True,
      mirror_augment=False, batch_sizes="", lrates=""))
  for net in ("g", "d"):
    c.nets[net] = nets_lib.net_config(name="adam", lr=0.001, b1=0.0, b2=0.99, eps=1e-8)
    c.nets[net].eqlr.enabled = True
    c.nets[net].eqlr.gain = math.sqrt(2.0)
  c.nets.g.ema.decay = 0.999
