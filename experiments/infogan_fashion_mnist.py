"""Results of an InfoGAN run (configs/infogan.py): the categorical code as a clusterer, both code
sheets and (optionally) FID, into experiments/results/infogan_fashion_mnist.{json,png}.

  python -m ganzoo.main --config=configs/infogan.py:fashion_mnist,cpu --workdir=workdirs/infogan_fm
  python experiments/infogan_fashion_mnist.py --workdir=workdirs/infogan_fm --log=workdirs/infogan_fm.log \
      --fid_samples=2000

- Cluster accuracy: argmax_k Q(c_cat = k | x) on every test image (D and Q in inference mode),
  scored against the labels under the best one-to-one matching of the 10 categories to the 10
  classes (ganzoo.metrics.clustering, Hungarian algorithm).
- Sheets: row r is c_cat = r (the JSON's category_to_class names the class it was matched to),
  columns sweep continuous code 0 (`_code0.png`, the training grid's layout) and code 1
  (`_code1.png`) from -1 to 1; the last training grid is copied to `<name>.png`.
- FID (`--fid_samples` > 0): `ganzoo.evaluate.evaluate_workdir` on that many samples against as
  many test images; also appended to the run's metrics.jsonl.
"""

import argparse
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import data as data_lib  # noqa: E402
from ganzoo import runs  # noqa: E402
from ganzoo import sampling  # noqa: E402
from ganzoo.methods import infogan  # noqa: E402
from ganzoo.metrics import clustering  # noqa: E402

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def cluster_report(method, state, split: str = "test", batch_size: int = 500) -> dict:
  """Cluster accuracy of Q's categorical code on the run's data set at `split`."""
  config = method.config
  data = data_lib.load_images(config.data.name, split, data_dir=config.data.get("data_dir", None))
  images, labels = data["image"], data["label"]
  predict = jax.jit(method.predict_category)
  pred = np.concatenate([np.asarray(predict(state, data_lib.to_float(images[i:i + batch_size])))
                         for i in range(0, len(images), batch_size)])
  counts = clustering.confusion_matrix(pred, labels, method.num_categories, int(labels.max()) + 1)
  match = clustering.matching(counts)
  return {"split": split, "num_images": int(len(images)),
          "cluster_accuracy": clustering.accuracy_from_confusion(counts),
          "category_to_class": {str(k): (CLASSES[v] if config.data.name == "fashion_mnist" else v)
                                for k, v in sorted(match.items())},
          "cluster_sizes": np.bincount(pred, minlength=method.num_categories).tolist(),
          "confusion_matrix": counts.tolist()}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--log", default=None, help="the run's console log (for its 'done: step N in Xs' line)")
  p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
  p.add_argument("--name", default="infogan_fashion_mnist")
  p.add_argument("--fid_samples", type=int, default=0)
  p.add_argument("--command", default=None, help="the training command, recorded in the JSON")
  args = p.parse_args()

  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, args.workdir)
  result = {"workdir": args.workdir, "command": args.command, "step": int(step),
            "config": {"batch_size": config.data.batch_size, "z_dim": config.model.z_dim,
                       "num_categories": config.model.num_categories, "num_continuous": config.model.num_continuous,
                       "lr_g": config.nets.g.optim.lr, "lr_d": config.nets.d.optim.lr, "lr_q": config.nets.q.optim.lr,
                       "info_weight": config.loss.info_weight, "info_cont_weight": config.loss.info_cont_weight},
            **method.param_counts(state)}
  if args.log and os.path.exists(args.log):
    done = re.findall(r"done: step (\d+) in ([0-9.]+)s", open(args.log).read())
    if done:
      result["train_wall_s"] = float(done[-1][1])
  lines = [json.loads(l) for l in open(os.path.join(args.workdir, "metrics.jsonl"))]
  train_lines = [l for l in lines if "train/d_loss" in l]
  if train_lines:
    result["last_train_metrics"] = {k: v for k, v in train_lines[-1].items()}
    rates = [l["perf/steps_per_sec"] for l in train_lines if "perf/steps_per_sec" in l]
    result["steps_per_sec_median"] = float(np.median(rates)) if rates else None
  result["clustering"] = cluster_report(method, state)
  os.makedirs(args.out, exist_ok=True)
  for code in range(method.num_continuous):
    path = os.path.join(args.out, f"{args.name}_code{code}.png")
    sampling.save_grid(path, infogan.code_sheet(method, state, code, seed=config.seed))
    result[f"sheet_code{code}"] = os.path.relpath(path, os.path.dirname(args.out))
  last_grid = os.path.join(args.workdir, "samples", f"step_{step:08d}.png")
  if os.path.exists(last_grid):
    shutil.copy(last_grid, os.path.join(args.out, f"{args.name}.png"))
    result["sheet"] = os.path.relpath(os.path.join(args.out, f"{args.name}.png"), os.path.dirname(args.out))
  if args.fid_samples:
    from ganzoo import evaluate  # pylint: disable=g-import-not-at-top
    fid = evaluate.evaluate_workdir(args.workdir, ("fid", "kid"), num_samples=args.fid_samples)
    result["fid"] = {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in fid.items()}
    result["fid"]["num_samples"] = args.fid_samples
    result["fid"]["reference"] = f"{config.data.name}:{config.eval.real_split}, {args.fid_samples} images"
  with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps({k: v for k, v in result.items() if k not in ("clustering", "last_train_metrics")}, indent=1))
  print("cluster accuracy:", result["clustering"]["cluster_accuracy"])


if __name__ == "__main__":
  main()
