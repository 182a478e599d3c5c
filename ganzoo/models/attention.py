"""The SAGAN self-attention block (Zhang et al. 2019, arXiv:1805.08318), as used by BigGAN.

With x_i in R^C the feature at location i of an [N, H, W, C] map (L = H*W locations):

  f(x) = W_f x,  g(x) = W_g x,  h(x) = W_h x            (1x1 convolutions, no bias)
  s_ij = f(x_i)^T g(x_j)
  beta_{j,i} = exp(s_ij) / sum_i exp(s_ij)                (softmax over the attended locations i)
  o_j = W_v ( sum_i beta_{j,i} h(x_i) )
  y_j = x_j + gamma * o_j,   gamma a learned scalar initialised to 0.

Channel sizes: the paper writes W_f, W_g, W_h in R^{C/8 x C}; the reference implementations (the
authors' TF code, BigGAN-PyTorch's `Attention`) use C/8 for f and g and C/2 for h, with W_v in
R^{C x C/2}. That is the default here (`key_ratio=8`, `value_ratio=2`; `value_ratio=8` gives the
paper's equations).

Pooling: the paper attends over all L locations. BigGAN-PyTorch (and the SAGAN TF code) max-pool
the attended side, f and h (BigGAN's `phi` and `g`), by 2x2/stride 2, so the attention matrix is
L x L/4; `pool=True` (default) does that, `pool=False` gives the paper's L x L attention.
Name map to BigGAN-PyTorch: f = phi, g = theta, h = g, v = o.

The 1x1 projections are `nn.Conv` with leaves named 'kernel', so ganzoo.spectral_norm and the
orthogonal regularizer apply to them; gamma (a scalar) is left alone by both.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganzoo.models import layers

Array = jax.Array
Initializer = Callable[..., Array]


class SelfAttention(nn.Module):
  """Self-attention block y = x + gamma * v(softmax(f^T g) h) (arXiv:1805.08318, eqs. 1-3).

  Attributes:
    key_ratio: f and g have C // key_ratio channels (8 in the paper and in BigGAN).
    value_ratio: h has C // value_ratio channels (2 in the reference code, 8 in the paper).
    pool: max-pool f and h by 2 over space before attending (BigGAN-PyTorch); False is the paper.
    kernel_init: init of the four 1x1 kernels (BigGAN: orthogonal; SAGAN: Glorot).
  """
  key_ratio: int = 8
  value_ratio: int = 2
  pool: bool = True
  kernel_init: Initializer = nn.initializers.orthogonal()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"SelfAttention expects NHWC inputs; got shape {x.shape}")
    n, hgt, wid, c = x.shape
    ck, cv = c // self.key_ratio, c // self.value_ratio
    if ck < 1 or cv < 1:
      raise ValueError(f"SelfAttention needs at least {self.key_ratio} channels; got {c} — "
                       f"widen the model (config.model.ch) or move the attention resolution")
    if self.pool and (hgt % 2 or wid % 2):
      raise ValueError(f"SelfAttention(pool=True) needs even H, W; got {hgt}x{wid}")

    def proj(features: int, name: str, inp: Array) -> Array:
      return layers.Conv(features, (1, 1), use_bias=False, kernel_init=self.kernel_init,
                         name=name)(inp)

    f = proj(ck, 'f', x)  # keys (attended side)
    g = proj(ck, 'g', x)  # queries (one per output location)
    h = proj(cv, 'h', x)  # values
    if self.pool:
      f = nn.max_pool(f, (2, 2), strides=(2, 2))
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    f = f.reshape(n, -1, ck)
    h = h.reshape(n, -1, cv)
    g = g.reshape(n, hgt * wid, ck)
    s = jnp.einsum('njc,nic->nji', g, f)  # s[n, j, i] = f(x_i)^T g(x_j)
    beta = jax.nn.softmax(s, axis=-1)  # over attended locations i
    o = jnp.einsum('nji,nic->njc', beta, h).reshape(n, hgt, wid, cv)
    o = proj(c, 'v', o)
    gamma = self.param('gamma', nn.initializers.zeros_init(), ())
    return x + gamma * o
