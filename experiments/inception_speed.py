"""Feature-extraction speed: ganzoo's Flax FID Inception vs the TorchScript reference, on this CPU.

Same batch (default 50 uint8 images at 299x299, so no resize work), same threads (all cores),
after warm-up; prints images/s (median of --repeats timed batches) for both, one JSON line each.

  python experiments/inception_speed.py --batch_size=50 --repeats=5
"""

import argparse
import json
import os
import time

import numpy as np


def _median_rate(fn, batch: np.ndarray, repeats: int) -> tuple[float, list[float]]:
  fn(batch)  # warm-up (compilation / TorchScript profiling runs)
  fn(batch)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn(batch)
    times.append(time.perf_counter() - t0)
  return len(batch) / float(np.median(times)), times


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--size", type=int, default=299)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--backends", default="flax,torch")
  args = parser.parse_args()
  batch = np.random.default_rng(0).integers(0, 256, (args.batch_size, args.size, args.size, 3),
                                            dtype=np.uint8)
  common = {"batch_size": args.batch_size, "size": args.size, "cpus": os.cpu_count(),
            "loadavg_1min_before": os.getloadavg()[0]}
  for backend in args.backends.split(","):
    if backend == "flax":
      import jax  # pylint: disable=g-import-not-at-top
      from ganzoo.metrics import inception  # pylint: disable=g-import-not-at-top
      ex = inception.FeatureExtractor.create()
      fn = lambda b: ex.extract(b, batch_size=len(b), progress=False)
      extra = {"jax": jax.__version__, "devices": len(jax.devices()),
               "xla_flags": os.environ.get("XLA_FLAGS", "")}
    else:
      import torch  # pylint: disable=g-import-not-at-top
      from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
      net = torch.jit.load(weights.find_torchscript_file(), map_location="cpu").eval()

      def fn(b):
        with torch.no_grad():
          x = torch.from_numpy(b).float().permute(0, 3, 1, 2)
          return net((x - 128) / 128).numpy()
      extra = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    rate, times = _median_rate(fn, batch, args.repeats)
    print(json.dumps({"backend": backend, "images_per_s": round(rate, 2),
                      "batch_seconds": [round(t, 2) for t in times], **common, **extra}),
          flush=True)


if __name__ == "__main__":
  main()
