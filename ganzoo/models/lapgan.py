"""LAPGAN's networks (Denton et al. 2015, arXiv:1506.05751, Sec. 4 "CIFAR10 and STL"), NHWC.

The coarsest level is a pair of fully connected nets; every finer level is a pair of convnets
conditioned on the up-sampled coarser image l_k. The layer lists follow the paper and the authors'
CIFAR-10 scripts (facebook/eyescream):

  coarsest (8x8)   G: z (100, U[-1, 1]) -> Dense(g_hidden) ReLU -> Dense(g_hidden) ReLU -> Dense(H*W*C)
                   D: x -> Dense(d_hidden) ReLU Dropout -> Dense(d_hidden) ReLU Dropout -> Dense(1)
                   paper Sec. 4: "densely connected nets ... with 2 hidden layers and ReLU
                   non-linearities. D uses Dropout and has 600 units/layer vs 1200 for G";
                   layer order and weight init N(0, 0.05) (G) / N(0, 0.005) (D), zero biases, from
                   eyescream cifar/scripts/train_cifar.lua. (That script, the GAN baseline, puts a
                   Sigmoid after G's second layer; the paper says ReLU, which is used here.)
  finer (16, 32)   G: [noise plane, l_k] (C + 1 channels) -> Conv7x7(g_ch) ReLU -> Conv7x7(g_ch) ReLU
                      -> Conv5x5(C), 'same' padding, linear output: the residual h_k
                   D: h_k + l_k -> Conv5x5(d_ch) ReLU -> Conv5x5 stride 2 (d_ch) -> flatten ReLU
                      Dropout(0.5) -> Dense(1)   ('valid' convolutions: 32 -> 28 -> 12, 16 -> 12 -> 4)
                   eyescream cifar/scripts/train_cifar_coarse_to_fine.lua (hidden_G = hidden_D = 64;
                   its SpatialConvolutionUpsample with factor 1 is a stride-1 convolution padded by
                   (k - 1) / 2). The paper, Sec. 3.2: l_k "is explicitly added to h_k before the
                   first convolution layer" of D (the script's CAddTable); `condition='concat'`
                   instead stacks l_k as C more input channels.
D returns logits [N]; the sigmoid of the scripts' BCECriterion is in the loss. The convnets use
Torch7's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (nn.Linear and
nn.SpatialConvolution reset()), which the conditional scripts keep.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

# Torch7 nn.Linear / nn.SpatialConvolution reset(): U(-stdv, stdv), stdv = 1 / sqrt(fan_in);
# variance_scaling(1/3, fan_in, uniform) draws U(-sqrt(3 * (1/3) / fan_in), +...) = the same.
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
  """Torch7's bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in = inputs per output unit)."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class DenseGenerator(nn.Module):
  """The coarsest level's G: z [N, z_dim] -> image [N, H, W, C] (linear output)."""
  shape: tuple[int, int, int]
  hidden: int = 1200

  @nn.compact
  def __call__(self, z, train=True):
    del train
    dense = lambda n: nn.Dense(n, kernel_init=nn.initializers.normal(0.05), bias_init=nn.initializers.zeros)
    h = nn.relu(dense(self.hidden)(z))
    h = nn.relu(dense(self.hidden)(h))
    return dense(math.prod(self.shape))(h).reshape(z.shape[0], *self.shape)


class DenseDiscriminator(nn.Module):
  """The coarsest level's D: image [N, H, W, C] -> logits [N]; Dropout(0.5) after each hidden layer."""
  hidden: int = 600
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, train=True):
    dense = lambda n: nn.Dense(n, kernel_init=nn.initializers.normal(0.005), bias_init=nn.initializers.zeros)
    h = x.reshape(x.shape[0], -1)
    for _ in range(2):
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(dense(self.hidden)(h)))
    return dense(1)(h)[:, 0]


def _conv(features: int, kernel: int, in_ch: int, stride: int = 1, padding: str = "SAME") -> nn.Conv:
  fan_in = kernel * kernel * in_ch
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                 kernel_init=TORCH_KERNEL_INIT, bias_init=torch_bias_init(fan_in))


class ConditionalGenerator(nn.Module):
  """A finer level's G: (noise plane [N, H, W, 1], l_k [N, H, W, C]) -> residual h_k [N, H, W, C]."""
  channels: int
  ch: int = 64

  @nn.compact
  def __call__(self, noise, cond, train=True):
    del train
    x = jnp.concatenate([noise, cond], axis=-1)   # the noise as a 4th "colour plane" (paper Sec. 4)
    h = nn.relu(_conv(self.ch, 7, x.shape[-1])(x))
    h = nn.relu(_conv(self.ch, 7, self.ch)(h))
    return _conv(self.channels, 5, self.ch)(h)


class ConditionalDiscriminator(nn.Module):
  """A finer level's D: (h_k or a generated residual, l_k) -> logits [N]."""
  ch: int = 64
  condition: str = "add"      # 'add' (paper, reference) | 'concat'
  dropout: float = 0.5

  @nn.compact
  def __call__(self, residual, cond, train=True):
    if self.condition == "add":
      x = residual + cond
    elif self.condition == "concat":
      x = jnp.concatenate([residual, cond], axis=-1)
    else:
      raise ValueError(f"model.d_condition must be 'add' or 'concat'; got {self.condition!r}")
    h = nn.relu(_conv(self.ch, 5, x.shape[-1], padding="VALID")(x))
    h = _conv(self.ch, 5, self.ch, stride=2, padding="VALID")(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h.reshape(h.shape[0], -1)))
    fan_in = h.shape[-1]
    return nn.Dense(1, kernel_init=TORCH_KERNEL_INIT, bias_init=torch_bias_init(fan_in))(h)[:, 0]


def d_output_size(size: int) -> int:
  """Spatial size after D's two 'valid' 5x5 convolutions (the second with stride 2)."""
  return (size - 4 - 5) // 2 + 1
