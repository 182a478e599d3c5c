"""What `python -m ganzoo.latent` runs, as functions (importable from notebooks and tests)."""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ganzoo import sampling
from ganzoo.data.pipeline import to_float
from ganzoo.data.sources import IMAGE_EXTENSIONS
from ganzoo.latent import directions as dirs
from ganzoo.latent import encoder as enc_lib
from ganzoo.latent import generator as gen_lib
from ganzoo.latent import inversion as inv
from ganzoo.latent import perceptual as perc

PAIRS_PER_ROW = 4


def _require(value, flag: str, what: str) -> None:
  if not value:
    raise ValueError(f"--{flag} is required: pass --{flag}={what}")


def list_images(path: str) -> list[str]:
  """`path` itself when it is an image file, else the image files directly in the folder, by name."""
  _require(path, "images", "DIR, a folder of PNG/JPEG images")
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise ValueError(f"--images={path} does not exist: pass a folder of PNG/JPEG images or one image file")
  files = sorted(os.path.join(path, f) for f in os.listdir(path)
                 if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(os.path.join(path, f)))
  if not files:
    raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {path}: put the images to invert directly in "
                     "that folder")
  return files


def load_images(files: list[str], shape) -> np.ndarray:
  """float32 [N, H, W, C] in [-1, 1], each image resized to the generator's size (ganzoo.translate's reader)."""
  from ganzoo import translate  # pylint: disable=g-import-not-at-top
  return to_float(np.stack([translate.load_image(f, shape, "fit") for f in files]))


def pair_sheet(targets: np.ndarray, recons: np.ndarray, pairs_per_row: int = PAIRS_PER_ROW) -> np.ndarray:
  """A uint8 sheet of (target | reconstruction) pairs, `pairs_per_row` pairs per row."""
  both = np.stack([np.asarray(targets), np.asarray(recons)], axis=1).reshape(-1, *np.asarray(targets).shape[1:])
  return sampling.make_grid(both, nrow=2 * pairs_per_row)


def invert_images(workdir: str, images: str, out: str, space: str = "w", steps: int = 1000, lr: float = 0.1,
                  perceptual: str = "none", perceptual_weight: float = 0.1, encoder_steps: int = 0,
                  batch_size: int = 100, seed: int = 0, use_ema: bool = True, label: int = 0) -> dict:
  """Inverts every image of `images` with the newest checkpoint of `workdir`; writes latents.npz,
  sheet.png and inversion.json to `out` (see `ganzoo.latent.__main__`)."""
  _require(workdir, "workdir", "RUN, the folder of a trained run")
  _require(out, "out", "DIR, the folder for latents.npz and sheet.png")
  files = list_images(images)
  if steps < 1:
    raise ValueError(f"--steps must be >= 1; got {steps}")
  gen, method, step = gen_lib.from_run(workdir, use_ema, label)
  space = inv.check_space(gen, space)
  targets = load_images(files, gen.image_shape)
  state = None
  if perceptual == "d":
    from ganzoo import runs  # pylint: disable=g-import-not-at-top
    state, _ = runs.restore_state(method, workdir)
  distance = perc.make_distance(perceptual, method, state)
  cfg = inv.InvertConfig(num_steps=steps, lr=lr, perceptual_weight=perceptual_weight if distance else 0.0)
  t0 = time.time()
  rng = jax.random.PRNGKey(seed)
  init = None
  if encoder_steps:
    e = enc_lib.train_encoder(gen, jax.random.fold_in(rng, 1), "z" if space == "z" else "w", steps=encoder_steps)
    init = np.asarray(jax.jit(e.encode)(jnp.asarray(targets)))
    if space == "w+":
      init = np.broadcast_to(init[:, None], (len(init), gen.num_ws, init.shape[-1]))
  res = inv.invert_batched(gen, targets, space, cfg, batch_size=min(batch_size, len(targets)), rng=rng,
                           perceptual=distance, init=init)
  mse = np.asarray(res.mse)
  wall = time.time() - t0
  os.makedirs(out, exist_ok=True)
  arrays = {"latents": np.asarray(res.latents), "mse": mse, "files": np.asarray([os.path.basename(f) for f in files]),
            "space": np.asarray(space)}
  if res.noise is not None:
    arrays.update({f"noise{i}": np.asarray(b) for i, b in enumerate(res.noise)})
  latents_path = os.path.join(out, "latents.npz")
  np.savez(latents_path, **arrays)
  sheet_path = os.path.join(out, "sheet.png")
  sampling.save_grid(sheet_path, pair_sheet(targets, np.asarray(res.images)))
  result = {"workdir": workdir, "step": int(step), "space": space, "num_images": len(files), "steps": steps,
            "perceptual": perceptual, "encoder_steps": encoder_steps, "mse_mean": float(mse.mean()),
            "mse_median": float(np.median(mse)), "psnr_mean": float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-12)))),
            "wall_s": wall, "latents": latents_path, "sheet": sheet_path}
  with open(os.path.join(out, "inversion.json"), "w") as fh:
    json.dump(result, fh, indent=1)
  return result


