"""The `stylegan` family: StyleGAN v1 (Karras et al. 2019, arXiv:1812.04948), trained as NVlabs/stylegan
train.py, training/loss.py (G_logistic_nonsaturating, D_logistic_simplegp) and
training/training_loop.py do, with the networks' structure='fixed' (ganzoo/models/stylegan.py).

Scope: the reference grows progressively (lod schedule, 600 kimg per phase, minibatch and lr per
resolution, Adam state reset at each new lod). Here every resolution trains from the first step
(structure 'fixed', which the reference's networks offer); growing for StyleGAN v1 is not built yet.
The learning rate and batch are the reference's at the final resolution (train.py's G_lrate_dict
{128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}, else 0.001; minibatch_dict of the 8-GPU setting).

Networks 'g' (mapping + synthesis) and 'd', equalized LR on both (`nets.<g|d>.eqlr`; the mapping
at lr multiplier 0.01), Adam(lr, 0, 0.99, eps 1e-8).

Phases per step, in training_loop.py's order:
  d  softplus(D(G(z))) + softplus(-D(x)) + (r1_gamma / 2) ||grad_x D(x)||^2 (R1, gamma 10), one loss
     and one Adam update (loss.py D_logistic_simplegp: the penalty is part of D's loss every step,
     not a lazy phase as StyleGAN2's).
  g  non-saturating softplus(-D(G(z))).
Both G forwards use style mixing (loss.py calls G with is_training=True; G_style mixes with
probability 0.9: one cutoff in [1, num_layers) per batch, the layers from it on from the mapping of a
second z) and fresh noise. The latents, mixing and the G / D losses' forwards are StyleGAN2's
(`ganzoo.methods.stylegan2`, the same computation), reused from its class.
w_avg (dlatent_avg, truncation's centre, `state.extras['w_avg']`): lerp(mean_batch w, w_avg, 0.995).
The reference updates it in every training G forward (the D and the G loss, twice per iteration);
here once per step from the g phase's latents (StyleGAN2's family does the same), so its time
constant counts steps.
EMA of G (Gs, G_smoothing_kimg 10): beta = 0.5 ** (batch / 10,000) per step. The reference runs
Gs's update with D's train op, i.e. it averages G before this iteration's G update; here the EMA
moves after G's update, so Gs here is one G update ahead of the reference's.
Sampling (`sample`: export, `ganzoo.sample`, evaluation): truncation in W, w_avg + psi (w - w_avg)
on the first `truncation_cutoff` layers (cutoff 8, G_style's default). psi defaults to 1 (no
truncation) because `evaluate` draws through `sample` and the reference's FID is untruncated
(metrics run G with is_validation: truncation_psi_val None), as the `stylegan2` family's default;
`--config.model.truncation_psi=0.7` gives G_style's default for figures (what Gs.run gives).
The training grids (`sample_fixed`) are untruncated at any psi, as the reference's snapshot grids.
Not built: progressive growing, mirror augmentation (train.mirror_augment for FFHQ), label
conditioning, DiffAugment / ADA and instance noise (refused: the reference trains without them).

Config (`config.loss`): name 'stylegan', r1_gamma, style_mixing, w_avg_beta, ema_kimg.
`config.model`: size (ganzoo.models.stylegan.PRESETS), truncation_psi, truncation_cutoff (None = all).
"""

import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import regularizers
from ganzoo import step as step_lib
from ganzoo.methods import stylegan2 as sg2_method
from ganzoo.models import stylegan as sg
from ganzoo.state import TrainState


