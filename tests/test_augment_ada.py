"""DiffAugment (Zhao et al. 2020, arXiv:2006.10738) and ADA (Karras et al. 2020, arXiv:2006.06676) in
ganzoo.augment: identity at p = 0, the exact pixel ops against numpy, the color formulas, gradients against
finite differences, the adaptive-p rule on a fixed sign sequence. The families that apply them (the
8-device == 1-device step, a resumed run keeping p, StyleGAN2's R1 through the augmentation) are in
tests/test_augment_ada_families.py: a file of its own, so that pytest-xdist's `--dist loadfile` can
run those compile-heavy steps beside these op-level tests instead of after them on the same worker."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import augment
from ganzoo import methods
from tests.test_families import float64_mode

KEY = jax.random.PRNGKey(3)


def _images(n=32, h=8, w=8, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)), jnp.float32)


# -- identity at p = 0 -------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_every_augmentation_is_the_identity_at_p0(channels):
  x = _images(c=channels)
  for name, strengths in augment.ADA_PIPELINES.items():
    out = augment.ada_augment(x, KEY, 0.0, strengths)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x), err_msg=name)
  for op in augment._GEOM_OPS + augment._COLOR_OPS:   # pylint: disable=protected-access
    np.testing.assert_array_equal(np.asarray(augment.ada_augment(x, KEY, 0.0, {op: 1.0})), np.asarray(x), err_msg=op)
  np.testing.assert_array_equal(np.asarray(augment.diffaugment(x, KEY, ())), np.asarray(x))
  at_p1 = augment.ada_augment(x, KEY, 1.0, augment.ADA_PIPELINES["bgc"])
  assert float(jnp.abs(at_p1 - x).max()) > 0.1, "p = 1 changes the images"


def test_config_is_off_by_default_and_checked():
  config, _ = methods.get("gan").test_config()
  assert augment.augmentation(config) is None
  config.augment.diffaugment.policy = "color, translation,cutout"
  assert augment.augmentation(config).policy == ("color", "translation", "cutout")
  config.augment.diffaugment.policy = "color,zoom"
  with pytest.raises(ValueError, match="subset of"):
    augment.augmentation(config)
  config.augment.diffaugment.policy = "color"
  config.augment.ada.target = 0.6
  with pytest.raises(ValueError, match="both DiffAugment and ADA"):
    augment.augmentation(config)
  config.augment.diffaugment.policy = ""
  aug = augment.augmentation(config)
  assert aug.adaptive and aug.p0 == 0.0 and aug.interval == 4 and aug.kimg == 500.0
  config.augment.ada.target = None
  config.augment.ada.p = 0.3
  aug = augment.augmentation(config)
  assert not aug.adaptive and aug.p0 == 0.3 and aug.init_extras() == {}
  config.augment.ada.pipeline = "bgcfnc"
  with pytest.raises(ValueError, match="choose from"):
    augment.augmentation(config)


NOT_AUGMENTING = [f for f in methods.names() if f not in ("gan", "stylegan2")]


@pytest.mark.parametrize("family", NOT_AUGMENTING)
def test_other_families_refuse_diffaugment_and_ada(family):
  config, data = methods.get(family).test_config()
  config.augment.diffaugment.policy = "translation"
  with pytest.raises(ValueError, match=r"not supported by the '%s' family.*policy=''" % family):
    methods.build(config, data)
  config.augment.diffaugment.policy = ""
  config.augment.ada.p = 0.2
  with pytest.raises(ValueError, match="not supported"):
    methods.build(config, data)


# -- the pixel ops against numpy ---------------------------------------------------------------

def _asym(n=64, h=8, w=8, c=1):
  """Images whose 8 flips / rotations and small shifts all differ (distinct pixel values)."""
  return np.random.default_rng(1).permutation(n * h * w * c).reshape(n, h, w, c).astype(np.float32) / (n * h * w * c)


def _matches(out, candidates):
  return [k for k, cand in enumerate(candidates) if np.array_equal(out, cand)]


def test_xflip_rotate90_and_integer_translation_are_the_numpy_transforms():
  x = _asym()
  flip = np.asarray(augment.ada_augment(jnp.asarray(x), KEY, 1.0, {"xflip": 1.0}))
  rot = np.asarray(augment.ada_augment(jnp.asarray(x), KEY, 1.0, {"rotate90": 1.0}))
  x16 = _asym(h=16, w=16)
  shift = np.asarray(augment.ada_augment(jnp.asarray(x16), KEY, 1.0, {"xint": 1.0}))
  seen_flip, seen_rot, seen_shift = set(), set(), set()
  s = 2   # round(0.125 * 16): xint moves by -2..2 pixels along each axis
  for i in range(x.shape[0]):
    m = _matches(flip[i], [x[i], x[i, :, ::-1]])          # flipped along the width (x) axis
    assert len(m) == 1, i
    seen_flip.add(m[0])
    m = _matches(rot[i], [np.rot90(x[i], k, axes=(0, 1)) for k in range(4)])
    assert len(m) == 1, i
    seen_rot.add(m[0])
    padded = np.pad(x16[i], ((s, s), (s, s), (0, 0)), mode="reflect")   # the reference pads by reflection
    shifts = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    cands = [padded[s - dy:s - dy + 16, s - dx:s - dx + 16] for dy, dx in shifts]   # out[r, c] = x[r - dy, c - dx]
    m = _matches(shift[i], cands)
    assert len(m) == 1, i
    seen_shift.add(shifts[m[0]])
  assert seen_flip == {0, 1} and seen_rot == {0, 1, 2, 3}
  assert len(seen_shift) >= 12, "the shifts spread over the 5 x 5 choices"


def test_diffaugment_translation_and_cutout_equal_numpy():
  n, h, w = 6, 8, 8
  x = _asym(n=n, h=h, w=w, c=2)
  out = np.asarray(augment.rand_translation(jnp.asarray(x), KEY))
  t_h, t_w = map(np.asarray, augment.translation_shifts(KEY, n, h, w))
  assert set(np.unique(np.concatenate([t_h, t_w]))) <= {-1, 0, 1}     # int(8 / 8 + 0.5) = 1
  want = np.zeros_like(x)
  for b in range(n):
    for i in range(h):
      for j in range(w):
        if 0 <= i + t_h[b] < h and 0 <= j + t_w[b] < w:
          want[b, i, j] = x[b, i + t_h[b], j + t_w[b]]
  np.testing.assert_array_equal(out, want)
  out = np.asarray(augment.rand_cutout(jnp.asarray(x), KEY))
  o_h, o_w = map(np.asarray, augment.cutout_offsets(KEY, n, h, w))
  assert o_h.min() >= 0 and o_h.max() <= 8                           # cutout 4 (even): offsets 0..8
  want = x.copy()
  for b in range(n):
    want[b, max(o_h[b] - 2, 0):max(o_h[b] + 2, 0), max(o_w[b] - 2, 0):max(o_w[b] + 2, 0)] = 0
  np.testing.assert_array_equal(out, want)


def test_diffaugment_color_formulas():
  x = _images(n=8, c=3)
  u = lambda k: np.asarray(jax.random.uniform(k, (8, 1, 1, 1)))
  xs = np.asarray(x, np.float64)
  k1, k2, k3 = (jax.random.fold_in(KEY, j) for j in range(3))
  got = np.asarray(augment.diffaugment(x, KEY, ("color",)), np.float64)
  want = xs + (u(k1) - 0.5)
  want = (want - want.mean(3, keepdims=True)) * (u(k2) * 2) + want.mean(3, keepdims=True)
  want = (want - want.mean((1, 2, 3), keepdims=True)) * (u(k3) + 0.5) + want.mean((1, 2, 3), keepdims=True)
  # float32 against float64: values below 6, each of ~8 float32 operations rounds by <= 6 * 2^-24 and later
  # factors (saturation < 2, contrast < 1.5) amplify it at most 3 times: 8 * 3 * 6 * 2^-24 = 8.6e-6.
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  gray = _images(n=8, c=1)
  np.testing.assert_array_equal(np.asarray(augment.rand_saturation(gray, KEY)), np.asarray(gray))  # mean_c x = x


# -- ADA's color matrix ------------------------------------------------------------------------

def test_ada_color_ops_follow_their_formulas():
  x = _images(n=64, c=3)
  # brightness: x + b, the same b on every channel and pixel of an image (b ~ N(0, 0.2^2)).
  d = np.asarray(augment.ada_augment(x, KEY, 1.0, {"brightness": 1.0}) - x, np.float64)
  b = d.reshape(64, -1)[:, 0]
  assert np.abs(d - b[:, None, None, None]).max() <= 4 * 2 ** -24 * 2   # two roundings of values below 2
  assert 0.1 < b.std() < 0.3
  # contrast: x * c per image (c = 2^N(0, 0.5^2)).
  r = (np.asarray(augment.ada_augment(x, KEY, 1.0, {"contrast": 1.0}), np.float64) / np.asarray(x, np.float64))
  r = r.reshape(64, -1)
  assert np.abs(r / r[:, :1] - 1).max() < 4 * 2 ** -24   # c * x rounds by <= 2^-24 relative, twice in the ratio
  assert 0.3 < np.log2(r[:, 0]).std() < 0.7
  # luma flip: on 1 channel x -> +-x; as a matrix, a reflection (twice = the identity).
  gray = _images(n=64, c=1)
  flipped = np.asarray(augment.ada_augment(gray, KEY, 1.0, {"lumaflip": 1.0}))
  kept = [np.array_equal(f, g) for f, g in zip(flipped, np.asarray(gray))]
  # -x through the mean of the reflection's rows: 1 - 2 |v|^2 with float32 v, off by a few 2^-24.
  negated = [np.allclose(f, -g, rtol=0, atol=2 ** -21) for f, g in zip(flipped, np.asarray(gray))]
  assert all(a != b for a, b in zip(kept, negated)) and 10 < sum(negated) < 54   # each image w.p. 1/2
  v = np.asarray(augment._luma_axis(), np.float64)   # pylint: disable=protected-access
  house = np.eye(4) - 2 * np.outer(v, v)
  np.testing.assert_allclose(house @ house, np.eye(4), rtol=0, atol=1e-7)   # float32 v: |v|^2 = 1 +- 1e-7
  # hue and saturation move colors around and off the luma axis only: the channel mean stays.
  for op in ("hue", "saturation"):
    out = np.asarray(augment.ada_augment(x, KEY, 1.0, {op: 1.0}), np.float64)
    np.testing.assert_allclose(out.mean(-1), np.asarray(x, np.float64).mean(-1), rtol=0, atol=1e-5, err_msg=op)
    assert np.abs(out - np.asarray(x)).max() > 0.1, op
  # saturation by 1 and hue by 0 are the identity matrix (to float32 rounding of v v^T).
  vv = np.outer(v, v)
  np.testing.assert_allclose(vv + (np.eye(4) - vv) * 1.0, np.eye(4), rtol=0, atol=1e-7)
  # pylint: disable-next=protected-access
  rot0 = np.asarray(augment._rotate3d(jnp.asarray(v, jnp.float32), jnp.zeros((1,))))[0]
  np.testing.assert_array_equal(rot0, np.eye(4))


def test_geometric_resampling_of_integer_maps_is_the_exact_path():
  """The wavelet round trip (`_geometric_resample`) of the identity and of integer translations equals the
  exact pixel path: sym6 is orthogonal, so up- then downsampling is the identity in exact arithmetic; the
  bound is the float32 sampling positions' error (|x| <= 1, position error ~ 1e-5 px, slopes < 4 / px)."""
  x = _images(n=4, h=16, w=16, c=1)
  g = augment.translate2d(jnp.asarray([0.0, 2.0, -3.0, 1.0]), jnp.asarray([0.0, 0.0, 1.0, -2.0]))
  # pylint: disable=protected-access
  np.testing.assert_allclose(np.asarray(augment._geometric_resample(x, g)), np.asarray(augment._integer_resample(x, g)),
                             rtol=0, atol=5e-5)


