"""Configs match the reference code they cite, and the schedules those references need.

One test per reference: WGAN-GP's CIFAR ResNet (lr 2e-4 decayed linearly, G batch 2x the
critic's), WGAN's n_critic schedule (100 for the first 25 steps and every 500th), BigGAN-PyTorch's
CIFAR-10 script and its ImageNet SN eps, the conditional GAN's exponential lr decay and momentum
ramp, and the projection cGAN's decay over the last 50k of 450k steps. Learning rates are read off
the optimizer each config builds (`lr_at`), so a schedule that ends at the wrong update fails.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import nets as nets_lib
from ganzoo import parallel
from ganzoo import step as step_lib
from ganzoo import train
from tests.test_steps import build, load_config, make_batch, run_steps


def lr_at(optim_cfg, tx, count: int) -> float:
  """The learning rate `tx` applies at update `count` (0-based).

  Every update-counter of the optimizer state is set to `count`, moments to 0, and one update is
  taken with gradient 1: sgd moves by -lr; Adam by -lr * m_hat / (sqrt(v_hat) + eps) with
  m_hat = (1 - b1) / (1 - b1**(count+1)), v_hat = (1 - b2) / (1 - b2**(count+1)), divided out here.
  """
  params = {"w": jnp.zeros((1,), jnp.float32)}
  state = jax.tree.map(lambda x: jnp.full_like(x, count) if x.dtype == jnp.int32 else x, tx.init(params))
  updates, _ = tx.update({"w": jnp.ones((1,), jnp.float32)}, state, params)
  step = -float(updates["w"][0])
  if optim_cfg.name == "sgd":
    return step
  b1, b2, eps = optim_cfg.b1, optim_cfg.b2, optim_cfg.eps
  m_hat = (1 - b1) / (1 - b1 ** (count + 1))
  v_hat = (1 - b2) / (1 - b2 ** (count + 1))
  return step * (np.sqrt(v_hat) + eps) / m_hat


# float32 schedules: lr * (1 - t / T) and the Adam normalization in float32 carry a few ulps of
# relative error (each op <= 2**-24); 1e-5 bounds them with room.
RTOL = 1e-5


def test_wgan_gp_matches_the_cifar_resnet_reference():
  """igul222/improved_wgan_training gan_cifar_resnet.py: LR 2e-4, DECAY (linear to 0 over ITERS =
  100k), Adam(0, 0.9), N_CRITIC 5, BATCH_SIZE 64, GEN_BS_MULTIPLE 2."""
  c = load_config("wgan_gp", "")
  assert (c.data.batch_size, c.train.g_batch_size, c.train.d_steps, c.train.num_steps) == (64, 128, 5, 100_000)
  gan = build(c, (32, 32, 3))
  assert gan.g_batch_size == 128
  for net, per_step in (("g", 1), ("d", 5)):
    o = c.nets[net].optim
    assert (o.name, o.lr, o.b1, o.b2, o.decay) == ("adam", 2e-4, 0.0, 0.9, "linear")
    tx = gan.nets[net].tx
    # lr * (1 - it / ITERS): half way at step 50k, lr / 100k at the last update, 0 after it.
    np.testing.assert_allclose(lr_at(o, tx, 0), 2e-4, rtol=RTOL)
    np.testing.assert_allclose(lr_at(o, tx, 50_000 * per_step), 1e-4, rtol=RTOL)
    # 1% of the rate left 1% before the end (not at the last update: 1 - t / T in float32 is off by
    # up to 2**-24 absolute, a large relative error when it is near 0), > 0 there, 0 after it.
    np.testing.assert_allclose(lr_at(o, tx, 99_000 * per_step), 2e-6, rtol=1e-4)
    assert lr_at(o, tx, 100_000 * per_step - 1) > 0.0
    assert lr_at(o, tx, 100_000 * per_step) == 0.0


def test_generator_phase_samples_g_batch_size_latents():
  """train.g_batch_size latents per G update (the critic's fakes keep data.batch_size), on 8 devices."""
  c = load_config("wgan_gp", "tiny")             # data.batch_size 8, g_batch_size tied to 2x
  assert c.train.g_batch_size == 16
  c.data.batch_size = 4                          # the tie follows an override of the batch
  assert c.train.g_batch_size == 8
  c.data.batch_size = 8
  gan = build(c, (32, 32, 3))
  drawn = []
  sample_latents = gan.sample_latents

  def recording(rng, n):
    drawn.append(n)
    return sample_latents(rng, n)

  gan.sample_latents = recording
  mesh = parallel.make_mesh(jax.devices())
  state = parallel.replicate(gan.init(jax.random.PRNGKey(0)), mesh)
  drawn.clear()
  step = step_lib.make_step(gan, gan.plan(0), mesh, donate=False)
  _, metrics = step(state, parallel.global_batch(make_batch(c, (32, 32, 3)), mesh))
  # Traced once: the critic updates (unrolled on CPU, one scan body elsewhere), then G's.
  assert drawn[-1] == 16 and set(drawn[:-1]) == {8}, drawn
  assert np.isfinite(float(metrics["train/g_loss"]))


def test_g_batch_size_must_divide_over_devices():
  c = load_config("wgan_gp", "tiny")
  c.train.g_batch_size = 12                      # not a multiple of 8 devices nor of the batch 8
  with pytest.raises(ValueError, match=r"train.g_batch_size=12 must be divisible by the number of devices \(8\)"):
    build(c, (32, 32, 3))


def test_wgan_critic_schedule_matches_the_reference():
  """martinarjovsky/WassersteinGAN main.py: Diters = 100 if gen_iterations < 25 or
  gen_iterations % 500 == 0 else 5; the stream delivers one real batch per critic update."""
  c = load_config("wgan", "")
  gan = build(c, (32, 32, 3))
  steps = [0, 1, 24, 25, 26, 499, 500, 501, 1000, 99_500, 99_999]
  want = [100 if s < 25 or s % 500 == 0 else 5 for s in steps]
  assert [gan.plan(s).phases[0].repeats for s in steps] == want
  assert [gan.streams(gan.plan(s))["real"].count for s in steps] == want
  # D's updates over the run: 25 + 199 (500, ..., 99500) steps at 100, the rest at 5.
  assert gan.d_updates_until(100_000) == 224 * 100 + (100_000 - 224) * 5
  assert gan.d_updates_until(100_000) == sum(100 if s < 25 or s % 500 == 0 else 5 for s in range(100_000))


def test_critic_schedule_runs_reads_its_batches_and_ends_d_decay_at_the_last_step():
  """A small schedule on dcgan:tiny (1 D update, 3 at step 0 and at even steps): the D optimizer
  counts every update, the data offsets follow the plans, and D's linear decay reaches 0 exactly
  after its last update (the count includes the extra updates)."""
  c = load_config("dcgan", "tiny")
  c.train.num_steps = 3
  c.train.d_steps_warmup.update(dict(steps=1, d_steps=3, every=2))
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="sgd", lr=0.1, momentum=0.0, decay="linear"))
  gan = build(c, (28, 28, 1))
  assert [gan.plan(s).phases[0].repeats for s in range(3)] == [3, 1, 3]
  assert gan.d_updates_until(3) == 7
  assert train.stream_offsets(gan, 3)["real"] == 7 * c.data.batch_size
  state, _ = run_steps(c, (28, 28, 1), parallel.make_mesh(jax.devices()[:1]), n=3)
  counts = [int(x) for x in jax.tree.leaves(state.nets["d"].opt_state) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  assert counts and all(n == 7 for n in counts), counts
  o, tx = c.nets.d.optim, gan.nets["d"].tx
  np.testing.assert_allclose([lr_at(o, tx, t) for t in range(8)], [0.1 * (1 - t / 7) for t in range(7)] + [0.0],
                             rtol=RTOL, atol=1e-9)


def test_lazy_regularizer_updates_count_in_d_schedule():
  """Lazy regularization every 4 steps adds ceil(num_steps / 4) D updates; D's linear decay ends
  at the last of them (it used to end after num_steps * d_steps updates)."""
  c = load_config("sngan", "tiny")
  c.train.num_steps = 8
  c.penalties.r1 = dict(weight=1.0, every=4)
  c.nets.d.optim.update(dict(name="adam", lr=1e-3, b1=0.0, b2=0.9, eps=1e-8, decay="linear"))
  gan = build(c, (32, 32, 3))
  n = c.train.d_steps * 8 + 2
  ratio = 4 / 5  # lr * k / (k + 1), betas ** (k / (k + 1))
  o = c.nets.d.optim.to_dict()
  o.update(b2=0.9 ** ratio)
  o = type(c.nets.d.optim)(o)
  tx = gan.nets["d"].tx
  np.testing.assert_allclose(lr_at(o, tx, n - 1), 1e-3 * ratio / n, rtol=1e-4)
  assert lr_at(o, tx, n) == 0.0
  assert gan.d_updates_until(8) == n


def test_biggan_cifar10_matches_the_current_launch_script():
  """ajbrock/BigGAN-PyTorch scripts/launch_cifar_ema.sh: --batch_size 50 --num_D_steps 4 --G_lr 2e-4
  --D_lr 2e-4 --G_init N02 --D_init N02 --num_epochs 500 --ema_start 1000; utils.py defaults for
  the rest (adam_eps 1e-8, SN_eps 1e-8, B1 0, B2 0.999)."""
  c = load_config("biggan", "cifar10")
  assert (c.data.batch_size, c.train.d_steps, c.model.init, c.train.num_steps) == (50, 4, "normal", 125_000)
  assert c.train.num_steps == 500 * (50_000 // (50 * 4))
  assert c.nets.g.ema.start == 1_000 and c.nets.g.ortho == 0.0
  for net in ("g", "d"):
    o = c.nets[net].optim
    assert (o.lr, o.b1, o.b2, o.eps, o.decay) == (2e-4, 0.0, 0.999, 1e-8, "none")
    assert c.nets[net].sn.eps == 1e-8


@pytest.mark.parametrize("variant", ["imagenet128", "imagenet128,pytorch"])
def test_biggan_imagenet_sn_eps_reaches_the_power_iteration(variant):
  """--SN_eps 1e-6 (launch_BigGAN_bs256x8.sh) floors the norms in the power iteration, as
  BigGAN-PyTorch's F.normalize(., eps): for W = 1e-7 I, v = W u / max(|W u|, eps) = 0.1 u and
  u' = W v / max(|W v|, eps) = 0.01 u (with eps 1e-12 both would be unit vectors)."""
  c = load_config("biggan", variant)
  assert c.nets.g.sn.eps == 1e-6 and c.nets.d.sn.eps == 1e-6
  sn = nets_lib.build_sn(c.nets.d.sn)
  params = {"Dense_0": {"kernel": 1e-7 * jnp.eye(3, dtype=jnp.float32)}}
  state = sn.init(params, jax.random.PRNGKey(0))
  _, new = sn.apply(params, state, update=True)
  np.testing.assert_allclose(float(jnp.linalg.norm(new.u["Dense_0/kernel"])), 0.01, rtol=1e-5)


def test_cgan_decays_lr_exponentially_and_ramps_momentum():
  """Mirza & Osindero 2014 (arXiv:1411.1784) Sec. 4.1: lr 0.1 decreased exponentially (factor
  1.00004 per update) down to 1e-6, momentum 0.5 increased to 0.7 (ramp over epochs 1..250 of
  goodfeli/adversarial mnist.yaml's MomentumAdjustor); pylearn2's step v = m v - lr g."""
  c = load_config("cgan", "")
  o = c.nets.g.optim
  assert (o.name, o.lr, o.momentum, o.decay, o.decay_factor, o.min_lr, o.momentum_final) == (
      "sgd", 0.1, 0.5, "exponential", 1.00004, 1e-6, 0.7)
  assert (o.momentum_start, o.momentum_saturate, c.train.num_steps) == (600, 150_000, 300_000)
  gan = build(c, (28, 28, 1), 10)
  lr = nets_lib.learning_rate(o, c.train.num_steps)
  for t in (0, 1, 1_000, 100_000, 287_000, 288_000, 299_999):
    np.testing.assert_allclose(float(lr(t)), max(0.1 * 1.00004 ** -t, 1e-6), rtol=RTOL)
  m = nets_lib.momentum_schedule(o, 600, 150_000)
  np.testing.assert_allclose([float(m(t)) for t in (0, 600, 75_300, 150_000, 200_000)], [0.5, 0.5, 0.6, 0.7, 0.7],
                             rtol=RTOL)
  # The built optimizer: 8 updates with gradient 1 on a ramp over updates 2..6 follow
  # v_t = m_t v_{t-1} - lr_t, step v_t.
  o2 = c.nets.g.optim.to_dict()
  o2.update(momentum_start=2, momentum_saturate=6)
  spec = nets_lib.build_spec(gan.generator, type(c.nets.g)({**c.nets.g.to_dict(), "optim": o2}), 8)
  params = {"w": jnp.zeros((1,), jnp.float32)}
  state = spec.tx.init(params)
  got, want, v = [], [], 0.0
  for t in range(8):
    updates, state = spec.tx.update({"w": jnp.ones((1,), jnp.float32)}, state, params)
    got.append(float(updates["w"][0]))
    v = (0.5 + 0.2 * min(max((t - 2) / 4, 0.0), 1.0)) * v - 0.1 * 1.00004 ** -t
    want.append(v)
  np.testing.assert_allclose(got, want, rtol=RTOL)
  # The D network gets the same schedule; the conv variant keeps Adam with a constant lr.
  assert c.nets.d.optim.momentum_final == 0.7
  conv = load_config("cgan", "conv")
  assert conv.nets.g.optim.decay == "none" and conv.nets.g.optim.momentum_final is None
  build(conv, (28, 28, 1), 10)


def test_momentum_ramp_needs_sgd():
  c = load_config("cgan", "conv")
  c.nets.g.optim.momentum_final = 0.7
  with pytest.raises(ValueError, match="momentum_final ramps SGD's momentum; the optimizer is 'adam'"):
    build(c, (28, 28, 1), 10)


def test_sngan_projection_matches_the_reference_configs():
  """pfnet-research/sngan_projection configs/sn_projection.yml: 450k iterations, lr constant until
  iteration_decay_start 400k, then linear to 0 (LinearShift); n_gen_samples 2x the batch in it and
  in sn_cifar10_conditional.yml (50k iterations, decay from 0)."""
  c = load_config("sngan_projection", "imagenet128")
  assert (c.data.batch_size, c.train.g_batch_size, c.train.num_steps) == (64, 128, 450_000)
  gan = build(c, (128, 128, 3), 1000)
  for net, per_step in (("g", 1), ("d", 5)):
    o, tx = c.nets[net].optim, gan.nets[net].tx
    assert (o.decay, o.decay_start) == ("linear", 400_000)
    np.testing.assert_allclose(lr_at(o, tx, 400_000 * per_step - 1), 2e-4, rtol=RTOL)
    np.testing.assert_allclose(lr_at(o, tx, 425_000 * per_step), 1e-4, rtol=RTOL)
    assert lr_at(o, tx, 450_000 * per_step) == 0.0
  c10 = load_config("sngan_projection", "")
  assert (c10.data.batch_size, c10.train.g_batch_size, c10.train.num_steps) == (64, 128, 50_000)
  assert c10.nets.d.optim.decay == "linear" and c10.nets.d.optim.decay_start == 0
