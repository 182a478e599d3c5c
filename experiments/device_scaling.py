"""Images/s per device, compiled-step memory and scaling from 1 to N devices of a family's real step.

  python experiments/benchmark.py --models=biggan128,stylegan2,sngan --devices=1,2,4,8 --json
  python experiments/device_scaling.py --models=biggan128 --devices=1,8 --out=results/scaling_h100.json

Meant for accelerators (GPUs, TPU cores); on a CPU it runs with fake devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8), which checks the plumbing, not the speed.
Each model is a config at its published setting with a fixed batch *per device* (weak scaling: the
global batch grows with the device count, as a data-parallel run's does):

  biggan128      configs/biggan.py:imagenet128, 16 images per device: the paper trains the 128x128
                 model at batch 2048 on 128 TPU v3 cores (Brock et al. 2019, App. C), 2048 / 128.
                 One update of D and G is timed at batch 16 per device (train.grad_accum 1; the
                 config's 8 micro-batches of 256 are the same computation serialized), with the
                 config's 2 D steps per G step.
  stylegan2      configs/stylegan2.py:stylegan2 (config F, 1024x1024), 4 per device: batch 32 on 8
                 GPUs (Karras et al. 2020; stylegan2-ada-pytorch's 'stylegan2' preset, batch 32).
  stylegan2_256  configs/stylegan2.py:paper256, 8 per device: batch 64 on 8 GPUs (the same preset table).
  sngan          configs/sngan.py (CIFAR-10 ResNet, n_critic 5), 64 per device: the paper's batch 64
                 (Miyato et al. 2018) on one GPU.

A model's step depends on the step index (StyleGAN2's lazy R1 every 16 and path length every 4
steps): every distinct plan of one period is compiled, warmed up, and a timed repetition is one
whole period, so the figure is the mean over the regularization schedule. Reported per device
count: ms/step (median over --reps repetitions), images/s = real images read per second (every D
step reads a batch), the same per device, the scaling efficiency (per-device images/s over that of
the smallest device count), XLA's memory analysis of the compiled step (arguments + outputs +
temporaries, per device, the largest over the period's plans) and, where the runtime reports it
(GPU, TPU), the device's peak bytes in use. Batches are random uint8 images already on the devices:
the input pipeline is measured by experiments/pipeline_speed.py. `--fsdp=F` shards the state as
`--config.parallel.fsdp=F` does (over min(F, count) devices), to see the memory it saves.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

import ganzoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (sets the XLA:CPU flags first)
import jax  # pylint: disable=g-import-not-at-top

from ganzoo import methods  # pylint: disable=g-import-not-at-top
from ganzoo import parallel  # pylint: disable=g-import-not-at-top
from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
from ganzoo import train  # pylint: disable=g-import-not-at-top
from ganzoo.data import sources  # pylint: disable=g-import-not-at-top
from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top


@dataclasses.dataclass(frozen=True)
class Model:
  config: str           # configs/<file>.py
  variant: str          # its get_config argument
  per_device: int       # images per device per D step
  tiny_variant: str     # the test size (--tiny)


MODELS = {
    "biggan128": Model("biggan.py", "imagenet128", 16, "imagenet128,tiny"),
    "stylegan2": Model("stylegan2.py", "stylegan2", 4, "tiny"),
    "stylegan2_256": Model("stylegan2.py", "paper256", 8, "tiny"),
    "sngan": Model("sngan.py", "", 64, "tiny"),
}


def load_config(model: Model, tiny: bool):
  spec = importlib.util.spec_from_file_location(f"scaling_cfg_{model.config[:-3]}",
                                                os.path.join(_ROOT, "configs", model.config))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(model.tiny_variant if tiny else model.variant)


def data_spec(config) -> methods.DataSpec:
  """The family's DataSpec from the config's data set, without reading it."""
  known = sources.known_shape(config.data.name, config.data.get("image_size"), config.data.get("center_crop"))
  if known is None:   # e.g. ffhq (no tfds catalog entry): RGB at the config's image_size, unlabelled
    size = sources.parse_image_size(config.data.get("image_size"))
    if size is None:
      raise ValueError(f"no known shape for data set {config.data.name!r}: set data.image_size")
    known = ((size[0], size[1], 3), None)
  shape, classes = known
  return methods.DataSpec(tuple(shape), int(classes or 0) if config.model.get("conditional", False) else 0)


def plan_period(method, limit: int = 64) -> int:
  """The smallest p <= limit with plan(i + p) == plan(i) for i < limit (1 for a fixed plan)."""
  plans = [method.plan(i) for i in range(2 * limit)]
  return next((p for p in range(1, limit + 1) if all(plans[i] == plans[i + p] for i in range(limit))), limit)


def memory_mb(compiled) -> float | None:
  """XLA's memory analysis of a compiled step, per device: arguments + outputs + temporaries - aliased, MiB."""
  try:
    m = compiled.memory_analysis()
    return round((m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                  - m.alias_size_in_bytes) / 2 ** 20, 1)
  except Exception:  # pylint: disable=broad-except  (a backend without the analysis)
    return None


