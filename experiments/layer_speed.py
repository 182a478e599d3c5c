"""fwd+bwd time of flax's layers against ganzoo's faster equivalents (same params), at DCGAN/SNGAN shapes.

  python experiments/layer_speed.py [--reps 9] [--json experiments/results/layer_speed.json]

Each row times one jitted value_and_grad (w.r.t. params and input) of sum(layer(x) * r), the
reference and the ganzoo layer alternating, median of --reps runs after warm-up, and checks that
both give the same gradients. The rows are the XLA:CPU slow spots that `ganzoo.models.layers`
works around (see its docstrings):
  conv_transpose  nn.ConvTranspose(k4, s2, SAME)  vs layers.ConvTranspose2x (custom VJP)
  conv_down       nn.Conv(k4, s2, pad 1)          vs layers.Conv (conv_down_2x: custom VJP)
  batch_norm      nn.BatchNorm (train mode)       vs layers.BatchNorm (sums as matmuls)
  bias_conv3x3    nn.Conv(3x3) with bias          vs layers.Conv (bias gradient as a matmul)
  avg_pool        nn.avg_pool(2x2)                vs layers.avg_pool2 (custom VJP)
"""

import argparse
import json
import os
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ganzoo  # noqa: E402,F401  (sets ganzoo's XLA:CPU flags)
from ganzoo.models import layers  # noqa: E402


class _Fn(nn.Module):
  """A parameter-free function as a module, so every row is timed the same way."""
  fn: object

  def __call__(self, x):
    return self.fn(x)


def _rows():
  """(name, reference module, ganzoo module, input shape)."""
  k4s2 = dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  return [
      ("conv_transpose 4x4x512->8x8x256", nn.ConvTranspose(256, (4, 4), strides=(2, 2), padding="SAME", use_bias=False),
       layers.ConvTranspose2x(256, use_bias=False), (64, 4, 4, 512)),
      ("conv_transpose 8x8x256->16x16x128", nn.ConvTranspose(128, (4, 4), strides=(2, 2), padding="SAME", use_bias=False),
       layers.ConvTranspose2x(128, use_bias=False), (64, 8, 8, 256)),
      ("conv_down 16x16x128->8x8x256", nn.Conv(256, use_bias=False, **k4s2), layers.Conv(256, use_bias=False, **k4s2),
       (128, 16, 16, 128)),
      ("conv_down 8x8x256->4x4x512", nn.Conv(512, use_bias=False, **k4s2), layers.Conv(512, use_bias=False, **k4s2),
       (128, 8, 8, 256)),
      ("batch_norm 64x16x16x128", nn.BatchNorm(use_running_average=False), layers.BatchNorm(use_running_average=False),
       (64, 16, 16, 128)),
      ("bias_conv3x3 64x32x32x128", nn.Conv(128, (3, 3)), layers.Conv(128, (3, 3)), (64, 32, 32, 128)),
      ("avg_pool 128x32x32x128", _Fn(lambda x: nn.avg_pool(x, (2, 2), strides=(2, 2))), _Fn(layers.avg_pool2),
       (128, 32, 32, 128)),
  ]


def _grad_fn(module):
  def loss(v, x, cot):
    if "batch_stats" in v:
      y, _ = module.apply(v, x, mutable=["batch_stats"])
    else:
      y = module.apply(v, x)
    return jnp.sum(y * cot)
  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def _time(fn, *args) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return 1e3 * (time.perf_counter() - t0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=9)
  parser.add_argument("--json", default="", help="also write the rows to this JSON file")
  args = parser.parse_args()
  results = []
  print("| layer (fwd+bwd) | flax ms | ganzoo ms | speed-up | max rel. grad diff |")
  print("|---|---|---|---|---|")
  for name, ref, fast, shape in _rows():
    kx, kr = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, shape)
    variables = ref.init(jax.random.PRNGKey(1), x)
    cot = jax.random.normal(kr, jax.eval_shape(lambda v, x: ref.apply(v, x, mutable=["batch_stats"])[0]
                                               if "batch_stats" in v else ref.apply(v, x), variables, x).shape)
    f_ref, f_fast = _grad_fn(ref), _grad_fn(fast)
    g_ref, g_fast = f_ref(variables, x, cot), f_fast(variables, x, cot)
    diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))
               for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)))
    t_ref, t_fast = [], []
    for rep in range(args.reps):
      for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
        if which == 0:
          t_ref.append(_time(f_ref, variables, x, cot))
        else:
          t_fast.append(_time(f_fast, variables, x, cot))
    m_ref, m_fast = statistics.median(t_ref), statistics.median(t_fast)
    results.append({"layer": name, "flax_ms": round(m_ref, 2), "ganzoo_ms": round(m_fast, 2),
                    "speedup": round(m_ref / m_fast, 2), "max_rel_grad_diff": diff})
    print(f"| {name} | {m_ref:.1f} | {m_fast:.1f} | {m_ref / m_fast:.2f}x | {diff:.1e} |", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"rows": results, "jax": jax.__version__, "cores": os.cpu_count(),
                 "loadavg": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S")}, f, indent=1)
  return np.array([r["speedup"] for r in results])


if __name__ == "__main__":
  main()
