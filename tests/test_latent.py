"""ganzoo.latent: inversion recovery (z, W), SeFa == numpy eigh, GANSpace == numpy PCA, InterFaceGAN's
linear SVM on separable latents, the encoder, Voynov-Babenko, and the CLI on a tiny trained run.

All generators are the families' tiny test networks at random initialization (built here, seconds):
the tools only need a differentiable map from latents to images.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import latent
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo.latent import directions as dirs
from ganzoo.latent import inversion as inv
from ganzoo.methods.gan import GAN
from ganzoo.methods.stylegan import StyleGAN
from ganzoo.methods.stylegan2 import StyleGAN2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}

# Recovery criterion (Lipton & Tripathi 2017, arXiv:1702.04782 Sec. 3): an inversion "recovers" a
# sample when its image's MSE to the target is below 1% of the mean MSE between images of two
# independent latents, i.e. the reconstruction is 10x closer (in RMSE) to its own target than a
# random other sample is: the images match, not just resemble each other. Required for >= 95% of 100.
RECOVERY_RATIO = 0.01


def _tiny(family, seed=0, **model):
  config, data = family.test_config()
  config.model.update(model)
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(seed))
  return method, state


def _tiny_style(family):
  """A tiny style-based family at init, with w_avg set to the mapping's mean (a fresh state's extras
  hold zeros)."""
  method, state = _tiny(family)
  mean, _ = latent.w_stats(latent.from_method(method, state), jax.random.PRNGKey(5), 2000)
  return method, state.replace(extras={**state.extras, "w_avg": mean})


@pytest.fixture(scope="module")
def style_state():
  """The tiny StyleGAN2 (8x8, z = w = 16)."""
  return _tiny_style(StyleGAN2)


@pytest.fixture(scope="module")
def style_gen(style_state):
  return latent.from_method(*style_state)


@pytest.fixture(scope="module")
def style1_state():
  """The tiny StyleGAN v1 (8x8, z = w = 16: b4 const, b4 conv, b8 conv0, b8 conv1)."""
  return _tiny_style(StyleGAN)


@pytest.fixture(scope="module")
def style1_gen(style1_state):
  return latent.from_method(*style1_state)


# The style-based generators: StyleGAN2 and StyleGAN v1 (parametrized tests take the fixture by name).
STYLE_GENS = ("style_gen", "style1_gen")


@pytest.fixture(scope="module")
def z_gen():
  method, state = _tiny(GAN, z_dim=8)   # DCGAN tiny, 28x28x1: 8 latent dims for 784 pixels
  return latent.from_method(method, state)


def _recovery(gen, space, steps):
  z = jax.random.normal(jax.random.PRNGKey(1), (100, gen.z_dim), jnp.float32)
  lat = z if space == "z" else gen.mapping(gen.params, z)
  targets = latent.synthesize(gen, space, lat)
  random_pair = float(jnp.mean(jnp.square(targets - jnp.roll(targets, 1, axis=0))))
  res = latent.invert(gen, targets, space, latent.InvertConfig(num_steps=steps, optimize_noise=False),
                      rng=jax.random.PRNGKey(2))
  rel = np.asarray(res.mse) / random_pair
  return rel, res


def test_recovery_z(z_gen):
  rel, res = _recovery(z_gen, "z", 300)
  assert np.mean(rel < RECOVERY_RATIO) >= 0.95, np.percentile(rel, [50, 95])
  assert res.latents.shape == (100, 8) and res.losses.shape == (300,)


def test_recovery_w(style_gen):
  rel, res = _recovery(style_gen, "w", 300)
  assert np.mean(rel < RECOVERY_RATIO) >= 0.95, np.percentile(rel, [50, 95])
  assert res.latents.shape == (100, style_gen.w_dim)


def test_stylegan1_latent_spaces_are_its_generator(style1_state, style1_gen, style_gen):
  """StyleGAN v1 through the latent tools: z -> mapping -> the same w for every layer -> synthesis
  is the generator's own forward (noise off on both sides, float32 of the same ops: 1e-5); one
  noise buffer per w (v1 has two per resolution from 4x4), one fewer than ws in StyleGAN2."""
  method, state = style1_state
  z = jax.random.normal(jax.random.PRNGKey(7), (4, style1_gen.z_dim), jnp.float32)
  params, bs = nets_lib.inference_variables(method.nets["g"], state.nets["g"], True)
  want = np.clip(np.asarray(nets_lib.forward(method.nets["g"], params, bs, z, train=False)[0]), -1, 1)
  np.testing.assert_allclose(np.asarray(latent.synthesize(style1_gen, "z", z)), want, atol=1e-5)
  assert style1_gen.num_ws == 4 and style1_gen.noise_shapes == ((4, 4, 1),) * 2 + ((8, 8, 1),) * 2
  assert style_gen.num_ws == 4 and style_gen.noise_shapes == ((4, 4, 1),) + ((8, 8, 1),) * 2


@pytest.mark.parametrize("gen_name", STYLE_GENS)
def test_w_plus_noise_buffers_and_bad_space(gen_name, request, z_gen):
  """W+ optimizes one w per layer and the noise buffers, which stay normalized (zero mean, unit
  variance per sample, up to float32 rounding); z-only generators refuse W."""
  style_gen = request.getfixturevalue(gen_name)
  x = latent.synthesize(style_gen, "w", jnp.broadcast_to(style_gen.w_avg, (4, style_gen.w_dim)))
  res = latent.invert(style_gen, x, "w+", latent.InvertConfig(num_steps=5))
  assert res.latents.shape == (4, style_gen.num_ws, style_gen.w_dim)
  assert [b.shape[1:] for b in res.noise] == list(style_gen.noise_shapes)
  for b in res.noise:
    np.testing.assert_allclose(np.mean(np.asarray(b), axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.mean(np.square(np.asarray(b)), axis=(1, 2, 3)), 1.0, atol=1e-4)
  with pytest.raises(ValueError, match="--space=z"):
    latent.invert(z_gen, np.zeros((2, 28, 28, 1)), "w")


def test_learning_rate_schedule():
  """projector.py's ramp: 0 at t=0, lr0 on the plateau, lr0/2 in the middle of the cosine ramp-down."""
  cfg = latent.InvertConfig(lr=0.1)
  lr = lambda t: float(inv.learning_rate(jnp.float32(t), cfg))
  assert lr(0.0) == 0.0
  np.testing.assert_allclose([lr(0.025), lr(0.5), lr(0.875), lr(1.0)], [0.05, 0.1, 0.05, 0.0], atol=1e-6)


