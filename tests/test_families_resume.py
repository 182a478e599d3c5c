"""Every registered family (tests/test_families.py's FAMILY_PARAMS, its `Pair` family included):
a resumed run equals an unbroken one, bit for bit, through `train.train_and_evaluate`.

Its own file so that pytest-xdist's `--dist loadfile` can run it beside tests/test_families.py's
8-device == 1-device tests instead of after them on the same worker.
"""

import json

import jax
import pytest

from ganzoo import checkpoint
from ganzoo import methods
from ganzoo import parallel
from ganzoo import train
from tests.test_families import FAMILY_PARAMS
from tests.test_steps import as_float64, assert_float64_close, assert_trees_close
from tests.test_train import latest_states, write_npz


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_resumed_run_equals_unbroken_run(family, tmp_path, monkeypatch):
  """4 steps straight, or 2 steps, a crash at step 3, and a restart: the same state, bit for bit."""
  config, data = methods.get(family).test_config()
  assert_resumed_run_equals_unbroken_run(config, data, tmp_path, monkeypatch)


def assert_resumed_run_equals_unbroken_run(config, data, tmp_path, monkeypatch):
  """Trains `config` 4 steps straight and in two parts (a simulated crash at step 3, then a restart from the
  step-2 checkpoint); asserts the two final states and the metrics after step 2 are identical; returns the state."""
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=48, shape=data.image_shape, num_classes=max(data.num_classes, 1))
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  mesh = parallel.make_mesh(jax.devices()[:1])
  train.train_and_evaluate(config, str(tmp_path / "full"), mesh=mesh, progress=False)
  real = train.parallel.global_batch
  calls = []

  def crash_at_step_3(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise RuntimeError("simulated crash")
    return real(*args, **kwargs)

  monkeypatch.setattr(train.parallel, "global_batch", crash_at_step_3)
  with pytest.raises(RuntimeError, match="simulated crash"):
    train.train_and_evaluate(config, str(tmp_path / "parts"), mesh=mesh, progress=False)
  monkeypatch.setattr(train.parallel, "global_batch", real)
  summary = train.train_and_evaluate(config, str(tmp_path / "parts"), mesh=mesh, progress=False)
  assert summary["start_step"] == 2
  (a, sa), (b, sb) = latest_states(config, tmp_path / "full", tmp_path / "parts")
  assert sa == sb == 4
  assert_trees_close(a, b, rtol=0, atol=0)
  strip = lambda p: [{k: v for k, v in json.loads(l).items() if not k.startswith("perf/")}
                     for l in open(p) if json.loads(l)["step"] > 2]
  assert strip(tmp_path / "full" / "metrics.jsonl") == strip(tmp_path / "parts" / "metrics.jsonl")
  return a


def test_a_sharded_checkpoint_resumes_with_another_fsdp_size(tmp_path, monkeypatch):
  """The gan family (DCGAN tiny) through `train.train_and_evaluate` in float64 on the 8 devices: 4 steps
  with the state replicated (`parallel.fsdp=1`), or 2 steps with it sharded over pairs of devices
  (fsdp=2, the (4, 2) mesh; `fsdp_min_size=0`: every leaf an axis of which divides), a crash at
  step 3, and a restart with fsdp=4 (the (2, 4) mesh: orbax reads the saved shards onto others).
  Both final checkpoints, restored on one device (no mesh at all), agree within `FLOAT64_TOL`, and so
  do the metrics after step 2: the shardings only reorder float64 sums (test_families.py's bound).
  float64 because float32 runs on different shardings are not bitwise equal."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config, data = methods.get("gan").test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=48, shape=data.image_shape, num_classes=data.num_classes)
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  config.train.sample_every = 0
  config.parallel.fsdp_min_size = 0
  real_init = train._init_state  # pylint: disable=protected-access
  monkeypatch.setattr(train, "_init_state", lambda method, cfg, mesh, sharding: jax.device_put(
      as_float64(real_init(method, cfg, mesh, sharding)), sharding))
  real_batch = train.parallel.global_batch
  calls = []

  def crash_at_step_3(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise RuntimeError("simulated crash")
    return real_batch(*args, **kwargs)

  x64 = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)   # global: orbax's threads restore float64 too
  try:
    train.train_and_evaluate(config, str(tmp_path / "full"), progress=False)
    config.parallel.fsdp = 2
    monkeypatch.setattr(train.parallel, "global_batch", crash_at_step_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
      train.train_and_evaluate(config, str(tmp_path / "parts"), progress=False)
    monkeypatch.setattr(train.parallel, "global_batch", real_batch)
    config.parallel.fsdp = 4
    summary = train.train_and_evaluate(config, str(tmp_path / "parts"), progress=False)
    assert summary["start_step"] == 2
    method = methods.build(config, data)
    target = jax.device_put(as_float64(method.init(jax.random.PRNGKey(0))), jax.devices()[0])
    (a, sa), (b, sb) = [checkpoint.latest_state(str(tmp_path / w), target) for w in ("full", "parts")]
  finally:
    jax.config.update("jax_enable_x64", x64)
  assert sa == sb == 4
  assert_float64_close(jax.device_get(a), jax.device_get(b))
  strip = lambda p: [{k: v for k, v in json.loads(l).items() if not k.startswith("perf/")}
                     for l in open(p) if json.loads(l)["step"] > 2]
  full, parts = strip(tmp_path / "full" / "metrics.jsonl"), strip(tmp_path / "parts" / "metrics.jsonl")
  assert [sorted(m) for m in full] == [sorted(m) for m in parts] and len(full) == 2
  assert_float64_close(full, parts)
