"""Apply a trained image-to-image translator to your own images: `python -m ganzoo.translate`.

  python -m ganzoo.translate --workdir=workdirs/facades --input=my_labels/ --output=out/
  python -m ganzoo.translate --workdir=workdirs/horse2zebra --input=horse.jpg --output=out/ --target=B
  python -m ganzoo.translate --workdir=workdirs/stargan --input=faces/ --output=out/ --target=Blond_Hair,Young

Restores the newest checkpoint of a run whose family translates images (pix2pix, CycleGAN, StarGAN:
`Method.translation_spec()`), reads `--input` (one image, or every PNG/JPEG/BMP/WebP file directly
in a folder, sorted by name), brings each image to the size the model was trained at, translates
them in batches with `Method.translate` and writes
  <output>/<name>.png   each translation at the model's size (<name>: the input's file name
                        without its extension; two inputs of one stem keep their extension too:
                        a_jpg.png, a_png.png), and
  <output>/sheet.png    the first --sheet_max (input | output) pairs side by side, 4 pairs a row.

Images are read as the reference code reads them (junyanz/pytorch-CycleGAN-and-pix2pix,
data/base_dataset.py and data/*_dataset.py: `Image.open(path).convert('RGB')`, and
`transforms.Grayscale(1)` when the model takes one channel): grey images become RGB for a
3-channel model and colour images grey (ITU-R 601 luma, PIL's 'L') for a 1-channel one; alpha is
dropped. Pixels map to [-1, 1] as x / 127.5 - 1 (ToTensor + Normalize(0.5, 0.5)), outputs back as
round((y + 1) * 127.5), as everywhere in ganzoo. `--resize` says how an image of another size
reaches the model's H x W:
  fit   (default) bicubic resize to exactly H x W, not keeping the aspect ratio: the reference's
        test-time transform (options/test_options.py sets load_size = crop_size, so the default
        `--preprocess resize_and_crop` of data/base_dataset.py get_transform is
        transforms.Resize([load_size, load_size], BICUBIC), then a crop of the whole image).
        The same as `crop` for square images, the layout of facades and horse2zebra.
  crop  keep the aspect ratio: bicubic resize so the image covers H x W (the short side to the
        model's size), then the centre H x W crop (torchvision's CenterCrop rounding).
  none  no resizing: every image must already be H x W (else one `error:` line).

`--target` picks the mapping of a family with several (`TranslationSpec.targets`): CycleGAN the
output domain 'A' or 'B' (default 'B': A -> B); StarGAN a domain name, or for attribute models a
comma-separated list of attributes to switch on (the others off); pix2pix has one mapping and
takes none. What stays random at test time (pix2pix keeps dropout on, as the paper does) draws
from `--seed`: the batch starting at image i uses fold_in(PRNGKey(seed), i), so such outputs depend
on --seed and --batch_size, and are the same on every rerun with both fixed.

A bad input is one `error:` line (no checkpoint, a family that does not translate, an unknown
target, no images, an unreadable image); `--verbose` (or GANZOO_VERBOSE=1) shows the traceback.
The data set only supplies the image shape: a run whose data are not on this machine takes
`--image_shape=H,W,C` (and `--num_classes=K`), as `ganzoo.sample` does.
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
from ganzoo import runs
from ganzoo import sampling
from ganzoo.data.pipeline import to_float
from ganzoo.data.sources import IMAGE_EXTENSIONS
from ganzoo.state import TrainState

RESIZE_MODES = ("fit", "crop", "none")
SHEET = "sheet.png"
SHEET_PAIRS_PER_ROW = 4


# ---------------------------------------------------------------------------------------------
# Reading and preparing images

def list_images(path: str) -> list[str]:
  """`path` itself when it is a file, else the image files directly in the folder, sorted by name."""
  if not path:
    raise ValueError("--input is required: pass an image file or a folder of PNG/JPEG images")
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise ValueError(f"--input={path} does not exist: pass an image file or a folder of PNG/JPEG images")
  files = sorted(os.path.join(path, f) for f in os.listdir(path)
                 if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(os.path.join(path, f)))
  if not files:
    raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}: put the images to translate directly "
                     "in that folder, or pass one image file as --input")
  return files


def _resample():
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return Image.Resampling.BICUBIC


def prepare_image(image, shape: Sequence[int], resize: str = "fit") -> np.ndarray:
  """A PIL image -> uint8 [H, W, C] at `shape` (H, W, C) by the `resize` mode (module docstring)."""
  h, w, c = (int(s) for s in shape)
  if c not in (1, 3):
    raise ValueError(f"the model takes {c}-channel images; ganzoo.translate reads 1 (grey) or 3 (RGB) channels")
  image = image.convert("L" if c == 1 else "RGB")
  if resize == "fit":
    if image.size != (w, h):
      image = image.resize((w, h), _resample())
  elif resize == "crop":
    iw, ih = image.size
    if (iw, ih) != (w, h):
      scale = max(w / iw, h / ih)
      nw, nh = max(w, int(round(iw * scale))), max(h, int(round(ih * scale)))
      if (nw, nh) != (iw, ih):
        image = image.resize((nw, nh), _resample())
      # torchvision.transforms.CenterCrop: top = int(round((H' - h) / 2)), left likewise.
      top, left = int(round((nh - h) / 2.0)), int(round((nw - w) / 2.0))
      image = image.crop((left, top, left + w, top + h))
  elif resize == "none":
    if image.size != (w, h):
      raise ValueError(f"an image is {image.size[0]}x{image.size[1]} (WxH); the model takes {w}x{h}: pass "
                       "--resize=fit or --resize=crop, or images of that size")
  else:
    raise ValueError(f"unknown --resize={resize!r}; choose from {RESIZE_MODES}")
  x = np.asarray(image, dtype=np.uint8)
  return x[..., None] if x.ndim == 2 else x


def _unreadable(path: str, exc: BaseException) -> ValueError:
  text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
  return ValueError(f"cannot read the image {path} ({text}): pass PNG or JPEG files, or remove it")


def load_image(path: str, shape: Sequence[int], resize: str = "fit") -> np.ndarray:
  """Reads `path` (any size, any PIL mode) and prepares it for a model of `shape`; an unreadable file
  is a one-line ValueError."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    image = Image.open(path)
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    # PIL raises UnidentifiedImageError (not an image), OSError (truncated) or even SyntaxError (a
    # broken PNG chunk): a bad file, not a bug (as ganzoo.data.sources.FolderSource reads them).
    raise _unreadable(path, e) from None
  with image:
    if resize == "none" and image.size != (int(shape[1]), int(shape[0])):
      raise ValueError(f"{path} is {image.size[0]}x{image.size[1]} (WxH); the model takes {shape[1]}x{shape[0]}: "
                       "pass --resize=fit or --resize=crop, or images of that size")
    return prepare_image(image, shape, resize)


