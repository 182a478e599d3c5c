"""Loading a trained run: its config, its family and its newest checkpoint (used by the sample and
evaluate CLIs and from notebooks: `method = runs.build_method(runs.load_run_config(dir))`)."""

import json
import os
from typing import Sequence

import jax
import ml_collections

from ganzoo import checkpoint
from ganzoo import config as config_lib
from ganzoo import data as data_lib
from ganzoo import methods
from ganzoo import parallel
from ganzoo import train
from ganzoo.state import TrainState


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir/config.json` (older layouts upgraded)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; pass --config=configs/<name>.py[:variant] for this run")
  with open(path) as f:
    return ml_collections.ConfigDict(config_lib.upgrade_legacy_config(json.load(f)))


def build_method(config: ml_collections.ConfigDict, image_shape: Sequence[int] | None = None,
                 num_classes: int | None = None) -> methods.Method:
  """The run's family; image shape and classes come from the data set unless both are given."""
  if image_shape is None:
    try:
      _, method, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]))
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
