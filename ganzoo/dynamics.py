"""Tools for studying GAN training dynamics: multi-seed training, Dirac-GAN, divergences, Lipschitz.

The notebooks in `experiments/` are built from these pure functions; nothing here copies the
training step: multi-seed training vmaps the protocol's step (`ganzoo.step.make_step`) itself.

* Multi-seed training: `init_states(gan, keys)` and `make_multi_seed_step(gan)` put a leading
  seeds axis S on the `TrainState` (and on the batch), so S independent runs share one compiled
  step; `make_multi_seed_loop` also scans T steps per call. Seed s of a vmapped run equals the run
  `gan.init(keys[s])` trained alone on the same batches. `gan` is a `gan`-family method
  (`ganzoo.methods.build`); its batches are {'real': {'image': [d_steps, B, ...]}}.
* Dirac-GAN (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  arXiv:1801.04406): data delta_0, generator delta_theta, linear discriminator D(x) = psi * x. The
  losses are the library's objectives and penalties applied to these logits.
* Divergences of the parallel-lines example (Arjovsky et al. 2017, arXiv:1701.07875, Example 1),
  exact W1 between samples, and `fit_critic` (train D alone between two samplers).
* Lipschitz estimates of a discriminator: input-gradient norms (a lower bound) and the product
  of the layers' spectral norms (an upper bound for 1-Lipschitz activations).
* f-GAN on a 1-D mixture (Nowozin et al. 2016, arXiv:1606.00709, Sec. 4.1): a single Gaussian
  generator fitted to a two-component mixture with each divergence of the f-GAN table, against
  the Gaussian that minimizes that divergence, found by numerical integration.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import objectives
from ganzoo import regularizers
from ganzoo import spectral_norm as sn_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.config import get_base_config
from ganzoo.data import synthetic
from ganzoo.data.pipeline import Dataset
from ganzoo.data.sources import SyntheticSource
from ganzoo.methods.gan import split_d_output
from ganzoo.state import TrainState

Array = jax.Array
PyTree = Any


# ---------------------------------------------------------------------------------------------
# Multi-seed training.

def init_states(gan: methods.Method, keys: Array) -> TrainState:
  """`gan.init` for each key of `keys` [S, 2]: a TrainState whose leaves have a leading S axis."""
  keys = jnp.asarray(keys)
  if keys.ndim != 2:
    raise ValueError(f"keys must be a stack of PRNG keys [S, 2]; got shape {keys.shape} — use "
                     "jax.random.split(key, num_seeds)")
  states = jax.vmap(gan.init)(keys)
  # Copy every leaf so that each owns its buffer and the states can be donated to a multi-seed step.
  return jax.tree.map(jnp.copy, states)


def num_seeds(states: TrainState) -> int:
  """S, the size of the leading seeds axis of a multi-seed state."""
  return int(states.step.shape[0])


def seed_state(states: TrainState, i: int) -> TrainState:
  """The state of seed i (drops the leading seeds axis)."""
  return jax.tree.map(lambda a: a[i], states)


def make_multi_seed_step(gan: methods.Method, shared_batch: bool = False, jit: bool = True,
                         donate: bool = True) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """`step(states, batch) -> (states, metrics)`: the family's step (plan of step 0) vmapped over seeds.

  states: a TrainState with a leading seeds axis S (from `init_states`). batch['image'] is
  [S, d_steps, B, *image_shape] (each seed its own data) or, with `shared_batch`, the single-run
  shape [d_steps, B, *image_shape] fed to every seed (it is the family's 'real' stream). Metrics are [S] arrays. Every seed's
  randomness is fold_in(its rng, its step), so seed s gives the same numbers as a lone run.
  One jit compiles the step once for all seeds.
  """
  inner = step_lib.make_step(gan, gan.plan(0), mesh=None, jit=False)
  step = lambda state, batch: inner(state, {"real": batch})
  batch_axis = None if shared_batch else 0
  vstep = jax.vmap(step, in_axes=(0, batch_axis))
  if not jit:
    return vstep
  return jax.jit(vstep, donate_argnums=(0,) if donate else ())


def make_multi_seed_loop(gan: methods.Method, shared_batch: bool = False, jit: bool = True,
                         donate: bool = True) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """`loop(states, batches) -> (states, metrics)`: T multi-seed steps in one `lax.scan` (one dispatch).

  batches['image'] is [T, S, d_steps, B, *image_shape] ([T, d_steps, B, ...] with
  `shared_batch`); metrics are [T, S]. Equal to T calls of `make_multi_seed_step`.
  """
  vstep = make_multi_seed_step(gan, shared_batch=shared_batch, jit=False)

  def loop(states, batches):
    return jax.lax.scan(vstep, states, batches)

  if not jit:
    return loop
  return jax.jit(loop, donate_argnums=(0,) if donate else ())


def synthetic_batches(name: str, data_seeds: list[int] | np.ndarray, start_step: int, num_steps: int,
                      d_steps: int, batch_size: int) -> dict[str, np.ndarray]:
  """Real batches of the 2-D mixture `name` for T=num_steps multi-seed steps from `start_step`.

  Seed s reads the 'real' stream that training reads with data seed `data_seeds[s]`: step k takes
  its global batches k * d_steps + i, i < d_steps (`Dataset.read`).
  Returns {'image': float32 [T, S, d_steps, B, 2]}.
  """
  out = np.empty((num_steps, len(data_seeds), d_steps, batch_size, 2), np.float32)
  for s, seed in enumerate(data_seeds):
    ds = Dataset(SyntheticSource(name), seed=int(seed))
    for t in range(num_steps):
      out[t, s] = ds.read("real", (start_step + t) * d_steps * batch_size, d_steps, batch_size)["image"]
  return {"image": out}


def generate_seeds(gan: methods.Method, states: TrainState, z: Array, use_ema: bool = False) -> Array:
  """G(z) for every seed: [S, N, *image_shape] (the same latents for all seeds)."""
  return jax.vmap(lambda s: gan.generate(s, z, use_ema=use_ema))(states)


def discriminator_fn(gan: methods.Method, state: TrainState) -> Callable[[Array], Array]:
  """x [N, ...] -> D's logits [N] in inference mode, with D's spectral normalization (stored u)."""
  return lambda x: gan.discriminate(state, x)


def discriminate_seeds(gan: methods.Method, states: TrainState, x: Array) -> Array:
  """D's logits for every seed on the same inputs x [N, ...]: [S, N]."""
  return jax.vmap(lambda s: discriminator_fn(gan, s)(x))(states)


def mode_coverage(samples: np.ndarray, name: str, num_std: float = 3.0) -> dict[str, np.ndarray]:
  """`synthetic.mode_stats` for each seed's samples [S, N, 2]: {stat: float64 [S]}."""
  samples = np.asarray(samples)
  if samples.ndim != 3 or samples.shape[-1] != 2:
    raise ValueError(f"samples must be [S, N, 2]; got {samples.shape}")
  stats = [synthetic.mode_stats(x, name, num_std=num_std) for x in samples]
  return {k: np.array([st[k] for st in stats]) for k in stats[0]}


TOY_METHODS = ("non_saturating", "wgan_gp", "hinge_sn", "minimax", "wgan_clip")


def toy_config(method: str, data: str = "ring8", batch_size: int = 256, num_steps: int = 2000,
               lr: float = 1e-3, z_dim: int = 16, lr_decay: str = "none") -> ml_collections.ConfigDict:
  """A 2-D toy config: the 'small' MLPs (3 x 128) with no output squashing, one of `TOY_METHODS`.

  non_saturating / minimax: BCE losses, Adam(lr, 0.5, 0.999), 1 D step (Goodfellow et al. 2014,
  arXiv:1406.2661; DCGAN's Adam). wgan_gp: Wasserstein loss + 10 * GP, Adam(lr, 0, 0.9), 5 critic
  steps (arXiv:1704.00028, Algorithm 1). hinge_sn: hinge loss, SN on D, Adam(lr, 0, 0.9), 5 D steps
  (arXiv:1802.05957, n_dis = 5). wgan_clip: Wasserstein loss, clipping at 0.01, RMSprop(lr), 5 critic steps
  (arXiv:1701.07875). The same G and D architectures for all methods. `lr_decay='linear'` decays
  both learning rates to 0 over `num_steps` (sharper samples at the end of short runs).
  """
  if method not in TOY_METHODS:
    raise ValueError(f"unknown toy method {method!r}; use one of {TOY_METHODS}")
  if data not in synthetic.NAMES:
    raise ValueError(f"toy_config needs a 2-D data set; got {data!r}, use one of {synthetic.NAMES}")
  c = get_base_config()
  c.data.name = data
  c.data.batch_size = batch_size
  c.model.name = "mlp"
  c.model.size = "small"
  c.model.z_dim = z_dim
  c.model.output_activation = "none"
  c.train.num_steps = num_steps
  b1, b2 = 0.5, 0.999
  if method in ("non_saturating", "minimax"):
    c.loss.name = method
  elif method == "wgan_gp":
    c.loss.name = "wasserstein"
    c.penalties.gradient_penalty = dict(weight=10.0, every=1)
    c.train.d_steps = 5
    b1, b2 = 0.0, 0.9
  elif method == "hinge_sn":
    c.loss.name = "hinge"
    c.nets.d.sn.enabled = True
    c.train.d_steps = 5
    b1, b2 = 0.0, 0.9
  elif method == "wgan_clip":
    c.loss.name = "wasserstein"
    c.nets.d.clip = 0.01
    c.train.d_steps = 5
  for net in ("g", "d"):
    if method == "wgan_clip":
      c.nets[net].optim.update(dict(name="rmsprop", lr=lr, decay_rate=0.99, eps=1e-8, decay=lr_decay))
    else:
      c.nets[net].optim.update(dict(name="adam", lr=lr, b1=b1, b2=b2, eps=1e-8, decay=lr_decay))
  return c


# ---------------------------------------------------------------------------------------------
# Dirac-GAN (Mescheder et al. 2018, arXiv:1801.04406, Sec. 2.2).

class DiracGAN(NamedTuple):
  """A Dirac-GAN variant: objective name, D penalty, instance noise.

  loss: a `ganzoo.objectives` name ('non_saturating', 'minimax', 'wasserstein', 'hinge', ...).
  r1_gamma: weight gamma of gamma/2 * E_real[||grad_x D||^2] (R1); 0 = off.
  gp_weight: weight lambda of the WGAN-GP penalty; 0 = off.
  noise_std: std of the instance noise added to real and fake samples; 0 = off.
  num_noise: noise samples per side (deterministic normal quantiles, so the field is smooth).
  """
  loss: str = "non_saturating"
  r1_gamma: float = 0.0
  gp_weight: float = 0.0
  noise_std: float = 0.0
  num_noise: int = 64


def _noise(game: DiracGAN) -> Array:
  """Deterministic N(0, noise_std^2) quantiles [n] (n = 1 and zero noise when noise is off)."""
  if game.noise_std <= 0:
    return jnp.zeros((1,), jnp.float32)
  n = int(game.num_noise)
  q = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n
  return game.noise_std * jax.scipy.special.ndtri(q)


def dirac_losses(game: DiracGAN, theta: Array, psi: Array) -> tuple[Array, Array]:
  """(d_loss(theta, psi), g_loss(theta, psi)) of the Dirac-GAN.

  Real x = 0 + eps, fake x = theta + eps' (eps, eps' ~ N(0, noise_std^2), instance noise,
  Sonderby et al. 2016, arXiv:1610.04490), D(x) = psi * x. d_loss = objective.d_loss(psi * real,
  psi * fake) + gamma/2 * R1 + lambda * GP, where R1 = E[psi^2] and GP = E[(|psi| - 1)^2] (D's input
  gradient is psi everywhere), both computed by `ganzoo.regularizers`. g_loss = objective.g_loss.
  ganzoo's D gives real data positive logits, so for the standard GAN the game is
  L(theta, psi) = f(-psi theta) + f(0), f(t) = -log(1 + e^-t) (the paper's Eq. with psi -> -psi);
  for WGAN L = -psi theta, the bilinear game min_theta max_psi -theta psi (the "-xy" example).
  """
  obj = objectives.get_objective(game.loss)
  eps = _noise(game)
  real = eps[:, None]
  fake = (theta + eps)[:, None]

  def d_fn(x):
    return psi * x[:, 0]

  d_loss = obj.d_loss(d_fn(real), d_fn(fake))
  if game.r1_gamma:
    d_loss = d_loss + 0.5 * game.r1_gamma * regularizers.r1_penalty(d_fn, real)
  if game.gp_weight:
    fake_gp = jnp.broadcast_to(jax.lax.stop_gradient(fake), real.shape)
    pen = regularizers.gradient_penalty(d_fn, real, fake_gp, jax.random.PRNGKey(0))
    d_loss = d_loss + game.gp_weight * pen
  g_loss = obj.g_loss(d_fn(fake), None)
  return d_loss, g_loss


def dirac_vector_field(game: DiracGAN, theta: Array, psi: Array) -> tuple[Array, Array]:
  """v(theta, psi) = (-d g_loss / d theta, -d d_loss / d psi): the gradient-descent direction of both players."""
  d_psi = jax.grad(lambda p: dirac_losses(game, theta, p)[0])(psi)
  d_theta = jax.grad(lambda t: dirac_losses(game, t, psi)[1])(theta)
  return -d_theta, -d_psi


def dirac_update(game: DiracGAN, lr: float, alternating: bool = False) -> Callable[[Array], Array]:
  """The map p = (theta, psi) -> p' of one gradient step of size lr for both players.

  Simultaneous: both use the old point. Alternating: D steps first, then G uses the new psi.
  """

  def update(p):
    theta, psi = p[0], p[1]
    if alternating:
      _, v_psi = dirac_vector_field(game, theta, psi)
      psi = psi + lr * v_psi
      v_theta, _ = dirac_vector_field(game, theta, psi)
      theta = theta + lr * v_theta
    else:
      v_theta, v_psi = dirac_vector_field(game, theta, psi)
      theta, psi = theta + lr * v_theta, psi + lr * v_psi
    return jnp.stack([theta, psi])
  return update


def dirac_trajectory(game: DiracGAN, p0: Array, lr: float, num_steps: int,
                     alternating: bool = False) -> Array:
  """Iterates of `dirac_update` from p0 = (theta, psi): [num_steps + 1, 2] (p0 first)."""
  update = dirac_update(game, lr, alternating)

  def body(p, _):
    p = update(p)
    return p, p
  p0 = jnp.asarray(p0, jnp.float32)
  _, ps = jax.lax.scan(body, p0, None, length=num_steps)
  return jnp.concatenate([p0[None], ps], axis=0)


def dirac_jacobian_eigenvalues(game: DiracGAN, lr: float, alternating: bool = False,
                               point: tuple[float, float] = (0.0, 0.0)) -> Array:
  """Eigenvalues of the Jacobian of `dirac_update` at `point` (complex [2]).

  Linearised around the equilibrium p* = (0, 0): p_{k+1} - p* ~ J (p_k - p*), so the iteration
  converges locally iff all |lambda| < 1. Unregularized GAN, simultaneous steps: J = I + lr * A with
  A = [[0, f'(0)], [-f'(0), 0]], eigenvalues 1 +- i lr f'(0), |lambda| > 1 (spirals out);
  alternating: det J = 1, |lambda| = 1 (circles forever); R1 or instance noise: |lambda| < 1.
  """
  jac = jax.jacfwd(dirac_update(game, lr, alternating))(jnp.asarray(point, jnp.float32))
  return jnp.linalg.eigvals(jac)


# ---------------------------------------------------------------------------------------------
# Divergences: the parallel-lines example (Arjovsky et al. 2017, arXiv:1701.07875, Example 1).

def parallel_lines_divergences(theta: np.ndarray) -> dict[str, np.ndarray]:
  """JS, KL, TV and W1 between P_0 = law of (0, Z) and P_theta = law of (theta, Z), Z ~ U[0, 1].

  W1 = |theta|; JS = log 2, KL = +inf, TV = 1 for theta != 0, and all are 0 at theta = 0.
  """
  theta = np.asarray(theta, np.float64)
  off = theta != 0
  return {"js": np.where(off, np.log(2.0), 0.0), "kl": np.where(off, np.inf, 0.0),
          "tv": np.where(off, 1.0, 0.0), "w1": np.abs(theta)}


def sample_parallel_line(key: Array, theta: Array, n: int) -> Array:
  """n samples of (theta, Z), Z ~ U[0, 1]: float32 [n, 2]."""
  z = jax.random.uniform(key, (n,), jnp.float32)
  return jnp.stack([jnp.full((n,), theta, jnp.float32), z], axis=1)


def empirical_w1(x: np.ndarray, y: np.ndarray) -> float:
  """Exact W1 between two empirical measures of n points each: min over matchings of the mean distance.

  Optimal transport between uniform measures on n points is an assignment problem (Birkhoff), solved
  exactly by `scipy.optimize.linear_sum_assignment`.
  """
  from scipy.optimize import linear_sum_assignment  # pylint: disable=g-import-not-at-top
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.shape != y.shape:
    raise ValueError(f"x {x.shape} and y {y.shape} must hold the same number of points")
  cost = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
  rows, cols = linear_sum_assignment(cost)
  return float(cost[rows, cols].mean())


class CriticFit(NamedTuple):
  """Result of `fit_critic`: the gap E_real[D] - E_fake[D] on fresh samples, per-step D losses [T],
  and the training state (raw params, optimizer state, SN state) to continue from."""
  gap: Array
  losses: Array
  params: PyTree
  opt_state: PyTree
  sn_state: sn_lib.SpectralNormState


def critic_fn(gan: methods.Method, fit: CriticFit) -> Callable[[Array], Array]:
  """x [N, ...] -> logits [N] of the critic in `fit` (inference mode, stored SN vectors)."""
  spec = gan.nets["d"]
  params, _ = nets_lib.normalize(spec, fit.params, fit.sn_state, update=False)
  return lambda x: split_d_output(spec.module.apply({"params": params}, x, None, train=False))[0]


def fit_critic(gan: methods.Method, key: Array, real_fn: Callable[[Array, int], Array],
               fake_fn: Callable[[Array, int], Array], num_steps: int, batch_size: int,
               num_eval: int = 4096, init: CriticFit | None = None) -> CriticFit:
  """Trains D alone (G fixed) for `num_steps` updates from a fresh init or from `init`.

  Uses the GAN's own pieces: `gan.objective.d_loss`, its penalties and weights, D's weight clipping,
  spectral normalization and optimizer (`gan.nets['d']`). `real_fn(key, n)`/`fake_fn(key, n)`
  draw n samples. For a Wasserstein critic with a working Lipschitz-1 constraint the returned gap
  estimates W1(P_real, P_fake) (Kantorovich-Rubinstein duality, arXiv:1701.07875). Pure: jit or
  vmap it. D must not use batch statistics or dropout.
  """
  spec = gan.nets["d"]
  rng_init, rng_sn, rng_train, rng_eval = jax.random.split(key, 4)
  if init is None:
    params = spec.module.init(rng_init, real_fn(rng_init, 2), None, train=False)["params"]
    opt_state, sn_state = spec.tx.init(params), spec.sn.init(params, rng_sn)
  else:
    params, opt_state, sn_state = init.params, init.opt_state, init.sn_state

  def loss_fn(p, sn_state, real, fake, rng):
    p_norm, sn_state = nets_lib.normalize(spec, p, sn_state, update=True)

    def d_fn(x):
      return split_d_output(spec.module.apply({"params": p_norm}, x, None, train=True))[0]
    loss = gan.objective.d_loss(d_fn(real), d_fn(fake))
    for _, weight, _, penalty in gan.penalties + gan.lazy_penalties:
      loss = loss + weight * penalty(d_fn, real, fake, rng)
    return loss, sn_state

  def body(carry, k):
    p, opt_state, sn_state = carry
    k_real, k_fake, k_pen = jax.random.split(k, 3)
    real, fake = real_fn(k_real, batch_size), fake_fn(k_fake, batch_size)
    (loss, sn_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, sn_state, real, fake, k_pen)
    updates, opt_state = spec.tx.update(grads, opt_state, p)
    p = optax.apply_updates(p, updates)
    if spec.clip > 0:
      p = regularizers.clip_weights(p, spec.clip)
    return (p, opt_state, sn_state), loss

  (params, opt_state, sn_state), losses = jax.lax.scan(
      body, (params, opt_state, sn_state), jax.random.split(rng_train, num_steps))
  fit = CriticFit(jnp.zeros((), jnp.float32), losses, params, opt_state, sn_state)
  d_eval = critic_fn(gan, fit)
  k_real, k_fake = jax.random.split(rng_eval)
  gap = d_eval(real_fn(k_real, num_eval)).mean() - d_eval(fake_fn(k_fake, num_eval)).mean()
  return fit._replace(gap=gap)


def generator_logit_gradient(loss: str, logits: Array) -> Array:
  """d g_loss / d fake_logit per example for the objective `loss` (times N, undoing the batch mean).

  minimax (saturating): d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -D(G(z)) -> 0 as D(G(z)) -> 0;
  non_saturating: d/dl -log sigmoid(l) = -(1 - D(G(z))) -> -1 (Goodfellow et al. 2014, arXiv:1406.2661).
  """
  obj = objectives.get_objective(loss)
  logits = jnp.asarray(logits, jnp.float32)
  return jax.grad(lambda l: obj.g_loss(l, None))(logits) * logits.shape[0]


# ---------------------------------------------------------------------------------------------
# Lipschitz constants of a discriminator.

def input_gradient_norms(d_fn: Callable[[Array], Array], x: Array) -> Array:
  """||grad_x D(x_i)||_2 per example [N]; max_i is a lower bound on D's Lipschitz constant."""
  g = regularizers.input_gradients(d_fn, x)
  return jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))