def argument_mb(compiled) -> float | None:
  """The compiled step's argument bytes per device (state + batch), MiB: what `--fsdp` divides."""
  try:
    return round(compiled.memory_analysis().argument_size_in_bytes / 2 ** 20, 2)
  except Exception:  # pylint: disable=broad-except
    return None


def peak_device_mb(devices) -> float | None:
  """The largest peak bytes in use over `devices` (GPU/TPU runtimes report it; CPU does not)."""
  peaks = []
  for d in devices:
    try:
      stats = d.memory_stats() or {}
    except Exception:  # pylint: disable=broad-except
      stats = {}
    if "peak_bytes_in_use" in stats:
      peaks.append(stats["peak_bytes_in_use"])
  return round(max(peaks) / 2 ** 20, 1) if peaks else None


def time_model(name: str, n_devices: int, reps: int, tiny: bool, per_device: int | None = None,
               dtype: str | None = None, fsdp: int = 1) -> dict[str, Any]:
  """One row: `name`'s step on the first `n_devices` devices at its per-device batch; `fsdp` > 1
  shards the state over groups of that many devices (`parallel.fsdp`, as a run does)."""
  model = MODELS[name]
  config = load_config(model, tiny)
  b = per_device or (2 if tiny else model.per_device)
  config.data.batch_size = b * n_devices
  config.train.grad_accum = 1
  if dtype:
    config.model.dtype = dtype
  if tiny:   # every leaf of a tiny model is below parallel.fsdp_min_size: shard them all
    config.parallel.fsdp_min_size = 0
  spec = data_spec(config)
  devices = jax.devices()[:n_devices]
  fsdp = min(fsdp, n_devices)
  mesh = parallel.make_mesh(devices, fsdp=fsdp)
  method = methods.build(config, spec)
  sharding = train.state_sharding(method, config, mesh)
  state = jax.jit(method.init, out_shardings=sharding)(jax.random.PRNGKey(0))
  period = plan_period(method)
  plans = [method.plan(i) for i in range(period)]
  rng = np.random.default_rng(0)
  batches, compiled, compile_s, mem, args = {}, {}, 0.0, [], []
  for plan in plans:
    if plan in compiled:
      continue
    batches[plan] = parallel.global_batch(methods.random_batch(method, plan, rng, spec.num_classes), mesh)
    t0 = time.perf_counter()
    compiled[plan] = step_lib.make_step(method, plan, mesh, state_sharding=sharding).lower(state, batches[plan]).compile()
    compile_s += time.perf_counter() - t0
    mem.append(memory_mb(compiled[plan]))
    args.append(argument_mb(compiled[plan]))
  images = sum(sum(s.count * s.batch_size for s in method.streams(p).values()) for p in plans)

  def period_s(st):
    t0 = time.perf_counter()
    m = None
    for p in plans:
      st, m = compiled[p](st, batches[p])
    jax.block_until_ready((st, m))
    return st, time.perf_counter() - t0, m

  state, _, _ = period_s(state)   # warm-up: the first call of each executable
  times = []
  for _ in range(reps):
    state, dt, metrics = period_s(state)
    times.append(dt)
  sec = statistics.median(times)
  finite = all(np.isfinite(float(v)) for v in jax.device_get(metrics).values())
  known = [m for m in mem if m is not None]
  return {"model": name, "config": f"configs/{model.config}:{model.tiny_variant if tiny else model.variant}",
          "devices": n_devices, "device_kind": devices[0].device_kind, "batch_per_device": b,
          "global_batch": b * n_devices, "fsdp": fsdp, "dtype": str(config.model.get("dtype", "float32")),
          "params": {k: param_count(v.params) for k, v in jax.device_get(state.nets).items()},
          "period_steps": period, "ms_per_step": round(1e3 * sec / period, 2),
          "images_per_s": round(images / sec, 2), "images_per_s_per_device": round(images / sec / n_devices, 2),
          "compile_s": round(compile_s, 1), "step_memory_mb": max(known) if known else None,
          "argument_mb": max((a for a in args if a is not None), default=None),
          "state_mb": round(sum(x.nbytes for x in jax.tree.leaves(state)) / 2 ** 20, 2),
          "peak_device_mb": peak_device_mb(devices), "metrics_finite": finite}


