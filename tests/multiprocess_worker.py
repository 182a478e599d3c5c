"""One process of a CPU multi-process training run (launched by tests/test_multiprocess.py).

  python tests/multiprocess_worker.py WORKDIR DATA.npz NUM_PROCESSES PROCESS_ID LOCAL_DEVICES PORT [eval]

Sets up `LOCAL_DEVICES` CPU devices with gloo collectives, then trains configs/dcgan.py:tiny for
3 steps through `train.train_and_evaluate`, which starts `jax.distributed` from the config's
`parallel.*` fields when NUM_PROCESSES > 1. With `eval`, FID/KID run at step 3 (`eval.every=3`, 8
samples, 8 reference images) with `tiny_extractor()` in place of Inception, and the process prints
its eval/* values.
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (XLA flags before the backend starts)  # pylint: disable=g-import-not-at-top

EVAL_SAMPLES = 8


def tiny_extractor():
  """A `FeatureExtractor` over every device of every process with a tiny fixed network (16 features
  from pooled, preprocessed 299x299 input) in place of Inception: the multi-host plumbing of the
  real extractor (sharded input, gathered features) at a fraction of its compile and run time."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from ganzoo.metrics import inception  # pylint: disable=g-import-not-at-top

  class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.avg_pool(x, (13, 13), strides=(13, 13))             # 23x23
      x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2), precision="highest")(x))
      return {"pool3": jnp.mean(x, axis=(1, 2))}

  net = Tiny()
  params = jax.device_get(net.init(jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))["params"])
  mesh = Mesh(np.array(jax.devices()), ("data",))
  return inception.FeatureExtractor(params=jax.device_put(params, NamedSharding(mesh, P())),
                                    info={"sha256": "tiny-test-network", "has_logits": False},
                                    mesh=mesh, network=net)


def main(argv):
  workdir, data, num_processes, process_id, local_devices, port = argv[1:7]
  with_eval = argv[7:8] == ["eval"]
  num_processes, process_id, local_devices = int(num_processes), int(process_id), int(local_devices)
  jax.config.update("jax_num_cpu_devices", local_devices)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  from ganzoo import evaluate  # pylint: disable=g-import-not-at-top
  from ganzoo import train  # pylint: disable=g-import-not-at-top
  from tests.test_steps import load_config  # pylint: disable=g-import-not-at-top
  config = load_config("dcgan", "tiny")
  config.data.name = "npz"
  config.data.path = data
  config.train.num_steps = 3
  config.train.checkpoint_every = 3
  if with_eval:
    config.eval.every = 3
    config.eval.num_samples = EVAL_SAMPLES
    config.eval.batch_size = EVAL_SAMPLES
    config.eval.metrics = "fid,kid"
    evaluate.get_extractor = lambda path=None: tiny_extractor()   # after jax.distributed starts (train)
  if num_processes > 1:
    config.parallel.coordinator_address = f"127.0.0.1:{port}"
    config.parallel.num_processes = num_processes
    config.parallel.process_id = process_id
  summary = train.train_and_evaluate(config, workdir, progress=False)
  assert jax.process_count() == num_processes and jax.device_count() == num_processes * local_devices
  print(f"process {jax.process_index()}/{jax.process_count()}: {jax.device_count()} devices, "
        f"step {summary['step']}", flush=True)
  if with_eval:
    values = {k: v for k, v in summary["metrics"].items() if k.startswith("eval/")}
    print(f"process {jax.process_index()} eval: {values!r}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