def spectral_norms(params: PyTree, include: sn_lib.Include = None) -> dict[str, Array]:
  """Exact largest singular value (SVD) of every kernel W (reshaped to (-1, out)) selected by `include`."""
  leaves = sn_lib.selected_leaves(params, sn_lib.resolve_include(include))
  return {name: jnp.linalg.svd(sn_lib.as_matrix(w).astype(jnp.float32), compute_uv=False)[0]
          for name, w in sorted(leaves.items())}


def sigma_product(params: PyTree, include: sn_lib.Include = None) -> Array:
  """prod_l sigma(W_l): an upper bound on the Lipschitz constant of an MLP/CNN with 1-Lipschitz activations.

  ||D||_Lip <= prod_l ||W_l||_2 for D = W_L a(... a(W_1 x)) with ||a||_Lip <= 1 (Miyato et al. 2018,
  arXiv:1802.05957, Eq. 7); the bias terms do not change it.
  """
  sig = spectral_norms(params, include)
  out = jnp.ones((), jnp.float32)
  for s in sig.values():
    out = out * s
  return out


def normalized_d_params(gan: methods.Method, state: TrainState) -> PyTree:
  """D's params as the network uses them: W / sigma_u(W) with the stored u when SN is on, else raw."""
  d = state.nets["d"]
  params, _ = nets_lib.normalize(gan.nets["d"], d.params, d.sn, update=False)
  return params


