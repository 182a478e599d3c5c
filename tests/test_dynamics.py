"""Tests for ganzoo.dynamics: multi-seed training, Dirac-GAN maths, divergences, Lipschitz tools."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import dynamics
from ganzoo import methods
from ganzoo import step as step_lib


def _tiny_gan(method="non_saturating", batch_size=8):
  cfg = dynamics.toy_config(method, "ring8", batch_size=batch_size, z_dim=4)
  cfg.model.size = "tiny"
  return methods.build(cfg, methods.DataSpec((2,), 0))


@pytest.mark.parametrize("method", ["non_saturating", "wgan_gp_sn_sgd"])
def test_multi_seed_step_equals_separate_runs(method):
  """4 seeds vmapped == 4 lone runs with the same keys and batches (1e-5).

  The second case adds 5 critic steps, the gradient penalty (a double backward pass) and SN on D
  under vmap; it uses SGD because Adam's g / sqrt(v) turns float-rounding differences (batched vs
  single matmuls) in coordinates whose gradient is ~0 into O(lr) parameter differences.
  """
  if method == "non_saturating":
    gan = _tiny_gan(method)
  else:
    cfg = dynamics.toy_config("wgan_gp", "ring8", batch_size=8, z_dim=4)
    cfg.model.size = "tiny"
    cfg.nets.d.sn.enabled = True
    for net in ("g", "d"):
      cfg.nets[net].optim.update(dict(name="sgd", lr=1e-2, momentum=0.5, decay="none"))
    gan = methods.build(cfg, methods.DataSpec((2,), 0))
  d_steps, S, T = gan.config.train.d_steps, 4, 2
  keys = jax.random.split(jax.random.PRNGKey(3), S)
  batches = dynamics.synthetic_batches("ring8", [10, 11, 12, 13], 0, T, d_steps, 8)["image"]
  vstep = dynamics.make_multi_seed_step(gan, donate=False)
  states = dynamics.init_states(gan, keys)
  for t in range(T):
    states, metrics = vstep(states, {"image": jnp.asarray(batches[t])})
  assert metrics["train/d_loss"].shape == (S,)
  step = step_lib.make_step(gan, gan.plan(0), donate=False)
  init = jax.jit(gan.init)
  for s in range(S):
    state = init(keys[s])
    for t in range(T):
      state, m = step(state, {"real": {"image": jnp.asarray(batches[t, s])}})
    lone, vm = jax.tree.leaves(state), jax.tree.leaves(dynamics.seed_state(states, s))
    assert len(lone) == len(vm)
    # Batched and lone matmuls sum the same terms (the batch of 8, the tiny MLPs' hidden units) in
    # other orders: gradients within ~K u (K <= a few hundred: ~1e-5) of their scale, and each step
    # moves a param by lr (1e-3 or 1e-2)
    # times a function of g with slope <= 1 / |g| (Adam) or lr itself (SGD): after T = 2 steps the
    # params agree to ~1e-7 absolute, losses (sums of 8 O(1) terms) to ~1e-6. A seed mixed up with
    # another, or a shared key, is O(1e-2) off.
    for a, b in zip(lone, vm):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m["train/d_loss"], metrics["train/d_loss"][s], rtol=1e-5, atol=1e-5)
  # Distinct seeds really differ.
  assert not np.allclose(states.nets["g"].params["out"]["kernel"][0], states.nets["g"].params["out"]["kernel"][1])


def test_multi_seed_loop_equals_steps_and_shared_batch():
  gan = _tiny_gan()
  S, T = 2, 2
  keys = jax.random.split(jax.random.PRNGKey(0), S)
  batches = dynamics.synthetic_batches("ring8", [0, 1], 0, T, 1, 8)
  looped, metrics = dynamics.make_multi_seed_loop(gan, donate=False)(dynamics.init_states(gan, keys), batches)
  assert metrics["train/g_loss"].shape == (T, S)
  vstep = dynamics.make_multi_seed_step(gan, donate=False)
  states = dynamics.init_states(gan, keys)
  for t in range(T):
    states, _ = vstep(states, {"image": batches["image"][t]})
  for a, b in zip(jax.tree.leaves(looped), jax.tree.leaves(states)):  # the bound above
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # shared_batch feeds one batch to every seed: same as giving each seed a copy.
  shared = dynamics.make_multi_seed_step(gan, shared_batch=True, donate=False)
  one = {"image": batches["image"][0, 0]}
  a, _ = shared(dynamics.init_states(gan, keys), one)
  b, _ = vstep(dynamics.init_states(gan, keys), {"image": jnp.stack([one["image"]] * S)})
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_synthetic_batches_follow_the_data_pipeline():
  from ganzoo.data import build_dataset
  gan = _tiny_gan()
  ds = build_dataset(gan.config.data, seed=5, process_index=0, process_count=1)
  it = ds.batches(start_step=2, global_batch_size=8, steps_per_call=2)
  ours = dynamics.synthetic_batches("ring8", [5], 2, 2, 2, 8)["image"]
  np.testing.assert_array_equal(next(it)["image"], ours[0, 0])
  np.testing.assert_array_equal(next(it)["image"], ours[1, 0])


def test_generate_discriminate_and_mode_coverage():
  gan = _tiny_gan()
  states = dynamics.init_states(gan, jax.random.split(jax.random.PRNGKey(0), 3))
  z = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
  x = dynamics.generate_seeds(gan, states, z)
  assert x.shape == (3, 5, 2)
  # vmapped vs lone G forward: the tiny MLP's sums in another order, |x| ~ 1: ~K u (< 1e-5 for
  # K < 160) worst case, a few ulps in practice; a wrong seed's params are O(1e-1) off.
  np.testing.assert_allclose(x[1], gan.generate(dynamics.seed_state(states, 1), z, use_ema=False), atol=1e-5)
  assert dynamics.discriminate_seeds(gan, states, x[0]).shape == (3, 5)
  from ganzoo.data import synthetic
  centers, _ = synthetic.modes("ring8")
  perfect = np.stack([np.repeat(centers, 2, axis=0), np.repeat(centers[:1], 16, axis=0)])
  cov = dynamics.mode_coverage(perfect, "ring8")
  np.testing.assert_array_equal(cov["modes_covered"], [8.0, 1.0])
  np.testing.assert_allclose(cov["high_quality_fraction"], [1.0, 1.0])
  with pytest.raises(ValueError):
    dynamics.mode_coverage(perfect[0], "ring8")


def test_toy_config_rejects_unknown_names():
  with pytest.raises(ValueError, match="toy method"):
    dynamics.toy_config("nope")
  with pytest.raises(ValueError, match="2-D"):
    dynamics.toy_config("hinge_sn", data="mnist")


# ---------------------------------------------------------------------------------------------
# Dirac-GAN.

def test_dirac_vector_field_matches_closed_form():
  # ganzoo's D gives real data positive logits, so the standard GAN is L = f(-psi theta) + f(0),
  # f(t) = -log(1 + e^-t), f'(t) = sigmoid(-t): v = (psi f'(-psi theta), -theta f'(-psi theta)).
  theta, psi = 0.7, -0.4
  # Scalar closed forms of <= 5 float32 operations on both sides: <= ~5 ulps (3e-7) apart on any
  # machine; rtol 1e-5 is the margin, and a wrong sign or factor is O(1).
  fp = jax.nn.sigmoid(theta * psi)
  vt, vp = dynamics.dirac_vector_field(dynamics.DiracGAN("minimax"), jnp.float32(theta), jnp.float32(psi))
  np.testing.assert_allclose(vt, psi * fp, rtol=1e-5)     # G descends L
  np.testing.assert_allclose(vp, -theta * fp, rtol=1e-5)  # D ascends L
  # WGAN: the bilinear game L = -psi theta, v = (psi, -theta); R1 adds -gamma psi to D's direction.
  vt, vp = dynamics.dirac_vector_field(dynamics.DiracGAN("wasserstein", r1_gamma=2.0), jnp.float32(theta),
                                       jnp.float32(psi))
  np.testing.assert_allclose([vt, vp], [psi, -theta - 2.0 * psi], rtol=1e-5)
  # WGAN-GP with lambda: GP = (|psi| - 1)^2 -> D's direction -theta - 2 lambda (|psi| - 1) sign(psi).
  vt, vp = dynamics.dirac_vector_field(dynamics.DiracGAN("wasserstein", gp_weight=1.0), jnp.float32(theta),
                                       jnp.float32(psi))
  np.testing.assert_allclose(vp, -theta - 2.0 * (0.4 - 1.0) * -1.0, rtol=1e-5)


def test_dirac_eigenvalues_explain_convergence():
  lr = 0.1
  gan = dynamics.DiracGAN("non_saturating")
  sim = np.abs(dynamics.dirac_jacobian_eigenvalues(gan, lr))
  alt = np.abs(dynamics.dirac_jacobian_eigenvalues(gan, lr, alternating=True))
  r1 = np.abs(dynamics.dirac_jacobian_eigenvalues(dynamics.DiracGAN("non_saturating", r1_gamma=1.0), lr))
  noise = np.abs(dynamics.dirac_jacobian_eigenvalues(dynamics.DiracGAN("non_saturating", noise_std=1.0), lr))
  # Eigenvalues of a 2x2 Jacobian: a few ulps of |lambda| ~ 1 (1e-6); the margin is 10x.
  np.testing.assert_allclose(sim, np.sqrt(1 + (lr * 0.5) ** 2), rtol=1e-5)  # f'(0) = 1/2
  np.testing.assert_allclose(alt, 1.0, rtol=1e-5)
  assert r1.max() < 1.0 and noise.max() < 1.0
  traj = dynamics.dirac_trajectory(dynamics.DiracGAN("minimax"), jnp.array([0.1, 0.0]), lr, 1000)
  assert traj.shape == (1001, 2)
  assert np.linalg.norm(traj[-1]) > 0.3  # simultaneous GD spirals out (x 1.00125 per step)
  traj = dynamics.dirac_trajectory(dynamics.DiracGAN("wasserstein"), jnp.array([0.1, 0.0]), lr, 1000,
                                   alternating=True)
  # Alternating GD on the bilinear game conserves Q = theta^2 + psi^2 - lr theta psi exactly (up
  # to float32 rounding, ~1000 u = 6e-5 over the run), so |(theta, psi)| stays within
  # [sqrt(Q / (1 + lr/2)), sqrt(Q / (1 - lr/2))] = 0.1 x [0.976, 1.026]: rtol 0.05 is that bound
  # with 2x margin; simultaneous GD leaves it (x 1.00125 per step: 3.5x after 1000 steps).
  np.testing.assert_allclose(np.linalg.norm(traj, axis=1), 0.1, rtol=0.05)  # alternating circles
  traj = dynamics.dirac_trajectory(dynamics.DiracGAN("non_saturating", r1_gamma=1.0), jnp.array([1.0, 0.0]), lr, 2000)
  assert np.linalg.norm(traj[-1]) < 0.05  # R1 converges


# ---------------------------------------------------------------------------------------------
# Divergences.

def test_parallel_lines_and_empirical_w1():
  d = dynamics.parallel_lines_divergences(np.array([-0.5, 0.0, 0.3]))
  # Closed forms (|theta|, log 2): exact up to the float64 ulp; the default rtol 1e-7 is formatting.
  np.testing.assert_allclose(d["w1"], [0.5, 0.0, 0.3])
  np.testing.assert_allclose(d["js"], [np.log(2), 0.0, np.log(2)])
  np.testing.assert_array_equal(d["kl"], [np.inf, 0.0, np.inf])
  np.testing.assert_array_equal(d["tv"], [1.0, 0.0, 1.0])
  k = jax.random.PRNGKey(0)
  x, y = dynamics.sample_parallel_line(k, 0.0, 64), dynamics.sample_parallel_line(k, 0.7, 64)
  # Same Z: each |(z + 0.7) - z| in float32 rounds twice by <= 1 ulp of |z| <= 3 (2.4e-7), the mean
  # of 64 such positive terms adds gamma_64 = 4e-6 relative: rtol 1e-5 holds anywhere.
  np.testing.assert_allclose(dynamics.empirical_w1(x, y), 0.7, rtol=1e-5)  # same Z: pure shift


def test_fit_critic_with_gradient_penalty_estimates_w1():
  cfg = dynamics.toy_config("wgan_gp", lr=1e-3)
  cfg.model.size = "tiny"
  gan = methods.build(cfg, methods.DataSpec((2,), 0))
  def fit(theta):
    return dynamics.fit_critic(gan, jax.random.PRNGKey(0), lambda kk, n: dynamics.sample_parallel_line(kk, 0.0, n),
                               lambda kk, n: dynamics.sample_parallel_line(kk, theta, n), 300, 64)
  fits = jax.jit(jax.vmap(fit))(jnp.array([0.5, 1.5]))  # one compile for both thetas
  assert fits.losses.shape == (2, 300)
  # Not a rounding tolerance: the gap E[D(real)] - E[D(fake)] of a GP-penalized critic overshoots
  # W1 = theta: with slope k along the shift the objective -k theta + lambda (k - 1)^2 (lambda = 10)
  # is minimized at k = 1 + theta / (2 lambda), a gap of theta (1 + theta / 20): +2.5% and +7.5%;
  # 300 Adam steps of a tiny MLP leave a few % more (deterministic for these keys). 15% bounds both;
  # a critic without the penalty, or a gap of the wrong sign, misses it by far.
  np.testing.assert_allclose(fits.gap, [0.5, 1.5], rtol=0.15)
  one = jax.tree.map(lambda a: a[0], fits)
  x = dynamics.sample_parallel_line(jax.random.PRNGKey(1), 0.0, 8)
  assert dynamics.critic_fn(gan, one)(x).shape == (8,)


def test_generator_logit_gradient_saturates():
  logits = jnp.array([-10.0, 0.0])  # D(G(z)) = 4.5e-5, 0.5
  sat = dynamics.generator_logit_gradient("minimax", logits)
  ns = dynamics.generator_logit_gradient("non_saturating", logits)
  # The gradient of softplus vs the sigmoid formula: a few ulps each (1e-6 relative); margin 10x.
  np.testing.assert_allclose(sat, -jax.nn.sigmoid(logits), rtol=1e-5)
  np.testing.assert_allclose(ns, -(1 - jax.nn.sigmoid(logits)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Lipschitz.

def test_lipschitz_bounds_on_a_linear_map():
  w = jnp.diag(jnp.array([3.0, 0.5]))
  params = {"a": {"kernel": w, "bias": jnp.zeros(2)}, "b": {"kernel": 2.0 * jnp.eye(2)[:, :1]}}
  # Diagonal and identity kernels: the power iteration on them and the gradient norms are exact
  # up to a few ulps (the norms' square roots): rtol 1e-5 is margin, a missing layer is off by 2x.
  np.testing.assert_allclose(dynamics.sigma_product(params), 6.0, rtol=1e-5)

  def d_fn(x):
    return (x @ params["a"]["kernel"] @ params["b"]["kernel"])[:, 0]
  norms = dynamics.input_gradient_norms(d_fn, jnp.ones((3, 2)))
  np.testing.assert_allclose(norms, [6.0, 6.0, 6.0], rtol=1e-5)


def test_sn_estimate_error_shrinks_with_power_iterations():
  gan = _tiny_gan("hinge_sn")
  state = jax.jit(gan.init)(jax.random.PRNGKey(0))
  err0 = max(float(e) for e in dynamics.sn_estimate_errors(gan, state).values())
  d = state.nets["d"]
  d_sn = d.sn
  for _ in range(30):
    _, d_sn = gan.nets["d"].sn.apply(d.params, d_sn, update=True)
  with_sn = lambda sn: state.replace(nets={**state.nets, "d": d.replace(sn=sn)})
  err = max(float(e) for e in dynamics.sn_estimate_errors(gan, with_sn(d_sn)).values())
  # The power iteration's truncation error (deterministic for these keys: the same on any machine
  # up to float32 rounding, ~1e-6): > 1e-2 with the initial u, < 1e-3 after 30 more iterations.
  assert err0 > 1e-2 and err < 1e-3 < err0
  d_fn = dynamics.discriminator_fn(gan, with_sn(d_sn))
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
  lower = float(dynamics.input_gradient_norms(d_fn, x).max())
  upper = float(dynamics.sigma_product(dynamics.normalized_d_params(gan, with_sn(d_sn))))
  # |grad D| <= Lip(D) <= prod sigma(W_i / sigma_hat_i) is a theorem (1-Lipschitz activations);
  # 1e-4 absorbs the float32 rounding of the gradient norms (~1e-6). Each factor sigma / sigma_hat is
  # within the estimate error (< 1e-3, above) of 1, so the product of <= 4 layers is within 1e-2.
  assert lower <= upper + 1e-4 and abs(upper - 1.0) < 1e-2
