"""BigGAN (CIFAR-10 architecture) trained 100 steps at float32 and at bfloat16 compute on this CPU.

  python experiments/precision_biggan.py [--root=/tmp/precision_biggan] [--steps=100]

Each run is `python -m ganzoo.main --config=configs/biggan.py:cifar10` on Fashion-MNIST at 32x32
(the offline stand-in for CIFAR-10; 10 classes) with batch 16 and 1 D step per G step (the paper's
widths, a CPU-sized batch), `--config.model.dtype` float32 or bfloat16 (`ganzoo.precision`). A
finished run is not repeated (the training program resumes and finds nothing left to do). Writes
`experiments/results/biggan_precision.json`: per dtype the wall time of this call (the startup
only, when the run had finished before), the median steps/s of the
log intervals after the first (the first holds the compile), whether every logged metric is finite
(the training program also stops on a non-finite state at each checkpoint, so a finished run had
none) and the last logged metrics.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments import machine  # noqa: E402  pylint: disable=g-import-not-at-top


def run_args(workdir: str, dtype: str, steps: int) -> list[str]:
  return [sys.executable, "-m", "ganzoo.main", "--config=configs/biggan.py:cifar10", f"--workdir={workdir}",
          f"--config.model.dtype={dtype}", f"--config.train.num_steps={steps}", "--config.train.d_steps=1",
          "--config.data.batch_size=16", "--config.data.name=fashion_mnist", "--config.data.image_size=32",
          "--config.train.log_every=10", f"--config.train.sample_every={steps}", "--config.train.checkpoint_every=50"]


def summarize(workdir: str) -> dict:
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  rates = [l["perf/steps_per_sec"] for l in lines if "perf/steps_per_sec" in l][1:]
  train = [l for l in lines if any(k.startswith("train/") for k in l)]
  finite = all(math.isfinite(v) for l in train for k, v in l.items() if k.startswith("train/"))
  last = train[-1] if train else {}
  return {"steps": last.get("step"), "median_steps_per_sec": statistics.median(rates) if rates else None,
          "median_s_per_step": 1.0 / statistics.median(rates) if rates else None,
          "metrics_finite": finite, "last": {k: v for k, v in last.items() if k.startswith("train/")}}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--root", default="/tmp/precision_biggan")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "biggan_precision.json"))
  args = parser.parse_args()
  out = {"command": " ".join(run_args("WORKDIR", "DTYPE", args.steps)[1:]), "machine": {
      "cpu": machine.cpu_name(), "cpu_extensions": machine.cpu_extensions(), "cores": os.cpu_count(),
      "jax": machine.version("jax"), "jaxlib": machine.version("jaxlib")}, "runs": {}}
  for dtype in ("float32", "bfloat16"):
    workdir = os.path.join(args.root, dtype)
    t0 = time.time()
    subprocess.run(run_args(workdir, dtype, args.steps), cwd=ROOT, check=True)
    out["runs"][dtype] = {"wall_s_this_call": round(time.time() - t0, 1), **summarize(workdir)}
    print(dtype, out["runs"][dtype], flush=True)
  f32, b16 = (out["runs"][d]["median_s_per_step"] for d in ("float32", "bfloat16"))
  if f32 and b16:
    out["bfloat16_speedup"] = f32 / b16
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