def sn_estimate_errors(gan: methods.Method, state: TrainState) -> dict[str, Array]:
  """|sigma_u - sigma| / sigma per SN-normalized leaf: the power-iteration estimate's relative error."""
  d = state.nets["d"]
  est = gan.nets["d"].sn.sigmas(d.params, d.sn)
  true = spectral_norms(d.params, include=lambda path, leaf: sn_lib.path_str(path) in est)
  return {k: jnp.abs(est[k] - true[k]) / true[k] for k in est}


# ---------------------------------------------------------------------------------------------
# f-GAN on a 1-D mixture (Nowozin et al. 2016, arXiv:1606.00709, Sec. 4.1 and Table 3: a Gaussian
# Q fitted to a mixture P by each divergence; which Gaussian depends on the divergence).

class Mixture1D(NamedTuple):
  """A 1-D Gaussian mixture sum_k weights[k] N(means[k], stds[k]^2)."""
  weights: tuple[float, ...]
  means: tuple[float, ...]
  stds: tuple[float, ...]

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    k = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
    return (np.asarray(self.means)[k] + np.asarray(self.stds)[k] * rng.standard_normal(n)).astype(np.float32)

  def log_pdf(self, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)[..., None]
    w, m, s = (np.asarray(v, np.float64) for v in self)
    return np.logaddexp.reduce(np.log(w) - 0.5 * ((x - m) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi)), axis=-1)


