"""The training step of every family: a sequence of phases over named networks, one jit per plan.

A family (`ganzoo.methods`) lists its phases; a `StepPlan` is the tuple of phases one step runs
(a lazy regularizer joins the plan every k steps; a ProGAN stage changes it). The loop compiles
one step per distinct plan and caches it:

    method = methods.build(config, data_spec)
    state = method.init(jax.random.PRNGKey(config.seed))
    step_fn = make_step(method, method.plan(0), mesh)
    state, metrics = step_fn(state, batch)       # batch: {stream: {'image': [n, B, ...], ...}}

One phase = `repeats` updates of the networks it `trains` (n_critic for a critic). Each update:
  1. the power iteration of each trained network's spectral norm (update=True, once per update);
  2. for each of the k = `train.grad_accum` micro-batches, in order:
     a. `prepare(ctx, data, key) -> (inputs, keys)`: whatever the loss needs that is not
        differentiated (latents, fakes from a frozen G), made from this micro-batch's slice of the
        stream's batch and its own key (`ctx.batch_size` examples: the global batch / k); arrays
        in `inputs` are sharded over the mesh;
     b. `loss(ctx, inputs) -> (loss, metrics)` and its gradient, with the batch statistics of
        trained networks carried from micro-batch to micro-batch; each trained network's
        orthogonal regularization is added here;
     so one micro-batch's fakes and activations are alive at a time and `grad_accum` divides the
     memory of an update on accelerators (`lax.scan`; not on CPU, see `scan`). BigGAN-PyTorch's
     train_fns.py samples z and runs G inside its accumulation loop too. Gradients are averaged
     over the micro-batches.
  3. `nets.apply_grads` (optimizer, clipping, EMA) for each trained network; then the phase's
     `after(extras, metrics, step)` may update adaptive values in `state.extras`.
Mixed precision (`config.model.dtype`, `ganzoo.precision`): `Context.apply` runs each network in the
compute dtype; with float16 the loss is multiplied by the loss scale in `state.extras`, the
gradients divided by it, and an update with a non-finite gradient leaves its networks unchanged.
With k == 1, `prepare` runs once on the whole batch with the update's key. A phase with
`prepare_once=True` prepares the whole batch once at any k and splits the result into micro-batches
(each returned key into k keys): the memory of the whole batch's preparation, but a G with
BatchNorm then makes the same fakes at every k (the step before micro-batch preparation did this).

Randomness: step k uses `fold_in(state.rng, k)`; phase p folds in its own constant `p.key`
(default: crc32 of its name), so adding a phase leaves the others' randomness unchanged; the
repeats of a phase split that key. A run is a pure function of (config, seed, data order).

Data: a phase with `stream` reads that stream's batches; the stream delivers n batches per step
(n = the most repeats among the plan's phases that read it) and a phase with r repeats reads the
last r of them, so a lazy regularizer (r = 1) sees the batch of the main phase's last update, as
in stylegan2-ada. A phase whose `stream` is a tuple of names reads all of them in one update
(CoGAN's D sees both domains' real batches) and gets `data` = {stream: batch}. uint8 arrays are
pixels: they travel to the devices as uint8 and are mapped to [-1, 1] there (x / 127.5 - 1, through
a 256-entry table so the values equal the host's exactly).
"""

import zlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from ganzoo import nets as nets_lib
from ganzoo import parallel
from ganzoo import precision
from ganzoo import regularizers
from ganzoo.state import TrainState

PyTree = Any
Metrics = dict[str, jax.Array]

# uint8 pixel -> float32 in [-1, 1], computed on the host exactly as `ganzoo.data.to_float` does
# (XLA rewrites x / 127.5 into a multiply by the rounded reciprocal, which differs in the last bit).
PIXEL_TABLE = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


