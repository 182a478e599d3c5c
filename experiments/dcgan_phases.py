"""The DCGAN training step split into its phases, ganzoo against the PyTorch twin (issue 7's profile).

  python experiments/dcgan_phases.py [--reps 9] [--batch 64]

Times, alternating ganzoo and PyTorch, median of --reps after warm-up:
  G forward   G(z) in train mode (the fakes of a D update);
  D gradient  grad of the non-saturating D loss on a real and a fake batch (2 x batch images);
  G gradient  grad of the G loss through D (D's weights frozen).
Together they are the step of `experiments/benchmark.py --models=dcgan` minus the optimizer
updates, so this shows which phase differs between the two frameworks.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (puts the repo on sys.path and sets ganzoo's XLA flags)
import jax  # noqa: E402
import torch  # noqa: E402
import torch_models  # noqa: E402

from ganzoo import methods  # noqa: E402
from ganzoo import nets as nets_lib  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--reps", type=int, default=9)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  b = args.batch
  gan = methods.build(benchmark.load_config("dcgan", b, False), methods.DataSpec((32, 32, 3)))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  G, D, obj = gan.nets["g"], gan.nets["d"], gan.objective
  g_net, d_net = state.nets["g"], state.nets["d"]
  z = jax.random.normal(jax.random.PRNGKey(1), (b, gan.z_dim))
  real = jax.random.uniform(jax.random.PRNGKey(2), (b, 32, 32, 3), minval=-1.0, maxval=1.0)

  def g_apply(gp, z):
    return nets_lib.forward(G, gp, g_net.batch_stats, z, None, train=True)[0]

  def d_apply(dp, x):
    return nets_lib.forward(D, dp, d_net.batch_stats, x, None, train=True)[0]

  g_fwd = jax.jit(g_apply)
  d_grad = jax.jit(jax.grad(lambda dp, r, f: obj.d_loss(d_apply(dp, r), d_apply(dp, f))))
  g_grad = jax.jit(jax.grad(lambda gp, z: obj.g_loss(d_apply(d_net.params, g_apply(gp, z)), None)))
  fake = g_fwd(g_net.params, z)

  trainer, _ = torch_models.build("dcgan", b)
  zt, rt = torch.randn(b, 100), torch.rand(b, 3, 32, 32) * 2 - 1
  with torch.no_grad():
    ft = trainer.G(zt)

  def t_gfwd():
    with torch.no_grad():
      trainer.G(zt)

  def t_dgrad():
    trainer.opt_d.zero_grad(set_to_none=True)
    torch_models.ns_d_loss(trainer.D(rt), trainer.D(ft)).backward()

  def t_ggrad():
    for p in trainer.D.parameters():
      p.requires_grad_(False)
    trainer.opt_g.zero_grad(set_to_none=True)
    torch_models.ns_g_loss(trainer.D(trainer.G(zt))).backward()
    for p in trainer.D.parameters():
      p.requires_grad_(True)

  phases = {
      "G forward": (lambda: jax.block_until_ready(g_fwd(g_net.params, z)), t_gfwd),
      f"D gradient ({2 * b} images)": (lambda: jax.block_until_ready(d_grad(d_net.params, real, fake)), t_dgrad),
      "G gradient": (lambda: jax.block_until_ready(g_grad(g_net.params, z)), t_ggrad),
  }
  print(f"| DCGAN phase (batch {b}) | ganzoo ms | PyTorch ms |\n|---|---|---|")
  for name, (jax_fn, torch_fn) in phases.items():
    jax_fn(), torch_fn()
    times = {0: [], 1: []}
    for rep in range(args.reps):
      for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
        t0 = time.perf_counter()
        (jax_fn if which == 0 else torch_fn)()
        times[which].append(1e3 * (time.perf_counter() - t0))
    print(f"| {name} | {statistics.median(times[0]):.1f} | {statistics.median(times[1]):.1f} |", flush=True)


if __name__ == "__main__":
  main()
