"""ganzoo: a JAX/Flax model zoo of generative adversarial networks."""

from ganzoo import _xla_flags

_xla_flags.set_cpu_defaults()

__version__ = "0.1.0"


def load_generator(path):
  """The generator exported by `python -m ganzoo.export` at `path` (its .msgpack, .json or folder):
  `g.sample(rng, n, condition=None)` -> uint8 NHWC images. See `ganzoo.export.load_generator`.

  JAX is imported here, on the first call, not by `import ganzoo`: `_xla_flags` above must set
  XLA_FLAGS before the JAX backend starts.
  """
  from ganzoo import export  # pylint: disable=g-import-not-at-top
  return export.load_generator(path)
