"""CoGAN (arXiv:1606.07536): the edge transform, the pixel agreement, the weight sharing, the
published parameter counts, the two-stream D phase and the IDX half splits of the digit <-> edge task."""

import gzip
import math
import struct

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import cogan as cogan_config
from ganzoo import methods
from ganzoo import step as step_lib
from ganzoo.data import sources
from ganzoo.methods import cogan as cogan_method
from ganzoo.metrics import agreement
from ganzoo.models import cogan as cogan_models
from ganzoo.state import param_count
from tests.test_steps import float64_mode

TABLE = step_lib.PIXEL_TABLE

# A hand-made 5x5 image and its edge image dilate_3x3(img) - img, worked out pixel by pixel: every
# pixel's 3x3 neighbourhood maximum (inside the image) minus the pixel. The 200 at (2, 2) lights its
# 8 neighbours with 200; the 50 at (2, 3) has the 200 beside it (edge 150) and lights column 4; the
# 100 in the corner lights (3, 0) and (4, 1) where no 200 reaches, and its own edge is 0.
IMAGE = np.array([[0, 0, 0, 0, 0],
                  [0, 0, 0, 0, 0],
                  [0, 0, 200, 50, 0],
                  [0, 0, 0, 0, 0],
                  [100, 0, 0, 0, 0]], np.uint8)
EDGE = np.array([[0, 0, 0, 0, 0],
                 [0, 200, 200, 200, 50],
                 [0, 200, 0, 150, 50],
                 [100, 200, 200, 200, 50],
                 [0, 100, 0, 0, 0]], np.uint8)


def test_edge_transform_of_a_hand_made_image():
  img = IMAGE[None, :, :, None]
  np.testing.assert_array_equal(agreement.edge_uint8(img)[0, :, :, 0], EDGE)
  # The in-step transform of the delivered pixels equals the edge image delivered as pixels, bit for bit.
  got = np.asarray(agreement.edge_pixels(jnp.asarray(TABLE[img])))
  np.testing.assert_array_equal(got, TABLE[EDGE[None, :, :, None]])
  # The float transform (for generated images): max - x - 1 of three table values; each is within
  # half an ulp of p / 127.5 - 1 (|.| <= 1, ulp 2^-23), so the result is within 4 ulps = 4.8e-7.
  flt = np.asarray(agreement.edge_transform(jnp.asarray(TABLE[img])))
  np.testing.assert_allclose(flt, EDGE[None, :, :, None] / 127.5 - 1.0, rtol=0, atol=4.8e-7)


def test_pixel_agreement_known_values():
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 28, 28, 1), minval=-1.0, maxval=1.0)
  assert float(agreement.pixel_agreement(x, agreement.edge_transform(x))) == 1.0
  assert float(agreement.pixel_agreement(x, x, transform=None)) == 1.0
  # Two 2x2 pairs by hand. Pair 1: x1 black, so its edge is black (-1): all off; x2 has one pixel
  # on (1) and one at exactly 0, which is off (strictly above 0 is on): 3 of 4 agree.
  # Pair 2: x1 has one white pixel, so the 3x3 max is 1 everywhere and the edge is -x1:
  # off at the white pixel, on elsewhere; x2 is on only there: 0 of 4 agree. Mean 3/8.
  x1 = jnp.array([[[-1.0, -1.0], [-1.0, -1.0]], [[1.0, -1.0], [-1.0, -1.0]]])[..., None]
  x2 = jnp.array([[[1.0, -1.0], [0.0, -0.5]], [[1.0, -1.0], [-1.0, -1.0]]])[..., None]
  assert float(agreement.pixel_agreement(x1, x2)) == 3 / 8
  with pytest.raises(ValueError, match="equal shape"):
    agreement.pixel_agreement(x1, x2[:1])


