"""JAX's persistent compilation cache, on by default for ganzoo runs.

A restarted or resumed run, a second config with the same shapes, `ganzoo.evaluate` after
training: each compiles the same XLA programs again (the GAN step, the Inception forward, the
sampler). With the cache on, the second start loads the executables from disk instead
(https://docs.jax.dev/en/latest/persistent_compilation_cache.html). See
experiments/compile_cache_startup.py for the time it saves.

  from ganzoo import compile_cache
  compile_cache.enable()   # before the first jit; returns the folder in use, or None

GANZOO_COMPILATION_CACHE=DIR picks the folder (default ~/.cache/ganzoo/jax_cache);
GANZOO_COMPILATION_CACHE=off (or 0) turns it off. A folder you gave JAX yourself
(JAX_COMPILATION_CACHE_DIR, --jax_compilation_cache_dir, jax.config.update) is kept.
"""

from __future__ import annotations

import os

import jax

CACHE_ENV = "GANZOO_COMPILATION_CACHE"
DEFAULT_DIR = "~/.cache/ganzoo/jax_cache"
OFF_VALUES = ("off", "0")
# Cache every compiled program, however fast it compiled; see ``enable`` for why.
MIN_COMPILE_SECS = 0.0
# The JAX environment variables whose values ``enable`` leaves alone when they are set.
_JAX_ENV = {
    "jax_persistent_cache_min_compile_time_secs": "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    "jax_persistent_cache_min_entry_size_bytes": "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
}


def resolve_dir(cache_dir: str | None = None) -> str | None:
  """The folder to use: ``cache_dir``, else $GANZOO_COMPILATION_CACHE, else DEFAULT_DIR.

  Returns None for 'off' or '0' (any case); ``~`` is expanded and the path made absolute.
  """
  value = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or DEFAULT_DIR
  value = str(value).strip()
  if value.lower() in OFF_VALUES:
    return None
  return os.path.abspath(os.path.expanduser(value))


def enable(cache_dir: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache at ``resolve_dir(cache_dir)``; returns the folder.

  Call it before the first compilation (JAX opens the cache once, at its first use). If JAX
  already has a cache folder (JAX_COMPILATION_CACHE_DIR, a flag, an earlier call), that one is
  kept and returned, whatever ``cache_dir`` says. 'off' / '0' changes nothing and returns None.

  Entries: every program is written, however fast it compiled
  (``jax_persistent_cache_min_compile_time_secs`` = MIN_COMPILE_SECS = 0) and however small
  (``jax_persistent_cache_min_entry_size_bytes`` = -1: no size floor, now or in a later JAX that
  picks one per file system). JAX's 1 s default leaves out most of a ganzoo start: on a loaded
  2-core CPU a 4-conv D's jitted value_and_grad compiles in ~0.9 s and each of the ~40 small
  programs of an eager ``model.init`` in ~0.2 s, while reading one back takes tens of ms.
  Measured with experiments/compile_cache_startup.py (time to the first result, second start):
  6.8 s with 1 s (nearly nothing cached), 3.0 s with 0.1 s, 1.9 s with 0 (45 entries), against
  9 s with the cache off. Values you set through the JAX_PERSISTENT_CACHE_* environment
  variables are kept. The folder grows without bound; ``jax_compilation_cache_max_size`` caps it.

  Args:
    cache_dir: a folder, 'off'/'0', or None for $GANZOO_COMPILATION_CACHE / DEFAULT_DIR.

  Returns:
    The cache folder in use, or None when the cache is off.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = resolve_dir(cache_dir)
  if path is None:
    return None
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  if _JAX_ENV["jax_persistent_cache_min_compile_time_secs"] not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
  if _JAX_ENV["jax_persistent_cache_min_entry_size_bytes"] not in os.environ:
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  return path