# Unequal weights so that no symmetric saddle holds a mode-seeking fit between the modes: the
# reverse-KL optimum is the heavier mode. Well separated (4 stds apart) so the fits differ clearly.
MIXTURE_1D = Mixture1D(weights=(0.6, 0.4), means=(-2.0, 2.0), stds=(0.5, 0.5))


def _gauss_log_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
  return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))


def f_divergence_1d(divergence: str, log_p: np.ndarray, log_q: np.ndarray, dx: float) -> float:
  """D_f(P || Q) = int q f(p / q) dx on a uniform grid, with Table 1's f written in log space
  (no 0 * inf where either density underflows):
  kl p log(p/q); reverse_kl q log(q/p); pearson (p - q)^2 / q; hellinger (sqrt p - sqrt q)^2;
  js p log(2p / (p + q)) + q log(2q / (p + q)) (= 2 JSD, see objectives.py); gan js - log 4."""
  p, q = np.exp(log_p), np.exp(log_q)
  if divergence == "kl":
    integrand = p * (log_p - log_q)
  elif divergence == "reverse_kl":
    integrand = q * (log_q - log_p)
  elif divergence == "pearson":
    integrand = np.exp(2 * log_p - log_q) - 2 * p + q
  elif divergence == "hellinger":
    integrand = (np.exp(0.5 * log_p) - np.exp(0.5 * log_q)) ** 2
  elif divergence in ("js", "gan"):
    log_m = np.logaddexp(log_p, log_q) - np.log(2.0)
    integrand = p * (log_p - log_m) + q * (log_q - log_m)
  else:
    raise ValueError(f"unknown f-divergence {divergence!r}; use one of {sorted(objectives.F_DIVERGENCES)}")
  value = float(np.sum(integrand) * dx)
  return value - np.log(4.0) if divergence == "gan" else value


