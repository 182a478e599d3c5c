"""The InfoGAN MNIST networks (Chen et al. 2016, arXiv:1606.03657, Appendix C, Table 1; reference:
openai/InfoGAN infogan/models/regularized_gan.py, `network_type == "mnist"`).

  G: input (z, c) [N, 74] -> FC 1024 BN ReLU -> FC 7*7*128 BN ReLU -> reshape [7, 7, 128]
       -> 4x4 upconv 64 stride 2 BN ReLU -> 4x4 upconv C stride 2 -> tanh
  D: x [N, 28, 28, C] -> 4x4 conv 64 stride 2 lReLU -> 4x4 conv 128 stride 2 BN lReLU
       -> FC 1024 BN lReLU (the shared body: `features`) -> FC 1 (`logits`)
  Q: D's 1024 features -> FC 128 BN lReLU -> FC (K categorical logits + the continuous codes' means
       [+ their log-variances when the std is learned])

Q shares D's body: `InfoGANDiscriminator` returns {'logits', 'features'} and `InfoGANQ` is the head
applied to the features, so the family trains Q's head and D's body together in the D phase
(the reference's `encoder_template` is `shared_template` + the Q layers, all in the `d_net` scope).

Decisions, each checked against the reference:
- lReLU slope 0.01: the reference's `leaky_rectify` default (infogan/misc/custom_ops.py), which the
  MNIST templates use (`config.model.leak` changes it).
- BatchNorm after the FC 7*7*128 layer normalizes each of the 6,272 features (the reference's
  `fc_batch_norm` runs before the reshape), not each of the 128 channels.
- No bias on layers that feed a BatchNorm: the reference's layers all carry one, but BN subtracts
  the batch mean, which cancels it exactly (its gradient is 0), so it is left out as in the zoo's
  DCGAN. D's first conv, D's output, Q's output and G's output keep their biases. The reference's
  parameter count is ours plus those dead biases (tests/test_infogan.py computes both by hand).
- Initialization as in the reference: conv kernels from TF's truncated normal (std 0.02 before
  truncation at 2 std), FC and upconv kernels N(0, 0.02^2), BN scales N(1, 0.02^2), biases 0.
- Output tanh into [-1, 1] (the zoo's pixel range); the reference's MNIST output is a sigmoid
  (Bernoulli mean) into [0, 1], the same function up to that affine pixel map and a factor 2 on
  the last layer's pre-activation (2 sigmoid(a) - 1 = tanh(a / 2)).
- Q's output: K logits (softmax: the categorical posterior) and, per continuous code, a mean. The
  MNIST launcher (launchers/run_mnist_exp.py) uses `Uniform(1, fix_std=True)`: a factored
  Gaussian posterior with std fixed to 1 (its layer still emits the unused log-variance columns:
  14 outputs, 2 of them dead). `learn_std=True` adds the log-variance outputs and uses them
  (std = sqrt(exp(s)), distributions.py `Gaussian.activate_dist`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganzoo.models import layers

Array = jax.Array

SIZES = {
    # fc: G's and D's FC width; g_ch: G's 7x7 channels (its upconv has g_ch / 2); d_ch: D's first
    # conv (the second has 2 * d_ch); q: Q's hidden width.
    'paper': dict(fc=1024, g_ch=128, d_ch=64, q=128),
    'tiny': dict(fc=16, g_ch=8, d_ch=4, q=8),
}

REFERENCE_LEAK = 0.01


def tf_truncated_normal(stddev: float = 0.02):
  """TF's `truncated_normal_initializer(stddev)`: N(0, stddev^2) redrawn outside +-2 std (no rescaling)."""

  def init(key, shape, dtype=jnp.float32):
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

  return init


def _bn(train: bool, name: str) -> layers.BatchNorm:
  # Reference conv_batch_norm: EMA decay 0.9 of the batch moments, epsilon 1e-5, gamma ~ N(1, 0.02).
  return layers.batch_norm(train, name=name, scale_init=layers.dcgan_bn_scale)


