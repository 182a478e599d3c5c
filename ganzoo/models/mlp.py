"""Fully connected GAN of the original paper (Goodfellow et al. 2014, arXiv:1406.2661).

G: z -> [Dense -> ReLU] x len(g_hidden) -> Dense(prod(image_shape)) -> tanh (or identity)
   -> reshape.
D: flatten -> [Dense -> LeakyReLU(0.2) | maxout] x len(d_hidden) (optional dropout) -> Dense(1).

Sizes (`config.model.size`):
- 'paper': the paper's MNIST setup (its pylearn2 `mnist.yaml`): G 2 x 1200 ReLU; D 2 maxout layers
  of 240 units x 5 pieces; weights U(-0.05, 0.05) in G and U(-0.005, 0.005) in D, biases 0. The
  paper's z_dim is 100 (ganzoo's default is 128) and its G output is a sigmoid; ganzoo uses tanh
  because its data lie in [-1, 1]. Dropout (the paper drops D's inputs and hidden units) is off
  unless `d_dropout` > 0.
- 'small': G and D 3 x 128 (ReLU / LeakyReLU 0.2), for 2-D toy problems; flax's LeCun-normal init.
- 'tiny': G and D 2 x 16, for tests.

Optional `config.model` overrides: `z_dim` (128), `g_hidden` / `d_hidden` (lists of widths),
`d_maxout_pieces` (0 = LeakyReLU(0.2)), `d_dropout` (drop rate on D's input and hidden layers; when
> 0, train-mode D calls need `rngs={'dropout': key}`), `output_activation` ('tanh' | 'none', e.g.
'none' for unbounded 2-D toy data), `init` ('paper' | 'lecun'). The model is unconditional: `y` is
accepted and ignored, and num_classes > 0 raises ValueError.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo.models import layers
from ganzoo.models import register

Array = jax.Array

SIZES: dict[str, dict[str, Any]] = {
    'paper': dict(g_hidden=(1200, 1200), d_hidden=(240, 240), d_maxout_pieces=5, init='paper'),
    'small': dict(g_hidden=(128, 128, 128), d_hidden=(128, 128, 128), d_maxout_pieces=0,
                  init='lecun'),
    'tiny': dict(g_hidden=(16, 16), d_hidden=(16, 16), d_maxout_pieces=0, init='lecun'),
}


def _init(kind: str, irange: float) -> layers.Initializer:
  """U(-irange, irange) (pylearn2's `irange`, the paper's init) or flax's LeCun normal."""
  if kind == 'paper':
    return _uniform_range(irange)
  if kind == 'lecun':
    return nn.initializers.lecun_normal()
  raise ValueError(f"mlp init must be 'paper' or 'lecun'; got {kind!r} — fix config.model.init")


def _uniform_range(irange: float) -> layers.Initializer:
  """U(-irange, irange)."""

  def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, -irange, irange)
  return init


class MLPGenerator(nn.Module):
  """G(z) = act(W_L relu(... relu(W_1 z + b_1) ...) + b_L) reshaped to `out_shape` (1406.2661)."""
  out_shape: tuple[int, ...]
  hidden: Sequence[int]
  z_dim: int = 128
  output_activation: str = 'tanh'
  init_scheme: str = 'lecun'

  @nn.compact
  def __call__(self, z: Array, y: Array | None = None, train: bool = True) -> Array:
    del y, train  # Unconditional, no batch norm.
    w_init = _init(self.init_scheme, 0.05)
    h = z
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, kernel_init=w_init, name=f'hidden_{i}')(h))
    h = nn.Dense(math.prod(self.out_shape), kernel_init=w_init, name='out')(h)
    if self.output_activation == 'tanh':
      h = jnp.tanh(h)
    return h.reshape((z.shape[0],) + tuple(self.out_shape))


class MLPDiscriminator(nn.Module):
  """D(x) = w^T a(... a(W_1 flatten(x) + b_1) ...) + b: one logit per example (arXiv:1406.2661).

  a = LeakyReLU(0.2), or maxout over `maxout_pieces` linear pieces when `maxout_pieces` > 0
  (Goodfellow et al. 2013, arXiv:1302.4389).
  """
  hidden: Sequence[int]
  maxout_pieces: int = 0
  dropout: float = 0.0
  init_scheme: str = 'lecun'

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, train: bool = True) -> Array:
    del y  # Unconditional.
    w_init = _init(self.init_scheme, 0.005)
    h = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      h = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)(h)
      if self.maxout_pieces > 0:
        h = nn.Dense(width * self.maxout_pieces, kernel_init=w_init, name=f'hidden_{i}')(h)
        h = h.reshape(h.shape[0], width, self.maxout_pieces).max(axis=-1)
      else:
        h = nn.leaky_relu(nn.Dense(width, kernel_init=w_init, name=f'hidden_{i}')(h), 0.2)
    h = nn.Dropout(self.dropout, deterministic=not train or self.dropout == 0.0)(h)
    return nn.Dense(1, kernel_init=w_init, name='out')(h)[:, 0]


@register('mlp')
def build(model_cfg: ml_collections.ConfigDict, image_shape: tuple[int, ...],
          num_classes: int = 0) -> tuple[nn.Module, nn.Module]:
  """(MLPGenerator, MLPDiscriminator) for data of any shape, e.g. (28, 28, 1) or (2,)."""
  if num_classes:
    raise ValueError(f"mlp is unconditional; got num_classes={num_classes} — set "
                     "config.model.conditional=False or pick a conditional model (e.g. cgan, "
                     "sngan_resnet)")
  size = model_cfg.get('size', 'paper')
  layers.check_size('mlp', size, tuple(SIZES))
  if not image_shape or any(int(d) <= 0 for d in image_shape):
    raise ValueError(f"mlp needs a non-empty data shape with positive sizes; got {image_shape} — "
                     "fix config.data.image_size / channels")
  cfg = dict(SIZES[size])
  for key in cfg:
    if model_cfg.get(key, None) is not None:
      cfg[key] = model_cfg[key]
  if cfg['init'] not in ('paper', 'lecun'):
    raise ValueError(f"mlp init must be 'paper' or 'lecun'; got {cfg['init']!r} — fix "
                     "config.model.init")
  out_act = model_cfg.get('output_activation', 'tanh')
  if out_act not in ('tanh', 'none'):
    raise ValueError(f"mlp output_activation must be 'tanh' or 'none'; got {out_act!r} — fix "
                     "config.model.output_activation")
  g = MLPGenerator(out_shape=tuple(int(d) for d in image_shape), hidden=tuple(cfg['g_hidden']),
                   z_dim=int(model_cfg.get('z_dim', 128)), output_activation=out_act,
                   init_scheme=cfg['init'])
  d = MLPDiscriminator(hidden=tuple(cfg['d_hidden']), maxout_pieces=int(cfg['d_maxout_pieces']),
                       dropout=float(model_cfg.get('d_dropout', 0.0)), init_scheme=cfg['init'])
  return g, d