def test_noise_regularization_is_zero_for_uncorrelated_and_positive_for_smooth_noise():
  """Constant-sign shift products: a checkerboard has autocorrelation -1 along both axes at each of
  the 2 pyramid levels of a 16x16 buffer (16 and 8; pooled, a checkerboard averages to 0, so the
  8x8 level adds 0): 2 (axes) x 1^2 = 2."""
  i = np.indices((16, 16)).sum(0) % 2 * 2.0 - 1.0
  assert float(inv.noise_regularization([jnp.asarray(i)[None, :, :, None]])[0]) == pytest.approx(2.0, abs=1e-6)
  ones = jnp.ones((1, 16, 16, 1))
  assert float(inv.noise_regularization([ones])[0]) == pytest.approx(4.0, abs=1e-6)  # 2 axes x 2 levels


def _numpy_top_eigvecs(a, k):
  a = np.asarray(a, np.float64)
  a = a / np.linalg.norm(a, axis=1, keepdims=True)
  vals, vecs = np.linalg.eigh(a.T @ a)
  order = np.argsort(-vals)[:k]
  return vals[order], vecs[:, order].T


def test_sefa_equals_numpy_eigh(style_gen, style1_gen, z_gen):
  """SeFa's directions are the top eigenvectors of A^T A computed by numpy (float64) from the raw
  params: |cos| = 1 up to float32 eigensolver error (~1e-5 for these 16x16 / 8x8 well-separated
  spectra; a repeated eigenvalue would make vectors arbitrary, so the spectra's gaps are checked).
  StyleGAN2's A: the modulated convs' affines; StyleGAN v1's: the 4 epilogues' style dense layers
  (2C rows each: scale and bias)."""
  synth = jax.tree.map(np.asarray, style_gen.params["synthesis"])
  a_style = np.concatenate([synth[k]["affine"]["kernel"].T for k in sorted(synth)
                            if isinstance(synth[k], dict) and "affine" in synth[k] and not k.endswith("torgb")])
  synth1 = jax.tree.map(np.asarray, style1_gen.params["synthesis"])
  a_style1 = np.concatenate([synth1[k]["style"]["kernel"].T for k in ("b4_const", "b4_conv_epi", "b8_conv0_epi",
                                                                       "b8_conv1_epi")])
  assert a_style1.shape[0] == 2 * sum(synth1[k]["noise_weight"].shape[0] for k in synth1 if "style" in synth1[k])
  for gen, a in ((style_gen, a_style), (style1_gen, a_style1),
                 (z_gen, np.asarray(z_gen.first_layer(z_gen.params)))):
    k = 4
    d = latent.sefa(gen, k)
    vals, vecs = _numpy_top_eigvecs(a, k)
    assert np.min(np.diff(-vals)) > 1e-3 * vals[0]
    np.testing.assert_allclose(d.values, vals, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(d.vectors * vecs, axis=1)), 1.0, atol=1e-4)
  # The z family's A is the first dense layer, which maps the z_dim-d latent.
  assert np.asarray(z_gen.first_layer(z_gen.params)).shape[1] == 8


