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


# The files that take longest, run first. Under `--dist loadfile` a file is one unit of work, and
# with `--no-loadscope-reorder` (.ci/run, the README's test command) the units are handed out in
# collection order, each worker taking the next file when it is nearly done with its current one.
# Heavy files first and the many short ones last is the longest-first rule of list scheduling: what
# is left when one worker runs out of files is short files, not a heavy one. pytest-xdist's default
# order (files with more tests first) puts the heavy few-test files (test_large_batch.py: 3 tests,
# each a BigGAN compiled in float64) at the end, where one worker runs them while the other idles.
# Sources: the per-test durations of the 2026-12-03 CI run (its slowest tests) and of a loaded
# `--durations=0` run stopped after 264 of 811 tests. The order only changes when files run, never
# what they assert; a file not listed keeps its alphabetical place after these.
SLOW_FILES_FIRST = (
    "test_train_objectives.py",       # one step of every config (BigGAN-deep, AC-GAN, SAGAN, ...)
    "test_augment_ada_families.py",   # StyleGAN2 + ADA with R1, the gan family's 8 == 1 with augmentation
    "test_families.py",               # every family: 8 devices == 1 device, in float64
    "test_families_resume.py",        # every family: resumed == unbroken, three runs each
    "test_large_batch.py",            # BigGAN 8 == 1 and accumulation == large batch, in float64
    "test_cli_errors.py",             # ~45 CLI subprocesses
    "test_train.py",
    "test_models.py",
    "test_translation_models.py",
    "test_augment_ada.py",
)


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """Orders the files as SLOW_FILES_FIRST says (a stable sort: the tests of a file keep their order)."""
  rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
