"""Startup time with ganzoo's persistent compilation cache (ganzoo.compile_cache): first vs second start.

  python experiments/compile_cache_startup.py [--min_compile_secs=0.1] [--batch=32]

Runs the same child process three times, one after the other, each a fresh Python and JAX:
'off' (cache off), 'first' (a fresh, empty cache folder) and 'second' (the folder the first run
filled). The child builds a small DCGAN-like discriminator (flax.linen: 4 conv layers
3->64->128->256->512, 32x32x3 input, batch --batch), initialises it eagerly (`model.init`, many
small programs) and takes `jax.jit(jax.value_and_grad(loss))` of it; it reports, from the start
of the process, the seconds to import, to initialise, and to the first result of the jitted
function, plus the compile+run time of that first call alone and the cache entries on disk.
The last line printed is one JSON object with all three runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

T0 = time.perf_counter()


def child(cache: str, min_compile_secs: float, batch: int) -> dict:
  """One fresh start: import, init, first jitted value_and_grad; returns the times."""
  if min_compile_secs >= 0:
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(min_compile_secs)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from ganzoo import compile_cache  # pylint: disable=g-import-not-at-top
  path = compile_cache.enable(cache)
  t_import = time.perf_counter() - T0

  class D(nn.Module):

    @nn.compact
    def __call__(self, x):
      for width in (64, 128, 256, 512):
        x = nn.leaky_relu(nn.Conv(width, (4, 4), strides=(2, 2), padding=1)(x), 0.2)
      return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]

  model = D()
  x = jax.random.normal(jax.random.key(0), (batch, 32, 32, 3))
  params = model.init(jax.random.key(1), x)
  jax.block_until_ready(params)
  t_init = time.perf_counter() - T0

  def loss(p, x):
    return jnp.mean(jax.nn.softplus(-model.apply(p, x)))

  step = jax.jit(jax.value_and_grad(loss))
  t = time.perf_counter()
  jax.block_until_ready(step(params, x))
  first_call = time.perf_counter() - t
  t_first = time.perf_counter() - T0
  entries = len(os.listdir(path)) if path else 0
  return dict(cache=path, import_s=round(t_import, 3), init_s=round(t_init, 3),
              first_result_s=round(t_first, 3), first_call_s=round(first_call, 3),
              cache_entries=entries, jax=jax.__version__, backend=jax.default_backend())


def run_child(cache: str, min_compile_secs: float, batch: int) -> dict:
  out = subprocess.run([sys.executable, __file__, "--child", cache,
                        f"--min_compile_secs={min_compile_secs}", f"--batch={batch}"],
                       check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--min_compile_secs", type=float, default=-1.0,
                      help="jax_persistent_cache_min_compile_time_secs; -1: ganzoo's default.")
  parser.add_argument("--batch", type=int, default=32)
  args = parser.parse_args()
  if args.child is not None:
    print(json.dumps(child(args.child, args.min_compile_secs, args.batch)))
    return
  runs = {}
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "jax_cache")
    for name, where in (("off", "off"), ("first", cache), ("second", cache)):
      runs[name] = run_child(where, args.min_compile_secs, args.batch)
      r = runs[name]
      print(f"{name:>6}: import {r['import_s']:.2f}s  init {r['init_s']:.2f}s  first result "
            f"{r['first_result_s']:.2f}s (jit call {r['first_call_s']:.2f}s)  "
            f"cache entries {r['cache_entries']}", flush=True)
  print(json.dumps({"runs": runs, "min_compile_secs": args.min_compile_secs, "batch": args.batch}))


if __name__ == "__main__":
  main()
