"""A sheet of LAPGAN's coarse-to-fine chain from a run's newest checkpoint.

  python experiments/lapgan_levels.py --workdir=workdirs/lapgan_fm --out=levels.png [--n=16]

Row 1: I~_2 (8x8, shown with nearest-neighbour pixels at 32x32), row 2: I~_1 (16x16), row 3: the
final samples I~_0 (32x32), each column one chain I~_k = u(I~_{k+1}) + G_k(z_k, u(I~_{k+1}))
(ganzoo.methods.lapgan.LAPGAN.sample_pyramid).
"""

import sys

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, ".")   # run from the repository root: this checkout's ganzoo

from ganzoo import checkpoint  # noqa: E402
from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo import train  # noqa: E402
from ganzoo.methods import lapgan  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A lapgan run directory.", required=True)
_OUT = flags.DEFINE_string("out", None, "PNG to write.", required=True)
_N = flags.DEFINE_integer("n", 16, "Chains (columns).")
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed.")


def main(argv):
  del argv
  config = runs.load_run_config(_WORKDIR.value)
  _, method, _ = train.setup(config, need_data=False)
  if not isinstance(method, lapgan.LAPGAN):
    raise ValueError(f"{_WORKDIR.value} is a {config.method!r} run; this sheet is for config.method='lapgan'")
  restored = checkpoint.latest_state(_WORKDIR.value, method.init(jax.random.PRNGKey(config.seed)))
  if restored is None:
    raise ValueError(f"{_WORKDIR.value} has no checkpoint yet")
  state, step = restored
  rows = lapgan.level_sheet(method, state, jax.random.PRNGKey(_SEED.value), _N.value)
  n = rows.shape[1]
  sampling.save_grid(_OUT.value, sampling.make_grid(rows.reshape(-1, *rows.shape[2:]), nrow=n))
  print(f"step {step}: {rows.shape[0]} levels x {n} chains -> {_OUT.value}; pixel range of the final row "
        f"[{float(np.min(rows[-1])):.2f}, {float(np.max(rows[-1])):.2f}]")


if __name__ == "__main__":
  app.run(main)
