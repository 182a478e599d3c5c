"""One process of a CPU multi-process training run (launched by tests/test_multiprocess.py).

  python tests/multiprocess_worker.py WORKDIR DATA.npz NUM_PROCESSES PROCESS_ID LOCAL_DEVICES PORT

Sets up `LOCAL_DEVICES` CPU devices with gloo collectives, then trains configs/dcgan.py:tiny for
3 steps through `train.train_and_evaluate`, which starts `jax.distributed` from the config's
`parallel.*` fields when NUM_PROCESSES > 1.
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (XLA flags before the backend starts)  # pylint: disable=g-import-not-at-top


def main(argv):
  workdir, data, num_processes, process_id, local_devices, port = argv[1:7]
  num_processes, process_id, local_devices = int(num_processes), int(process_id), int(local_devices)
  jax.config.update("jax_num_cpu_devices", local_devices)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from ganzoo import train  # pylint: disable=g-import-not-at-top
  from tests.test_steps import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("dcgan", "tiny")
  config.data.name = "npz"
  config.data.path = data
  config.train.num_steps = 3
  config.train.checkpoint_every = 3
  if num_processes > 1:
    config.parallel.coordinator_address = f"127.0.0.1:{port}"
    config.parallel.num_processes = num_processes
    config.parallel.process_id = process_id
  summary = train.train_and_evaluate(config, workdir, progress=False)
  assert jax.process_count() == num_processes and jax.device_count() == num_processes * local_devices
  print(f"process {jax.process_index()}/{jax.process_count()}: {jax.device_count()} devices, "
        f"step {summary['step']}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
