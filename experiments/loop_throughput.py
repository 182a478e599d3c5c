"""The training loop's own throughput against the benchmark's step time (issue 7).

  python experiments/loop_throughput.py --model=dcgan --steps=100 --log_every=20

Writes a random 32x32x3 uint8 .npz, times the bare jitted step as experiments/benchmark.py does
(`ganzoo_side`: device-resident batch, no data pipeline), then runs the real CLI
`python -m ganzoo.main --config=configs/<model>.py --config.data.name=npz ...` (data pipeline,
prefetch, device_put, metric fetches on log steps; samples and checkpoints off until the end) and
reads `perf/steps_per_sec` of metrics.jsonl (measured between log steps, compilation excluded).
The bare step is timed again after the run, so both see similar machine load. Prints one JSON
line: ms/step both ways and `loop_overhead` = loop_ms / bench_ms - 1 (the issue asks for < 10%).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position


def bare_step_ms(model: str, batch: int, reps: int, steps_per_rep: int) -> list[float]:
  run, _ = benchmark.ganzoo_side(model, batch, tiny=False)
  run(1)
  return [1e3 * run(steps_per_rep) / steps_per_rep for _ in range(reps)]


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="dcgan", choices=sorted(benchmark.CONFIGS))
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=100, help="training steps of the real run")
  parser.add_argument("--log_every", type=int, default=20)
  parser.add_argument("--reps", type=int, default=3, help="bare-step repetitions before and after")
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--out", default=None, help="also write the JSON object here")
  args = parser.parse_args(argv)

  tmp = args.workdir or tempfile.mkdtemp(prefix="ganzoo_loop_")
  os.makedirs(tmp, exist_ok=True)
  npz = os.path.join(tmp, "images32.npz")
  rng = np.random.default_rng(0)
  np.savez(npz, images=rng.integers(0, 256, (4096, 32, 32, 3), dtype=np.uint8))

  load_start = os.getloadavg()[0]
  before = bare_step_ms(args.model, args.batch, args.reps, 2)
  workdir = os.path.join(tmp, "run")
  cmd = [sys.executable, "-m", "ganzoo.main", f"--config={os.path.join(benchmark._ROOT, benchmark.CONFIGS[args.model])}",  # pylint: disable=protected-access
         f"--workdir={workdir}", "--no_progress", "--config.data.name=npz", f"--config.data.path={npz}",
         f"--config.data.batch_size={args.batch}", f"--config.train.num_steps={args.steps}",
         f"--config.train.log_every={args.log_every}", "--config.train.sample_every=0",
         "--config.train.checkpoint_every=100000"]
  subprocess.run(cmd, cwd=benchmark._ROOT, check=True)  # pylint: disable=protected-access
  after = bare_step_ms(args.model, args.batch, args.reps, 2)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rates = [json.loads(line)["perf/steps_per_sec"] for line in f if "perf/steps_per_sec" in line]
  loop_ms = 1e3 / statistics.median(rates)
  bench_ms = statistics.median(before + after)
  out = {"model": args.model, "batch": args.batch, "steps": args.steps, "log_every": args.log_every,
         "loop_ms_per_step": round(loop_ms, 1), "bench_ms_per_step": round(bench_ms, 1),
         "loop_overhead": round(loop_ms / bench_ms - 1.0, 3),
         "loop_intervals_ms": [round(1e3 / r, 1) for r in rates],
         "bench_ms_before": [round(t, 1) for t in before], "bench_ms_after": [round(t, 1) for t in after],
         "loadavg_start": load_start, "loadavg_end": os.getloadavg()[0]}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
  print(json.dumps(out), flush=True)
  return out


if __name__ == "__main__":
  main()