def test_ganspace_equals_numpy_pca(style_gen):
  """Components = eigenvectors of numpy's sample covariance of the same w samples (up to sign),
  variances = its eigenvalues; float32 SVD vs float64 eigh agree to ~1e-4 relative."""
  d = latent.ganspace(style_gen, jax.random.PRNGKey(3), k=4, n=3000)
  z = jax.random.normal(jax.random.PRNGKey(3), (3000, style_gen.z_dim), jnp.float32)
  w = np.asarray(style_gen.mapping(style_gen.params, z), np.float64)
  vals, vecs = np.linalg.eigh(np.cov(w, rowvar=False))
  order = np.argsort(-vals)[:4]
  np.testing.assert_allclose(d.values, vals[order], rtol=1e-3)
  np.testing.assert_allclose(np.abs(np.sum(d.vectors * vecs[:, order].T, axis=1)), 1.0, atol=1e-3)


def test_ganspace_z_family_transfers_feature_pca(z_gen):
  """Without a mapping the feature components V (PCA of y = A z) are regressed onto z. For linear
  features the least-squares solution is closed form: coordinates C = Zc A^T V^T, so
  U = (C^T C)^-1 C^T Zc has rows proportional to v_k A S (S the samples' covariance of z); the
  directions must equal them up to float32 PCA error."""
  n = 600
  d = latent.ganspace(z_gen, jax.random.PRNGKey(0), k=3, n=n)
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (n, z_gen.z_dim), jnp.float32), np.float64)
  a = np.asarray(z_gen.first_layer(z_gen.params), np.float64)
  expect = d.info["feature_components"] @ a @ np.cov(z, rowvar=False)
  expect /= np.linalg.norm(expect, axis=1, keepdims=True)
  np.testing.assert_allclose(np.abs(np.sum(d.vectors * expect, axis=1)), 1.0, atol=1e-4)


