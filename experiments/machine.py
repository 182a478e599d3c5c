"""What machine a measurement came from: CPU model, SIMD extensions, library versions (no JAX import)."""

import platform
from importlib import metadata

# The extensions that decide these kernels' speed: AVX-512 and its BF16/VNNI/FP16 forms, AMX tiles.
EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_tile")


def _cpuinfo_field(key: str) -> str | None:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith(key):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def cpu_name() -> str:
  return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_extensions() -> list[str]:
  have = set((_cpuinfo_field("flags") or "").split())
  return [w for w in EXTENSIONS if w in have]


def version(package: str) -> str:
  try:
    return metadata.version(package)
  except metadata.PackageNotFoundError:
    return ""
