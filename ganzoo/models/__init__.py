"""Model zoo registry: `build(model_config, image_shape, num_classes) -> (generator, discriminator)`.

Conventions every architecture follows (so steps, SN and metrics work on any of them):
- Generator: `G.apply(variables, z, y=None, train=True)` -> images, float32 NHWC in [-1, 1].
  `z` has shape [N, model_config.z_dim]; `y` is int32 [N] class labels for conditional models.
- Discriminator: `D.apply(variables, x, y=None, train=True)` -> logits, float32 [N]
  (architectures with an auxiliary classifier return a dict {'logits': [N], 'class_logits': [N, K]}).
- Batch statistics live in the `batch_stats` collection; pass `mutable=['batch_stats']` when
  `train=True` for models that have it.
- Spectral normalization is *not* part of the models: see `ganzoo.spectral_norm`.
"""

from typing import Callable

import flax.linen as nn
import ml_collections

ModelPair = tuple[nn.Module, nn.Module]
BuildFn = Callable[[ml_collections.ConfigDict, tuple[int, int, int], int], ModelPair]

_REGISTRY: dict[str, BuildFn] = {}


def register(name: str) -> Callable[[BuildFn], BuildFn]:
  """Decorator that registers a `build(model_config, image_shape, num_classes)` function."""

  def wrap(fn: BuildFn) -> BuildFn:
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def build(model_config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
          num_classes: int = 0) -> ModelPair:
  """Builds (generator, discriminator) for `model_config.name` at `image_shape` (H, W, C)."""
  name = model_config.name
  if name not in _REGISTRY:
    raise ValueError(f"unknown model {name!r}; set config.model.name to one of {names()}")
  return _REGISTRY[name](model_config, tuple(image_shape), num_classes)


# Architecture families register themselves on import (one line each).
from ganzoo.models import mlp  # noqa: E402,F401
from ganzoo.models import dcgan  # noqa: E402,F401
from ganzoo.models import sngan  # noqa: E402,F401
from ganzoo.models import biggan  # noqa: E402,F401
from ganzoo.models import biggan_deep  # noqa: E402,F401
from ganzoo.models import sagan  # noqa: E402,F401
from ganzoo.models import conditional  # noqa: E402,F401
