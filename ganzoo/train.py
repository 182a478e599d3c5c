"""The training program: data -> jitted step -> log / sample / checkpoint / evaluate, for any family.

`train_and_evaluate(config, workdir)` is importable (notebooks, tests); `ganzoo.main` is the CLI.
The family (`config.method`, see `ganzoo.methods`) supplies the state, the plan of each step, the
data streams it reads and its sampler; this loop knows nothing else of it.
Starting again with the same workdir resumes from the newest checkpoint; a resumed run is
identical to an unbroken one because the step's randomness is `fold_in(seed key, step)` and each
data stream's batches are a pure function of (data seed, stream, examples read before).
A resume with a config that would change the run's results (see `_HARMLESS`) stops with one line
unless `allow_config_change=True` (`--allow_config_change`); SIGTERM / Ctrl-C checkpoint the current
step and raise `Preempted` (see `_StopSignals`).

Workdir layout:
  checkpoints/<step>/   orbax checkpoints of the whole TrainState (last `train.keep_checkpoints`)
  best/<step>/          the checkpoint with the best eval/fid (when evaluation runs)
  metrics.jsonl         one JSON object per logged step: {"step": ..., "train/d_loss": ..., ...}; train/*
                        values are means over the steps since the previous line (see `_IntervalMeans`)
  tb/                   TensorBoard event files (a URL workdir: see `ganzoo.writers`)
  samples/              PNG grids from fixed inputs (EMA networks when EMA is on)
  profile/              the trace of `train.profile_steps` for TensorBoard's profiler (ganzoo.profiling)
  config.json           the config of the run as given at its first start (never rewritten)
  config_changes.jsonl  one line per resume that changed the config: {"step", "changed": {field: [old, new]},
                        "removed": [...], "alters_results": [...]}; config.json + these lines = the
                        config the run has now
  wandb_id.txt          the Weights & Biases run id, when `wandb.project` is set (a resume continues it)
The workdir is a local folder or a URL such as gs://bucket/run (`ganzoo.paths`; orbax writes the
checkpoints there itself).
"""

import io
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo import checkpoint
from ganzoo import config as config_lib
from ganzoo import data as data_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import parallel
from ganzoo import profiling
from ganzoo import paths
from ganzoo import sampling
from ganzoo import step as step_lib
from ganzoo import writers
from ganzoo.state import TrainState
from ganzoo.writers import MetricWriter


class NonFiniteLossError(FloatingPointError):
  """A loss became NaN/Inf; the run stopped and the last good checkpoint was kept."""


class Preempted(Exception):
  """SIGTERM or SIGINT arrived: the current step was checkpointed and training stopped."""

  def __init__(self, step: int, directory: str, signum: int):
    self.step, self.directory, self.signum = int(step), directory, int(signum)
    super().__init__(f"interrupted ({signal.Signals(signum).name}) at step {step}: checkpoint saved in {directory}; "
                     "run the same command to resume")

  @property
  def exit_code(self) -> int:
    return 128 + self.signum     # the shell's convention: 130 for SIGINT, 143 for SIGTERM


# ---------------------------------------------------------------------------------------------
# Writers (process 0 only): metrics.jsonl, TensorBoard and Weights & Biases are `ganzoo.writers`.

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

@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  """Whether every floating-point leaf of a pytree is finite (one device-side reduction)."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _check_finite(step: int, metrics: dict[str, float], last_ckpt: int | None, workdir: str,
                  first_bad: int = 0) -> None:
  """Raises NonFiniteLossError when a value of `metrics` (the means of the interval that ends at
  `step`) is NaN/Inf; `first_bad` is the interval's first step with a non-finite metric (0: unknown)."""
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    name, value = next(iter(bad.items()))
    kept = (f"the last good checkpoint (step {last_ckpt}) is kept in {workdir}/checkpoints"
            if last_ckpt is not None else "no checkpoint had been written yet")
    at = first_bad or step
    where = f" (found at step {step}, the end of its log interval)" if at != step else ""
    raise NonFiniteLossError(f"step {at}: {name} is {value}{where}; stopped, {kept}. "
                             "Lower the learning rates or add a penalty/spectral norm.")


