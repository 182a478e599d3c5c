"""Metrics against direct numpy/scipy computations, known cases, and the evaluate plumbing."""

import json
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance

from ganzoo import evaluate
from ganzoo.metrics import fid, inception, inception_score, kid, likelihood, prdc, protocol


def _scipy_fid(f1, f2):
  """pytorch-fid's formula with scipy.linalg.sqrtm (and its eps-offset fallback)."""
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    eps = np.eye(len(s1)) * 1e-6
    covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
  return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
               - 2 * np.trace(covmean.real))


@pytest.mark.smoke
def test_fid_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(300, 12))
  b = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
  got, want = fid.fid_from_features(a, b), _scipy_fid(a, b)
  assert want > 1.0
  np.testing.assert_allclose(got, want, rtol=1e-8)


def test_fid_rank_deficient_covariances_match_scipy():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 1.0  # N < D: singular covariances.
  got = fid.fid_from_features(a, b)
  assert np.isfinite(got)
  np.testing.assert_allclose(got, _scipy_fid(a, b), rtol=1e-4)


def test_fid_of_gaussians_closed_form_and_identical_sets():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  want = 1.0 + 4.0 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # 5 + 1 + 1 + 4 = 11
  assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-12)
  x = np.random.default_rng(2).normal(size=(200, 16)).astype(np.float32)
  assert abs(fid.fid_from_features(x, x)) < 1e-6


def _mmd2_loops(x, y):
  m, d = len(x), x.shape[1]
  k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
  sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return sxx + syy - 2 * sxy


def test_kid_matches_loop_implementation():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(15, 6)), rng.normal(size=(15, 6)) + 0.5
  want = _mmd2_loops(x, y)
  assert kid.mmd2_unbiased(x, y) == pytest.approx(want, rel=1e-6)
  # Subsets as large as the sets are the whole sets (in some order): every subset gives `want`.
  mean, std = kid.kernel_inception_distance(x, y, num_subsets=5, subset_size=1000)
  assert mean == pytest.approx(want, rel=1e-5) and std < 1e-6 * abs(want) + 1e-9


def test_kid_same_distribution_near_zero_and_far_sets_large():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
  same, _ = kid.kernel_inception_distance(x, y, num_subsets=20, subset_size=200)
  far, _ = kid.kernel_inception_distance(x, y + 3.0, num_subsets=20, subset_size=200)
  assert abs(same) < 0.02 and far > 5.0


def test_inception_score_by_hand():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(40, 7)) * 3
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  want = []
  for part in np.array_split(p, 4):
    py = part.mean(0)
    want.append(math.exp(np.mean([sum(pi[c] * math.log(pi[c] / py[c]) for c in range(7))
                                  for pi in part])))
  mean, std = inception_score.inception_score(logits, num_splits=4)
  assert mean == pytest.approx(np.mean(want), rel=1e-10)
  assert std == pytest.approx(np.std(want), rel=1e-8)


def test_inception_score_known_cases():
  confident = np.full((100, 10), -50.0)
  confident[np.arange(100), np.arange(100) % 10] = 50.0  # each split holds all 10 classes.
  assert inception_score.inception_score(confident)[0] == pytest.approx(10.0, rel=1e-6)
  assert inception_score.inception_score(np.zeros((100, 10)))[0] == pytest.approx(1.0)


def _brute_prdc(real, fake, k):
  drr = scipy.spatial.distance.cdist(real, real)
  dff = scipy.spatial.distance.cdist(fake, fake)
  drf = scipy.spatial.distance.cdist(real, fake)
  r_real = np.sort(drr, axis=1)[:, k]
  r_fake = np.sort(dff, axis=1)[:, k]
  precision = np.mean([(drf[:, j] <= r_real).any() for j in range(len(fake))])
  recall = np.mean([(drf[i, :] <= r_fake).any() for i in range(len(real))])
  density = (drf <= r_real[:, None]).sum() / (k * len(fake))
  coverage = np.mean(drf.min(axis=1) <= r_real)
  return precision, recall, density, coverage


def test_precision_recall_density_coverage_match_brute_force():
  rng = np.random.default_rng(6)
  real = rng.normal(size=(70, 8)).astype(np.float32)
  fake = (rng.normal(size=(50, 8)) * 0.7 + 0.8).astype(np.float32)
  for k in (3, 5):
    p, r, d, c = _brute_prdc(real.astype(np.float64), fake.astype(np.float64), k)
    pr = prdc.precision_recall(real, fake, k=k, block=16)  # blocks + a padded last block.
    dc = prdc.density_coverage(real, fake, k=k, block=16)
    assert 0 < p < 1 and 0 < r < 1 and 0 < c < 1
    assert pr == {"precision": pytest.approx(p), "recall": pytest.approx(r)}
    assert dc == {"density": pytest.approx(d), "coverage": pytest.approx(c)}


def test_pairwise_distances_and_radii_match_scipy():
  rng = np.random.default_rng(7)
  x, y = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
  np.testing.assert_allclose(prdc.pairwise_distances(x, y, block=8),
                             scipy.spatial.distance.cdist(x, y), rtol=1e-4, atol=1e-5)
  want = np.sort(scipy.spatial.distance.cdist(x, x), axis=1)[:, 3]
  np.testing.assert_allclose(prdc.knn_radii(x, 3, block=8), want, rtol=1e-4, atol=1e-5)


