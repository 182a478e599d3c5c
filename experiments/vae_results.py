"""Results of a trained `vae` / `cq` run: bits/dim bounds on the whole test split, the run's FID.

  python experiments/vae_results.py --workdir=workdirs/vae_fm \
      --out=experiments/results/vae_fashion_mnist --command="nice -n 10 python -m ganzoo.main ..."

Bits/dim (ganzoo/methods/vae.py `VAEMethod.bound`, the family's `nll` with the bound and K chosen
here): the ELBO (one posterior sample per image, the KL in closed form, as in training) on every
test image, and the importance-weighted bound IWAE-K (Burda et al. 2016, arXiv:1509.00519) on the
first --iwae_images test images, both with the evaluation's fixed key (dequantization noise and
posterior samples), in bits per 8-bit dimension (the D ln 256 correction for the dequantized
Gaussian). IWAE-K <= ELBO in bits: the difference is the part of the ELBO's gap that K samples close.
FID is read from the run's own final evaluation (metrics.jsonl, `eval/fid`: eval.num_samples
decoded samples against the test split, the run's Inception protocol).

The seed's ablation (VAE, VAE-F, CQ, CQ-F, GAN; configs/vae.py `ablation`), one table:

  python experiments/vae_results.py --ablation_root=workdirs --out=experiments/results/ablation_fashion_mnist

reads ROOT/ablation_<row> (and the console logs ROOT/ablation_logs/<row>.log), computes each
row's ELBO bits/dim on --num_test test images as above (VAE-F's includes the flow's log-det and the
logit's; the same D ln 256 rule), and writes the rows beside the seed's CIFAR-10 numbers with the
seed's orderings checked.
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ganzoo import data as data_lib  # noqa: E402
from ganzoo import runs  # noqa: E402
from ganzoo import step as step_lib  # noqa: E402


def bits_per_dim(method, state, images, kind, k, batch_size):
  """Mean bits/dim of uint8 `images` under the `kind` bound with k samples (fixed key, as `nll`)."""
  fn = jax.jit(lambda st, x: method.bound(st, step_lib.to_float_pixels(x), method.eval_key, kind, k))
  total = 0.0
  for lo in range(0, len(images), batch_size):
    total += float(jnp.sum(fn(state, jnp.asarray(images[lo:lo + batch_size]))))
  return -total / len(images) / (method.num_dims * math.log(2.0))


def split_bits_per_dim(method, state, test, config, args):
  """{ELBO bits/dim on all of `test`, IWAE-K and ELBO bits/dim on its first --iwae_images, timings}."""
  t0 = time.time()
  elbo_bpd = bits_per_dim(method, state, test, "elbo", 1, args.batch_size)
  t_elbo = time.time() - t0
  t0 = time.time()
  iwae_bpd = bits_per_dim(method, state, test[:args.iwae_images], "iwae", args.iwae_samples,
                          max(1, args.batch_size // args.iwae_samples * 10))
  t_iwae = time.time() - t0
  elbo_sub = bits_per_dim(method, state, test[:args.iwae_images], "elbo", 1, args.batch_size)
  return {"elbo_all_test": elbo_bpd, "num_images": int(len(test)), "seconds": t_elbo,
          f"iwae_{args.iwae_samples}": iwae_bpd, "elbo_same_images": elbo_sub,
          "iwae_images": int(min(args.iwae_images, len(test))), "iwae_seconds": t_iwae,
          "likelihood": config.model.likelihood,
          "protocol": "bits per 8-bit dimension; dequantized Gaussian: -log p(y) + D ln 256 with y = (p + u) / 256, "
                      "u and the posterior samples from the evaluation's fixed key"}


ABLATION_ROWS = ("vae", "vae_f", "cq", "cq_f", "gan")
# Seed 003 (arXiv:1901.01091), "Impact of training objectives and NVP decoder", CIFAR-10 32x32.
SEED_CIFAR10 = {"vae": {"bpd": 4.4, "is": 2.0, "fid": 171.0}, "vae_f": {"bpd": 3.5, "is": 3.0, "fid": 112.0},
                "cq": {"bpd": 4.4, "is": 5.1, "fid": 58.6}, "cq_f": {"bpd": 3.9, "is": 7.1, "fid": 28.0},
                "gan": {"bpd": 7.0, "bpd_note": "(*) in the seed", "is": 6.8, "fid": 31.4}}


def _console(log_path):
  """(steps, seconds) of the last 'done: step N in Xs' line of a run's console log, or (None, None)."""
  import re  # pylint: disable=g-import-not-at-top
  if not os.path.exists(log_path):
    return None, None
  found = re.findall(r"done: step (\d+) in ([0-9.]+)s", open(log_path, errors="replace").read())
  return (int(found[-1][0]), float(found[-1][1])) if found else (None, None)


