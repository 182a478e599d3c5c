"""Interpretable directions in a generator's latent space, and sheets of edits along them.

  sefa(gen)                          closed form (Shen & Zhou 2021, arXiv:2007.06600)
  ganspace(gen, rng)                 PCA of W, or of the first layer's features (Härkönen et al. 2020,
                                     arXiv:2004.02546)
  interfacegan(latents, scores)      a linear SVM boundary for a binary attribute (Shen et al. 2020,
                                     arXiv:1907.10786)
  voynov_babenko(gen, rng)           a direction matrix and a reconstructor trained jointly (Voynov &
                                     Babenko 2020, arXiv:2002.03754)
Every method returns `Directions(vectors [K, D] unit rows, values [K], space)`; D is w_dim for the
style family ('w') and z_dim otherwise ('z').
"""

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganzoo.latent.generator import LatentGenerator

METHODS = ("sefa", "ganspace", "interfacegan", "voynov")


class Directions(NamedTuple):
  vectors: np.ndarray     # [K, D], unit rows
  values: np.ndarray      # [K]: eigenvalues (SeFa), variances (GANSpace), accuracy (InterFaceGAN), ...
  space: str              # 'z' or 'w'
  info: dict = {}


def default_space(gen: LatentGenerator) -> str:
  return "w" if gen.has_w else "z"


# ---------------------------------------------------------------------------------------------
# SeFa

def sefa_matrix(weight: jax.Array, normalize: bool = True) -> jax.Array:
  """A^T A for the first projection A [out, in] of the latent (arXiv:2007.06600 Eq. 5). With
  `normalize`, each output unit's weight row is scaled to unit norm first, as the reference
  implementation (genforce/sefa sefa.py factorize_weight) does."""
  a = jnp.asarray(weight, jnp.float32)
  if normalize:
    a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
  return a.T @ a


def sefa(gen: LatentGenerator, k: int = 8, normalize: bool = True) -> Directions:
  """The top-k eigenvectors of A^T A (the directions n maximizing ||A n||^2 with ||n|| = 1, i.e. the
  largest change of the first layer's output), A the style affines (style family, in W) or the
  first dense layer on z (z family). Eigenvalues descending; each vector's sign is fixed so that
  its largest-magnitude entry is positive (eigenvectors are defined up to sign)."""
  a = gen.first_layer(gen.params)
  vals, vecs = jnp.linalg.eigh(sefa_matrix(a, normalize))
  order = jnp.argsort(-vals)[:k]
  vecs, vals = np.asarray(vecs[:, order].T), np.asarray(vals[order])
  return Directions(_fix_sign(vecs), vals, default_space(gen))


def _fix_sign(vecs: np.ndarray) -> np.ndarray:
  idx = np.argmax(np.abs(vecs), axis=1)
  return vecs * np.sign(vecs[np.arange(len(vecs)), idx])[:, None]


# ---------------------------------------------------------------------------------------------
# GANSpace

def pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(components [k, D] unit rows, variances [k] descending, mean [D]) of samples x [N, D] (SVD of
  the centred data; variance = s^2 / (N - 1))."""
  x = jnp.asarray(x, jnp.float32)
  mean = jnp.mean(x, axis=0)
  _, s, vt = jnp.linalg.svd(x - mean[None], full_matrices=False)
  return _fix_sign(np.asarray(vt[:k])), np.asarray(jnp.square(s[:k]) / (x.shape[0] - 1)), np.asarray(mean)


def ganspace(gen: LatentGenerator, rng: jax.Array, k: int = 8, n: int = 10_000) -> Directions:
  """PCA of n mapped samples w (style family: the components are directions in W, arXiv:2004.02546
  Sec. 2), or, for a z generator, PCA of the first dense layer's outputs y = A z (the paper's
  "early features" of BigGAN) transferred to z by least squares: the z-direction u_j minimizing
  sum_i || z_i - sum_j c_ij u_j ||^2 over the PCA coordinates c = (y - mean) V^T (Sec. 2, for
  generators without a mapping network). Values: the variances along the components."""
  z = jax.random.normal(rng, (n, gen.z_dim), jnp.float32)
  if gen.has_w:
    w = np.asarray(jax.jit(gen.mapping)(gen.params, z))
    comps, var, mean = pca(w, k)
    return Directions(comps, var, "w", {"mean": mean})
  a = np.asarray(gen.first_layer(gen.params), np.float64)        # [out, z_dim]
  y = np.asarray(z, np.float64) @ a.T
  comps, var, mean = pca(y, k)
  coords = (y - mean) @ comps.T                                   # [n, k]
  u, *_ = np.linalg.lstsq(coords, np.asarray(z, np.float64), rcond=None)   # [k, z_dim]
  u = u / np.linalg.norm(u, axis=1, keepdims=True)
  return Directions(u.astype(np.float32), var, "z", {"feature_components": comps})


# ---------------------------------------------------------------------------------------------
# InterFaceGAN

class LinearSVM(NamedTuple):
  w: np.ndarray        # [D]
  b: float
  accuracy: float      # on the training latents
  loss: float


@functools.partial(jax.jit, static_argnames=("steps", "squared"))
def _svm_fit(x, y, c, steps, lr, squared):
  def loss_fn(p):
    margin = 1.0 - y * (x @ p["w"] + p["b"])
    hinge = jnp.square(jnp.maximum(0.0, margin)) if squared else jnp.maximum(0.0, margin)
    return 0.5 * jnp.sum(jnp.square(p["w"])) + c * jnp.mean(hinge)
  tx = optax.adam(lr)
  p = {"w": jnp.zeros(x.shape[1], jnp.float32), "b": jnp.zeros((), jnp.float32)}

  def body(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(loss_fn)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), loss

  (p, _), losses = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
  return p, losses[-1]


def linear_svm(x: np.ndarray, y: np.ndarray, c: float = 10.0, steps: int = 2000, lr: float = 0.01,
               squared: bool = True) -> LinearSVM:
  """A linear SVM: argmin_{w,b} ||w||^2 / 2 + C mean_i l(1 - y_i (w.x_i + b)) with labels y in {-1, +1},
  l the squared hinge max(0, .)^2 (the L2-loss SVM, smooth) or, with squared=False, the hinge;
  full-batch Adam in one jitted scan. (InterFaceGAN fits sklearn's linear SVC; this is the same
  primal problem, written in jnp to avoid the dependency.)"""
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  if set(np.unique(np.asarray(y)).tolist()) - {-1.0, 1.0}:
    raise ValueError("linear_svm labels must be -1 or +1")
  p, loss = _svm_fit(x, y, jnp.float32(c), steps, jnp.float32(lr), squared)
  acc = float(jnp.mean(jnp.sign(x @ p["w"] + p["b"]) == y))
  return LinearSVM(np.asarray(p["w"]), float(p["b"]), acc, float(loss))


def interfacegan(latents: np.ndarray, scores: np.ndarray, ratio: float = 0.3, val_fraction: float = 0.2,
                 space: str = "z", rng: np.random.Generator | None = None, **svm_kwargs: Any) -> Directions:
  """The unit normal of a linear SVM separating the latents whose attribute score is in the top
  `ratio` (label +1) from those in the bottom `ratio` (label -1) (arXiv:1907.10786 Sec. 3.2 and its
  reference train_boundary: the most confident samples, a validation split). The direction points
  towards the attribute. Values: [validation accuracy]; info: train/val accuracy, the boundary."""
  latents, scores = np.asarray(latents, np.float32), np.asarray(scores, np.float32).reshape(-1)
  if latents.ndim != 2 or len(latents) != len(scores):
    raise ValueError(f"latents [N, D] and scores [N] must match; got {latents.shape} and {scores.shape}")
  order = np.argsort(scores)
  m = int(len(scores) * ratio)
  if m < 2:
    raise ValueError(f"interfacegan needs more samples: ratio {ratio} of {len(scores)} leaves {m} per class")
  idx = np.concatenate([order[-m:], order[:m]])
  x, y = latents[idx], np.concatenate([np.ones(m), -np.ones(m)]).astype(np.float32)
  perm = (rng or np.random.default_rng(0)).permutation(len(idx))
  n_val = int(len(idx) * val_fraction)
  val, tr = perm[:n_val], perm[n_val:]
  svm = linear_svm(x[tr], y[tr], **svm_kwargs)
  val_acc = float(np.mean(np.sign(x[val] @ svm.w + svm.b) == y[val])) if n_val else float("nan")
  normal = svm.w / np.linalg.norm(svm.w)
  info = {"train_accuracy": svm.accuracy, "val_accuracy": val_acc, "bias": svm.b / np.linalg.norm(svm.w),
          "num_per_class": m}
  return Directions(normal[None].astype(np.float32), np.asarray([val_acc], np.float32), space, info)


def brightness(images: jax.Array) -> jax.Array:
  """A simple attribute score: the mean intensity of each image in [-1, 1] (a "classifier" that
  needs no training; any per-image score or classifier probability can be passed instead)."""
  return jnp.mean(images, axis=(1, 2, 3))


def coverage(images: jax.Array) -> jax.Array:
  """The fraction of pixels brighter than mid-grey (the object's size for Fashion-MNIST)."""
  return jnp.mean((jnp.mean(images, axis=-1) > 0.0).astype(jnp.float32), axis=(1, 2))


ATTRIBUTES: dict[str, Callable[[jax.Array], jax.Array]] = {"brightness": brightness, "coverage": coverage}


def sample_latents(gen: LatentGenerator, rng: jax.Array, n: int, space: str) -> tuple[jax.Array, jax.Array]:
  """(latents [n, D] in `space`, their images) for z ~ N(0, I), in chunks of 500."""
  z = jax.random.normal(rng, (n, gen.z_dim), jnp.float32)
  lat = jax.jit(gen.mapping)(gen.params, z) if space == "w" else z
  render = jax.jit(lambda l: edit_images(gen, space, l))
  images = jnp.concatenate([render(lat[i:i + 500]) for i in range(0, n, 500)])
  return lat, images


# ---------------------------------------------------------------------------------------------
# Voynov & Babenko 2020

class Reconstructor(nn.Module):
  """R(x, x') -> (logits over K directions, shift): a small CNN on the image pair stacked on channels
  (the paper's LeNet-style reconstructor for MNIST-size images)."""
  k: int

  @nn.compact
  def __call__(self, x, x2):
    h = jnp.concatenate([x, x2], axis=-1)
    for f in (32, 64, 64):
      h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2))(h))
    h = nn.relu(nn.Dense(128)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.k)(h), nn.Dense(1)(h)[:, 0]


