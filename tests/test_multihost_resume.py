"""Multi-host from the JAX_* environment variables alone, and one checkpoint decision for all hosts.

Two CPU processes (2 devices each, gloo) are started with only JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID set (tests/multihost_resume_worker.py): `train_and_evaluate`
must start `jax.distributed` from them (both see 2 processes and 4 devices), and when the newest
checkpoint is unreadable on disk both processes must restore the same older step, with the broken
one moved aside once.
"""

import os
import subprocess
import sys

from tests.conftest import SUBPROCESS_XLA_FLAGS
from tests.test_multiprocess import finish, free_port
from tests.test_steps import ROOT
from tests.test_train import read_metrics, write_npz

WORKER = os.path.join(ROOT, "tests", "multihost_resume_worker.py")


def test_env_vars_start_two_hosts_that_fall_back_to_the_same_step(tmp_path):
  data = write_npz(tmp_path / "data.npz", n=40, shape=(28, 28, 1))
  workdir = tmp_path / "run"
  port = free_port()
  base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_FLAGS"))}
  procs = []
  for i in range(2):
    env = {**base, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": SUBPROCESS_XLA_FLAGS,
           "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}
    procs.append(subprocess.Popen([sys.executable, WORKER, str(workdir), data], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = finish(procs, timeout=400)
  for i, out in enumerate(outs):
    assert f"process {i}/2: 4 devices, first run step 4" in out, out[-3000:]
    assert f"process {i}/2: resumed at step 2, step 5" in out, out[-3000:]
  assert "warning: checkpoint 4" in outs[0] and "warning: checkpoint 4" not in outs[1]   # reported once
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "5"]         # 4 re-written after the fall-back
  assert len(os.listdir(workdir / "checkpoints_failed")) == 1
  assert [l["step"] for l in read_metrics(workdir)] == [0, 1, 2, 3, 4, 5]
