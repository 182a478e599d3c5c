"""Spectral normalization as a state transform over a whole parameter tree.

Spectral normalization (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
Networks", arXiv:1802.05957, Algorithm 1) replaces every weight matrix W by W / sigma(W), where
sigma(W) is its largest singular value, estimated by power iteration with a persistent vector u
per matrix (one iteration per training step is enough because W changes slowly).

Here it is an optax-style pair of pure functions over a param tree, so the models stay plain and
any model gets SN on D, on G, or on both, without code changes:

  sn = spectral_norm(n_power_iterations=1)
  state = sn.init(params, rng)                             # one u vector per included leaf
  normalized, state = sn.apply(params, state, update=True)  # train step
  logits = D.apply({'params': normalized}, x)
  normalized, _ = sn.apply(params, state, update=False)     # evaluation: u is not updated

Take gradients of the loss w.r.t. the *raw* params through `sn.apply` (W / sigma is
differentiated with u and v held fixed, as in the paper); the optimizer updates the raw params,
and the state returned by `apply` goes into the checkpointed train state.

Orientation: a leaf W of shape (..., out) (Dense (in, out), Conv/ConvTranspose (kh, kw, in, out),
nn.Embed 'embedding' (num, features)) is reshaped to W_mat of shape (-1, out); u has `out`
entries, v has W_mat.shape[0] entries, and one power iteration is
  v = normalize(W_mat u),  u = normalize(W_mat^T v),  sigma = v^T W_mat u,
which is Algorithm 1 of the paper with its W = W_mat^T (and its u, v our u, v swapped).
"""

import operator
import re
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp

PyTree = Any
Path = tuple[str, ...]
IncludeFn = Callable[[Path, jax.Array], bool]
Include = Union[None, str, IncludeFn]


class SpectralNormState(NamedTuple):
  """Power-iteration vectors: `u[path]` has shape (out,) float32, keyed by '/'-joined path."""
  u: dict[str, jax.Array]


class SpectralNorm(NamedTuple):
  """The (init, apply, sigmas) triple returned by `spectral_norm`.

  init(params, rng) -> SpectralNormState
  apply(params, state, update=True) -> (normalized_params, new_state)
  sigmas(params, state) -> {path: sigma}   (stored-u estimate, no update; for logging)
  """
  init: Callable[[PyTree, jax.Array], SpectralNormState]
  apply: Callable[..., tuple[PyTree, SpectralNormState]]
  sigmas: Callable[[PyTree, SpectralNormState], dict[str, jax.Array]]


# ----------------------------------------------------------------------------------------------
# Paths and leaf selection (shared with ganzoo.regularizers).


