"""One network's plumbing, written once for every family: build, normalize, forward, update.

A family describes each of its networks by a `NetSpec` (the Flax module, its optimizer, its
spectral normalization, EMA, orthogonal regularization and weight clipping) built from the
network's config section `config.nets.<name>`:

  nets.<name>.optim   optimizer: name (adam|rmsprop|sgd|adamw), lr, betas/eps/..., decay
                      ('none' | 'linear' | 'exponential'), decay_start (train steps at constant lr
                      before the decay; linear: to 0 at the last step, CycleGAN's "100 + 100
                      epochs"; exponential: lr / decay_factor**t, floored at min_lr), sgd's
                      momentum and its linear ramp to momentum_final (momentum_start,
                      momentum_saturate: train steps)
  nets.<name>.sn      enabled, n_power_iterations, eps, include, exclude (regexes on param paths)
  nets.<name>.eqlr    equalized learning rate (`ganzoo.equalized_lr`): enabled, include, exclude
                      (regexes on kernel paths), lr_mul (the multiplier m) for the kernels whose path
                      matches lr_mul_include (every included kernel when None; others m = 1), gain
  nets.<name>.ema     decay (0 = off), start (train step from which the EMA averages)
  nets.<name>.ortho   orthogonal-regularization weight (BigGAN: 1e-4 on G)
  nets.<name>.clip    weight-clipping bound c after each update (WGAN: 0.01 on D; 0 = off)

The training step (`ganzoo.step`) calls `normalize` for every network a phase uses, `forward` to
apply it, and `apply_grads` for every network a phase trains.
"""

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import equalized_lr as eqlr_lib
from ganzoo import precision
from ganzoo import regularizers
from ganzoo import spectral_norm as sn_lib
from ganzoo.state import NetState

PyTree = Any

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw")


class NetSpec(NamedTuple):
  """A network and its training plumbing (static: hashed into compiled steps by identity)."""
  module: nn.Module
  tx: optax.GradientTransformation
  sn: sn_lib.SpectralNorm
  ema_decay: float | Callable[[jax.Array], jax.Array] = 0.0   # or a schedule of the completed steps
  ema_start: int = 0
  ortho: float = 0.0
  clip: float = 0.0
  eqlr: eqlr_lib.EqualizedLR | None = None   # None: plain weights
  dtype: Any = None   # compute dtype of training forwards (`ganzoo.precision`); None = the params' own

  @property
  def has_ema(self) -> bool:
    return callable(self.ema_decay) or self.ema_decay > 0


# ---------------------------------------------------------------------------------------------
# Building from config.

def net_config(**optim: Any) -> ml_collections.ConfigDict:
  """The default section of one network (`config.nets.<name>`); `optim` overrides optimizer fields."""
  opt = dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none", decay_start=0,
             decay_factor=1.0, min_lr=0.0, decay_rate=0.99, momentum=0.0, weight_decay=0.0,
             momentum_final=ml_collections.FieldReference(None, field_type=float), momentum_start=0,
             momentum_saturate=0)
  opt.update(optim)
  return ml_collections.ConfigDict(dict(
      optim=opt,
      sn=dict(enabled=False, n_power_iterations=1, eps=1e-12,
              include=ml_collections.FieldReference(None, field_type=str),
              exclude=ml_collections.FieldReference(None, field_type=str)),
      eqlr=dict(enabled=False, include=ml_collections.FieldReference(None, field_type=str),
                exclude=ml_collections.FieldReference(None, field_type=str), lr_mul=1.0,
                lr_mul_include=ml_collections.FieldReference(None, field_type=str), gain=1.0),
      ema=dict(decay=0.0, start=0),
      ortho=0.0,
      clip=0.0))


