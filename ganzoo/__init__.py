"""ganzoo: a JAX/Flax model zoo of generative adversarial networks."""

from ganzoo import _xla_flags

_xla_flags.set_cpu_defaults()

__version__ = "0.1.0"