def test_interfacegan_on_separable_latents():
  """Scores linear in the latent (s = n.x): the top and bottom 30% are separated by a slab of width
  2 x 0.524 (the N(0,1) 70% quantile) along n, so the converged SVM classifies its training latents
  exactly and its normal is n (the max-margin normal of two slab-separated Gaussian halves is n,
  up to the finite-sample asymmetry of the boundary points; cos >= 0.95 allows for it)."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2000, 16)).astype(np.float32)
  n_true = rng.normal(size=16)
  n_true /= np.linalg.norm(n_true)
  d = latent.interfacegan(x, x @ n_true)
  assert d.info["train_accuracy"] == 1.0
  assert d.info["val_accuracy"] >= 0.99
  assert float(d.vectors[0] @ n_true) >= 0.95


def test_linear_svm_hinge_and_squared_hinge():
  """Two Gaussian blobs at +-2 e_0 (separable with margin): both losses classify all points, and the
  normal is along e_0."""
  rng = np.random.default_rng(1)
  y = np.where(rng.random(400) < 0.5, 1.0, -1.0).astype(np.float32)
  x = rng.normal(size=(400, 5)).astype(np.float32) * 0.3
  x[:, 0] += 2.0 * y
  for squared in (True, False):
    svm = latent.linear_svm(x, y, squared=squared)
    assert svm.accuracy == 1.0
    assert abs(svm.w[0]) / np.linalg.norm(svm.w) > 0.95
  with pytest.raises(ValueError, match="-1 or"):
    latent.linear_svm(x, (y > 0).astype(np.float32))


def test_encoder_beats_the_mean_and_refines(style_gen):
  """E trained on generated pairs predicts held-out w closer than the trivial predictor w_avg does
  (its mean squared error is below the variance of w), and refining from E(x) reaches a lower image
  MSE than E(x) alone."""
  enc = latent.train_encoder(style_gen, jax.random.PRNGKey(0), "w", steps=300, batch=32)
  z = jax.random.normal(jax.random.PRNGKey(9), (32, style_gen.z_dim), jnp.float32)
  w = style_gen.mapping(style_gen.params, z)
  x = latent.synthesize(style_gen, "w", w)
  pred = enc.encode(x)
  err_enc = float(jnp.mean(jnp.square(pred - w)))
  err_mean = float(jnp.mean(jnp.square(style_gen.w_avg[None] - w)))
  assert err_enc < 0.5 * err_mean, (err_enc, err_mean)
  mse_enc = float(jnp.mean(jnp.square(latent.synthesize(style_gen, "w", pred) - x)))
  res = latent.encode_and_refine(style_gen, enc, x, cfg=latent.InvertConfig(num_steps=50, optimize_noise=False))
  assert float(jnp.mean(res.mse)) < mse_enc


def test_voynov_babenko_learns_distinguishable_directions(style_gen):
  """After a short joint training the reconstructor identifies the shifted direction far above chance
  (1/K = 0.25 for K = 4); the directions are unit vectors."""
  d = latent.voynov_babenko(style_gen, jax.random.PRNGKey(0), k=4, steps=300, batch=32)
  np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1.0, atol=1e-5)
  assert d.info["accuracy"] > 0.5, d.info


def test_edit_sheet_middle_column_is_the_base(style_gen):
  d = latent.sefa(style_gen, 2)
  base = style_gen.w_avg
  sheet = latent.edit_sheet(style_gen, d, base, np.array([-2.0, 0.0, 2.0]))
  assert sheet.shape == (2, 3, 8, 8, 1)
  np.testing.assert_allclose(sheet[:, 1], np.broadcast_to(latent.synthesize(style_gen, "w", base[None]), (2, 8, 8, 1)),
                             atol=1e-5)
  assert np.abs(sheet[:, 0] - sheet[:, 2]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# CLI on a tiny trained run.

@pytest.fixture(scope="module")
def style_run(tmp_path_factory, style_state):
  """A StyleGAN2 workdir as training leaves one (config.json, checkpoints/ with the initial state and
  w_avg set to the mapping's mean), written directly: no training step to compile."""
  from ganzoo import checkpoint
  from tests.test_train import write_npz
  tmp = tmp_path_factory.mktemp("sg2")
  config, _ = StyleGAN2.test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp / "data.npz", n=32, shape=(8, 8, 1), num_classes=2)
  run = tmp / "run"
  run.mkdir()
  (run / "config.json").write_text(config.to_json_best_effort())
  _, state = style_state
  ckpt = checkpoint.Checkpointer(str(run / "checkpoints"))
  ckpt.save(1, state, force=True)
  ckpt.wait()
  images = tmp / "images"
  images.mkdir()
  from PIL import Image
  for i in range(3):
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (8, 8), dtype=np.uint8)).save(images / f"{i}.png")
  return run, images


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "ganzoo.latent", *args], cwd=ROOT, env=ENV, capture_output=True,
                        text=True)


def test_cli_invert_and_directions(style_run, tmp_path):
  run, images = style_run
  out = tmp_path / "inv"
  done = _cli("invert", f"--workdir={run}", f"--images={images}", "--space=w+", f"--out={out}", "--steps=20")
  assert done.returncode == 0, done.stderr
  npz = np.load(out / "latents.npz")
  assert npz["latents"].shape[:2] == (3, 4) and npz["mse"].shape == (3,) and str(npz["space"]) == "w+"
  numbers = json.loads((out / "inversion.json").read_text())
  np.testing.assert_allclose(numbers["mse_mean"], npz["mse"].mean(), rtol=1e-6)
  from PIL import Image
  # 3 pairs = 6 tiles on one row (up to 4 pairs per row), 8x8 tiles with 2-pixel padding.
  assert np.asarray(Image.open(out / "sheet.png")).shape[:2] == (8 + 4, 6 * 10 + 2)
  for method in ("sefa", "interfacegan"):
    d_out = tmp_path / method
    done = _cli("directions", f"--workdir={run}", f"--method={method}", f"--out={d_out}", "--num=3",
                "--columns=5", "--samples=200")
    assert done.returncode == 0, done.stderr
    vec = np.load(d_out / "directions.npz")["vectors"]
    assert vec.shape == ((3 if method == "sefa" else 1), 16)
    rows = vec.shape[0]
    assert np.asarray(Image.open(d_out / "edits.png")).shape[:2] == (rows * 10 + 2, 5 * 10 + 2)


