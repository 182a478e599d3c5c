"""ms/step and peak memory of BigGAN CIFAR-10 (configs/biggan.py:cifar10) on this machine.

  python experiments/biggan_speed.py [--batch=64] [--steps=10] [--variant=cifar10] [--dtype=bfloat16]

One step = `train.d_steps` D updates + 1 G update (the CIFAR-10 config, after BigGAN-PyTorch launch_cifar_ema.sh: 4 + 1) on the global batch,
jitted on one device, random data (the input pipeline is not timed). Reports compile time, the
median and min ms/step over `--steps` timed steps after one warm-up, XLA's FLOP count, the parameter counts, the
peak RSS of the process (resource.getrusage) and the 1-minute load average (the CPU is shared).
`--dtype` sets `config.model.dtype` (ganzoo.precision: float32 params, bfloat16/float16 compute).
"""

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  pylint: disable=g-import-not-at-top
from ganzoo import parallel  # pylint: disable=g-import-not-at-top
from ganzoo import methods  # pylint: disable=g-import-not-at-top
from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top


def load_config(arg: str):
  spec = importlib.util.spec_from_file_location("biggan_cfg", os.path.join(ROOT, "configs", "biggan.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--variant", default="cifar10")
  parser.add_argument("--d_steps", type=int, default=None, help="override train.d_steps")
  parser.add_argument("--dtype", default="float32", help="config.model.dtype: float32 | bfloat16 | float16")
  args = parser.parse_args()
  config = load_config(args.variant)
  config.model.dtype = args.dtype
  if args.d_steps is not None:
    config.train.d_steps = args.d_steps
  config.data.batch_size = args.batch
  size = config.data.image_size or 32
  shape, num_classes = (size, size, 3), 10 if args.variant.startswith("cifar10") else 1000
  mesh = parallel.make_mesh(jax.devices()[:1])
  gan = methods.build(config, methods.DataSpec(shape, num_classes))
  state = parallel.replicate(gan.init(jax.random.PRNGKey(0)), mesh)
  step = step_lib.make_step(gan, gan.plan(0), mesh)
  rng = np.random.default_rng(0)
  d = int(config.train.d_steps)
  batch = parallel.global_batch({"real": {
      "image": rng.integers(0, 256, (d, args.batch, *shape), dtype=np.uint8),
      "label": rng.integers(0, num_classes, (d, args.batch)).astype(np.int32)}}, mesh)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  gflop = float((cost or {}).get("flops", float("nan"))) / 1e9
  step = compiled
  state, metrics = step(state, batch)   # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"BigGAN {args.variant}: G {param_count(state.nets['g'].params):,} D {param_count(state.nets['d'].params):,} params, "
        f"batch {args.batch}, d_steps {d}, grad_accum {config.train.grad_accum}, compute {args.dtype}")
  med = statistics.median(times)
  print(f"compile {compile_s:.1f} s; ms/step median {1e3 * med:.0f}, min {1e3 * min(times):.0f} over "
        f"{args.steps} steps; XLA cost analysis {gflop:.0f} GFLOP/step = {gflop / med:.0f} GFLOP/s")
  print(f"peak RSS {rss_gib:.2f} GiB; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"losses finite: {all(np.isfinite(float(v)) for v in jax.device_get(metrics).values())}")


if __name__ == "__main__":
  main()
