"""Large-batch BigGAN: 8 devices == 1 device, gradient accumulation == one large batch, and
accumulation divides the memory of a step.

The existing tests/test_steps.py::test_grad_accumulation_equals_large_batch covers the whole step
(G and D) for a model without batch statistics (MLP G, SN-MLP D). A BigGAN G has BatchNorm, whose
statistics are per micro-batch under accumulation (as in BigGAN-PyTorch), so only its D update is
exact; that is what the second test checks, on the BigGAN family's D (SN, self-attention,
projection, class labels), with G frozen (lr 0).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import parallel
from ganzoo import step as step_lib
from tests.test_steps import (FLOAT64_TOL, assert_float64_close, assert_trees_close, load_config,
                              prepare_as_micro_batches, run_steps)

SHAPE = (32, 32, 3)


def relative_error(a, b) -> float:
  """||a - b|| / ||b|| over all leaves of two pytrees taken as one vector."""
  x = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(a)])
  y = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(b)])
  return float(np.linalg.norm(x - y) / np.linalg.norm(y))


def tiny_biggan_init(config):
  return methods.build(config, methods.DataSpec(SHAPE, 10)).init(jax.random.PRNGKey(config.seed))


def tiny_biggan(batch_size: int, grad_accum: int = 1):
  config = load_config("biggan", "tiny")
  config.data.batch_size = batch_size
  config.train.grad_accum = grad_accum
  return config


def test_biggan_eight_devices_equal_one_device():
  """One BigGAN tiny step (2 D updates + 1 G update, SN in G and D, conditional BN, attention,
  ortho reg, EMA) with the global batch of 16 on 8 devices (cross-replica BN)
  == on 1 device, in float64, with BigGAN's own optimizer (Adam, eps 1e-6).

  In float64 the two runs differ only by reordered float64 sums (~1e-13, `FLOAT64_TOL`), so
  every leaf (params, Adam moments, SN vectors, BN statistics, EMA) must agree to 1e-9. In float32
  the reordering noise made this a tuned tolerance: BatchNorm cancels the G biases before `out_bn`
  (true gradient 0, float32 gradient ~1e-6 of noise) and Adam's first step lr * g / (|g| + eps)
  turned that noise into +-lr; in float64 the noise (~1e-15) is far below eps, so no eps change
  is needed."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config = tiny_biggan(16)
  one, m1 = run_steps(config, SHAPE, parallel.make_mesh(jax.devices()[:1]), n=1, num_classes=10, float64=True)
  eight, m8 = run_steps(config, SHAPE, parallel.make_mesh(jax.devices()), n=1, num_classes=10, float64=True)
  assert int(one.step) == int(eight.step) == 1
  assert_float64_close(one, eight)
  assert_float64_close(m1, m8)
  # The step did something: D moved by about lr.
  init = tiny_biggan_init(config)
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(one.nets["d"].params), jax.tree.leaves(init.nets["d"].params)))
  assert moved > 1e-5


def test_biggan_d_accumulation_equals_large_batch():
  """2 micro-batches of 8 == one batch of 16 of the same examples for BigGAN's D (no batch
  statistics): D's params, optimizer state and SN vectors agree after 2 steps of 1 D update. G is
  frozen, and the batch of 16 is prepared as the micro-batches are (`prepare_as_micro_batches`: G
  makes each micro-batch's fakes from its own latents, normalized by its BatchNorm per
  micro-batch), so both runs show D the same fakes. Two micro-batches exercise the same loop as
  more would (the accumulated sum, the carry from one micro-batch to the next, the mean over k);
  on CPU each micro-batch is unrolled (`step.scan`), so k = 4 compiled twice as long for nothing.
  One D update per step, not BigGAN's 2: every D update runs the same accumulation loop, and the
  second one doubled the unrolled program (34 s of compilation for each of the two runs).

  In float64, so the two summation orders differ by rounding alone (~1e-13, `FLOAT64_TOL`'s bound in
  tests/test_steps.py); in float32 the reordering noise (~1e-5 relative after 2 SGD steps) needed a
  tolerance tuned to one machine and one k."""
  mesh = parallel.make_mesh(jax.devices()[:1])
  runs = []
  for k in (1, 2):
    config = tiny_biggan(16, grad_accum=k)
    config.nets.g.optim.lr = 0.0
    config.nets.g.ortho = 0.0
    config.train.d_steps = 1
    # SGD with momentum for D: an update is linear in the gradient, so rounding differences stay
    # rounding-sized in the params (Adam's g / (sqrt(v) + eps) would scale a near-zero gradient's noise to lr).
    config.nets.d.optim.update(dict(name="sgd", lr=1e-2, momentum=0.9))
    edit = prepare_as_micro_batches(2) if k == 1 else None
    runs.append(run_steps(config, SHAPE, mesh, n=2, num_classes=10, edit=edit, float64=True))
  (full, m_full), (acc, m_acc) = runs
  assert int(full.step) == 2
  fd, ad = full.nets["d"], acc.nets["d"]
  assert_float64_close(fd.params, ad.params)
  assert relative_error(fd.opt_state, ad.opt_state) < FLOAT64_TOL
  assert_float64_close(fd.sn, ad.sn)
  assert_trees_close(full.nets["g"].params, acc.nets["g"].params, rtol=0, atol=0)
  for k in ("train/d_loss", "train/d_real", "train/d_fake"):
    np.testing.assert_allclose(m_full[-1][k], m_acc[-1][k], rtol=FLOAT64_TOL, atol=FLOAT64_TOL, err_msg=k)
  # G's BatchNorm sees micro-batches of 8 instead of 16, so its loss differs: the comparison above
  # is not vacuous for G-side quantities.
  assert abs(m_full[-1]["train/g_loss"] - m_acc[-1]["train/g_loss"]) > 1e-6


def _step_temp_bytes(batch_size: int, grad_accum: int) -> int:
  """XLA's temporary memory of one compiled DCGAN tiny step (G and D with BatchNorm, 32x32x3), with
  the micro-batch and repeat loops as `lax.scan` (the program accelerators compile)."""
  config = load_config("dcgan", "tiny")
  config.data.batch_size = batch_size
  config.train.grad_accum = grad_accum
  gan = methods.build(config, methods.DataSpec(SHAPE, 0))
  state = jax.eval_shape(gan.init, jax.random.PRNGKey(0))
  batch = {"real": {"image": jax.ShapeDtypeStruct((1, batch_size, *SHAPE), jnp.uint8)}}
  compiled = step_lib.make_step(gan, gan.plan(0), None, donate=False).lower(state, batch).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    pytest.skip(f"no memory analysis on the {jax.default_backend()} backend")
  return int(analysis.temp_size_in_bytes)


def test_grad_accumulation_divides_step_memory(monkeypatch):
  """Batch 32 in 4 micro-batches needs the temporary memory of batch 8 (within 25%, the grad
  accumulators and the loop's bookkeeping), because each micro-batch makes its own fakes inside
  the loop. Before, G made the fakes of all 32 at once: 3x the memory of batch 8.

  The loops are `lax.scan` here even on CPU: that while loop is what accelerators run, and what
  makes iterations reuse buffers; the unrolled CPU loop (`step.scan`) lets XLA:CPU interleave the
  micro-batches, so it does not save memory (see `step.scan`). XLA's buffer assignment of a loop
  is the same on every backend; only the program's layout and fusions differ."""
  monkeypatch.setattr(step_lib, "scan", jax.lax.scan)
  small = _step_temp_bytes(8, 1)
  accumulated = _step_temp_bytes(32, 4)
  assert accumulated < 1.25 * small, (accumulated, small)
