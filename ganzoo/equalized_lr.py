"""Equalized learning rate as a param transform over a whole parameter tree.

Equalized learning rate (Karras et al. 2018, "Progressive Growing of GANs", arXiv:1710.10196,
Sec. 4.1; kept by StyleGAN, arXiv:1812.04948, and StyleGAN2, arXiv:1912.04958) stores every weight
as w ~ N(0, 1) and scales it in every forward by the He constant c = 1 / sqrt(fan_in), so that the
effective weight W = c w has He's initial scale while the optimizer sees w. Adam's step is
invariant to the scale of the gradient, and dL/dw = c dL/dW, so the effective weight moves by
c * lr: layers with a large fan-in learn proportionally slower, the same *relative* speed for all.

StyleGAN adds a per-layer learning-rate multiplier m (the mapping network uses m = 0.01):
w ~ N(0, 1) / m stored, W = (m / sqrt(fan_in)) w, and the bias b stored, B = m b. The effective
weight has the same initial distribution for every m, and Adam moves it by m * c * lr.
stylegan2-ada-pytorch training/networks.py, FullyConnectedLayer and Conv2dLayer (weight_gain =
lr_multiplier / sqrt(in_features), bias_gain = lr_multiplier; weights drawn randn / lr_multiplier).

Here it is a pair of pure functions over a param tree, like `ganzoo.spectral_norm`, so models stay
plain (they are written in terms of the effective weights) and any model gets it:

  eq = equalized_lr(lr_mul=[("mapping", 0.01)])
  params = eq.init(plain_params, rng)          # stored: kernels N(0, 1) / m, biases b / m
  effective = eq.apply(params)                  # every forward: kernels * m / sqrt(fan_in), biases * m
  out = model.apply({'params': effective}, x)

Gradients are taken w.r.t. the stored params through `apply` (a constant scale per leaf); the
optimizer updates the stored params and the EMA averages them (the transform is linear, so the EMA
of the stored params maps to the EMA of the effective ones).

Biases: `init` stores b / m, so the effective bias at init equals the model's own bias init for
every m. The reference stores bias_init itself (effective m * bias_init); the two agree wherever
the reference sets m != 1, because there bias_init = 0 (the mapping layers).

Orientation: a kernel of shape (..., in, out) (Dense (in, out), Conv (kh, kw, in, out)) has
fan_in = prod(shape[:-1]). A 'bias' leaf is scaled when the 'kernel' beside it (same parent) is.
"""

import math
import re
from typing import Any, Callable, NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp

from ganzoo.spectral_norm import Include, path_str, path_tuple, resolve_include

PyTree = Any
LrMul = Union[float, Sequence[tuple[str, float]]]


def default_include(path: tuple[str, ...], leaf: Any) -> bool:
  """True for 'kernel' leaves with ndim >= 2 (Dense/Conv weights)."""
  return bool(path) and path[-1] == "kernel" and getattr(leaf, "ndim", 0) >= 2


class EqualizedLR(NamedTuple):
  """The (init, apply, scales) triple returned by `equalized_lr`.

  init(params, rng) -> stored params (included kernels redrawn N(0, 1) / m, their biases b / m)
  apply(params) -> effective params (kernels * m / sqrt(fan_in), biases * m; others unchanged)
  scales(params) -> {'/'-joined path: c} for every scaled leaf (python floats)
  lr_muls(params) -> {'/'-joined kernel path: m}
  """
  init: Callable[[PyTree, jax.Array], PyTree]
  apply: Callable[[PyTree], PyTree]
  scales: Callable[[PyTree], dict[str, float]]
  lr_muls: Callable[[PyTree], dict[str, float]]


def _rules(lr_mul: LrMul) -> list[tuple[re.Pattern, float]]:
  if isinstance(lr_mul, (int, float)):
    lr_mul = [(".*", float(lr_mul))]
  rules = []
  for item in lr_mul:
    try:
      pattern, mult = item
    except (TypeError, ValueError) as e:
      raise ValueError(f"lr_mul must be a float or (regex, multiplier) pairs; got {item!r}") from e
    try:
      compiled = re.compile(pattern)
    except re.error as e:
      raise ValueError(f"lr_mul pattern {pattern!r} is not a valid regex ({e}); fix the pattern") from e
    if not float(mult) > 0:
      raise ValueError(f"lr_mul for {pattern!r} must be > 0, got {mult!r}")
    rules.append((compiled, float(mult)))
  return rules