@methods.register("stylegan")
class StyleGAN(sg2_method.StyleGAN2):
  """StyleGAN v1: networks 'g' and 'd'; `state.extras` = {'w_avg'}. The G-side latents, style mixing,
  the w_avg update and the G loss are StyleGAN2's (inherited); the networks, the phases (D with R1 in
  one update, then G), the EMA and the truncation cutoff are v1's."""

  augments = False   # the reference trains without DiffAugment / ADA

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):  # pylint: disable=super-init-not-called
    methods.Method.__init__(self, config, data)   # StyleGAN2's __init__ builds StyleGAN2's networks and phases
    augment.refuse_instance_noise(config, "stylegan")
    self.image_shape = tuple(data.image_shape)
    self.augment = None
    loss = config.loss
    if loss.get("name", "stylegan") != "stylegan":
      raise ValueError(f"the 'stylegan' family has its own objective: set config.loss.name='stylegan' "
                       f"(got {loss.name!r})")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'stylegan' family trains networks 'g' and 'd'")
    self.r1_gamma = float(loss.get("r1_gamma", 10.0))
    self.style_mixing = float(loss.get("style_mixing", 0.9))
    self.w_avg_beta = float(loss.get("w_avg_beta", 0.995))
    self.ema_kimg = float(loss.get("ema_kimg", 10.0))
    if not 0.0 <= self.style_mixing <= 1.0:
      raise ValueError(f"config.loss.style_mixing is a probability; got {self.style_mixing}")
    self.truncation_psi = float(config.model.get("truncation_psi", 1.0))
    cutoff = config.model.get("truncation_cutoff", 8)
    self.truncation_cutoff = None if cutoff is None else int(cutoff)
    if self.truncation_cutoff is not None and self.truncation_cutoff < 1:
      raise ValueError(f"config.model.truncation_cutoff must be >= 1 (or None for every layer); got {cutoff}")
    self.generator, self.discriminator = sg.build(config.model, self.image_shape)
    self.z_dim, self.w_dim = self.generator.z_dim, self.generator.w_dim
    self.num_ws = sg.num_layers(self.generator.resolution)
    num_steps = int(config.train.num_steps)
    g_spec = nets_lib.build_spec(self.generator, config.nets.g, num_steps)
    batch, kimg = self.batch_size, self.ema_kimg
    if kimg > 0:   # Gs: half-life of ema_kimg thousand images, no ramp-up (replaces nets.g.ema.decay)
      g_spec = g_spec._replace(ema_decay=lambda step: sg2_method.ema_beta(step * batch, batch, kimg, None))
    self.nets = {"g": g_spec, "d": nets_lib.build_spec(self.discriminator, config.nets.d, num_steps)}
    self.phases = (
        step_lib.Phase("d", ("d",), self._d_r1_loss, self._d_prepare, stream="real", key=sg2_method.D_KEY),
        step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, key=sg2_method.G_KEY, prepare_once=True,
                       prepare_extras=True))

  def plan(self, step: int) -> step_lib.StepPlan:
    return methods.Method.plan(self, step)

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_gsn, rng_dsn = jax.random.split(rng, 5)
    z = jnp.zeros((2, self.z_dim), jnp.float32)
    g_vars = self.generator.init({"params": rng_g}, z, train=False)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    d_vars = self.discriminator.init({"params": rng_d}, x, train=False)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, rng_gsn),
            "d": nets_lib.init_net(self.nets["d"], d_vars, rng_dsn)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets,
                      extras={"w_avg": jnp.zeros((self.w_dim,), jnp.float32)})

  def _d_r1_loss(self, ctx, inp):
    """D_logistic_simplegp: the logistic D loss plus (gamma / 2) E ||grad_x D(x)||^2 on the reals."""
    loss, metrics = self._d_loss(ctx, inp)
    # The gradient w.r.t. the reals in the loss's precision (float32 pixels into a float64 D: float64).
    real = inp["real"].astype(jnp.result_type(inp["real"], loss))
    r1 = regularizers.r1_penalty(lambda x: ctx.apply("d", x), real)
    return loss + (self.r1_gamma / 2.0) * r1, {**metrics, "r1": r1}

  def sample_fixed(self, state, inputs, n):
    """The training grids, untruncated (the reference's snapshots: is_validation, truncation_psi_val None)."""
    return self.generate(state, inputs["z"], inputs["noise"], psi=1.0)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()   # configs/stylegan.py:tiny, built here (configs/ is not a package)
    apply_preset(c, "tiny")
    config_lib.tiny(c)
    c.data.batch_size = 16
    # 8x8: the constant input, both 4x4 layers, one upsampling block (blur, noise, AdaIN), the
    # downsampling block with blur, minibatch stddev and R1's double backprop at the smallest size.
    c.model.resolution = 8
    c.data.image_size = 8
    c.model.truncation_cutoff = 3   # of the 4 layers at 8x8: a cutoff that leaves one untruncated
    c.loss.update(dict(r1_gamma=1.0, ema_kimg=0.01))   # an EMA that moves visibly in 2 steps
    for net in ("g", "d"):
      c.nets[net].optim.lr = 2e-3
    return c, methods.DataSpec((8, 8, 1), 10)


# train.py: G_lrate_dict / D_lrate_dict {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}, base 0.001.
LRATE = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
# train.py, 8 GPUs: minibatch_dict {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}, minibatch_base 32.
MINIBATCH = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}
# The CPU sizes use smaller batches than the reference's at their resolution.
CPU_BATCH = {"small": 32, "tiny": 16}


def train_settings(size: str) -> dict:
  """lr and batch of preset `size` at its resolution (the reference's schedule at its last lod)."""
  res = sg.PRESETS[size]["resolution"]
  return dict(lr=LRATE.get(res, 0.001), batch=CPU_BATCH.get(size, MINIBATCH.get(res, 32)))


def apply_preset(c: ml_collections.ConfigDict, size: str) -> None:
  """Sets the family, the preset's network and the reference's training settings on a base config."""
  if size not in sg.PRESETS:
    raise ValueError(f"unknown StyleGAN preset {size!r}; choose from {sorted(sg.PRESETS)}")
  t = train_settings(size)
  c.method = "stylegan"
  c.model = ml_collections.ConfigDict(dict(
      name="stylegan", size=size, z_dim=sg.PRESETS[size]["z_dim"], conditional=False, dtype="float32",
      truncation_psi=1.0, truncation_cutoff=ml_collections.FieldReference(8, field_type=int),
      resolution=ml_collections.FieldReference(None, field_type=int)))
  c.data.image_size = sg.PRESETS[size]["resolution"]
  c.data.batch_size = t["batch"]
  c.loss = ml_collections.ConfigDict(dict(name="stylegan", r1_gamma=10.0, style_mixing=0.9, w_avg_beta=0.995,
                                          ema_kimg=10.0))
  for net in ("g", "d"):
    c.nets[net] = nets_lib.net_config(name="adam", lr=t["lr"], b1=0.0, b2=0.99, eps=1e-8)
    c.nets[net].eqlr.enabled = True
  c.nets.g.eqlr.lr_mul = 0.01
  c.nets.g.eqlr.lr_mul_include = "mapping"
