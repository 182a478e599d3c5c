"""XLA:CPU runtime options and core counts against the PyTorch twin: one benchmark process per option.

  python experiments/xla_options.py --models=dcgan --reps=7 --steps=3 --out=experiments/results/xla_options.json
  python experiments/xla_options.py --models=dcgan --options=base,onednn --reps=5

XLA reads XLA_FLAGS once, when its backend starts, so each option runs `experiments/benchmark.py` in a
fresh process with its own environment (and, for the one-core rows, under `taskset -c 0` with
PyTorch on one thread too). Every row is the same A/B benchmark: ganzoo's jitted step against the
PyTorch twin in the same process, medians over --reps repetitions, ratio = torch_ms / ganzoo_ms.
Options that do not change the computation are marked `same_math`; `fast_math` lets XLA reassociate
and approximate, so it is reported but never a default.

The table printed at the end (and the JSON written to --out) names the machine (CPU model, cores,
ISA extensions, matmul peak measured in each run, jax/jaxlib/torch versions), so that rows from
different machines are never mixed. An option this jaxlib does not know makes XLA abort at start-up:
that row records the error line instead of numbers.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import machine  # experiments/machine.py (imports no JAX: XLA_FLAGS stay this script's to set)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name: (XLA flags added to ganzoo's default, environment changes, one core?, same math?, what it is)
OPTIONS = {
    "base": ("", {}, False, True, "ganzoo's default: YNNPACK fusions off (ganzoo/_xla_flags.py)"),
    "ynn_default": ("", {"GANZOO_XLA_DEFAULTS": "0"}, False, True,
                    "jaxlib's own default (YNNPACK fusions on)"),
    "onednn": ("--xla_cpu_use_onednn=true", {}, False, True,
               "oneDNN thunks for matmul and convolution fusions"),
    "onednn_fusions": ("--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
                       {}, False, True, "oneDNN thunks plus oneDNN dot/eltwise fusions"),
    "xnnpack": ("--xla_cpu_use_xnnpack=true", {}, False, True, "XNNPACK for supported operations"),
    "xnn_graph": ("--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY", {}, False, True,
                  "greedy XNNPACK subgraph fusion"),
    "eigen_single_thread": ("--xla_cpu_multi_thread_eigen=false", {}, False, True,
                            "Eigen calls (convolutions, dots) single-threaded"),
    "concurrency_scheduler": ("--xla_cpu_enable_concurrency_optimized_scheduler=true", {}, False, True,
                              "HLO scheduler that extracts concurrency between independent ops"),
    "isa_avx2": ("--xla_cpu_max_isa=AVX2", {}, False, True, "LLVM code generation limited to AVX2"),
    "vector_width_512": ("--xla_cpu_prefer_vector_width=512", {}, False, True,
                         "LLVM prefers 512-bit vectors in XLA's own loops"),
    "one_core": ("", {}, True, True, "both sides pinned to one core (taskset -c 0, torch 1 thread)"),
    "fast_math": ("--xla_cpu_enable_fast_math=true", {}, False, False,
                  "XLA fast math (reassociation, approximate functions): changes results"),
}


def run_option(name: str, args) -> dict:
  flags, env_changes, one_core, same_math, what = OPTIONS[name]
  env = dict(os.environ)
  env.update(env_changes)
  if flags:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
  argv = [sys.executable, os.path.join(HERE, "benchmark.py"), f"--models={args.models}", f"--reps={args.reps}",
          f"--steps={args.steps}", f"--warmup={args.warmup}", f"--batch={args.batch}", "--json"]
  if one_core:
    argv = ["taskset", "-c", "0"] + argv + ["--torch_threads=1"]
  t0 = time.time()
  proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
  row = {"option": name, "xla_flags_added": flags, "env": env_changes, "one_core": one_core,
         "same_math": same_math, "what": what, "wall_s": round(time.time() - t0, 1)}
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    err = [l for l in (proc.stderr or "").splitlines() if l.strip()]
    row["error"] = err[-1] if err else f"exit status {proc.returncode}"
    return row
  out = json.loads(lines[-1])
  row["run"] = out["run"]
  row["models"] = {m: {k: r.get(k) for k in ("ganzoo_ms", "torch_ms", "ratio", "fraction_of_peak", "flops",
                                             "compile_s", "ganzoo_ms_all", "torch_ms_all")}
                   for m, r in out["models"].items()}
  return row


def print_table(rows: list[dict], models: list[str]) -> None:
  head = "| option | same math | " + " | ".join(f"{m} ganzoo ms | {m} PyTorch ms | {m} ratio" for m in models)
  print(head + " | matmul peak GFLOP/s |")
  print("|" + "---|" * (2 + 3 * len(models) + 1))
  for row in rows:
    if "error" in row:
      print(f"| {row['option']} | {row['same_math']} | error: {row['error'][:120]} |")
      continue
    cells = []
    for m in models:
      r = row["models"].get(m, {})
      cells += [f"{r.get('ganzoo_ms', float('nan')):,.1f}", f"{r.get('torch_ms', float('nan')):,.1f}",
                f"{r.get('ratio', float('nan')):.2f}"]
    peak = row["run"]["matmul_peak_flop_per_s"] / 1e9
    print(f"| {row['option']} | {row['same_math']} | " + " | ".join(cells) + f" | {peak:.0f} |")


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="dcgan")
  parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma list of {', '.join(OPTIONS)}")
  parser.add_argument("--reps", type=int, default=7)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--out", default=None, help="write the JSON here")
  args = parser.parse_args(argv)
  names = [n.strip() for n in args.options.split(",") if n.strip()]
  unknown = [n for n in names if n not in OPTIONS]
  if unknown:
    parser.error(f"unknown --options {unknown}; choose from {', '.join(OPTIONS)}")
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  rows = []
  for name in names:
    print(f"[xla_options] {name} ...", file=sys.stderr, flush=True)
    rows.append(run_option(name, args))
    r = rows[-1]
    print(f"[xla_options] {name}: " + (r.get("error") or json.dumps({m: v["ratio"] for m, v in r["models"].items()})),
          file=sys.stderr, flush=True)
  result = {"machine": {"cpu": machine.cpu_name(), "cpu_extensions": machine.cpu_extensions(),
                        "loadavg_end": os.getloadavg()[0]},
            "args": vars(args), "rows": rows}
  good = [r for r in rows if "run" in r]
  if good:
    run = good[0]["run"]
    result["machine"].update({k: run.get(k) for k in ("cores", "jax", "jaxlib", "torch")})
  print_table(rows, models)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
