"""Loading a trained run: its config, its GAN and its newest checkpoint (used by the sample and
evaluate CLIs and from notebooks: `gan = runs.build_gan(runs.load_run_config(dir))`)."""

import json
import os
from typing import Sequence

import jax
import ml_collections

from ganzoo import checkpoint
from ganzoo import data as data_lib
from ganzoo import parallel
from ganzoo import steps
from ganzoo import train
from ganzoo.state import GANState


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in `workdir/config.json`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; pass --config=configs/<name>.py[:variant] for this run")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def build_gan(config: ml_collections.ConfigDict, image_shape: Sequence[int] | None = None,
              num_classes: int | None = None) -> steps.GAN:
  """The run's GAN; image shape and classes come from the data set unless both are given."""
  if image_shape is None:
    try:
      _, gan, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]))
      return gan
    except data_lib.DatasetNotFoundError as e:
      raise ValueError(f"{e} -- or pass --image_shape=H,W,C and --num_classes=K to sample without the data") from None
  train.validate_config(config)
  return steps.build(config, tuple(int(s) for s in image_shape), int(num_classes or 0))


def restore_state(gan: steps.GAN, workdir: str) -> tuple[GANState, int]:
  """The newest checkpoint of `workdir` on the first device (restored onto abstract shapes)."""
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.eval_shape(lambda key: steps.init_state(gan, key), jax.random.PRNGKey(0))
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
  restored = checkpoint.latest_state(workdir, target)
  if restored is None:
    raise ValueError(f"no checkpoint in {workdir}/checkpoints; train first (python -m ganzoo.main ...)")
  return restored
