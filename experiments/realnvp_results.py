"""Real NVP results of a trained run: exact bits/dim on the whole test split, with the training record.

  python experiments/realnvp_results.py --workdir=workdirs/realnvp_fm \
      --out=experiments/results/realnvp_fashion_mnist \
      --command="nice -n 10 python -m ganzoo.main --config=configs/realnvp.py:fashion_mnist --workdir=..."

bits/dim = (-log p(x) + D ln 256) / (D ln 2) with x the test images uniformly dequantized by the
family's fixed key, the flow in inference mode (running averages): `python -m ganzoo.evaluate
--workdir=RUN --metrics=bpd --num_samples=N` (ganzoo.evaluate's `bpd`, the family's `nll`). Writes
<out>.json: the command, steps, wall time, steps/s, the test bits/dim and the last train metrics.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ganzoo import evaluate  # noqa: E402
from ganzoo import runs  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True, help="path without extension for the .json")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--num_test", type=int, default=10_000, help="test images (Fashion-MNIST has 10,000)")
  p.add_argument("--batch_size", type=int, default=500)
  args = p.parse_args(argv)
  start = time.time()
  result = evaluate.evaluate_workdir(args.workdir, "bpd", num_samples=args.num_test, batch_size=args.batch_size,
                                     write=True)
  record = runs.training_record(args.workdir)
  config = runs.load_run_config(args.workdir)
  out = {
      "command": args.command,
      "config": {"model": config.model.to_dict(), "batch_size": int(config.data.batch_size),
                 "num_steps": int(config.train.num_steps), "data": config.data.name},
      "steps": result["step"],
      "wall_time_s": record["wall_time_s"],
      "steps_per_sec_logged": record["steps_per_sec"],
      "test_bpd": result["bpd"],
      "test_split": result["bpd_split"],
      "num_test_images": args.num_test,
      "last_train": record["last_train"],
      "eval_time_s": time.time() - start,
      "note": ("exact bits/dim of the discrete pixels through uniform dequantization (fixed noise key), "
               "flow in inference mode; the paper's figures are CIFAR-10 3.49, ImageNet 32x32 4.28"),
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps({k: out[k] for k in ("steps", "wall_time_s", "test_bpd")}))


if __name__ == "__main__":
  main()
