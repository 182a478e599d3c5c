"""InfoGAN (arXiv:1606.03657): the MI terms at known Q outputs, the MI term in both phases'
gradients, the paper's parameter counts by hand, the latent priors and sheets, and the clustering
accuracy with the best one-to-one matching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import step as step_lib
from ganzoo.methods import infogan
from ganzoo.metrics import clustering
from tests.test_steps import FLOAT64_TOL, as_float64, float64_mode

# float32 rounding of a few O(1) operations: a relative error well under 1e-6.
F32_TOL = 1e-6


def test_categorical_term_is_the_cross_entropy_by_hand():
  # Row 0: logits (0, ln 3) -> softmax (1/4, 3/4), code 1: -ln(3/4). Row 1: logits (ln 2, ln 2) ->
  # (1/2, 1/2), code 0: ln 2. The term is their mean.
  logits = jnp.array([[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]])
  expected = (-math.log(0.75) + math.log(2.0)) / 2
  np.testing.assert_allclose(infogan.categorical_nll(logits, jnp.array([1, 0])), expected, rtol=F32_TOL)


def test_continuous_term_is_the_gaussian_nll_by_hand():
  # Two codes per row. Row 0: c = (0.5, -1), mu = (0, 0), sigma = 1: log(2 pi) + 0.125 + 0.5.
  # Row 1: c = (1, 1), mu = (0, 2), sigma = (2, 1/2): log(2 pi) + ln 2 + 1/8 + ln(1/2) + 2.
  c = jnp.array([[0.5, -1.0], [1.0, 1.0]])
  mu = jnp.array([[0.0, 0.0], [0.0, 2.0]])
  log_std = jnp.log(jnp.array([[1.0, 1.0], [2.0, 0.5]]))
  row0 = math.log(2 * math.pi) + 0.125 + 0.5
  row1 = math.log(2 * math.pi) + math.log(2.0) + 0.125 + math.log(0.5) + 2.0
  np.testing.assert_allclose(infogan.gaussian_nll(c, mu, log_std), (row0 + row1) / 2, rtol=F32_TOL)
  # The launcher's fixed unit std: half the squared error plus the constant.
  np.testing.assert_allclose(infogan.gaussian_nll(c, mu, jnp.zeros_like(c)),
                             math.log(2 * math.pi) + (0.125 + 0.5 + 0.5 + 0.5) / 2, rtol=F32_TOL)


def _config(**loss):
  config, data = infogan.InfoGAN.test_config()
  config.loss.update(loss)
  return config, data


def _phase_grads(method, state, name, seed=0):
  """Gradient of phase `name`'s loss w.r.t. the networks it trains, at `state`, on fixed inputs
  (a real batch of random pixels, latents from a fixed key), and the loss's metrics."""
  phase = next(p for p in method.phases if p.name == name)
  frozen = step_lib._frozen_context(method, state, tuple(method.nets))   # pylint: disable=protected-access
  frozen.batch_size = method.batch_size
  data = None
  if phase.stream:
    images = np.random.default_rng(seed).uniform(-1, 1, (method.batch_size, *method.data.image_shape))
    data = {"image": jnp.asarray(images, state.nets["d"].params["fc"]["kernel"].dtype)}
  inputs, keys = phase.prepare(frozen, data, jax.random.PRNGKey(seed))
  inputs = {**inputs, **keys}

  def loss(params):
    all_params = {n: state.nets[n].params for n in method.nets}
    all_params.update(params)
    ctx = step_lib.Context(method.nets, all_params, {n: state.nets[n].batch_stats for n in method.nets},
                           phase.trains, {}, state.step)
    return phase.loss(ctx, inputs)

  return jax.grad(loss, has_aux=True)({n: state.nets[n].params for n in phase.trains})


