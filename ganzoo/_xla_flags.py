"""XLA:CPU flags that ganzoo sets for itself (see shared PERF_NOTES and experiments/benchmark.py).

`--xla_cpu_experimental_ynn_fusion_type=` (an empty value) turns off jaxlib 0.10's default YNNPACK
fusions: measured 25-30% faster GAN steps on a 2-core Zen 4, and it avoids the ynn-fusion hang
reported in jax-ml/jax#39257. The flag only exists in the jaxlib releases listed below, and XLA
aborts on unknown flags, so it is added only for those. It must be in XLA_FLAGS before the JAX
backend starts, so it is set when `ganzoo` is imported. Set GANZOO_XLA_DEFAULTS=0 to opt out, or
put your own value of the flag in XLA_FLAGS (yours wins).
"""

import os

_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_JAXLIB_WITH_YNN_FLAG = ("0.10.", "0.11.")


def _jaxlib_version() -> str:
  try:
    from importlib.metadata import version
    return version("jaxlib")
  except Exception:  # pylint: disable=broad-except
    return ""


def set_cpu_defaults() -> None:
  if os.environ.get("GANZOO_XLA_DEFAULTS", "1") == "0":
    return
  flags = os.environ.get("XLA_FLAGS", "")
  if _YNN_FLAG in flags:
    return
  if not _jaxlib_version().startswith(_JAXLIB_WITH_YNN_FLAG):
    return
  os.environ["XLA_FLAGS"] = (flags + " " + _YNN_FLAG + "=").strip()
