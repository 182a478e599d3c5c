"""Mixed precision: float32 params and optimizer state, bfloat16 or float16 compute.

`config.model.dtype` selects the compute dtype of every training forward and backward pass:

  float32   (default) nothing is cast; the step is the float32 program it always was.
  bfloat16  params and floating inputs are cast to bfloat16 as each network is applied, its floating
            outputs back to float32; no loss scaling (bfloat16 has float32's exponent range).
  float16   the same casts to float16, with dynamic loss scaling (below).

What stays float32: the stored params, the optimizer state, the EMA, the spectral-norm vectors
and its power iteration (it runs on the float32 params before the cast, `ganzoo.nets.normalize`),
BatchNorm statistics (`ganzoo.models.layers.BatchNorm` and flax's norms reduce in float32) and
every loss (the networks' outputs are cast back before the objective sees them). Gradients reach
the float32 params through the casts, so the update is float32 arithmetic on float32 weights: the
policy of Micikevicius et al. 2018 (arXiv:1710.03740, "Mixed precision training"), as in
`torch.autocast` with a GradScaler and in jmp's `Policy(param=f32, compute=half, output=f32)`.

Sampling and evaluation (`Method.sample`, FID) apply the networks without the policy: float32
weights at float32, so the FID of a bfloat16 run is measured exactly as a float32 run's.

Dynamic loss scaling (float16 only; torch.cuda.amp.GradScaler's rule and defaults): every loss is
multiplied by the scale S before differentiation and the gradients divided by S. An update whose
gradients are not all finite is skipped (params, optimizer state, batch statistics and EMA of its
networks unchanged) and S is halved (never below 1); after `growth_interval` consecutive finite
updates S doubles. One scale serves every phase of the step (one GradScaler for G and D, as in
BigGAN-PyTorch's fp16 runs); S and the count of finite updates live in `TrainState.extras` under
`LOSS_SCALE` and `LOSS_SCALE_GOOD`, so a resumed run continues with the scale it had.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any

DTYPES = {"float32": None, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
LOSS_SCALE = "loss_scale"
LOSS_SCALE_GOOD = "loss_scale_good_steps"


class LossScale(NamedTuple):
  """Dynamic loss scaling (torch.cuda.amp.GradScaler: init_scale 2**16, growth_interval 2000,
  growth_factor 2, backoff_factor 0.5)."""
  init: float = 2.0 ** 16
  growth_interval: int = 2000
  factor: float = 2.0
  minimum: float = 1.0


def compute_dtype(config) -> Any:
  """The compute dtype of `config.model.dtype` (None for float32: no casts), with a one-line error."""
  name = config.get("model", {}).get("dtype", "float32")
  if name not in DTYPES:
    raise ValueError(f"config.model.dtype={name!r} is not a compute dtype: pass --config.model.dtype=<"
                     f"{'|'.join(DTYPES)}>")
  return DTYPES[name]


def loss_scale(config) -> LossScale | None:
  """The loss-scaling rule of a float16 run (`config.train.loss_scale`), None for other dtypes."""
  if compute_dtype(config) != jnp.float16:
    return None
  section = config.train.get("loss_scale", {})
  rule = LossScale(init=float(section.get("init", LossScale.init)),
                   growth_interval=int(section.get("growth_interval", LossScale.growth_interval)))
  if not rule.init >= 1 or rule.growth_interval < 1:
    raise ValueError(f"config.train.loss_scale needs init >= 1 and growth_interval >= 1; got "
                     f"init={rule.init}, growth_interval={rule.growth_interval}")
  return rule


def _is_float(a: Any) -> bool:
  return hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)


def cast(tree: PyTree, dtype: Any) -> PyTree:
  """Every floating leaf of `tree` as `dtype` (integer leaves such as labels unchanged)."""
  return jax.tree.map(lambda a: a.astype(dtype) if _is_float(a) else a, tree)


def cast_output(tree: PyTree) -> PyTree:
  """Half-precision floating leaves back to float32 (what the losses see)."""
  return jax.tree.map(lambda a: a.astype(jnp.float32) if _is_float(a) and jnp.finfo(a.dtype).bits < 32 else a,
                      tree)


def init_extras(rule: LossScale) -> dict[str, jax.Array]:
  """The loss-scale entries a float16 run's state starts with."""
  return {LOSS_SCALE: jnp.asarray(rule.init, jnp.float32), LOSS_SCALE_GOOD: jnp.zeros((), jnp.int32)}


def all_finite(tree: PyTree) -> jax.Array:
  """True when every element of every leaf is finite."""
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.asarray(True)


def update_scale(scale: jax.Array, good: jax.Array, finite: jax.Array, rule: LossScale) -> dict[str, jax.Array]:
  """The loss-scale entries after one update with scale `scale` and `good` finite updates before it:
  the scale halved (floored at `minimum`) on non-finite gradients, doubled after `growth_interval`
  finite updates in a row."""
  good = jnp.where(finite, good + 1, 0)
  grow = good >= rule.growth_interval
  scale = jnp.where(finite, jnp.where(grow, scale * rule.factor, scale), jnp.maximum(scale / rule.factor, rule.minimum))
  return {LOSS_SCALE: scale.astype(jnp.float32), LOSS_SCALE_GOOD: jnp.where(grow, 0, good).astype(jnp.int32)}


def select(finite: jax.Array, new: PyTree, old: PyTree) -> PyTree:
  """`new` where the update's gradients were finite, else `old` (the skipped update)."""
  return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)


def apply_policy(method, config) -> None:
  """Sets the compute dtype on every network of a built family and, for float16, its loss scaling:
  `method.nets[n].dtype`, `method.loss_scale` and the loss-scale entries of the initial state
  (`method.init` wrapped, so no family's code changes)."""
  dtype = compute_dtype(config)
  method.loss_scale = loss_scale(config)
  if dtype is None:
    return
  method.nets = {n: spec._replace(dtype=dtype) for n, spec in method.nets.items()}
  rule = method.loss_scale
  if rule is not None:
    init = method.init

    def init_with_scale(rng):
      state = init(rng)
      return state.replace(extras={**state.extras, **init_extras(rule)})

    method.init = init_with_scale
