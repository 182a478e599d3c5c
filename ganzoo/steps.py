"""The GAN training step: a factory that turns a config into one jitted, data-parallel step.

One call of the step does `train.d_steps` discriminator updates (n_critic; each on its own real
batch) and then `train.g_steps` generator updates, with separate optax optimizers for G and D
(TTUR), optional weight clipping (WGAN), a D penalty (WGAN-GP, R1, R2, DRAGAN), orthogonal
regularization, spectral-normalization state updates, and an EMA of G's params:

    gan = steps.build(config, image_shape=(32, 32, 3), num_classes=10)
    state = steps.init_state(gan, jax.random.PRNGKey(config.seed))
    train_step = steps.make_train_step(gan, mesh)
    state, metrics = train_step(state, batch)   # batch['image']: [d_steps, B, H, W, C]

The step's randomness is `fold_in(state.rng, state.step)`, split by name, so a run is a pure
function of (config, seed, data order) and a resume needs no extra state.

Decisions (each is what the reference implementations do unless said otherwise):
- Each D update draws fresh z (and fake labels); so does each G update (BigGAN-PyTorch does this;
  the DCGAN PyTorch example reuses the D step's fakes, which is cheaper but correlates the updates).
- D sees the real and the fake batch in two separate calls, so a D with BatchNorm normalizes each
  batch on its own statistics (DCGAN practice). Its running statistics are updated in D updates
  only; G's only in G updates.
- Spectral normalization: the power iteration runs once per update of the normalized network (D's
  vectors in D updates, G's in G updates); the other network is normalized with its stored
  vectors (`update=False`). The new vector is computed first and W/sigma is differentiated with it,
  which makes gradient accumulation over micro-batches exact.
- Gradient accumulation (`train.grad_accum=k`) splits each update's batch into k strided
  micro-batches, runs them in a `lax.scan` and averages the gradients: for networks without batch
  statistics this equals one update on the whole batch.
"""

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from ganzoo import models
from ganzoo import objectives
from ganzoo import optim
from ganzoo import parallel
from ganzoo import regularizers
from ganzoo import spectral_norm as sn_lib
from ganzoo.state import GANState

PyTree = Any
Metrics = dict[str, jax.Array]


class GAN(NamedTuple):
  """A GAN built from a config: the pure pieces a step, a sampler or a notebook needs."""
  config: ml_collections.ConfigDict
  generator: nn.Module
  discriminator: nn.Module
  objective: objectives.Objective
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  g_sn: sn_lib.SpectralNorm
  d_sn: sn_lib.SpectralNorm
  image_shape: tuple[int, ...]
  num_classes: int  # > 0 only for class-conditional models
  z_dim: int
  penalty: Callable[..., jax.Array] | None  # penalty(d_fn, real, fake, rng) on D, unscaled


def _no_sn() -> sn_lib.SpectralNorm:
  return sn_lib.spectral_norm(include=lambda path, leaf: False)


def _spectral_norm(cfg: ml_collections.ConfigDict, net: str) -> sn_lib.SpectralNorm:
  """SN for `net` ('g' or 'd'): kernels and embeddings, narrowed by `sn.include`, minus `sn.<net>_exclude`."""
  if not cfg[net]:
    return _no_sn()
  return sn_lib.spectral_norm(n_power_iterations=cfg.n_power_iterations, include=cfg.get("include", None),
                              exclude=cfg.get(f"{net}_exclude", None))


