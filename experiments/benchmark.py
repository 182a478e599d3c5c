"""Training-step speed: ganzoo (JAX/XLA) against a PyTorch twin of the same GAN, in one process.

  python experiments/benchmark.py --models=dcgan,sngan,inception --batch=64 --reps=7 --json
  python experiments/benchmark.py --models=pix2pix,cyclegan --reps=5 --steps=1 --warmup=1 --json

For each GAN model (configs/dcgan.py, configs/sngan.py at their paper sizes, 32x32x3, batch
--batch), one "step" is what the `gan` family's step (`ganzoo.step.make_step`) does: `train.d_steps` D updates then
one G update (DCGAN 1 + 1, SNGAN 5 + 1), timed against `experiments/torch_models.py`, whose
parameter counts are asserted equal. After warm-up (compilation) the two sides alternate A/B (the
order swapped every repetition) for --reps repetitions of --steps steps each, so both see the same
machine load; the medians are reported, with
  ratio = torch_ms / ganzoo_ms                (> 1: ganzoo is faster),
  flops = XLA's cost analysis of the compiled ganzoo step (`jit(...).lower().compile()`),
  flop_per_s = flops / ganzoo time, and its fraction of a float32 matmul peak that is measured in
  the same run (a jitted jnp.dot of two --matmul x --matmul matrices, timed in every repetition).
'inception' times FID feature extraction (ganzoo.metrics.inception.FeatureExtractor) against the
TorchScript reference at the same batch of 299x299 uint8 images (images/s both ways). 'biggan'
times ganzoo's BigGAN CIFAR step alone (no PyTorch twin).

'pix2pix' and 'cyclegan' time one training step at the published setting (configs/pix2pix.py:
unet_256 G + 70x70 PatchGAN D on (input, output) pairs; configs/cyclegan.py: two resnet_9blocks Gs
+ two 70x70 Ds, instance norm; 256x256, batch 1, --batch does not apply) against the PyTorch twins
of experiments/torch_translation.py (the reference's optimize_parameters, parameter counts asserted
equal). The ganzoo side is the registered family's real step (`methods.build` + `step.make_step`,
on the uint8 images its data streams deliver: pix2pix's 256x512 AB images, CycleGAN's 286x286
load-size images, so ganzoo's step includes the on-device random jitter, which the reference does
in its DataLoader workers and the twin leaves out). A model whose family is not registered is
skipped with a one-line message; --standin times experiments/translation_standin.py's jitted step
instead (the twins' update with ganzoo's networks; rows say `"ganzoo_side": "stand-in"`). These
rows also report peak-memory figures: XLA's memory analysis of the compiled ganzoo step
(arguments + outputs + temporaries) and the growth of the process's peak RSS while each side is set
up and warmed up (ganzoo first, then torch; torch's figure can undercount if it reuses memory that
ganzoo's compilation freed).
'realnvp' times the `realnvp` family's step at configs/realnvp.py's CIFAR-10 setting (batch --batch,
32x32x3) against experiments/torch_realnvp.py (parameter counts asserted equal), with the same
peak-memory figures.

--devices=1,2,4,8 (with --models among biggan128, stylegan2, stylegan2_256, sngan) switches to the
accelerator benchmark of experiments/device_scaling.py: images/s per device at the papers' batch per
device, compiled-step memory and the scaling from 1 to N devices, no PyTorch side.

--dtype=bfloat16 times the DCGAN/SNGAN rows with bfloat16 compute on both sides, the same
computation: `config.model.dtype=bfloat16` (ganzoo.precision: float32 params and optimizer, every
forward and backward in bfloat16) against the twin's step under `torch.autocast('cpu',
dtype=torch.bfloat16)` (float32 params, autocast's bfloat16 convolutions and matmuls). The rows
then carry `"dtype": "bfloat16"`; the matmul peak stays the float32 one.

--reuse_fakes times the DCGAN/SNGAN rows with G's update on the fakes of D's last update, on both
sides: `config.train.reuse_fakes=True` (ganzoo/methods/gan.py) against the twin's
`Trainer(reuse_fakes=True)` (the PyTorch DCGAN example's rule: one G forward fewer per step). A
different computation from the default rows, which draw fresh latents for G; the rows carry
`"reuse_fakes": true`.

PyTorch runs eagerly with torch.set_num_threads(os.cpu_count()) (--torch_threads to change it);
XLA:CPU uses one intra-op thread per core by default. On a loaded machine PyTorch's OpenMP threads
lose more than XLA's thread pool (each parallel region waits for every thread): compare with
--torch_threads=1 there. Peak RSS (resource.getrusage) is reported after each model (the
process's running maximum) and the 1-minute load average at the start and end. With --json the
last line printed is one JSON object {"models": {name: {...}}, "run": {...}}.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

import machine  # pylint: disable=g-import-not-at-top  (experiments/machine.py)
import ganzoo  # pylint: disable=g-import-not-at-top,unused-import  (sets the XLA:CPU flags first)
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

CONFIGS = {"dcgan": "configs/dcgan.py", "sngan": "configs/sngan.py"}


def peak_rss_mb() -> float:
  """The process's peak resident set size so far, in MiB (ru_maxrss is KiB on Linux)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_config(name: str, batch: int, tiny: bool):
  """configs/<name>.py's config at `batch` (tiny: the config's 'tiny' model size)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(f"bench_cfg_{name}", os.path.join(_ROOT, CONFIGS[name]))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.batch_size = batch
  if tiny:
    config.model.size = "tiny"
  return config


def _block(tree: Any) -> Any:
  return jax.block_until_ready(tree)


class MatmulPeak:
  """Times a jitted float32 [n, n] @ [n, n] (2 n^3 FLOPs); rates in FLOP/s."""

  def __init__(self, n: int):
    self.n = n
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    self.a = jax.random.normal(k1, (n, n), jnp.float32)
    self.b = jax.random.normal(k2, (n, n), jnp.float32)
    self.fn = jax.jit(jnp.dot)
    _block(self.fn(self.a, self.b))
    self.rates: list[float] = []

  def measure(self, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
      t0 = time.perf_counter()
      _block(self.fn(self.a, self.b))
      best = min(best, time.perf_counter() - t0)
    rate = 2.0 * self.n ** 3 / best
    self.rates.append(rate)
    return rate


def torch_matmul_rate(n: int, repeats: int = 3) -> float:
  import torch  # pylint: disable=g-import-not-at-top
  a, b = torch.randn(n, n), torch.randn(n, n)
  a @ b
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best


# ---------------------------------------------------------------------------------------------
# The two sides of a GAN benchmark: each is (run(k) -> seconds for k steps, info).

def ganzoo_side(name: str, batch: int, tiny: bool, dtype: str = "float32",
                reuse_fakes: bool = False) -> tuple[Callable[[int], float], dict[str, Any]]:
  from ganzoo import methods  # pylint: disable=g-import-not-at-top
  from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
  from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top
  config = load_config(name, batch, tiny)
  config.model.dtype = dtype
  config.train.reuse_fakes = reuse_fakes
  gan = methods.build(config, methods.DataSpec((32, 32, 3)))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  d_steps = int(config.train.d_steps)
  # uint8 pixels, as the data pipeline delivers them (the step maps them to [-1, 1]).
  images = jax.random.randint(jax.random.PRNGKey(2), (d_steps, batch, 32, 32, 3), 0, 256).astype(jnp.uint8)
  train_step = step_lib.make_step(gan, gan.plan(0), mesh=None)  # jitted, state donated
  t0 = time.perf_counter()
  compiled = train_step.lower(state, {"real": {"image": images}}).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  info = {"g_params": param_count(state.nets["g"].params), "d_params": param_count(state.nets["d"].params),
          "d_steps": d_steps, "flops": float(cost.get("flops", float("nan"))),
          "compile_s": round(compile_s, 2)}
  holder = {"state": state}

  def run(k: int) -> float:
    t0 = time.perf_counter()
    st = holder["state"]
    metrics = None
    for _ in range(k):
      st, metrics = compiled(st, {"real": {"image": images}})
    _block((st, metrics))
    holder["state"] = st
    return time.perf_counter() - t0

  return run, info


def torch_side(name: str, batch: int, tiny: bool, dtype: str = "float32",
               reuse_fakes: bool = False) -> tuple[Callable[[int], float], dict[str, Any]]:
  import torch  # pylint: disable=g-import-not-at-top
  import torch_models  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  trainer, d_steps = torch_models.build(name, batch, 3, tiny, reuse_fakes=reuse_fakes)
  reals = torch.rand(d_steps, batch, 3, 32, 32) * 2 - 1
  info = {"g_params": torch_models.param_count(trainer.G), "d_params": torch_models.param_count(trainer.D),
          "d_steps": d_steps}

  autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else None)

  def run(k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
      if autocast is None:
        trainer.step(reals)
      else:
        with autocast:
          trainer.step(reals)
    return time.perf_counter() - t0

  return run, info


def alternate(a: Callable[[int], float], b: Callable[[int], float], reps: int, steps: int,
              peak: MatmulPeak | None = None) -> tuple[list[float], list[float]]:
  """Per-step seconds of a and b over `reps` repetitions, A/B order swapped every repetition."""
  ta, tb = [], []
  for r in range(reps):
    order = ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta))
    for fn, out in order:
      out.append(fn(steps) / steps)
    if peak is not None:
      peak.measure()
  return ta, tb


def bench_gan(name: str, args, peak: MatmulPeak) -> dict[str, Any]:
  g_run, g_info = ganzoo_side(name, args.batch, args.tiny, args.dtype, args.reuse_fakes)
  t_run, t_info = torch_side(name, args.batch, args.tiny, args.dtype, args.reuse_fakes)
  for key in ("g_params", "d_params", "d_steps"):
    if g_info[key] != t_info[key]:
      raise AssertionError(f"{name}: ganzoo {key}={g_info[key]} but PyTorch {key}={t_info[key]}")
  for _ in range(args.warmup):
    g_run(1)
    t_run(1)
  g_times, t_times = alternate(g_run, t_run, args.reps, args.steps, peak)
  g_ms, t_ms = 1e3 * statistics.median(g_times), 1e3 * statistics.median(t_times)
  flop_per_s = g_info["flops"] / (g_ms / 1e3)
  peak_rate = statistics.median(peak.rates)
  return {
      "batch": args.batch, "dtype": args.dtype, "reuse_fakes": bool(args.reuse_fakes), "d_steps": g_info["d_steps"], "g_params": g_info["g_params"],
      "d_params": g_info["d_params"], "ganzoo_ms": round(g_ms, 2), "torch_ms": round(t_ms, 2),
      "ratio": round(t_ms / g_ms, 3), "flops": g_info["flops"], "flop_per_s": flop_per_s,
      "torch_flop_per_s": g_info["flops"] / (t_ms / 1e3),
      "matmul_peak_flop_per_s": peak_rate, "fraction_of_peak": round(flop_per_s / peak_rate, 3),
      "ganzoo_ms_all": [round(1e3 * t, 2) for t in g_times],
      "torch_ms_all": [round(1e3 * t, 2) for t in t_times],
      "compile_s": g_info["compile_s"], "peak_rss_mb": round(peak_rss_mb(), 1),
  }


def bench_biggan(args, peak: MatmulPeak) -> dict[str, Any]:
  """ganzoo's BigGAN CIFAR step alone (configs/biggan.py when present, else sngan's settings)."""
  from ganzoo import methods  # pylint: disable=g-import-not-at-top
  from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(_ROOT, "configs", "biggan.py")
  if os.path.exists(path):
    CONFIGS["biggan"] = "configs/biggan.py"
    config = load_config("biggan", args.batch, args.tiny)
  else:
    config = load_config("sngan", args.batch, args.tiny)
    config.model.name = "biggan"
    config.nets.g.sn.enabled = True
    config.train.d_steps = 4
  rss0 = peak_rss_mb()
  gan = methods.build(config, methods.DataSpec((32, 32, 3), int(config.data.get("num_classes") or 10)
                                               if config.model.get("conditional", False) else 0))
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  d_steps = int(config.train.d_steps)
  real = {"image": jax.random.randint(jax.random.PRNGKey(2), (d_steps, args.batch, 32, 32, 3), 0, 256).astype(jnp.uint8)}
  if gan.num_classes:
    real["label"] = jnp.zeros((d_steps, args.batch), jnp.int32)
  batch = {"real": real}
  compiled = step_lib.make_step(gan, gan.plan(0)).lower(state, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  holder = {"state": state}

  def run(k):
    t0 = time.perf_counter()
    st = holder["state"]
    for _ in range(k):
      st, m = compiled(st, batch)
    _block((st, m))
    holder["state"] = st
    return time.perf_counter() - t0

  for _ in range(args.warmup):
    run(1)
  times = []
  for _ in range(args.reps):
    times.append(run(args.steps) / args.steps)
    peak.measure()
  ms = 1e3 * statistics.median(times)
  flops = float(cost.get("flops", float("nan")))
  return {"batch": args.batch, "d_steps": d_steps, "ganzoo_ms": round(ms, 1), "flops": flops,
          "flop_per_s": flops / (ms / 1e3), "fraction_of_peak": round(flops / (ms / 1e3) / statistics.median(peak.rates), 3),
          "peak_rss_mb": round(peak_rss_mb(), 1), "rss_growth_mb": round(peak_rss_mb() - rss0, 1)}


def bench_inception(args) -> dict[str, Any]:
  """FID Inception features: ganzoo (Flax) vs the TorchScript reference, images/s, same batch."""
  import torch  # pylint: disable=g-import-not-at-top
  from ganzoo.metrics import inception  # pylint: disable=g-import-not-at-top
  from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
  size = 75 if args.tiny else 299
  images = np.random.default_rng(0).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
  ex = inception.FeatureExtractor.create()
  net = torch.jit.load(weights.find_torchscript_file(), map_location="cpu").eval()

  def flax_run(k):
    t0 = time.perf_counter()
    for _ in range(k):
      ex.extract(images, batch_size=len(images), progress=False)
    return time.perf_counter() - t0

  def torch_run(k):
    t0 = time.perf_counter()
    with torch.no_grad():
      for _ in range(k):
        x = torch.from_numpy(images).float().permute(0, 3, 1, 2)
        net((x - 128) / 128).numpy()
    return time.perf_counter() - t0

  for _ in range(args.warmup):
    flax_run(1)
    torch_run(1)
  reps = max(2, min(args.reps, 3))
  g_times, t_times = alternate(flax_run, torch_run, reps, 1)
  g_rate, t_rate = args.batch / statistics.median(g_times), args.batch / statistics.median(t_times)
  return {"batch": args.batch, "size": size, "ganzoo_images_per_s": round(g_rate, 2),
          "torch_images_per_s": round(t_rate, 2), "ratio": round(g_rate / t_rate, 3),
          "ganzoo_ms": round(1e3 * statistics.median(g_times), 1),
          "torch_ms": round(1e3 * statistics.median(t_times), 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


# ---------------------------------------------------------------------------------------------
# pix2pix and CycleGAN (256x256, batch 1) against experiments/torch_translation.py.

TRANSLATION = ("pix2pix", "cyclegan")
CONFIGS.update({"pix2pix": "configs/pix2pix.py", "cyclegan": "configs/cyclegan.py"})


def translation_config(name: str, tiny: bool):
  """configs/<name>.py's published setting (batch 1, 256x256); tiny: widths ngf = ndf = 4."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(f"bench_cfg_{name}", os.path.join(_ROOT, CONFIGS[name]))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  if tiny:
    config.model.ngf = config.model.ndf = 4
  return config


