"""The pix2pix family: AB folders, the jitter, the losses' values, the update order, inference modes.

The 8-device == 1-device and resumed == unbroken tests run through tests/test_families.py
(`Pix2Pix.test_config`).
"""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ganzoo import data as data_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import parallel
from ganzoo import step as step_lib
from ganzoo import train
from ganzoo.methods import pix2pix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_ab_folder(root, n=6, size=32, seed=0):
  """<root>/{train,val,test}/<i>.png: AB images [size, 2 size]; A = a smooth ramp plus noise, B = its
  colour negative with the channels rolled, so B is a known function of A (and not of A's mirror)."""
  rng = np.random.default_rng(seed)
  for split in ("train", "val", "test"):
    os.makedirs(root / split, exist_ok=True)
    for i in range(n):
      ramp = np.linspace(0, 200, size)[None, :, None] + np.linspace(0, 50, size)[:, None, None]
      a = np.clip(ramp + rng.integers(0, 50, (size, size, 3)), 0, 255).astype(np.uint8)
      b = np.roll(255 - a, 1, axis=-1)
      Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{i}.png")
  return root


def b_of_a(a):
  """B as a function of A in [-1, 1] (write_ab_folder): the negative with the channels rolled."""
  return np.roll(-a, 1, axis=-1)


def test_folder_halves_and_direction(tmp_path):
  """FolderSource keeps the stored AB size; A is the left half, B the right; BtoA swaps them."""
  root = write_ab_folder(tmp_path)
  src = data_lib.FolderSource(str(root / "train"))
  assert src.image_shape == (32, 64, 3)
  ab = pix2pix.to_float(src.get(np.arange(3))["image"])
  a, b = pix2pix.split_ab(jnp.asarray(ab), "AtoB")
  # (255 - a) / 127.5 - 1 and -(a / 127.5 - 1) differ by float32 rounding only.
  np.testing.assert_allclose(np.asarray(b), b_of_a(np.asarray(a)), atol=1e-6)
  a_left = np.asarray(Image.open(root / "train" / "0.png"))[:, :32]
  np.testing.assert_array_equal(np.asarray(a[0]), pix2pix.to_float(a_left))
  x, y = pix2pix.split_ab(jnp.asarray(ab), "BtoA")
  np.testing.assert_array_equal(np.asarray(x), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(a))
  # Test-time preprocessing at the stored size is the identity on each half.
  inputs, targets = pix2pix.load_pairs(str(root / "test"), "BtoA", 32)
  np.testing.assert_allclose(inputs, b_of_a(targets), atol=1e-6)