def check_images(files: Sequence[str], shape: Sequence[int], resize: str) -> None:
  """Reads every file's header (cheap: no pixels): a file PIL cannot identify, or with --resize=none an
  image of another size, is a one-line ValueError before anything is restored or written. (A file
  whose pixels are damaged past its header is still one line, from `load_image`, when its batch comes.)"""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for path in files:
    try:
      with Image.open(path) as image:
        size = image.size
    except Exception as e:  # pylint: disable=broad-except  (see load_image)
      raise _unreadable(path, e) from None
    if resize == "none" and size != (int(shape[1]), int(shape[0])):
      raise ValueError(f"{path} is {size[0]}x{size[1]} (WxH); the model takes {shape[1]}x{shape[0]}: "
                       "pass --resize=fit or --resize=crop, or images of that size")


def output_names(files: Sequence[str]) -> list[str]:
  """The output file name of each input: <stem>.png, or <stem>_<ext>.png when two inputs share a stem."""
  stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
  seen: dict[str, int] = {}
  for s in stems:
    seen[s] = seen.get(s, 0) + 1
  names = []
  for f, s in zip(files, stems):
    ext = os.path.splitext(f)[1].lstrip(".").lower()
    names.append(f"{s}_{ext}.png" if seen[s] > 1 else f"{s}.png")
  if len(set(names)) != len(names):
    raise ValueError("inputs give the same output name twice (same name, same extension in another case): rename them")
  return names


# ---------------------------------------------------------------------------------------------
# Translating

def translation_spec(method: methods.Method) -> methods.TranslationSpec:
  """The family's `TranslationSpec`, or a one-line ValueError when the family generates from noise."""
  spec = method.translation_spec()
  if spec is None:
    raise ValueError(f"the run's family {method.name!r} does not translate images: ganzoo.translate needs a run of "
                     "pix2pix, cyclegan or stargan (for a noise-to-image family use python -m ganzoo.sample)")
  return spec