def _translation_data_spec(name: str, config) -> tuple[int, ...]:
  """The image shape the family's data stream delivers (see the module docstring)."""
  if name == "pix2pix":
    crop = int(config.model.crop_size)
    return (crop, 2 * crop, 3)      # the AB image: the pair side by side, split and jittered on the devices
  size = int(config.data.image_size)
  return (size, size, 3)            # CycleGAN: resized to load_size on the host, cropped on the devices


def _memory_mb(compiled) -> float | None:
  """XLA's memory analysis of a compiled step: arguments + outputs + temporaries, MiB (None if absent)."""
  try:
    m = compiled.memory_analysis()
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return round(total / 2 ** 20, 1)
  except Exception:  # pylint: disable=broad-except
    return None


def _cost_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def ganzoo_translation_side(name: str, tiny: bool, standin: bool):
  """(run, info) timing the `name` family's step, the stand-in's (standin), or None (not registered)."""
  from ganzoo import methods  # pylint: disable=g-import-not-at-top
  from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
  from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top
  holder: dict[str, Any] = {}
  if name in methods.names():
    config = translation_config(name, tiny)
    shape = _translation_data_spec(name, config)
    family = methods.build(config, methods.DataSpec(shape, 0))
    state = jax.jit(family.init)(jax.random.PRNGKey(0))
    plan = family.plan(0)
    keys = iter(jax.random.split(jax.random.PRNGKey(2), 8))
    batch = {stream: {"image": jax.random.randint(next(keys), (n, int(config.data.batch_size), *shape), 0, 256
                                                  ).astype(jnp.uint8)}
             for stream, n in step_lib.stream_counts(plan).items()}
    t0 = time.perf_counter()
    compiled = step_lib.make_step(family, plan, mesh=None).lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    counts = [param_count(state.nets[k].params) for k in sorted(state.nets)]
    g_params = sum(c for k, c in zip(sorted(state.nets), counts) if k.startswith("g"))
    d_params = sum(c for k, c in zip(sorted(state.nets), counts) if k.startswith("d"))
    holder["state"] = state
    info = {"ganzoo_side": "family", "batch": int(config.data.batch_size), "image_shape": list(shape),
            "pool_size": int(config.model.get("pool_size", 0) or 0)}

    def one(st):
      return compiled(st, batch)
  elif standin:
    import translation_standin  # pylint: disable=g-import-not-at-top
    state, step, (g_params, d_params) = translation_standin.build(name, tiny)
    a = jax.random.uniform(jax.random.PRNGKey(2), (1, 256, 256, 3), minval=-1.0, maxval=1.0)
    b = jax.random.uniform(jax.random.PRNGKey(3), (1, 256, 256, 3), minval=-1.0, maxval=1.0)
    key = jax.random.PRNGKey(4)
    t0 = time.perf_counter()
    compiled = step.lower(state, a, b, key).compile()
    compile_s = time.perf_counter() - t0
    holder["state"] = state
    info = {"ganzoo_side": "stand-in", "batch": 1, "image_shape": [256, 256, 3], "pool_size": 0}

    def one(st):
      return compiled(st, a, b, key)
  else:
    return None
  info.update({"g_params": g_params, "d_params": d_params, "flops": _cost_flops(compiled),
               "compile_s": round(compile_s, 2), "ganzoo_step_memory_mb": _memory_mb(compiled)})

  def run(k: int) -> float:
    t0 = time.perf_counter()
    st, out = holder["state"], None
    for _ in range(k):
      st, out = one(st)
    _block((st, out))
    holder["state"] = st
    return time.perf_counter() - t0

  return run, info


