"""The `gan` family's jitted step: determinism, accumulation, EMA, clipping, n_critic, lazy penalties."""

import contextlib
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import parallel
from ganzoo import step as step_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str = "tiny"):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def make_batch(config, image_shape, seed=0, num_classes=10, count=None):
  """{'real': uint8 images [count, B, ...] and labels [count, B]} (count = train.d_steps)."""
  rng = np.random.default_rng(seed)
  d, b = count or config.train.d_steps, config.data.batch_size
  return {"real": {"image": rng.integers(0, 256, (d, b, *image_shape), dtype=np.uint8),
                   "label": rng.integers(0, num_classes, (d, b)).astype(np.int32)}}


def build(config, image_shape, num_classes=0):
  return methods.build(config, methods.DataSpec(tuple(image_shape), num_classes))


def as_float64(tree):
  """Floating leaves -> float64 (inside `jax.enable_x64(True)`); other leaves unchanged."""
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def float64_mode(enabled: bool = True):
  """A context in which a float64 state computes in float64 (`jax_enable_x64`, restored on exit)."""
  return jax.enable_x64(True) if enabled else contextlib.nullcontext()


def run_steps(config, image_shape, mesh, n=2, num_classes=0, seed=0, edit=None, float64=False):
  """n steps of the gan family on `make_batch` batches; returns (host state, [metrics]).
  `edit(method)` may change the built method (its phases) before the run. `float64`: the initial
  state (made in float32 as always) is cast to float64 and every step computes in float64."""
  gan = build(config, image_shape, num_classes)
  if edit is not None:
    edit(gan)
  state = gan.init(jax.random.PRNGKey(config.seed))
  with float64_mode(float64):
    state = parallel.replicate(as_float64(state) if float64 else state, mesh)
    cache = step_lib.StepCache(gan, mesh, donate=False)
    all_metrics = []
    for i in range(n):
      plan = gan.plan(i)
      count = step_lib.stream_counts(plan)["real"]
      batch = parallel.global_batch(make_batch(config, image_shape, seed + i, max(num_classes, 1), count), mesh)
      state, metrics = cache(plan)(state, batch)
      all_metrics.append(jax.device_get(metrics))
    return jax.device_get(state), all_metrics


# Float64 device-count comparisons (8 devices == 1 device): the two runs differ only in summation
# order. A reordered sum of n terms differs by at most ~n * u * sum|terms| (u = 1.1e-16 in
# float64): <= ~1e-12 relative for the n <= 1e4 terms of these tiny models' reductions, and a few
# layers and updates multiply that by a modest factor. Adam multiplies the noise of a gradient whose
# true value is 0 (a bias before BatchNorm) by lr / eps: <= 200 in BigGAN tiny, and the families'
# test models have no such leaf. FLOAT64_TOL = 1e-9 is above all that (seen: <= 1e-14 of the
# state's scale), and far below a real difference (a missing all-reduce: > 1e-6, test_families.py).
# In float32 (u = 6e-8) the same comparisons needed tolerances tuned to one machine.
FLOAT64_TOL = 1e-9


