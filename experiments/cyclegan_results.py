"""CycleGAN results of a trained run: FID and KID per direction on the test split, and a sheet.

  python experiments/cyclegan_results.py --workdir=workdirs/cyclegan_h2z \
      --out=experiments/results/cyclegan_horse2zebra --command="python -m ganzoo.main ..."

Writes <out>.json and <out>.png. Metrics (Zhu et al. 2017 report FCN scores and AMT studies; FID per
direction is the later papers' measure of unpaired translation, e.g. CUT, arXiv:2007.15651):
  A -> B: G_A(testA) against testB;  B -> A: G_B(testB) against testA,
through ganzoo's Inception features (`ganzoo.evaluate.get_extractor`, the FID weights) and
`ganzoo.metrics.fid` / `ganzoo.metrics.kid`. The test images are resized to the model's crop size
(test_options.py: load_size = crop_size, no flip). horse2zebra's test split has 120 A and 140 B images:
FID's estimate is biased upwards at such sizes (its bias falls like 1/N; Binkowski et al. 2018,
arXiv:1801.01401), so read FIDs only against the reference rows written beside them: the same
metric for the untranslated inputs (testA against testB: what "no translation" scores) and for
the untrained networks. KID is unbiased; its std is over 100 subsets of min(N_real, N_fake) images.
Sheet: blocks of six rows (A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))) of the first test images.
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import evaluate  # noqa: E402
from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo.methods import cyclegan  # noqa: E402
from ganzoo.metrics import fid as fid_lib  # noqa: E402
from ganzoo.metrics import inception  # noqa: E402
from ganzoo.metrics import kid as kid_lib  # noqa: E402


def translate_all(method, state, name: str, x: np.ndarray, batch: int = 20) -> np.ndarray:
  fn = jax.jit(lambda st, v: method.generate(st, name, v))
  return np.concatenate([np.asarray(fn(state, x[i:i + batch])) for i in range(0, len(x), batch)])


def distances(f_real: np.ndarray, f_fake: np.ndarray) -> dict[str, float]:
  """FID and KID (mean, std over 100 subsets of min(N_real, N_fake)) of Inception features f_fake against f_real."""
  kid, kid_std = kid_lib.kernel_inception_distance(f_real, f_fake, num_subsets=100, subset_size=1000)
  return {"fid": fid_lib.fid_from_features(f_fake, f_real), "kid": kid, "kid_std": kid_std,
          "num_real": len(f_real), "num_fake": len(f_fake)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True, help="path without extension for the .json and .png")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--columns", type=int, default=8)
  p.add_argument("--blocks", type=int, default=2)
  p.add_argument("--wall_time_s", type=float, default=None, help="training wall time (default: from <workdir>.log)")
  p.add_argument("--note", default="", help="recorded in the json")
  p.add_argument("--cache", default="", help="an .npz that keeps Inception features by image hash across calls")
  args = p.parse_args(argv)

  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, args.workdir)
  crop = method.crop_size
  test_a = cyclegan.read_images(config, "data", config.model.test_split_a, crop)
  test_b = cyclegan.read_images(config, method.b_source, config.model.test_split_b, crop)
  extractor = evaluate.get_extractor(config.eval.get("inception_weights", None))

  fake_b, fake_a = translate_all(method, state, "g_a", test_a), translate_all(method, state, "g_b", test_b)
  init = method.init(jax.random.PRNGKey(int(config.seed)))
  cache = dict(np.load(args.cache)) if args.cache and os.path.exists(args.cache) else {}

  def feats(x):   # once per image set; --cache keeps them by the images' sha256 (test and untrained sets)
    images = inception.to_uint8(x)
    key = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    if key not in cache:
      cache[key] = extractor.extract(images)["features"]
      if args.cache:
        np.savez(args.cache, **cache)
    return cache[key]

  f_a, f_b, f_fake_b, f_fake_a = feats(test_a), feats(test_b), feats(fake_b), feats(fake_a)
  f_init_b, f_init_a = feats(translate_all(method, init, "g_a", test_a)), feats(translate_all(method, init, "g_b", test_b))
  metrics = {
      "A_to_B": distances(f_b, f_fake_b),
      "B_to_A": distances(f_a, f_fake_a),
      "reference_untranslated": {"testA_vs_testB": distances(f_b, f_a), "testB_vs_testA": distances(f_a, f_b)},
      "reference_untrained": {"A_to_B": distances(f_b, f_init_b), "B_to_A": distances(f_a, f_init_a)},
      "cycle_l1_test": {"A": float(np.abs(translate_all(method, state, "g_b", fake_b) - test_a).mean()),
                        "B": float(np.abs(translate_all(method, state, "g_a", fake_a) - test_b).mean())},
  }

  rows = []
  w = args.columns
  for b in range(args.blocks):
    sl = slice(b * w, (b + 1) * w)
    a, bb = test_a[sl], test_b[sl]
    fb, fa = fake_b[sl], fake_a[sl]
    rows += [a, fb, translate_all(method, state, "g_b", fb), bb, fa, translate_all(method, state, "g_a", fa)]
  sampling.save_grid(args.out + ".png", sampling.make_grid(np.concatenate(rows), nrow=w))

  record = runs.training_record(args.workdir, args.wall_time_s)
  last, sps, wall = record["last_train"], record["steps_per_sec"], record["wall_time_s"]
  m = config.model
  out = {
      "paper": "Zhu et al. 2017, arXiv:1703.10593 (CycleGAN); reference junyanz/pytorch-CycleGAN-and-pix2pix",
      "command": args.command, "note": args.note, "workdir": args.workdir, "step": int(step), "wall_time_s": wall,
      "steps_per_sec_mean": float(np.mean(sps)) if sps else None,
      "config": {"crop_size": crop, "load_size": int(config.data.image_size), "netG": m.netG, "netD": m.netD,
                 "norm": m.norm, "gan_mode": m.gan_mode, "lambda_A": m.lambda_A, "lambda_B": m.lambda_B,
                 "lambda_identity": m.lambda_identity, "pool_size": m.pool_size,
                 "batch_size": int(config.data.batch_size), "num_steps": int(config.train.num_steps),
                 "decay_start": int(config.nets.g.optim.decay_start), "lr": float(config.nets.g.optim.lr),
                 "data": [config.data.name, config.data.path, config.data.split, config[method.b_source].split]},
      "params": method.param_counts(state),
      "inception_weights_sha256": extractor.weights_sha256,
      "metrics": metrics,
      "metrics_note": ("FID and KID of translated test images against the other domain's test images; "
                       f"{len(test_a)} A and {len(test_b)} B images: FID is biased upwards at this size, compare it "
                       "with the reference rows (untranslated inputs, untrained networks) computed the same way; "
                       "KID is unbiased (std over 100 subsets)."),
      "last_train_metrics": last,
      "sheet": os.path.basename(args.out) + ".png",
      "sheet_rows": "blocks of 6 rows: testA, G_A(A), G_B(G_A(A)), testB, G_B(B), G_A(G_B(B))",
  }
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps({k: metrics[k] for k in ("A_to_B", "B_to_A")}, indent=1))


if __name__ == "__main__":
  main()