@pytest.mark.parametrize("phase", ["d", "g"])
def test_both_phases_gradients_carry_the_info_term(phase):
  """The phase's gradient is adversarial + lambda * info: in float64, grad(lambda = 2) - grad(1)
  == grad(1) - grad(0) (linear in lambda; equal up to float64 rounding, FLOAT64_TOL), that
  difference is not 0 for every trained network, and Q gets no gradient at lambda = 0."""
  with float64_mode():
    grads, totals = {}, {}
    for lam in (0.0, 1.0, 2.0):
      config, data = _config(info_weight=lam, info_cont_weight=lam)
      method = methods.build(config, data)
      state = as_float64(method.init(jax.random.PRNGKey(0)))
      grads[lam], metrics = _phase_grads(method, state, phase)
      totals[lam] = metrics
    flat = {lam: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]) for lam, g in grads.items()}
    d1, d2 = flat[1.0] - flat[0.0], flat[2.0] - flat[1.0]
    scale = np.abs(flat[2.0]).max()
    np.testing.assert_allclose(d2, d1, rtol=0, atol=FLOAT64_TOL * scale)
    for net in grads[1.0]:
      diff = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(grads[1.0][net]),
                                                             jax.tree.leaves(grads[0.0][net])))
      assert diff > 1e-6, f"the info term does not reach network {net!r} in phase {phase!r}"
    if phase == "d":
      assert set(grads[1.0]) == {"d", "q"}
      assert max(float(np.abs(x).max()) for x in jax.tree.leaves(grads[0.0]["q"])) == 0.0
    else:
      assert set(grads[1.0]) == {"g"}
    # The total is the adversarial loss plus lambda times (CE_cat + NLL_cont) of this batch.
    m = totals[2.0]
    np.testing.assert_allclose(m[f"{phase}_total"], m[f"{phase}_loss"] + 2.0 * (m[f"{phase}_info_cat"] +
                                                                                m[f"{phase}_info_cont"]), rtol=1e-12)
    np.testing.assert_allclose(m[f"{phase}_mi_cat"], math.log(10) - m[f"{phase}_info_cat"], rtol=1e-12)


def test_info_weights_are_separate():
  """lambda_cont multiplies only the continuous term (the D phase's total at lambda_cat = 1, lambda_cont = 0)."""
  config, data = _config(info_weight=1.0, info_cont_weight=0.0)
  method = methods.build(config, data)
  _, m = _phase_grads(method, method.init(jax.random.PRNGKey(0)), "d")
  np.testing.assert_allclose(m["d_total"], m["d_loss"] + m["d_info_cat"], rtol=F32_TOL)
  assert float(m["d_info_cont"]) > 0


def _paper_method(**model):
  c = infogan.add_config_fields(config_lib.get_base_config())
  c.model.update(model)
  return methods.build(c, methods.DataSpec((28, 28, 1), 10))


def test_parameter_counts_of_the_paper_networks():
  """Appendix C, Table 1 (MNIST), counted by hand. Layers feeding a BatchNorm have no bias (BN
  cancels it); a BN layer has 2 parameters per feature; the 7x7x128 FC's BN is per feature."""
  method = _paper_method()
  counts = method.param_counts(jax.eval_shape(method.init, jax.random.PRNGKey(0)))
  latent = 62 + 10 + 2
  g = (latent * 1024 + 2 * 1024              # FC 1024, BN
       + 1024 * 7 * 7 * 128 + 2 * 7 * 7 * 128  # FC 7x7x128, BN
       + 4 * 4 * 128 * 64 + 2 * 64             # 4x4 upconv 64, BN
       + 4 * 4 * 64 * 1 + 1)                   # 4x4 upconv 1 (+ bias)
  d = (4 * 4 * 1 * 64 + 64                   # 4x4 conv 64 (+ bias), no BN
       + 4 * 4 * 64 * 128 + 2 * 128            # 4x4 conv 128, BN
       + 7 * 7 * 128 * 1024 + 2 * 1024         # FC 1024, BN
       + 1024 + 1)                             # FC output
  q = 1024 * 128 + 2 * 128 + 128 * (10 + 2) + (10 + 2)   # FC 128, BN, FC 10 logits + 2 means
  assert counts == {"params/g": g, "params/d": d, "params/q": q}
  assert (g, d, q) == (6_645_121, 6_558_017, 132_876)
  # The reference's count: a bias on every layer (those before BN are dead) and Q's output with the
  # 2 unused log-variance columns (Uniform(1, fix_std=True) still has dist_flat_dim 2).
  dead_g, dead_d, dead_q = 1024 + 7 * 7 * 128 + 64, 128 + 1024, 128
  assert g + dead_g == 6_652_481
  assert d + dead_d == 6_559_169
  assert q + dead_q + 128 * 2 + 2 == 133_262
  learned = _paper_method(learn_std=True)
  counts = learned.param_counts(jax.eval_shape(learned.init, jax.random.PRNGKey(0)))
  assert counts["params/q"] == q + 128 * 2 + 2


def test_latent_priors_and_generator_input():
  method = _paper_method()
  codes = method.sample_codes(jax.random.PRNGKey(1), 20_000)
  z, cat, cont = (np.asarray(codes[k]) for k in ("z", "cat", "cont"))
  assert z.shape == (20_000, 62) and cont.shape == (20_000, 2) and cat.shape == (20_000,)
  assert z.min() >= -1 and z.max() <= 1 and cont.min() >= -1 and cont.max() <= 1
  # U(-1, 1) has variance 1/3; the sample variance of 1.24M values is within 1% of it (std error 0.1%).
  np.testing.assert_allclose(z.var(), 1 / 3, rtol=0.01)
  # Each category has probability 1/10: counts within 5 std errors (sqrt(20000 * 0.09) = 42).
  assert np.abs(np.bincount(cat, minlength=10) - 2000).max() < 5 * 43
  latent = np.asarray(method.latent(codes))
  assert latent.shape == (20_000, 74)
  np.testing.assert_array_equal(latent[:, :62], z)
  np.testing.assert_array_equal(latent[:, 62:72], np.eye(10)[cat])
  np.testing.assert_array_equal(latent[:, 72:], cont)


