"""Test setup: 8 fake CPU devices so multi-device code is tested anywhere, strict rank promotion."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (sets XLA flags before the backend starts)

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
