"""StarGAN (arXiv:1711.09020; yunjey/stargan): the published parameter counts from the layer list,
PyTorch's default init, instance normalization, each loss term on fixed tensors, the iteration
plan (G after every n_critic-th D update), the reference's learning-rate staircase, target-label
sampling, the CelebA layout and split, domain names and targets, the sample sheet and the domain
classifier."""

import math
import random

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image

from ganzoo import methods
from ganzoo.data import celeba
from ganzoo.data import pipeline
from ganzoo.methods import stargan
from ganzoo.metrics import domain_classifier
from ganzoo.models import stargan as models
from ganzoo.state import param_count


def build(**model):
  config, data = stargan.StarGAN.test_config()
  config.model.update(model)
  return config, data


# ---------------------------------------------------------------------------------------------
# Networks.

def reference_counts(c_dim=5, conv_dim=64, repeat_g=6, repeat_d=6, image_size=128, channels=3):
  """Parameters of yunjey/stargan model.py's G and D, layer by layer (what its print_network prints)."""
  g = (channels + c_dim) * conv_dim * 7 * 7 + 2 * conv_dim          # conv 7x7 (no bias) + IN(affine)
  dim = conv_dim
  for _ in range(2):                                                  # down: conv 4x4, IN
    g += dim * dim * 2 * 16 + 2 * dim * 2
    dim *= 2
  g += repeat_g * 2 * (dim * dim * 9 + 2 * dim)                       # residual blocks: 2 x (conv 3x3, IN)
  for _ in range(2):                                                  # up: deconv 4x4, IN
    g += dim * (dim // 2) * 16 + 2 * (dim // 2)
    dim //= 2
  g += dim * channels * 7 * 7                                         # conv 7x7 -> image, tanh
  d, dim, cin = 0, conv_dim, channels
  for _ in range(repeat_d):                                           # conv 4x4 s2 with bias, LeakyReLU
    d += cin * dim * 16 + dim
    cin, dim = dim, dim * 2
  k = image_size // 2 ** repeat_d
  d += cin * 1 * 9 + cin * c_dim * k * k                              # src 3x3, cls k x k (no biases)
  return g, d


def test_parameter_counts_are_the_references():
  """CelebA 128 px, c_dim 5: G 8,430,528 and D 44,762,048, as the reference prints them."""
  g_ref, d_ref = reference_counts()
  assert (g_ref, d_ref) == (8_430_528, 44_762_048)
  x, c = jnp.zeros((1, 128, 128, 3)), jnp.zeros((1, 5))
  g = jax.eval_shape(models.Generator(64, 5, 6).init, jax.random.PRNGKey(0), x, c)
  d = jax.eval_shape(models.Discriminator(128, 64, 5, 6).init, jax.random.PRNGKey(0), x)
  assert (param_count(g), param_count(d)) == (g_ref, d_ref)
  # The Fashion-MNIST stand-in's networks by the same layer list.
  g_fm, d_fm = reference_counts(10, 16, 3, 3, 28, 1)
  gs = jax.eval_shape(models.Generator(16, 10, 3).init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)),
                      jnp.zeros((1, 10)))
  ds = jax.eval_shape(models.Discriminator(28, 16, 10, 3).init, jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  assert (param_count(gs), param_count(ds)) == (g_fm, d_fm) == (313_600, 47_664)


def test_init_is_pytorch_default():
  """Weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with PyTorch's fan_in (out * k * k for a
  transposed conv). With n >= 2,000 draws, max |w| > 0.99 b fails with probability 0.995^n < 5e-5,
  and the transposed conv's torch bound is sqrt(2) times the in-channel one, so a wrong fan_in fails."""
  g = jax.jit(models.Generator(8, 5, 1).init)(jax.random.PRNGKey(1), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 5)))
  d = jax.jit(models.Discriminator(16, 8, 5, 2).init)(jax.random.PRNGKey(2), jnp.zeros((1, 16, 16, 3)))
  g, d = g["params"], d["params"]

  def check(w, fan_in):
    b = 1 / math.sqrt(fan_in)
    w = np.abs(np.asarray(w))
    assert w.max() <= b * (1 + 1e-6)
    if w.size >= 2_000:
      assert w.max() > 0.99 * b

  check(g["conv_in"]["kernel"], 8 * 49)              # (3 + 5) * 7 * 7, n = 3,136
  check(g["up0"]["kernel"], 16 * 16)                 # 32 -> 16 channels: torch fan_in 16 * 4 * 4, n = 8,192
  check(g["res0"]["conv1"]["kernel"], 32 * 9)        # n = 9,216
  check(d["conv1"]["kernel"], 8 * 16)                # n = 2,048
  check(d["conv1"]["bias"], 8 * 16)
  np.testing.assert_array_equal(g["in_in"]["scale"], np.ones(8))
  np.testing.assert_array_equal(g["in_in"]["bias"], np.zeros(8))
  assert "bias" not in g["conv_in"] and "bias" not in d["src"] and "bias" not in d["cls"]


