"""The cyclegan family (ganzoo/methods/cyclegan.py): pool semantics, loss terms, update order, jitter,
data layouts, translation and sheets. The 8-device == 1-device and resumed == unbroken tests are
tests/test_families.py's, through `CycleGAN.test_config` (pool of 3 at batch 8: it fills and swaps)."""

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from ganzoo import methods
from ganzoo import step as step_lib
from ganzoo.data import sources
from ganzoo.methods import cyclegan
from tests.test_steps import as_float64, assert_float64_close, float64_mode


def make_layout(root, counts=(9, 10, 3, 4), size=20, grey_b=1, seed=0):
  """A CycleGAN folder layout root/{trainA,trainB,testA,testB} of random PNGs; trainB's file
  `grey_b` is greyscale (as seven of horse2zebra's trainB are)."""
  rng = np.random.default_rng(seed)
  for split, k in zip(("trainA", "trainB", "testA", "testB"), counts):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    for i in range(k):
      path = os.path.join(root, split, f"{i:03d}.png")
      if split == "trainB" and i == grey_b:
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(path)
      else:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
  return str(root)


# -- the pool --------------------------------------------------------------------------------

def test_pool_fills_to_its_size_then_returns_stored_images_half_the_time():
  """util/image_pool.py: the first 50 images are stored and returned; after that each query returns
  a stored image with probability 1/2 (and stores the new one in its slot), else the new image.
  Images are unique ids, so every returned image is traced to the slot it came from."""
  size, n = 50, 2000
  pool, count = cyclegan.pool_init(size, (1,))
  ids = jnp.arange(1, size + 1, dtype=jnp.float32)[:, None]
  for part, key in zip(jnp.split(ids, 5), jax.random.split(jax.random.PRNGKey(0), 5)):   # 5 queries of 10
    out, pool, count = cyclegan.pool_query(pool, count, part, key)
    np.testing.assert_array_equal(out, part)              # not full: the new images come back
  assert int(count) == size
  np.testing.assert_array_equal(pool, ids)                # stored in order
  new = jnp.arange(size + 1, size + n + 1, dtype=jnp.float32)[:, None]
  before = np.asarray(pool)[:, 0].tolist()
  out, pool, count = cyclegan.pool_query(pool, count, new, jax.random.PRNGKey(1))
  out, new_ids = np.asarray(out)[:, 0], np.asarray(new)[:, 0]
  swapped = out != new_ids
  # Binomial(2000, 1/2): mean 1000, sd 22.4; |k - 1000| < 112 (5 sd) fails with probability < 1e-6.
  assert abs(int(swapped.sum()) - n // 2) < 112, swapped.sum()
  # Replaying the returns on the host: a swap returns the image in some slot and stores the new
  # image there; the device pool must be exactly the replayed one.
  replay = list(before)
  hits = np.zeros(size, int)
  for o, x, s in zip(out, new_ids, swapped):
    if s:
      slot = replay.index(o)                              # raises if o was not in the pool
      replay[slot] = x
      hits[slot] += 1
  np.testing.assert_array_equal(np.asarray(pool)[:, 0], replay)
  assert int(count) == size
  # Uniform slots: ~1000 swaps over 50 slots, 20 each (sd 4.4); every slot hit, none > 45 (5.7 sd).
  assert hits.min() > 0 and hits.max() < 45, hits


def test_pool_of_size_zero_returns_the_new_images():
  pool, count = cyclegan.pool_init(0, (2,))
  x = jnp.ones((3, 2))
  out, pool2, count2 = cyclegan.pool_query(pool, count, x, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, x)
  assert pool2.shape == (0, 2) and int(count2) == 0


def test_a_batch_queries_the_pool_image_by_image():
  """A batch of 3 on a pool of size 2: images 1, 2 fill it and come back; image 3 meets a full pool."""
  pool, count = cyclegan.pool_init(2, (1,))
  x = jnp.asarray([[1.0], [2.0], [3.0]])
  seen = set()
  for seed in range(40):
    out, p, c = cyclegan.pool_query(pool, count, x, jax.random.PRNGKey(seed))
    out, p = np.asarray(out)[:, 0].tolist(), sorted(np.asarray(p)[:, 0].tolist())
    assert out[:2] == [1.0, 2.0] and int(c) == 2
    seen.add((out[2], tuple(p)))
  # image 3 returned (pool {1, 2}), or a stored 1 or 2 returned and 3 stored in its place
  assert seen == {(3.0, (1.0, 2.0)), (1.0, (2.0, 3.0)), (2.0, (1.0, 3.0))}


# -- losses ----------------------------------------------------------------------------------

def test_gan_losses_on_fixed_values():
  pred = jnp.asarray([0.5, 1.5])
  np.testing.assert_allclose(cyclegan.gan_loss(pred, True), 0.25, rtol=1e-6)    # mean(0.25, 0.25)
  np.testing.assert_allclose(cyclegan.gan_loss(pred, False), 1.25, rtol=1e-6)   # mean(0.25, 2.25)
  np.testing.assert_allclose(cyclegan.discriminator_loss(pred, pred), 0.75, rtol=1e-6)
  sp = lambda v: np.log1p(np.exp(v))
  np.testing.assert_allclose(cyclegan.gan_loss(pred, True, "vanilla"), np.mean(sp(-np.asarray([0.5, 1.5]))), rtol=1e-6)
  np.testing.assert_allclose(cyclegan.gan_loss(pred, False, "vanilla"), np.mean(sp(np.asarray([0.5, 1.5]))), rtol=1e-6)


def test_cycle_and_identity_terms_on_fixed_tensors():
  """backward_G's terms with lambda_A = 2, lambda_B = 4 (different, so a swapped weight shows):
  cycle_A = lambda_A |rec_A - A|, cycle_B = lambda_B |rec_B - B|, idt_A = lambda_B lambda_idt |G_A(B) - B|,
  idt_B = lambda_A lambda_idt |G_B(A) - A| (means over all pixels); GAN terms MSE to 1.
  float32 rounding of a few operations: relative error < 1e-6."""
  shape = (2, 2, 2, 3)
  a, b = jnp.zeros(shape), jnp.full(shape, 0.5)
  rec_a, rec_b = jnp.full(shape, 0.2), jnp.full(shape, 0.2)
  idt_a, idt_b = jnp.full(shape, 0.1), jnp.full(shape, -0.6)
  d_a, d_b = jnp.full((2, 3, 3, 1), 0.0), jnp.full((2, 3, 3, 1), 3.0)
  t = cyclegan.generator_terms(a, b, rec_a, rec_b, idt_a, idt_b, d_a, d_b, lambda_a=2.0, lambda_b=4.0, lambda_idt=0.5)
  expected = {"g_a": 1.0, "g_b": 4.0, "cycle_a": 2 * 0.2, "cycle_b": 4 * 0.3, "idt_a": 4 * 0.5 * 0.4,
              "idt_b": 2 * 0.5 * 0.6}
  assert set(t) == set(expected)
  for k, v in expected.items():
    np.testing.assert_allclose(t[k], v, rtol=1e-6, err_msg=k)
  # The published weights: cycle 10, identity 0.5 * 10.
  t = cyclegan.generator_terms(a, b, rec_a, rec_b, idt_a, idt_b, d_a, d_b)
  np.testing.assert_allclose([t["cycle_a"], t["cycle_b"], t["idt_a"], t["idt_b"]], [2.0, 3.0, 2.0, 3.0], rtol=1e-6)
  assert "idt_a" not in cyclegan.generator_terms(a, b, rec_a, rec_b, None, None, d_a, d_b, lambda_idt=0.0)


def _exact_config(batch=8, pool=8):
  """The test config without jitter (load size = crop size, no flip): the step's inputs are the data."""
  config, _ = cyclegan.CycleGAN.test_config()
  config.model.no_flip = True
  config.model.pool_size = pool
  config.data.batch_size = batch
  return config, methods.DataSpec((16, 16, 3), 0)


def test_one_step_takes_g_and_d_gradients_at_the_old_networks():
  """optimize_parameters: the G step on L_G with D_t, then the D step on L_D with D_t and the pooled
  fakes of G_t. The step's new params equal Adam steps on gradients computed here by hand at
  (G_t, D_t), in float64 (bound: tests/test_steps.FLOAT64_TOL); D stepped on the updated G's fakes
  differs by far more. The pool (not yet full) holds G_t's fakes."""
  config, data = _exact_config()
  method = methods.build(config, data)
  rng = np.random.default_rng(0)
  batch = {s: {"image": rng.integers(0, 256, (1, 8, 16, 16, 3), dtype=np.uint8)} for s in "ab"}
  with float64_mode(True):
    state = as_float64(method.init(jax.random.PRNGKey(0)))
    new, _ = step_lib.make_step(method, method.plan(0), None, donate=False)(state, batch)
    real = {s: jnp.asarray(step_lib.PIXEL_TABLE, jnp.float64)[batch[s]["image"][0].astype(np.int32)] for s in "ab"}
    apply = lambda name, params, x: method.nets[name].module.apply({"params": params}, x, train=True)
    p = {n: state.nets[n].params for n in cyclegan.NET_NAMES}

    def loss_g(g):
      fake_b, fake_a = apply("g_a", g["g_a"], real["a"]), apply("g_b", g["g_b"], real["b"])
      t = cyclegan.generator_terms(real["a"], real["b"], apply("g_b", g["g_b"], fake_b), apply("g_a", g["g_a"], fake_a),
                                   apply("g_a", g["g_a"], real["b"]), apply("g_b", g["g_b"], real["a"]),
                                   apply("d_a", p["d_a"], fake_b), apply("d_b", p["d_b"], fake_a))
      return sum(t.values())

    def loss_d(d, g):
      fake_b, fake_a = apply("g_a", g["g_a"], real["a"]), apply("g_b", g["g_b"], real["b"])
      return (cyclegan.discriminator_loss(apply("d_a", d["d_a"], real["b"]), apply("d_a", d["d_a"], fake_b))
              + cyclegan.discriminator_loss(apply("d_b", d["d_b"], real["a"]), apply("d_b", d["d_b"], fake_a)))

    def adam(name, grads):
      updates, _ = method.nets[name].tx.update(grads, state.nets[name].opt_state, p[name])
      return optax.apply_updates(p[name], updates)

    g_grads = jax.jit(jax.grad(loss_g))({n: p[n] for n in ("g_a", "g_b")})
    d_grads = jax.jit(jax.grad(loss_d))({n: p[n] for n in ("d_a", "d_b")}, p)
    expected = {n: adam(n, {**g_grads, **d_grads}[n]) for n in cyclegan.NET_NAMES}
    assert_float64_close({n: new.nets[n].params for n in cyclegan.NET_NAMES}, expected)
    np.testing.assert_allclose(new.extras["pool_fake_b"], apply("g_a", p["g_a"], real["a"]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new.extras["pool_fake_a"], apply("g_b", p["g_b"], real["b"]), rtol=1e-12, atol=1e-12)
    assert int(new.extras["pool_fake_a_count"]) == 8
    g_new = {n: new.nets[n].params for n in ("g_a", "g_b")}
    late = jax.jit(jax.grad(loss_d))({n: p[n] for n in ("d_a", "d_b")}, {**p, **g_new})
    diff = max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree.leaves(adam("d_a", late["d_a"])),
                                                          jax.tree.leaves(expected["d_a"])))
    assert diff > 1e-7, diff   # the order is visible: G_{t+1}'s fakes move D by more than 1e-9 (FLOAT64_TOL)