def test_cli_errors_are_one_line(style_run, tmp_path):
  """Bad input is a ValueError that says what to do (in-process, cheap) and, through the program, one
  `error:` line with exit status 1 and no traceback (two subprocesses: the CLI's error path is one)."""
  from ganzoo.latent import cli
  run, images = style_run
  empty = tmp_path / "empty"
  empty.mkdir()
  cases = [
      (lambda: cli.invert_images(str(tmp_path / "nope"), str(images), str(tmp_path)), "does not exist"),
      (lambda: cli.invert_images(str(run), str(empty), str(tmp_path)), "no images"),
      (lambda: cli.invert_images(str(run), str(tmp_path / "missing"), str(tmp_path)), "does not exist"),
      (lambda: cli.invert_images(str(run), str(images), None), "--out is required"),
      (lambda: cli.invert_images(None, str(images), str(tmp_path)), "--workdir is required"),
      (lambda: cli.find_directions(str(run), "interfacegan", str(tmp_path), attribute="smile"), "unknown --attribute"),
      (lambda: cli.find_directions(str(run), "pca", str(tmp_path)), "unknown --method"),
  ]
  for fn, message in cases:
    with pytest.raises(ValueError, match=message):
      fn()
  for args, message in [(("invert", f"--workdir={tmp_path / 'nope'}", f"--images={images}", f"--out={tmp_path}"),
                          "does not exist"), (("rotate", f"--workdir={run}"), "usage")]:
    done = _cli(*args)
    assert done.returncode == 1, (args, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, done.stderr)


def test_z_only_run_refuses_w(z_gen):
  with pytest.raises(ValueError, match="style-based generator"):
    inv.check_space(z_gen, "w+")


def test_lpips_like_distance_is_the_normalized_feature_formula():
  """lpips_like == sum_l mean_hw ||a/|a| - b/|b|||^2 computed in numpy; 0 for identical features and unchanged
  when a position's feature vector is scaled by a positive factor (the channel normalization)."""
  from ganzoo.latent import perceptual  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  fa = [rng.normal(size=(3, 4, 4, 5)).astype(np.float32), rng.normal(size=(3, 2, 2, 7)).astype(np.float32)]
  fb = [rng.normal(size=a.shape).astype(np.float32) for a in fa]
  unit = lambda a: a / np.sqrt(np.sum(a.astype(np.float64) ** 2, axis=-1, keepdims=True))
  want = sum(np.mean(np.sum((unit(a) - unit(b)) ** 2, axis=-1), axis=(1, 2)) for a, b in zip(fa, fb))
  got = np.asarray(perceptual.lpips_like([jnp.asarray(a) for a in fa], [jnp.asarray(b) for b in fb]))
  np.testing.assert_allclose(got, want, rtol=1e-5)   # float32 sums of <= 7 unit-scale terms
  same = np.asarray(perceptual.lpips_like([jnp.asarray(a) for a in fa], [jnp.asarray(a) for a in fa]))
  assert np.all(np.abs(same) < 1e-6)
  scaled = [a * rng.uniform(0.5, 2.0, size=a.shape[:-1] + (1,)).astype(np.float32) for a in fa]
  np.testing.assert_allclose(perceptual.lpips_like([jnp.asarray(a) for a in scaled], [jnp.asarray(b) for b in fb]),
                             want, rtol=1e-5)


def test_discriminator_distance_is_zero_on_the_target_and_differentiable():
  """--perceptual=d: D's intermediate maps of the tiny DCGAN give distance 0 between an image and itself, > 0
  to another image, and a finite nonzero gradient (what the inversion loop differentiates); an unknown
  name is a one-line error."""
  from ganzoo.latent import perceptual  # pylint: disable=g-import-not-at-top
  method, state = _tiny(GAN, z_dim=8)
  dist = perceptual.make_distance("d", method, state)
  gen = latent.from_method(method, state)
  z = jax.random.normal(jax.random.PRNGKey(1), (8, gen.z_dim), jnp.float32)
  images = latent.synthesize(gen, "z", z)
  assert float(jnp.max(jnp.abs(dist(images, images)))) < 1e-6
  assert float(jnp.min(dist(images, jnp.roll(images, 1, axis=0)))) > 1e-4
  grad = jax.grad(lambda x: jnp.sum(dist(x, images[::-1])))(images)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.max(jnp.abs(grad))) > 0
  with pytest.raises(ValueError, match="unknown --perceptual"):
    perceptual.make_distance("vgg", method, state)