def build(config: ml_collections.ConfigDict, image_shape: tuple[int, ...], num_classes: int = 0) -> GAN:
  """Builds models, objective, optimizers and SN transforms from `config`.

  `num_classes` is the data set's number of classes; it is passed to the models only when
  `config.model.conditional` is true.
  """
  conditional = bool(config.model.get("conditional", False))
  if conditional and num_classes <= 0:
    raise ValueError(f"config.model.conditional=True needs a labelled data set; {config.data.name!r} has no labels")
  num_classes = num_classes if conditional else 0
  g, d = models.build(config.model, tuple(image_shape), num_classes)
  loss_cfg = config.loss.to_dict()
  objective = objectives.get_objective(loss_cfg.pop("name"), **{k: v for k, v in loss_cfg.items() if k != "aux_weight"})
  t = config.train
  g_tx = optim.build_optimizer(config.optim.g, t.num_steps * t.get("g_steps", 1))
  d_tx = optim.build_optimizer(config.optim.d, t.num_steps * t.get("d_steps", 1))
  return GAN(config=config, generator=g, discriminator=d, objective=objective, g_tx=g_tx, d_tx=d_tx,
             g_sn=_spectral_norm(config.sn, "g"), d_sn=_spectral_norm(config.sn, "d"),
             image_shape=tuple(image_shape), num_classes=num_classes, z_dim=int(config.model.z_dim),
             penalty=_penalty(config.penalty))


def _penalty(cfg: ml_collections.ConfigDict):
  """The D penalty named by `config.penalty.name` ('none' or a `regularizers.penalty_names()` entry)."""
  kwargs = {k: v for k, v in cfg.items() if k not in ("name", "weight")}
  if cfg.name == "none":
    return None
  try:
    return regularizers.get_penalty(cfg.name, **kwargs)
  except ValueError as e:
    raise ValueError(f"config.penalty: {e}") from None


# ---------------------------------------------------------------------------------------------
# Pure helpers around the models.