def learning_rate(cfg: ml_collections.ConfigDict, num_updates: int, decay_start: int = 0) -> optax.Schedule | float:
  """The learning rate of `nets.<name>.optim` as a function of this network's update count.

  decay 'none': constant `lr`.
  decay 'linear': constant for `decay_start` updates, then linear to 0 at update `num_updates`.
    SNGAN decays from the first update (decay_start 0); CycleGAN and pix2pix keep the rate for the
    first half (`niter`) and decay it over the second (`niter_decay`); the projection-cGAN
    ImageNet run over its last 50k of 450k iterations (`iteration_decay_start`).
  decay 'exponential': constant for `decay_start` updates, then lr / decay_factor**t (t updates
    since decay_start), never below `min_lr`: pylearn2's ExponentialDecay update callback
    (pylearn2/training_algorithms/sgd.py, used by goodfeli/adversarial mnist.yaml), the schedule
    of the conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784, Sec. 4.1: factor 1.00004,
    down to 1e-6).
  """
  decay = cfg.get("decay", "none")
  if decay == "none":
    return cfg.lr
  decay_start = int(decay_start)
  if decay == "linear":
    if not 0 <= decay_start < max(int(num_updates), 1):
      raise ValueError(f"optim.decay_start must lie in [0, num_steps); got {decay_start} of {num_updates} updates")
    linear = optax.linear_schedule(cfg.lr, 0.0, max(int(num_updates) - decay_start, 1))
    if decay_start == 0:
      return linear
    return optax.join_schedules([optax.constant_schedule(cfg.lr), linear], [decay_start])
  if decay == "exponential":
    factor, floor = float(cfg.get("decay_factor", 1.0)), float(cfg.get("min_lr", 0.0))
    if not factor >= 1.0:
      raise ValueError(f"optim.decay_factor must be >= 1 (lr / factor**t); got {factor}")
    if decay_start < 0:
      raise ValueError(f"optim.decay_start must be >= 0; got {decay_start}")
    # lr * exp(-t ln(factor)) with ln(factor) taken in float64 on the host: optax.exponential_decay's
    # float32 rate**t carries t times the rounding of rate (0.04% at t = 1e5 for 1 / 1.00004).
    lr, log_factor = float(cfg.lr), float(np.log(factor))

    def schedule(count):
      t = jnp.maximum(jnp.asarray(count, jnp.float32) - decay_start, 0.0)
      return jnp.maximum(lr * jnp.exp(-t * log_factor), floor)

    return schedule
  raise ValueError(f"unknown learning-rate decay {decay!r}; use 'none', 'linear' or 'exponential'")


def momentum_schedule(cfg: ml_collections.ConfigDict, start: int, saturate: int) -> optax.Schedule:
  """SGD momentum ramped linearly from `momentum` at update `start` to `momentum_final` at update
  `saturate` (constant before and after): pylearn2's MomentumAdjustor(start, saturate,
  final_momentum) (pylearn2/training_algorithms/learning_rule.py), which the conditional GAN uses
  to raise the momentum from 0.5 to 0.7 (arXiv:1411.1784, Sec. 4.1). pylearn2 moves it once per
  epoch; here it moves every update (the same line, sampled finer)."""
  m0, m1 = float(cfg.get("momentum", 0.0)), float(cfg.momentum_final)
  start, saturate = int(start), int(saturate)
  if not 0 <= start < saturate:
    raise ValueError(f"optim.momentum_start must be >= 0 and < optim.momentum_saturate; got {start}, {saturate} updates")
  return optax.linear_schedule(m0, m1, saturate - start, transition_begin=start)


def build_optimizer(cfg: ml_collections.ConfigDict, num_updates: int, decay_start: int = 0,
                    lazy_ratio: float = 1.0, momentum_ramp: tuple[int, int] = (0, 0)) -> optax.GradientTransformation:
  """An optax optimizer from `nets.<name>.optim`.

  adam: b1, b2, eps (DCGAN: 2e-4, 0.5, 0.999; SNGAN/BigGAN: b1=0); rmsprop: decay_rate, eps
  (WGAN: RMSprop(5e-5), PyTorch-style decay 0.99, eps 1e-8); sgd: momentum (PyTorch's form,
  v = m v + g, step -lr v); adamw: b1, b2, eps, weight_decay.
  sgd with `momentum_final` set: the momentum follows `momentum_schedule` over `momentum_ramp` =
  (start, saturate) updates, in pylearn2's form (learning_rule.Momentum: v = m v - lr g, step v),
  the form of the reference that ramps it; the two forms agree while lr is constant.
  `lazy_ratio` = k / (k + 1) for a network with a lazy regularizer every k steps:
  lr *= ratio and betas **= ratio, so the extra updates keep the optimizer's time constants
  (Karras et al. 2020, arXiv:1912.04958, App. B; stylegan2-ada-pytorch training_loop.py).
  """
  lr = learning_rate(cfg, num_updates, decay_start)
  if lazy_ratio != 1.0:
    lr = (lambda s, f=lr: f(s) * lazy_ratio) if callable(lr) else lr * lazy_ratio
  name = cfg.name
  b1, b2 = cfg.get("b1", 0.9) ** lazy_ratio, cfg.get("b2", 0.999) ** lazy_ratio
  if lazy_ratio != 1.0 and name not in ("adam", "adamw"):
    raise ValueError(f"lazy regularization (a penalty with every > 1) rescales Adam's betas; the optimizer is {name!r}")
  if cfg.get("momentum_final", None) is not None:
    if name != "sgd":
      raise ValueError(f"optim.momentum_final ramps SGD's momentum; the optimizer is {name!r}: unset momentum_final")
    momentum = optax.inject_hyperparams(optax.trace)(decay=momentum_schedule(cfg, *momentum_ramp))
    return optax.chain(optax.scale_by_learning_rate(lr), momentum)
  if name == "adam":
    return optax.adam(lr, b1=b1, b2=b2, eps=cfg.get("eps", 1e-8))
  if name == "adamw":
    return optax.adamw(lr, b1=b1, b2=b2, eps=cfg.get("eps", 1e-8), weight_decay=cfg.get("weight_decay", 0.0))
  if name == "rmsprop":
    return optax.rmsprop(lr, decay=cfg.get("decay_rate", 0.99), eps=cfg.get("eps", 1e-8))
  if name == "sgd":
    return optax.sgd(lr, momentum=cfg.get("momentum", None) or None)
  raise ValueError(f"unknown optimizer {name!r}; set config.nets.<name>.optim.name to one of {OPTIMIZERS}")