def test_agreement_of_generator_weights_batches_by_size():
  """7 pairs in batches of 3, 3, 1: the mean over all pixels (1 - mean(f) = 0.6), not the mean of
  the three batch means (0.644)."""
  f = [0.0, 0.1, 0.5, 1.0, 0.3, 0.7, 0.2]
  batches = iter([jnp.array(f[:3]), jnp.array(f[3:6]), jnp.array(f[6:])])

  def pair_fn(frac):   # G1 black (its edge is all off); G2 has its first 10 * frac of 10 pixels on
    on = jnp.arange(10)[None, :] < jnp.round(10 * frac)[:, None]
    return -jnp.ones((frac.shape[0], 1, 10, 1)), jnp.where(on, 1.0, -1.0)[:, None, :, None]

  got = agreement.agreement_of_generator(pair_fn, lambda key, n: next(batches), jax.random.PRNGKey(0),
                                         num_pairs=7, batch_size=3)
  assert got == pytest.approx(0.6, abs=1e-6)   # float32 batch means of tenths


@pytest.mark.parametrize("k,stride,pad,size", [(3, 2, 1, 4), (3, 2, 1, 7), (3, 2, 1, 13), (6, 1, 1, 25), (4, 2, 1, 5)])
def test_conv_transpose_phases_equals_lax_conv_transpose(k, stride, pad, size):
  """Same sums in another order; in float64 the two differ by rounding (<= 1e-13 here)."""
  with float64_mode():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3), jnp.float64)
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 3, 5), jnp.float64)
    p = k - 1 - pad
    ref = jax.lax.conv_transpose(x, w, (stride, stride), ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    got = cogan_models.conv_transpose_phases(x, w, stride, pad)
    assert got.shape == ref.shape == (2, (size - 1) * stride - 2 * pad + k, (size - 1) * stride - 2 * pad + k, 5)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=0, atol=1e-12)


def test_parameter_counts_of_the_published_networks():
  """The paper's Table 1 / the reference's layer list, counted by hand."""
  z = 100
  g_shared = (z * 4 * 4 * 1024 + 2 * 1024       # FC to 4x4x1024 (no bias: BN follows), BN shift, PReLU
              + 3 * 3 * 1024 * 512 + 2 * 512     # FCONV 3x3 -> 512, BN shift, PReLU
              + 3 * 3 * 512 * 256 + 2 * 256
              + 3 * 3 * 256 * 128 + 2 * 128)
  g_head = 6 * 6 * 128 * 1 + 1                   # FCONV 6x6 -> 1 channel, bias; one per domain
  d_head = 5 * 5 * 1 * 20 + 20                   # CONV 5x5 -> 20, bias; one per domain
  d_shared = (5 * 5 * 20 * 50 + 50               # CONV 5x5 -> 50
              + 4 * 4 * 50 * 500 + 500 + 500     # FC 800 -> 500, bias, PReLU
              + 500 + 1)                         # FC 500 -> 1
  assert (g_shared, g_head, d_shared, d_head) == (7_835_392, 4_609, 426_551, 520)
  g, d = cogan_models.build(ml_collections.ConfigDict({"size": "paper"}), (28, 28, 1))
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, z)), train=False))["params"]
  x = jnp.zeros((2, 28, 28, 1))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x, x, train=False))["params"]
  assert set(gv) == {"shared", "head_a", "head_b"} and set(dv) == {"shared", "head_a", "head_b"}
  assert param_count(gv["shared"]) == g_shared and param_count(gv["head_a"]) == param_count(gv["head_b"]) == g_head
  assert param_count(dv["shared"]) == d_shared and param_count(dv["head_a"]) == param_count(dv["head_b"]) == d_head
  # One copy of the shared layers: the whole networks are shared + two heads.
  assert param_count(gv) == g_shared + 2 * g_head == 7_844_610
  assert param_count(dv) == d_shared + 2 * d_head == 427_591


