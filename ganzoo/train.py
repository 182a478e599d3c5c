"""The training program: data -> jitted step -> log / sample / checkpoint / evaluate, for any family.

`train_and_evaluate(config, workdir)` is importable (notebooks, tests); `ganzoo.main` is the CLI.
The family (`config.method`, see `ganzoo.methods`) supplies the state, the plan of each step, the
data streams it reads and its sampler; this loop knows nothing else of it.
Starting again with the same workdir resumes from the newest checkpoint; a resumed run is
identical to an unbroken one because the step's randomness is `fold_in(seed key, step)` and each
data stream's batches are a pure function of (data seed, stream, examples read before).

Workdir layout:
  checkpoints/<step>/   orbax checkpoints of the whole TrainState (last `train.keep_checkpoints`)
  best/<step>/          the checkpoint with the best eval/fid (when evaluation runs)
  metrics.jsonl         one JSON object per logged step: {"step": ..., "train/d_loss": ..., ...}
  tb/                   TensorBoard event files
  samples/              PNG grids from fixed inputs (EMA networks when EMA is on)
  config.json           the config of the run
"""

import json
import math
import os
import time
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo import checkpoint
from ganzoo import config as config_lib
from ganzoo import data as data_lib
from ganzoo import methods
from ganzoo import parallel
from ganzoo import sampling
from ganzoo import step as step_lib
from ganzoo.state import TrainState


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN/Inf; the run stopped and the last good checkpoint was kept."""


# ---------------------------------------------------------------------------------------------
# Writers (process 0 only).

class MetricWriter:
  """metrics.jsonl + TensorBoard. On resume, lines after the restored step are dropped first."""

  def __init__(self, workdir: str, start_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not enabled:
      return
    if os.path.exists(self.path):
      with open(self.path) as f:
        kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= start_step]
      with open(self.path, "w") as f:
        f.writelines(kept)
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=start_step + 1)
    except ImportError:  # TensorBoard is optional
      self._tb = None

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n")
    if self._tb is not None:
      for name, value in metrics.items():
        self._tb.add_scalar(name, float(value), int(step))

  def write_image(self, step: int, name: str, grid: np.ndarray) -> None:
    if self.enabled and self._tb is not None:
      self._tb.add_image(name, grid, int(step), dataformats="HWC")

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class Progress:
  """A tqdm bar with steps/s, ETA and the latest losses on a terminal; one plain line per log step
  when stderr is not a terminal (a log file, CI) or tqdm is missing."""

  def __init__(self, start: int, total: int, enabled: bool):
    self._bar = None
    self.enabled = enabled
    if enabled and sys.stderr.isatty():
      try:
        from tqdm import tqdm  # pylint: disable=g-import-not-at-top
        self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=1.0)
      except ImportError:
        self._bar = None

  def update(self, n: int = 1) -> None:
    if self._bar is not None:
      self._bar.update(n)

  def show(self, step: int, metrics: dict[str, float]) -> None:
    short = {k.split("/")[-1]: f"{v:.4g}" for k, v in metrics.items() if k.endswith(("loss", "fid"))}
    if self._bar is not None:
      self._bar.set_postfix(short, refresh=False)
    elif self.enabled:
      print(f"step {step}: {short}", flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


# ---------------------------------------------------------------------------------------------

def _fetch(metrics: dict[str, jax.Array]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  """Whether every floating-point leaf of a pytree is finite (one device-side reduction)."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _check_finite(step: int, metrics: dict[str, float], last_ckpt: int | None, workdir: str) -> None:
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    name, value = next(iter(bad.items()))
    kept = (f"the last good checkpoint (step {last_ckpt}) is kept in {workdir}/checkpoints"
            if last_ckpt is not None else "no checkpoint had been written yet")
    raise NonFiniteLossError(f"step {step}: {name} is {value}; stopped, {kept}. "
                             "Lower the learning rates or add a penalty/spectral norm.")


def write_samples(workdir: str, step: int, images: np.ndarray, writer: MetricWriter) -> str:
  """Writes a PNG grid (images) or an .npy of points (2-D toy data); returns the path."""
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  if images.ndim != 4:
    path = os.path.join(workdir, "samples", f"step_{step:08d}.npy")
    np.save(path, images)
    return path
  grid = sampling.make_grid(images, nrow=int(math.ceil(math.sqrt(images.shape[0]))))
  path = os.path.join(workdir, "samples", f"step_{step:08d}.png")
  sampling.save_grid(path, grid)
  writer.write_image(step, "samples", grid)
  return path