def assert_float64_close(a, b, tol=FLOAT64_TOL):
  """Every float leaf of two float64 pytrees within `tol`, relative to the leaf's scale (rtol),
  or absolutely for leaves near 0 (atol `tol` times the largest magnitude in the tree, so a leaf
  whose true value is 0, e.g. a bias before BatchNorm, compares at the tree's rounding scale)."""
  leaves = [np.asarray(x) for x in jax.tree.leaves(a) if np.issubdtype(np.asarray(x).dtype, np.floating)]
  assert all(x.dtype == np.float64 for x in leaves), "the run did not compute in float64"
  scale = max([float(np.abs(x).max()) for x in leaves if x.size] + [1.0])
  assert_trees_close(a, b, rtol=tol, atol=tol * scale)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
  flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
  assert tree_a == tree_b
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def prepare_as_micro_batches(k: int):
  """`edit` for `run_steps`: each phase's `prepare` makes the whole batch as a grad_accum=k step
  makes its k micro-batches (micro-batch j: examples j, j+k, ... of the stream's batch, key j of
  split(key, k), `ctx.batch_size` / k examples) and interleaves them back into one batch.

  A grad_accum=1 run of the edited method differentiates, in one batch, exactly the examples that
  a grad_accum=k run differentiates in k micro-batches, including fakes that a G with BatchNorm
  normalized per micro-batch, so accumulation can be compared with one large batch. The keys
  returned for the loss are those of micro-batch 0: the models compared here draw no randomness
  in their losses (no dropout, no penalty)."""

  def wrap(prepare):
    def prepare_k(ctx, data, key):
      size = ctx.batch_size
      ctx.batch_size = size // k
      parts = [prepare(ctx, jax.tree.map(lambda a, j=j: a[j::k], data), key_j)
               for j, key_j in enumerate(jax.random.split(key, k))]
      ctx.batch_size = size
      merge = lambda *xs: None if xs[0] is None else jnp.stack(xs, 1).reshape(-1, *xs[0].shape[1:])
      inputs = {n: merge(*[p[0][n] for p in parts]) for n in parts[0][0]}
      return inputs, parts[0][1]
    return prepare_k

  def edit(method):
    method.phases = tuple(p._replace(prepare=wrap(p.prepare)) for p in method.phases)
  return edit


