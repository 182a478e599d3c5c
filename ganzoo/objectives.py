"""Adversarial objectives as pure functions of discriminator logits, in one registry.

Each entry is an `Objective(name, d_loss, g_loss)`:
  d_loss(real_logits, fake_logits) -> scalar   (minimized by the discriminator / critic)
  g_loss(fake_logits, real_logits=None) -> scalar   (minimized by the generator; `real_logits`
                                                     is there for relativistic variants)
Logits are D's raw outputs (shape [N], any float dtype); D(x) = sigmoid(logit) for the
probabilistic losses. Losses are float32 means over the batch. Log-probabilities use
log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), never log(sigmoid(l)),
so they stay finite and have exact gradients for any logit.

Adding an objective: write a factory `fn(**kwargs) -> Objective` decorated with
`@register('name')`, give it a docstring with the formula and the paper, and add test rows.
"""

import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
DLoss = Callable[[Array, Array], Array]
GLoss = Callable[..., Array]


class Objective(NamedTuple):
  """An adversarial objective: `d_loss(real_logits, fake_logits)`, `g_loss(fake_logits, real)`."""
  name: str
  d_loss: DLoss
  g_loss: GLoss


_REGISTRY: dict[str, Callable[..., Objective]] = {}


def register(name: str) -> Callable[[Callable[..., Objective]], Callable[..., Objective]]:
  """Decorator that registers an objective factory `fn(**kwargs) -> Objective` under `name`."""

  def wrap(fn):
    if name in _REGISTRY:
      raise ValueError(f"objective {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn

  return wrap


def names() -> list[str]:
  """Registered objective names, sorted."""
  return sorted(_REGISTRY)


def get_objective(name: str, **kwargs: Any) -> Objective:
  """Returns the objective `name` built with `kwargs` (e.g. least_squares: a, b, c)."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown objective {name!r}; set config.loss.name to one of {names()}")
  factory = _REGISTRY[name]
  try:
    inspect.signature(factory).bind(**kwargs)
  except TypeError as e:
    params = list(inspect.signature(factory).parameters)
    raise ValueError(f"objective {name!r} got unexpected arguments {sorted(kwargs)}; "
                     f"it accepts {params}") from e
  return factory(**kwargs)


def _f32(logits: Any) -> Array:
  if isinstance(logits, dict):
    raise ValueError("objectives take a logits array; pass D's output['logits'] for "
                     "discriminators with an auxiliary classifier")
  # At least float32 (bfloat16 logits are promoted); float64 stays float64 (the float64 equivalence tests).
  return jnp.asarray(logits, jnp.promote_types(jnp.result_type(logits), jnp.float32))


# ----------------------------------------------------------------------------------------------
# Entries.


def _bce_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """-E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-real)] + E[softplus(fake)]."""
  return (jnp.mean(jax.nn.softplus(-_f32(real_logits)))
          + jnp.mean(jax.nn.softplus(_f32(fake_logits))))


@register("minimax")
def minimax() -> Objective:
  """Original (saturating) GAN, Goodfellow et al. 2014, arXiv:1406.2661.

  D: -E[log D(x)] - E[log(1 - D(G(z)))]
  G:  E[log(1 - D(G(z)))] = -E[softplus(fake_logit)]
  With D = sigmoid(logit). At D* = 1/2 the D loss is 2 log 2. G's gradient vanishes when D
  confidently rejects fakes (D(G(z)) -> 0), which is why 'non_saturating' is used in practice.
  """

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    return -jnp.mean(jax.nn.softplus(_f32(fake_logits)))

  return Objective("minimax", _bce_d_loss, g_loss)


@register("non_saturating")
def non_saturating() -> Objective:
  """Non-saturating GAN, Goodfellow et al. 2014, arXiv:1406.2661 (Sec. 3).

  D: -E[log D(x)] - E[log(1 - D(G(z)))]   (as 'minimax')
  G: -E[log D(G(z))] = E[softplus(-fake_logit)]
  Same fixed point as minimax, but strong gradients for G early in training.
  """

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    return jnp.mean(jax.nn.softplus(-_f32(fake_logits)))

  return Objective("non_saturating", _bce_d_loss, g_loss)


@register("wasserstein")
def wasserstein() -> Objective:
  """Wasserstein GAN critic loss, Arjovsky et al. 2017, arXiv:1701.07875.

  D (critic): E[D(G(z))] - E[D(x)]     G: -E[D(G(z))]
  The logits are the critic values. Needs a Lipschitz constraint: weight clipping
  (`regularizers.clip_weights`), the gradient penalty of WGAN-GP (Gulrajani et al. 2017,
  arXiv:1704.00028, `regularizers.gradient_penalty`, added by the caller times lambda) or SN.
  """

  def d_loss(real_logits: Array, fake_logits: Array) -> Array:
    return jnp.mean(_f32(fake_logits)) - jnp.mean(_f32(real_logits))

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    return -jnp.mean(_f32(fake_logits))

  return Objective("wasserstein", d_loss, g_loss)


@register("least_squares")
def least_squares(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> Objective:
  """Least-squares GAN, Mao et al. 2017, arXiv:1611.04076 (Eq. 2).

  D: 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]     G: 1/2 E[(D(G(z)) - c)^2]
  with D(x) the raw logit (no sigmoid). a is the fake label, b the real label, c the value G
  wants D to give fakes. Defaults a=0, b=1, c=1 (the paper's 0-1 coding); a=-1, b=1, c=0 is
  its Pearson-chi^2 setting (b - c = 1, b - a = 2).
  The 1/2 factors are kept exactly as in the paper's Eq. 2 (so logged values match it); they
  only scale gradients by 1/2, which Adam's scale invariance makes immaterial.
  """
  a, b, c = float(a), float(b), float(c)

  def d_loss(real_logits: Array, fake_logits: Array) -> Array:
    return (0.5 * jnp.mean(jnp.square(_f32(real_logits) - b))
            + 0.5 * jnp.mean(jnp.square(_f32(fake_logits) - a)))

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    return 0.5 * jnp.mean(jnp.square(_f32(fake_logits) - c))

  return Objective("least_squares", d_loss, g_loss)


@register("hinge")
def hinge() -> Objective:
  """Hinge loss, Lim & Ye 2017 (Geometric GAN), arXiv:1705.02894; Miyato et al. 2018 (SNGAN),
  arXiv:1802.05957.

  D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]     G: -E[D(G(z))]
  """

  def d_loss(real_logits: Array, fake_logits: Array) -> Array:
    return (jnp.mean(jax.nn.relu(1.0 - _f32(real_logits)))
            + jnp.mean(jax.nn.relu(1.0 + _f32(fake_logits))))

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    return -jnp.mean(_f32(fake_logits))

  return Objective("hinge", d_loss, g_loss)


# ----------------------------------------------------------------------------------------------
# f-GAN: Nowozin, Cseke & Tomioka 2016, "f-GAN: Training Generative Neural Samplers using
# Variational Divergence Minimization", arXiv:1606.00709, Table 2 (the authors' code is not public;
# the table is the reference).
#
# For a convex f with f(1) = 0 and Fenchel conjugate f*, D_f(P || Q) >= sup_T E_P[T(x)] - E_Q[f*(T(x))]
# (Eq. 4), with equality at T*(x) = f'(p(x) / q(x)). The variational function is T = g_f(V) with V
# the raw logit and g_f an output activation that keeps T in dom f*. P = data, Q = generator:
#   D (the variational function) maximizes  F = E_P[g_f(V(x))] - E_Q[f*(g_f(V(G(z))))]
#   G minimizes F ('saturating'), or maximizes E_Q[g_f(V(G(z)))] ('alternative': Sec. 3.2, the
#     analogue of the non-saturating GAN loss; the paper uses it in its experiments).
# Each row is (g_f(v), f*(g_f(v))), with f*(g_f(v)) simplified by hand so that no log of a sigmoid
# or exp of a large argument is formed where the table's composition would overflow:
#   kl:          g = v                    f*(t) = exp(t - 1)         f*(g) = exp(v - 1)
#   reverse_kl:  g = -exp(-v)             f*(t) = -1 - log(-t)       f*(g) = v - 1
#   pearson:     g = v                    f*(t) = t^2 / 4 + t        f*(g) = v^2 / 4 + v
#   hellinger:   g = 1 - exp(-v)          f*(t) = t / (1 - t)        f*(g) = exp(v) - 1
#   js:          g = log 2 - softplus(-v) f*(t) = -log(2 - exp(t))   f*(g) = softplus(v) - log 2
#   gan:         g = -softplus(-v)        f*(t) = -log(1 - exp(t))   f*(g) = softplus(v)
# The suprema (at T*): 'kl' KL(P||Q); 'reverse_kl' KL(Q||P); 'pearson' int (p - q)^2 / q;
# 'hellinger' int (sqrt p - sqrt q)^2 (Table 1's squared Hellinger, without a 1/2); 'js' with
# Table 1's f(u) = -(u + 1) log((1 + u) / 2) + u log u reaches KL(P||M) + KL(Q||M) = 2 JSD(P, Q),
# M = (P + Q) / 2 (the 1/2 written in Table 1's integral does not match its f; the f is used);
# 'gan' 2 JSD - log 4, the original GAN's value. The 'kl' and 'hellinger' conjugates grow like exp(v)
# and overflow float32 above v ~ 88: that is the divergence, not the formula.

_LOG2 = 0.6931471805599453


class FDivergence(NamedTuple):
  """One row of the f-GAN table: T = activation(V) and f*(T) written as a function of V."""
  activation: Callable[[Array], Array]
  conjugate_of_activation: Callable[[Array], Array]


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence(lambda v: v, lambda v: jnp.exp(v - 1.0)),
    "reverse_kl": FDivergence(lambda v: -jnp.exp(-v), lambda v: v - 1.0),
    "pearson": FDivergence(lambda v: v, lambda v: 0.25 * jnp.square(v) + v),
    "hellinger": FDivergence(lambda v: -jnp.expm1(-v), jnp.expm1),
    "js": FDivergence(lambda v: _LOG2 - jax.nn.softplus(-v), lambda v: jax.nn.softplus(v) - _LOG2),
    "gan": FDivergence(lambda v: -jax.nn.softplus(-v), jax.nn.softplus),
}


def _f_gan(divergence: str, generator: str) -> Objective:
  if generator not in ("alternative", "saturating"):
    raise ValueError(f"f-GAN generator={generator!r}: use 'alternative' (maximize E_Q[g_f(V)], the paper's "
                     "choice) or 'saturating' (minimize the variational bound itself)")
  row = F_DIVERGENCES[divergence]

  def d_loss(real_logits: Array, fake_logits: Array) -> Array:
    return (jnp.mean(row.conjugate_of_activation(_f32(fake_logits)))
            - jnp.mean(row.activation(_f32(real_logits))))

  def g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
    del real_logits
    if generator == "saturating":
      return -jnp.mean(row.conjugate_of_activation(_f32(fake_logits)))
    return -jnp.mean(row.activation(_f32(fake_logits)))

  return Objective(f"fgan_{divergence}", d_loss, g_loss)


def _register_f_gan(divergence: str) -> None:
  def factory(generator: str = "alternative") -> Objective:
    return _f_gan(divergence, generator)
  factory.__name__ = f"fgan_{divergence}"
  factory.__doc__ = (f"f-GAN with the {divergence!r} divergence (Nowozin et al. 2016, arXiv:1606.00709, "
                     "Table 2). D: E_Q[f*(g_f(V))] - E_P[g_f(V)]; G: -E_Q[g_f(V)] ('alternative', "
                     "default) or -E_Q[f*(g_f(V))] ('saturating'). -D's loss at its optimum is D_f(P||Q).")
  register(f"fgan_{divergence}")(factory)


for _name in F_DIVERGENCES:
  _register_f_gan(_name)
