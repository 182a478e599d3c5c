"""Perceptual distances for inversion, from networks available offline.

LPIPS (Zhang et al. 2018, arXiv:1801.03924), which stylegan2-ada-pytorch's projector uses with VGG16,
compares unit-normalized feature vectors layer by layer: d(x, y) = sum_l mean_{h,w} || f_l(x)/|f_l(x)|
- f_l(y)/|f_l(y)| ||^2 (its "lin" weights set to 1, i.e. the unlearned variant). Here f_l are either
  - 'inception': the FID Inception-v3's first layers (conv .. conv_4 and mixed blocks up to `depth`),
    whose weights `python -m ganzoo.metrics.weights --fetch` provides (ganzoo/metrics/inception.py),
    on the image resized to `size` (>= 75, the stem's smallest input) in the FID preprocessing; or
  - 'd': every 4-D (NHWC) output of the trained discriminator's submodules, captured with Flax's
    `capture_intermediates` (no model edits; any family's D).
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganzoo.metrics import inception as inc

PERCEPTUAL = ("none", "inception", "d")


class InceptionStem(nn.Module):
  """The FID Inception's layers up to mixed_{depth-1} with its parameter names, returning the
  post-ReLU maps after conv_2, conv_4 and each mixed block (the "taps")."""
  depth: int = 1

  @nn.compact
  def __call__(self, x):
    taps = []
    x = inc.ConvBNReLU(inc._c(32, 3, stride=2), name="conv")(x)   # pylint: disable=protected-access
    x = inc.ConvBNReLU((32, (3, 3), 1, (0, 0)), name="conv_1")(x)
    x = inc.ConvBNReLU(inc._c(64, 3), name="conv_2")(x)   # pylint: disable=protected-access
    taps.append(x)
    x = inc.max_pool_3x3(x, 2)
    x = inc.ConvBNReLU(inc._c(80, 1), name="conv_3")(x)   # pylint: disable=protected-access
    x = inc.ConvBNReLU((192, (3, 3), 1, (0, 0)), name="conv_4")(x)
    taps.append(x)
    x = inc.max_pool_3x3(x, 2)
    for i, pool in enumerate((32, 64, 64)[:self.depth]):
      x = inc.BlockA(pool, name="mixed" if i == 0 else f"mixed_{i}")(x)
      taps.append(x)
    return taps


def lpips_like(feats_x: list, feats_y: list) -> jax.Array:
  """sum over layers of the spatial mean of the squared distance of channel-normalized features, [N]."""
  total = 0.0
  for a, b in zip(feats_x, feats_y):
    a = a * jax.lax.rsqrt(jnp.sum(jnp.square(a), axis=-1, keepdims=True) + 1e-10)
    b = b * jax.lax.rsqrt(jnp.sum(jnp.square(b), axis=-1, keepdims=True) + 1e-10)
    total = total + jnp.mean(jnp.sum(jnp.square(a - b), axis=-1), axis=(1, 2))
  return total


def inception_distance(weights_path: str | None = None, size: int = 96, depth: int = 1) -> Callable:
  """d(images, targets) -> [N] on the FID Inception's early features (images NHWC in [-1, 1])."""
  from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
  if size < 75:
    raise ValueError(f"the Inception stem needs inputs of at least 75x75; got size={size}")
  params, _ = weights.load_params(weights_path)
  keep = {"conv", "conv_1", "conv_2", "conv_3", "conv_4", "mixed", "mixed_1", "mixed_2"}
  params = {k: v for k, v in params.items() if k in keep}
  stem = InceptionStem(depth)

  def features(x):
    return stem.apply({"params": params}, inc.preprocess((x + 1.0) * 127.5, size))

  return lambda images, targets: lpips_like(features(images), features(jax.lax.stop_gradient(targets)))


def discriminator_distance(method: Any, state: Any) -> Callable:
  """d(images, targets) -> [N] on the 4-D intermediate outputs of the run's discriminator 'd'
  (inference mode; its spectral normalization / equalized LR applied as in training)."""
  from ganzoo import nets as nets_lib  # pylint: disable=g-import-not-at-top
  if "d" not in getattr(method, "nets", {}):
    raise ValueError(f"family {method.name!r} has no discriminator 'd'; use --perceptual=inception or none")
  spec = method.nets["d"]
  params, bs = nets_lib.inference_variables(spec, state.nets["d"], use_ema=False)

  def features(x):
    _, inter = spec.module.apply(nets_lib.variables(params, bs), x, train=False, capture_intermediates=True,
                                 mutable=["intermediates"])
    leaves = jax.tree.leaves(inter["intermediates"])
    return [f for f in leaves if f.ndim == 4 and f.shape[0] == x.shape[0]]

  return lambda images, targets: lpips_like(features(images), features(jax.lax.stop_gradient(targets)))


def make_distance(name: str, method: Any = None, state: Any = None, **kwargs: Any) -> Callable | None:
  """The perceptual distance `name` ('none' -> None)."""
  if name in (None, "", "none"):
    return None
  if name == "inception":
    return inception_distance(**kwargs)
  if name == "d":
    return discriminator_distance(method, state)
  raise ValueError(f"unknown --perceptual={name!r}; choose from {list(PERCEPTUAL)}")