def latent_spread(gen, space: str, vectors: np.ndarray, rng: jax.Array, n: int = 2000) -> np.ndarray:
  """The std of sampled latents along each direction ([K]): the unit of the edit sheet's columns."""
  lat, _ = dirs.sample_latents(gen, rng, n, space) if space == "w" else (jax.random.normal(rng, (n, gen.z_dim)), None)
  proj = (np.asarray(lat) - np.asarray(lat).mean(0)) @ np.asarray(vectors).T
  return proj.std(axis=0)


def find_directions(workdir: str, method: str, out: str, num: int = 8, columns: int = 7, strength: float = 3.0,
                    attribute: str = "brightness", samples: int = 2000, seed: int = 0, use_ema: bool = True,
                    label: int = 0, gen=None) -> dict:
  """Finds `num` directions by `method` for the run in `workdir` (or `gen`, a LatentGenerator); writes
  directions.npz and edits.png to `out`."""
  if gen is None:
    _require(workdir, "workdir", "RUN, the folder of a trained run")
  _require(out, "out", "DIR, the folder for directions.npz and edits.png")
  if method not in dirs.METHODS:
    raise ValueError(f"unknown --method={method!r}; choose from {list(dirs.METHODS)}")
  if num < 1 or columns < 2:
    raise ValueError(f"--num must be >= 1 and --columns >= 2; got {num}, {columns}")
  if gen is None:
    gen, _, _ = gen_lib.from_run(workdir, use_ema, label)
  rng = jax.random.PRNGKey(seed)
  r_dir, r_base, r_spread = jax.random.split(rng, 3)
  space = dirs.default_space(gen)
  t0 = time.time()
  if method == "sefa":
    d = dirs.sefa(gen, num)
  elif method == "ganspace":
    d = dirs.ganspace(gen, r_dir, num, n=samples)
  elif method == "voynov":
    d = dirs.voynov_babenko(gen, r_dir, num)
  else:
    if attribute not in dirs.ATTRIBUTES:
      raise ValueError(f"unknown --attribute={attribute!r}; choose from {sorted(dirs.ATTRIBUTES)}")
    lat, images = dirs.sample_latents(gen, r_dir, samples, space)
    d = dirs.interfacegan(np.asarray(lat), np.asarray(dirs.ATTRIBUTES[attribute](images)), space=space)
  wall = time.time() - t0
  spread = latent_spread(gen, d.space, d.vectors, r_spread)
  z = jax.random.normal(r_base, (1, gen.z_dim), jnp.float32)
  base = gen.mapping(gen.params, z)[0] if d.space == "w" else z[0]
  strengths = np.linspace(-strength, strength, columns)
  # Row k: base + s * spread_k * v_k for the columns' s, spread_k the latents' std along v_k, so every
  # row sweeps the same number of standard deviations; the middle column is the base image.
  rows = [dirs.edit_sheet(gen, dirs.Directions(d.vectors[k:k + 1], d.values[k:k + 1], d.space), base,
                          strengths * spread[k])[0] for k in range(len(d.vectors))]
  grid = np.stack(rows)
  os.makedirs(out, exist_ok=True)
  sheet = os.path.join(out, "edits.png")
  sampling.save_grid(sheet, sampling.make_grid(grid.reshape(-1, *grid.shape[2:]), nrow=columns))
  path = os.path.join(out, "directions.npz")
  np.savez(path, vectors=d.vectors, values=d.values, space=np.asarray(d.space), spread=spread)
  info = {k: v for k, v in d.info.items() if isinstance(v, (int, float))}
  return {"method": method, "num": int(len(d.vectors)), "space": d.space, "values": np.asarray(d.values).tolist(),
          "info": info, "wall_s": wall, "directions": path, "sheet": sheet}
