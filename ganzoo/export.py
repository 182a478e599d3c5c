"""Take the trained generator out of a run, and use it with no run, data set or config around.

  python -m ganzoo.export --workdir=workdirs/biggan128 --out=biggan128.msgpack   # + biggan128.json
  python -m ganzoo.export --workdir=workdirs/biggan128 --out=exports/biggan128    # a folder: generator.*
  python -m ganzoo.export --workdir=RUN --out=G.msgpack --step=20000 --noema

writes the family's generator (`Method.generator_spec`: G for config.method='gan') as it runs in
the forward pass:
- the EMA weights and the EMA batch statistics when the network has an EMA (`--noema`, or a
  network without EMA: the trained params and their running statistics), as `ganzoo.sample` uses;
- spectral normalization already applied (W / sigma with the checkpoint's stored power-iteration
  vectors, `nets.inference_variables`), so loading needs no SN state and runs no power iteration;
- every variable collection the module reads at inference ('params', and 'batch_stats' when it has
  BatchNorm), as a `flax.serialization` msgpack of {collection: tree} of numpy arrays;
and beside it a small JSON of what rebuilds the module: the family and network, the config
sections the family's `build_generator` needs (the model section for a GAN), latent size, number
of classes, image shape, value range, the ganzoo version, the step exported and whether it is the
EMA. `--out=G.msgpack` writes G.msgpack and G.json; any other `--out` is a folder that gets
generator.msgpack and generator.json. `--step` picks a checkpoint (default the newest).

In a notebook (`import ganzoo` stays cheap: this module, and JAX, load on the first call):

  g = ganzoo.load_generator("biggan128.msgpack")       # or the .json, or the export folder
  images = g.sample(jax.random.PRNGKey(0), 16, condition=207)   # uint8 [16, H, W, C]
  floats = g.sample(0, 16, uint8=False)                         # float32 in g.value_range
  images = g(z, y)                                              # your own latents

`g.sample(rng, n, condition)` draws the latents exactly as the family's `Method.sample` does (for a
GAN: rng_z, rng_y = split(rng); z ~ N(0, I); uniform labels unless `condition` gives them), so it
returns the images `Method.sample(state, rng, n, condition)` gives from the run's state.
A bad input is one `error:` line; `--verbose` (or GANZOO_VERBOSE=1) shows the traceback.
"""

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import ganzoo
from ganzoo import checkpoint
from ganzoo import config_flags
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import runs
from ganzoo import sampling
from ganzoo.state import TrainState

FORMAT = "ganzoo.generator"
FORMAT_VERSION = 1
DIR_STEM = "generator"     # --out=DIR writes DIR/generator.msgpack and DIR/generator.json
_EXT = ".msgpack"
PyTree = Any
_REQUIRED = ("format_version", "weights", "method", "config", "latent_dim", "num_classes", "image_shape",
             "value_range", "step", "ema")


def output_paths(out: str) -> tuple[str, str]:
  """(weights, metadata) paths of `--out`: G.msgpack -> (G.msgpack, G.json); DIR -> DIR/generator.*"""
  if not out:
    raise ValueError("--out is empty: pass --out=G.msgpack (G.json is written beside it) or --out=DIR")
  out = os.path.abspath(os.path.expanduser(out))
  if out.endswith(".json"):
    raise ValueError(f"--out={out} names the metadata file: pass the weights' name, "
                     f"--out={out[:-len('.json')]}{_EXT} (the .json is written beside it), or a folder")
  if out.endswith(_EXT):
    return out, out[:-len(_EXT)] + ".json"
  return os.path.join(out, DIR_STEM + _EXT), os.path.join(out, DIR_STEM + ".json")


def restore_step(method: methods.Method, workdir: str, step: int | None = None) -> tuple[TrainState, int]:
  """Checkpoint `step` of `workdir` (None: the newest) on the first device."""
  if step is None:
    return runs.restore_state(method, workdir)
  directory = os.path.join(workdir, "checkpoints")
  steps = checkpoint.Checkpointer(directory).steps() if os.path.isdir(directory) else []
  if int(step) not in steps:
    have = f"it has steps {steps}" if steps else "it has none; train first (python -m ganzoo.main ...)"
    raise ValueError(f"no checkpoint at --step={step} in {directory}: {have}")
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
  ckpt = checkpoint.Checkpointer(directory)
  try:
    return ckpt.restore(int(step), target), int(step)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"checkpoint {step} in {directory} does not restore onto this run's model "
                     f"({type(e).__name__}); export it with that run's config (its config.json)") from e
  finally:
    ckpt.close()