def data_seed(config: ml_collections.ConfigDict) -> int:
  """The seed of the data order: `data.seed`, or the run's `seed` when unset."""
  seed = config.data.get("seed", None)
  return int(config.seed if seed is None else seed)


def setup(config: ml_collections.ConfigDict, mesh=None, need_data: bool | None = None):
  """Builds (dataset, method, mesh) from a config; shared by training, evaluation and sampling.

  `need_data=False` (default: only when `train.num_steps` is 0) lets a standard data set that is
  not on this machine (`ganzoo.data.sources.KNOWN_DATASETS`: mnist, fashion_mnist, cifar10, ...)
  stand in by its known image shape and class count: building the model and counting its
  parameters, or sampling a trained run, reads no example. Reading a batch from such a stand-in
  raises the data set's DatasetNotFoundError (how to get it).
  """
  config_lib.validate_config(config)
  mesh = mesh if mesh is not None else parallel.make_mesh()
  parallel.check_batch_size(config.data.batch_size, mesh, config.train.get("grad_accum", 1))
  need_data = int(config.train.num_steps) > 0 if need_data is None else need_data
  dataset = data_lib.build_dataset(config.data, data_seed(config), jax.process_index(), jax.process_count(),
                                   allow_absent=not need_data)
  method = methods.build(config, methods.DataSpec(tuple(dataset.image_shape), int(dataset.num_classes or 0)))
  return dataset, method, mesh


def stream_offsets(method: methods.Method, start: int) -> dict[str, int]:
  """Examples each stream has delivered in steps 0 .. start - 1 (the plans are a pure function of the step)."""
  offsets: dict[str, int] = {}
  for s in range(start):
    for name, spec in method.streams(method.plan(s)).items():
      offsets[name] = offsets.get(name, 0) + spec.count * spec.batch_size
  return offsets


def stream_batches(method: methods.Method, datasets: dict[str, data_lib.Dataset], start: int):
  """Yields (plan, {stream: uint8 batches}) for steps start, start + 1, ... (host side)."""
  offsets = stream_offsets(method, start)
  step = start
  while True:
    plan = method.plan(step)
    batch = {}
    for name, spec in method.streams(plan).items():
      if spec.source not in datasets:
        raise ValueError(f"stream {name!r} reads config.{spec.source}, which this run has no data for")
      off = offsets.get(name, 0)
      batch[name] = datasets[spec.source].read(name, off, spec.count, spec.batch_size)
      offsets[name] = off + spec.count * spec.batch_size
    yield plan, batch
    step += 1


