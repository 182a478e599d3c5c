"""Test setup: 8 fake CPU devices so multi-device code is tested anywhere, strict rank promotion."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# XLA:CPU's backend (LLVM) at optimization level 1 in the tests. Compiling dominates this suite
# (hundreds of step, init and sample programs, most run once or twice), and level 1 compiles them
# about twice as fast as XLA's default while running them about as fast. Measured on a 2-core EPYC
# (tests/test_train_objectives.py[dcgan], compile-bound / tests/test_latent.py::test_recovery_w,
# 300 optimizer steps): default 23 s / 22 s, level 1 11 s / 17 s, level 0 10 s / 61 s (level 0
# halved the whole suite, 76 -> 39 min, but made every optimization loop 3x slower). A level can
# change the last bits of a result (tests/test_port.py, bit-exact records written at the default
# level, fails on two of three cases at level 1 and so compiles its step at the default level), so
# no test here may depend on the bits: the tolerances are error bounds of the float arithmetic, not
# of a compiler setting. Subprocesses started with os.environ inherit it; training
# runs and benchmarks outside the tests keep XLA's default (the flag is set only here).
# GANZOO_TEST_XLA_OPT=default keeps XLA's default level in the tests too.
# Tests that start subprocesses with XLA_FLAGS of their own add SUBPROCESS_XLA_FLAGS to them.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
SUBPROCESS_XLA_FLAGS = "" if os.environ.get("GANZOO_TEST_XLA_OPT", "") == "default" else TEST_XLA_FLAGS
if SUBPROCESS_XLA_FLAGS and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()

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
