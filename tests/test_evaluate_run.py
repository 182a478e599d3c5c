"""In-training FID/KID and `python -m ganzoo.evaluate --workdir` on the same checkpoint agree."""

import json
import os

import numpy as np

from ganzoo import evaluate
from ganzoo import train
from ganzoo.metrics import weights
from tests.test_train import npz_config, one_device, read_metrics


def test_in_training_eval_equals_workdir_eval(tmp_path, monkeypatch):
  # Reference statistics go to a private cache; the weights are still the ones on the search path.
  monkeypatch.setenv("GANZOO_INCEPTION_WEIGHTS", weights.resolve_weights())
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.eval.every = 2
  config.eval.num_samples = 16
  config.eval.batch_size = 8
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, mesh=one_device(), progress=False)
  logged = [l for l in read_metrics(workdir) if "eval/fid" in l]
  assert [l["step"] for l in logged] == [2]
  fid, kid = logged[0]["eval/fid"], logged[0]["eval/kid"]
  assert np.isfinite(fid) and fid > 0 and np.isfinite(kid)
  with open(os.path.join(workdir, "best", "best.json")) as f:
    assert json.load(f) == {"fid": fid, "step": 2}
  assert os.path.isdir(os.path.join(workdir, "best", "2"))

  result = evaluate.evaluate_workdir(workdir, "fid,kid", batch_size=8)
  assert result["step"] == 2 and result["protocol"]["num_samples"] == 16
  np.testing.assert_allclose(result["fid"], fid, rtol=1e-6)
  np.testing.assert_allclose(result["kid"], kid, rtol=1e-6, atol=1e-9)
  last = read_metrics(workdir)[-1]
  assert last["step"] == 2 and last["eval/fid"] == result["fid"]
  # One statistics file: the reference computed before step 1 served the evaluation and the CLI.
  assert len(os.listdir(tmp_path / "cache" / "fid_stats")) == 1
