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