def voynov_babenko(gen: LatentGenerator, rng: jax.Array, k: int = 8, steps: int = 1000, batch: int = 32,
                   max_shift: float = 6.0, min_shift: float = 0.5, shift_weight: float = 0.25, lr: float = 1e-3,
                   space: str | None = None) -> Directions:
  """Directions A [K, D] (unit rows) and a reconstructor R trained jointly with G frozen
  (arXiv:2002.03754 Sec. 3): for z ~ N(0, I), k ~ U{0..K-1}, eps ~ U[-max, max] with |eps| >= min,
  R(G(z), G(z + eps A_k)) predicts k (cross-entropy) and eps (L1, weight `shift_weight`); both
  minimize it, so A's directions become ones whose effects are distinguishable. The paper's
  defaults: 'ortho' or 'normalized' A (here normalized rows), eps in [-6, 6], weight 0.25, Adam.
  The shift is in W for the style family (the latent scale there is w_std; shifts are scaled by it)
  and in z otherwise. Values: R's final classification accuracy over the last 100 steps."""
  space = space or default_space(gen)
  rng_a, rng_r, rng_loop, rng_s = jax.random.split(rng, 4)
  d = gen.w_dim if space == "w" else gen.z_dim
  scale = 1.0
  if space == "w":
    from ganzoo.latent.generator import w_stats  # pylint: disable=g-import-not-at-top
    _, std = w_stats(gen, rng_s)
    scale = float(std) / np.sqrt(d)   # w_std is the norm-scale of w's spread; per-coordinate std
  recon = Reconstructor(k)
  h, w, c = gen.image_shape
  img0 = jnp.zeros((1, h, w, c), jnp.float32)
  params = {"a": jax.random.normal(rng_a, (k, d), jnp.float32), "r": recon.init(rng_r, img0, img0)["params"]}
  tx = optax.adam(lr)

  def loss_fn(p, key):
    kz, kk, ke, ks = jax.random.split(key, 4)
    z = jax.random.normal(kz, (batch, gen.z_dim), jnp.float32)
    lat = gen.mapping(gen.params, z) if space == "w" else z
    idx = jax.random.randint(kk, (batch,), 0, k)
    mag = jax.random.uniform(ke, (batch,), jnp.float32, min_shift, max_shift)
    eps = mag * jnp.where(jax.random.bernoulli(ks, 0.5, (batch,)), 1.0, -1.0)
    a = p["a"] / jnp.linalg.norm(p["a"], axis=1, keepdims=True)
    shifted = lat + (eps * scale)[:, None] * a[idx]
    x = jax.lax.stop_gradient(edit_images(gen, space, lat))
    x2 = edit_images(gen, space, shifted)
    logits, eps_hat = recon.apply({"params": p["r"]}, x, x2)
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, idx))
    l1 = jnp.mean(jnp.abs(eps_hat - eps))
    acc = jnp.mean(jnp.argmax(logits, -1) == idx)
    return ce + shift_weight * l1, (ce, l1, acc)

  @jax.jit
  def train(p, gen_):
    del gen_

    def body(carry, i):
      p, s = carry
      (_, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(p, jax.random.fold_in(rng_loop, i))
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), aux

    (p, _), aux = jax.lax.scan(body, (p, tx.init(p)), jnp.arange(steps))
    return p, aux

  p, (ce, l1, acc) = train(params, gen)
  a = np.asarray(p["a"] / jnp.linalg.norm(p["a"], axis=1, keepdims=True))
  tail = slice(max(0, steps - 100), steps)
  info = {"accuracy": float(jnp.mean(acc[tail])), "ce": float(jnp.mean(ce[tail])),
          "shift_l1": float(jnp.mean(l1[tail])), "shift_scale": scale}
  return Directions(a, np.full((k,), info["accuracy"], np.float32), space, info)


