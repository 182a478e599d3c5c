"""CoGAN results of a trained run: the paper's pixel agreement and a sheet of pairs.

  python experiments/cogan_results.py --workdir=workdirs/cogan_fm \
      --out=experiments/results/cogan_fashion_mnist --command="python -m ganzoo.main ..."

Writes <out>.json (the agreement of edge(G1(z)) and G2(z) over --num_pairs z, Liu & Tuzel 2016,
arXiv:1606.07536 Sec. 5; the same with G2's z shuffled, i.e. pairs that share nothing but the
marginals; the untrained networks' value; the run's last logged losses and wall time) and <out>.png:
blocks of two rows, G1(z) above G2(z) for the same z, then a row of edge(G1(z)) (the transform the
metric compares G2(z) with).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo.metrics import agreement  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True, help="path without extension for the .json and .png")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--num_pairs", type=int, default=10_000)
  p.add_argument("--columns", type=int, default=16)
  p.add_argument("--blocks", type=int, default=4)
  p.add_argument("--wall_time_s", type=float, default=None, help="training wall time (default: from <workdir>.log)")
  p.add_argument("--note", default="", help="recorded in the json")
  args = p.parse_args(argv)

  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, args.workdir)
  rng = jax.random.PRNGKey(1234)
  pair = lambda z: method.generate_pair(state, z)
  score = method.agreement(state, rng, args.num_pairs)

  # Pairs that share only the marginals: G2's z reversed within each batch of 500.
  shuffled = agreement.agreement_of_generator(lambda z: (pair(z)[0], pair(z[::-1])[1]), method.sample_latents, rng,
                                              args.num_pairs)
  init = method.init(jax.random.PRNGKey(int(config.seed)))
  untrained = method.agreement(init, rng, args.num_pairs)

  n = args.columns * args.blocks
  z = method.sample_latents(jax.random.fold_in(rng, 10_000), n)
  g1, g2 = (np.asarray(x) for x in pair(z))
  e1 = np.asarray(agreement.edge_transform(jnp.asarray(g1)))
  rows = []
  for b in range(args.blocks):
    sl = slice(b * args.columns, (b + 1) * args.columns)
    rows += [g1[sl], g2[sl], e1[sl]]
  sheet = sampling.make_grid(np.concatenate(rows), nrow=args.columns)
  sampling.save_grid(args.out + ".png", sheet)

  record = runs.training_record(args.workdir, args.wall_time_s)
  last, sps, wall = record["last_train"], record["steps_per_sec"], record["wall_time_s"]
  out = {
      "paper": "Liu & Tuzel 2016, arXiv:1606.07536 (CoGAN), digit <-> edge task on Fashion-MNIST",
      "command": args.command, "note": args.note, "workdir": args.workdir, "step": int(step), "wall_time_s": wall,
      "steps_per_sec_mean": float(np.mean(sps)) if sps else None,
      "config": {"model.size": config.model.size, "g_widths": list(method.generator.widths),
                 "d_widths": list(method.discriminator.widths), "batch_per_domain": int(config.data.batch_size),
                 "data": [config.data.name, config.data.split, config.data_b.name, config.data_b.split]},
      "params": method.param_counts(state),
      "pixel_agreement": {"num_pairs": args.num_pairs, "threshold": 0.0, "trained": score,
                          "trained_shuffled_pairs": shuffled, "untrained": untrained},
      "last_train_metrics": last,
      "sheet": os.path.basename(args.out) + ".png",
      "sheet_rows": "blocks of 3 rows: G1(z), G2(z) for the same z, edge(G1(z))",
  }
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps(out["pixel_agreement"]))


if __name__ == "__main__":
  main()
