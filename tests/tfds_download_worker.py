"""One process of a 2-process CPU run that opens a tfds data set nobody has prepared yet
(tests/test_tfds_download.py).

  python tests/tfds_download_worker.py PORT PROCESS_ID SHARED_DIR LOCAL_DIR

Opens the tiny builder's data set twice with data.download on: once in SHARED_DIR (one folder for
both processes: process 0 prepares, process 1 reads its copy) and once in LOCAL_DIR/<process id>
(a folder per host: each prepares its own). Prints how often examples were generated and the
images read, one line per case.
"""

import hashlib
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top

import ganzoo  # noqa: F401  (XLA flags before the backend starts)  # pylint: disable=g-import-not-at-top


def main(argv):
  port, pid, shared, local = argv[1], int(argv[2]), argv[3], argv[4]
  jax.config.update("jax_num_cpu_devices", 1)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ganzoo import data  # pylint: disable=g-import-not-at-top
  from tests import test_tfds_download as t  # pylint: disable=g-import-not-at-top  (registers the builders)
  for case, root in (("shared", shared), ("local", os.path.join(local, str(pid)))):
    before = t.GanzooDlTiny.generated
    ds = data.build_dataset({"name": "ganzoo_dl_tiny", "data_dir": root, "batch_size": 2}, 0)
    batch = ds.source.get(np.arange(ds.num_examples))
    ok = all(np.array_equal(im, t._image(int(l))) for im, l in zip(batch["image"], batch["label"]))  # pylint: disable=protected-access
    digest = hashlib.sha256(batch["image"].tobytes()).hexdigest()[:16]
    print(f"process {jax.process_index()}/{jax.process_count()} {case}: generated "
          f"{t.GanzooDlTiny.generated - before}, {ds.num_examples} examples, exact {ok}, {digest}", flush=True)


if __name__ == "__main__":
  main(sys.argv)
