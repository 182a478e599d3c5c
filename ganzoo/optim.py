"""Optimizers built from config (separate ones for G and D: TTUR, Heusel et al. 2017, 1706.08500)."""

import ml_collections
import optax

_OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw")


def learning_rate(cfg: ml_collections.ConfigDict, num_updates: int) -> optax.Schedule | float:
  """Constant, or linearly decayed to 0 over `num_updates` (SNGAN's CIFAR-10 schedule)."""
  decay = cfg.get("decay", "none")
  if decay == "none":
    return cfg.lr
  if decay == "linear":
    return optax.linear_schedule(cfg.lr, 0.0, max(int(num_updates), 1))
  raise ValueError(f"unknown learning-rate decay {decay!r}; use 'none' or 'linear'")


def build_optimizer(cfg: ml_collections.ConfigDict, num_updates: int) -> optax.GradientTransformation:
  """An optax optimizer from a config with `name`, `lr` and the optimizer's own fields.

  adam: b1, b2, eps (DCGAN: 2e-4, 0.5, 0.999; SNGAN/BigGAN: b1=0); rmsprop: decay, eps (WGAN uses
  RMSprop(5e-5) as in Arjovsky et al. 2017, PyTorch-style: decay 0.99, eps 1e-8); sgd: momentum;
  adamw: b1, b2, eps, weight_decay.
  """
  lr = learning_rate(cfg, num_updates)
  name = cfg.name
  if name == "adam":
    return optax.adam(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8))
  if name == "adamw":
    return optax.adamw(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8),
                       weight_decay=cfg.get("weight_decay", 0.0))
  if name == "rmsprop":
    return optax.rmsprop(lr, decay=cfg.get("decay_rate", 0.99), eps=cfg.get("eps", 1e-8))
  if name == "sgd":
    return optax.sgd(lr, momentum=cfg.get("momentum", None) or None)
  raise ValueError(f"unknown optimizer {name!r}; set config.optim.g.name / d.name to one of {_OPTIMIZERS}")