def _variables(params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def apply_model(model: nn.Module, params: PyTree, batch_stats: PyTree, x: jax.Array, y: jax.Array | None,
                train: bool, rng: jax.Array | None = None) -> tuple[Any, PyTree]:
  """Applies G or D; returns (output, new batch_stats). Running stats change only when train=True."""
  rngs = {"dropout": rng} if rng is not None else None
  if train and batch_stats:
    out, mutated = model.apply(_variables(params, batch_stats), x, y, train=True, mutable=["batch_stats"],
                               rngs=rngs)
    return out, mutated["batch_stats"]
  return model.apply(_variables(params, batch_stats), x, y, train=train, rngs=rngs), batch_stats


def split_d_output(out: Any) -> tuple[jax.Array, jax.Array | None]:
  """D returns logits [N] or {'logits': [N], 'class_logits': [N, K]} (auxiliary classifier)."""
  if isinstance(out, dict):
    return out["logits"], out.get("class_logits")
  return out, None


def aux_classifier_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
  """AC-GAN's class term (Odena et al. 2017, 1610.09585): mean softmax cross-entropy."""
  return optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()


def sample_latents(gan: GAN, rng: jax.Array, n: int) -> tuple[jax.Array, jax.Array | None]:
  """z ~ N(0, I) of shape [n, z_dim], and uniform labels when the GAN is conditional."""
  rng_z, rng_y = jax.random.split(rng)
  z = jax.random.normal(rng_z, (n, gan.z_dim), jnp.float32)
  y = jax.random.randint(rng_y, (n,), 0, gan.num_classes) if gan.num_classes else None
  return z, y


def generate(gan: GAN, state: GANState, z: jax.Array, y: jax.Array | None = None, use_ema: bool = True) -> jax.Array:
  """Samples G(z, y) in inference mode (running BN stats), from the EMA params when `use_ema`."""
  params = state.ema_params if use_ema else state.g_params
  params, _ = gan.g_sn.apply(params, state.g_sn, update=False)
  images, _ = apply_model(gan.generator, params, state.g_batch_stats, z, y, train=False)
  return images


def init_state(gan: GAN, rng: jax.Array) -> GANState:
  """Initial state: params, optimizer states, SN vectors, batch stats, EMA copy, base key."""
  rng_run, rng_g, rng_d, rng_gsn, rng_dsn, rng_drop = jax.random.split(rng, 6)
  z, y = sample_latents(gan, rng_run, 2)
  g_vars = gan.generator.init({"params": rng_g, "dropout": rng_drop}, z, y, train=False)
  x = jnp.zeros((2, *gan.image_shape), jnp.float32)
  d_vars = gan.discriminator.init({"params": rng_d, "dropout": rng_drop}, x, y, train=False)
  g_params, d_params = g_vars["params"], d_vars["params"]
  return GANState(
      step=jnp.zeros((), jnp.int32), rng=rng_run,
      g_params=g_params, d_params=d_params,
      g_opt_state=gan.g_tx.init(g_params), d_opt_state=gan.d_tx.init(d_params),
      g_batch_stats=g_vars.get("batch_stats", {}), d_batch_stats=d_vars.get("batch_stats", {}),
      g_sn=gan.g_sn.init(g_params, rng_gsn), d_sn=gan.d_sn.init(d_params, rng_dsn),
      ema_params=jax.tree.map(jnp.copy, g_params), extras={})  # a copy: donation needs distinct buffers


def _micro(x: Any, k: int) -> Any:
  """[B, ...] -> [k, B/k, ...] with micro-batch j = examples j, j+k, ... (keeps each device's rows local)."""
  return jax.tree.map(lambda a: None if a is None else jnp.swapaxes(a.reshape(a.shape[0] // k, k, *a.shape[1:]), 0, 1), x)


def scan(body: Callable, carry: PyTree, xs: PyTree) -> tuple[PyTree, PyTree]:
  """`jax.lax.scan(body, carry, xs)`, unrolled into straight-line code on the CPU backend.

  For speed: XLA:CPU (jaxlib 0.10) does not canonicalize convolutions inside while-loop bodies, so
  their kernel gradients (non-canonical dimension labels) fall back to a naive loop nest: a DCGAN
  step inside `lax.scan` took 90-150 s instead of ~1.5 s (experiments/benchmark.py; a length-1 scan
  of one conv's gradient: 16 s vs 0.1 s). Unrolling gives the same values and only costs compile
  time (the loops here are n_critic D updates, g_steps, micro-batches: a handful of iterations).
  Other backends keep the compact `lax.scan`.
  """
  if jax.default_backend() != "cpu":
    return jax.lax.scan(body, carry, xs)
  n = jax.tree.leaves(xs)[0].shape[0]
  ys = []
  for i in range(n):
    carry, y = body(carry, jax.tree.map(lambda a: a[i], xs))
    ys.append(y)
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)


def accumulate_grads(loss_fn: Callable, params: PyTree, carry: PyTree, inputs: PyTree, keys: dict[str, jax.Array],
                     k: int):
  """Mean loss, mean gradient and final carry of `loss_fn(params, carry, inputs) -> (loss, (carry, metrics))`.

  With k == 1 this is plain `value_and_grad`; otherwise `inputs` (batch-major leaves) are split into
  k micro-batches and scanned (`scan`), carrying e.g. BatchNorm statistics from one micro-batch to the next;
  each PRNG key in `keys` is split into one key per micro-batch. `loss_fn` sees inputs and keys merged.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    (loss, (carry, metrics)), grads = grad_fn(params, carry, {**inputs, **keys})
    return loss, grads, carry, metrics

  def body(acc, micro):
    carry, grad_sum = acc
    (loss, (carry, metrics)), grads = grad_fn(params, carry, micro)
    return (carry, jax.tree.map(jnp.add, grad_sum, grads)), (loss, metrics)

  zeros = jax.tree.map(jnp.zeros_like, params)
  micro_keys = {n: jax.random.split(key, k) for n, key in keys.items()}
  (carry, grad_sum), (losses, metrics) = scan(body, (carry, zeros), {**_micro(inputs, k), **micro_keys})
  grads = jax.tree.map(lambda g: g / k, grad_sum)
  return losses.mean(), grads, carry, jax.tree.map(jnp.mean, metrics)


def _global_norm(tree: PyTree) -> jax.Array:
  """sqrt(sum of squares) over all leaves; each leaf's sum as a dot product (XLA:CPU reduces slowly)."""
  return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(tree)))


# ---------------------------------------------------------------------------------------------
# The step.

def make_train_step(gan: GAN, mesh: Mesh | None = None, jit: bool = True, donate: bool = True):
  """Returns `step(state, batch) -> (state, metrics)`.

  `batch` holds 'image' [d_steps, B, *image_shape] (and 'label' [d_steps, B] for conditional GANs),
  B the global batch; the step is jitted with the state replicated and the batch sharded over the
  mesh's 'data' axis. Metrics are float32 scalars named 'train/...'.
  """
  cfg = gan.config
  t = cfg.train
  d_steps, g_steps = int(t.get("d_steps", 1)), int(t.get("g_steps", 1))
  k = int(t.get("grad_accum", 1))
  clip_value = float(t.get("clip_value", 0.0))
  ema_decay, ema_start = float(t.get("ema_decay", 0.0)), int(t.get("ema_start", 0))
  g_ortho, d_ortho = float(t.get("g_ortho", 0.0)), float(t.get("d_ortho", 0.0))
  penalty_weight = float(cfg.penalty.get("weight", 0.0))
  aux_weight = float(cfg.loss.get("aux_weight", 1.0))
  G, D = gan.generator, gan.discriminator
  cond = gan.num_classes > 0

  def shard(x):
    if mesh is None or x is None:
      return x
    return jax.lax.with_sharding_constraint(x, parallel.batch_sharding(mesh))

  def d_loss_fn(d_params, carry, inp):
    d_bs, sn_state = carry
    d_norm, _ = gan.d_sn.apply(d_params, sn_state, update=False)
    real_out, d_bs = apply_model(D, d_norm, d_bs, inp["real"], inp["real_y"], True, inp["drop_real"])
    fake_out, d_bs = apply_model(D, d_norm, d_bs, inp["fake"], inp["fake_y"], True, inp["drop_fake"])
    real_logits, real_cls = split_d_output(real_out)
    fake_logits, fake_cls = split_d_output(fake_out)
    loss = gan.objective.d_loss(real_logits, fake_logits)
    metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
    if real_cls is not None:
      aux = aux_classifier_loss(real_cls, inp["real_y"]) + aux_classifier_loss(fake_cls, inp["fake_y"])
      metrics["d_aux"] = aux
      loss = loss + aux_weight * aux
    if gan.penalty is not None:
      def d_fn(x):
        out, _ = apply_model(D, d_norm, d_bs, x, inp["real_y"], True, inp["drop_real"])
        return split_d_output(out)[0]
      pen = gan.penalty(d_fn, inp["real"], inp["fake"], inp["rng_penalty"])
      metrics["penalty"] = pen
      loss = loss + penalty_weight * pen
    if d_ortho:
      loss = loss + d_ortho * regularizers.orthogonal_regularization(d_params)
    if len(metrics) > 3:
      metrics["d_total"] = loss  # the loss with the penalty / auxiliary / orthogonal terms
    return loss, ((d_bs, sn_state), metrics)

  def d_update(state: GANState, real, real_y, rng):
    rng_lat, rng_pen, rng_drop, rng_g = jax.random.split(rng, 4)
    B = real.shape[0]
    z, fake_y = sample_latents(gan, rng_lat, B)
    g_norm, _ = gan.g_sn.apply(state.g_params, state.g_sn, update=False)
    fake, _ = apply_model(G, g_norm, state.g_batch_stats, shard(z), fake_y, True, rng_g)
    fake = jax.lax.stop_gradient(fake)
    _, sn_state = gan.d_sn.apply(state.d_params, state.d_sn, update=True)
    drop_real, drop_fake = jax.random.split(rng_drop)
    inputs = {"real": real, "real_y": real_y, "fake": fake, "fake_y": fake_y}
    inputs = {n: shard(v) for n, v in inputs.items()}
    keys = {"rng_penalty": rng_pen, "drop_real": drop_real, "drop_fake": drop_fake}
    loss, grads, (d_bs, sn_state), metrics = accumulate_grads(
        d_loss_fn, state.d_params, (state.d_batch_stats, sn_state), inputs, keys, k)
    updates, d_opt_state = gan.d_tx.update(grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    if clip_value > 0:
      d_params = regularizers.clip_weights(d_params, clip_value)
    metrics["d_grad_norm"] = _global_norm(grads)
    return state.replace(d_params=d_params, d_opt_state=d_opt_state, d_batch_stats=d_bs, d_sn=sn_state), metrics

  def g_loss_fn(g_params, carry, inp, d_norm, d_bs):
    g_bs, sn_state = carry
    g_norm, _ = gan.g_sn.apply(g_params, sn_state, update=False)
    fake, g_bs = apply_model(G, g_norm, g_bs, inp["z"], inp["y"], True, inp["drop_g"])
    fake_out, _ = apply_model(D, d_norm, d_bs, fake, inp["y"], True, inp["drop_d"])
    fake_logits, fake_cls = split_d_output(fake_out)
    loss = gan.objective.g_loss(fake_logits, None)
    metrics = {"g_loss": loss}
    if fake_cls is not None:
      aux = aux_classifier_loss(fake_cls, inp["y"])
      metrics["g_aux"] = aux
      loss = loss + aux_weight * aux
    if g_ortho:
      loss = loss + g_ortho * regularizers.orthogonal_regularization(g_params)
    return loss, ((g_bs, sn_state), metrics)

  def g_update(state: GANState, rng):
    B = cfg.data.batch_size
    rng_lat, rng_drop = jax.random.split(rng)
    z, y = sample_latents(gan, rng_lat, B)
    _, sn_state = gan.g_sn.apply(state.g_params, state.g_sn, update=True)
    d_norm, _ = gan.d_sn.apply(state.d_params, state.d_sn, update=False)
    drop_g, drop_d = jax.random.split(rng_drop)
    keys = {"drop_g": drop_g, "drop_d": drop_d}
    inputs = {"z": shard(z), "y": shard(y)}
    loss_fn = functools.partial(g_loss_fn, d_norm=d_norm, d_bs=state.d_batch_stats)
    loss, grads, (g_bs, sn_state), metrics = accumulate_grads(
        loss_fn, state.g_params, (state.g_batch_stats, sn_state), inputs, keys, k)
    updates, g_opt_state = gan.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    if ema_decay > 0:
      decay = jnp.where(state.step >= ema_start, ema_decay, 0.0)
      ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
    else:
      ema = g_params
    metrics["g_grad_norm"] = _global_norm(grads)
    return state.replace(g_params=g_params, g_opt_state=g_opt_state, g_batch_stats=g_bs, g_sn=sn_state,
                         ema_params=ema), metrics

  def step(state: GANState, batch: dict[str, jax.Array]) -> tuple[GANState, Metrics]:
    images = batch["image"]
    if images.shape[0] != d_steps:
      raise ValueError(f"batch['image'] has {images.shape[0]} real batches; train.d_steps={d_steps} needs {d_steps}")
    labels = batch.get("label") if cond else None
    rng = jax.random.fold_in(state.rng, state.step)
    rng_d, rng_g = jax.random.split(rng)

    def d_body(state, xs):
      real, real_y, key = xs
      return d_update(state, real, real_y, key)

    state, d_metrics = scan(d_body, state, (images, labels, jax.random.split(rng_d, d_steps)))
    state, g_metrics = scan(lambda s, key: g_update(s, key), state, jax.random.split(rng_g, g_steps))
    metrics = {f"train/{n}": v.mean() for n, v in {**d_metrics, **g_metrics}.items()}
    return state.replace(step=state.step + 1), metrics

  if not jit:
    return step
  if mesh is None:
    return jax.jit(step, donate_argnums=(0,) if donate else ())
  return jax.jit(step, in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh, 1)),
                 out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                 donate_argnums=(0,) if donate else ())