def best_gaussian_1d(divergence: str, mixture: Mixture1D = MIXTURE_1D, init: tuple[float, float] = (-0.5, 0.7),
                     lim: float = 15.0, num: int = 30_001) -> tuple[float, float, float]:
  """(mu*, sigma*, D_f*): the Gaussian nearest to `mixture` in D_f(P || Q), by Nelder-Mead on
  (mu, log sigma) from `init` over the trapezoid-free Riemann sum on [-lim, lim] (num points; the
  densities are below e^-100 at the ends, and the sum of a smooth integrand on 30k points is exact to
  ~1e-10). From `init` the local search finds the optimum of that basin: for the mode-seeking
  divergences a fit from between the modes moves to the nearer/heavier one."""
  import scipy.optimize  # pylint: disable=g-import-not-at-top
  x = np.linspace(-lim, lim, num)
  dx = x[1] - x[0]
  log_p = mixture.log_pdf(x)

  def objective(theta):
    return f_divergence_1d(divergence, log_p, _gauss_log_pdf(x, theta[0], np.exp(theta[1])), dx)

  res = scipy.optimize.minimize(objective, np.array([init[0], np.log(init[1])]), method="Nelder-Mead",
                                options=dict(xatol=1e-7, fatol=1e-12, maxiter=4000))
  return float(res.x[0]), float(np.exp(res.x[1])), float(res.fun)


