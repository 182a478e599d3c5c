"""Discriminator penalties and weight regularizers as pure functions.

Penalties take `d_fn: images [N, ...] -> logits [N]` (close over params, labels and
`train=...`; for an auxiliary-classifier D return `out['logits']`) and return the *unscaled*
penalty; the caller multiplies by its coefficient (lambda, gamma / 2, beta).

Per-example input gradients are computed as grad_x sum_i D(x)_i, which equals the stack of
grad_{x_i} D(x_i) only if D treats the examples of a batch independently. BatchNorm in train
mode (batch statistics) couples them and makes these penalties wrong: call D with train=False,
or use a D without batch norm (as WGAN-GP does), or layer/instance norm.

`get_penalty(name, **kwargs)` gives every penalty one signature,
`penalty(d_fn, real, fake, rng) -> scalar`, so a training step can pick one from the config.
"""

import inspect
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from ganzoo import spectral_norm as sn_lib

Array = jax.Array
PyTree = Any
DFn = Callable[[Array], Array]
Penalty = Callable[[DFn, Array, Array, Array], Array]


def _check_logits(logits: Any, n: int) -> Array:
  if isinstance(logits, dict):
    raise ValueError("d_fn must return a logits array [N]; return out['logits'] for "
                     "discriminators with an auxiliary classifier")
  if logits.shape != (n,):
    raise ValueError(f"d_fn must return logits of shape [N]=({n},), got {logits.shape}")
  return logits


def input_gradients(d_fn: DFn, x: Array) -> Array:
  """grad_x sum_i d_fn(x)_i: per-example input gradients if D treats examples independently."""
  x = jnp.asarray(x)

  def total(xx):
    logits = _check_logits(d_fn(xx), xx.shape[0])
    return jnp.sum(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)))   # float64 stays float64

  return jax.grad(total)(x)


def _per_example_sq_norm(g: Array) -> Array:
  return jnp.sum(jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32))), axis=tuple(range(1, g.ndim)))


def _safe_sqrt(sq: Array) -> Array:
  """sqrt with gradient 0 (not NaN) at 0 (double-where trick)."""
  pos = sq > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def _per_example_uniform(rng: Array, x: Array) -> Array:
  """U[0, 1] of shape [N, 1, ..., 1], broadcastable against x under strict rank promotion."""
  shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  return jax.random.uniform(rng, shape, jnp.float32)


def _lipschitz_penalty(d_fn: DFn, x_hat: Array, target: float) -> Array:
  norms = _safe_sqrt(_per_example_sq_norm(input_gradients(d_fn, x_hat)))
  return jnp.mean(jnp.square(norms - target))


def gradient_penalty(d_fn: DFn, real: Array, fake: Array, rng: Array,
                     target: float = 1.0) -> Array:
  """WGAN-GP gradient penalty, Gulrajani et al. 2017, arXiv:1704.00028 (Algorithm 1).

  E_{x_hat}[(||grad_x D(x_hat)||_2 - target)^2], x_hat = eps * real + (1 - eps) * fake,
  eps ~ U[0, 1] drawn once per example. The paper's loss adds lambda (10) times this.
  Pass `fake` with the generator's gradient stopped when used in the D step.
  """
  real = jnp.asarray(real)
  fake = jnp.asarray(fake)
  if real.shape != fake.shape:
    raise ValueError(f"real {real.shape} and fake {fake.shape} must have the same shape")
  eps = _per_example_uniform(rng, real).astype(real.dtype)
  x_hat = eps * real + (1 - eps) * fake
  return _lipschitz_penalty(d_fn, x_hat, target)


def r1_penalty(d_fn: DFn, x: Array) -> Array:
  """R1 / R2 penalty, Mescheder et al. 2018, arXiv:1801.04406 (Eq. 9, 10).

  E_x[||grad_x D(x)||_2^2]. On real images it is R1, on generated images R2; the paper's
  regularizer is gamma / 2 times this. Gradients of the logits (not of the probabilities).
  """
  return jnp.mean(_per_example_sq_norm(input_gradients(d_fn, x)))


def dragan_points(real: Array, rng: Array, scale: float = 0.5,
                  interpolate: bool = True) -> Array:
  """DRAGAN's perturbed points (Kodali et al. 2017, arXiv:1705.07215, reference code).

  x_p = x + scale * std(x) * U[0, 1] (elementwise noise, std over the whole batch); with
  `interpolate` (as the reference code does) the result is x + alpha * (x_p - x), alpha ~
  U[0, 1] per example, else x_p.
  """
  real = jnp.asarray(real)
  rng_noise, rng_alpha = jax.random.split(rng)
  std = jnp.std(real.astype(jnp.float32))
  delta = scale * std * jax.random.uniform(rng_noise, real.shape, jnp.float32)
  if interpolate:
    delta = _per_example_uniform(rng_alpha, real) * delta
  return (real.astype(jnp.float32) + delta).astype(real.dtype)


def dragan_penalty(d_fn: DFn, real: Array, rng: Array, scale: float = 0.5,
                   target: float = 1.0, interpolate: bool = True) -> Array:
  """DRAGAN penalty, Kodali et al. 2017, arXiv:1705.07215.

  E[(||grad_x D(x_hat)||_2 - target)^2] at perturbed real points x_hat = `dragan_points(real)`
  (x + alpha * scale * std(x) * U[0, 1]). The paper's loss adds lambda (10) times this.
  """
  return _lipschitz_penalty(d_fn, dragan_points(real, rng, scale, interpolate), target)