# ---------------------------------------------------------------------------------------------
# Edits

def edit_images(gen: LatentGenerator, space: str, latents: jax.Array) -> jax.Array:
  """Images of latents [N, D] in 'z' or 'w' (no synthesis noise), or [N, num_ws, w_dim] in W+."""
  if space == "z":
    return gen.images_z(gen.params, latents)
  if latents.ndim == 2:
    latents = jnp.broadcast_to(latents[:, None], (latents.shape[0], gen.num_ws, latents.shape[-1]))
  return gen.images_ws(gen.params, latents, None)


def edit_sheet(gen: LatentGenerator, directions: Directions, latent: jax.Array, strengths: np.ndarray) -> np.ndarray:
  """Images [K, S, H, W, C]: row k = `latent` (one base latent [D], or W+ [num_ws, w_dim]) moved by
  strengths[s] * vectors[k] (in W+, the same step on every layer)."""
  vec = jnp.asarray(directions.vectors, jnp.float32)
  latent = jnp.asarray(latent, jnp.float32)
  steps = jnp.asarray(strengths, jnp.float32)
  shift = steps[None, :, None] * vec[:, None, :]                        # [K, S, D]
  if latent.ndim == 2:   # W+
    lat = latent[None, None] + shift[:, :, None, :]
    flat = lat.reshape(-1, *latent.shape)
  else:
    flat = (latent[None, None] + shift).reshape(-1, latent.shape[-1])
  images = jax.jit(lambda l: edit_images(gen, directions.space if latent.ndim == 1 else "w+", l))(flat)
  return np.asarray(images).reshape(len(vec), len(steps), *images.shape[1:])