def run(models: list[str], device_counts: list[int], reps: int = 3, tiny: bool = False,
        per_device: int | None = None, dtype: str | None = None, fsdp: int = 1) -> dict[str, list[dict[str, Any]]]:
  """{model: [row per device count]} with `efficiency` against the first (smallest) count; `fsdp`:
  the state sharded over min(fsdp, count) devices (each count must then be a multiple of it)."""
  unknown = [m for m in models if m not in MODELS]
  if unknown:
    raise ValueError(f"unknown model(s) {unknown} for --devices: choose from {sorted(MODELS)}")
  available = jax.device_count()
  counts = sorted(set(device_counts))
  if not counts or counts[0] < 1 or counts[-1] > available:
    raise ValueError(f"--devices={','.join(map(str, device_counts))}: each count must lie in [1, {available}] "
                     f"(this process sees {available} device(s))")
  if fsdp < 1 or any(k % min(fsdp, k) for k in counts):
    raise ValueError(f"--fsdp={fsdp} must be >= 1 and divide every device count of --devices (or exceed it)")
  out = {}
  for name in models:
    rows = [time_model(name, k, reps, tiny, per_device, dtype, fsdp) for k in counts]
    base = rows[0]["images_per_s_per_device"]
    for r in rows:
      r["efficiency"] = round(r["images_per_s_per_device"] / base, 3) if base else None
    out[name] = rows
  return out


def print_rows(results: dict[str, list[dict[str, Any]]]) -> None:
  print(f"{'model':<14} {'dev':>3} {'kind':<18} {'batch/dev':>9} {'ms/step':>9} {'img/s':>9} {'img/s/dev':>9} "
        f"{'eff':>5} {'step MiB':>9} {'peak MiB':>9}")
  for name, rows in results.items():
    for r in rows:
      print(f"{name:<14} {r['devices']:>3} {r['device_kind'][:18]:<18} {r['batch_per_device']:>9} "
            f"{r['ms_per_step']:>9.1f} {r['images_per_s']:>9.1f} {r['images_per_s_per_device']:>9.1f} "
            f"{r['efficiency']:>5.2f} {str(r['step_memory_mb']):>9} {str(r['peak_device_mb']):>9}")


def parse_counts(text: str) -> list[int]:
  try:
    return [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise ValueError(f"--devices={text!r}: write device counts separated by commas, e.g. 1,2,4,8") from None


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="biggan128,stylegan2,sngan")
  parser.add_argument("--devices", default=None, help="device counts, e.g. 1,2,4,8 (default: 1 and all)")
  parser.add_argument("--reps", type=int, default=3, help="timed repetitions (each one plan period)")
  parser.add_argument("--per_device", type=int, default=None, help="override the per-device batch")
  parser.add_argument("--dtype", default=None, help="config.model.dtype (float32 | bfloat16 | float16)")
  parser.add_argument("--fsdp", type=int, default=1, help="parallel.fsdp: shard the state over this many devices")
  parser.add_argument("--tiny", action="store_true", help="the configs' test sizes (checks the plumbing)")
  parser.add_argument("--json", action="store_true", help="last line: one JSON object")
  parser.add_argument("--out", default=None, help="also write the JSON object to this file")
  args = parser.parse_args(argv)
  try:
    counts = parse_counts(args.devices) if args.devices else sorted({1, jax.device_count()})
    results = run([m.strip() for m in args.models.split(",") if m.strip()], counts, args.reps, args.tiny,
                  args.per_device, args.dtype, args.fsdp)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  report = {"scaling": results, "run": {"backend": jax.default_backend(), "device_count": jax.device_count(),
                                        "process_count": jax.process_count(), "jax": jax.__version__}}
  print_rows(results)
  text = json.dumps(report)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
  if args.json:
    print(text)
  return report


if __name__ == "__main__":
  main()
