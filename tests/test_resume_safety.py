"""A resume never silently changes a run, and a wrong workdir never destroys one (ganzoo.train).

A resume compares its config with the run's (config.json as first written, plus the changes
recorded in config_changes.jsonl) and refuses result-changing differences unless
`allow_config_change`; a checkpoint that belongs to another model is an error that leaves the
workdir untouched; the data order has its own seed (`data.seed`); the state is copied before an
asynchronous save only where orbax's host view would alias a donated buffer.
"""

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import checkpoint
from ganzoo import train
from tests.test_train import npz_config, one_device, read_metrics


def snapshot(workdir) -> dict[str, str]:
  """{relative path: sha1 of the bytes} of every file under workdir."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = hashlib.sha1(f.read()).hexdigest()
  return out


def test_extending_a_linear_decay_is_refused_unless_overridden(tmp_path):
  """A linear decay spans num_steps: 4 steps resumed to 8 would re-slope steps 5..8 (it is not the
  8-step run), so the resume stops with one line; with the override it goes on and is recorded."""
  config = npz_config("dcgan", tmp_path)
  for net in ("g", "d"):
    config.nets[net].optim.decay = "linear"
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  before = snapshot(workdir)

  config.train.num_steps = 8
  config.train.log_every = 2          # harmless: not listed as a reason
  with pytest.raises(ValueError) as e:
    train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  msg = str(e.value)
  assert "\n" not in msg and "train.num_steps: 4 -> 8" in msg and "--allow_config_change" in msg, msg
  assert "log_every" not in msg, msg
  assert snapshot(workdir) == before        # nothing written, moved or dropped

  summary = train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False,
                                     allow_config_change=True)
  assert summary["start_step"] == 4 and summary["step"] == 8
  with open(workdir / "config.json") as f:
    assert json.load(f)["train"]["num_steps"] == 4       # the config of the first start
  with open(workdir / "config_changes.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert len(records) == 1 and records[0]["step"] == 4
  assert records[0]["changed"]["train.num_steps"] == [4, 8] and records[0]["alters_results"] == ["train.num_steps"]
  assert [l["step"] for l in read_metrics(workdir)] == [0, 1, 2, 3, 4, 6, 8]

  # The run's config is now config.json + the recorded change: the same command needs no override.
  assert train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)["step"] == 8
  # ... and that is the config the sample and evaluate CLIs load (empty sections kept as written).
  from ganzoo import runs  # pylint: disable=g-import-not-at-top
  loaded = runs.load_run_config(str(workdir))
  assert loaded.train.num_steps == 8 and loaded.train.log_every == config.train.log_every
  assert dict(loaded.penalties) == dict(config.penalties)


def test_constant_rates_may_be_extended(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  config.train.num_steps = 3
  assert train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)["step"] == 3


def test_another_model_in_the_workdir_is_an_error_and_touches_nothing(tmp_path):
  """SNGAN pointed at a DCGAN run: one line, and the DCGAN checkpoints, metrics and config stay."""
  dcgan = npz_config("dcgan", tmp_path)
  workdir = tmp_path / "run"
  train.train_and_evaluate(dcgan, str(workdir), mesh=one_device(), progress=False)
  before = snapshot(workdir)
  assert any(k.startswith(os.path.join("checkpoints", "2", "")) for k in before)

  sngan = npz_config("sngan", tmp_path)
  with pytest.raises(ValueError) as e:
    train.train_and_evaluate(sngan, str(workdir), mesh=one_device(), progress=False)
  assert "\n" not in str(e.value) and "model.name: 'dcgan' -> 'sngan_resnet'" in str(e.value), str(e.value)
  assert snapshot(workdir) == before

  # Even with the override the checkpoint does not restore into another model: an error, not a fall-back.
  with pytest.raises(checkpoint.CheckpointMismatchError) as e:
    train.train_and_evaluate(sngan, str(workdir), mesh=one_device(), progress=False, allow_config_change=True)
  msg = str(e.value)
  assert "\n" not in msg and "checkpoint 2" in msg and "another model's state" in msg, msg
  assert snapshot(workdir) == before
  assert not os.path.exists(tmp_path / "run" / "checkpoints_failed")


def test_data_seed_orders_the_data_apart_from_the_run_seed(tmp_path):
  """`data.seed` (default: `seed`) alone decides the order of the batches."""
  mesh = one_device()

  def first_batches(seed, data_seed):
    config = npz_config("dcgan", tmp_path)
    config.seed, config.data.seed = seed, data_seed
    dataset, method, _ = train.setup(config, mesh)
    batches = train.stream_batches(method, {"data": dataset}, 0)
    return np.concatenate([b["image"].ravel() for _ in range(3) for b in next(batches)[1].values()])

  default = first_batches(0, None)
  np.testing.assert_array_equal(first_batches(0, 0), default)      # unset = the run's seed
  np.testing.assert_array_equal(first_batches(5, 0), default)      # the run's seed alone does not move it
  assert not np.array_equal(first_batches(0, 1), default)          # data.seed does
  assert not np.array_equal(first_batches(1, None), default)       # and so does seed when data.seed is unset


def test_state_copy_before_saving_only_where_the_host_view_aliases():
  """orbax takes `np.asarray` of each array before `save` returns (see train._aliases_host). On CPU
  that is a view of the device buffer, which the next step donates: those arrays are copied. On an
  accelerator it is a real host copy: the state is passed as is (checked only where one is present)."""
  x = jax.device_put(jnp.arange(1024.0), jax.devices("cpu")[0])
  assert np.asarray(x).ctypes.data == x.unsafe_buffer_pointer()     # the premise: zero-copy on CPU
  assert train._aliases_host(x)
  safe = train._save_safe({"a": x, "n": 3})
  assert safe["a"].unsafe_buffer_pointer() != x.unsafe_buffer_pointer() and safe["n"] == 3
  np.testing.assert_array_equal(np.asarray(safe["a"]), np.asarray(x))
  for device in [d for d in jax.devices() if d.platform != "cpu"][:1]:
    y = jax.device_put(jnp.arange(1024.0), device)
    assert not train._aliases_host(y)
    assert train._save_safe({"a": y})["a"] is y
