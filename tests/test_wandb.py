"""The Weights & Biases mirror (`config.wandb`, ganzoo.writers.WandbWriter), in offline mode: the run's
history holds the metrics.jsonl values at the same steps and the sample grid, a resume continues
the same run id, and with `wandb.project` empty wandb is never imported."""

import glob
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganzoo import train
from ganzoo import writers
from tests.test_steps import ROOT
from tests.test_train import npz_config, one_device, read_metrics

wandb = pytest.importorskip("wandb")


def read_wandb_records(path):
  """The records of an offline run's .wandb file (wandb_internal_pb2.Record).

  The file is a LevelDB-style log, the transaction log wandb writes and `wandb sync` reads: a 7-byte
  header (':W&B', magic 0xBEE1 little-endian, version 0), then 32 KiB blocks of chunks, each with a
  7-byte header (crc32c, length uint16 LE, type: 1 full, 2 first, 3 middle, 4 last) and a block tail
  shorter than a header is zero padding. (wandb's own Python reader, wandb.sdk.internal.datastore,
  left the package when the Go core took over; the format stayed.)"""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    data = f.read()
  assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0), data[:7]
  block, pos, chunks, pending = 32768, 7, [], b""
  while pos + 7 <= len(data):
    if block - pos % block < 7:
      pos += block - pos % block
      continue
    _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
    chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
    if kind == 1:
      chunks.append(chunk)
    elif kind == 2:
      pending = chunk
    elif kind == 3:
      pending += chunk
    elif kind == 4:
      chunks.append(pending + chunk)
    else:
      break   # zero padding at the end of the file
  return [wandb_internal_pb2.Record.FromString(c) for c in chunks]


def wandb_run(run_dir):
  """(run id, {step: {key: value}} of the history, config {key: value}) of an offline run folder."""
  (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
  run_id, history, config = None, {}, {}
  for record in read_wandb_records(path):
    kind = record.WhichOneof("record_type")
    if kind == "run":
      run_id = record.run.run_id
    elif kind == "config":
      for item in record.config.update:
        config[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    elif kind == "history":
      row = {}
      for item in record.history.item:
        key = item.key or item.nested_key[0]
        if len(item.nested_key) > 1:   # a media value: {'_type': ..., 'path': ...}
          row.setdefault(key, {})[".".join(item.nested_key[1:])] = json.loads(item.value_json)
        else:
          row[key] = json.loads(item.value_json)
      history.setdefault(record.history.step.num, {}).update(row)
  return run_id, history, config


def test_offline_run_mirrors_metrics_and_samples_and_resumes_the_same_run(tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
  monkeypatch.setenv("WANDB_SILENT", "true")
  os.makedirs(tmp_path / "wandb_dir")
  config = npz_config("dcgan", tmp_path)   # tiny: 2 steps, log every step, samples and checkpoint at 2
  config.wandb.project = "ganzoo-test"
  config.wandb.name = "tiny"
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, mesh=one_device(), progress=False)
  with open(os.path.join(workdir, writers.WANDB_ID_FILE)) as f:
    run_id = f.read().strip()
  (first,) = glob.glob(str(tmp_path / "wandb_dir" / "wandb" / "offline-run-*"))
  got_id, history, logged_config = wandb_run(first)
  assert got_id == run_id
  lines = read_metrics(workdir)
  assert [l["step"] for l in lines] == [0, 1, 2]
  for line in lines:   # every metrics.jsonl value, at its step, exactly (both write float repr JSON)
    row = history[line["step"]]
    assert {k: row[k] for k in line if k != "step"} == {k: v for k, v in line.items() if k != "step"}
  # The sample grid of step 2, as the PNG wandb stored (lossless) = samples/step_00000002.png.
  image = history[2]["samples"]
  assert image["_type"] == "image-file"
  stored = np.asarray(Image.open(os.path.join(first, "files", image["path"])).convert("L"))
  np.testing.assert_array_equal(stored, np.asarray(Image.open(os.path.join(workdir, "samples", "step_00000002.png"))))
  assert logged_config["model"] == config.model.to_dict() and logged_config["wandb"]["project"] == "ganzoo-test"

  # A resume (with a changed wandb field: harmless, no --allow_config_change needed) continues the run id.
  config.train.num_steps = 4
  config.wandb.name = "tiny-resumed"
  summary = train.train_and_evaluate(config, workdir, mesh=one_device(), progress=False)
  assert summary["start_step"] == 2
  (second,) = set(glob.glob(str(tmp_path / "wandb_dir" / "wandb" / "offline-run-*"))) - {first}
  got_id, history, _ = wandb_run(second)
  assert got_id == run_id
  lines = read_metrics(workdir)
  assert [l["step"] for l in lines] == [0, 1, 2, 3, 4]
  assert sorted(history) == [3, 4] and history[4]["train/d_loss"] == lines[-1]["train/d_loss"]
  with open(os.path.join(workdir, "config_changes.jsonl")) as f:
    assert json.loads(f.read())["alters_results"] == []


def test_enabled_without_wandb_installed_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)   # `import wandb` raises ImportError
  config = npz_config("dcgan", tmp_path)
  config.wandb.project = "p"
  with pytest.raises(ValueError, match=r"pip install 'ganzoo\[wandb\]'"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert not os.path.exists(tmp_path / "run"), "nothing is written before the check"


def test_a_wandb_that_cannot_start_is_one_line(tmp_path, monkeypatch):
  def no_key(**kwargs):
    raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")
  monkeypatch.setattr(wandb, "init", no_key)
  section = npz_config("dcgan", tmp_path).wandb
  section.project = "p"
  with pytest.raises(ValueError, match=r"did not start \(UsageError: No API key configured.*mode=offline"):
    writers.WandbWriter(section, str(tmp_path), 0, {})


def test_wandb_mode_is_checked(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.wandb.mode = "ofline"
  with pytest.raises(ValueError, match=r"config.wandb.mode='ofline' is not a wandb mode"):
    train.setup(config, one_device())


def test_wandb_off_never_imports_it(tmp_path):
  """With `wandb.project` empty (the default) the training modules and the writer leave wandb unimported."""
  code = f"""
import sys
import numpy as np
from ganzoo import config as config_lib, main, train, writers
w = writers.MetricWriter({str(tmp_path / 'run')!r}, 0, config=config_lib.get_base_config())
w.write(1, {{'train/d_loss': 0.5}})
w.write_image(1, 'samples', np.zeros((8, 8, 3), np.uint8))
w.close()
print(sorted(m for m in sys.modules if m == 'wandb' or m.startswith('wandb.')))
"""
  os.makedirs(tmp_path / "run")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().splitlines()[-1] == "[]"
