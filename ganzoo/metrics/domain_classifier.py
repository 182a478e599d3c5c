"""A small CNN domain classifier, trained on real images, that scores translated images.

StarGAN's evaluation (Choi et al. 2018, arXiv:1711.09020, Sec. 5.4: "we train a facial expression
classifier on the real images ... and compute the classification accuracy of the synthesized
images") asks whether an image translated into domain k looks like domain k to a classifier that
has only seen real images. This is that classifier for small images (Fashion-MNIST's 28x28):

  conv 3x3 32, ReLU, max-pool 2 -> conv 3x3 64, ReLU, max-pool 2 -> dense 128, ReLU -> dense K

trained with Adam(1e-3) on softmax cross-entropy over random mini-batches of the training images
(inputs in [-1, 1], NHWC). Its accuracy on the real test images is the ceiling to read the
translations' accuracy against.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class CNN(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    h = nn.max_pool(nn.relu(nn.Conv(32, (3, 3))(x)), (2, 2), (2, 2))
    h = nn.max_pool(nn.relu(nn.Conv(64, (3, 3))(h)), (2, 2), (2, 2))
    h = nn.relu(nn.Dense(128)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.num_classes)(h)


class Classifier(NamedTuple):
  module: CNN
  params: dict

  def logits(self, images, batch_size: int = 500) -> np.ndarray:
    """Logits [N, K] of images in [-1, 1] (or uint8 pixels), in batches."""
    images = as_float(images)
    apply = _apply_fn(self.module)
    return np.concatenate([np.asarray(apply(self.params, images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])

  def predict(self, images, batch_size: int = 500) -> np.ndarray:
    return self.logits(images, batch_size).argmax(-1)

  def accuracy(self, images, labels, batch_size: int = 500) -> float:
    return float(np.mean(self.predict(images, batch_size) == np.asarray(labels)))


_APPLY = {}


def _apply_fn(module):
  if module not in _APPLY:
    _APPLY[module] = jax.jit(module.apply)
  return _APPLY[module]


def as_float(images) -> np.ndarray:
  """uint8 pixels -> float32 [-1, 1]; float images unchanged."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
  return images.astype(np.float32)


def train(images, labels, num_classes: int, steps: int = 1000, batch_size: int = 128, lr: float = 1e-3,
          seed: int = 0) -> Classifier:
  """The classifier fitted to (images [N, H, W, C] uint8 or [-1, 1], int labels [N]) by `steps` Adam steps."""
  x, y = as_float(images), np.asarray(labels, np.int32)
  if len(x) != len(y) or len(x) < batch_size:
    raise ValueError(f"need >= batch_size={batch_size} images with one label each; got {len(x)} images, "
                     f"{len(y)} labels")
  module = CNN(int(num_classes))
  params = module.init(jax.random.PRNGKey(seed), x[:1])
  tx = optax.adam(lr)
  opt = tx.init(params)

  @jax.jit
  def update(params, opt, xb, yb):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(module.apply(p, xb), yb).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  order = np.random.default_rng(seed)
  for _ in range(int(steps)):
    idx = order.integers(0, len(x), batch_size)
    params, opt, _ = update(params, opt, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
  return Classifier(module, params)