class InfoGANGenerator(nn.Module):
  """latent [N, z_dim + K + n_cont] -> images [N, H, W, C] in [-1, 1] (H, W divisible by 4)."""
  image_shape: tuple[int, int, int]
  fc: int = 1024
  g_ch: int = 128

  @nn.compact
  def __call__(self, latent: Array, train: bool = True) -> Array:
    h_img, w_img, c_img = self.image_shape
    bh, bw = h_img // 4, w_img // 4
    h = nn.Dense(self.fc, use_bias=False, kernel_init=layers.dcgan_normal, name='fc')(latent)
    h = nn.relu(_bn(train, 'bn_fc')(h))
    h = nn.Dense(bh * bw * self.g_ch, use_bias=False, kernel_init=layers.dcgan_normal, name='project')(h)
    h = nn.relu(_bn(train, 'bn_project')(h))   # per feature (before the reshape), as the reference
    h = h.reshape(latent.shape[0], bh, bw, self.g_ch)
    h = layers.ConvTranspose2x(self.g_ch // 2, use_bias=False, kernel_init=layers.dcgan_normal, name='up')(h)
    h = nn.relu(_bn(train, 'bn_up')(h))
    h = layers.ConvTranspose2x(c_img, kernel_init=layers.dcgan_normal, name='out')(h)
    return jnp.tanh(h)


class InfoGANDiscriminator(nn.Module):
  """images [N, H, W, C] -> {'logits': [N], 'features': [N, fc]} (the body Q shares)."""
  fc: int = 1024
  d_ch: int = 64
  leak: float = REFERENCE_LEAK

  @nn.compact
  def __call__(self, x: Array, train: bool = True) -> dict[str, Array]:
    pad = ((1, 1), (1, 1))   # TF 'SAME' for a 4x4 stride-2 conv on an even size
    h = layers.Conv(self.d_ch, (4, 4), strides=(2, 2), padding=pad, kernel_init=tf_truncated_normal(),
                    name='conv_0')(x)
    h = nn.leaky_relu(h, self.leak)
    h = layers.Conv(2 * self.d_ch, (4, 4), strides=(2, 2), padding=pad, use_bias=False,
                    kernel_init=tf_truncated_normal(), name='conv_1')(h)
    h = nn.leaky_relu(_bn(train, 'bn_1')(h), self.leak)
    h = h.reshape(h.shape[0], -1)
    h = nn.Dense(self.fc, use_bias=False, kernel_init=layers.dcgan_normal, name='fc')(h)
    features = nn.leaky_relu(_bn(train, 'bn_fc')(h), self.leak)
    logits = nn.Dense(1, kernel_init=layers.dcgan_normal, name='out')(features)[:, 0]
    return {'logits': logits, 'features': features}


class InfoGANQ(nn.Module):
  """D's features [N, fc] -> {'cat_logits': [N, K], 'cont_mean': [N, M], 'cont_log_std': [N, M]}
  (log std 0 when the std is fixed to 1)."""
  num_categories: int = 10
  num_continuous: int = 2
  hidden: int = 128
  learn_std: bool = False
  leak: float = REFERENCE_LEAK

  @nn.compact
  def __call__(self, features: Array, train: bool = True) -> dict[str, Array]:
    h = nn.Dense(self.hidden, use_bias=False, kernel_init=layers.dcgan_normal, name='fc')(features)
    h = nn.leaky_relu(_bn(train, 'bn_fc')(h), self.leak)
    k, m = self.num_categories, self.num_continuous
    out = nn.Dense(k + m * (2 if self.learn_std else 1), kernel_init=layers.dcgan_normal, name='out')(h)
    mean = out[:, k:k + m]
    # The reference's std = sqrt(exp(s)), i.e. log std = s / 2.
    log_std = 0.5 * out[:, k + m:] if self.learn_std else jnp.zeros_like(mean)
    return {'cat_logits': out[:, :k], 'cont_mean': mean, 'cont_log_std': log_std}


def build(model_cfg, image_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module, nn.Module]:
  """(G, D, Q) from `config.model` (size 'paper' | 'tiny', overrides fc, g_ch, d_ch, q; leak,
  num_categories, num_continuous, learn_std)."""
  size = model_cfg.get('size', 'paper')
  layers.check_size('infogan', size, tuple(SIZES))
  if len(image_shape) != 3 or image_shape[0] % 4 or image_shape[1] % 4:
    raise ValueError(f"infogan's networks need H and W divisible by 4 (28x28 in the paper); got {tuple(image_shape)}: "
                     "set config.data.image_size")
  width = {k: int(model_cfg.get(k, None) or v) for k, v in SIZES[size].items()}
  leak = float(model_cfg.get('leak', REFERENCE_LEAK))
  g = InfoGANGenerator(tuple(int(s) for s in image_shape), fc=width['fc'], g_ch=width['g_ch'])
  d = InfoGANDiscriminator(fc=width['fc'], d_ch=width['d_ch'], leak=leak)
  q = InfoGANQ(num_categories=int(model_cfg.num_categories), num_continuous=int(model_cfg.num_continuous),
               hidden=width['q'], learn_std=bool(model_cfg.get('learn_std', False)), leak=leak)
  return g, d, q