def _tree_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def test_shared_layers_get_the_sum_of_both_domains_gradients():
  """The coupled G (D) is two single-domain networks with their shared layers tied: computed with
  two separate networks (`domains=('a',)` and `('b',)`) holding copies of the shared params, each
  domain's loss gives a gradient; the coupled network's shared gradient is their sum and each head's
  is its own network's. float64: the two computations differ only in the order of sums (the coupled
  G runs both heads as one convolution), <= 1e-13 at these magnitudes (seen 1e-16), so atol 1e-10."""
  cfg = ml_collections.ConfigDict({"size": "tiny"})
  g, d = cogan_models.build(cfg, (28, 28, 1))
  with float64_mode():
    z = jax.random.uniform(jax.random.PRNGKey(0), (6, 100), jnp.float64, -1.0, 1.0)
    to64 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float64), tree)
    gv = to64(g.init(jax.random.PRNGKey(1), z.astype(jnp.float32), train=False))
    t_a, t_b = (jax.random.normal(jax.random.PRNGKey(i), (6, 28, 28, 1), jnp.float64) for i in (2, 3))

    def g_loss(module, params, targets):
      variables = {"params": params, "batch_stats": gv["batch_stats"]}
      outs, _ = module.apply(variables, z, train=True, mutable=["batch_stats"])
      return sum(jnp.mean((o - t) ** 2) for o, t in zip(outs, targets))

    p = gv["params"]
    coupled = jax.grad(lambda q: g_loss(g, q, (t_a, t_b)))(p)
    single = {dom: jax.grad(lambda q, dom=dom: g_loss(g.clone(domains=(dom,)), q, (t_a if dom == "a" else t_b,)))(
        {"shared": p["shared"], f"head_{dom}": p[f"head_{dom}"]}) for dom in ("a", "b")}
    _tree_close(coupled["shared"], jax.tree.map(jnp.add, single["a"]["shared"], single["b"]["shared"]), 1e-10)
    _tree_close(coupled["head_a"], single["a"]["head_a"], 1e-10)
    _tree_close(coupled["head_b"], single["b"]["head_b"], 1e-10)
    # Both domains pull on the shared layers: neither part is zero (a lost term would show here).
    assert all(float(jnp.abs(single[dom]["shared"]["fc0"]["kernel"]).max()) > 1e-6 for dom in ("a", "b"))

    x_a, x_b = (jax.random.normal(jax.random.PRNGKey(i), (6, 28, 28, 1), jnp.float64) for i in (4, 5))
    dp = to64(d.init(jax.random.PRNGKey(6), x_a.astype(jnp.float32), x_b.astype(jnp.float32), train=False)["params"])

    def d_loss(module, params, xs):   # train=False: no dropout, so a row's output does not depend on its batch
      return sum(jnp.mean(jax.nn.softplus(-o)) for o in module.apply({"params": params}, *xs, train=False))

    coupled = jax.grad(lambda q: d_loss(d, q, (x_a, x_b)))(dp)
    single = {dom: jax.grad(lambda q, dom=dom: d_loss(d.clone(domains=(dom,)), q, (x_a if dom == "a" else x_b,)))(
        {"shared": dp["shared"], f"head_{dom}": dp[f"head_{dom}"]}) for dom in ("a", "b")}
    _tree_close(coupled["shared"], jax.tree.map(jnp.add, single["a"]["shared"], single["b"]["shared"]), 1e-10)
    _tree_close(coupled["head_a"], single["a"]["head_a"], 1e-10)
    _tree_close(coupled["head_b"], single["b"]["head_b"], 1e-10)


def test_family_state_holds_one_copy_and_reads_two_streams():
  config, data = cogan_method.CoGAN.test_config()
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(0))
  assert set(state.nets) == {"g", "d"}
  assert set(state.nets["g"].params) == {"shared", "head_a", "head_b"}
  plan = method.plan(0)
  d_phase = plan.phases[0]
  assert d_phase.name == "d" and d_phase.stream == ("a", "b")
  assert step_lib.stream_counts(plan) == {"a": 1, "b": 1}
  assert method.streams(plan) == {"a": methods.StreamSpec(16, 1, "data"), "b": methods.StreamSpec(16, 1, "data")}
  config.model.b_source = "data_b"
  with pytest.raises(ValueError, match="config.data_b"):
    methods.build(config, data)


