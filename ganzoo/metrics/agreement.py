"""CoGAN's digit <-> edge task: the edge transform and the pixel agreement of generated pairs.

Liu & Tuzel 2016 (arXiv:1606.07536, Sec. 5, "digits"): domain 2 holds edge images of domain 1's
digits, made by the reference (mingyuliutw/CoGAN cogan/tools/prepare_mnist.edge.cogan.py, and
cogan_pytorch/src/dataset_mnistedge.py) as

    dilation = cv2.dilate(img, np.ones((3, 3), np.uint8), iterations=1);  edge = dilation - img

on the uint8 image: a 3x3 square structuring element, one iteration, no binarization, the border
ignored (cv2's default border for dilation is -inf, so a border pixel's maximum is taken over the
neighbours inside the image). The paper scores a trained CoGAN by transforming G1(z) with the same
transform and counting the pixels where it agrees with G2(z), over 10,000 z ("ratios of agreed
pixels between 10K pairs of images").

Images here are in [-1, 1] (uint8 pixel p -> p / 127.5 - 1). In [0, 1] terms the edge is
max_3x3(y) - y; in [-1, 1] terms it is `max_3x3(x) - x - 1`, which maps 0-valued edges to -1.

Agreement needs a binary decision per pixel, which the paper does not spell out: a pixel is "on"
when its value lies above the mid-grey 0 of [-1, 1] (0.5 in [0, 1]); both images are binarized so
(the edge of G1(z) after the transform, G2(z) as generated) and the agreement is the fraction of
pixels with the same decision. The transform is applied to the grey-level G1(z), as the training
data's edges are made from grey-level images.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# uint8 pixel -> float32 [-1, 1], the table the training step uses (`ganzoo.step.PIXEL_TABLE`).
_PIXEL_TABLE = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def dilate_3x3(x: Array) -> Array:
  """Grey-level dilation of NHWC images with a 3x3 square: each pixel's max over its 3x3 neighbourhood,
  the border ignored (padding with -inf), as cv2.dilate(img, np.ones((3, 3))) with its default border."""
  n, h, w, c = x.shape
  pad = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  out = pad[:, 0:h, 0:w]
  for di in range(3):
    for dj in range(3):
      if di or dj:
        out = jnp.maximum(out, pad[:, di:di + h, dj:dj + w])
  return out


def edge_transform(x: Array) -> Array:
  """Edge images of NHWC images in [-1, 1]: dilation (3x3) minus the image, in [-1, 1].

  [0, 1] terms: e = max_3x3(y) - y with y = (x + 1) / 2; back in [-1, 1]: 2e - 1 = max_3x3(x) - x - 1.
  """
  return dilate_3x3(x) - x - 1.0


def edge_pixels(x: Array) -> Array:
  """The exact edge images of pixel images given in [-1, 1] (as the training step delivers them).

  The pixel values p are recovered exactly (round((x + 1) * 127.5); every value of the pixel table
  is within an ulp of p / 127.5 - 1), the edge dilate(p) - p is computed in integers (exact in
  float32) and mapped through the same table, so the result equals, bit for bit, the edge image
  made from the uint8 image on the host (`edge_uint8`) and delivered as pixels.
  """
  p = jnp.round((x + 1.0) * 127.5)
  e = dilate_3x3(p) - p
  return jnp.asarray(_PIXEL_TABLE)[e.astype(jnp.int32)]


def edge_uint8(images: np.ndarray) -> np.ndarray:
  """The reference's transform on uint8 images [N, H, W(, C)] in numpy: dilate(img, 3x3) - img."""
  x = np.asarray(images)
  if x.dtype != np.uint8:
    raise ValueError(f"edge_uint8 takes uint8 images; got {x.dtype}")
  h, w = x.shape[1], x.shape[2]
  pad = np.pad(x, [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 3))   # 0 <= every pixel: ignored by max
  dil = np.max(np.stack([pad[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]), axis=0)
  return dil - x


def binarize(x: Array, threshold: float = 0.0) -> Array:
  """Pixels above `threshold` (default the mid-grey 0 of [-1, 1])."""
  return x > threshold


def pixel_agreement(images_1: Array, images_2: Array, threshold: float = 0.0,
                    transform: Callable[[Array], Array] | None = edge_transform) -> Array:
  """Fraction of pixels where binarize(transform(images_1)) == binarize(images_2), over all pairs.

  Args:
    images_1: domain-1 images G1(z) [N, H, W, C] in [-1, 1].
    images_2: domain-2 images G2(z) of the same z, same shape.
    threshold: the binarization level in [-1, 1] units.
    transform: the domain-1 -> domain-2 transform (`edge_transform`; None: identity, for the
      paper's digit <-> negative-digit task use `lambda x: -x`).
  Returns:
    a float32 scalar in [0, 1]; 1.0 for a perfect pair.
  """
  if images_1.shape != images_2.shape:
    raise ValueError(f"pixel_agreement needs pairs of equal shape; got {images_1.shape} and {images_2.shape}")
  t1 = images_1 if transform is None else transform(images_1)
  return jnp.mean((binarize(t1, threshold) == binarize(images_2, threshold)).astype(jnp.float32))


def agreement_of_generator(pair_fn: Callable[[Array], tuple[Array, Array]], latent_fn: Callable[[Array, int], Array],
                           rng: Array, num_pairs: int = 10_000, batch_size: int = 500, threshold: float = 0.0,
                           transform: Callable[[Array], Array] | None = edge_transform) -> float:
  """The paper's score: the pixel agreement over `num_pairs` pairs pair_fn(z) = (G1(z), G2(z)),
  z = latent_fn(key, n) drawn in batches of `batch_size` (key i = fold_in(rng, i)). Each batch's
  mean is weighted by its size: the result is the mean over all pixels of all pairs."""
  fn = jax.jit(lambda z: pixel_agreement(*pair_fn(z), threshold=threshold, transform=transform))
  total, done, i = 0.0, 0, 0
  while done < num_pairs:
    n = min(batch_size, num_pairs - done)
    total += float(fn(latent_fn(jax.random.fold_in(rng, i), n))) * n
    done, i = done + n, i + 1
  return total / num_pairs
