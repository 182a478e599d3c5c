"""`train.reuse_fakes`: the G update of the `gan` family on the fakes of D's last update (the PyTorch
DCGAN example's rule), checked by recomputing both phases' losses outside the step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from tests.test_steps import build, load_config, make_batch

SHAPE = (28, 28, 1)


def _config(d_steps=2, reuse=True, conditional=False):
  # dcgan: BatchNorm in G and D (the G forward's batch statistics matter); cgan (Mirza & Osindero):
  # labels and dropout 0.5 in G (the kept dropout key matters).
  c = load_config("cgan" if conditional else "dcgan")
  c.data.batch_size = 8
  c.train.d_steps = d_steps
  c.train.reuse_fakes = reuse
  return c


def _forward(gan, state, name, *inputs, train=True, rng=None):
  spec = gan.nets[name]
  params, _ = nets_lib.normalize(spec, state.nets[name].params, state.nets[name].sn, update=False)
  out, _ = nets_lib.forward(spec, params, state.nets[name].batch_stats, *inputs, train=train, rng=rng)
  return out


def _one_step(config, num_classes=0):
  gan = build(config, SHAPE, num_classes)
  state0 = gan.init(jax.random.PRNGKey(config.seed))
  batch = make_batch(config, SHAPE, num_classes=max(num_classes, 1))
  step = step_lib.make_step(gan, gan.plan(0), donate=False)
  state1, metrics = step(state0, batch)
  return gan, state0, state1, metrics


@pytest.mark.parametrize("conditional", [False, True])
def test_g_update_uses_the_fakes_of_ds_last_update(conditional):
  config = _config(conditional=conditional)
  gan, state0, state1, metrics = _one_step(config, num_classes=10 if conditional else 0)
  z, rng = state1.extras["reuse_z"], state1.extras["reuse_rng"]
  y = state1.extras["reuse_y"] if conditional else None
  assert z.shape == (config.data.batch_size, gan.z_dim) and float(jnp.abs(z).sum()) > 0
  # G's loss: G before its update (state0's G: D's phase does not change it) on the kept latents,
  # scored by D after its d_steps updates (state1's D), both in train mode as in the step.
  fake = _forward(gan, state0, "g", z, y, rng=rng)
  step_rng = jax.random.fold_in(state0.rng, 0)
  g_key = jax.random.split(jax.random.fold_in(step_rng, gan.phases[-1].key_constant), 1)[0]
  drop_d = jax.random.split(jax.random.split(g_key)[1])[1]   # _g_prepare's D dropout key
  out = _forward(gan, state1, "d", fake, y, rng=drop_d)
  g_loss = gan.objective.g_loss(out["logits"] if isinstance(out, dict) else out, None)
  if isinstance(out, dict) and out.get("class_logits") is not None:
    g_loss = g_loss + gan.aux_weight * methods.gan.aux_classifier_loss(out["class_logits"], y)
  # float32 recomputation of the same ops in another program: a few ulps per layer, far below 1e-4.
  np.testing.assert_allclose(float(metrics["train/g_loss"]), float(g_loss), rtol=1e-4)
  # The kept latents are D's last update's: they reproduce the latents that phase drew from its key.
  step_key = jax.random.fold_in(step_rng, gan.phases[0].key_constant)
  last = jax.random.split(step_key, config.train.d_steps)[-1]
  z_d, y_d = gan.sample_latents(jax.random.split(last, 4)[0], config.data.batch_size)
  np.testing.assert_array_equal(np.asarray(z), np.asarray(z_d))
  if conditional:
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y_d))


def test_without_reuse_g_draws_its_own_latents():
  # The same recomputation with the latents of D's last update does not give the default G loss.
  gan_r, state0, state_r, metrics_r = _one_step(_config(reuse=True))
  _, _, _, metrics_f = _one_step(_config(reuse=False))
  assert "reuse_z" not in _one_step(_config(reuse=False))[2].extras
  np.testing.assert_allclose(float(metrics_r["train/d_loss"]), float(metrics_f["train/d_loss"]), rtol=1e-6)
  assert abs(float(metrics_r["train/g_loss"]) - float(metrics_f["train/g_loss"])) > 1e-4


@pytest.mark.parametrize("override,needs", [("g_steps", "train.g_steps=1"), ("g_batch_size", "g_batch_size"),
                                            ("grad_accum", "train.grad_accum=1")])
def test_settings_it_cannot_follow_are_refused(override, needs):
  config = _config()
  setattr(config.train, override, 16 if override == "g_batch_size" else 2)
  with pytest.raises(ValueError, match=needs):
    build(config, SHAPE)


def test_resumed_state_carries_the_kept_fakes():
  config = _config()
  gan = methods.build(config, methods.DataSpec(SHAPE, 0))
  assert set(gan.init(jax.random.PRNGKey(0)).extras) == {"reuse_z", "reuse_rng"}