def fgan_1d_config(divergence: str, num_steps: int = 6000, batch_size: int = 256, lr: float = 1e-3,
                   d_hidden: tuple[int, ...] = (64, 64), ema: float = 0.0) -> ml_collections.ConfigDict:
  """The gan family with the f-GAN objective `fgan_<divergence>` on 1-D data: G(z) = b + w z with
  z ~ N(0, 1) (the mlp model with no hidden layer and z_dim 1: exactly the Gaussians N(b, w^2)),
  D an MLP (LeakyReLU 0.2) giving the raw V; Adam(lr, 0.5, 0.999) with a linear decay to 0."""
  c = get_base_config()
  c.data.name = "ring8"           # a placeholder: the batches are fed by the caller
  c.data.batch_size = batch_size
  c.model.name = "mlp"
  c.model.size = "small"
  c.model.z_dim = 1
  c.model.g_hidden = ()
  c.model.d_hidden = tuple(d_hidden)
  c.model.output_activation = "none"
  c.loss.name = f"fgan_{divergence}"
  c.train.num_steps = num_steps
  c.nets.g.ema.decay = ema
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=lr, b1=0.5, b2=0.999, eps=1e-8, decay="linear"))
  return c


def gaussian_generator_params(states: TrainState, use_ema: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(mu [S], sigma [S]) of a multi-seed state of `fgan_1d_config`'s generator (its EMA with `use_ema`)."""
  g = states.nets["g"]
  out = (g.ema if use_ema and g.ema else g.params)["out"]
  return np.asarray(out["bias"]).reshape(-1), np.abs(np.asarray(out["kernel"]).reshape(-1))


def fit_gaussian_fgan(divergence: str, seeds: int = 2, num_steps: int = 6000, init: tuple[float, float] = (-0.5, 0.7),
                      mixture: Mixture1D = MIXTURE_1D, chunk: int = 1000, batch_size: int = 256,
                      data_seed: int = 0, ema: float = 0.0, lr: float = 1e-3) -> dict[str, np.ndarray]:
  """Trains `seeds` f-GANs (one compiled multi-seed loop of the library's step) with G started at
  N(init[0], init[1]^2) and D at its random init; returns {'mu': [S], 'sigma': [S], 'trace': [chunks, 2, S]}."""
  gan = methods.build(fgan_1d_config(divergence, num_steps, batch_size, lr=lr, ema=ema), methods.DataSpec((1,)))
  states = init_states(gan, jax.random.split(jax.random.PRNGKey(0), seeds))
  g = states.nets["g"]
  params = {"out": {"bias": jnp.full((seeds, 1), init[0], jnp.float32),
                    "kernel": jnp.full((seeds, 1, 1), init[1], jnp.float32)}}
  g = g.replace(params=params, ema=jax.tree.map(jnp.copy, params) if g.ema else g.ema)
  states = states.replace(nets={**states.nets, "g": g})
  loop = make_multi_seed_loop(gan)
  rng = np.random.default_rng(data_seed)
  trace = []
  for _ in range(-(-num_steps // chunk)):
    t = min(chunk, num_steps - len(trace) * chunk)
    real = mixture.sample(rng, t * seeds * batch_size).reshape(t, seeds, 1, batch_size, 1)
    states, _ = loop(states, {"image": real})
    trace.append(np.stack(gaussian_generator_params(states, use_ema=bool(ema))))
  mu, sigma = gaussian_generator_params(states, use_ema=bool(ema))
  return {"mu": mu, "sigma": sigma, "trace": np.stack(trace)}
