"""pix2pix results of a trained run on the test split: L1, PSNR, SSIM, FID/KID and a sheet.

  python experiments/pix2pix_results.py --workdir=workdirs/pix2pix_facades \
      --out=experiments/results/pix2pix_facades --command="python -m ganzoo.main ..."

The test pairs are the AB folder `test/` next to the run's `data.path` (`--split_path` overrides),
at test-time preprocessing (each half resized to crop_size, no crop, no flip: the reference's
test_options.py sets load_size = crop_size and test.py no_flip). Each input is translated in the
run's `model.eval_mode` ('paper': dropout on, each image normalized on its own statistics, as
pix2pix's test.py at batch size 1) and, for comparison, in the other mode.

Metrics (`ganzoo.metrics.paired`, per image then averaged, on the 8-bit pixels a saved PNG holds):
  l1    mean |output - target| on the [0, 1] scale (the [-1, 1] scale of the training loss gives
        twice this; both are written),
  psnr  dB with data range 255, ssim  Wang et al. 2004 with skimage's Gaussian setting.
FID / KID (`ganzoo.evaluate.evaluate_images`, the project's Inception protocol) of the outputs
against the real test targets: with 106 images both are strongly biased (FID's bias grows as
1 / N; KID is unbiased but its spread over subsets of 106 is large), so they compare runs scored
the same way only. Written next to them: the same metrics for the untrained G (the run's initial
state) and for the input itself as the output (labels scored as photos), as floors.

Writes <out>.json and <out>.png (rows input | output | target of the first --sheet_rows test pairs).
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo.methods import pix2pix  # noqa: E402
from ganzoo.metrics import paired  # noqa: E402


def translate_all(method, state, inputs, rng, batch_size):
  fn = jax.jit(lambda st, x, k: method.generate(st, x, k))
  out = []
  for lo in range(0, len(inputs), batch_size):
    # Image i's key is fold_in(rng, i) whatever the batching (`Pix2Pix.generate`): keys by position.
    out.append(np.asarray(fn(state, jnp.asarray(inputs[lo:lo + batch_size]), jax.random.fold_in(rng, lo))))
  return np.concatenate(out)


def scores(outputs, targets):
  s = paired.summarize(paired.paired_metrics(jnp.asarray(outputs), jnp.asarray(targets)))
  s = {k: float(v) for k, v in s.items()}
  s["l1_minus1_1"] = 2.0 * s["l1"]
  return s


def fid_kid(outputs, targets, batch_size=50):
  from ganzoo import evaluate  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    real = os.path.join(tmp, "test_targets.npz")
    np.savez(real, images=sampling.to_uint8(targets))
    r = evaluate.evaluate_images(sampling.to_uint8(outputs), real, metrics=("fid", "kid"), batch_size=batch_size)
  return {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in r.items() if k != "protocol"}, r.get("protocol")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True, help="path without extension for the .json and .png")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--split_path", default=None, help="AB folder to score (default: test/ next to data.path)")
  p.add_argument("--split_name", default="test")
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--sheet_rows", type=int, default=8)
  p.add_argument("--no_fid", action="store_true", help="skip FID/KID (no Inception weights on this machine)")
  p.add_argument("--wall_time_s", type=float, default=None, help="training wall time (default: from <workdir>.log)")
  p.add_argument("--note", default="", help="recorded in the json")
  args = p.parse_args(argv)

  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, args.workdir)
  path = args.split_path or pix2pix.split_path(config.data.path, args.split_name)
  if path is None:
    raise SystemExit(f"error: no {args.split_name}/ folder next to data.path={config.data.path}: pass --split_path")
  inputs, targets = pix2pix.load_pairs(path, method.direction, method.crop_size)
  rng = jax.random.PRNGKey(2017)
  outputs = translate_all(method, state, inputs, rng, args.batch_size)

  results = {method.eval_mode: scores(outputs, targets)}
  other = "eval" if method.eval_mode == "paper" else "paper"
  other_cfg = runs.load_run_config(args.workdir)
  other_cfg.model.eval_mode = other
  other_method = runs.build_method(other_cfg)
  results[other] = scores(translate_all(other_method, state, inputs, rng, args.batch_size), targets)
  init = method.init(jax.random.PRNGKey(int(config.seed)))
  results["untrained_g"] = scores(translate_all(method, init, inputs, rng, args.batch_size), targets)
  results["input_as_output"] = scores(inputs, targets)
  protocol = None
  if not args.no_fid:
    fk, protocol = fid_kid(outputs, targets)
    results[method.eval_mode].update(fk)
    fk_init, _ = fid_kid(translate_all(method, init, inputs, rng, args.batch_size), targets)
    results["untrained_g"].update(fk_init)

  k = min(args.sheet_rows, len(inputs))
  sheet = np.asarray(pix2pix.triplet_sheet(jnp.asarray(inputs[:k]), jnp.asarray(outputs[:k]), jnp.asarray(targets[:k])))
  sampling.save_grid(args.out + ".png", sampling.make_grid(sheet[None], nrow=1))

  record = runs.training_record(args.workdir, args.wall_time_s)
  last, sps, wall = record["last_train"], record["steps_per_sec"], record["wall_time_s"]
  m = config.model
  out = {
      "paper": "Isola et al. 2017, arXiv:1611.07004 (pix2pix), facades labels -> photo",
      "command": args.command, "note": args.note, "workdir": args.workdir, "step": int(step),
      "wall_time_s": wall, "steps_per_sec_mean": float(np.mean(sps)) if sps else None,
      "config": {"netG": m.netG, "netD": m.netD, "ngf": int(m.ngf), "ndf": int(m.ndf), "norm": m.norm,
                 "direction": m.direction, "load_size": int(m.load_size), "crop_size": int(m.crop_size),
                 "lambda_L1": float(m.lambda_L1), "batch_size": int(config.data.batch_size),
                 "num_steps": int(config.train.num_steps), "decay_start": int(config.nets.g.optim.decay_start),
                 "eval_mode": m.eval_mode, **method.param_counts(state)},
      "test_split": {"path": path, "num_images": int(len(inputs))},
      "metric_notes": ("l1: mean |output - target| on [0, 1] (l1_minus1_1: on [-1, 1]); psnr (dB, range 255) and "
                       "ssim (Wang et al. 2004, Gaussian 11x11 sigma 1.5) per image on the 8-bit pixels, averaged; "
                       "fid/kid of the outputs vs the real test targets with the project's Inception protocol: "
                       f"{len(inputs)} images, so FID carries a large positive bias (compare like with like); KID's "
                       "subsets hold min(1000, N) = all the images, so its 100 subsets coincide and kid_std is 0"),
      "results": results, "fid_protocol": protocol, "last_train_metrics": last,
  }
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=1, sort_keys=False)
  print(json.dumps(results, indent=1))


if __name__ == "__main__":
  main()