def _init_state(method: methods.Method, config, mesh) -> TrainState:
  return jax.jit(method.init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(config.seed))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, mesh=None,
                       progress: bool = True) -> dict[str, Any]:
  """Trains the family `config.method` as configured, resuming from `workdir` when it holds checkpoints.

  Returns a summary dict: final step, last logged metrics, wall time, paths.
  """
  if config.parallel.get("distributed", False) or config.parallel.get("coordinator_address"):
    parallel.maybe_initialize_distributed(config.parallel.coordinator_address, config.parallel.num_processes,
                                          config.parallel.process_id) or jax.distributed.initialize()
  workdir = os.path.abspath(workdir)
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  dataset, method, mesh = setup(config, mesh)
  if lead:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))

  state = _init_state(method, config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  restored = ckpt.restore_latest(state)
  start = 0
  if restored is not None:
    state, start = restored
    if lead:
      print(f"resumed from {workdir}/checkpoints at step {start}", flush=True)
  last_ckpt = start if restored is not None else None

  writer = MetricWriter(workdir, start, enabled=lead)
  counts = method.param_counts(state)
  if lead:
    nets = ", ".join(f"{k.split('/', 1)[1]} {v:,}" for k, v in counts.items())
    print(f"{config.method}/{config.model.name}: params {nets}; {mesh.size} device(s), "
          f"global batch {config.data.batch_size}", flush=True)
    if start == 0:
      writer.write(0, counts)

  t = config.train
  num_steps = int(t.num_steps)
  summary: dict[str, Any] = {"workdir": workdir, "start_step": start, **counts}
  if start >= num_steps:
    writer.close()
    ckpt.close()
    return {**summary, "step": start, "metrics": {}, "seconds": 0.0}

  steps_for = step_lib.StepCache(method, mesh)
  n_fixed = int(t.num_sample_images)
  sample_fn = jax.jit(lambda st, inputs: method.sample_fixed(st, inputs, n_fixed))
  fixed = method.fixed_inputs(config.seed, n_fixed)
  evaluator = _make_evaluator(config, method, workdir) if config.eval.every else None

  datasets = {"data": dataset}
  for key in config.keys():   # further sources (`data_<name>` sections) for multi-domain families
    if key.startswith("data_"):
      datasets[key] = data_lib.build_dataset(config[key], data_seed(config), jax.process_index(), jax.process_count())
  batches = data_lib.prefetch(stream_batches(method, datasets, start), config.data.prefetch)
  bar = Progress(start, num_steps, enabled=lead and progress)
  last: dict[str, float] = {}
  t0 = time.time()
  # Throughput is measured between log steps, training time only: the first interval starts after
  # the first step (which includes compilation); sampling, checkpoints and evaluations are timed
  # apart (perf/sample_s, perf/checkpoint_s, perf/eval_s) and left out of perf/steps_per_sec.
  tick_step, tick_time, excluded = None, None, 0.0
  try:
    for step in range(start + 1, num_steps + 1):
      plan, host_batch = next(batches)
      batch = parallel.global_batch(host_batch, mesh, batch_axis=1)
      state, metrics = steps_for(plan)(state, batch)
      bar.update()
      if tick_step is None:
        jax.block_until_ready(metrics)
        tick_step, tick_time = step, time.time()
      is_log = step % t.log_every == 0 or step == num_steps
      is_ckpt = step % t.checkpoint_every == 0 or step == num_steps
      record: dict[str, float] = {}   # one metrics.jsonl line per step
      if is_log or is_ckpt:
        last = _fetch(metrics)
        _check_finite(step, last, last_ckpt, workdir)
        if is_log:
          now = time.time()
          if step > tick_step:
            last["perf/steps_per_sec"] = (step - tick_step) / max(now - tick_time - excluded, 1e-9)
            tick_step, tick_time, excluded = step, now, 0.0
          record.update(last)
      if t.sample_every and (step % t.sample_every == 0 or step == num_steps):
        t1 = time.time()
        images = np.asarray(jax.device_get(sample_fn(state, fixed)))
        if lead:
          summary["last_samples"] = write_samples(workdir, step, images, writer)
        record["perf/sample_s"] = time.time() - t1
        excluded += record["perf/sample_s"]
      if is_ckpt:
        t1 = time.time()
        if not bool(_all_finite(state)):
          raise NonFiniteLossError(f"step {step}: the parameters or optimizer state became NaN/Inf; stopped, "
                                   + (f"the last good checkpoint (step {last_ckpt}) is kept in {workdir}/checkpoints"
                                      if last_ckpt is not None else "no checkpoint had been written yet")
                                   + ". Lower the learning rates or add a penalty/spectral norm.")
        # Orbax writes in the background from host views of the arrays, and the next step donates
        # (overwrites) the state's buffers: save a copy.
        ckpt.save(step, jax.tree.map(jnp.copy, state), force=True)
        last_ckpt = step
        record["perf/checkpoint_s"] = time.time() - t1
        excluded += record["perf/checkpoint_s"]
      if evaluator is not None and (step % config.eval.every == 0 or step == num_steps):
        # After the checkpoint: a failing evaluation never costs the step's checkpoint.
        t1 = time.time()
        results = evaluator(state, step)
        results["perf/eval_s"] = time.time() - t1
        excluded += results["perf/eval_s"]
        record.update(results)
        last.update(results)
      if record:
        writer.write(step, record)
        if is_log or "eval/fid" in record:
          bar.show(step, record)
  finally:
    bar.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
    batches.close()
  seconds = time.time() - t0
  return {**summary, "step": num_steps, "metrics": last, "seconds": seconds}


def reference_name(config: ml_collections.ConfigDict):
  """The FID reference set of a run: its own data config (`config.data`: name, source, data_dir, path,
  image_size, center_crop, max_examples) at split `eval.real_split`, as a `protocol.Reference`, so
  the reference images go through the same loader and transforms as the training images."""
  from ganzoo.metrics import protocol  # pylint: disable=g-import-not-at-top
  return protocol.Reference.from_data_config(config.data, config.eval.real_split)


def _make_evaluator(config, method: methods.Method, workdir):
  """In-training FID/KID (`eval.metrics`) on `eval.num_samples` samples of the family; keeps the
  best-FID checkpoint under workdir/best (its FID and step in workdir/best/best.json, so a resume
  keeps it). The reference statistics are computed (or read from the cache) here, before step 1,
  so a reference that cannot be built (missing split or data, missing Inception weights, too few
  images) stops the run at once with one line. An evaluation that fails later is logged
  (`eval/error` = 1 and one console line) and training goes on. With several processes every
  process evaluates (collectively) and gets the same values; process 0's best-FID decision is
  broadcast so that all processes save the best checkpoint together."""
  from ganzoo import evaluate  # pylint: disable=g-import-not-at-top
  from ganzoo.metrics import protocol  # pylint: disable=g-import-not-at-top
  metrics = evaluate.parse_metrics(config.eval.metrics) if config.eval.metrics else ()
  real = reference_name(config)
  extractor = None
  if metrics:
    try:
      extractor = evaluate.get_extractor(config.eval.inception_weights)
      protocol.reference_statistics(real, extractor, int(config.eval.num_samples), int(config.eval.batch_size))
    except Exception as e:  # pylint: disable=broad-except  (any failure here is the user's to fix before training)
      text = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"eval.every={config.eval.every}: the FID reference ({config.data.name}, split "
                       f"{config.eval.real_split!r}) cannot be built: {text}; fix it or set "
                       "--config.eval.every=0") from None
  sampler = evaluate.make_sampler(method)
  nll = _make_nll(config, method)
  best_dir = os.path.join(workdir, "best")
  best_json = os.path.join(best_dir, "best.json")
  best = {"fid": math.inf, "step": None}
  if os.path.exists(best_json):
    with open(best_json) as f:
      best = json.load(f)

  def run(state: TrainState, step: int) -> dict[str, float]:
    try:
      result = {} if not metrics else evaluate.evaluate_sampler(
          sampler(state), int(config.eval.num_samples), real, metrics=metrics, rng=jax.random.PRNGKey(config.seed),
          batch_size=int(config.eval.batch_size), extractor=extractor)
      if nll is not None:
        result["bpd"] = nll(state)
    except Exception as e:  # pylint: disable=broad-except
      if jax.process_index() == 0:
        print(f"warning: evaluation at step {step} failed ({type(e).__name__}: {e}); training goes on", flush=True)
      return {"eval/error": 1.0}
    out = {f"eval/{k}": float(v) for k, v in result.items() if isinstance(v, (int, float)) and v is not None}
    fid = out.get("eval/fid")
    is_best = fid is not None and fid < best["fid"]
    if jax.process_count() > 1:   # every process saves (orbax is collective) or none does: process 0 decides
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      is_best = bool(multihost_utils.broadcast_one_to_all(np.int32(is_best)))
    if is_best:
      ckpt = checkpoint.Checkpointer(best_dir, max_to_keep=1)
      ckpt.save(step, state, force=True)
      ckpt.wait()
      ckpt.close()
      best.update(fid=fid, step=int(step))
      if jax.process_index() == 0:
        with open(best_json, "w") as f:
          json.dump(best, f)
    return out

  return run


def _make_nll(config, method: methods.Method):
  """`nll(state) -> bits/dim`, the mean of `method.nll` over the first `eval.num_samples` examples of
  the data set's `eval.real_split`, for families that report a likelihood; None for the others."""
  if type(method).nll is methods.Method.nll:
    return None
  data_cfg = ml_collections.ConfigDict(config.data.to_dict())
  data_cfg.split = config.eval.real_split
  dataset = data_lib.build_dataset(data_cfg, data_seed(config), 0, 1)
  n = min(int(config.eval.num_samples), int(dataset.num_examples))
  b = int(config.eval.batch_size)
  fn = jax.jit(lambda st, batch: method.nll(st, step_lib.to_float_pixels(batch)))

  def run(state: TrainState) -> float:
    total = 0.0
    for lo in range(0, n, b):
      batch = dataset.source.get(np.arange(lo, min(lo + b, n)))
      total += float(fn(state, batch)) * len(batch["image"])
    return total / n

  return run
