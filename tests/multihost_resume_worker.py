"""One process of a 2-process CPU run started from the environment alone (tests/test_multihost_resume.py).

  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=I \
    python tests/multihost_resume_worker.py WORKDIR DATA.npz

Two CPU devices per process with gloo collectives; the config says nothing about processes. Trains
configs/dcgan.py:tiny for 4 steps (checkpoints 2 and 4), then process 0 overwrites checkpoint 4's
files with garbage and the run is resumed to step 5: every process must fall back to step 2.
"""

import glob
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (XLA flags before the backend starts)  # pylint: disable=g-import-not-at-top


def main(argv):
  workdir, data = argv[1:3]
  jax.config.update("jax_num_cpu_devices", 2)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  from ganzoo import train  # pylint: disable=g-import-not-at-top
  from tests.test_steps import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("dcgan", "tiny")
  config.data.name = "npz"
  config.data.path = data
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  first = train.train_and_evaluate(config, workdir, progress=False)
  print(f"process {jax.process_index()}/{jax.process_count()}: {jax.device_count()} devices, "
        f"first run step {first['step']}", flush=True)
  multihost_utils.sync_global_devices("first_run_done")
  if jax.process_index() == 0:
    for f in glob.glob(os.path.join(workdir, "checkpoints", "4", "**", "*"), recursive=True):
      if os.path.isfile(f):
        with open(f, "wb") as fh:
          fh.write(b"garbage")
  multihost_utils.sync_global_devices("checkpoint_4_corrupted")
  config.train.num_steps = 5
  second = train.train_and_evaluate(config, workdir, progress=False)
  print(f"process {jax.process_index()}/{jax.process_count()}: resumed at step {second['start_step']}, "
        f"step {second['step']}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