def torch_translation_side(name: str, tiny: bool, pool_size: int):
  import torch  # pylint: disable=g-import-not-at-top
  import torch_translation  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  trainer = torch_translation.build(name, tiny, pool_size=pool_size)
  real_a = torch.rand(1, 3, 256, 256) * 2 - 1
  real_b = torch.rand(1, 3, 256, 256) * 2 - 1
  info = {"g_params": torch_translation.param_count(trainer.G), "d_params": torch_translation.param_count(trainer.D)}

  def run(k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
      trainer.step(real_a, real_b)
    return time.perf_counter() - t0

  return run, info


def bench_translation(name: str, args, peak: MatmulPeak) -> dict[str, Any] | None:
  rss0 = peak_rss_mb()
  side = ganzoo_translation_side(name, args.tiny, args.standin)
  if side is None:
    print(f"[benchmark] {name}: skipped, the '{name}' family is not registered in ganzoo.methods "
          "(--standin times experiments/translation_standin.py instead)", file=sys.stderr, flush=True)
    return None
  g_run, g_info = side
  for _ in range(args.warmup):
    g_run(1)
  rss1 = peak_rss_mb()
  t_run, t_info = torch_translation_side(name, args.tiny, g_info["pool_size"])
  for _ in range(args.warmup):
    t_run(1)
  rss2 = peak_rss_mb()
  for key in ("g_params", "d_params"):
    if g_info[key] != t_info[key]:
      raise AssertionError(f"{name}: ganzoo {key}={g_info[key]} but PyTorch {key}={t_info[key]}")
  g_times, t_times = alternate(g_run, t_run, args.reps, args.steps, peak)
  g_ms, t_ms = 1e3 * statistics.median(g_times), 1e3 * statistics.median(t_times)
  flop_per_s = g_info["flops"] / (g_ms / 1e3)
  return {
      **g_info, "ganzoo_ms": round(g_ms, 2), "torch_ms": round(t_ms, 2), "ratio": round(t_ms / g_ms, 3),
      "flop_per_s": flop_per_s, "torch_flop_per_s": g_info["flops"] / (t_ms / 1e3),
      "matmul_peak_flop_per_s": statistics.median(peak.rates),
      "fraction_of_peak": round(flop_per_s / statistics.median(peak.rates), 3),
      "ganzoo_ms_all": [round(1e3 * t, 2) for t in g_times], "torch_ms_all": [round(1e3 * t, 2) for t in t_times],
      "ganzoo_peak_rss_growth_mb": round(rss1 - rss0, 1), "torch_peak_rss_growth_mb": round(rss2 - rss1, 1),
      "peak_rss_mb": round(peak_rss_mb(), 1),
  }


# ---------------------------------------------------------------------------------------------
# Real NVP (CIFAR-10 network, batch --batch) against experiments/torch_realnvp.py.

CONFIGS["realnvp"] = "configs/realnvp.py"


def bench_realnvp(args, peak: MatmulPeak) -> dict[str, Any]:
  """The `realnvp` family's real step (configs/realnvp.py's CIFAR-10 setting: 2 scales, 8 residual blocks
  of 64 features, batch norm, weight norm; 32x32x3 uint8 batches of --batch) against the PyTorch twin's
  step (dequantization, NLL + L2, Adam), parameter counts asserted equal; peak memory as the translation
  rows report it (XLA's memory analysis of the compiled step; peak-RSS growth while each side warms up)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torch_realnvp  # pylint: disable=g-import-not-at-top
  from ganzoo import methods  # pylint: disable=g-import-not-at-top
  from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
  from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top
  rss0 = peak_rss_mb()
  spec = importlib.util.spec_from_file_location("bench_cfg_realnvp", os.path.join(_ROOT, CONFIGS["realnvp"]))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.batch_size = args.batch
  if args.tiny:
    config.model.size = "tiny"
  shape = (32, 32, 3)
  family = methods.build(config, methods.DataSpec(shape, 0))
  holder = {"state": jax.jit(family.init)(jax.random.PRNGKey(0))}
  plan = family.plan(0)
  batch = {stream: {"image": jax.random.randint(jax.random.PRNGKey(2), (n, args.batch, *shape), 0, 256).astype(jnp.uint8)}
           for stream, n in step_lib.stream_counts(plan).items()}
  t0 = time.perf_counter()
  compiled = step_lib.make_step(family, plan, mesh=None).lower(holder["state"], batch).compile()
  compile_s = time.perf_counter() - t0
  g_params = param_count(holder["state"].nets["flow"].params)

  def g_run(k: int) -> float:
    t0 = time.perf_counter()
    st, out = holder["state"], None
    for _ in range(k):
      st, out = compiled(st, batch)
    _block((st, out))
    holder["state"] = st
    return time.perf_counter() - t0

  for _ in range(args.warmup):
    g_run(1)
  rss1 = peak_rss_mb()
  torch.manual_seed(0)
  trainer = torch_realnvp.build(args.tiny)
  pixels = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
  t_params = torch_realnvp.param_count(trainer.flow)
  if g_params != t_params:
    raise AssertionError(f"realnvp: ganzoo has {g_params} params but PyTorch {t_params}")

  def t_run(k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
      trainer.step(pixels)
    return time.perf_counter() - t0

  for _ in range(args.warmup):
    t_run(1)
  rss2 = peak_rss_mb()
  g_times, t_times = alternate(g_run, t_run, args.reps, args.steps, peak)
  g_ms, t_ms = 1e3 * statistics.median(g_times), 1e3 * statistics.median(t_times)
  flops = _cost_flops(compiled)
  flop_per_s = flops / (g_ms / 1e3)
  return {
      "batch": args.batch, "params": g_params, "flops": flops, "compile_s": round(compile_s, 2),
      "ganzoo_step_memory_mb": _memory_mb(compiled), "ganzoo_ms": round(g_ms, 2), "torch_ms": round(t_ms, 2),
      "ratio": round(t_ms / g_ms, 3), "flop_per_s": flop_per_s,
      "matmul_peak_flop_per_s": statistics.median(peak.rates),
      "fraction_of_peak": round(flop_per_s / statistics.median(peak.rates), 3),
      "ganzoo_ms_all": [round(1e3 * t, 2) for t in g_times], "torch_ms_all": [round(1e3 * t, 2) for t in t_times],
      "ganzoo_peak_rss_growth_mb": round(rss1 - rss0, 1), "torch_peak_rss_growth_mb": round(rss2 - rss1, 1),
      "peak_rss_mb": round(peak_rss_mb(), 1),
  }


def _fmt_flops(x: float) -> str:
  return f"{x / 1e9:.1f} G"


def print_table(results: dict[str, dict[str, Any]], run: dict[str, Any]) -> None:
  print(f"\n{run['cpu']} | {run['cores']} cores | jax {run['jax']} | torch {run['torch']} "
        f"(threads {run['torch_threads']}) | load avg {run['loadavg_start']:.2f} -> {run['loadavg_end']:.2f}")
  print(f"matmul peak (JAX f32 {run['matmul_n']}^2): {run['matmul_peak_flop_per_s'] / 1e9:.1f} GFLOP/s; "
        f"torch matmul {run['torch_matmul_flop_per_s'] / 1e9:.1f} GFLOP/s; peak RSS {run['peak_rss_mb']:.0f} MiB")
  print("| model | batch | ganzoo ms/step | PyTorch ms/step | ratio | FLOPs/step | ganzoo FLOP/s | % of peak | peak RSS MiB |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, r in results.items():
    if name == "inception":
      print(f"| inception (images/s) | {r['batch']} | {r['ganzoo_images_per_s']} img/s | "
            f"{r['torch_images_per_s']} img/s | {r['ratio']:.2f} | | | | {r['peak_rss_mb']:.0f} |")
    elif "torch_ms" in r:
      print(f"| {name} | {r['batch']} | {r['ganzoo_ms']} | {r['torch_ms']} | {r['ratio']:.2f} | "
            f"{_fmt_flops(r['flops'])} | {_fmt_flops(r['flop_per_s'])} | {100 * r['fraction_of_peak']:.0f}% | "
            f"{r['peak_rss_mb']:.0f} |")
    else:
      print(f"| {name} | {r['batch']} | {r['ganzoo_ms']} | - | - | {_fmt_flops(r['flops'])} | "
            f"{_fmt_flops(r['flop_per_s'])} | {100 * r['fraction_of_peak']:.0f}% | {r['peak_rss_mb']:.0f} |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
  argv = sys.argv[1:] if argv is None else list(argv)
  if any(a == "--devices" or a.startswith("--devices=") for a in argv):
    # Accelerator mode: images/s per device and scaling over device counts (experiments/device_scaling.py).
    import device_scaling  # pylint: disable=g-import-not-at-top
    return device_scaling.main(argv)
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="dcgan,sngan",
                      help="comma list of dcgan, sngan, biggan, inception, pix2pix, cyclegan, realnvp")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--reps", type=int, default=7, help="A/B repetitions after warm-up")
  parser.add_argument("--steps", type=int, default=3, help="steps per timed repetition")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side after compilation")
  parser.add_argument("--matmul", type=int, default=2048, help="matmul-peak matrix size")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="torch.set_num_threads (default 0: os.cpu_count(), all cores as XLA uses)")
  parser.add_argument("--tiny", action="store_true", help="tiny models (tests): checks the plumbing only")
  parser.add_argument("--standin", action="store_true",
                      help="pix2pix/cyclegan without a registered family: time experiments/translation_standin.py")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="compute dtype of the dcgan/sngan rows (ganzoo: config.model.dtype; torch: autocast)")
  parser.add_argument("--reuse_fakes", action="store_true",
                      help="dcgan/sngan rows with G's update on D's last fakes, both sides (train.reuse_fakes)")
  parser.add_argument("--json", action="store_true", help="last line: one JSON object")
  parser.add_argument("--out", default=None, help="also write the JSON object to this file")
  args = parser.parse_args(argv)
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = set(models) - {"dcgan", "sngan", "biggan", "inception", "realnvp", *TRANSLATION}
  if unknown:
    raise ValueError(f"unknown --models {sorted(unknown)}; choose from dcgan, sngan, biggan, inception, "
                     "pix2pix, cyclegan, realnvp")

  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.torch_threads or os.cpu_count())  # all cores, as XLA:CPU uses
  load_start = os.getloadavg()[0]
  peak = MatmulPeak(256 if args.tiny else args.matmul)
  peak.measure(3)
  results: dict[str, dict[str, Any]] = {}
  for name in models:
    print(f"[benchmark] {name} ...", file=sys.stderr, flush=True)
    if name == "inception":
      results[name] = bench_inception(args)
    elif name == "biggan":
      results[name] = bench_biggan(args, peak)
    elif name == "realnvp":
      results[name] = bench_realnvp(args, peak)
    elif name in TRANSLATION:
      row = bench_translation(name, args, peak)
      if row is not None:
        results[name] = row
    else:
      results[name] = bench_gan(name, args, peak)
  run = {
      "cpu": machine.cpu_name(), "cpu_extensions": machine.cpu_extensions(), "cores": os.cpu_count(),
      "jax": jax.__version__, "jaxlib": machine.version("jaxlib"), "torch": torch.__version__,
      "torch_threads": torch.get_num_threads(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "devices": len(jax.devices()), "matmul_n": peak.n,
      "matmul_peak_flop_per_s": statistics.median(peak.rates),
      "torch_matmul_flop_per_s": torch_matmul_rate(peak.n),
      "loadavg_start": load_start, "loadavg_end": os.getloadavg()[0],
      "reps": args.reps, "steps_per_rep": args.steps, "tiny": args.tiny,
      "peak_rss_mb": round(peak_rss_mb(), 1),
      "date": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  out = {"models": results, "run": run}
  print_table(results, run)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
  if args.json:
    print(json.dumps(out), flush=True)
  return out


if __name__ == "__main__":
  main()