# -- jitter and data -------------------------------------------------------------------------

def test_jitter_crops_windows_and_flips_half():
  """Each output is a crop_size window of its image at offsets in [0, L - crop], mirrored or not;
  every offset occurs and about half are mirrored (Binomial(300, 1/2): |k - 150| < 44, 5 sd)."""
  b, size, crop = 300, 18, 16
  x = jnp.broadcast_to(jnp.arange(size * size, dtype=jnp.float32).reshape(1, size, size, 1), (b, size, size, 1))
  x = x + 1000.0 * jnp.arange(b, dtype=jnp.float32)[:, None, None, None]
  out = np.asarray(cyclegan.jitter(x, jax.random.PRNGKey(0), crop))
  offsets, flips = set(), 0
  for i in range(b):
    top_left = out[i, 0, :, 0].min() - 1000.0 * i
    oy, ox = divmod(int(top_left), size)
    window = np.asarray(x[i, oy:oy + crop, ox:ox + crop])
    mirrored = np.array_equal(out[i], window[:, ::-1])
    assert mirrored or np.array_equal(out[i], window)
    offsets.add((oy, ox))
    flips += mirrored
  assert offsets == {(i, j) for i in range(3) for j in range(3)}
  assert abs(flips - b // 2) < 44, flips
  assert np.array_equal(cyclegan.jitter(x[:, :16, :16], jax.random.PRNGKey(0), 16, flip=False), x[:, :16, :16])
  assert cyclegan.load_size(256) == 286 and cyclegan.load_size(64) == 72 and cyclegan.load_size(128) == 143


def test_folder_layout_one_root_for_both_streams(tmp_path):
  """configs/cyclegan.py: data.path is the root; data reads <root>/trainA, data_b <root>/trainB (their
  fields are references to data's); trainB's greyscale file loads as RGB (its grey value thrice)."""
  from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
  from configs import cyclegan as cfg_lib  # pylint: disable=g-import-not-at-top
  root = make_layout(tmp_path / "h2z")
  c = cfg_lib.get_config("cpu")
  c.data.path = root          # what --config.data.path=ROOT does
  c.data.image_size = 20
  assert c.data_b.path == root and c.data_b.image_size == 20 and c.data.split == "trainA" and c.data_b.split == "trainB"
  a = data_lib.build_dataset(c.data, 0, 0, 1)
  b = data_lib.build_dataset(c.data_b, 0, 0, 1)
  assert (a.num_examples, b.num_examples) == (9, 10) and a.image_shape == b.image_shape == (20, 20, 3)
  grey = np.asarray(Image.open(os.path.join(root, "trainB", "001.png")))
  np.testing.assert_array_equal(b.source.get([1])["image"][0], np.repeat(grey[..., None], 3, -1))
  # the test splits, for the sheets and the results script, at crop size
  m = methods.build(c, methods.DataSpec((72, 72, 3), 0))
  test = m.test_images()
  assert test["a"].shape == (3, 64, 64, 3) and test["b"].shape == (4, 64, 64, 3)


def test_tfds_variant_reads_the_cycle_gan_splits():
  """`cycle_gan/<name>` (tfds): splits trainA/trainB/testA/testB, features image (any size, RGB) and
  label (A = 0, B = 1). TfdsSource reads that feature layout; the tfds variant names the splits."""
  from configs import cyclegan as cfg_lib  # pylint: disable=g-import-not-at-top
  c = cfg_lib.get_config("tfds")
  assert (c.data.name, c.data_b.name, c.data.split, c.data_b.split) == ("cycle_gan/horse2zebra",) * 2 + ("trainA", "trainB")
  assert c.model.test_split_a == "testA" and c.model.test_split_b == "testB"
  rng = np.random.default_rng(0)
  examples = [{"image": rng.integers(0, 256, (30, 30, 3), dtype=np.uint8), "label": 1} for _ in range(3)]
  info = types.SimpleNamespace(features={"image": types.SimpleNamespace(shape=(None, None, 3)),
                                         "label": types.SimpleNamespace(num_classes=2)})
  fake = type("DS", (), {"dataset_info": info, "__len__": lambda self: 3, "__getitem__": lambda self, i: examples[i]})()
  src = sources.TfdsSource(fake, "cycle_gan/horse2zebra", size=(20, 20))
  assert src.image_shape == (20, 20, 3) and src.num_examples == 3
  assert src.get([2])["image"].shape == (1, 20, 20, 3)


# -- translation and sheets ------------------------------------------------------------------

def test_translate_and_sheet_layout():
  config, data = cyclegan.CycleGAN.test_config()
  method = methods.build(config, data)
  spec = method.translation_spec()
  assert spec == methods.TranslationSpec((16, 16, 3), ("A", "B"), "B")
  state = jax.jit(method.init)(jax.random.PRNGKey(0))
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 16, 3), minval=-1.0, maxval=1.0)
  both = jax.jit(lambda st, v: (method.translate(st, v), method.translate(st, v, "A"),
                                method.generate(st, "g_a", v), method.generate(st, "g_b", v)))
  to_b, to_a, g_a, g_b = both(state, x)
  np.testing.assert_array_equal(to_b, g_a)
  np.testing.assert_array_equal(to_a, g_b)
  assert float(jnp.abs(g_a - g_b).max()) > 0   # two different networks
  with pytest.raises(ValueError, match="domain 'A' or 'B'"):
    method.translate(state, x, "C")
  # 6 columns (n = 36): rows A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B)) of images 0..5
  rows = [jnp.full((6, 1, 1, 1), 10.0 * r) + jnp.arange(6.0)[:, None, None, None] for r in range(6)]
  sheet = np.asarray(cyclegan.sheet_layout(*rows, 36))[:, 0, 0, 0]
  np.testing.assert_array_equal(sheet, [10 * (i // 6) + i % 6 for i in range(36)])