def test_prdc_known_cases():
  x = np.random.default_rng(8).normal(size=(60, 6)).astype(np.float32)
  assert prdc.precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
  assert prdc.density_coverage(x, x)["coverage"] == 1.0
  far = x + 100.0
  assert prdc.precision_recall(x, far) == {"precision": 0.0, "recall": 0.0}
  assert prdc.density_coverage(x, far) == {"density": 0.0, "coverage": 0.0}


def test_bits_per_dim():
  d = 3 * 32 * 32
  assert likelihood.bits_per_dim(d * 8 * math.log(2), d) == pytest.approx(8.0)
  # Uniform density on [0,1]^D of dequantized uint8 data: -log p = 0 nats -> 8 bits per dim.
  assert likelihood.bits_per_dim(0.0, d, scaled_to_unit_interval=True) == pytest.approx(8.0)
  np.testing.assert_allclose(likelihood.bits_per_dim(np.array([0.0, d * math.log(2)]), d),
                             [0.0, 1.0])


def test_to_uint8_quantization():
  x = np.array([-1.0, -0.99, 0.0, 0.5, 1.0, 1.7], np.float32)
  np.testing.assert_array_equal(inception.to_uint8(x), [0, 1, 128, 191, 255, 255])


class _PixelExtractor:
  """Cheap stand-in for FeatureExtractor: features = 16 pixel averages (tests the plumbing)."""
  weights_sha256 = "test-weights"
  has_logits = False

  def __init__(self):
    self.images_seen = 0

  def extract_batches(self, batches, total, batch_size=50, progress=None):
    feats = []
    for b in batches:
      assert b.dtype == np.uint8 and len(b) <= batch_size
      self.images_seen += len(b)
      feats.append(b.astype(np.float32).reshape(len(b), 16, -1).mean(-1))
    f = np.concatenate(feats)
    assert len(f) == total
    return {"features": f, "logits": None}

  def extract(self, images, batch_size=50, progress=None):
    return self.extract_batches(
        (images[i:i + batch_size] for i in range(0, len(images), batch_size)), len(images),
        batch_size)


@pytest.mark.smoke
def test_evaluate_sampler_plumbing_and_reference_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  rng = np.random.default_rng(9)
  real = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
  np.savez(tmp_path / "real.npz", images=real)
  ex = _PixelExtractor()

  def sample_fn(n, key):  # returns the real images as floats in [-1, 1], in order.
    del key
    start = sample_fn.pos
    sample_fn.pos += n
    return real[start:start + n].astype(np.float32) / 127.5 - 1.0
  sample_fn.pos = 0

  out = evaluate.evaluate_sampler(sample_fn, 40, str(tmp_path / "real.npz"),
                                    metrics=("fid", "kid", "is", "pr"), extractor=ex,
                                    batch_size=16)
  assert ex.images_seen == 80  # 40 generated + 40 reference.
  assert abs(out["fid"]) < 1e-6 and out["precision"] == 1.0 and out["recall"] == 1.0
  assert out["is"] is None and "fc layer" in out["messages"][0]
  proto = out["protocol"]
  assert proto["num_samples"] == 40 and proto["num_reference"] == 40
  assert proto["reference"].startswith("real.npz@sha256:")
  assert proto["resize_filter"] == inception.RESIZE_FILTER and proto["weights_sha256"] == (
      "test-weights")
  sample_fn.pos = 0
  protocol._MEMORY.clear()  # pylint: disable=protected-access
  evaluate.evaluate_sampler(sample_fn, 40, str(tmp_path / "real.npz"), metrics="fid",
                              extractor=ex, batch_size=16)
  assert ex.images_seen == 120  # reference statistics came from the disk cache.
  assert len(list((tmp_path / "cache" / "fid_stats").glob("*.npz"))) == 1


def test_cli_prints_one_json_object(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
  rng = np.random.default_rng(10)
  np.savez(tmp_path / "fake.npz", images=rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8))
  np.savez(tmp_path / "real.npz", images=rng.integers(0, 128, (30, 8, 8, 3), dtype=np.uint8))
  monkeypatch.setattr(evaluate, "get_extractor", lambda path=None: _PixelExtractor())
  if "fake" not in evaluate.FLAGS:
    evaluate.define_flags()  # the CLI defines its flags only when run as a program
  evaluate.FLAGS([
      "evaluate", f"--fake={tmp_path / 'fake.npz'}", f"--real={tmp_path / 'real.npz'}",
      "--metrics=fid,kid,dc", "--num_samples=20", "--batch_size=8"])
  try:
    evaluate.main([])
  finally:
    evaluate.FLAGS.unparse_flags()
  result = json.loads(capsys.readouterr().out)
  assert result["fid"] > 10 and result["kid"] > 0 and 0 <= result["coverage"] <= 1
  assert result["protocol"]["num_samples"] == 20 and result["protocol"]["num_reference"] == 20


def test_bad_metric_and_reference_names_raise():
  with pytest.raises(ValueError, match="choose from"):
    evaluate.parse_metrics("fid,foo")
  with pytest.raises(ValueError, match="NAME:SPLIT"):
    protocol.reference_name("cifar10")