@jax.jit
def _accumulate(sums: dict[str, jax.Array], first_bad: jax.Array, n: jax.Array,
                metrics: dict[str, jax.Array]) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
  """One step's metrics added to the interval's float32 running sums, on device; `n` counts the
  interval's steps and `first_bad` becomes n at its first step with a non-finite metric (0 while all
  are finite). A key missing from `sums` (the interval's first step, or a phase that runs every k
  steps) starts at its value. Retraced once per distinct pair of key sets: a handful of tiny
  programs per run. All arguments stay on device after the first call, so each call takes jit's
  fast path (measured ~2x faster than passing the step number from the host)."""
  out = dict(sums)
  for k, v in metrics.items():
    out[k] = sums[k] + v if k in sums else v
  finite = jnp.all(jnp.stack([jnp.isfinite(v).all() for v in metrics.values()])) if metrics else jnp.array(True)
  n = n + 1
  return out, jnp.where((first_bad == 0) & ~finite, n, first_bad), n


class _IntervalMeans:
  """The train metrics of a log interval: each key's mean over the steps of the interval that
  returned it.

  The metrics the compiled step returns (`train/*`: losses, logits, grad norms, penalties, each
  already the mean over its phase's repeats) are all per-step measurements, so every one is
  averaged; a key that only some steps return (a lazy regularizer every k steps) is averaged over
  those. Values measured on the host at the line's step (perf/*, eval/*, params/*) are written as
  they are, not averaged. The sums stay on device (`_accumulate`: one tiny dispatch per step and no
  host sync, as CLU's per-step metric merges in the flax examples); `pop` is the interval's one
  device->host transfer and starts the next interval. Numerics: float32 sums of n values in step
  order, |error| <= (n - 1) * 2**-24 * sum|x|; the division by n is on the host in float64. The
  step itself is untouched (tests/test_port.py).

  Where intervals end: at every log step, and at every checkpoint (including the one SIGTERM /
  Ctrl-C writes), whose line then carries the means of the steps since the previous line. A run
  resumes only from a checkpoint, so its first interval starts where the unbroken run's did:
  metrics.jsonl of a resumed run equals the unbroken run's (no running sums in the checkpoint,
  whose layout stays the family's; tests/test_train_metrics.py, tests/test_families.py), and no
  step is left out of or counted twice in the means.
  """

  def __init__(self):
    self.reset()

  def reset(self) -> None:
    self._sums: dict[str, jax.Array] = {}
    self._first_bad: Any = np.int32(0)   # numpy zeros: any mesh, any process count (then device outputs)
    self._n: Any = np.int32(0)
    self._counts: dict[str, int] = {}
    self._first_step: int | None = None

  def add(self, metrics: dict[str, jax.Array], step: int) -> None:
    """Adds the metrics of `step` (the interval's steps are consecutive)."""
    if self._first_step is None:
      self._first_step = int(step)
    self._sums, self._first_bad, self._n = _accumulate(self._sums, self._first_bad, self._n, metrics)
    for k in metrics:
      self._counts[k] = self._counts.get(k, 0) + 1

  def pop(self) -> tuple[dict[str, float], int]:
    """({key: mean}, the interval's first step with a non-finite metric, or 0); starts a new interval."""
    sums, first_bad = jax.device_get((self._sums, self._first_bad))
    means = {k: float(v) / self._counts[k] for k, v in sums.items()}
    bad_step = self._first_step + int(first_bad) - 1 if int(first_bad) else 0
    self.reset()
    return means, bad_step


def write_samples(workdir: str, step: int, images: np.ndarray, writer: MetricWriter) -> str:
  """Writes a PNG grid (images) or an .npy of points (2-D toy data); returns the path (local or a URL)."""
  paths.makedirs(os.path.join(workdir, "samples"))
  if images.ndim != 4:
    path = os.path.join(workdir, "samples", f"step_{step:08d}.npy")
    buffer = io.BytesIO()
    np.save(buffer, images)
    paths.write_bytes(path, buffer.getvalue())
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
  # An explicit mesh wins over `parallel.fsdp` (sampling and evaluation build on one device).
  mesh = mesh if mesh is not None else parallel.make_mesh(fsdp=config.parallel.get("fsdp", 1))
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


def state_sharding(method: methods.Method, config, mesh) -> Any:
  """Where the run keeps its state on `mesh`: replicated without an 'fsdp' axis, else
  `parallel.state_shardings` of the initial state at `parallel.fsdp_min_size` (init's out_shardings,
  the restore target's and the step's; see ganzoo.parallel)."""
  return step_lib.default_state_sharding(method, mesh, config.parallel.get("fsdp_min_size", parallel.FSDP_MIN_SIZE))


