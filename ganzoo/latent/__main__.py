"""`python -m ganzoo.latent invert|directions ...`: GAN inversion and latent directions of a trained run.

  python -m ganzoo.latent invert --workdir=RUN --images=DIR --space=w+ --out=DIR [--steps=1000]
      [--perceptual=none|inception|d --perceptual_weight=0.1] [--encoder_steps=0]
  python -m ganzoo.latent directions --workdir=RUN --method=sefa|ganspace|interfacegan|voynov --out=DIR
      [--num=8 --columns=7 --strength=3 --attribute=brightness]

invert writes DIR/latents.npz (latents, per-sample mse, file names, space; the noise buffers in
W / W+), DIR/sheet.png (rows of target | reconstruction pairs) and DIR/inversion.json (numbers).
directions writes DIR/directions.npz (vectors [K, D], values, space) and DIR/edits.png (one row per
direction, columns from -strength to +strength sigma along it; sigma = the latent's spread). A bad
input is one `error:` line (`--verbose`, or GANZOO_VERBOSE=1, shows the traceback).
"""

from absl import app
from absl import flags
from absl import logging
import jax

from ganzoo import config_flags
from ganzoo.latent import cli

COMMANDS = ("invert", "directions")


def define_flags() -> None:
  """CLI flags; defined only when run as a program."""
  f = flags
  f.DEFINE_string("workdir", None, "Run directory (config.json + checkpoints/).")
  f.DEFINE_string("out", None, "Output folder.")
  f.DEFINE_string("images", None, "invert: a folder of images (PNG/JPEG), or one image file.")
  f.DEFINE_enum("space", "w", ["z", "w", "w+"], "invert: the latent space (w, w+: style-based runs only).")
  f.DEFINE_integer("steps", 1000, "invert: optimization steps (projector.py: 1000).")
  f.DEFINE_float("lr", 0.1, "invert: initial learning rate.")
  f.DEFINE_enum("perceptual", "none", ["none", "inception", "d"], "invert: the perceptual distance added to MSE.")
  f.DEFINE_float("perceptual_weight", 0.1, "invert: its weight (with --perceptual).")
  f.DEFINE_integer("encoder_steps", 0, "invert: train an encoder for this many steps first and refine from E(x).")
  f.DEFINE_integer("batch_size", 100, "invert: images optimized together.")
  f.DEFINE_integer("label", 0, "Class of a class-conditional generator.")
  f.DEFINE_enum("method", "sefa", ["sefa", "ganspace", "interfacegan", "voynov"], "directions: the method.")
  f.DEFINE_integer("num", 8, "directions: number of directions.")
  f.DEFINE_integer("columns", 7, "directions: edits per row.")
  f.DEFINE_float("strength", 3.0, "directions: the largest edit, in units of the latent's spread.")
  f.DEFINE_string("attribute", "brightness", "directions (interfacegan): brightness | coverage.")
  f.DEFINE_integer("samples", 2000, "directions (ganspace, interfacegan): latents sampled.")
  f.DEFINE_integer("seed", 0, "Random seed.")
  f.DEFINE_bool("ema", True, "Use the EMA generator (--noema: the trained params).")
  f.DEFINE_bool("verbose", False, f"Show the traceback of an error (also ${config_flags.VERBOSE_ENV}=1).")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) != 2 or argv[1] not in COMMANDS:
    config_flags.report_error(ValueError(f"usage: python -m ganzoo.latent {'|'.join(COMMANDS)} --workdir=RUN "
                                         f"--out=DIR ...; got {argv[1:] or 'no command'}"))
  fv = flags.FLAGS
  try:
    if argv[1] == "invert":
      result = cli.invert_images(fv.workdir, fv.images, fv.out, space=fv.space, steps=fv.steps, lr=fv.lr,
                                 perceptual=fv.perceptual, perceptual_weight=fv.perceptual_weight,
                                 encoder_steps=fv.encoder_steps, batch_size=fv.batch_size, seed=fv.seed,
                                 use_ema=fv.ema, label=fv.label)
      print(f"{result['num_images']} images inverted into {result['space']} (mean mse {result['mse_mean']:.5f}, "
            f"{result['wall_s']:.1f}s): {result['latents']}")
      print(result["sheet"])
    else:
      result = cli.find_directions(fv.workdir, fv.method, fv.out, num=fv.num, columns=fv.columns,
                                   strength=fv.strength, attribute=fv.attribute, samples=fv.samples, seed=fv.seed,
                                   use_ema=fv.ema, label=fv.label)
      print(f"{result['num']} {result['method']} directions in {result['space']}: {result['directions']}")
      print(result["sheet"])
  except config_flags.USER_ERRORS as e:
    if fv.verbose or config_flags.verbose():
      raise
    config_flags.report_error(e)


if __name__ == "__main__":
  define_flags()
  jax.config.config_with_absl()
  app.run(main, flags_parser=config_flags.parse_flags)