def ablation(args):
  """The five rows of the seed's first table from their workdirs -> one json (module docstring)."""
  rows = {}
  test = None
  # Rows already in <out>.json at the same step, test count and with their FID are kept (the script
  # runs again as each run finishes).
  old = json.load(open(args.out + ".json"))["rows"] if os.path.exists(args.out + ".json") else {}
  for row in ABLATION_ROWS:
    workdir = os.path.join(args.ablation_root, f"ablation_{row}")
    if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
      rows[row] = {"missing": workdir}
      continue
    lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl")) if l.strip()]
    evals = [l for l in lines if "eval/fid" in l]
    if not evals:   # still training: the row waits for its final evaluation
      rows[row] = {"unfinished": workdir, "last_step": lines[-1]["step"] if lines else None}
      continue
    config = runs.load_run_config(workdir)
    method = runs.build_method(config)
    state, step = runs.restore_state(method, workdir)
    if int(step) != int(evals[-1]["step"]):
      rows[row] = {"unfinished": workdir, "last_step": int(step), "fid_step": evals[-1]["step"]}
      continue
    prev = old.get(row, {})
    if (prev.get("steps") == int(step) and prev.get("test_bpd_images") == min(args.num_test, 10_000)
        and prev.get("fid") is not None):
      rows[row] = prev
      continue
    if test is None:
      d = config.data
      test = data_lib.load_images(d.name, "test", data_dir=d.get("data_dir", None), path=d.get("path", None),
                                  image_size=d.get("image_size", None), source=d.get("source", "auto"))["image"]
      test = test[:args.num_test]
    t0 = time.time()
    bpd = bits_per_dim(method, state, test, "elbo", 1, args.batch_size)
    record = runs.training_record(workdir)
    done_step, done_s = _console(os.path.join(args.ablation_root, "ablation_logs", f"{row}.log"))
    rows[row] = {
        "command": f"nice -n 10 python -m ganzoo.main --config=configs/vae.py:fashion_mnist,{row},ablation "
                   f"--workdir={workdir} --no_progress",
        "steps": int(step), "train_done": {"step": done_step, "seconds": done_s},
        "mean_steps_per_sec": float(np.mean(record["steps_per_sec"])) if record["steps_per_sec"] else None,
        "test_bpd_elbo": bpd, "test_bpd_images": int(len(test)), "bpd_seconds": time.time() - t0,
        "fid": evals[-1]["eval/fid"], "fid_step": evals[-1]["step"], "run_eval_bpd_1000": evals[-1].get("eval/bpd"),
        "fid_samples": int(config.eval.num_samples),
        "model": {k: config.model[k] for k in ("arch", "z_dim", "flow", "flow_size", "flow_scales", "flow_features",
                                               "flow_blocks", "d_arch", "d_width")},
        "loss": config.loss.to_dict(),
        "last_train": record["last_train"],
        "seed_cifar10": SEED_CIFAR10[row],
    }
    if row == "gan":
      rows[row]["bpd_note"] = ("the ELBO through the GAN's untrained encoder and sigma head: a valid bound on the "
                               "decoder-as-Gaussian model's -log p, not a likelihood the GAN learned")
  get = lambda r, k: rows.get(r, {}).get(k)
  checks = {}
  def check(name, a, b, factor=1.0):
    if a is None or b is None:
      checks[name] = None
    else:
      checks[name] = bool(a * factor < b)
  check("VAE-F BPD < VAE BPD", get("vae_f", "test_bpd_elbo"), get("vae", "test_bpd_elbo"))
  check("CQ-F FID < CQ FID", get("cq_f", "fid"), get("cq", "fid"))
  check("CQ FID << VAE FID (CQ at most 2/3 of VAE; the seed: 58.6 vs 171.0)", get("cq", "fid"), get("vae", "fid"),
        1.5)
  check("CQ-F FID << VAE FID (at most 2/3)", get("cq_f", "fid"), get("vae", "fid"), 1.5)
  out = {"rows": rows, "seed_orderings_hold": checks, "note": args.note,
         "protocol": "bits per 8-bit dimension (ELBO, one posterior sample, fixed key; dequantized Gaussian "
                     "-log p(y) + D ln 256, VAE-F with the flow's log-det incl. the logit pre-processing); FID of "
                     "the run's final eval (eval.num_samples decoded-mean samples vs as many test images)"}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=1)
  for row in ABLATION_ROWS:
    r = rows[row]
    print(f"{row:6s} {'unfinished' if 'unfinished' in r else ''} steps {r.get('steps')} bpd {r.get('test_bpd_elbo')} fid {r.get('fid')} "
          f"seed {SEED_CIFAR10[row]}")
  print(json.dumps(checks, indent=1))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default=None)
  p.add_argument("--ablation_root", default=None, help="the five ablation_<row> workdirs' parent (module docstring)")
  p.add_argument("--num_test", type=int, default=10_000, help="test images for the ablation's bits/dim")
  p.add_argument("--out", required=True, help="path without extension for the .json")
  p.add_argument("--command", default="", help="the training command, recorded in the json")
  p.add_argument("--iwae_samples", type=int, default=100)
  p.add_argument("--iwae_images", type=int, default=1000)
  p.add_argument("--batch_size", type=int, default=500)
  p.add_argument("--note", default="")
  p.add_argument("--keep_bpd", action="store_true",
                 help="reuse test_bpd of an existing <out>.json (e.g. computed while the run's FID was running)")
  args = p.parse_args(argv)
  if args.ablation_root:
    return ablation(args)
  if not args.workdir:
    p.error("--workdir or --ablation_root is required")
  config = runs.load_run_config(args.workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, args.workdir)
  d = config.data
  test = data_lib.load_images(d.name, "test", data_dir=d.get("data_dir", None), path=d.get("path", None),
                              image_size=d.get("image_size", None), source=d.get("source", "auto"))["image"]
  if args.keep_bpd and os.path.exists(args.out + ".json"):
    test_bpd = json.load(open(args.out + ".json"))["test_bpd"]
  else:
    test_bpd = split_bits_per_dim(method, state, test, config, args)
  lines = [json.loads(l) for l in open(os.path.join(args.workdir, "metrics.jsonl")) if l.strip()]
  evals = [l for l in lines if any(k.startswith("eval/") for k in l)]
  record = runs.training_record(args.workdir)
  out = {
      "command": args.command,
      "config": f"{config.method}: model {config.model.to_dict()}, loss {config.loss.to_dict()}, "
                f"optim {config.nets.vae.optim.to_dict()}, batch {config.data.batch_size}",
      "steps": int(step),
      "train_wall_s": record["wall_time_s"],
      "mean_steps_per_sec": float(np.mean(record["steps_per_sec"])) if record["steps_per_sec"] else None,
      "last_train": record["last_train"],
      "test_bpd": test_bpd,
      "run_eval": evals[-1] if evals else None,
      "note": args.note,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps(out["test_bpd"], indent=1), out["run_eval"])


if __name__ == "__main__":
  main()
