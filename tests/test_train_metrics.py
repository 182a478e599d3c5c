"""The train/* values in metrics.jsonl: each is the mean over the steps since the previous line.

A tiny family (tests/test_families.py's Pair, plus a phase every 2 steps, so one key is returned by
only some steps) runs the same 6 steps with log_every=1 (the per-step values) and with longer
intervals; the per-step run is the same computation (log_every changes no step), so the means are
checked exactly: the float32 running sum in step order, divided by the count in float64, which is
what `train._IntervalMeans` computes on device.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import parallel
from ganzoo import step as step_lib
from ganzoo import train
from tests.test_families import Pair
from tests.test_train import write_npz

NUM_STEPS = 6


@methods.register("test_lazy_pair")
class LazyPair(Pair):
  """Pair with a lazy phase: 'a_reg' (a small penalty on a's scores) at steps 0, 2, 4 (completed
  steps), i.e. the loop's steps 1, 3, 5; its metric `train/a_reg` appears only there."""

  def __init__(self, config, data):
    super().__init__(config, data)
    self.phases = self.phases + (step_lib.Phase("a_reg", ("a",), self._reg_loss, self._a_prepare, every=2,
                                                stream="x"),)

  def _reg_loss(self, ctx, inp):
    loss = 1e-3 * jnp.mean(ctx.apply("a", inp["x"]) ** 2)
    return loss, {"a_reg": loss}


def _config(tmp_path, log_every, checkpoint_every=100):
  config, data = Pair.test_config()
  config.method = "test_lazy_pair"
  config.data.name = "npz"
  path = tmp_path / "d.npz"
  config.data.path = str(path) if path.exists() else write_npz(path, n=48, shape=data.image_shape)
  config.train.num_steps = NUM_STEPS
  config.train.log_every = log_every
  config.train.checkpoint_every = checkpoint_every
  config.train.sample_every = 0
  return config


def _run(config, workdir):
  return train.train_and_evaluate(config, str(workdir), mesh=parallel.make_mesh(jax.devices()[:1]), progress=False)


def _lines(workdir):
  """{step: {key: value}} of metrics.jsonl, perf/* left out (timings)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: {k: v for k, v in r.items() if k != "step" and not k.startswith("perf/")} for r in rows}


def _expected(per_step, ends):
  """The lines of intervals ending at `ends`: each key's float32 running sum over the steps of the
  interval that have it, in step order, over their count."""
  out, start = {}, 0
  for end in ends:
    steps = range(start + 1, end + 1)
    keys = sorted({k for s in steps for k in per_step[s]})
    line = {}
    for k in keys:
      values = [per_step[s][k] for s in steps if k in per_step[s]]
      total = np.float32(values[0])
      for v in values[1:]:
        total = np.float32(total + np.float32(v))
      line[k] = float(total) / len(values)
    out[end], start = line, end
  return out


@pytest.fixture(scope="module")
def per_step(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("per_step")
  _run(_config(tmp, log_every=1), tmp / "run")
  lines = _lines(tmp / "run")
  assert sorted(lines) == list(range(NUM_STEPS + 1))
  assert [s for s in range(1, NUM_STEPS + 1) if "train/a_reg" in lines[s]] == [1, 3, 5]   # the lazy phase
  return lines


def test_logged_value_is_the_mean_over_the_log_interval(per_step, tmp_path):
  """log_every=3, checkpoint_every=4: lines at 3, 4 and 6 (a checkpoint ends an interval too)."""
  _run(_config(tmp_path, log_every=3, checkpoint_every=4), tmp_path / "run")
  got = _lines(tmp_path / "run")
  assert sorted(got) == [0, 3, 4, 6]
  assert got[0] == per_step[0]                     # params/* at step 0: as they are
  want = _expected(per_step, [3, 4, 6])
  assert all(got[s] == want[s] for s in (3, 4, 6)), (got, want)
  # The lazy key: the mean of steps 1 and 3; absent from step 4; step 5 alone in 5..6.
  assert got[3]["train/a_reg"] == want[3]["train/a_reg"] != per_step[3]["train/a_reg"]
  assert "train/a_reg" not in got[4] and got[6]["train/a_reg"] == per_step[5]["train/a_reg"]
  for k in ("train/a_loss", "train/b_loss", "train/a_grad_norm"):
    values = [per_step[s][k] for s in (1, 2, 3)]
    assert got[3][k] != per_step[3][k]             # not the step-3 snapshot any more
    # float32 summation of n = 3 float32 values: |sum error| <= (n - 1) * 2**-24 * sum|x|.
    assert abs(got[3][k] - np.mean(values)) <= 2 * 2.0 ** -24 * np.sum(np.abs(values)) / 3


def test_a_resume_mid_interval_logs_what_the_unbroken_run_logs(per_step, tmp_path, monkeypatch):
  """The run of the test above, crashed in step 5 and resumed from its step-4 checkpoint: the
  same lines (the interval 5..6 starts at the checkpoint in both)."""
  config = _config(tmp_path, log_every=3, checkpoint_every=4)
  real, calls = train.parallel.global_batch, []

  def crash_in_step_5(*args, **kwargs):
    calls.append(1)
    if len(calls) == 5:
      raise RuntimeError("simulated crash")
    return real(*args, **kwargs)

  monkeypatch.setattr(train.parallel, "global_batch", crash_in_step_5)
  with pytest.raises(RuntimeError, match="simulated crash"):
    _run(config, tmp_path / "run")
  monkeypatch.setattr(train.parallel, "global_batch", real)
  assert _run(config, tmp_path / "run")["start_step"] == 4
  got = _lines(tmp_path / "run")
  want = _expected(per_step, [3, 4, 6])
  assert sorted(got) == [0, 3, 4, 6] and all(got[s] == want[s] for s in (3, 4, 6)), (got, want)


def test_a_nan_in_one_step_of_an_interval_stops_at_its_end(tmp_path, monkeypatch):
  """A NaN in step 5's metrics only (the state stays finite): with log_every=4 and
  checkpoint_every=3 the interval 5..6 ends at the step-6 checkpoint, which is not written; the
  message names step 5, and the step-3 checkpoint is kept."""
  calls = []

  class NanInStep5(step_lib.StepCache):
    def __call__(self, plan):
      fn = super().__call__(plan)

      def step(state, batch):
        state, metrics = fn(state, batch)
        calls.append(1)
        if len(calls) == 5:
          metrics = {**metrics, "train/b_loss": metrics["train/b_loss"] * jnp.nan}
        return state, metrics
      return step

  monkeypatch.setattr(train.step_lib, "StepCache", NanInStep5)
  config = _config(tmp_path, log_every=4, checkpoint_every=3)
  config.train.num_steps = 8
  with pytest.raises(train.NonFiniteLossError,
                     match=r"^step 5: train/b_loss is nan \(found at step 6, the end of its log interval\); "
                           r"stopped, the last good checkpoint \(step 3\) is kept"):
    _run(config, tmp_path / "run")
  assert len(calls) == 6
  assert os.listdir(tmp_path / "run" / "checkpoints") == ["3"]
  assert sorted(_lines(tmp_path / "run")) == [0, 3, 4]
