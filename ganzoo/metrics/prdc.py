"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019, arXiv:1904.06991) and
density/coverage (Naeem et al. 2020, arXiv:2002.09797).

Distances are Euclidean in feature space, computed in JAX in row blocks (jitted, float32,
HIGHEST matmul precision, ||a||^2 + ||b||^2 - 2 a.b clamped at 0) so that 10k x 10k sets never
hold the full matrix; only the k+1 smallest distances or per-row counts leave each block.
All comparisons are done on squared distances; a point on a ball's boundary counts as inside.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

BLOCK = 1024


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  aa = jnp.sum(a * a, axis=1)[:, None]
  bb = jnp.sum(b * b, axis=1)[None, :]
  ab = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(aa + bb - 2.0 * ab, 0.0)


@functools.partial(jax.jit, static_argnames=("k",))
def _smallest_sq(q: jax.Array, ref: jax.Array, k: int) -> jax.Array:
  return -jax.lax.top_k(-_sq_dists(q, ref), k)[0]


_sq_dists_jit = jax.jit(_sq_dists)


@jax.jit
def _count_within(q: jax.Array, ref: jax.Array, ref_radii_sq: jax.Array) -> jax.Array:
  return jnp.sum(_sq_dists(q, ref) <= ref_radii_sq[None, :], axis=1)


def _blocked(fn, q: np.ndarray, *args, block: int = BLOCK) -> np.ndarray:
  """Applies fn(q_block, *args) over row blocks of q (last block zero-padded to `block` rows)."""
  q = np.asarray(q, np.float32)
  outs = []
  for i in range(0, len(q), block):
    part = q[i:i + block]
    n = len(part)
    if n < block and len(q) > block:
      part = np.concatenate([part, np.zeros((block - n, q.shape[1]), np.float32)])
    outs.append(np.asarray(fn(part, *args))[:n])
  return np.concatenate(outs)


def pairwise_distances(x: np.ndarray, y: np.ndarray, block: int = BLOCK) -> np.ndarray:
  """[N, M] Euclidean distances, computed in jitted row blocks."""
  y = jnp.asarray(y, jnp.float32)
  return np.sqrt(_blocked(_sq_dists_jit, x, y, block=block))


def knn_radii(x: np.ndarray, k: int, block: int = BLOCK) -> np.ndarray:
  """Distance from each row of x to its k-th nearest neighbour in x, itself excluded."""
  if not 1 <= k < len(x):
    raise ValueError(f"k={k} needs 1 <= k < number of samples ({len(x)})")
  ref = jnp.asarray(x, jnp.float32)
  return np.sqrt(_blocked(functools.partial(_smallest_sq, k=k + 1), x, ref, block=block)[:, k])


def _within_counts(query: np.ndarray, ref: np.ndarray, radii: np.ndarray,
                   block: int = BLOCK) -> np.ndarray:
  """For each query row: #{i : ||query - ref_i|| <= radii_i}."""
  ref = jnp.asarray(ref, jnp.float32)
  r2 = jnp.asarray(np.asarray(radii, np.float32) ** 2)
  return _blocked(_count_within, query, ref, r2, block=block)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3,
                     block: int = BLOCK) -> dict[str, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019, 1904.06991), k=3 by default.

  manifold(S) = union over s in S of the ball B(s, NND_k(s)), NND_k the distance to the k-th
  nearest other point of S. precision = fraction of fake samples inside manifold(real);
  recall = fraction of real samples inside manifold(fake).
  """
  precision = _within_counts(fake, real, knn_radii(real, k, block), block) > 0
  recall = _within_counts(real, fake, knn_radii(fake, k, block), block) > 0
  return {"precision": float(precision.mean()), "recall": float(recall.mean())}


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                     block: int = BLOCK) -> dict[str, float]:
  """Density and coverage (Naeem et al. 2020, 2002.09797), k=5 by default.

  density = 1/(k M) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]  (X real (N), Y fake (M));
  coverage = 1/N sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))].
  """
  radii = knn_radii(real, k, block)
  counts = _within_counts(fake, real, radii, block)
  nearest_fake = np.sqrt(_blocked(functools.partial(_smallest_sq, k=1), real,
                                  jnp.asarray(fake, jnp.float32), block=block)[:, 0])
  return {"density": float(counts.sum() / (k * len(fake))),
          "coverage": float((nearest_fake <= radii).mean())}