def _init_state(method: methods.Method, config, mesh, sharding: Any = None) -> TrainState:
  sharding = state_sharding(method, config, mesh) if sharding is None else sharding
  return jax.jit(method.init, out_shardings=sharding)(jax.random.PRNGKey(config.seed))


# ---------------------------------------------------------------------------------------------
# The run's config across resumes.

# Fields a resume may change without changing the run's results: where and how often things are
# written, how the run is evaluated, where the data files live (`data.data_dir`, `data.path`: a run
# or its data copied to another machine must resume; what the data are is told by name, split,
# source, size and crop, which are compared), how processes are started. Every other field (seeds,
# batch size, data set, model, losses, penalties, optimizers, step counts that set schedules,
# grad_accum: micro-batches change BatchNorm statistics) alters the training trajectory, so
# changing it on resume is refused unless asked for. Patterns ending in '.' name a section.
# `wandb.*` (the Weights & Biases mirror, ganzoo.writers) is where things are written too;
# `data.download` only says whether a missing data set may be fetched.
_HARMLESS = ("train.log_every", "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints",
             "train.num_sample_images", "train.profile_steps", "eval.", "parallel.", "data.prefetch", "data.device_prefetch",
             "data.cache", "data.workers", "data.data_dir", "data.path", "data.download",
             "wandb.")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  """{'a.b.c': leaf} of a nested dict; an empty section holds no field and vanishes."""
  if isinstance(d, dict):
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


def _defaults(flat_keys) -> dict[str, Any]:
  """Schema defaults of the given keys (a field added to the schema after a run started was, in
  effect, at its default in that run)."""
  base = config_lib.get_base_config().to_dict()
  for key in {k.split(".")[0] for k in flat_keys if k.startswith("data_")}:
    base[key] = config_lib.data_config().to_dict()
  for key in {k.split(".")[1] for k in flat_keys if k.startswith("nets.")}:
    base["nets"].setdefault(key, nets_lib.net_config().to_dict())
  return _flatten(json.loads(json.dumps(base)))