def build_sn(cfg: ml_collections.ConfigDict) -> sn_lib.SpectralNorm:
  """Spectral normalization from `nets.<name>.sn` (a no-op transform when disabled)."""
  if not cfg.get("enabled", False):
    return sn_lib.spectral_norm(include=lambda path, leaf: False)
  return sn_lib.spectral_norm(n_power_iterations=int(cfg.get("n_power_iterations", 1)), eps=float(cfg.get("eps", 1e-12)),
                              include=cfg.get("include", None), exclude=cfg.get("exclude", None))


def build_eqlr(cfg: ml_collections.ConfigDict | None) -> eqlr_lib.EqualizedLR | None:
  """Equalized learning rate from `nets.<name>.eqlr` (None when disabled or absent: a config.json
  written before the section existed)."""
  if cfg is None or not cfg.get("enabled", False):
    return None
  pattern = cfg.get("lr_mul_include", None)
  lr_mul = float(cfg.get("lr_mul", 1.0))
  return eqlr_lib.equalized_lr(include=cfg.get("include", None), exclude=cfg.get("exclude", None),
                               lr_mul=[(pattern if pattern is not None else ".*", lr_mul)],
                               gain=float(cfg.get("gain", 1.0)))


def build_spec(module: nn.Module, cfg: ml_collections.ConfigDict, num_steps: int, updates_per_step: int = 1,
               lazy_ratio: float = 1.0, updates_until: Callable[[int], int] | None = None) -> NetSpec:
  """A NetSpec for `module` from its section `cfg` = config.nets.<name>.

  The optimizer counts this network's updates, so every step-valued field (num_steps,
  optim.decay_start, optim.momentum_start/saturate) is turned into an update count by
  `updates_until(s)` = the network's updates in the first s train steps; by default
  s * `updates_per_step` (a constant n_critic). A family whose updates per step vary (lazy
  regularization every k steps, an n_critic schedule) passes its exact count, so schedules end
  at the last step.
  """
  if updates_until is None:
    updates_until = lambda s: int(s) * int(updates_per_step)
  num_updates = int(updates_until(int(num_steps)))
  decay_start = int(updates_until(int(cfg.optim.get("decay_start", 0))))
  ramp = tuple(int(updates_until(int(cfg.optim.get(k, 0)))) for k in ("momentum_start", "momentum_saturate"))
  return NetSpec(module=module, tx=build_optimizer(cfg.optim, num_updates, decay_start, lazy_ratio, ramp),
                 sn=build_sn(cfg.sn), ema_decay=float(cfg.ema.decay), ema_start=int(cfg.ema.start),
                 ortho=float(cfg.ortho), clip=float(cfg.clip), eqlr=build_eqlr(cfg.get("eqlr", None)))


# ---------------------------------------------------------------------------------------------
# Pure functions over one network.

