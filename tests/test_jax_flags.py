"""JAX's own options on ganzoo's command lines, and the XLA_FLAGS that `import ganzoo` sets.

Every CLI (`ganzoo.main`, `ganzoo.sample`, `ganzoo.evaluate`) calls `jax.config.config_with_absl()`,
so `--jax_platforms`, `--jax_debug_nans`, `--jax_log_compiles`, `--jax_compilation_cache_dir`, ...
are flags that reach `jax.config` before the program's main runs. Each case is a fresh Python
(subprocess, cwd = the repository so this checkout's ganzoo is imported).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YNN = "--xla_cpu_experimental_ynn_fusion_type"


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_FLAGS", "GANZOO_"))}
  env.update(extra)
  return env


# Runs `python -m ganzoo.<program> ARGS` as `__main__` (the module's own `if __name__ == "__main__"`
# block and flag parser), with the program's first step replaced by a probe: it prints what
# jax.config holds and what JAX does with it (the platform it starts, whether a NaN raises) and exits.
PROBE = r"""
import json, runpy, sys
import jax
import ganzoo.runs, ganzoo.train

def probe(*args, **kwargs):
  try:
    jax.jit(lambda x: x / x)(jax.numpy.zeros(())).block_until_ready()
    nan_raised = False
  except FloatingPointError:
    nan_raised = True
  print(json.dumps({"platforms": jax.config.jax_platforms, "debug_nans": jax.config.jax_debug_nans,
                    "log_compiles": jax.config.jax_log_compiles,
                    "cache_dir": jax.config.jax_compilation_cache_dir,
                    "platform": jax.devices()[0].platform, "nan_raised": nan_raised}))
  sys.exit(0)

ganzoo.train.train_and_evaluate = probe   # ganzoo.main
ganzoo.runs.load_run_config = probe       # ganzoo.sample, ganzoo.evaluate --workdir
sys.argv = ["ganzoo." + sys.argv[1]] + sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("program,args", [
    ("main", ["--config=dcgan:tiny", "--workdir={W}"]),
    ("sample", ["--workdir={W}"]),
    ("evaluate", ["--workdir={W}"]),
])
def test_jax_flags_reach_jax_config(program, args, tmp_path):
  """The flags are accepted and set jax.config before main: JAX_PLATFORMS=tpu in the environment
  (no TPU here: starting it fails) is overridden by --jax_platforms=cpu; --jax_debug_nans makes a
  0/0 raise FloatingPointError."""
  args = [a.replace("{W}", str(tmp_path / "w")) for a in args]
  cache = tmp_path / "jax_cache"
  jax_flags = ["--jax_platforms=cpu", "--jax_debug_nans=true", "--jax_log_compiles", f"--jax_compilation_cache_dir={cache}"]
  out = subprocess.run([sys.executable, "-c", PROBE, program] + args + jax_flags, cwd=ROOT,
                       env=_env(JAX_PLATFORMS="tpu"), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  got = json.loads(out.stdout.strip().splitlines()[-1])
  assert got == {"platforms": "cpu", "debug_nans": True, "log_compiles": True, "cache_dir": str(cache),
                 "platform": "cpu", "nan_raised": True}, got
  assert "Compiling jit(<lambda>)" in out.stderr, out.stderr[-3000:]   # --jax_log_compiles' log line


def test_main_with_jax_flags_runs_and_the_jax_cache_dir_wins(tmp_path):
  """A real `ganzoo.main` run (num_steps=0: builds the model, one jitted init) with JAX flags:
  exit 0, JAX's compile log on stderr, and the cache written to --jax_compilation_cache_dir, not to
  --compilation_cache (the folder given to JAX itself wins, as --compilation_cache's help says)."""
  data = tmp_path / "d.npz"
  np.savez(data, images=np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8))
  jax_cache, ganzoo_cache = tmp_path / "jax_cache", tmp_path / "ganzoo_cache"
  cmd = [sys.executable, "-m", "ganzoo.main", "--config=dcgan:tiny", f"--workdir={tmp_path / 'w'}",
         "--config.data.name=npz", f"--config.data.path={data}", "--config.train.num_steps=0",
         "--jax_platforms=cpu", "--jax_log_compiles", f"--jax_compilation_cache_dir={jax_cache}",
         f"--compilation_cache={ganzoo_cache}"]
  out = subprocess.run(cmd, cwd=ROOT, env=_env(JAX_PLATFORMS="tpu"), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "done: step 0" in out.stdout
  assert "Compiling jit(init)" in out.stderr, out.stderr[-3000:]
  assert any(name.startswith("jit_init") for name in os.listdir(jax_cache)), os.listdir(jax_cache)
  assert not ganzoo_cache.exists()


def test_bad_jax_flag_value_is_one_line(tmp_path):
  """A JAX flag goes through the CLI's parser: a bad value is one `error:` line, exit code 1."""
  out = subprocess.run([sys.executable, "-m", "ganzoo.main", "--config=dcgan:tiny", f"--workdir={tmp_path}",
                        "--jax_debug_nans=maybe"], cwd=ROOT, env=_env(JAX_PLATFORMS="cpu"),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: --jax_debug_nans=maybe: ") and "Non-boolean" in last, last   # a known flag


# ----------------------------------------------------------------------------- XLA_FLAGS at import

def _import(code, **env):
  out = subprocess.run([sys.executable, "-W", "always", "-c", code + "\nimport os; print(os.environ.get('XLA_FLAGS'))"],
                       cwd=ROOT, env=_env(JAX_PLATFORMS="cpu", **env), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stderr.count("ganzoo could not set XLA_FLAGS"), out.stdout.strip().splitlines()[-1]


def _ynn_flag_applies():
  from ganzoo import _xla_flags  # pylint: disable=g-import-not-at-top
  return _xla_flags._jaxlib_version().startswith(_xla_flags._JAXLIB_WITH_YNN_FLAG)  # pylint: disable=protected-access


@pytest.mark.skipif(not _ynn_flag_applies(), reason="this jaxlib has no ynn flag: ganzoo sets no XLA flag")
def test_import_after_a_backend_started_warns_once():
  late = "import jax\njax.devices()\nimport ganzoo\nfrom ganzoo import _xla_flags\n_xla_flags.set_cpu_defaults()"
  assert _import(late) == (1, f"{YNN}=")                  # a second call is silent too
  assert _import("import ganzoo\nimport jax\njax.devices()") == (0, f"{YNN}=")
  assert _import("import jax\nimport ganzoo\njax.devices()") == (0, f"{YNN}=")   # jax imported, no backend yet
  mine = f"--xla_force_host_platform_device_count=2 {YNN}="     # already set: left as it is
  assert _import("import jax\njax.devices()\nimport ganzoo", XLA_FLAGS=mine) == (0, mine)
  assert _import("import jax\njax.devices()\nimport ganzoo", GANZOO_XLA_DEFAULTS="0") == (0, "None")
