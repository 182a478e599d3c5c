"""Sample sheets from a trained run: `python -m ganzoo.sample --workdir=DIR --mode=...`.

  python -m ganzoo.sample --workdir=workdirs/biggan128 --mode=classes --classes=1,207,980 --num=8
  python -m ganzoo.sample --workdir=workdirs/biggan128 --mode=truncation --thresholds=2,1,0.5,0.04
  python -m ganzoo.sample --workdir=workdirs/biggan128 --mode=interpolation --num=8 --rows=4 \
      --truncation=0.5 --out=interp.png

Loads the run's config.json (or `--config=configs/x.py:variant` with overrides) and the newest
checkpoint, and writes a PNG with `ganzoo.sampling` from the EMA networks of a latent-variable family (`--noema`: the trained params):
- classes:       row r = `--num` samples of class classes[r] (class-conditional models only).
- truncation:    row r = `--num` samples at thresholds[r] (BigGAN's truncation trick,
                 arXiv:1809.11096 Sec. 4.1); every row reuses the same latents, so a column shows
                 one latent moving towards the mode; conditional models use one class per column.
- interpolation: `--rows` rows of `--num` images from G(z0, y) to G(z1, y) (lerp or slerp).
`--truncation=t` draws z from N(0, I) truncated to [-t, t] (classes, interpolation); 0 = none.
Classes default to 0..min(K, 10)-1. The data set only supplies the image shape and the number of
classes; a standard one (cifar10, celeb_a, ...) that is not on this machine gives its known shape,
and for any other pass `--image_shape=H,W,C` and `--num_classes=K`. A bad input is one `error:`
line; `--verbose` (or GANZOO_VERBOSE=1) shows the traceback. JAX's options are flags too
(`--jax_platforms=cpu`, `--jax_debug_nans`, ...; `--helpfull` lists them).
"""

import os
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from ganzoo import config_flags
from ganzoo import methods
from ganzoo import paths
from ganzoo import sampling
from ganzoo.runs import build_method, load_run_config, restore_state  # noqa: F401
from ganzoo.state import TrainState

MODES = ("classes", "truncation", "interpolation")


def _latent_method(method: methods.Method) -> methods.Method:
  if not hasattr(method, "generate") or not hasattr(method, "latent_dim"):
    raise ValueError(f"family {method.name!r} has no latent space to sweep; these sheets need one (config.method='gan')")
  return method


def make_g_fn(method: methods.Method, state: TrainState, use_ema: bool = True) -> sampling.GFn:
  """g_fn(z, y) = the family's generator in inference mode from the (EMA) params of `state`, jitted."""
  _latent_method(method)
  generate = jax.jit(lambda s, z, y: method.generate(s, z, y, use_ema=use_ema))
  return lambda z, y: generate(state, z, y)


def _labels(method: methods.Method, classes: Sequence[int] | None, n: int) -> list[int] | None:
  """n labels cycling through `classes` (default 0..min(K, 10)-1); None for unconditional models."""
  num_classes = int(getattr(method, "num_classes", 0) or 0)
  if not num_classes:
    return None
  classes = list(classes) if classes else list(range(min(num_classes, 10)))
  bad = [c for c in classes if not 0 <= c < num_classes]
  if bad:
    raise ValueError(f"--classes {bad} out of range: the model has {num_classes} classes (0..{num_classes - 1})")
  return [classes[i % len(classes)] for i in range(n)]


def make_sheet(method: methods.Method, g_fn: sampling.GFn, mode: str, seed: int = 0, num: int = 8,
               rows: int = 4, classes: Sequence[int] | None = None, truncation: float | None = None,
               thresholds: Sequence[float | None] = (2.0, 1.0, 0.5, 0.04), interp: str = "lerp",
               batch_size: int = 64) -> np.ndarray:
  """A uint8 sheet [H', W', C] for `mode` (see the module docstring)."""
  _latent_method(method)
  num_classes = int(getattr(method, "num_classes", 0) or 0)
  rng = jax.random.PRNGKey(seed)
  if num < 1 or rows < 1:
    raise ValueError(f"--num and --rows must be >= 1; got {num}, {rows}")
  if mode == "classes":
    if not num_classes:
      raise ValueError("--mode=classes needs a class-conditional model; use --mode=truncation or interpolation")
    cls = _labels(method, classes, len(classes) if classes else min(num_classes, 10))
    return sampling.class_sheet(g_fn, rng, cls, num, method.latent_dim, truncation, batch_size)
  if mode == "truncation":
    return sampling.truncation_sweep(g_fn, rng, list(thresholds), num, method.latent_dim, _labels(method, classes, num),
                                     batch_size)
  if mode == "interpolation":
    rng0, rng1 = jax.random.split(rng)
    z0 = sampling.truncated_normal(rng0, (rows, method.latent_dim), truncation)
    z1 = sampling.truncated_normal(rng1, (rows, method.latent_dim), truncation)
    return sampling.interpolation_sheet(g_fn, z0, z1, num, _labels(method, classes, rows), interp, batch_size)
  raise ValueError(f"unknown --mode={mode!r}; choose from {MODES}")


