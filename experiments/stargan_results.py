"""StarGAN results of a trained single-label run: a domain classifier's accuracy on translations, FID/KID.

  python experiments/stargan_results.py --workdir=workdirs/stargan_fm \
      --out=experiments/results/stargan_fashion_mnist --command="nice -n 10 python -m ganzoo.main ..."

The evaluation of Choi et al. 2018 (arXiv:1711.09020, Sec. 5.4 on RaFD): a classifier trained on
real images (`ganzoo.metrics.domain_classifier`, here on the run's data set's training split, its
accuracy on the real test split reported as the ceiling) classifies translated test images; the
score is the fraction classified as their target domain. Here every one of the first
--num_inputs test images is translated to each of the other K - 1 domains. Also reported: the
same score for the untrained G (the floor), D's own domain-classification accuracy on the real
test images, the reconstruction error |x - G(G(x, c_trg), c_org)| and FID/KID (ganzoo.evaluate, the
run's Inception protocol) of --fid_samples translations (test image i to domain (y_i + 1 + i mod
(K - 1)) mod K: every other domain equally often) against as many real test images.

Writes <out>.json and <out>.png: the sheet of the trained G on one test image per domain (column j:
the first test image of class j): row 0 the inputs, row k + 1 their translations to domain k.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import data as data_lib  # noqa: E402
from ganzoo import evaluate  # noqa: E402
from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo.metrics import domain_classifier  # noqa: E402
from ganzoo.metrics import protocol  # noqa: E402


def load(config, split):
  d = config.data
  return data_lib.load_images(d.name, split, data_dir=d.get("data_dir", None), path=d.get("path", None),
                              image_size=d.get("image_size", None), source=d.get("source", "auto"),
                              center_crop=d.get("center_crop", None))


def translate_all(method, state, x, targets, batch_size=500):
  """G(x_i, onehot(targets_i)) for all i, float [-1, 1]."""
  gen = jax.jit(method.generate)
  eye = np.eye(method.c_dim, dtype=np.float32)
  out = [gen(state, jnp.asarray(x[i:i + batch_size]), jnp.asarray(eye[targets[i:i + batch_size]]))
         for i in range(0, len(x), batch_size)]
  return np.concatenate([np.asarray(o) for o in out])


def translation_scores(method, state, clf, x, y):
  """Classifier accuracy on the translations of x to every other domain, per target, and the reconstruction L1."""
  k = method.c_dim
  correct = np.zeros(k)
  total = np.zeros(k)
  rec_sum, rec_n = 0.0, 0
  for t in range(k):
    keep = y != t
    xs, ys = x[keep], y[keep]
    fake = translate_all(method, state, xs, np.full(len(xs), t))
    pred = clf.predict(fake)
    correct[t] += np.sum(pred == t)
    total[t] += len(xs)
    rec = translate_all(method, state, fake, ys)
    rec_sum += float(np.abs(rec - xs).mean()) * len(xs)
    rec_n += len(xs)
  return float(correct.sum() / total.sum()), (correct / total).tolist(), rec_sum / rec_n


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--out", required=True, help="path without extension for the .json and .png")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--num_inputs", type=int, default=1000)
  p.add_argument("--fid_samples", type=int, default=2000, help="0 = no FID/KID")
  p.add_argument("--classifier_steps", type=int, default=1500)
  p.add_argument("--note", default="")
  args = p.parse_args(argv)
  t_start = time.time()

  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  if method.multi_hot:
    raise ValueError("this script scores single-label domains (the classifier is a softmax over domains)")
  state, step = runs.restore_state(method, args.workdir)
  names = list(method.domain_names())

  train_set, test_set = load(config, "train"), load(config, "test")
  t0 = time.time()
  clf = domain_classifier.train(train_set["image"], train_set["label"], method.c_dim, steps=args.classifier_steps)
  clf_seconds = time.time() - t0
  x_test, y_test = domain_classifier.as_float(test_set["image"]), test_set["label"]
  clf_acc = clf.accuracy(x_test, y_test)
  d_logits = np.concatenate([np.asarray(jax.jit(method.classify)(state, jnp.asarray(x_test[i:i + 1000])))
                             for i in range(0, len(x_test), 1000)])
  d_acc = float(np.mean(d_logits.argmax(-1) == y_test))

  x, y = x_test[:args.num_inputs], y_test[:args.num_inputs]
  acc, per_target, rec = translation_scores(method, state, clf, x, y)
  init = method.init(jax.random.PRNGKey(int(config.seed)))
  acc_init, _, rec_init = translation_scores(method, init, clf, x[:200], y[:200])

  fid = {}
  if args.fid_samples:
    n = args.fid_samples
    xs, ys = x_test[:n], y_test[:n]
    k = method.c_dim
    targets = (ys + 1 + np.arange(n) % (k - 1)) % k
    fake = translate_all(method, state, xs, targets)
    t0 = time.time()
    reference = protocol.Reference.from_data_config(config.data, "test")
    result = evaluate.evaluate_images(fake, reference, metrics=("fid", "kid"), num_real=n)
    fid = {"fid": result.get("fid"), "kid": result.get("kid"), "kid_std": result.get("kid_std"),
           "num_samples": n, "protocol": result.get("protocol"), "seconds": time.time() - t0,
           "translated_to_target_by_classifier": float(np.mean(clf.predict(fake) == targets))}

  # Sheet: the first test image of each class, row 0 the inputs, row t + 1 the translations to t.
  cols = [int(np.flatnonzero(y_test == c)[0]) for c in range(method.c_dim)]
  xin = x_test[cols]
  rows = [xin] + [translate_all(method, state, xin, np.full(len(cols), t)) for t in range(method.c_dim)]
  sheet = sampling.make_grid(np.concatenate(rows), nrow=len(cols))
  sampling.save_grid(args.out + ".png", sheet)

  record = runs.training_record(args.workdir)
  last, sps, wall = record["last_train"], record["steps_per_sec"], record["wall_time_s"]
  m = config.model
  out = {
      "paper": "Choi et al. 2018, arXiv:1711.09020 (StarGAN); reference yunjey/stargan",
      "stand_in": "Fashion-MNIST's 10 classes as single-label domains: a STAND-IN for CelebA, which cannot be "
                  "had offline",
      "command": args.command, "note": args.note, "workdir": args.workdir, "step": int(step),
      "g_updates": int(step) // int(m.n_critic), "train_wall_time_s": wall,
      "steps_per_sec_median": float(np.median(sps)) if sps else None,
      "config": {"g_conv_dim": m.g_conv_dim, "g_repeat_num": m.g_repeat_num, "d_conv_dim": m.d_conv_dim,
                 "d_repeat_num": m.d_repeat_num, "n_critic": m.n_critic, "lambda_cls": m.lambda_cls,
                 "lambda_rec": m.lambda_rec, "lambda_gp": m.lambda_gp, "lr_schedule": m.lr_schedule,
                 "num_iters_decay": m.num_iters_decay, "lr_update_step": m.lr_update_step,
                 "batch": int(config.data.batch_size), "data": [config.data.name, config.data.split],
                 "image_shape": list(method.image_shape)},
      "params": method.param_counts(state),
      "domains": names,
      "classifier": {"architecture": "conv32-pool-conv64-pool-fc128-fc10 (ganzoo.metrics.domain_classifier)",
                     "train_steps": args.classifier_steps, "batch": 128,
                     "trained_on": f"{config.data.name} train ({len(train_set['label'])} real images)",
                     "real_test_accuracy": clf_acc, "train_seconds": clf_seconds},
      "translation_accuracy": {
          "inputs": f"the first {len(x)} test images, each to the {method.c_dim - 1} other domains",
          "trained": acc, "per_target": dict(zip(names, per_target)),
          "untrained_g": acc_init, "untrained_g_inputs": 200,
          "chance": 1.0 / method.c_dim},
      "reconstruction_l1": {"trained": rec, "untrained_g": rec_init},
      "d_cls_real_test_accuracy": d_acc,
      "fid_kid_translations_vs_real_test": fid,
      "last_train_metrics": last,
      "sheet": os.path.basename(args.out) + ".png",
      "sheet_layout": "column j: the first test image of class j; row 0 the inputs, row t + 1 translated to domain t "
                      f"({', '.join(names)})",
      "results_wall_time_s": time.time() - t_start,
  }
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps({k: out[k] for k in ("translation_accuracy", "classifier", "d_cls_real_test_accuracy")}))
  print(json.dumps({k: v for k, v in fid.items() if k != "protocol"}))


if __name__ == "__main__":
  main()