def _is_harmless(key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
  """Whether changing `key` on resume leaves the steps already defined unchanged."""
  field = key.split(".", 1)[1] if key.startswith("data_") else None   # data_<name>.* like data.*
  if any(key.startswith(p) if p.endswith(".") else key == p for p in _HARMLESS):
    return True
  if field is not None and f"data.{field}" in _HARMLESS:
    return True
  if key == "train.num_steps":
    # Only schedules read it: a linear LR decay spans num_steps (nets.build_spec), so extending a run
    # with one re-slopes every step after the resume; with constant rates extending a run is exact.
    decays = [v for cfg in (old, new) for k, v in cfg.items() if k.startswith("nets.") and k.endswith(".optim.decay")]
    return all(v in (None, "none") for v in decays)
  return False


def _config_changes(old: dict, new: dict) -> tuple[dict[str, list], list[str], list[str]]:
  """({field: [old, new]} of the fields set now that changed (old None when it was not set),
  the fields the new config no longer has, the fields among both that alter results)."""
  fo, fn = _flatten(old), _flatten(new)
  missing = object()
  defaults = _defaults(set(fo) | set(fn))
  changed, removed = {}, []
  for key in sorted(set(fo) | set(fn)):
    a, b = fo.get(key, defaults.get(key, missing)), fn.get(key, defaults.get(key, missing))
    if a is not missing and b is not missing and (a == b or json.dumps(a) == json.dumps(b)):   # NaN == NaN
      continue
    if b is missing:
      removed.append(key)
    else:
      changed[key] = [None if a is missing else a, b]
  altering = [k for k in [*changed, *removed] if not _is_harmless(k, fo, fn)]
  return changed, removed, altering


def run_config(workdir: str) -> dict | None:
  """The run's config now: config.json (its first start; older layouts upgraded) with
  config_changes.jsonl applied in order. Sections stay as written (an empty one stays empty)."""
  path = os.path.join(workdir, "config.json")
  if not paths.exists(path):
    return None
  nested = config_lib.upgrade_legacy_config(json.loads(paths.read_text(path)))
  changes = os.path.join(workdir, "config_changes.jsonl")
  if not paths.exists(changes):
    return nested
  records = [json.loads(line) for line in paths.read_text(changes).splitlines() if line.strip()]
  for record in records:
    for key, (_, value) in record["changed"].items():
      *parents, leaf = key.split(".")
      node = nested
      for p in parents:
        node = node.setdefault(p, {})
      node[leaf] = value
    for key in record.get("removed", []):
      *parents, leaf = key.split(".")
      node = nested
      for p in parents:
        node = node.get(p, {})
      node.pop(leaf, None)
  return nested


def _check_config_change(config, workdir: str, allow: bool) -> dict[str, Any]:
  """Compares `config` with the run already in `workdir`; returns the change (to record once the
  resumed step is known; {} when nothing changed). Raises a one-line ValueError when a
  result-changing field changed and `allow` is False."""
  old = run_config(workdir)
  if old is None:
    return {}
  new = json.loads(config.to_json_best_effort())
  changed, removed, altering = _config_changes(old, new)
  if not changed and not removed:
    return {}
  if altering and not allow:
    what = lambda k: f"{changed[k][0]!r} -> {changed[k][1]!r}" if k in changed else "removed"
    shown = ", ".join(f"{k}: {what(k)}" for k in altering[:8])
    more = f" and {len(altering) - 8} more" if len(altering) > 8 else ""
    raise ValueError(f"{workdir} holds a run whose config differs in fields that change its results ({shown}{more}); "
                     "resume with that run's config (its config.json), use a new --workdir, or pass "
                     "--allow_config_change (allow_config_change=True) to go on with the new values")
  return {"changed": changed, "removed": removed, "alters_results": altering}


def _record_config(config, workdir: str, start: int, change: dict[str, Any]) -> None:
  """config.json at a first start; one config_changes.jsonl line for a resume that changed fields."""
  path = os.path.join(workdir, "config.json")
  if start == 0 or not paths.exists(path):
    # A first start (or a restart before any checkpoint): this config is the run's.
    paths.write_text(path, config.to_json_best_effort(indent=2))
    changes = os.path.join(workdir, "config_changes.jsonl")
    if paths.exists(changes):
      paths.remove(changes)
  elif change:
    paths.append_text(os.path.join(workdir, "config_changes.jsonl"), json.dumps({"step": int(start), **change}) + "\n")


# ---------------------------------------------------------------------------------------------
# Stopping on a signal.

class _StopSignals:
  """SIGTERM / SIGINT handlers for the duration of a run (the previous handlers come back on exit).

  The first signal only sets `signum`; the loop checks it at the end of a step, checkpoints that step
  and raises `Preempted`, so a preemption (SIGTERM, e.g. from a cluster scheduler with a grace
  period) or Ctrl-C never loses more than the current step. A second Ctrl-C stops at once
  (KeyboardInterrupt). Signal handlers can only be set from the main thread; elsewhere (a notebook's
  worker thread) nothing is installed and signals keep their usual meaning.
  """

  def __init__(self):
    self.signum = 0
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.signum and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signum = self.signum or signum
    if jax.process_index() == 0:
      print(f"{signal.Signals(signum).name}: checkpointing the current step, then stopping "
            "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

  def __exit__(self, *exc):
    for sig, handler in self._old.items():
      signal.signal(sig, handler)
    return False


# With several processes a signal may reach only some of them (or each at another time), and all must
# stop at the same step or the others hang in the next step's collectives: they agree on the signal
# with one small all-gather every _STOP_SYNC_EVERY steps. Each agreement blocks the host until the
# queued steps finish (a pipeline bubble of about one step's dispatch), so it is not done every step;
# 10 steps is well inside the usual preemption grace periods (~30 s) for step times below a second.
# One process needs no agreement and checks the flag every step.
_STOP_SYNC_EVERY = 10


def _stop_signal(stop: _StopSignals, step: int, num_steps: int) -> int:
  """The signal to stop at the end of `step` for (the same on every process), or 0. At the last step
  the run is complete: it ends normally."""
  if step == num_steps:
    return 0
  if jax.process_count() == 1:
    return stop.signum
  if step % _STOP_SYNC_EVERY:
    return 0
  return parallel.max_over_processes(stop.signum)


# ---------------------------------------------------------------------------------------------
# Saving.

def _aliases_host(x: jax.Array) -> bool:
  """Whether orbax's host copy of `x` may share memory with its device buffer.

  orbax-checkpoint (`orbax/checkpoint/_src/serialization/replica_slices.py`,
  `transfer_arrays_to_host`, reached synchronously from `jax_array_handlers._serialize_arrays` when no
  device-to-host byte limit is set, as in `Checkpointer`) starts `copy_to_host_async()` and then
  takes `np.asarray(data)` before `save` returns; the files are written later from those host arrays.
  On GPU/TPU `np.asarray` is a real copy into host memory, so once `save` returns the next step may
  donate (overwrite) the device buffers. On the CPU backend the device buffer *is* host memory and
  `np.asarray` is a zero-copy view of it, which donation then overwrites mid-write: only those
  arrays need a copy. (The accelerator case is read from orbax's code, not measured here.)
  """
  return any(d.platform == "cpu" for d in x.sharding.device_set)


def _save_safe(state: TrainState) -> TrainState:
  """`state`, with a fresh buffer for every array whose host view would alias a donated buffer."""
  return jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) and _aliases_host(x) else x, state)