def equalized_lr(include: Include = None, exclude: str | None = None, lr_mul: LrMul = 1.0,
                 gain: float = 1.0) -> EqualizedLR:
  """Equalized learning rate over a param tree (arXiv:1710.10196 Sec. 4.1; StyleGAN's lr multiplier).

  Args:
    include: which kernels: None (every 'kernel' leaf with ndim >= 2), a regex matched
      (`re.search`) against the '/'-joined path of those, or a callable(path_tuple, leaf) -> bool.
    exclude: optional regex; kernels whose path matches keep their plain parametrization.
    lr_mul: the learning-rate multiplier m: one float for every layer, or (regex, m) pairs tried in
      order against the kernel's '/'-joined path (first match wins; no match: m = 1), e.g.
      [('mapping', 0.01)].
    gain: extra constant on the He scale (1 for the StyleGAN2 layers, whose activations carry
      their own gain; sqrt(2) gives ProGAN's He gain for a layer followed by a leaky ReLU).

  Returns:
    An `EqualizedLR` (init, apply, scales, lr_muls).
  """
  include_fn = resolve_include(include, exclude, default=default_include)
  rules = _rules(lr_mul)
  gain = float(gain)

  def mult_of(name: str) -> float:
    for pattern, m in rules:
      if pattern.search(name):
        return m
    return 1.0

  def _plan(params: PyTree):
    """[(key_path, leaf, kind, m, c)] with kind 'kernel' | 'bias' | None."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    kernels = {}
    for kp, leaf in flat:
      p = path_tuple(kp)
      if include_fn(p, leaf):
        fan_in = math.prod(leaf.shape[:-1])
        m = mult_of(path_str(p))
        kernels[p[:-1]] = (m, gain * m / math.sqrt(fan_in))
    plan = []
    for kp, leaf in flat:
      p = path_tuple(kp)
      if p[-1:] == ("kernel",) and p[:-1] in kernels:
        m, c = kernels[p[:-1]]
        plan.append((p, leaf, "kernel", m, c))
      elif p[-1:] == ("bias",) and p[:-1] in kernels:
        m, _ = kernels[p[:-1]]
        plan.append((p, leaf, "bias", m, m))
      else:
        plan.append((p, leaf, None, 1.0, 1.0))
    return plan, treedef

  def init(params: PyTree, rng: jax.Array) -> PyTree:
    """Included kernels redrawn as N(0, 1) / m (independent keys, by sorted path); biases b / m."""
    plan, treedef = _plan(params)
    names = sorted(path_str(p) for p, _, kind, _, _ in plan if kind == "kernel")
    keys = dict(zip(names, jax.random.split(rng, max(len(names), 1))))
    out = []
    for p, leaf, kind, m, _ in plan:
      if kind == "kernel":
        out.append((jax.random.normal(keys[path_str(p)], leaf.shape, jnp.float32) / m).astype(leaf.dtype))
      elif kind == "bias":
        out.append(leaf / jnp.asarray(m, leaf.dtype) if m != 1.0 else leaf)
      else:
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)

  def apply(params: PyTree) -> PyTree:
    """Effective params: kernels * m / sqrt(fan_in) * gain, their biases * m; other leaves as is."""
    plan, treedef = _plan(params)
    out = [leaf * jnp.asarray(c, leaf.dtype) if kind is not None and c != 1.0 else leaf
           for _, leaf, kind, _, c in plan]
    return jax.tree_util.tree_unflatten(treedef, out)

  def scales(params: PyTree) -> dict[str, float]:
    plan, _ = _plan(params)
    return {path_str(p): c for p, _, kind, _, c in plan if kind is not None}

  def lr_muls(params: PyTree) -> dict[str, float]:
    plan, _ = _plan(params)
    return {path_str(p): m for p, _, kind, m, _ in plan if kind == "kernel"}

  return EqualizedLR(init=init, apply=apply, scales=scales, lr_muls=lr_muls)


def identity() -> EqualizedLR:
  """The transform that scales nothing (equalized LR off)."""
  return equalized_lr(include=lambda path, leaf: False)
