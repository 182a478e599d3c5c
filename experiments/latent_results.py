"""The latent-space tools on generators trained on this CPU: inversion of held-out Fashion-MNIST test
images into z / W / W+, and directions with edit sheets (ganzoo.latent). Writes
experiments/results/latent_*.png and experiments/results/latent_results.json.

  nice -n 10 python experiments/latent_results.py train --workdir=workdirs/sg2_fm_latent --steps=3000
  nice -n 10 python experiments/latent_results.py results --sngan=workdirs/sngan_fashion_mnist \
      --stylegan2=workdirs/sg2_fm_latent

`train` trains the StyleGAN2 used for W / W+: configs/stylegan2.py:tiny,fashion_mnist (16x16) widened
to channel_base 1024 / channel_max 64 and z = w = 64 with 4 mapping layers, batch 32 (the 'small'
preset at 32x32 did not finish 100 steps in 25 minutes on the 2 shared cores); it resumes from the
workdir's newest checkpoint. The committed numbers come from its step-100 checkpoint: on the 2 shared
cores (load ~13 from other runs) compiling its three step programs took ~17 of the 29 minutes it ran
before it was stopped (SIGTERM checkpoints), so it is an early generator; the z / W / W+ ordering is
what it shows, not quality.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "experiments", "results")

SG2_MODEL = dict(channel_base=1024, channel_max=64, z_dim=64, w_dim=64, map_layers=4)


def stylegan2_config(steps: int):
  spec = importlib.util.spec_from_file_location("cfg_stylegan2", os.path.join(ROOT, "configs", "stylegan2.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("tiny,fashion_mnist")
  c.model.update(SG2_MODEL)
  c.data.batch_size = 32
  c.train.num_steps = steps
  c.train.log_every = 50
  c.train.checkpoint_every = 250
  c.train.sample_every = 1000
  c.train.num_sample_images = 64
  c.eval.every = 0
  return c


def train(workdir: str, steps: int) -> None:
  from ganzoo import train as train_lib  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  summary = train_lib.train_and_evaluate(stylegan2_config(steps), workdir, progress=False)
  print(f"done: step {summary['step']} in {time.time() - t0:.1f}s")


def _test_images(n: int, size: int | None):
  """The first n Fashion-MNIST test images (held out from training) in [-1, 1], at `size` (None = 28)."""
  from ganzoo.data.pipeline import load_images, to_float  # pylint: disable=g-import-not-at-top
  return to_float(load_images("fashion_mnist", split="test", max_examples=n, image_size=size)["image"])


def _recovery(gen, space: str, n: int, steps: int, rng):
  """Lipton & Tripathi's recovery: G(latent) for n known latents inverted back; the fraction whose
  MSE is below 1% of the mean MSE between independent samples (tests/test_latent.py's criterion)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ganzoo import latent  # pylint: disable=g-import-not-at-top
  z = jax.random.normal(rng, (n, gen.z_dim), jnp.float32)
  lat = z if space == "z" else gen.mapping(gen.params, z)
  x = latent.synthesize(gen, space, lat)
  pair = float(jnp.mean(jnp.square(x - jnp.roll(x, 1, axis=0))))
  res = latent.invert(gen, x, space, latent.InvertConfig(num_steps=steps, optimize_noise=False))
  rel = np.asarray(res.mse) / pair
  return {"fraction_recovered": float(np.mean(rel < 0.01)), "median_relative_mse": float(np.median(rel)),
          "random_pair_mse": pair, "steps": steps, "n": n}


def results(a) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ganzoo import latent, sampling  # pylint: disable=g-import-not-at-top
  from ganzoo.latent import cli, directions as dirs  # pylint: disable=g-import-not-at-top
  os.makedirs(RESULTS, exist_ok=True)
  out = {"commands": [" ".join(["nice -n 10 python", *sys.argv])], "invert_steps": a.invert_steps, "num_images": a.num}
  rng = jax.random.PRNGKey(0)
  timings = {}

  def timed(name, fn):
    t0 = time.time()
    value = jax.block_until_ready(fn())   # jax dispatches asynchronously: time the computation, not the call
    timings[name] = round(time.time() - t0, 1)
    print(f"{name}: {timings[name]}s", flush=True)
    return value

  cfg = latent.InvertConfig(num_steps=a.invert_steps)
  runs = {}
  if a.sngan:
    gen, _, step = latent.from_run(a.sngan)
    runs["sngan"] = (gen, step, ["z"])
  if a.stylegan2:
    gen, _, step = latent.from_run(a.stylegan2)
    runs["stylegan2"] = (gen, step, ["z", "w", "w+"])
  for name, (gen, step, spaces) in runs.items():
    size = gen.image_shape[0]
    targets = _test_images(a.num, None if size == 28 else size)
    entry = {"workdir": getattr(a, name), "step": int(step), "image_shape": list(gen.image_shape), "invert": {}}
    sheets = []
    for space in spaces:
      res = timed(f"{name}_invert_{space}", lambda: latent.invert_batched(gen, targets, space, cfg, batch_size=a.num,
                                                                          rng=rng))
      mse = np.asarray(res.mse)
      entry["invert"][space] = {"mse_mean": float(mse.mean()), "mse_median": float(np.median(mse)),
                                "mse_p90": float(np.percentile(mse, 90)),
                                "psnr_mean_db": float(np.mean(10 * np.log10(4.0 / mse))),
                                "wall_s": timings[f"{name}_invert_{space}"]}
      sheets.append(np.asarray(res.images[:16]))
    # One sheet: row 0 targets, then one row per space.
    grid = np.concatenate([targets[:16][None], np.stack(sheets)]).reshape(-1, *gen.image_shape)
    sampling.save_grid(os.path.join(RESULTS, f"latent_{name}_inversion.png"), sampling.make_grid(grid, nrow=16))
    entry["recovery"] = {}
    for space in spaces[:2]:   # z for every generator, and W for the style-based one
      entry["recovery"][space] = timed(f"{name}_recovery_{space}", lambda: _recovery(gen, space, 100, a.invert_steps,
                                                                                     jax.random.PRNGKey(1)))
    entry["directions"] = {}
    methods_ = ["sefa", "ganspace", "interfacegan"] + (["voynov"] if name == "stylegan2" and a.voynov else [])
    for method in methods_:
      d_out = os.path.join(RESULTS, f"_tmp_{name}_{method}")
      r = timed(f"{name}_directions_{method}", lambda: cli.find_directions(
          None, method, d_out, num=1 if method == "interfacegan" else 5, columns=7, strength=2.5,
          attribute="coverage", samples=2000, gen=gen))
      os.replace(r["sheet"], os.path.join(RESULTS, f"latent_{name}_{method}.png"))
      os.remove(r["directions"])
      os.rmdir(d_out)
      entry["directions"][method] = {"values": r["values"][:5], "info": r["info"], "space": r["space"],
                                     "wall_s": r["wall_s"]}
    out[name] = entry
  path = os.path.join(RESULTS, "latent_results.json")
  if os.path.exists(path):   # a run of one generator keeps the other's numbers
    with open(path) as f:
      old = json.load(f)
    out = {**old, **out, "commands": old.get("commands", []) + out["commands"],
           "wall_s": {**old.get("wall_s", {}), **timings}}
  else:
    out["wall_s"] = timings
  with open(path, "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps({k: v["invert"] for k, v in out.items() if isinstance(v, dict) and "invert" in v}, indent=1))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("command", choices=["train", "results"])
  p.add_argument("--workdir", default="workdirs/sg2_fm_latent")
  p.add_argument("--steps", type=int, default=3000)
  p.add_argument("--sngan", default="workdirs/sngan_fashion_mnist", help="'' to skip")
  p.add_argument("--stylegan2", default="workdirs/sg2_fm_latent", help="'' to skip")
  p.add_argument("--num", type=int, default=100)
  p.add_argument("--invert_steps", type=int, default=500)
  p.add_argument("--voynov", type=int, default=1)
  a = p.parse_args()
  if a.command == "train":
    train(a.workdir, a.steps)
  else:
    results(a)


if __name__ == "__main__":
  main()