def sample(workdir: str, mode: str, out: str | None = None, config: ml_collections.ConfigDict | None = None,
           image_shape: Sequence[int] | None = None, num_classes: int | None = None, use_ema: bool = True,
           **sheet_kwargs) -> str:
  """Restores the newest checkpoint of `workdir`, writes the `mode` sheet as PNG; returns its path."""
  workdir = paths.resolve(workdir)   # a URL (gs://bucket/run) stays one
  config = config if config is not None else load_run_config(workdir)
  method = build_method(config, image_shape, num_classes)
  state, step = restore_state(method, workdir)
  sheet = make_sheet(method, make_g_fn(method, state, use_ema), mode, **sheet_kwargs)
  out = out or os.path.join(workdir, "samples", f"{mode}_step_{step:08d}.png")
  sampling.save_grid(out, sheet)
  return out


# ---------------------------------------------------------------------------------------------
# CLI

def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module defines none."""
  global _WORKDIR, _MODE, _CONFIG, _OUT, _NUM, _ROWS, _CLASSES, _TRUNCATION, _THRESHOLDS, _INTERP, _SEED, _EMA, _IMAGE_SHAPE, _NUM_CLASSES, _VERBOSE
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (config.json + checkpoints/).")
  _MODE = flags.DEFINE_enum("mode", "classes", MODES, "Which sheet to write.")
  _CONFIG = config_flags.define_config_flag("config", "Config name or file, with :variant (default: the run's "
                                            "config.json).")
  _VERBOSE = flags.DEFINE_bool("verbose", False, "Show the traceback of an error instead of one line "
                               f"(also ${config_flags.VERBOSE_ENV}=1).")
  _OUT = flags.DEFINE_string("out", None, "Output PNG (default: workdir/samples/<mode>_step_<step>.png).")
  _NUM = flags.DEFINE_integer("num", 8, "Samples per row (classes, truncation) / steps (interpolation).")
  _ROWS = flags.DEFINE_integer("rows", 4, "Rows of an interpolation sheet.")
  _CLASSES = flags.DEFINE_list("classes", None, "Class ids, e.g. 0,1,2 (default 0..min(K,10)-1).")
  _TRUNCATION = flags.DEFINE_float("truncation", 0.0, "Truncation threshold for z (0 = none).")
  _THRESHOLDS = flags.DEFINE_list("thresholds", ["2", "1", "0.5", "0.04"],
                                  "Thresholds of the truncation sweep, one row each ('none' = untruncated).")
  _INTERP = flags.DEFINE_enum("interp", "lerp", ["lerp", "slerp"], "Interpolation path.")
  _SEED = flags.DEFINE_integer("seed", 0, "Latent seed.")
  _EMA = flags.DEFINE_bool("ema", True, "Sample the EMA generator (--noema: the trained params).")
  _IMAGE_SHAPE = flags.DEFINE_list("image_shape", None, "H,W,C when the data set is not on this machine.")
  _NUM_CLASSES = flags.DEFINE_integer("num_classes", 0, "Number of classes, with --image_shape.")


def _threshold(value: str) -> float | None:
  return None if value.lower() in ("none", "0", "inf") else float(value)


def main(argv):
  if len(argv) > 1:
    config_flags.report_error(ValueError(f"unexpected arguments {argv[1:]}: pass flags as --name=value"))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if not _WORKDIR.value:
    config_flags.report_error(ValueError("--workdir is required: pass --workdir=DIR, the folder of a trained run"))
  try:
    path = sample(_WORKDIR.value, _MODE.value, out=_OUT.value, config=_CONFIG.value,
                  image_shape=_IMAGE_SHAPE.value, num_classes=_NUM_CLASSES.value, use_ema=_EMA.value,
                  seed=_SEED.value, num=_NUM.value, rows=_ROWS.value,
                  classes=[int(c) for c in _CLASSES.value] if _CLASSES.value else None,
                  truncation=_TRUNCATION.value or None,
                  thresholds=[_threshold(t) for t in _THRESHOLDS.value], interp=_INTERP.value)
  except config_flags.USER_ERRORS as e:
    if _VERBOSE.value or config_flags.verbose():
      raise
    config_flags.report_error(e)
  print(path)


if __name__ == "__main__":
  define_flags()
  jax.config.config_with_absl()   # --jax_platforms, --jax_debug_nans, ...: JAX's options as flags
  app.run(main, flags_parser=config_flags.parse_flags)