def test_d_phase_sees_domain_b_as_edge_images():
  """The D phase's inputs: stream a's images as they are, stream b's as their exact edge images."""
  config, data = cogan_method.CoGAN.test_config()
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(0))
  ctx = step_lib._frozen_context(method, state, tuple(method.nets))  # pylint: disable=protected-access
  rng = np.random.default_rng(0)
  img_a, img_b = (rng.integers(0, 256, (4, 28, 28, 1), dtype=np.uint8) for _ in range(2))
  inputs, _ = method._d_prepare(ctx, {"a": {"image": jnp.asarray(TABLE[img_a])},   # pylint: disable=protected-access
                                      "b": {"image": jnp.asarray(TABLE[img_b])}}, jax.random.PRNGKey(1))
  np.testing.assert_array_equal(np.asarray(inputs["real_a"]), TABLE[img_a])
  np.testing.assert_array_equal(np.asarray(inputs["real_b"]), TABLE[agreement.edge_uint8(img_b)])


def test_pair_layout_alternates_domains_by_row():
  a = jnp.arange(8.0).reshape(8, 1, 1, 1)
  b = 100 + a
  got = np.asarray(cogan_method.pair_layout(a, b, 16))[:, 0, 0, 0]   # 4 columns: z0-3, then z4-7
  np.testing.assert_array_equal(got, [0, 1, 2, 3, 100, 101, 102, 103, 4, 5, 6, 7, 104, 105, 106, 107])
  got = np.asarray(cogan_method.pair_layout(a[:2], b[:2], 4))[:, 0, 0, 0]
  np.testing.assert_array_equal(got, [0, 1, 100, 101])


def test_idx_split_slices_make_disjoint_halves(tmp_path):
  assert sources.idx_split_slice("train", 60000) == slice(0, 60000)
  assert sources.idx_split_slice("train[:50%]", 60000) == slice(0, 30000)
  assert sources.idx_split_slice("train[50%:]", 60000) == slice(30000, 60000)
  assert sources.idx_split_slice("train[100:250]", 60000) == slice(100, 250)
  assert sources.idx_split_slice("test[-10%:]", 10000) == slice(9000, 10000)
  assert sources.idx_split_slice("train[:33%]", 10) == slice(0, 3)   # closest: 3.3 -> 3
  with pytest.raises(ValueError, match="tfds does"):
    sources.idx_split_slice("train[5]", 10)
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1) * np.ones((1, 28, 28), np.uint8)
  header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", *images.shape)
  with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
    f.write(header + images.tobytes())
  first = sources.open_source("mnist", "train[:50%]", source="idx", path=str(tmp_path))
  second = sources.open_source("mnist", "train[50%:]", source="idx", path=str(tmp_path))
  got = [first.get(np.arange(first.num_examples))["image"][:, 0, 0, 0], second.get(np.arange(5))["image"][:, 0, 0, 0]]
  np.testing.assert_array_equal(np.concatenate(got), np.arange(10))


def test_configs_point_the_domains_at_disjoint_halves():
  for arg in ("", "cpu", "mnist", "tiny"):
    c = cogan_config.get_config(arg)
    assert c.method == "cogan" and c.model.b_source == "data_b" and c.model.b_transform == "edge"
    assert c.data.name == c.data_b.name and (c.data.split, c.data_b.split) == ("train[:50%]", "train[50%:]")
    assert c.data_b.batch_size == c.data.batch_size
  c = cogan_config.get_config("")
  assert (c.data.batch_size, c.model.z_dim, c.train.num_steps, c.model.weight_decay) == (128, 100, 25_000, 5e-4)
  assert (c.nets.g.optim.lr, c.nets.g.optim.b1, c.nets.d.optim.lr, c.nets.d.optim.b1) == (2e-4, 0.5, 2e-4, 0.5)
  method = methods.build(c, methods.DataSpec((28, 28, 1), 10))
  counts = method.param_counts(jax.eval_shape(method.init, jax.random.PRNGKey(0)))
  assert counts == {"params/g": 7_844_610, "params/d": 427_591}
  assert math.isclose(method.weight_decay, 5e-4)