def generator_variables(method: methods.Method, state: TrainState,
                        use_ema: bool = True) -> tuple[dict[str, PyTree], methods.GeneratorSpec, bool]:
  """({collection: numpy tree} of the generator as its forward pass uses it, its spec, whether EMA).

  The same `nets.inference_variables` that `Method.sample` runs (EMA params and EMA statistics
  when the network has an EMA and `use_ema`; W / sigma from the stored SN vectors), computed under
  jit as it is inside the jitted sampler, so the exported generator gives the run's images.
  """
  spec = method.generator_spec()
  if spec is None:
    raise ValueError(f"family {method.name!r} has no latent-variable generator to export")
  net_spec = method.nets[spec.net]
  ema = bool(use_ema and net_spec.has_ema)
  params, batch_stats = jax.jit(lambda net: nets_lib.inference_variables(net_spec, net, ema))(state.nets[spec.net])
  return jax.device_get(nets_lib.variables(params, batch_stats)), spec, ema


def export(workdir: str, out: str, step: int | None = None, use_ema: bool = True,
           config: ml_collections.ConfigDict | None = None, image_shape: Sequence[int] | None = None,
           num_classes: int | None = None) -> tuple[str, str]:
  """Writes the generator of `workdir` (checkpoint `step`, default newest) to `out`; returns the
  (weights, metadata) paths. `config`, `image_shape`, `num_classes` as in `ganzoo.sample.sample`."""
  weights_path, meta_path = output_paths(out)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = config if config is not None else runs.load_run_config(workdir)
  method = runs.build_method(config, image_shape, num_classes)
  if method.generator_spec() is None:   # before restoring: a family without one fails fast
    raise ValueError(f"family {method.name!r} has no latent-variable generator to export")
  state, step = restore_step(method, workdir, step)
  variables, spec, ema = generator_variables(method, state, use_ema)
  net_spec = method.nets[spec.net]
  meta = {
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "weights": os.path.basename(weights_path),
      "ganzoo_version": ganzoo.__version__,
      "method": method.name,
      "net": spec.net,
      "model": spec.config.get("model", {}).get("name"),
      "config": spec.config,
      "latent_dim": int(spec.latent_dim),
      "num_classes": int(spec.num_classes),
      "image_shape": [int(s) for s in spec.image_shape],
      "value_range": [float(v) for v in spec.value_range],
      "step": int(step),
      "ema": ema,
      # W / sigma is already in the weights; the file holds no SN state.
      "spectral_norm_applied": bool(jax.tree.leaves(state.nets[spec.net].sn)),
      "collections": sorted(variables),
      "num_params": int(sum(np.size(x) for x in jax.tree.leaves(variables["params"]))),
      "source_workdir": workdir,
  }
  if use_ema and not net_spec.has_ema:
    meta["note"] = f"network {spec.net!r} has no EMA in this run (nets.{spec.net}.ema.decay = 0): trained params"
  os.makedirs(os.path.dirname(weights_path), exist_ok=True)
  _write_atomic(weights_path, flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(variables)))
  _write_atomic(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
  return weights_path, meta_path


def _write_atomic(path: str, data: bytes) -> None:
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Loading

def export_paths(path: str) -> tuple[str, str]:
  """(weights, metadata) of an export named by its .msgpack, its .json or its folder."""
  path = os.path.abspath(os.path.expanduser(str(path)))
  hint = "pass the .msgpack, the .json or the folder that `python -m ganzoo.export --workdir=RUN --out=...` wrote"
  if os.path.isdir(path):
    weights, meta = os.path.join(path, DIR_STEM + _EXT), os.path.join(path, DIR_STEM + ".json")
  elif path.endswith(".json"):
    weights, meta = None, path
  elif path.endswith(_EXT):
    weights, meta = path, path[:-len(_EXT)] + ".json"
  else:
    raise ValueError(f"{path} is not a ganzoo generator export: {hint}")
  if not os.path.isfile(meta):
    raise ValueError(f"{path} is not a ganzoo generator export ({meta} does not exist): {hint}")
  return weights, meta


def read_meta(meta_path: str) -> dict[str, Any]:
  """The export's JSON, checked to be one (format and version)."""
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{meta_path} is not a ganzoo generator export (not JSON: {e})") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise ValueError(f"{meta_path} is not a ganzoo generator export (no \"format\": \"{FORMAT}\"); "
                     "write one with python -m ganzoo.export --workdir=RUN --out=...")
  missing = [k for k in _REQUIRED if k not in meta]
  if missing:
    raise ValueError(f"{meta_path} lacks {missing}: it is a damaged ganzoo generator export; export it again")
  if int(meta.get("format_version", 0)) > FORMAT_VERSION:
    raise ValueError(f"{meta_path} has export format {meta['format_version']}, newer than this ganzoo "
                     f"{ganzoo.__version__} reads ({FORMAT_VERSION}): upgrade ganzoo")
  return meta


class Generator:
  """An exported latent-variable generator: `sample(rng, n, condition)` and `g(z, y)`.

  Attributes: latent_dim, num_classes (0: unconditional), image_shape (H, W, C), value_range of the
  float output, step and ema (what was exported), meta (the whole JSON), module and variables (the
  Flax module and its {collection: tree}, for `module.apply(variables, z, y, train=False)`).
  """

  def __init__(self, module: Any, variables: dict[str, PyTree], meta: dict[str, Any]):
    self.module, self.variables, self.meta = module, variables, meta
    self.latent_dim = int(meta["latent_dim"])
    self.num_classes = int(meta["num_classes"])
    self.image_shape = tuple(int(s) for s in meta["image_shape"])
    self.value_range = tuple(float(v) for v in meta["value_range"])
    self.step, self.ema = int(meta["step"]), bool(meta["ema"])
    self._apply = jax.jit(lambda v, z, y: module.apply(v, z, y, train=False))

  def __repr__(self) -> str:
    return (f"Generator({self.meta.get('model')!r}, step={self.step}, ema={self.ema}, latent_dim={self.latent_dim}, "
            f"num_classes={self.num_classes}, image_shape={self.image_shape})")

  def labels(self, condition: Any, n: int) -> jax.Array | None:
    """int32 [n] labels from `condition`: one class id for all n, or n ids; None if unconditional."""
    if not self.num_classes:
      if condition is not None:
        raise ValueError("this generator is unconditional: call it without condition (or y)")
      return None
    y = np.asarray(condition)
    if y.ndim == 0:
      y = np.full((n,), y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
      raise ValueError(f"condition must be one class id or {n} class ids (integers); got {y.dtype} {y.shape}")
    bad = sorted({int(c) for c in y if not 0 <= c < self.num_classes})
    if bad:
      raise ValueError(f"classes {bad} out of range: the generator has {self.num_classes} classes "
                       f"(0..{self.num_classes - 1})")
    return jnp.asarray(y, jnp.int32)

  def latents(self, rng: jax.Array | int, n: int, condition: Any = None,
              truncation: float | None = None) -> tuple[jax.Array, jax.Array | None]:
    """(z, y) as `GAN.sample_latents` draws them: rng_z, rng_y = split(rng); z ~ N(0, I) [n, latent_dim]
    (truncated to [-t, t] with `truncation`, BigGAN's trick, `sampling.truncated_normal`); y uniform
    over the classes unless `condition` gives them."""
    rng = jax.random.PRNGKey(rng) if isinstance(rng, (int, np.integer)) else rng
    n = int(n)
    if n < 1:
      raise ValueError(f"n must be >= 1; got {n}")
    rng_z, rng_y = jax.random.split(rng)
    z = sampling.truncated_normal(rng_z, (n, self.latent_dim), truncation)
    if condition is not None:
      return z, self.labels(condition, n)
    return z, jax.random.randint(rng_y, (n,), 0, self.num_classes) if self.num_classes else None

  def __call__(self, z: Any, y: Any = None, uint8: bool = True) -> np.ndarray:
    """G(z, y) in inference mode: uint8 [N, H, W, C], or float32 in `value_range` with uint8=False."""
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.latent_dim:
      raise ValueError(f"z must be [N, {self.latent_dim}]; got shape {tuple(z.shape)}")
    if self.num_classes and y is None:
      raise ValueError(f"this generator is class-conditional ({self.num_classes} classes): pass y, N class ids")
    y = self.labels(y, z.shape[0]) if (y is not None or self.num_classes) else None
    images = np.asarray(self._apply(self.variables, z, y), np.float32)
    return self.to_uint8(images) if uint8 else images

  def sample(self, rng: jax.Array | int, n: int, condition: Any = None, truncation: float | None = None,
             uint8: bool = True) -> np.ndarray:
    """n images from latents drawn with `rng` (a key or an int seed); see `latents` and `__call__`."""
    z, y = self.latents(rng, n, condition, truncation)
    return self(z, y, uint8=uint8)

  def to_uint8(self, images: np.ndarray) -> np.ndarray:
    """round((x - lo) * 255 / (hi - lo)) clipped to [0, 255]; for [-1, 1] that is `sampling.to_uint8`
    (round((x + 1) * 127.5)) bit for bit, the quantization of the sample sheets and metrics."""
    lo, hi = self.value_range
    x = np.asarray(images, np.float32)
    return np.clip(np.round((x - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def load_generator(path: str) -> Generator:
  """The generator exported at `path` (its .msgpack, its .json, or the folder of `--out=DIR`).

  Rebuilds the module with the family's `build_generator` from the JSON alone: no data set, no
  workdir, no training config is read.
  """
  weights, meta_path = export_paths(path)
  meta = read_meta(meta_path)
  if weights is None:
    weights = os.path.join(os.path.dirname(meta_path), str(meta.get("weights", "")))
  if not os.path.isfile(weights):
    raise ValueError(f"{meta_path} names the weights {weights}, which do not exist: keep the .msgpack beside its .json")
  family = methods.get(meta.get("method", "gan"))
  data = methods.DataSpec(tuple(int(s) for s in meta["image_shape"]), int(meta["num_classes"]))
  module = family.build_generator(meta["config"], data)
  with open(weights, "rb") as f:
    raw = f.read()
  try:
    variables = flax.serialization.msgpack_restore(raw)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{weights} is not a flax msgpack of variables ({type(e).__name__}): export it again") from None
  if not isinstance(variables, dict) or "params" not in variables:
    raise ValueError(f"{weights} holds no 'params' collection: export it again with python -m ganzoo.export")
  # The restored tree must be the one the module expects (an export of another model, or a file
  # that does not go with this JSON, would otherwise fail deep inside apply).
  z = jnp.zeros((1, int(meta["latent_dim"])), jnp.float32)
  y = jnp.zeros((1,), jnp.int32) if data.num_classes else None
  key = jax.random.PRNGKey(0)
  expected = jax.eval_shape(lambda: module.init({"params": key, "dropout": key}, z, y, train=False))
  shapes = lambda t: {jax.tree_util.keystr(p): tuple(np.shape(x)) for p, x in jax.tree_util.tree_leaves_with_path(t)}
  want, got = shapes({k: expected[k] for k in variables if k in expected}), shapes(variables)
  if set(variables) != set(expected) or want != got:
    diff = sorted(set(want.items()) ^ set(got.items()))
    where = f"{diff[0][0]}" if diff else f"collections {sorted(variables)} vs {sorted(expected)}"
    raise ValueError(f"{weights} does not match the model its JSON describes (first difference: {where}): "
                     "keep each .msgpack with its own .json, or export again")
  return Generator(module, variables, meta)


# ---------------------------------------------------------------------------------------------
# CLI

def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module defines none."""
  global _WORKDIR, _OUT, _STEP, _EMA, _CONFIG, _IMAGE_SHAPE, _NUM_CLASSES, _VERBOSE
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (config.json + checkpoints/).")
  _OUT = flags.DEFINE_string("out", None, "G.msgpack (G.json is written beside it) or a folder (generator.msgpack "
                             "and generator.json in it).")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step to export (default: the newest).")
  _EMA = flags.DEFINE_bool("ema", True, "Export the EMA generator (--noema: the trained params).")
  _CONFIG = config_flags.define_config_flag("config", "Config name or file, with :variant (default: the run's "
                                            "config.json).")
  _IMAGE_SHAPE = flags.DEFINE_list("image_shape", None, "H,W,C when the data set is not on this machine.")
  _NUM_CLASSES = flags.DEFINE_integer("num_classes", 0, "Number of classes, with --image_shape.")
  _VERBOSE = flags.DEFINE_bool("verbose", False, "Show the traceback of an error instead of one line "
                               f"(also ${config_flags.VERBOSE_ENV}=1).")


def main(argv):
  if len(argv) > 1:
    config_flags.report_error(ValueError(f"unexpected arguments {argv[1:]}: pass flags as --name=value"))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if not _WORKDIR.value:
    config_flags.report_error(ValueError("--workdir is required: pass --workdir=DIR, the folder of a trained run"))
  if not _OUT.value:
    config_flags.report_error(ValueError("--out is required: pass --out=G.msgpack (G.json is written beside it) "
                                         "or --out=DIR"))
  try:
    paths = export(_WORKDIR.value, _OUT.value, step=_STEP.value, use_ema=_EMA.value, config=_CONFIG.value,
                   image_shape=_IMAGE_SHAPE.value, num_classes=_NUM_CLASSES.value)
  except config_flags.USER_ERRORS as e:
    if _VERBOSE.value or config_flags.verbose():
      raise
    config_flags.report_error(e)
  print("\n".join(paths))


if __name__ == "__main__":
  jax.config.config_with_absl()
  define_flags()
  app.run(main, flags_parser=config_flags.parse_flags)