def test_sample_sheet_rows_are_categories_and_columns_sweep_a_code():
  method = _paper_method()
  codes = method.code_sheet_inputs(seed=0, code=1, cols=10)
  cat, cont, z = (np.asarray(codes[k]) for k in ("cat", "cont", "z"))
  np.testing.assert_array_equal(cat.reshape(10, 10), np.repeat(np.arange(10)[:, None], 10, axis=1))
  np.testing.assert_allclose(cont[:, 1].reshape(10, 10), np.tile(np.linspace(-1, 1, 10), (10, 1)), atol=1e-7)
  np.testing.assert_array_equal(cont[:, 0], 0.0)
  assert np.all(z == z[0])
  # The training grid (100 images, 10 per row in train.write_samples) is this sheet for code 0.
  fixed = method.fixed_inputs(0, 100)
  np.testing.assert_array_equal(np.asarray(fixed["cat"]), cat)
  np.testing.assert_allclose(np.asarray(fixed["cont"])[:, 0], cont[:, 1])


def test_cluster_accuracy_of_a_permuted_labelling_is_one():
  labels = np.random.default_rng(0).integers(0, 10, 500)
  perm = np.random.default_rng(1).permutation(10)
  assert clustering.cluster_accuracy(perm[labels], labels) == 1.0


def test_cluster_accuracy_of_known_confusion_matrices():
  # 3 x 3: the best one-to-one map is 0->0 (5), 1->2 (6), 2->1 (4): 15 of 22.
  counts = np.array([[5, 1, 0], [0, 2, 6], [3, 4, 1]])
  pred = np.repeat(np.repeat(np.arange(3), 3), counts.ravel())
  labels = np.repeat(np.tile(np.arange(3), 3), counts.ravel())
  np.testing.assert_array_equal(clustering.confusion_matrix(pred, labels), counts)
  assert clustering.cluster_accuracy(pred, labels) == pytest.approx(15 / 22, rel=1e-12)
  # 2 x 2 where the greedy choice (10 first) gives 11 and cluster-wise argmax (both clusters -> class
  # 0, not one-to-one) gives 19: the matching 0->1, 1->0 gives 18 of 29.
  counts = np.array([[10, 9], [9, 1]])
  assert clustering.accuracy_from_confusion(counts) == pytest.approx(18 / 29, rel=1e-12)
  assert clustering.matching(counts) == {0: 1, 1: 0}
  # More clusters than classes: the unmatched cluster's examples are errors (3 + 4 of 10).
  assert clustering.accuracy_from_confusion(np.array([[3, 0], [0, 4], [2, 1]])) == pytest.approx(0.7)


def test_predict_category_is_q_argmax_in_inference_mode():
  config, data = _config()
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(0))
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (6, 28, 28, 1)), jnp.float32)
  pred = np.asarray(method.predict_category(state, x))
  logits = np.asarray(method.q_outputs(state, x)["cat_logits"])
  np.testing.assert_array_equal(pred, logits.argmax(-1))
  # Inference mode: each image's prediction does not depend on the rest of the batch.
  np.testing.assert_array_equal(np.asarray(method.predict_category(state, x[:2])), pred[:2])


def test_config_is_the_official_mnist_setting():
  """launchers/run_mnist_exp.py + infogan_trainer.py: batch 128, G lr 1e-3, D (with Q) lr 2e-4,
  Adam beta1 0.5, info_reg_coeff 1 on both code types, 62 + Cat(10) + 2 x U(-1, 1), fixed std."""
  from tests.test_steps import load_config  # pylint: disable=g-import-not-at-top
  c = load_config("infogan", "")
  assert c.method == "infogan" and c.data.batch_size == 128 and c.data.name == "fashion_mnist"
  assert (c.model.z_dim, c.model.num_categories, c.model.num_continuous) == (62, 10, 2)
  assert c.model.z_prior == "uniform" and c.model.learn_std is False and c.model.leak == 0.01
  assert (c.loss.name, c.loss.info_weight, c.loss.info_cont_weight) == ("non_saturating", 1.0, 1.0)
  assert {n: c.nets[n].optim.lr for n in "gdq"} == {"g": 1e-3, "d": 2e-4, "q": 2e-4}
  assert all(c.nets[n].optim.name == "adam" and c.nets[n].optim.b1 == 0.5 for n in "gdq")
  assert load_config("infogan", "mnist").data.name == "mnist"