def check_target(spec: methods.TranslationSpec, target: str | None, family: str = "") -> str | None:
  """`target` checked against `spec.targets` (each comma-separated part, for attribute models); None or
  '' gives `spec.default_target`."""
  if target is None or not str(target).strip():
    return spec.default_target
  target = str(target).strip()
  if not spec.targets:
    raise ValueError(f"family {family!r} has one mapping and takes no --target; drop --target={target}")
  bad = [t for t in (p.strip() for p in target.split(",")) if t not in spec.targets]
  if bad:
    raise ValueError(f"unknown --target {', '.join(map(repr, bad))}; choose from {', '.join(spec.targets)}")
  return target


def batch_key(seed: int, start: int) -> jax.Array:
  """The rng of the batch that starts at image `start` (what is random at test time, e.g. dropout)."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), start)


def make_translator(method: methods.Method, target: str | None, batch_size: int, seed: int = 0):
  """fn(state, images, start) -> the uint8 translations [n, H, W, C] of uint8 images [n <= batch_size,
  H, W, C], the first of which is image number `start` of the run (its rng: `batch_key(seed, start)`).

  Every call of the jitted translator sees a batch of exactly `batch_size` (a short batch is padded
  with zeros and their outputs dropped): one compilation, and the outputs of the real images do not
  depend on the padding (inference mode: BatchNorm uses its running statistics, InstanceNorm and
  dropout act per image)."""
  jitted = jax.jit(lambda s, x, r: method.translate(s, x, target, r))

  def fn(state: TrainState, images: np.ndarray, start: int = 0) -> np.ndarray:
    n = len(images)
    if not 0 < n <= batch_size:
      raise ValueError(f"a batch of {n} images; --batch_size={batch_size} takes 1 to {batch_size}")
    x = to_float(np.asarray(images, np.uint8))
    if n < batch_size:
      x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)], axis=0)
    y = np.asarray(jitted(state, x, batch_key(seed, start)))[:n]
    if y.shape != images.shape:
      raise ValueError(f"the family's translate returned {y.shape[1:]} images for inputs of {images.shape[1:]}; "
                       "a translator keeps the image shape")
    return sampling.to_uint8(y)

  return fn


def translate(workdir: str, input_path: str, output: str, target: str | None = None, resize: str = "fit",
              batch_size: int = 8, seed: int = 0, config: ml_collections.ConfigDict | None = None,
              image_shape: Sequence[int] | None = None, num_classes: int | None = None,
              sheet_max: int = 64) -> dict[str, object]:
  """Translates the images of `input_path` with the newest checkpoint of `workdir` into the folder
  `output` (module docstring). Every cheap check (flags, run, family, target, inputs) comes before
  the checkpoint is restored. Returns {'images': written paths, 'sheet': its path, 'step': the
  checkpoint's step, 'target': the target used}."""
  if resize not in RESIZE_MODES:
    raise ValueError(f"unknown --resize={resize!r}; choose from {RESIZE_MODES}")
  if batch_size < 1 or sheet_max < 1:
    raise ValueError(f"--batch_size and --sheet_max must be >= 1; got {batch_size}, {sheet_max}")
  if not workdir:
    raise ValueError("--workdir is required: pass --workdir=DIR, the folder of a trained run")
  if not output:
    raise ValueError("--output is required: pass the folder for the translated images")
  workdir = paths.resolve(workdir)
  if not paths.exists(workdir):
    raise ValueError(f"--workdir={workdir} does not exist: pass the folder of a trained run")
  config = config if config is not None else runs.load_run_config(workdir)
  method = runs.build_method(config, image_shape, num_classes)
  spec = translation_spec(method)
  target = check_target(spec, target, method.name)
  files = list_images(input_path)
  output = os.path.abspath(os.path.expanduser(output))
  names = output_names(files)
  if SHEET in names:
    raise ValueError(f"an input named {os.path.splitext(SHEET)[0]}.* would give {SHEET}, the name of the sheet: "
                     "rename it")
  outs = [os.path.join(output, n) for n in names]
  clash = [f for f, o in zip(files, outs) if os.path.abspath(f) == o]
  if clash:
    raise ValueError(f"--output={output} would overwrite the input {clash[0]}: pass another --output folder")
  shape = tuple(int(s) for s in spec.image_shape)
  if len(shape) != 3:
    raise ValueError(f"the family's translation_spec().image_shape is {shape}; a translator takes (H, W, C) images")
  check_images(files, shape, resize)
  state, step = runs.restore_state(method, workdir)
  os.makedirs(output, exist_ok=True)
  bs = min(batch_size, len(files))
  fn = make_translator(method, target, bs, seed)
  pairs = []
  for start in range(0, len(files), bs):
    x = np.stack([load_image(f, shape, resize) for f in files[start:start + bs]])
    y = fn(state, x, start)
    for k in range(len(x)):
      sampling.save_grid(outs[start + k], y[k])
      if len(pairs) < 2 * sheet_max:
        pairs += [x[k], y[k]]
  sheet = os.path.join(output, SHEET)
  sampling.save_grid(sheet, make_sheet(np.stack(pairs)))
  return {"images": outs, "sheet": sheet, "step": step, "target": target}


def make_sheet(pairs: np.ndarray) -> np.ndarray:
  """uint8 [2k, H, W, C] (input, output, input, output, ...) -> a grid of SHEET_PAIRS_PER_ROW pairs a
  row, each input left of its output (`sampling.make_grid`, 2 pixels of padding)."""
  return sampling.make_grid(pairs, nrow=2 * min(SHEET_PAIRS_PER_ROW, len(pairs) // 2))


# ---------------------------------------------------------------------------------------------
# CLI

def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """CLI flags; defined only when run as a program, so importing this module defines none (tests
  define them on a FlagValues of their own: `main` reads them through the holders)."""
  global _WORKDIR, _INPUT, _OUTPUT, _TARGET, _RESIZE, _BATCH_SIZE, _SEED, _SHEET_MAX, _CONFIG, _IMAGE_SHAPE
  global _NUM_CLASSES, _VERBOSE
  fv = dict(flag_values=flag_values)
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory of a translator (config.json + checkpoints/).", **fv)
  _INPUT = flags.DEFINE_string("input", None, "An image file, or a folder of PNG/JPEG images (not its subfolders).",
                               **fv)
  _OUTPUT = flags.DEFINE_string("output", None, "Folder for <name>.png translations and sheet.png.", **fv)
  _TARGET = flags.DEFINE_string("target", None, "The mapping: CycleGAN 'A' or 'B' (output domain), StarGAN a domain "
                                "or comma-separated attributes to switch on; default the family's.", **fv)
  _RESIZE = flags.DEFINE_enum("resize", "fit", RESIZE_MODES, "fit: bicubic resize to the model's size (the "
                              "reference's test transform); crop: keep the aspect ratio, resize and centre crop; "
                              "none: images must be the model's size.", **fv)
  _BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per forward pass.", **fv)
  _SEED = flags.DEFINE_integer("seed", 0, "Seed of what is random at test time (pix2pix's dropout).", **fv)
  _SHEET_MAX = flags.DEFINE_integer("sheet_max", 64, "Pairs on sheet.png (the first ones).", **fv)
  _CONFIG = config_flags.define_config_flag("config", "Config name or file, with :variant (default: the run's "
                                            "config.json).", **fv)
  _IMAGE_SHAPE = flags.DEFINE_list("image_shape", None, "H,W,C of the training data when they are not on this "
                                   "machine.", **fv)
  _NUM_CLASSES = flags.DEFINE_integer("num_classes", 0, "Number of classes, with --image_shape.", **fv)
  _VERBOSE = flags.DEFINE_bool("verbose", False, "Show the traceback of an error instead of one line "
                               f"(also ${config_flags.VERBOSE_ENV}=1).", **fv)


def main(argv):
  if len(argv) > 1:
    config_flags.report_error(ValueError(f"unexpected arguments {argv[1:]}: pass flags as --name=value"))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    result = translate(_WORKDIR.value, _INPUT.value, _OUTPUT.value, target=_TARGET.value, resize=_RESIZE.value,
                       batch_size=_BATCH_SIZE.value, seed=_SEED.value, config=_CONFIG.value,
                       image_shape=_IMAGE_SHAPE.value, num_classes=_NUM_CLASSES.value, sheet_max=_SHEET_MAX.value)
  except config_flags.USER_ERRORS as e:
    if _VERBOSE.value or config_flags.verbose():
      raise
    config_flags.report_error(e)
  where = os.path.dirname(result["sheet"])
  print(f"{len(result['images'])} images translated by the step-{result['step']} checkpoint"
        + (f" (target {result['target']})" if result["target"] else "") + f" into {where}")
  print(result["sheet"])


if __name__ == "__main__":
  define_flags()
  jax.config.config_with_absl()   # --jax_platforms, --jax_debug_nans, ...: JAX's options as flags
  app.run(main, flags_parser=config_flags.parse_flags)
