"""XLA:CPU flags that ganzoo sets for itself (see shared PERF_NOTES and experiments/benchmark.py).

`--xla_cpu_experimental_ynn_fusion_type=` (an empty value) turns off jaxlib 0.10's default YNNPACK
fusions: measured 25-30% faster GAN steps on a 2-core Zen 4, and it avoids the ynn-fusion hang
reported in jax-ml/jax#39257. The flag only exists in the jaxlib releases listed below, and XLA
aborts on unknown flags, so it is added only for those. It must be in XLA_FLAGS before the JAX
backend starts, so it is set when `ganzoo` is imported. Set GANZOO_XLA_DEFAULTS=0 to opt out, or
put your own value of the flag in XLA_FLAGS (yours wins).

XLA reads XLA_FLAGS once, when the first backend is created: a `ganzoo` imported after a JAX
computation (`import jax; jax.devices(); import ganzoo`) cannot change that process's flags, so it
warns once (`set_cpu_defaults`) instead of doing nothing silently.
"""

import os
import sys
import warnings

_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_JAXLIB_WITH_YNN_FLAG = ("0.10.", "0.11.")


def _jaxlib_version() -> str:
  try:
    from importlib.metadata import version
    return version("jaxlib")
  except Exception:  # pylint: disable=broad-except
    return ""


LATE_WARNING = (f"ganzoo could not set XLA_FLAGS={_YNN_FLAG}= (25-30% faster GAN steps on CPU): a JAX backend "
                "was already started; import ganzoo before any JAX computation, or set the flag in XLA_FLAGS "
                "before starting Python (GANZOO_XLA_DEFAULTS=0 silences this)")


def backend_started() -> bool:
  """Whether this process has created a JAX backend, found without creating one.

  Reads `jax._src.xla_bridge.backends_are_initialized()` (jax 0.4 to 0.10 at least; the check
  `jax.distributed.initialize` uses for the same question) only when JAX is already imported:
  importing it here would not start a backend, but nothing needs it. Any other JAX layout answers
  False (no warning), never an error at `import ganzoo`.
  """
  bridge = sys.modules.get("jax._src.xla_bridge")
  if bridge is None:
    return False
  try:
    return bool(bridge.backends_are_initialized())
  except Exception:  # pylint: disable=broad-except
    return bool(getattr(bridge, "_backends", None))


def set_cpu_defaults() -> None:
  if os.environ.get("GANZOO_XLA_DEFAULTS", "1") == "0":
    return
  flags = os.environ.get("XLA_FLAGS", "")
  if _YNN_FLAG in flags:
    return
  if not _jaxlib_version().startswith(_JAXLIB_WITH_YNN_FLAG):
    return
  # Set even when it is too late for this process: subprocesses inherit it. Being set, it also makes
  # any later call return above, so the warning comes once per process.
  os.environ["XLA_FLAGS"] = (flags + " " + _YNN_FLAG + "=").strip()
  if backend_started():
    # stacklevel 3: the user's `import ganzoo` line (warnings skips the importlib frames between).
    warnings.warn(LATE_WARNING, RuntimeWarning, stacklevel=3)
