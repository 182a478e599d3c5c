"""The jitted GAN step: determinism, data parallelism, accumulation, EMA, clipping, n_critic."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import parallel
from ganzoo import steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str = "tiny"):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def make_batch(config, image_shape, seed=0, num_classes=10):
  rng = np.random.default_rng(seed)
  d, b = config.train.d_steps, config.data.batch_size
  return {"image": rng.uniform(-1, 1, (d, b, *image_shape)).astype(np.float32),
          "label": rng.integers(0, num_classes, (d, b)).astype(np.int32)}


def run_steps(config, image_shape, mesh, n=2, num_classes=0, seed=0):
  gan = steps.build(config, image_shape, num_classes)
  state = parallel.replicate(steps.init_state(gan, jax.random.PRNGKey(config.seed)), mesh)
  step = steps.make_train_step(gan, mesh, donate=False)
  all_metrics = []
  for i in range(n):
    batch = parallel.global_batch(make_batch(config, image_shape, seed + i, max(num_classes, 1)), mesh)
    state, metrics = step(state, batch)
    all_metrics.append(jax.device_get(metrics))
  return jax.device_get(state), all_metrics


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
  flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
  assert tree_a == tree_b
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name,shape", [("dcgan", (32, 32, 3)), ("sngan", (32, 32, 3))])
def test_eight_devices_equal_one_device(name, shape):
  """One step on 8 devices (global batch sharded, cross-replica BN) equals the 1-device step.

  Adam's eps is raised to 1e-3 here. G's biases upstream of its last BatchNorm (SNGAN's and
  BigGAN's block convs, as in the authors' code) are cancelled by that BatchNorm: their true
  gradient is 0 and the computed one is rounding noise (~1e-9) whose sign depends on the summation
  order. Adam with eps=1e-8 turns that noise into +-lr steps, so those (output-neutral) leaves would
  differ by 2*lr between device counts. eps=1e-3 makes such steps vanish; every other leaf and
  every computation of the step is compared as is.
  """
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config = load_config(name)
  config.data.batch_size = 16
  for net in ("g", "d"):
    config.optim[net].eps = 1e-3
  one, m1 = run_steps(config, shape, parallel.make_mesh(jax.devices()[:1]), n=1)
  eight, m8 = run_steps(config, shape, parallel.make_mesh(jax.devices()), n=1)
  assert_trees_close(one, eight)
  for k in m1[0]:
    np.testing.assert_allclose(m1[0][k], m8[0][k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_step_is_deterministic_and_changes_params():
  config = load_config("dcgan")
  mesh = parallel.make_mesh(jax.devices()[:1])
  a, ma = run_steps(config, (28, 28, 1), mesh)
  b, mb = run_steps(config, (28, 28, 1), mesh)
  assert_trees_close(a, b, rtol=0, atol=0)
  gan = steps.build(config, (28, 28, 1))
  init = steps.init_state(gan, jax.random.PRNGKey(config.seed))
  assert int(a.step) == 2
  delta = jax.tree.map(lambda x, y: float(jnp.abs(x - y).max()), a.g_params, init.g_params)
  assert max(jax.tree.leaves(delta)) > 0
  for m in ma:
    assert set(m) >= {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"}
    assert all(np.isfinite(v) for v in m.values())


def test_grad_accumulation_equals_large_batch():
  """4 micro-batches of 8 == one batch of 32 (no batch statistics: SNGAN CNN D has no BN,
  and G's BN only sees its own micro-batch, so compare the D update of a hinge/SN model with
  a G without BN: the MLP)."""
  config = load_config("gan")
  config.data.batch_size = 32
  config.sn.d = True
  for net in ("g", "d"):
    config.optim[net] = dict(name="adam", lr=1e-3, b1=0.0, b2=0.9, eps=1e-8, decay="none")
  mesh = parallel.make_mesh(jax.devices()[:1])
  full, m_full = run_steps(config, (28, 28, 1), mesh, n=2)
  config.train.grad_accum = 4
  acc, m_acc = run_steps(config, (28, 28, 1), mesh, n=2)
  assert_trees_close(full, acc, rtol=2e-5, atol=2e-6)
  for k in ("train/d_loss", "train/g_loss"):
    np.testing.assert_allclose(m_full[-1][k], m_acc[-1][k], rtol=1e-5)


def test_n_critic_ema_and_clipping():
  config = load_config("wgan")          # clip 0.01, n_critic 5
  config.train.ema_decay = 0.9
  for net in ("g", "d"):                # Adam instead of RMSprop: its state counts the updates
    config.optim[net] = dict(name="adam", lr=5e-5, b1=0.5, b2=0.999, eps=1e-8, decay="none")
  mesh = parallel.make_mesh(jax.devices()[:1])
  gan = steps.build(config, (28, 28, 1))
  state0 = steps.init_state(gan, jax.random.PRNGKey(0))
  step = steps.make_train_step(gan, mesh, donate=False)
  batch = parallel.global_batch(make_batch(config, (28, 28, 1)), mesh)
  assert batch["image"].shape[0] == 5
  state1, _ = step(state0, batch)
  # Every D leaf is clipped to [-c, c].
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(state1.d_params)) <= 0.01 + 1e-7
  # The D optimizer counted 5 updates, the G optimizer 1.
  d_counts = [int(x) for x in jax.tree.leaves(state1.d_opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  g_counts = [int(x) for x in jax.tree.leaves(state1.g_opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  assert d_counts and all(c == 5 for c in d_counts), d_counts
  assert g_counts and all(c == 1 for c in g_counts), g_counts
  # EMA: ema1 = 0.9 * ema0 + 0.1 * g1, and ema0 = g0.
  expected = jax.tree.map(lambda e, g: 0.9 * e + 0.1 * g, state0.g_params, state1.g_params)
  assert_trees_close(jax.device_get(state1.ema_params), jax.device_get(expected), rtol=1e-6, atol=1e-7)


def test_wrong_number_of_real_batches_is_an_error():
  config = load_config("wgan")
  gan = steps.build(config, (28, 28, 1))
  state = steps.init_state(gan, jax.random.PRNGKey(0))
  step = steps.make_train_step(gan, None, donate=False)
  batch = make_batch(config, (28, 28, 1))
  batch["image"] = batch["image"][:2]
  with pytest.raises(ValueError, match="train.d_steps=5"):
    step(state, batch)


def test_batch_not_divisible_by_devices():
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    parallel.check_batch_size(12, parallel.make_mesh(jax.devices()))