def test_jitter_is_one_crop_and_flip_for_both_halves():
  """Resize to load, crop, flip: identical on A and B, corners uniform over [0, load - crop] inclusive."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.uniform(-1, 1, (64, 16, 16, 3)).astype(np.float32))
  b = -a
  key = jax.random.PRNGKey(3)
  ja, jb = pix2pix.jitter(key, a, b, load_size=20, crop_size=16)
  assert ja.shape == jb.shape == (64, 16, 16, 3)
  # The same crop and flip on both: B = -A survives the jitter (the resize is odd-symmetric up to
  # the rounding to 8-bit levels, whose ties at +-0.5 level can split: at most one level, 2/255).
  np.testing.assert_allclose(np.asarray(jb), -np.asarray(ja), atol=2 / 255 + 1e-6)
  params = jax.tree.map(np.asarray, pix2pix.jitter_params(key, 64, 20, 16, True))
  big, ja = np.asarray(pix2pix.resize_square(a, 20)), np.asarray(ja)
  assert 0 < params["flip"].sum() < 64
  for i in range(64):
    x0, y0, f = int(params["x"][i]), int(params["y"][i]), bool(params["flip"][i])
    want = big[i, y0:y0 + 16, x0:x0 + 16]
    np.testing.assert_array_equal(ja[i], want[:, ::-1] if f else want)
  many = pix2pix.jitter_params(jax.random.PRNGKey(0), 4000, 286, 256, True)
  assert int(many["x"].min()) == 0 and int(many["x"].max()) == 30 and int(many["y"].max()) == 30
  # 4000 fair coins: the mean is 0.5 +- 4 standard deviations (4 * 0.0079).
  assert abs(float(many["flip"].mean()) - 0.5) < 4 * 0.5 / np.sqrt(4000)
  assert not bool(pix2pix.jitter_params(key, 64, 20, 16, False)["flip"].any())


def test_resize_matches_pil_bicubic():
  """jax's bicubic resize, rounded to 8 bits, agrees with PIL's BICUBIC (what the reference calls)
  to within 3 levels on a smooth image (the two round differently inside the kernel sums)."""
  yy, xx = np.mgrid[0:64, 0:64]
  img = np.stack([128 + 100 * np.sin(xx / 7.0), 128 + 100 * np.cos(yy / 5.0), (xx + yy) * 2.0], -1)
  img = np.clip(img, 0, 255).astype(np.uint8)
  for size in (72, 36):
    want = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)).astype(np.float64)
    got = np.asarray(pix2pix.resize_square(jnp.asarray(pix2pix.to_float(img[None])), size))[0]
    got = (got + 1.0) * 127.5
    assert np.abs(got - want).max() <= 3.0 + 1e-4, size


def test_loss_values_on_fixed_logits():
  """GANLoss vanilla = BCE with logits against 1s / 0s, D's 0.5 factor, G's + 100 * L1, lsgan = MSE."""
  real = jnp.asarray([[0.0, 2.0], [-1.0, 3.0]])
  fake = jnp.asarray([[1.0, -2.0], [0.5, 0.0]])
  bce = lambda x, t: float(np.mean(-(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))))
  r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  np.testing.assert_allclose(pix2pix.gan_loss(real, True), bce(r, 1), rtol=1e-6)
  np.testing.assert_allclose(pix2pix.gan_loss(fake, False), bce(f, 0), rtol=1e-6)
  np.testing.assert_allclose(pix2pix.d_loss(real, fake), 0.5 * (bce(r, 1) + bce(f, 0)), rtol=1e-6)
  # all-zero logits: log 2 for every term
  np.testing.assert_allclose(pix2pix.d_loss(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 4, 4, 1))), np.log(2), rtol=1e-6)
  out = jnp.asarray([0.5, -0.5, 1.0, 0.0])
  target = jnp.asarray([0.0, 0.0, 0.0, 1.0])
  l1 = (0.5 + 0.5 + 1.0 + 1.0) / 4
  np.testing.assert_allclose(pix2pix.l1_loss(out, target), l1, rtol=1e-6)
  np.testing.assert_allclose(pix2pix.g_loss(fake, out, target), bce(f, 1) + 100 * l1, rtol=1e-6)
  np.testing.assert_allclose(pix2pix.g_loss(fake, out, target, 10.0), bce(f, 1) + 10 * l1, rtol=1e-6)
  np.testing.assert_allclose(pix2pix.d_loss(real, fake, "lsgan"),
                             0.5 * (np.mean(f ** 2) + np.mean((r - 1) ** 2)), rtol=1e-6)
  np.testing.assert_allclose(pix2pix.gan_loss(fake, True, "lsgan"), np.mean((f - 1) ** 2), rtol=1e-6)


def _method(dropout=False):
  """The family's test config; `dropout`: unet_64 instead of unet_32, the smallest U-Net with a
  dropout block (num_downs - 5 of them)."""
  config, data = pix2pix.Pix2Pix.test_config()
  if dropout:
    config.model.update(netG="unet_64", load_size=72, crop_size=64)
    data = methods.DataSpec((64, 128, 3), 0)
  return methods.build(config, data), data


def _batch(data, n=8, seed=0):
  return {"real": {"image": np.random.default_rng(seed).integers(0, 256, (1, n, *data.image_shape), dtype=np.uint8)}}


def test_one_step_is_the_reference_order():
  """fake_B = G(A) once; D updated on it; G updated through the *updated* D on the same pair and fake."""
  method, data = _method()
  state = method.init(jax.random.PRNGKey(0))
  batch = _batch(data)
  assert [p.name for p in method.phases] == ["d", "g"]
  state_full, metrics = step_lib.make_step(method, method.plan(0), donate=False)(state, batch)
  # G's update leaves D alone, so the step's D is D after its update; G before its update is the initial G.
  updated_d = state.replace(nets={"g": state.nets["g"], "d": state_full.nets["d"]})
  # The update's key as make_step derives it: fold_in(fold_in(rng, step), phase key), split over 1 repeat.
  key = jax.random.split(jax.random.fold_in(jax.random.fold_in(state.rng, 0), pix2pix.STEP_KEY), 1)[0]
  images = step_lib.to_float_pixels(jax.tree.map(lambda a: a[0], batch["real"]))

  @jax.jit
  def phases_with(st):   # the G phase's terms against st's D, and both phases' prepared inputs
    ctx = step_lib._frozen_context(method, st, ("g", "d"))  # pylint: disable=protected-access
    g_inputs, g_keys = method._g_prepare(ctx, images, key)   # pylint: disable=protected-access
    _, terms = method._g_loss(ctx, {**g_inputs, **g_keys})   # pylint: disable=protected-access
    d_inputs, _ = method._d_prepare(ctx, images, key)   # pylint: disable=protected-access
    return terms, d_inputs, g_inputs, ctx.apply("g", g_inputs["real_a"], rng=g_keys["drop"])

  with_new_d, d_inputs, g_inputs, g_fake = phases_with(updated_d)
  with_old_d = phases_with(state)[0]
  # float32 rounding of the same computation in another program: relative 1e-5 is > 100 ulps of each sum.
  for name in ("g_loss", "g_gan", "g_l1"):
    np.testing.assert_allclose(float(metrics[f"train/{name}"]), float(with_new_d[name]), rtol=1e-5)
  # Against the D before its update the adversarial term differs by 100 times that tolerance or more.
  assert abs(float(with_new_d["g_gan"]) - float(with_old_d["g_gan"])) > 1e-3 * abs(float(with_old_d["g_gan"]))
  # Both phases saw the same jittered pair and the same G(A) (the D phase's fake_B).
  np.testing.assert_array_equal(np.asarray(d_inputs["real_a"]), np.asarray(g_inputs["real_a"]))
  np.testing.assert_array_equal(np.asarray(d_inputs["real_b"]), np.asarray(g_inputs["real_b"]))
  np.testing.assert_allclose(np.asarray(d_inputs["fake_b"]), np.asarray(g_fake), atol=1e-6)


def test_both_phases_draw_the_same_dropout_mask():
  """With dropout (unet_64) the D phase's fake_B and the G phase's G(A) still agree: one key."""
  method, data = _method(dropout=True)
  state = method.init(jax.random.PRNGKey(0))
  images = step_lib.to_float_pixels(jax.tree.map(lambda a: a[0], _batch(data, n=2)["real"]))
  ctx = step_lib._frozen_context(method, state, ("g", "d"))  # pylint: disable=protected-access
  key = jax.random.PRNGKey(4)
  d_inputs, _ = jax.jit(lambda im, k: method._d_prepare(ctx, im, k))(images, key)   # pylint: disable=protected-access

  @jax.jit
  def g_fake(im, k):   # the G phase's G(A): its prepared pair and dropout key
    inputs, keys = method._g_prepare(ctx, im, k)   # pylint: disable=protected-access
    return ctx.apply("g", inputs["real_a"], rng=keys["drop"])

  np.testing.assert_allclose(np.asarray(d_inputs["fake_b"]), np.asarray(g_fake(images, key)), atol=1e-6)
  assert float(jnp.abs(g_fake(images, jax.random.PRNGKey(5)) - d_inputs["fake_b"]).max()) > 1e-3   # dropout on


def test_inference_modes():
  """'paper': dropout on (the key matters), each image normalized on its own statistics (an image
  translates the same whatever else is in its batch); 'eval': running statistics, no dropout."""
  method, data = _method(dropout=True)
  state = method.init(jax.random.PRNGKey(0))
  # Running statistics away from their init, so that 'eval' and 'paper' differ in BN too.
  g = state.nets["g"]
  state = state.replace(nets={**state.nets, "g": g.replace(batch_stats=jax.tree.map(lambda v: v + 0.1, g.batch_stats))})
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (4, *method.image_shape)).astype(np.float32))
  other = jnp.concatenate([x[:2], -x[2:]])
  paper = jax.jit(lambda st, x, k: method.translate(st, x, rng=k))
  k = jax.random.PRNGKey(5)
  out = paper(state, x, k)
  assert out.shape == x.shape and float(jnp.abs(out).max()) <= 1.0
  np.testing.assert_allclose(np.asarray(paper(state, other, k)[:2]), np.asarray(out[:2]), atol=1e-6)
  assert float(jnp.abs(paper(state, x, jax.random.PRNGKey(6)) - out).max()) > 1e-3   # dropout
  config = method.config.copy_and_resolve_references()
  config.model.eval_mode = "eval"
  ev = methods.build(config, data)
  evaluate = jax.jit(lambda st, x, k: ev.translate(st, x, rng=k))
  e1, e2 = evaluate(state, x, k), evaluate(state, x, jax.random.PRNGKey(6))
  np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))
  # In 'eval' mode the other images of the batch do not matter either (running statistics).
  np.testing.assert_allclose(np.asarray(evaluate(state, other, k)[:2]), np.asarray(e1[:2]), atol=1e-6)
  assert float(jnp.abs(e1 - out).max()) > 1e-3
  assert method.translation_spec() == methods.TranslationSpec((64, 64, 3), (), None)
  with pytest.raises(ValueError, match="one mapping"):
    method.translate(state, x, target="B")


def test_triplet_sheet_layout():
  a, o, t = (jnp.full((2, 4, 5, 3), v) for v in (0.25, 0.5, 0.75))
  sheet = np.asarray(pix2pix.triplet_sheet(a, o, t, pad=2))
  assert sheet.shape == (2 * 4 + 2, 3 * 5 + 2 * 2, 3)
  assert sheet[0, 0, 0] == 0.25 and sheet[0, 7, 0] == 0.5 and sheet[0, 14, 0] == 0.75 and sheet[6, 14, 0] == 0.75
  assert sheet[4, 0, 0] == -1.0 and sheet[0, 5, 0] == -1.0


def test_trains_on_an_ab_folder_and_writes_the_sheet(tmp_path):
  """Two steps through train.py on generated facades-layout folders; the sheet shows val pairs."""
  root = write_ab_folder(tmp_path / "ab", n=3, size=32)
  config, _ = pix2pix.Pix2Pix.test_config()
  config.data.name = "folder"
  config.data.path = str(root / "train")
  config.data.batch_size = 1         # the paper's batch (3 images per split here)
  config.train.num_steps = 1
  config.train.num_sample_images = 3
  for net in ("g", "d"):
    config.nets[net].optim.decay_start = 0
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=parallel.make_mesh(jax.devices()[:1]),
                                     progress=False)
  assert summary["step"] == 1
  sheet = np.asarray(Image.open(tmp_path / "run" / "samples" / "step_00000001.png"))
  # 3 rows of (32 + 2) - 2 plus the grid's 2-pixel frame; 3 columns likewise.
  assert sheet.shape == (3 * 34 - 2 + 4, 3 * 34 - 2 + 4, 3)
  val_in, val_target = pix2pix.load_pairs(str(root / "val"), "AtoB", 32, 3)
  to8 = lambda x: np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(sheet[2:34, 2:34], to8(val_in[0]))
  np.testing.assert_array_equal(sheet[2 + 34:34 + 34, 2 + 68:34 + 68], to8(val_target[1]))
  lines = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert {"train/d_loss", "train/g_loss", "train/g_l1", "train/g_gan"} <= set(lines[-1])


def _load_config(arg):
  spec = importlib.util.spec_from_file_location("pix2pix_config", os.path.join(ROOT, "configs", "pix2pix.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_configs_follow_the_reference_schedule():
  """facades: 200 epochs of 400 images at batch 1 = 80,000 steps, the linear decay from step 40,000 to 0."""
  c = _load_config(None)
  assert (c.model.netG, c.model.load_size, c.model.crop_size, c.model.direction) == ("unet_256", 286, 256, "BtoA")
  assert c.train.num_steps == 80_000 and c.data.batch_size == 1
  lr = nets_lib.learning_rate(c.nets.g.optim, c.train.num_steps, c.nets.g.optim.decay_start)
  assert float(lr(40_000)) == pytest.approx(2e-4) and float(lr(60_000)) == pytest.approx(1e-4)
  assert float(lr(80_000)) == pytest.approx(0.0, abs=1e-12)
  cpu = _load_config("cpu")
  assert (cpu.model.netG, cpu.model.load_size, cpu.model.crop_size) == ("unet_128", 143, 128)
  assert cpu.nets.d.optim.decay_start * 2 == cpu.train.num_steps
  with pytest.raises(ValueError, match="unknown variant"):
    _load_config("nope")