class Phase(NamedTuple):
  """One kind of update in a step (hashable; a plan is a tuple of phases).

  Attributes:
    name: metric prefix for its grad norm (`train/<name>_grad_norm`), e.g. 'd', 'g', 'd_reg'.
    trains: the networks that get gradients.
    loss: `loss(ctx, inputs) -> (scalar, {name: scalar})` per micro-batch; `inputs` holds the
      prepared arrays and keys of this micro-batch.
    prepare: `prepare(ctx, data, key) -> (inputs, keys)`, run per micro-batch outside the
      gradient; `data` is this micro-batch's slice of the update's batch of `stream` (None
      without a stream; {name: batch} when `stream` is a tuple), `ctx.batch_size` the micro-batch size.
    repeats: updates per step (n_critic).
    every: the phase runs at steps where `step % every == 0` (lazy regularization).
    scale: multiplies the loss (lazy regularization: `every`).
    stream: the data stream this phase reads, a tuple of streams it reads together, or None.
    key: constant folded into the step key (default: crc32 of `name`).
    after: optional `after(extras, metrics, step) -> extras`, after each update.
    prepare_once: prepare the whole batch once per update and split it into micro-batches (see
      the module docstring; memory of the whole batch).
    prepare_extras: `prepare` returns (inputs, keys, extras), the new `state.extras`, made outside
      the gradient with the frozen networks (CycleGAN's image pools, queried with G_t's fakes);
      needs `prepare_once` (one preparation per update, at any grad_accum). The loss and `after`
      see the new extras.
    ema: the update moves the trained networks' EMAs (False for a phase followed by another update
      of the same network in the step, so the EMA moves once per step, as stylegan2-ada's).
  """
  name: str
  trains: tuple[str, ...]
  loss: Callable[..., tuple[jax.Array, Metrics]]
  prepare: Callable[..., tuple[dict[str, Any], dict[str, jax.Array]]] | None = None
  repeats: int = 1
  every: int = 1
  scale: float = 1.0
  stream: str | tuple[str, ...] | None = None
  key: int | None = None
  after: Callable[..., dict[str, jax.Array]] | None = None
  prepare_once: bool = False
  prepare_extras: bool = False
  ema: bool = True

  @property
  def key_constant(self) -> int:
    return int(self.key) if self.key is not None else zlib.crc32(self.name.encode()) & 0x7FFFFFFF


class StepPlan(NamedTuple):
  """What one compiled step runs: its phases in order (and any static shape the family needs)."""
  phases: tuple[Phase, ...]
  tag: Any = None   # static per-plan data a family needs (a ProGAN stage, a batch size)


def plan_for_step(phases: tuple[Phase, ...], step: int, tag: Any = None) -> StepPlan:
  """The phases due at `step` (completed steps so far): those with `step % every == 0`."""
  return StepPlan(tuple(p for p in phases if step % p.every == 0), tag)


def _stream_names(phase: Phase) -> tuple[str, ...]:
  if phase.stream is None:
    return ()
  return (phase.stream,) if isinstance(phase.stream, str) else tuple(phase.stream)


def stream_counts(plan: StepPlan) -> dict[str, int]:
  """{stream: batches per step}: the most repeats among the plan's phases that read the stream."""
  counts: dict[str, int] = {}
  for p in plan.phases:
    for name in _stream_names(p):
      counts[name] = max(counts.get(name, 0), p.repeats)
  return counts


# ---------------------------------------------------------------------------------------------
# The view of the networks a phase's functions get.

class Context:
  """Networks as a phase sees them: `ctx.apply(name, *inputs, train=..., rng=...)`.

  Trained networks are applied with the params being differentiated; their batch statistics
  change (train=True) and are carried to the next call and micro-batch. Other networks are
  applied with their stored SN vectors and statistics, which do not change. `ctx.extras` holds
  the state's adaptive values (BEGAN's k_t, the path-length mean), `ctx.step` the step counter,
  `ctx.batch_size` the number of examples a `prepare` call makes (the global batch / grad_accum).
  """

  def __init__(self, specs: dict[str, nets_lib.NetSpec], normalized: dict[str, PyTree],
               batch_stats: dict[str, PyTree], trained: tuple[str, ...], extras: dict[str, jax.Array],
               step: jax.Array):
    self.specs = specs
    self._normalized = normalized
    self.batch_stats = dict(batch_stats)
    self.trained = trained
    self.extras = extras
    self.step = step
    self.shard = lambda x: x   # `prepare` shards arrays it makes itself (latents) with this
    self.batch_size = 0        # set by the step for `prepare`

  def params(self, name: str) -> PyTree:
    """Normalized params of network `name` (what `apply` uses)."""
    return self._normalized[name]

  def apply(self, name: str, *inputs: Any, train: bool = True, rng: jax.Array | None = None,
            update_stats: bool | None = None, **kwargs: Any) -> Any:
    """Output of network `name`; its running statistics advance when it is trained and train=True
    (`update_stats=False` evaluates with batch statistics but keeps the running ones)."""
    spec = self.specs[name]
    out, bs = nets_lib.forward(spec, self._normalized[name], self.batch_stats[name], *inputs,
                               train=train, rng=rng, dtype=spec.dtype, **kwargs)
    keep = name in self.trained if update_stats is None else update_stats and name in self.trained
    if keep:
      self.batch_stats[name] = bs
    return out