def variables(params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def init_net(spec: NetSpec, variables_: dict[str, PyTree], rng_sn: jax.Array) -> NetState:
  """A NetState from the module's initial variables ({'params', ['batch_stats']}).

  With equalized LR the module's initial kernels are redrawn as stored N(0, 1) / m weights
  (`EqualizedLR.init`, from a key folded out of `rng_sn`, so runs without it keep their keys).
  """
  params = variables_["params"]
  if spec.eqlr is not None:
    params = spec.eqlr.init(params, jax.random.fold_in(rng_sn, 0x45514C52))
  batch_stats = variables_.get("batch_stats", {})
  copy = lambda t: jax.tree.map(jnp.copy, t)  # distinct buffers: a donated step needs them
  return NetState(params=params, opt_state=spec.tx.init(params), batch_stats=batch_stats,
                  sn=spec.sn.init(params, rng_sn), ema=copy(params) if spec.has_ema else {},
                  ema_batch_stats=copy(batch_stats) if spec.has_ema else {})


def normalize(spec: NetSpec, params: PyTree, sn_state: PyTree, update: bool = False) -> tuple[PyTree, PyTree]:
  """(effective params, new SN state): the equalized-LR scale (when on), then W / sigma(W) for the
  SN-selected leaves; identity without either. Every forward of every family goes through here, so
  a param transform set in `nets.<name>` applies everywhere (training, sampling, evaluation).
  (With both on, SN cancels the equalized-LR scale of the leaves it normalizes: sigma(cW) = c sigma(W).)"""
  if spec.eqlr is not None:
    params = spec.eqlr.apply(params)
  return spec.sn.apply(params, sn_state, update=update)


def forward(spec: NetSpec, params: PyTree, batch_stats: PyTree, *inputs: Any, train: bool,
            rng: jax.Array | None = None, dtype: Any = None, **kwargs: Any) -> tuple[Any, PyTree]:
  """Applies the module to already-normalized `params`; returns (output, new batch_stats).

  Running statistics change only when train=True; `rng` feeds the 'dropout' collection. With a
  compute `dtype` (mixed precision, `ganzoo.precision`), params and floating inputs are cast to it
  and half-precision outputs back to float32; the batch statistics stay float32.
  """
  if dtype is not None:
    params, inputs = precision.cast(params, dtype), precision.cast(inputs, dtype)
    out, bs = forward(spec, params, batch_stats, *inputs, train=train, rng=rng, **kwargs)
    return precision.cast_output(out), bs
  rngs = {"dropout": rng} if rng is not None else None
  if train and batch_stats:
    out, mutated = spec.module.apply(variables(params, batch_stats), *inputs, train=True, mutable=["batch_stats"],
                                     rngs=rngs, **kwargs)
    return out, mutated["batch_stats"]
  return spec.module.apply(variables(params, batch_stats), *inputs, train=train, rngs=rngs, **kwargs), batch_stats


def inference_variables(spec: NetSpec, net: NetState, use_ema: bool = True) -> tuple[PyTree, PyTree]:
  """(normalized params, batch stats) for inference: the EMA and its statistics when the network
  has an EMA and `use_ema`, else the trained params and their running statistics."""
  if use_ema and spec.has_ema:
    params, batch_stats = net.ema, net.ema_batch_stats
  else:
    params, batch_stats = net.params, net.batch_stats
  params, _ = normalize(spec, params, net.sn, update=False)
  return params, batch_stats


def ema_update(spec: NetSpec, ema: PyTree, new: PyTree, step: jax.Array) -> PyTree:
  """decay * ema + (1 - decay) * new, with decay = 0 before `ema.start` (BigGAN-PyTorch utils.ema);
  a callable `ema_decay` is evaluated at `step` (StyleGAN2's half-life in images with ramp-up)."""
  decay = spec.ema_decay(step) if callable(spec.ema_decay) else spec.ema_decay
  decay = jnp.where(step >= spec.ema_start, decay, 0.0)
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)


def apply_grads(spec: NetSpec, net: NetState, grads: PyTree, step: jax.Array, batch_stats: PyTree,
                sn_state: PyTree, update_ema: bool = True) -> NetState:
  """One optimizer update of a network, then weight clipping and the EMA.

  The EMA covers the batch statistics too (BigGAN-PyTorch's `ema` averages the whole state dict,
  buffers included), so an EMA generator is sampled with statistics that match its weights.
  `step` is the number of completed train steps (the EMA starts at `ema.start`). `update_ema=False`
  leaves the EMA as it is (a phase that is not the step's last update of this network).
  """
  updates, opt_state = spec.tx.update(grads, net.opt_state, net.params)
  params = optax.apply_updates(net.params, updates)
  if spec.clip > 0:
    params = regularizers.clip_weights(params, spec.clip)
  ema, ema_bs = net.ema, net.ema_batch_stats
  if spec.has_ema and update_ema:
    ema = ema_update(spec, ema, params, step)
    ema_bs = ema_update(spec, ema_bs, batch_stats, step)
  return NetState(params=params, opt_state=opt_state, batch_stats=batch_stats, sn=sn_state, ema=ema,
                  ema_batch_stats=ema_bs)


def global_norm(tree: PyTree) -> jax.Array:
  """sqrt(sum of squares) over all leaves; each leaf's sum as a dot product (XLA:CPU reduces slowly)."""
  return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree)))