# -- gradients ---------------------------------------------------------------------------------

def test_augmentations_are_differentiable_and_match_finite_differences():
  """Every op is linear in the image for fixed draws, so the central difference (f(x + e) - f(x - e)) / 2e
  is the derivative up to float64 rounding (~1e-16 * |f| / e): a 1e-9 tolerance holds with room."""
  with float64_mode(True):
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 3)), jnp.float64)
    w = jnp.asarray(np.random.default_rng(3).normal(size=x.shape), jnp.float64)
    fns = {"bgc": lambda im: augment.ada_augment(im, KEY, 1.0, augment.ADA_PIPELINES["bgc"]),
           "geom": lambda im: augment.ada_augment(im, KEY, 1.0, augment.ADA_PIPELINES["geom"]),
           "diffaugment": lambda im: augment.diffaugment(im, KEY, ("color", "translation", "cutout"))}
    for name, fn in fns.items():
      f = lambda im, fn=fn: jnp.sum(w * fn(im))
      g = np.asarray(jax.grad(f)(x))
      assert np.isfinite(g).all() and np.abs(g).max() > 0.1, name
      eps = 1e-3
      for idx in [(0, 3, 4, 0), (1, 0, 7, 2), (0, 6, 1, 1)]:
        e = jnp.zeros_like(x).at[idx].set(eps)
        fd = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
        assert abs(fd - g[idx]) < 1e-9, (name, idx, fd, g[idx])


