"""Test setup: 8 fake CPU devices so multi-device code is tested anywhere, strict rank promotion."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (sets XLA flags before the backend starts)

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")

# A persistent compilation cache per test process, in a fresh temporary folder removed at exit: a
# program compiled twice in one session (the resume test trains each family three times, with the
# same step, sample and init programs) compiles once and is read back afterwards. Fresh per session,
# so a run never reads what an earlier checkout or JAX wrote. GANZOO_TEST_COMPILATION_CACHE=off turns
# it off (tests/test_compile_cache.py checks the cache itself in subprocesses with their own folders).
if os.environ.get("GANZOO_TEST_COMPILATION_CACHE", "").lower() not in ("off", "0"):
  import atexit  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  from ganzoo import compile_cache  # pylint: disable=g-import-not-at-top

  _CACHE_DIR = tempfile.mkdtemp(prefix="ganzoo_test_jax_cache_")
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  compile_cache.enable(_CACHE_DIR)