def test_instance_norm_uses_each_images_own_statistics():
  """Per image and channel: mean 0, variance v / (v + 1e-5); the other images do not matter."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 6, 4)) * 3 + 1
  norm = models.InstanceNorm()
  params = norm.init(jax.random.PRNGKey(0), x)
  y = np.asarray(norm.apply(params, x), np.float64)
  var = np.asarray(x, np.float64).var(axis=(1, 2))
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2)), var / (var + 1e-5), rtol=1e-4)
  y2 = np.asarray(norm.apply(params, x.at[1:].set(0.0)))
  np.testing.assert_array_equal(y2[0], np.asarray(norm.apply(params, x))[0])


def test_generator_is_conditioned_on_the_tiled_label():
  """G(x, c) depends on c, keeps the image shape, and is the same in train and inference mode."""
  gen = models.Generator(4, 3, 1)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1), minval=-1, maxval=1)
  c0, c1 = jnp.eye(3)[jnp.array([0, 0])], jnp.eye(3)[jnp.array([1, 1])]
  v = jax.jit(gen.init)(jax.random.PRNGKey(1), x, c0)
  apply = jax.jit(gen.apply, static_argnames="train")
  y0, y1 = apply(v, x, c0), apply(v, x, c1)
  assert y0.shape == x.shape and float(jnp.abs(y0 - y1).max()) > 1e-3
  np.testing.assert_array_equal(apply(v, x, c0, train=True), y0)
  with pytest.raises(ValueError, match="multiples of 4"):
    gen.init(jax.random.PRNGKey(1), jnp.zeros((1, 10, 10, 1)), jnp.zeros((1, 3)))


# ---------------------------------------------------------------------------------------------
# Losses on fixed tensors.

def test_classification_loss_values():
  """BCE summed over attributes and batch / B (CelebA), mean softmax cross-entropy (single-label)."""
  logits = jnp.array([[0.0, 2.0], [1.0, -1.0]])
  labels = jnp.array([[1, 0], [1, 1]])
  bce = lambda z, t: math.log1p(math.exp(-z)) if t else math.log1p(math.exp(z))
  expected = (bce(0, 1) + bce(2, 0) + bce(1, 1) + bce(-1, 1)) / 2
  np.testing.assert_allclose(stargan.classification_loss(logits, labels, True), expected, rtol=1e-6)
  ce = stargan.classification_loss(jnp.array([[0.0, math.log(3.0)], [0.0, 0.0]]), jnp.array([1, 0]), False)
  np.testing.assert_allclose(ce, (-math.log(3 / 4) + math.log(2)) / 2, rtol=1e-6)


class _StubContext:
  """Networks with known outputs: G(x, c) = x / 2 + 0.1 sum(c); D(x) = (2 x[..., :1], mean(x) * (1..K))."""

  def __init__(self, k):
    self.k = k

  def apply(self, name, *inputs, train=True, rng=None):
    if name == "g":
      x, c = inputs
      return 0.5 * x + 0.1 * jnp.sum(c, axis=-1)[:, None, None, None]
    x = inputs[0]
    return 2.0 * x[..., :1], jnp.mean(x, axis=(1, 2, 3))[:, None] * jnp.arange(1, self.k + 1, dtype=x.dtype)[None, :]


def _np_ce(logits, labels):
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return -np.mean(logp[np.arange(len(labels)), labels])


def test_d_and_g_losses_on_fixed_tensors():
  """solver.py's terms with lambda_cls 1, lambda_rec 10, lambda_gp 10, computed here by hand.
  D_src(x) = 2 x[..., 0] summed over the map has input gradient 2 on channel 0, so every
  interpolate's norm is 2 sqrt(H W) and the penalty (2 sqrt(HW) - 1)^2 whatever alpha."""
  config, data = build()
  method = methods.build(config, data)
  k, (h, w, c) = method.c_dim, data.image_shape
  x = np.linspace(-1, 1, 2 * h * w * c, dtype=np.float32).reshape(2, h, w, c)
  fake = np.cos(x * 3).astype(np.float32)
  label_org, label_trg = np.array([0, 3]), np.array([2, 1])
  eye = np.eye(k, dtype=np.float32)
  inp = {"x": jnp.asarray(x), "fake": jnp.asarray(fake), "label_org": jnp.asarray(label_org),
         "label_trg": jnp.asarray(label_trg), "c_org": jnp.asarray(eye[label_org]),
         "c_trg": jnp.asarray(eye[label_trg]), "gp": jax.random.PRNGKey(3)}
  ctx = _StubContext(k)
  cls = lambda img: img.mean(axis=(1, 2, 3))[:, None] * np.arange(1, k + 1)
  loss, m = method._d_loss(ctx, inp)   # pylint: disable=protected-access
  gp = (2 * math.sqrt(h * w) - 1) ** 2
  expected = {"d_loss_real": -np.mean(2 * x[..., 0]), "d_loss_fake": np.mean(2 * fake[..., 0]),
              "d_loss_cls": _np_ce(cls(x), label_org), "d_loss_gp": gp}
  for name, value in expected.items():
    np.testing.assert_allclose(m[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(loss, expected["d_loss_real"] + expected["d_loss_fake"] + expected["d_loss_cls"]
                             + 10 * gp, rtol=1e-5)

  loss, m = method._g_loss(ctx, inp)   # pylint: disable=protected-access
  g_fake = 0.5 * x + 0.1                 # one-hot targets: sum(c) = 1
  rec = 0.5 * g_fake + 0.1
  expected = {"g_loss_fake": -np.mean(2 * g_fake[..., 0]), "g_loss_rec": np.mean(np.abs(x - rec)),
              "g_loss_cls": _np_ce(cls(g_fake), label_trg)}
  for name, value in expected.items():
    np.testing.assert_allclose(m[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(loss, expected["g_loss_fake"] + 10 * expected["g_loss_rec"] + expected["g_loss_cls"],
                             rtol=1e-5)


def test_targets_are_a_permutation_shared_by_both_phases():
  """rand_idx: c_trg is the batch's labels permuted; the D and G phases of a step draw the same
  permutation and flips (one phase key); the flip mirrors whole images."""
  config, data = build()
  method = methods.build(config, data)
  x = jax.random.uniform(jax.random.PRNGKey(0), (16, 16, 16, 3), minval=-1, maxval=1)
  labels = jnp.arange(16) % 4
  key = jax.random.PRNGKey(7)
  # pylint: disable=protected-access
  a, _ = jax.jit(lambda d, k: method._inputs(None, d, k))({"image": x, "label": labels}, key)
  b, _ = jax.jit(lambda d, k: method._g_prepare(None, d, k))({"image": x, "label": labels}, key)
  for name in ("x", "label_trg", "c_trg"):
    np.testing.assert_array_equal(a[name], b[name])
  assert sorted(np.asarray(a["label_trg"]).tolist()) == sorted(np.asarray(labels).tolist())
  assert not np.array_equal(a["label_trg"], labels)
  np.testing.assert_array_equal(a["c_trg"], np.eye(4)[np.asarray(a["label_trg"])])
  flipped = [bool(np.array_equal(a["x"][i], x[i, :, ::-1])) for i in range(16)]
  kept = [bool(np.array_equal(a["x"][i], x[i])) for i in range(16)]
  assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 16


# ---------------------------------------------------------------------------------------------
# Iterations and the learning rate.

def test_g_updates_after_every_n_critic_d_updates():
  """solver.py: D every iteration i, G when (i + 1) % n_critic == 0 (i = completed iterations)."""
  config, data = build(n_critic=5)
  method = methods.build(config, data)
  plans = [tuple(p.name for p in method.plan(i).phases) for i in range(10)]
  assert [i for i, p in enumerate(plans) if "g" in p] == [4, 9]
  assert all(p[0] == "d" for p in plans)
  assert method.plan(4) == method.plan(9) and method.streams(method.plan(4))["real"].count == 1


def reference_lrs(lr0, num_iters, num_iters_decay, lr_update_step, paper=False):
  """The learning rate each iteration of solver.py's loop trains with (its decay lines, verbatim logic)."""
  lr, out = lr0, []
  for i in range(num_iters):
    out.append(lr)
    if (i + 1) % lr_update_step == 0 and (i + 1) > (num_iters - num_iters_decay):
      lr -= lr0 * (lr_update_step if paper else 1) / float(num_iters_decay)
  return np.array(out)


@pytest.mark.parametrize("schedule", ["reference", "paper"])
def test_learning_rates_follow_the_reference_staircase(schedule):
  """D's rate at update i and G's at update u (iteration 5u + 4) equal the reference loop's, read
  from Adam's steps: with a constant gradient 1, Adam's update is -lr / (1 + eps) (m_hat = v_hat = 1)."""
  paper = schedule == "paper"
  ref = reference_lrs(1e-4, 60, 30, 5, paper)
  np.testing.assert_allclose([stargan.staircase_lr(1e-4, 60, 30, 5, 1e-4 * (5 if paper else 1) / 30)(i)
                              for i in range(60)], ref, rtol=1e-6)
  # The last iteration: 'paper' at lr / (decay / update_step) = lr / 6, 'reference' at lr (1 - 5 / 30).
  assert ref[-1] == pytest.approx(1e-4 * 5 / 30 if paper else 1e-4 * (1 - 5 / 30))
  config, data = build(n_critic=5, lr_schedule=schedule, num_iters_decay=30, lr_update_step=5)
  config.train.num_steps = 60
  method = methods.build(config, data)
  for name, iterations in (("d", range(60)), ("g", [5 * u + 4 for u in range(12)])):
    tx = method.nets[name].tx
    p = jnp.zeros(())
    opt = tx.init(p)
    steps = []
    for _ in iterations:
      upd, opt = tx.update(jnp.ones(()), opt, p)
      steps.append(-float(upd))
    np.testing.assert_allclose(steps, ref[list(iterations)] / (1 + 1e-8), rtol=1e-5, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Data: CelebA's layout and split; domains.

ATTRS = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def write_celeba(root, n, with_images):
  """img_align_celeba/ + list_attr_celeba.txt in the download's format; images for `with_images` only."""
  (root / "img_align_celeba").mkdir(parents=True)
  rng = np.random.default_rng(0)
  values = rng.choice(["-1", "1"], (n, len(ATTRS)))
  lines = [str(n), " ".join(ATTRS)] + [f"{i + 1:06d}.jpg " + " ".join(f"{v:>2}" for v in values[i]) for i in range(n)]
  (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
  for name in with_images:
    img = rng.integers(0, 256, (22, 18, 3), dtype=np.uint8)
    Image.fromarray(img).save(root / "img_align_celeba" / name, quality=100)
  return lines


def test_celeba_split_labels_and_transform(tmp_path):
  """The reference's split (random.seed(1234); random.shuffle; (i + 1) < 2000 -> test), labels 1
  where the file says 1, CenterCrop then a bilinear Resize, and multi-hot labels through a Dataset."""
  n = 2_010
  lines = write_celeba(tmp_path, n, [])
  # data_loader.py preprocess, verbatim logic.
  ref = [line.rstrip() for line in lines][2:]
  random.seed(1234)
  random.shuffle(ref)
  test = [l for i, l in enumerate(ref) if (i + 1) < 2000]
  train = [l for i, l in enumerate(ref) if (i + 1) >= 2000]
  assert len(test) == 1_999 and len(train) == 11
  needed = [l.split()[0] for l in test[:2] + train]
  write_celeba(tmp_path / "x", n, needed)   # the same attribute file, with the images these tests read
  root = tmp_path / "x"
  src = celeba.CelebASource(str(root), "train", ("Blond_Hair", "Male"), size=8, center_crop=18)
  assert [f.name for f in src.files] == [l.split()[0] for l in train]
  assert src.num_classes == 2 and src.image_shape == (8, 8, 3)
  expect = np.array([[int(l.split()[1 + ATTRS.index(a)] == "1") for a in ("Blond_Hair", "Male")] for l in train])
  np.testing.assert_array_equal(src.labels, expect)
  got = src.get([3])
  raw = np.asarray(Image.open(src.files[3]).convert("RGB"))
  want = np.asarray(Image.fromarray(raw[2:20, 0:18]).resize((8, 8), Image.BILINEAR))   # round((22 - 18) / 2) = 2
  np.testing.assert_array_equal(got["image"][0], want)
  np.testing.assert_array_equal(got["label"][0], expect[3])
  test_src = celeba.CelebASource(str(root), "test", None)
  assert test_src.num_examples == 1_999 and test_src.attributes == celeba.DEFAULT_ATTRIBUTES
  cfg = ml_collections.ConfigDict(dict(name="celeba", path=str(root), split="train", attributes="Male,Young",
                                       image_size=8, center_crop=18, batch_size=4))
  ds = pipeline.build_dataset(cfg, seed=0, process_index=0, process_count=1)
  batch = ds.read("real", 0, 1, 4)
  assert batch["label"].shape == (1, 4, 2) and batch["label"].dtype == np.int32
  with pytest.raises(ValueError, match="not in"):
    celeba.CelebASource(str(root), "train", ("Bald_Head",))


def test_domain_names_targets_and_create_labels(tmp_path):
  """Targets: a folder's class names (one-hot), Fashion-MNIST's classes, or attributes switched ON
  by a comma list; the sheet's CelebA rows are solver.py create_labels."""
  for name in ("cat", "dog", "fox"):
    (tmp_path / name).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / "a.png")
  config, _ = build()
  config.data.name, config.data.path = "folder", str(tmp_path)
  method = methods.build(config, methods.DataSpec((8, 8, 3), 3))
  spec = method.translation_spec()
  assert spec.targets == ("cat", "dog", "fox") and spec.default_target == "cat"
  np.testing.assert_array_equal(method.target_labels("fox"), [0, 0, 1])
  with pytest.raises(ValueError, match="unknown target domain"):
    method.target_labels("cow")
  config, _ = build()
  config.data.name = "fashion_mnist"
  assert methods.build(config, methods.DataSpec((28, 28, 1), 10)).translation_spec().targets[9] == "Ankle boot"
  config, _ = build()
  config.data.name = "celeba"
  multi = methods.build(config, methods.DataSpec((16, 16, 3), 5))
  assert multi.multi_hot and multi.translation_spec().targets == stargan.CELEBA_ATTRIBUTES
  np.testing.assert_array_equal(multi.target_labels("Blond_Hair, Male"), [0, 1, 0, 1, 0])
  c_org = np.array([[1, 0, 0, 1, 1]])
  rows = stargan.create_labels(c_org, stargan.CELEBA_ATTRIBUTES)
  np.testing.assert_array_equal(np.concatenate(rows), [[1, 0, 0, 1, 1], [0, 1, 0, 1, 1], [0, 0, 1, 1, 1],
                                                       [1, 0, 0, 0, 1], [1, 0, 0, 1, 0]])


def test_multi_hot_labels_and_sheet():
  """Multi-hot labels [B, K]: c is the labels as they are, the targets a permutation of the batch's
  rows, the classification term the BCE sum / B; the sheet: row 0 the fixed inputs, row k their
  translations under create_labels' k-th condition. (The compiled D + G step is the family tests'.)"""
  config, _ = build()
  config.data.attributes = "Black_Hair,Blond_Hair,Male"
  method = methods.build(config, methods.DataSpec((8, 8, 3), 3))
  assert method.multi_hot and method.c_dim == 3
  rng = np.random.default_rng(0)
  x = jnp.asarray(pipeline.to_float(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)))
  labels = jnp.asarray(rng.integers(0, 2, (16, 3)).astype(np.int32))
  prepare = jax.jit(lambda d, k: method._inputs(None, d, k))   # pylint: disable=protected-access
  inp, keys = prepare({"image": x, "label": labels}, jax.random.PRNGKey(1))
  np.testing.assert_array_equal(inp["c_org"], labels)
  np.testing.assert_array_equal(inp["c_trg"], inp["label_trg"])
  assert sorted(map(tuple, np.asarray(inp["label_trg"]).tolist())) == sorted(map(tuple, np.asarray(labels).tolist()))
  inp = {**inp, "fake": inp["x"] * 0.5, **keys}
  _, m = method._d_loss(_StubContext(3), inp)   # pylint: disable=protected-access
  logits = np.asarray(inp["x"]).mean(axis=(1, 2, 3))[:, None] * np.arange(1, 4)
  t = np.asarray(labels, np.float64)
  bce = np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))
  np.testing.assert_allclose(m["d_loss_cls"], bce.sum() / 16, rtol=1e-5)
  state = jax.jit(method.init)(jax.random.PRNGKey(0))
  xs, ls = x[:3], np.asarray(labels[:3])
  inputs = {"x": xs, "c": jnp.asarray(np.stack(method.sheet_targets(ls)))}
  cells = np.asarray(jax.jit(method.sample_fixed, static_argnums=2)(state, inputs, 9))   # 3 columns: inputs, 2 rows
  np.testing.assert_array_equal(cells[:3], xs)
  generate = jax.jit(method.generate)
  np.testing.assert_allclose(cells[3:6], generate(state, xs, inputs["c"][0]), atol=1e-6)
  np.testing.assert_allclose(cells[6:9], generate(state, xs, inputs["c"][1]), atol=1e-6)
  np.testing.assert_array_equal(inputs["c"][0], stargan.create_labels(ls, method.attributes)[0])
  np.testing.assert_allclose(method.translate(state, xs, "Black_Hair,Male"),
                             generate(state, xs, jnp.asarray([[1.0, 0.0, 1.0]] * 3)), atol=1e-6)


def test_domain_classifier_learns_separable_domains():
  """Two domains (dark and bright images): 100 Adam steps reach accuracy 1 on fresh images."""
  rng = np.random.default_rng(0)
  y = rng.integers(0, 2, 512)
  x = (rng.uniform(0, 100, (512, 8, 8, 1)) + 150 * y[:, None, None, None]).astype(np.uint8)
  clf = domain_classifier.train(x[:384], y[:384], 2, steps=100, batch_size=64)
  assert clf.accuracy(x[384:], y[384:]) == 1.0


def test_gradient_penalty_keeps_float64():
  """The reused WGAN-GP penalty (ganzoo.regularizers) computes in float64 for float64 inputs, so the
  8-device == 1-device float64 test can compare StarGAN's D at 1e-9: for a linear critic w . x the
  penalty is (||w|| - 1)^2 exactly (the float64 rounding, ~1e-15, is the bound)."""
  from ganzoo import regularizers  # pylint: disable=g-import-not-at-top
  from tests.test_steps import float64_mode  # pylint: disable=g-import-not-at-top
  with float64_mode():
    w = jnp.asarray(np.linspace(0.1, 0.7, 12).reshape(1, 2, 2, 3), jnp.float64)
    real = jnp.ones((4, 2, 2, 3), jnp.float64)
    gp = regularizers.gradient_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), real, -real, jax.random.PRNGKey(0))
    assert gp.dtype == jnp.float64
    np.testing.assert_allclose(float(gp), (float(np.linalg.norm(np.asarray(w))) - 1) ** 2, rtol=1e-13)
