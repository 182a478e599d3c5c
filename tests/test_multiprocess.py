"""A 2-process CPU run (2 devices each, gloo collectives) equals a 1-process run on 4 devices.

Both go through `train.train_and_evaluate` (tests/multiprocess_worker.py): `jax.distributed` is
started from `config.parallel.*`, each process reads its slice of every global batch and
`parallel.global_batch` assembles the global arrays; the checkpoints and logged metrics of the two
runs must agree.
"""

import ast
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from ganzoo import checkpoint
from ganzoo import train
from tests.conftest import SUBPROCESS_XLA_FLAGS
from tests.test_steps import ROOT, assert_trees_close, load_config
from tests.test_train import one_device, read_metrics, write_npz

WORKER = os.path.join(ROOT, "tests", "multiprocess_worker.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(workdir, data, num_processes, local_devices, extra=(), cache_dirs=None):
  """Starts the worker processes; `cache_dirs[i]` is process i's GANZOO_CACHE_DIR when given."""
  port = free_port()
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_FLAGS"))}
  env["JAX_PLATFORMS"] = "cpu"
  env["XLA_FLAGS"] = SUBPROCESS_XLA_FLAGS
  return [subprocess.Popen([sys.executable, WORKER, str(workdir), data, str(num_processes), str(i),
                            str(local_devices), str(port), *extra],
                           cwd=ROOT, env=dict(env, **({"GANZOO_CACHE_DIR": str(cache_dirs[i])} if cache_dirs else {})),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(num_processes)]


def finish(procs, timeout=240):
  outs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=timeout)
      outs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  return outs


def test_two_processes_equal_one_process(tmp_path):
  data = write_npz(tmp_path / "data.npz", n=40, shape=(28, 28, 1))
  multi, single = tmp_path / "two_procs", tmp_path / "one_proc"
  procs = launch(multi, data, num_processes=2, local_devices=2) + launch(single, data, 1, 4)
  outs = finish(procs)
  assert "process 0/2: 4 devices, step 3" in outs[0] and "process 1/2: 4 devices, step 3" in outs[1]
  assert "process 0/1: 4 devices, step 3" in outs[2]

  config = load_config("dcgan", "tiny")
  config.data.name, config.data.path = "npz", data
  _, gan, _ = train.setup(config, one_device())
  target = gan.init(jax.random.PRNGKey(0))
  a, step_a = checkpoint.latest_state(str(multi), target)
  b, step_b = checkpoint.latest_state(str(single), target)
  assert step_a == step_b == 3
  assert_trees_close(jax.device_get(a), jax.device_get(b), rtol=1e-5, atol=1e-5)
  # Training changed D (the comparison is not between two initial states).
  moved = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
              for x, y in zip(jax.tree.leaves(b.nets["d"].params), jax.tree.leaves(target.nets["d"].params)))
  assert moved > 1e-4
  ma, mb = read_metrics(multi), read_metrics(single)
  assert [l["step"] for l in ma] == [l["step"] for l in mb] == [0, 1, 2, 3]
  for la, lb in zip(ma, mb):
    for k in la:
      if not k.startswith("perf/"):
        np.testing.assert_allclose(la[k], lb[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_evaluation_on_two_processes_equals_one_process_evaluation(tmp_path, monkeypatch):
  """eval.every > 0 on 2 processes (2 CPU devices each): samples and features are sharded over the
  4 devices and gathered, both processes log the same eval/fid and eval/kid, only process 0 writes
  the reference statistics, and the values equal `evaluate_workdir` of the same (step-3) checkpoint
  in this one process on one device."""
  from ganzoo import evaluate  # pylint: disable=g-import-not-at-top
  from tests.multiprocess_worker import EVAL_SAMPLES, tiny_extractor  # pylint: disable=g-import-not-at-top
  data = write_npz(tmp_path / "data.npz", n=40, shape=(28, 28, 1))
  caches = [tmp_path / "cache0", tmp_path / "cache1"]
  outs = finish(launch(tmp_path / "run", data, 2, 2, extra=("eval",), cache_dirs=caches))
  values = []
  for i, out in enumerate(outs):
    line = next(l for l in out.splitlines() if l.startswith(f"process {i} eval: "))
    values.append(ast.literal_eval(line.split(": ", 1)[1]))
  assert "eval/error" not in values[0] and np.isfinite(values[0]["eval/fid"]) and values[0]["eval/fid"] > 0
  assert values[0] == values[1]   # the same gathered features and numpy code on both processes
  logged = read_metrics(tmp_path / "run")[-1]
  assert logged["step"] == 3 and logged["eval/fid"] == values[0]["eval/fid"]
  assert len(os.listdir(caches[0] / "fid_stats")) == 1 and not (caches[1] / "fid_stats").exists()
  assert os.path.isdir(tmp_path / "run" / "best" / "3")   # both processes saved the best checkpoint

  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache_single"))
  monkeypatch.setattr(evaluate, "get_extractor", lambda path=None: tiny_extractor())
  single = evaluate.evaluate_workdir(str(tmp_path / "run"), "fid,kid", batch_size=EVAL_SAMPLES, write=False)
  assert single["step"] == 3 and single["protocol"]["num_samples"] == EVAL_SAMPLES
  # Same state, same latents (partitionable threefry), same per-example arithmetic on 4 sharded
  # devices vs 1: the generator's float32 output may differ by a few ulp, which can move a pixel
  # across a uint8 rounding boundary (one level, 1/128 after preprocessing); the tiny network's
  # 13x13 average pool divides that by 169 before a 3x3 conv, so a feature moves by < 1e-4 of its
  # scale for each such pixel, and its mean over 8 samples by < 2e-5. FID and KID are quadratic in
  # the features (float64 from float32): their relative change is below ~1e-4 even with a few such
  # pixels, and float32 feature rounding (~1e-7) adds nothing visible. (Measured: identical.)
  np.testing.assert_allclose(values[0]["eval/fid"], single["fid"], rtol=1e-4)
  np.testing.assert_allclose(values[0]["eval/kid"], single["kid"], rtol=1e-4, atol=1e-7)