def _start_distributed(config) -> None:
  """Starts jax.distributed from `config.parallel.*` or the JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
  JAX_PROCESS_ID environment variables (either is enough); `parallel.distributed=True` asks JAX to
  detect the cluster itself (TPU pods, SLURM, Open MPI)."""
  p = config.parallel
  started = parallel.maybe_initialize_distributed(p.get("coordinator_address"), p.get("num_processes"),
                                                  p.get("process_id"))
  if not started and p.get("distributed", False) and not jax.distributed.is_initialized():
    jax.distributed.initialize()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, mesh=None, progress: bool = True,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains the family `config.method` as configured, resuming from `workdir` when it holds checkpoints.

  A resume whose config changes the run's results (anything but the fields in `_HARMLESS`; see
  `_is_harmless` for `train.num_steps`) raises a one-line ValueError unless `allow_config_change`;
  a checkpoint of another model raises `checkpoint.CheckpointMismatchError`; in both cases nothing
  in the workdir is changed. SIGTERM/SIGINT checkpoint the current step and raise `Preempted`.
  Returns a summary dict: final step, last logged metrics, wall time, paths.
  """
  _start_distributed(config)
  workdir = paths.resolve(workdir)   # a URL (gs://bucket/run) stays one; a local path becomes absolute
  lead = jax.process_index() == 0
  if lead:
    writers.check_wandb(config)
  paths.makedirs(workdir)
  dataset, method, mesh = setup(config, mesh)

  sharding = state_sharding(method, config, mesh)
  state = _init_state(method, config, mesh, sharding)   # also the restore target: orbax reshards onto it
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  try:
    # Before anything is restored or written: a refused resume leaves the workdir as it was.
    change = _check_config_change(config, workdir, allow_config_change) if ckpt.steps() else {}
    restored = ckpt.restore_latest(state)
  except Exception:
    ckpt.close()
    raise
  start = 0
  if restored is not None:
    state, start = restored
    if lead:
      print(f"resumed from {workdir}/checkpoints at step {start}", flush=True)
      if change:
        print(f"config changed on resume ({', '.join(change['alters_results']) or 'no result-changing field'}); "
              f"recorded in {workdir}/config_changes.jsonl", flush=True)
  if lead:
    _record_config(config, workdir, start, change)
  last_ckpt = start if restored is not None else None

  writer = MetricWriter(workdir, start, enabled=lead, config=config)
  counts = method.param_counts(state)
  if lead:
    nets = ", ".join(f"{k.split('/', 1)[1]} {v:,}" for k, v in counts.items())
    fsdp = parallel.fsdp_size(mesh)
    print(f"{config.method}/{config.model.name}: params {nets}; {mesh.size} device(s)"
          + (f" (state sharded over {fsdp})" if fsdp > 1 else "") + ", "
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

  steps_for = step_lib.StepCache(method, mesh, state_sharding=sharding)
  n_fixed = int(t.num_sample_images)
  # A sharded state's samples are gathered (every process can read them); without FSDP, jit's own choice as before.
  gather = {} if parallel.fsdp_size(mesh) == 1 else {"out_shardings": parallel.replicated(mesh)}
  sample_fn = jax.jit(lambda st, inputs: method.sample_fixed(st, inputs, n_fixed), **gather)
  fixed = method.fixed_inputs(config.seed, n_fixed)
  evaluator = _make_evaluator(config, method, workdir) if config.eval.every else None

  datasets = {"data": dataset}
  for key in config.keys():   # further sources (`data_<name>` sections) for multi-domain families
    if key.startswith("data_"):
      datasets[key] = data_lib.build_dataset(config[key], data_seed(config), jax.process_index(), jax.process_count())
  batches = data_lib.prefetch(stream_batches(method, datasets, start), config.data.prefetch)
  batches = data_lib.device_prefetch(   # on GPU/TPU, batch k + 1 is copied while step k runs
      batches, lambda item: (item[0], parallel.global_batch(item[1], mesh, batch_axis=1)),
      config.data.get("device_prefetch", -1))
  bar = Progress(start, num_steps, enabled=lead and progress)
  last: dict[str, float] = {}
  interval = _IntervalMeans()
  t0 = time.time()
  # Throughput is measured between log steps, training time only: the first interval starts after
  # the first step (which includes compilation); sampling, checkpoints and evaluations are timed
  # apart (perf/sample_s, perf/checkpoint_s, perf/eval_s) and left out of perf/steps_per_sec.
  tick_step, tick_time, excluded = None, None, 0.0
  stop = _StopSignals()
  tracer = profiling.Tracer(workdir, profiling.parse_steps(t.get("profile_steps", None)), enabled=lead)
  flops: dict[str, float] | None = None   # perf/step_gflop, measured at the run's first step
  try:
    stop.__enter__()
    for step in range(start + 1, num_steps + 1):
      plan, batch = next(batches)
      tracer.before(step)
      step_fn = steps_for(plan)
      with tracer.annotation(step):
        state, metrics = step_fn(state, batch)
      tracer.after(step, metrics)
      if flops is None:   # the new state has the donated one's shapes and shardings
        gflop = profiling.step_flops(step_fn, state, batch)
        flops = {"perf/step_gflop": gflop / 1e9} if gflop is not None else {}
      interval.add(metrics, step)
      bar.update()
      if tick_step is None:
        jax.block_until_ready(metrics)
        tick_step, tick_time = step, time.time()
      is_log = step % t.log_every == 0 or step == num_steps
      is_ckpt = step % t.checkpoint_every == 0 or step == num_steps
      record: dict[str, float] = {}   # one metrics.jsonl line per step
      if is_log and flops:   # once, in the run's first log line
        record.update(flops)
        flops = {}
      if is_log or is_ckpt:   # the end of an interval (`_IntervalMeans`): a NaN in any of its steps stops here
        last, first_bad = interval.pop()
        _check_finite(step, last, last_ckpt, workdir, first_bad)
        record.update(last)
        if is_log:
          now = time.time()
          if step > tick_step:
            last["perf/steps_per_sec"] = (step - tick_step) / max(now - tick_time - excluded, 1e-9)
            tick_step, tick_time, excluded = step, now, 0.0
            record["perf/steps_per_sec"] = last["perf/steps_per_sec"]
      if t.sample_every and (step % t.sample_every == 0 or step == num_steps):
        t1 = time.time()
        images = np.asarray(jax.device_get(sample_fn(state, fixed)))
        if lead:
          summary["last_samples"] = write_samples(workdir, step, images, writer)
        record["perf/sample_s"] = time.time() - t1
        excluded += record["perf/sample_s"]
      signum = _stop_signal(stop, step, num_steps)
      if is_ckpt or signum:
        t1 = time.time()
        if not (is_log or is_ckpt):   # the checkpoint the signal asks for ends the interval too
          last, first_bad = interval.pop()
          _check_finite(step, last, last_ckpt, workdir, first_bad)
          record.update(last)
        if not bool(_all_finite(state)):
          raise NonFiniteLossError(f"step {step}: the parameters or optimizer state became NaN/Inf; stopped, "
                                   + (f"the last good checkpoint (step {last_ckpt}) is kept in {workdir}/checkpoints"
                                      if last_ckpt is not None else "no checkpoint had been written yet")
                                   + ". Lower the learning rates or add a penalty/spectral norm.")
        ckpt.save(step, _save_safe(state), force=True)
        last_ckpt = step
        record["perf/checkpoint_s"] = time.time() - t1
        excluded += record["perf/checkpoint_s"]
      if signum:
        if record:
          writer.write(step, record)
        ckpt.wait()
        raise Preempted(step, ckpt.directory, signum)
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
    tracer.stop()
    stop.__exit__()
    bar.close()
    ckpt.wait()
    ckpt.close()
    writer.close()
    batches.close()
    for ds in datasets.values():
      ds.close()
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
  if paths.exists(best_json):
    best = json.loads(paths.read_text(best_json))

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
        paths.write_text(best_json, json.dumps(best))
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