def test_step_is_deterministic_and_changes_params():
  config = load_config("dcgan")
  mesh = parallel.make_mesh(jax.devices()[:1])
  a, ma = run_steps(config, (28, 28, 1), mesh)
  b, mb = run_steps(config, (28, 28, 1), mesh)
  assert_trees_close(a, b, rtol=0, atol=0)
  init = build(config, (28, 28, 1)).init(jax.random.PRNGKey(config.seed))
  assert int(a.step) == 2
  delta = jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), a.nets["g"].params, init.nets["g"].params)
  assert max(jax.tree.leaves(delta)) > 0
  for m in ma:
    assert set(m) >= {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"}
    assert all(np.isfinite(v) for v in m.values())


def test_grad_accumulation_equals_large_batch():
  """4 micro-batches of 8 == one batch of 32 of the same examples for a GAN without batch
  statistics (MLP G, SN-MLP D). Each micro-batch draws its own latents (`prepare` runs per
  micro-batch), so the large batch is made of the same 4 preparations (`prepare_as_micro_batches`).

  Both runs compute the same sums in a different order (float32): the gradients differ by
  ~1e-7 relative, and two Adam steps with b1=0 (lr * g / (sqrt(v) + eps)) keep that relative
  size, so rtol 2e-5 leaves two orders of magnitude of headroom."""
  config = load_config("gan")
  config.data.batch_size = 32
  config.nets.d.sn.enabled = True
  for net in ("g", "d"):
    config.nets[net].optim.update(dict(name="adam", lr=1e-3, b1=0.0, b2=0.9, eps=1e-8, decay="none"))
  mesh = parallel.make_mesh(jax.devices()[:1])
  full, m_full = run_steps(config, (28, 28, 1), mesh, n=2, edit=prepare_as_micro_batches(4))
  config.train.grad_accum = 4
  acc, m_acc = run_steps(config, (28, 28, 1), mesh, n=2)
  assert_trees_close(full, acc, rtol=2e-5, atol=2e-6)
  for k in ("train/d_loss", "train/g_loss"):
    np.testing.assert_allclose(m_full[-1][k], m_acc[-1][k], rtol=1e-5)


def test_n_critic_ema_and_clipping():
  config = load_config("wgan")          # clip 0.01, n_critic 5
  config.nets.g.ema.decay = 0.9
  for net in ("g", "d"):                # Adam instead of RMSprop: its state counts the updates
    config.nets[net].optim.update(dict(name="adam", lr=5e-5, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  mesh = parallel.make_mesh(jax.devices()[:1])
  gan = build(config, (28, 28, 1))
  state0 = gan.init(jax.random.PRNGKey(0))
  step = step_lib.make_step(gan, gan.plan(0), mesh, donate=False)
  batch = parallel.global_batch(make_batch(config, (28, 28, 1)), mesh)
  assert batch["real"]["image"].shape[0] == 5
  state1, _ = step(state0, batch)
  d1, g1 = state1.nets["d"], state1.nets["g"]
  # Every D leaf is clipped to [-c, c].
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(d1.params)) <= 0.01 + 1e-7
  # The D optimizer counted 5 updates, the G optimizer 1.
  d_counts = [int(x) for x in jax.tree.leaves(d1.opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  g_counts = [int(x) for x in jax.tree.leaves(g1.opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  assert d_counts and all(c == 5 for c in d_counts), d_counts
  assert g_counts and all(c == 1 for c in g_counts), g_counts
  # EMA: ema1 = 0.9 * ema0 + 0.1 * g1, and ema0 = g0; the EMA of BN statistics follows the same rule.
  g0 = state0.nets["g"]
  expected = jax.tree.map(lambda e, g: 0.9 * e + 0.1 * g, g0.params, g1.params)
  assert_trees_close(jax.device_get(g1.ema), jax.device_get(expected), rtol=1e-6, atol=1e-7)
  expected_bs = jax.tree.map(lambda e, g: 0.9 * e + 0.1 * g, g0.batch_stats, g1.batch_stats)
  assert jax.tree.leaves(g0.batch_stats), "the DCGAN G has BatchNorm"
  assert_trees_close(jax.device_get(g1.ema_batch_stats), jax.device_get(expected_bs), rtol=1e-6, atol=1e-7)
  # D has no EMA: no second copy of its params.
  assert d1.ema == {} and d1.ema_batch_stats == {}


def test_ema_generator_samples_with_ema_statistics():
  """Sampling the EMA generator uses the EMA of the BN statistics (not the raw G's running ones)."""
  config = load_config("dcgan")
  config.nets.g.ema.decay = 0.5
  gan = build(config, (28, 28, 1))
  state = gan.init(jax.random.PRNGKey(0))
  g = state.nets["g"]
  shifted = jax.tree.map(lambda a: a + 1.0, g.ema_batch_stats)
  z, _ = gan.fixed_inputs(0, 4)
  a = gan.generate(state, z)
  b = gan.generate(state.replace(nets={**state.nets, "g": g.replace(ema_batch_stats=shifted)}), z)
  c = gan.generate(state.replace(nets={**state.nets, "g": g.replace(batch_stats=shifted)}), z)
  assert float(jnp.abs(a - b).max()) > 1e-3      # the EMA statistics are used ...
  np.testing.assert_array_equal(np.asarray(a), np.asarray(c))   # ... and the raw ones are not


def test_lazy_penalty_runs_every_k_steps_scaled_and_rescales_adam():
  """R1 with every=4 (StyleGAN2's lazy regularization): a separate d_reg update at steps 0, 4, ...;
  its loss is 4 x the penalty; D's Adam uses lr * 4/5 and betas ** (4/5)."""
  config = load_config("gan")
  config.data.batch_size = 8
  config.penalties.r1 = dict(weight=5.0, every=4)
  config.nets.d.optim.update(dict(name="adam", lr=2e-4, b1=0.0, b2=0.99))
  gan = build(config, (28, 28, 1))
  plans = [gan.plan(s) for s in range(6)]
  assert [tuple(p.name for p in plan.phases) for plan in plans] == [
      ("d", "d_reg", "g"), ("d", "g"), ("d", "g"), ("d", "g"), ("d", "d_reg", "g"), ("d", "g")]
  reg = plans[0].phases[1]
  assert reg.scale == 4.0 and reg.repeats == 1 and reg.stream == "real"
  # Two compiled steps cover every plan; D's optimizer counts the extra update.
  mesh = parallel.make_mesh(jax.devices()[:1])
  state, metrics = run_steps(config, (28, 28, 1), mesh, n=5)
  assert "train/reg_penalty" in metrics[0] and "train/reg_penalty" not in metrics[1]
  counts = [int(x) for x in jax.tree.leaves(state.nets["d"].opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  assert counts and all(c == 5 + 2 for c in counts), counts
  # Adam hyper-parameters: one update from zero moments moves a leaf by lr' * g / (|g| + eps) = lr'.
  spec = gan.nets["d"]
  params = {"w": jnp.ones((3,))}
  updates, _ = spec.tx.update({"w": jnp.array([1.0, -2.0, 3.0])}, spec.tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["w"]), -2e-4 * 0.8 * np.sign([1.0, -2.0, 3.0]), rtol=1e-5)


def test_penalty_uses_the_labels_of_the_images_it_penalizes():
  """R2 is evaluated on fakes with the fake labels: with a projection D whose class embedding
  dominates, the value differs from R2 with the real labels and equals a hand computation."""
  config = load_config("sngan_projection")
  config.penalties.r2 = dict(weight=1.0, every=1)
  gan = build(config, (32, 32, 3), 10)
  state = gan.init(jax.random.PRNGKey(0))
  ctx = step_lib._frozen_context(gan, state, ("g", "d"))  # pylint: disable=protected-access
  ctx.trained = ("d",)
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.uniform(-1, 1, (8, 32, 32, 3)), jnp.float32)
  fake = jnp.asarray(rng.uniform(-1, 1, (8, 32, 32, 3)), jnp.float32)
  inp = {"real": real, "fake": fake, "real_y": jnp.zeros(8, jnp.int32), "fake_y": jnp.arange(8, dtype=jnp.int32),
         "rng_penalty": jax.random.PRNGKey(1), "drop_real": jax.random.PRNGKey(2)}
  metrics = {}
  value = gan._penalty_terms(ctx, gan.penalties, inp, metrics)  # pylint: disable=protected-access

  def r2(labels):
    d_fn = lambda x: gan.discriminate(state, x, labels)
    g = jax.grad(lambda x: d_fn(x).sum())(fake)
    return float(jnp.mean(jnp.sum(g.reshape(8, -1) ** 2, axis=1)))

  np.testing.assert_allclose(float(value), r2(inp["fake_y"]), rtol=1e-4)
  assert abs(r2(inp["fake_y"]) - r2(inp["real_y"])) > 1e-3 * abs(r2(inp["fake_y"]))


def test_penalty_on_a_batchnorm_discriminator_is_refused():
  config = load_config("dcgan")          # DCGAN's D has BatchNorm
  config.penalties.gradient_penalty = dict(weight=10.0, every=1)
  with pytest.raises(ValueError, match="BatchNorm in D"):
    build(config, (28, 28, 1)).init(jax.random.PRNGKey(0))


def test_wrong_number_of_real_batches_is_an_error():
  config = load_config("wgan")
  gan = build(config, (28, 28, 1))
  state = gan.init(jax.random.PRNGKey(0))
  step = step_lib.make_step(gan, gan.plan(0), None, donate=False)
  batch = make_batch(config, (28, 28, 1))
  batch["real"] = {k: v[:2] for k, v in batch["real"].items()}
  with pytest.raises(ValueError, match="stream 'real' delivered 2 batches; this plan needs 5"):
    step(state, batch)


def test_batch_not_divisible_by_devices():
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    parallel.check_batch_size(12, parallel.make_mesh(jax.devices()))


def test_constant_then_linear_decay():
  """decay_start: the rate stays at lr for decay_start steps, then falls linearly to 0 at the end."""
  from ganzoo import nets as nets_lib  # pylint: disable=g-import-not-at-top
  cfg = nets_lib.net_config(lr=1.0, decay="linear", decay_start=100).optim
  sched = nets_lib.learning_rate(cfg, 200, decay_start=100)
  np.testing.assert_allclose([float(sched(s)) for s in (0, 99, 100, 150, 199, 200)],
                             [1.0, 1.0, 1.0, 0.5, 0.01, 0.0], atol=1e-6)
  with pytest.raises(ValueError, match="decay_start"):
    nets_lib.learning_rate(cfg, 100, decay_start=100)
