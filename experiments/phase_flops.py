"""XLA's FLOP count of a family's compiled step, and of each of its phases compiled alone.

  python experiments/phase_flops.py --models=dcgan,pix2pix
  python experiments/phase_flops.py --models=dcgan --reuse_fakes

The models and settings are experiments/benchmark.py's (dcgan, sngan at batch --batch, 32x32x3;
pix2pix, cyclegan at 256x256, batch 1). The sum of the phases alone minus the whole step is the
work that the step's program computes once for several phases: XLA merges identical computations
(common-subexpression elimination) within one jitted step, so a G forward that two phases compute
on the same inputs (pix2pix's D and G phases; the gan family with train.reuse_fakes) is counted
once. Compilation only, nothing is timed.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (puts the repo on sys.path and sets ganzoo's XLA flags)
import jax  # noqa: E402

from ganzoo import methods  # noqa: E402
from ganzoo import step as step_lib  # noqa: E402


def _family(name: str, batch: int, reuse_fakes: bool):
  if name in benchmark.TRANSLATION:
    config = benchmark.translation_config(name, False)
    shape = benchmark._translation_data_spec(name, config)  # pylint: disable=protected-access
  else:
    config = benchmark.load_config(name, batch, False)
    config.train.reuse_fakes = reuse_fakes
    shape = (32, 32, 3)
  return methods.build(config, methods.DataSpec(tuple(shape), 0))


def phase_flops(name: str, batch: int = 64, reuse_fakes: bool = False) -> dict:
  """{'step': GFLOP, 'phases': {phase: GFLOP}, 'shared': sum of phases - step} of the plan at step 0."""
  family = _family(name, batch, reuse_fakes)
  state = jax.jit(family.init)(jax.random.PRNGKey(0))
  plan = family.plan(0)
  data = methods.random_batch(family, plan, 0)

  def gflop(p):
    compiled = step_lib.make_step(family, p, mesh=None, donate=False).lower(state, data).compile()
    return benchmark._cost_flops(compiled) / 1e9  # pylint: disable=protected-access

  step = gflop(plan)
  phases = {p.name: gflop(step_lib.StepPlan((p,), plan.tag)) for p in plan.phases}
  return {"step": round(step, 2), "phases": {k: round(v, 2) for k, v in phases.items()},
          "shared": round(sum(phases.values()) - step, 2), "reuse_fakes": reuse_fakes}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="dcgan,pix2pix")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--reuse_fakes", action="store_true", help="gan family: train.reuse_fakes=True")
  args = parser.parse_args(argv)
  out = {}
  for name in [m.strip() for m in args.models.split(",") if m.strip()]:
    out[name] = phase_flops(name, args.batch, args.reuse_fakes)
    r = out[name]
    print(f"{name}: step {r['step']} GFLOP; phases alone " + ", ".join(f"{k} {v}" for k, v in r["phases"].items())
          + f"; computed once for several phases {r['shared']} GFLOP", flush=True)
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  main()
