"""Every registered family (tests/test_families.py's FAMILY_PARAMS, its `Pair` family included):
a resumed run equals an unbroken one, bit for bit, through `train.train_and_evaluate`.

Its own file so that pytest-xdist's `--dist loadfile` can run it beside tests/test_families.py's
8-device == 1-device tests instead of after them on the same worker.
"""

import json

import jax
import pytest

from ganzoo import methods
from ganzoo import parallel
from ganzoo import train
from tests.test_families import FAMILY_PARAMS
from tests.test_steps import assert_trees_close
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