def _key_str(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_tuple(path: Any) -> Path:
  """Converts a jax.tree_util key path to a tuple of strings, e.g. ('Dense_0', 'kernel')."""
  return tuple(_key_str(k) for k in path)


def path_str(path: Path) -> str:
  """'/'-joined path, e.g. 'Dense_0/kernel'."""
  return "/".join(path)


def default_include(path: Path, leaf: Any) -> bool:
  """True for 'kernel' leaves with ndim >= 2 (Dense/Conv/ConvTranspose) and 'embedding' leaves."""
  if not path:
    return False
  name = path[-1]
  ndim = getattr(leaf, "ndim", 0)
  return (name == "kernel" and ndim >= 2) or (name == "embedding" and ndim == 2)


def resolve_include(include: Include = None, exclude: str | None = None,
                    default: IncludeFn = default_include) -> IncludeFn:
  """Builds a predicate (path_tuple, leaf) -> bool.

  Args:
    include: None for `default`; a regex string: leaves accepted by `default` whose '/'-joined
      path matches it (`re.search`); or a callable(path_tuple, leaf) -> bool used as is.
    exclude: optional regex; leaves whose '/'-joined path matches it (`re.search`) are excluded.
    default: the base selection (`default_include` unless a caller says otherwise).

  Returns:
    The predicate.
  """
  if include is None:
    base = default
  elif isinstance(include, str):
    try:
      pattern = re.compile(include)
    except re.error as e:
      raise ValueError(f"include={include!r} is not a valid regex ({e}); fix the pattern") from e

    def base(path, leaf):
      return default(path, leaf) and pattern.search(path_str(path)) is not None
  elif callable(include):
    base = include
  else:
    raise ValueError(f"include must be None, a regex string or a callable, not {type(include)}")
  if exclude is None:
    return base
  try:
    ex = re.compile(exclude)
  except re.error as e:
    raise ValueError(f"exclude={exclude!r} is not a valid regex ({e}); fix the pattern") from e
  return lambda path, leaf: base(path, leaf) and ex.search(path_str(path)) is None


def selected_leaves(params: PyTree, include_fn: IncludeFn) -> dict[str, jax.Array]:
  """{'/'-joined path: leaf} for the leaves of `params` that `include_fn` selects."""
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  out = {}
  for kp, leaf in flat:
    p = path_tuple(kp)
    if include_fn(p, leaf):
      out[path_str(p)] = leaf
  return out


def as_matrix(w: jax.Array) -> jax.Array:
  """Reshapes a leaf of shape (..., out) to (-1, out) (a vector (n,) to (1, n))."""
  if w.ndim == 0:
    raise ValueError("spectral norm needs leaves with ndim >= 1; exclude scalar leaves")
  return jnp.reshape(w, (-1, w.shape[-1]))


# ----------------------------------------------------------------------------------------------
# Power iteration.


def _normalize(x: jax.Array, eps: float) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def power_iteration(w_mat: jax.Array, u: jax.Array, n_iterations: int,
                    eps: float = 1e-12) -> tuple[jax.Array, jax.Array]:
  """`n_iterations` steps of v = normalize(W u), u = normalize(W^T v); returns (u, v), stopped."""
  w_mat = jax.lax.stop_gradient(w_mat)
  u = jax.lax.stop_gradient(u)
  v = None
  for _ in range(n_iterations):
    v = _normalize(w_mat @ u, eps)
    u = _normalize(w_mat.T @ v, eps)
  return u, v


def _normalize_leaf(w: jax.Array, u: jax.Array, n_iterations: int, update: bool,
                    eps: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Returns (W / sigma, new u, sigma) for one leaf; sigma is differentiable w.r.t. W."""
  compute = jnp.promote_types(w.dtype, jnp.float32)   # at least float32; float64 weights stay float64
  w_mat = as_matrix(w).astype(compute)
  if u.shape != (w_mat.shape[1],):
    raise ValueError(f"u has shape {u.shape} but the leaf needs ({w_mat.shape[1]},); "
                     "the param tree changed since sn.init: re-run init")
  if update:
    u, v = power_iteration(w_mat, u, n_iterations, eps)
  else:
    u = jax.lax.stop_gradient(u)
    v = _normalize(jax.lax.stop_gradient(w_mat) @ u, eps)
  sigma = v @ (w_mat @ u)
  w_sn = w.astype(compute) / jnp.maximum(sigma, eps)
  return w_sn.astype(w.dtype), u, sigma


def spectral_norm(n_power_iterations: int = 1, include: Include = None,
                  eps: float = 1e-12, exclude: str | None = None) -> SpectralNorm:
  """Spectral normalization of a param tree (Miyato et al. 2018, arXiv:1802.05957, Alg. 1).

  W_SN = W / sigma(W), sigma(W) = v^T W_mat u with u, v from power iteration under
  stop_gradient (W_mat = W reshaped to (-1, out)); the gradient flows through W in both the
  numerator and sigma, as in the paper. Works on a discriminator's params, a generator's, or
  both (two states), with no model change.

  Args:
    n_power_iterations: power-iteration steps per `apply(update=True)`; >= 1 (the paper uses 1).
    include: which leaves to normalize: None (`default_include`: 'kernel' leaves with ndim >= 2
      and nn.Embed 'embedding'), a regex string matched (`re.search`) against the '/'-joined path
      of the leaves `default_include` accepts, or a callable(path_tuple, leaf) -> bool.
    eps: floor on vector norms and on sigma, to avoid division by zero.
    exclude: optional regex; leaves whose '/'-joined path matches are left unnormalized
      (e.g. exclude='Embed' or exclude='Dense_2').

  Returns:
    A `SpectralNorm` (init, apply, sigmas). Leaves that are not included (biases, BatchNorm
    scale/bias, ...) pass through `apply` unchanged (the same objects).
  """
  try:
    n_iter = operator.index(n_power_iterations)
  except TypeError:
    n_iter = 0
  if n_iter < 1:
    raise ValueError(f"n_power_iterations must be an int >= 1, got {n_power_iterations!r}")
  n_power_iterations = n_iter
  if not eps > 0:
    raise ValueError(f"eps must be > 0, got {eps!r}")
  include_fn = resolve_include(include, exclude)

  def init(params: PyTree, rng: jax.Array) -> SpectralNormState:
    """u ~ N(0, I) normalized, shape (out,), one per included leaf (independent keys)."""
    leaves = selected_leaves(params, include_fn)
    keys = jax.random.split(rng, max(len(leaves), 1))
    u = {}
    for key, (name, w) in zip(keys, sorted(leaves.items())):
      if getattr(w, "ndim", 0) < 1:
        raise ValueError(f"leaf {name!r} is a scalar; exclude it from spectral norm")
      u[name] = _normalize(jax.random.normal(key, (w.shape[-1],), jnp.float32), eps)
    return SpectralNormState(u=u)

  def _check(leaves: dict[str, jax.Array], state: SpectralNormState) -> None:
    if set(leaves) != set(state.u):
      missing = sorted(set(leaves) - set(state.u))
      extra = sorted(set(state.u) - set(leaves))
      raise ValueError(f"SN state does not match the params (missing u for {missing}, "
                       f"u without a param {extra}); call sn.init on these params")

  def apply(params: PyTree, state: SpectralNormState,
            update: bool = True) -> tuple[PyTree, SpectralNormState]:
    """Returns (params with every included W replaced by W / sigma(W), new state).

    update=True runs `n_power_iterations` steps from the stored u and returns the new u's;
    update=False (evaluation) uses the stored u (sigma = ||W_mat u||) and returns `state`
    itself. Under jit, pass `update` as a static argument.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [path_str(path_tuple(kp)) if include_fn(path_tuple(kp), leaf) else None
             for kp, leaf in flat]
    _check({n: None for n in names if n is not None}, state)
    new_leaves, new_u = [], {}
    for (_, leaf), name in zip(flat, names):
      if name is None:
        new_leaves.append(leaf)
        continue
      w_sn, u, _ = _normalize_leaf(leaf, state.u[name], n_power_iterations, update, eps)
      new_leaves.append(w_sn)
      new_u[name] = u
    normalized = jax.tree_util.tree_unflatten(treedef, new_leaves)
    return normalized, (SpectralNormState(u=new_u) if update else state)

  def sigmas(params: PyTree, state: SpectralNormState) -> dict[str, jax.Array]:
    """sigma per included leaf from the stored u (no update, no gradient), for logging."""
    leaves = selected_leaves(params, include_fn)
    _check(leaves, state)
    out = {}
    for name, w in leaves.items():
      _, _, sigma = _normalize_leaf(jax.lax.stop_gradient(w), state.u[name], 1, False, eps)
      out[name] = sigma
    return out

  return SpectralNorm(init=init, apply=apply, sigmas=sigmas)
