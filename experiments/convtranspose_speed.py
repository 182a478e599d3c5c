"""fwd+bwd time of nn.ConvTranspose(k4, s2, SAME) vs ganzoo's ConvTranspose2x (same params).

  python experiments/convtranspose_speed.py [--batch 64] [--hw 4] [--cin 512] [--cout 256]

Times one jitted value_and_grad (w.r.t. kernel, bias and input) of sum(y * r); median of --reps
runs after warm-up. See shared PERF_NOTES: XLA:CPU's kernel gradient of lhs-dilated convolutions
is the slow part of nn.ConvTranspose.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import ganzoo  # noqa: F401  (sets ganzoo's XLA:CPU flags)
from ganzoo.models import layers


def time_fwd_bwd(module: nn.Module, params, x, cot, reps: int) -> tuple[float, float]:
  def loss(p, x, cot):
    return jnp.sum(module.apply(p, x) * cot)

  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  t0 = time.perf_counter()
  jax.block_until_ready(step(params, x, cot))
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(step(params, x, cot))
    times.append(time.perf_counter() - t0)
  return float(np.median(times)) * 1e3, compile_s


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--hw', type=int, default=4)
  parser.add_argument('--cin', type=int, default=512)
  parser.add_argument('--cout', type=int, default=256)
  parser.add_argument('--reps', type=int, default=10)
  args = parser.parse_args()
  kx, kp, kr = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (args.batch, args.hw, args.hw, args.cin))
  cot = jax.random.normal(kr, (args.batch, 2 * args.hw, 2 * args.hw, args.cout))
  ref = nn.ConvTranspose(args.cout, (4, 4), strides=(2, 2), padding='SAME')
  params = jax.jit(ref.init)(kp, x)
  print(f"{jax.devices()[0].platform}: x {x.shape} -> {cot.shape}, fwd+bwd (grads of kernel, "
        f"bias, input), median of {args.reps}")
  for name, module in [('nn.ConvTranspose', ref),
                       ('ConvTranspose2x', layers.ConvTranspose2x(args.cout))]:
    ms, compile_s = time_fwd_bwd(module, params, x, cot, args.reps)
    print(f"  {name:18s} {ms:9.1f} ms/step   (first call incl. compile {compile_s:.1f} s)")
  torch_ms = time_torch(args)
  if torch_ms is not None:
    print(f"  {'torch ConvT2d':18s} {torch_ms:9.1f} ms/step   (PyTorch eager, NCHW, for reference)")


def time_torch(args) -> float | None:
  """The same layer in PyTorch eager (ConvTranspose2d(k=4, s=2, p=1)), if torch is installed."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  layer = torch.nn.ConvTranspose2d(args.cin, args.cout, 4, 2, 1)
  x = torch.randn(args.batch, args.cin, args.hw, args.hw, requires_grad=True)
  cot = torch.randn(args.batch, args.cout, 2 * args.hw, 2 * args.hw)
  times = []
  for i in range(args.reps + 2):
    t0 = time.perf_counter()
    layer.zero_grad()
    x.grad = None
    (layer(x) * cot).sum().backward()
    if i >= 2:
      times.append(time.perf_counter() - t0)
  return float(np.median(times)) * 1e3


if __name__ == '__main__':
  main()