# -- the adaptive p ----------------------------------------------------------------------------

def test_p_update_rule_on_a_fixed_sign_sequence():
  """p += sign(r_t - 0.6) * batch * interval / (kimg * 1000) every `interval` steps, floored at 0, r_t the
  mean sign over the interval (training_loop.py). Batch 64, interval 4, kimg 500: steps of 0.000512."""
  aug = augment.Augment(ada_ops=(("xflip", 1.0),), p0=0.001, target=0.6, interval=4, kimg=500.0)
  step_size = 64 * 4 / 500_000
  # Per step, the mean sign of the step's D evaluations (each of 64 reals).
  signs = [0.8, 0.9, 1.0, 0.7,   0.2, 0.4, 0.6, 0.0,   0.6, 0.6, 0.6, 0.6,   -1.0, -1.0, -1.0, -1.0,
           -1.0, 0.0, 0.0, 0.0]
  extras = aug.init_extras()
  got = []
  for step, s in enumerate(signs):
    extras = aug.accumulate(extras, jnp.asarray(s, jnp.float32), 64)
    extras = aug.adjust(extras, jnp.asarray(step), 64)
    extras = aug.adjust(extras, jnp.asarray(step), 64)   # a second call in the same step changes nothing
    got.append(float(extras["ada_p"]))
  p1 = 0.001 + step_size            # r = 0.85 > 0.6
  p2 = p1 - step_size               # r = 0.3
  p3 = p2                           # r = 0.6: sign 0
  p4 = max(p3 - step_size, 0.0)     # r = -1: 0.001 - 0.000512 = 0.000488
  p5 = max(p4 - step_size, 0.0)     # floored at 0
  want = [0.001] * 3 + [p1] * 4 + [p2] * 4 + [p3] * 4 + [p4] * 4 + [p5]
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)   # float32 sums of ~1e-3: error < 1e-9
  assert got[-1] == 0.0 and float(extras["ada_count"]) == 0.0