def _frozen_context(method, state: TrainState, names) -> Context:
  specs = method.nets
  normalized = {n: nets_lib.normalize(specs[n], state.nets[n].params, state.nets[n].sn, update=False)[0]
                for n in names}
  return Context(specs, normalized, {n: state.nets[n].batch_stats for n in names}, (), state.extras, state.step)


# ---------------------------------------------------------------------------------------------
# Micro-batches and loops.

def _micro(x: Any, k: int) -> Any:
  """[B, ...] -> [k, B/k, ...] with micro-batch j = examples j, j+k, ... (keeps each device's rows local)."""
  return jax.tree.map(lambda a: jnp.swapaxes(a.reshape(a.shape[0] // k, k, *a.shape[1:]), 0, 1), x)


def scan(body: Callable, carry: PyTree, xs: PyTree) -> tuple[PyTree, PyTree]:
  """`jax.lax.scan(body, carry, xs)`, unrolled into straight-line code on the CPU backend.

  For speed: XLA:CPU (jaxlib 0.10) does not canonicalize convolutions inside while-loop bodies, so
  their kernel gradients (non-canonical dimension labels) fall back to a naive loop nest: a DCGAN
  step inside `lax.scan` took 90-150 s instead of ~1.5 s (experiments/benchmark.py; a length-1 scan
  of one conv's gradient: 16 s vs 0.1 s). Unrolling gives the same values and only costs compile
  time (the loops here are repeats and micro-batches: a handful of iterations). Other backends
  keep the compact `lax.scan`.

  Memory: only the while loop of `lax.scan` makes iterations reuse one iteration's buffers. The
  unrolled micro-batches are independent computations that XLA:CPU's scheduler interleaves, so on
  CPU `train.grad_accum` does not lower peak memory (DCGAN tiny, batch 32 in 4 micro-batches:
  2.8 MB of temporaries unrolled, 0.39 MB in `lax.scan`, 0.49 MB for batch 8 without
  accumulation; `optimization_barrier` does not help: XLA:CPU removes barriers before it
  schedules). Accumulation is for accelerator memory; tests/test_large_batch.py checks the loop.
  """
  if jax.default_backend() != "cpu":
    return jax.lax.scan(body, carry, xs)
  n = jax.tree.leaves(xs)[0].shape[0]
  ys = []
  for i in range(n):
    carry, y = body(carry, jax.tree.map(lambda a: a[i], xs))
    ys.append(y)
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)


def accumulate_grads(loss_fn: Callable, params: PyTree, carry: PyTree, prepare: Callable, data: PyTree,
                     key: jax.Array, k: int, once: bool = False):
  """Mean loss, mean gradient and final carry of `loss_fn(params, carry, inputs) -> (loss, (carry, metrics))`
  over one update whose inputs `prepare(data, key) -> (inputs, keys)` makes (`loss_fn` sees the two merged).

  k == 1: `prepare` runs once on the whole batch, then plain `value_and_grad`. Otherwise `data`
  (batch-major leaves, or None) is split into k micro-batches and `key` into k keys, and the loop
  (`scan`) prepares micro-batch j from its slice and key j inside its body, then differentiates,
  carrying e.g. BatchNorm statistics from one micro-batch to the next: in `lax.scan` only one
  micro-batch's prepared inputs (fakes) and activations are alive at a time. With `once`, `prepare` runs on the
  whole batch and its outputs are split instead (inputs into micro-batches, each key into k keys).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    inputs, keys = prepare(data, key)
    (loss, (carry, metrics)), grads = grad_fn(params, carry, {**inputs, **keys})
    return loss, grads, carry, metrics

  def body(acc, micro):
    if once:
      inp = micro
    else:
      inputs, keys = prepare(*micro)
      inp = {**inputs, **keys}
    carry, grad_sum = acc
    (loss, (carry, metrics)), grads = grad_fn(params, carry, inp)
    return (carry, jax.tree.map(jnp.add, grad_sum, grads)), (loss, metrics)

  zeros = jax.tree.map(jnp.zeros_like, params)
  if once:
    inputs, keys = prepare(data, key)
    micro_keys = {n: jax.random.split(v, k) for n, v in keys.items()}
    xs = {**_micro(inputs, k), **micro_keys}
  else:
    xs = (_micro(data, k), jax.random.split(key, k))
  (carry, grad_sum), (losses, metrics) = scan(body, (carry, zeros), xs)
  grads = jax.tree.map(lambda g: g / k, grad_sum)
  return losses.mean(), grads, carry, jax.tree.map(jnp.mean, metrics)


def to_float_pixels(tree: PyTree) -> PyTree:
  """uint8 leaves -> float32 in [-1, 1] (exactly `ganzoo.data.to_float`); other leaves unchanged."""
  table = jnp.asarray(PIXEL_TABLE)
  return jax.tree.map(lambda a: table[a.astype(jnp.int32)] if a.dtype == jnp.uint8 else a, tree)


# ---------------------------------------------------------------------------------------------
# One update of one phase.

def _phase_update(method, phase: Phase, state: TrainState, data: Any, key: jax.Array, k: int,
                  shard: Callable, fsdp: "_Fsdp | None" = None) -> tuple[TrainState, Metrics]:
  specs = method.nets
  trained = phase.trains
  others = tuple(n for n in specs if n not in trained)
  stored = state   # FSDP: the optimizer updates the stored (sharded) params with gradients sharded alike
  if fsdp is not None:
    state = fsdp.gather(state)
  frozen = _frozen_context(method, state, tuple(specs))
  frozen.shard = shard
  once = k == 1 or phase.prepare_once
  frozen.batch_size = method.batch_size if once else method.batch_size // k

  if phase.prepare_extras and not phase.prepare_once:
    raise ValueError(f"phase {phase.name!r}: prepare_extras needs prepare_once (one preparation per update)")
  new_extras = []

  def prepare(d, key):
    d = to_float_pixels(d)   # k > 1: pixels of this micro-batch only (k == 1: converted by the step)
    if phase.prepare is not None:
      out = phase.prepare(frozen, d, key)
      if phase.prepare_extras:
        out, extras = out[:2], out[2]
        new_extras.append(extras)
      inputs, keys = out
    else:
      inputs, keys = ({} if d is None else dict(d)), {"rng": key}
    return {n: shard(v) for n, v in inputs.items()}, keys

  if once:   # prepared first, before the power iteration: at k == 1 the program of the step before
    prepared = prepare(data, key)   # micro-batch preparation, op for op
    prepare = lambda d, key: prepared
    if new_extras:
      state = state.replace(extras=new_extras[0])
  new_sn = {n: nets_lib.normalize(specs[n], state.nets[n].params, state.nets[n].sn, update=True)[1] for n in trained}
  frozen_norm = {n: frozen.params(n) for n in others}

  rule = getattr(method, "loss_scale", None)   # float16: dynamic loss scaling (ganzoo.precision)
  loss_scale = state.extras[precision.LOSS_SCALE] if rule is not None else None
  good_updates = state.extras[precision.LOSS_SCALE_GOOD] if rule is not None else None

  def loss_fn(params, carry, inp):
    bs, sn_state = carry
    normalized = {n: nets_lib.normalize(specs[n], params[n], sn_state[n], update=False)[0] for n in trained}
    ctx = Context(specs, {**frozen_norm, **normalized}, {**{n: state.nets[n].batch_stats for n in others}, **bs},
                  trained, state.extras, state.step)
    loss, metrics = phase.loss(ctx, inp)
    if phase.scale != 1.0:
      loss = loss * phase.scale
    for n in trained:
      if specs[n].ortho:
        loss = loss + specs[n].ortho * regularizers.orthogonal_regularization(params[n])
    if loss_scale is not None:
      loss = loss * loss_scale
    return loss, (({n: ctx.batch_stats[n] for n in trained}, sn_state), metrics)

  params = {n: state.nets[n].params for n in trained}
  carry = ({n: state.nets[n].batch_stats for n in trained}, new_sn)
  _, grads, (bs, sn_state), metrics = accumulate_grads(loss_fn, params, carry, prepare, data, key, k,
                                                       once=phase.prepare_once)
  if fsdp is not None:
    grads = fsdp.scatter(grads)
    state = stored.replace(extras=state.extras)   # the stored nets, the extras `prepare` may have made
  if loss_scale is not None:
    grads = jax.tree.map(lambda g: g / loss_scale, grads)
    finite = precision.all_finite(grads)
  new_nets = dict(state.nets)
  for n in trained:
    new_nets[n] = nets_lib.apply_grads(specs[n], state.nets[n], grads[n], state.step, bs[n], sn_state[n],
                                       update_ema=phase.ema)
    if loss_scale is not None:   # a non-finite gradient skips the update: the network as it was
      new_nets[n] = precision.select(finite, new_nets[n], state.nets[n])
  metrics = dict(metrics)
  metrics[f"{phase.name}_grad_norm"] = nets_lib.global_norm(grads)
  if loss_scale is not None:
    # A skip is the scale's business while it can still fall: its non-finite values read as 0 so the
    # run's NaN stop ignores them; at the minimum scale they pass through and stop the run.
    masked = ~finite & (loss_scale > rule.minimum)
    metrics = {n: jnp.where(masked, jnp.zeros_like(v), v) for n, v in metrics.items()}
    metrics[f"{phase.name}_skipped"] = (~finite).astype(jnp.float32)
    metrics["loss_scale"] = loss_scale
  state = state.replace(nets=new_nets)
  if phase.after is not None:
    state = state.replace(extras=phase.after(state.extras, metrics, state.step))
  if loss_scale is not None:
    state = state.replace(extras={**state.extras, **precision.update_scale(loss_scale, good_updates, finite, rule)})
  return state, metrics


class _Fsdp(NamedTuple):
  """The explicit collectives of a sharded state (ZeRO-3: gather the weights, scatter their gradients).

  `gather` constrains every network's params to replicated where a phase uses them (XLA's
  all-gather); `scatter` constrains their gradients to the params' own shardings before the optimizer
  (the all-reduce of the batch sum becomes a reduce-scatter), so each device updates only its shard
  of params, moments and EMA. Left to sharding propagation alone (only the step's in/out shardings),
  XLA:CPU (jaxlib 0.10) partitioned BigGAN tiny's sharded G params with `grad_accum=2` on the (4, 2)
  mesh into a step whose results differed from 1 device's by 1e-3 relative in float64 (Adam moments
  of D and G; with G's params replicated, or at grad_accum=1, they agreed within 1e-9). With the
  weights gathered, the forward and backward are the data-parallel computation and only the
  gradient reduction changes. With this code, that BigGAN step aborts jaxlib 0.10.2's partitioner
  in float64 (`spmd_partitioner_util.h` CHECK `IsScalarWithElementType`); in float32 one SGD step
  of it equals the 8-device data-parallel step to rounding (largest difference 1.8e-7 on an SN
  vector of norm 0.74), checked by hand, not by a test. Memory: the gathered params live for the phase's forward and backward, as in
  ZeRO-3 without re-sharding between layers; between steps, and for the optimizer state and EMA
  always, a device holds 1/F.
  """
  param_shardings: dict[str, Any]
  replicated: Any

  def gather(self, state: TrainState) -> TrainState:
    nets = {n: net.replace(params=jax.lax.with_sharding_constraint(net.params, self.replicated))
            for n, net in state.nets.items()}
    return state.replace(nets=nets)

  def scatter(self, grads: dict[str, PyTree]) -> dict[str, PyTree]:
    return {n: jax.lax.with_sharding_constraint(g, self.param_shardings[n]) for n, g in grads.items()}


def default_state_sharding(method, mesh: Mesh, min_size: int = parallel.FSDP_MIN_SIZE) -> Any:
  """Where the step keeps the state when the caller does not say (and where a run keeps it,
  `train.state_sharding`): replicated on a mesh without an 'fsdp' axis (the single sharding, as
  before FSDP existed), else `parallel.state_shardings` of the family's initial state with leaves of
  at least `min_size` elements sharded (shapes only: `jax.eval_shape`, which no seed changes)."""
  if parallel.fsdp_size(mesh) == 1:
    return parallel.replicated(mesh)
  return parallel.state_shardings(jax.eval_shape(method.init, jax.random.PRNGKey(0)), mesh, int(min_size))


def make_step(method, plan: StepPlan, mesh: Mesh | None = None, jit: bool = True, donate: bool = True,
              grad_accum: int | None = None, state_sharding: Any = None):
  """Returns `step(state, batch) -> (state, metrics)` running `plan`'s phases in order.

  `batch` = {stream: {field: [n, B, ...]}} with n = `stream_counts(plan)[stream]` and B the global
  batch; the step is jitted with batches sharded over the mesh's batch axes (axis 1; 'data', or
  ('data', 'fsdp')) and the state in and out at `state_sharding` (a sharding or a tree of them,
  `parallel.state_shardings`; default `default_state_sharding`: replicated without FSDP).
  Metrics are float32 scalars 'train/<name>', each the mean over its phase's repeats.
  """
  k = int(method.grad_accum if grad_accum is None else grad_accum)
  counts = stream_counts(plan)
  if mesh is not None and state_sharding is None:
    state_sharding = default_state_sharding(method, mesh)
  fsdp = None   # without an 'fsdp' axis: no constraint, the program it was before FSDP
  if mesh is not None and parallel.fsdp_size(mesh) > 1:
    fsdp = _Fsdp({n: state_sharding.nets[n].params for n in method.nets}, parallel.replicated(mesh))

  def shard(x):
    if mesh is None or x is None:
      return x
    return jax.lax.with_sharding_constraint(x, parallel.batch_sharding(mesh))

  def step(state: TrainState, batch: dict[str, Any]) -> tuple[TrainState, Metrics]:
    for name, n in counts.items():
      if name not in batch:
        raise ValueError(f"the batch has no stream {name!r}; this plan reads {sorted(counts)}")
      got = jax.tree.leaves(batch[name])[0].shape[0]
      if got != n:
        raise ValueError(f"stream {name!r} delivered {got} batches; this plan needs {n} (its phases' repeats)")
    if k == 1:   # with micro-batches, each micro-batch's pixels are converted when it is prepared
      batch = to_float_pixels(batch)
    rng = jax.random.fold_in(state.rng, state.step)
    all_metrics: Metrics = {}
    for phase in plan.phases:
      key = jax.random.fold_in(rng, phase.key_constant)
      data = None
      if phase.stream is not None:
        read = batch[phase.stream] if isinstance(phase.stream, str) else {n: batch[n] for n in phase.stream}
        data = jax.tree.map(lambda a, r=phase.repeats: a[a.shape[0] - r:], read)

      def body(st, xs, phase=phase):
        d, key = xs
        return _phase_update(method, phase, st, d, key, k, shard, fsdp)

      state, metrics = scan(body, state, (data, jax.random.split(key, phase.repeats)))
      all_metrics.update({f"train/{n}": v.mean() for n, v in metrics.items()})
    return state.replace(step=state.step + 1), all_metrics

  if not jit:
    return step
  if mesh is None:
    return jax.jit(step, donate_argnums=(0,) if donate else ())
  return jax.jit(step, in_shardings=(state_sharding, parallel.batch_sharding(mesh, 1)),
                 out_shardings=(state_sharding, parallel.replicated(mesh)),
                 donate_argnums=(0,) if donate else ())


class StepCache:
  """One compiled step per distinct plan, built on first use (`steps(plan)`); every plan's step keeps
  the state at `state_sharding` (see `make_step`)."""

  def __init__(self, method, mesh: Mesh | None = None, donate: bool = True, state_sharding: Any = None):
    self._method, self._mesh, self._donate = method, mesh, donate
    if mesh is not None and state_sharding is None:
      state_sharding = default_state_sharding(method, mesh)   # once, not once per plan
    self._state_sharding = state_sharding
    self._cache: dict[StepPlan, Callable] = {}

  def __call__(self, plan: StepPlan) -> Callable:
    fn = self._cache.get(plan)
    if fn is None:
      fn = self._cache[plan] = make_step(self._method, plan, self._mesh, donate=self._donate,
                                         state_sharding=self._state_sharding)
    return fn

  def __len__(self) -> int:
    return len(self._cache)