def _kernels_only(path: sn_lib.Path, leaf: Any) -> bool:
  return bool(path) and path[-1] == "kernel" and getattr(leaf, "ndim", 0) >= 2


def orthogonal_regularization(params: PyTree, include: sn_lib.Include = None,
                              exclude: Optional[str] = None) -> Array:
  """BigGAN's orthogonal regularization, Brock et al. 2019, arXiv:1809.11096 (Eq. 3).

  sum_W ||W^T W * (1 - I)||_F^2 over the selected weights, each reshaped to W of shape
  (-1, out) = (fan_in, out): W^T W (out x out) is the Gram matrix of the filters (W's columns,
  the rows of PyTorch's (out, fan_in) weight, as in BigGAN-PyTorch), so it pushes distinct
  filters to be orthogonal without constraining their norms. Returns the unscaled sum: the
  caller multiplies by beta (1e-4 in the paper). Note BigGAN-PyTorch's `ortho` writes the
  gradient 2 (W W^T * (1 - I)) W, half of this formula's gradient.

  Args:
    params: param tree.
    include: None (every 'kernel' with ndim >= 2; embeddings are not included, as BigGAN
      excludes G's shared embedding), a regex on the '/'-joined path of those kernels, or a
      callable(path_tuple, leaf) -> bool.
    exclude: optional regex of paths to skip.
  """
  leaves = sn_lib.selected_leaves(params, sn_lib.resolve_include(include, exclude,
                                                                 default=_kernels_only))
  total = jnp.zeros((), jnp.float32)
  for w in leaves.values():
    w_mat = sn_lib.as_matrix(w).astype(jnp.promote_types(w.dtype, jnp.float32))   # float64 stays float64
    gram = w_mat.T @ w_mat
    off_diag = gram * (1.0 - jnp.eye(gram.shape[0], dtype=w_mat.dtype))
    total = total + jnp.sum(jnp.square(off_diag))
  return total


def clip_weights(params: PyTree, clip_value: float, include: sn_lib.Include = None,
                 exclude: Optional[str] = None) -> PyTree:
  """Weight clipping of the original WGAN, Arjovsky et al. 2017, arXiv:1701.07875 (Alg. 1).

  Clamps the selected leaves to [-c, c] (c = 0.01 in the paper); apply it to the critic's
  params after each critic update. `include`: None (every leaf), a regex on the '/'-joined path,
  or a callable(path_tuple, leaf) -> bool; other leaves are returned unchanged.
  """
  if not clip_value > 0:
    raise ValueError(f"clip_value must be > 0, got {clip_value!r}")
  include_fn = sn_lib.resolve_include(include, exclude, default=lambda path, leaf: True)

  def clip(kp, leaf):
    if include_fn(sn_lib.path_tuple(kp), leaf):
      return jnp.clip(leaf, -clip_value, clip_value)
    return leaf

  return jax.tree_util.tree_map_with_path(clip, params)


# ----------------------------------------------------------------------------------------------
# Registry with one signature: penalty(d_fn, real, fake, rng) -> scalar.


def _gp(target: float = 1.0) -> Penalty:
  return lambda d_fn, real, fake, rng: gradient_penalty(d_fn, real, fake, rng, target)


def _r1() -> Penalty:
  return lambda d_fn, real, fake, rng: r1_penalty(d_fn, real)


def _r2() -> Penalty:
  return lambda d_fn, real, fake, rng: r1_penalty(d_fn, fake)


def _dragan(scale: float = 0.5, target: float = 1.0, interpolate: bool = True) -> Penalty:
  return lambda d_fn, real, fake, rng: dragan_penalty(d_fn, real, rng, scale, target,
                                                      interpolate)


_PENALTIES: dict[str, Callable[..., Penalty]] = {
    "gradient_penalty": _gp,
    "r1": _r1,
    "r2": _r2,
    "dragan": _dragan,
}


# Which images each penalty differentiates D at (so a conditional D gets those images' labels):
# the WGAN-GP interpolates count as real (their label is the real endpoint's, as in StudioGAN).
PENALTY_INPUTS: dict[str, str] = {
    "gradient_penalty": "real",
    "r1": "real",
    "r2": "fake",
    "dragan": "real",
}


def penalty_names() -> list[str]:
  """Names accepted by `get_penalty`, sorted."""
  return sorted(_PENALTIES)


def get_penalty(name: str, **kwargs: Any) -> Penalty:
  """`penalty(d_fn, real, fake, rng) -> scalar` for `name` (unscaled; see the functions above).

  'gradient_penalty' (WGAN-GP; kwargs: target), 'r1' (on real), 'r2' (on fake),
  'dragan' (kwargs: scale, target, interpolate).
  """
  if name not in _PENALTIES:
    raise ValueError(f"unknown penalty {name!r}; use one of {penalty_names()}")
  factory = _PENALTIES[name]
  try:
    inspect.signature(factory).bind(**kwargs)
  except TypeError as e:
    raise ValueError(f"penalty {name!r} got unexpected arguments {sorted(kwargs)}; it accepts "
                     f"{list(inspect.signature(factory).parameters)}") from e
  return factory(**kwargs)
