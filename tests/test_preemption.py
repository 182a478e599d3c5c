"""SIGTERM / Ctrl-C checkpoint the current step and stop with a line that says how to resume.

The CLI test sends SIGTERM to a running `python -m ganzoo.main`, checks the exit code (128 + 15),
the line and the checkpoint of the step it stopped at, runs the same command again and requires
the final state to equal an unbroken run's (the same command, not stopped) bit for bit.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from ganzoo import train
from tests.conftest import SUBPROCESS_XLA_FLAGS
from tests.test_steps import ROOT, assert_trees_close, load_config
from tests.test_train import latest_states, npz_config, one_device, read_metrics, write_npz


def test_signal_checkpoints_the_current_step_and_restores_the_handlers(tmp_path, monkeypatch):
  """In-process: a SIGINT during step 2 stops after step 2 with its checkpoint (exit code 130)."""
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 6
  config.train.checkpoint_every = 100
  workdir = tmp_path / "run"
  real, calls = train.parallel.global_batch, []

  def interrupt_during_step_2(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)

  monkeypatch.setattr(train.parallel, "global_batch", interrupt_during_step_2)
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with pytest.raises(train.Preempted) as e:
    train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
  assert e.value.step == 2 and e.value.exit_code == 130
  assert str(e.value) == (f"interrupted (SIGINT) at step 2: checkpoint saved in {workdir / 'checkpoints'}; "
                          "run the same command to resume")
  assert os.listdir(workdir / "checkpoints") == ["2"]
  assert [l["step"] for l in read_metrics(workdir)] == [0, 1, 2]


def test_sigterm_to_the_cli_then_the_same_command_resumes_exactly(tmp_path):
  data = write_npz(tmp_path / "data.npz")
  workdir = tmp_path / "run"
  num_steps = 40
  cmd = [sys.executable, "-m", "ganzoo.main", "--config=configs/dcgan.py:tiny", f"--workdir={workdir}",
         "--config.data.name=npz", f"--config.data.path={data}", f"--config.train.num_steps={num_steps}",
         "--config.train.checkpoint_every=1000", "--config.eval.every=0", "--no_progress",
         f"--compilation_cache={tmp_path / 'cache'}"]
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_FLAGS"))}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count=1 {SUBPROCESS_XLA_FLAGS}".strip())
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    metrics = workdir / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:   # until step 1 (after compilation) is logged
      if metrics.exists() and any(l["step"] >= 1 for l in read_metrics(workdir)):
        break
      time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  line = err.strip().splitlines()[-1]
  assert line.startswith("interrupted (SIGTERM) at step ") and "Traceback" not in err, err[-3000:]
  stopped = int(line.split("at step ")[1].split(":")[0])
  assert 1 <= stopped < num_steps
  assert line == (f"interrupted (SIGTERM) at step {stopped}: checkpoint saved in {workdir / 'checkpoints'}; "
                  "run the same command to resume")
  assert os.listdir(workdir / "checkpoints") == [str(stopped)]
  assert max(l["step"] for l in read_metrics(workdir)) == stopped

  again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert f"resumed from {workdir}/checkpoints at step {stopped}" in again.stdout
  assert f"done: step {num_steps}" in again.stdout

  # The unbroken run: the same command in another workdir (the same process setup, so the same XLA code).
  unbroken = tmp_path / "unbroken"
  ref = subprocess.run([c if not c.startswith("--workdir=") else f"--workdir={unbroken}" for c in cmd],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert ref.returncode == 0, ref.stderr[-3000:]
  config = load_config("dcgan", "tiny")
  config.data.name, config.data.path = "npz", data
  (a, step_a), (b, step_b) = latest_states(config, workdir, unbroken)
  assert step_a == step_b == num_steps
  assert_trees_close(a, b, rtol=0, atol=0)
  steps = [l["step"] for l in read_metrics(workdir)]
  assert steps == list(range(num_steps + 1))
