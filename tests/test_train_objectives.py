"""One step of every config (configs/*.py, tiny variant) logs its objective's published formula.

Split from tests/test_train.py, whose helpers it uses, so that pytest-xdist's `--dist loadfile`
(one file per worker at a time) can run these compile-heavy steps (one per config) beside the rest
of the training-program tests instead of after them on the same worker.
"""

import functools
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.methods import gan
from tests.test_steps import ROOT, build, load_config, make_batch

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))


SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3), "celeb_a": (64, 64, 3),
          "imagenet2012": (128, 128, 3)}


def config_shape(config):
  shape = SHAPES.get(config.data.name, (32, 32, 3))
  return (config.data.image_size, config.data.image_size, shape[2]) if config.data.image_size else shape


# ---------------------------------------------------------------------------------------------
# One step of every config from fixed params: the logged losses are the objectives' published
# formulas (written out here in float64 numpy) on D's logits, recomputed outside the step.

def softplus(x):
  return np.logaddexp(0.0, x)


def cross_entropy(logits, labels):
  """Mean softmax cross-entropy (AC-GAN's L_C, arXiv:1610.09585 eq. 3)."""
  logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
  return -logp[np.arange(len(labels)), labels].mean()


def formulas(loss):
  """(d_loss(r, f), g_loss(f)) of `config.loss` on real logits r and fake logits f."""
  a, b, c = loss.get("a", 0.0), loss.get("b", 1.0), loss.get("c", 1.0)
  bce = lambda r, f: softplus(-r).mean() + softplus(f).mean()   # Goodfellow et al. 2014 (1406.2661) eq. 1
  return {
      "minimax": (bce, lambda f: -softplus(f).mean()),
      "non_saturating": (bce, lambda f: softplus(-f).mean()),
      "wasserstein": (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),          # 1701.07875 eq. 3
      "least_squares": (lambda r, f: 0.5 * ((r - b) ** 2).mean() + 0.5 * ((f - a) ** 2).mean(),
                        lambda f: 0.5 * ((f - c) ** 2).mean()),                          # 1611.04076 eq. 2
      "hinge": (lambda r, f: np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean(),
                lambda f: -f.mean()),                                                    # 1705.02894 eq. 7-8
  }[loss.name]


def reference_outputs(method, s0, s1, batch):
  """D's outputs in the step's two phases, recomputed from the states before (s0) and after (s1) it.

  The keys follow ganzoo/step.py's contract (step k: fold_in(rng, k), phase constant folded in, the
  repeats split) and the draws `GAN._d_prepare` / `_g_prepare` make: D phase (D trained): fakes from
  G(s0) with G's stored SN vectors, D(s0 params) normalized with the vectors the update computed
  (those in s1); G phase: G(s0 params, s1 vectors) through D(s1). Train mode, batch statistics.
  'g_logits_d0' is the G phase's D output with the D of *before* the update (a wiring error).
  """
  g, d = method.nets["g"], method.nets["d"]
  rng = jax.random.fold_in(s0.rng, 0)
  rng_lat, _, rng_drop, rng_g = jax.random.split(jax.random.split(jax.random.fold_in(rng, gan.D_KEY), 1)[0], 4)
  z, fake_y = method.sample_latents(rng_lat, method.batch_size)
  fake, _ = nets_lib.forward(g, nets_lib.normalize(g, s0.nets["g"].params, s0.nets["g"].sn)[0],
                             s0.nets["g"].batch_stats, z, fake_y, train=True, rng=rng_g)
  drop_real, drop_fake = jax.random.split(rng_drop)
  real = jnp.asarray(step_lib.PIXEL_TABLE)[batch["real"]["image"][0].astype(jnp.int32)]
  real_y = batch["real"]["label"][0] if method.num_classes else None
  d0 = nets_lib.normalize(d, s0.nets["d"].params, s1.nets["d"].sn)[0]
  real_out = nets_lib.forward(d, d0, s0.nets["d"].batch_stats, real, real_y, train=True, rng=drop_real)[0]
  fake_out = nets_lib.forward(d, d0, s0.nets["d"].batch_stats, fake, fake_y, train=True, rng=drop_fake)[0]
  rng_lat, rng_drop = jax.random.split(jax.random.split(jax.random.fold_in(rng, gan.G_KEY), 1)[0])
  z, y = method.sample_latents(rng_lat, method.g_batch_size)   # train.g_batch_size latents (SNGAN-projection: 2B)
  drop_g, drop_d = jax.random.split(rng_drop)
  x, _ = nets_lib.forward(g, nets_lib.normalize(g, s0.nets["g"].params, s1.nets["g"].sn)[0], s0.nets["g"].batch_stats,
                          z, y, train=True, rng=drop_g)
  d1 = nets_lib.normalize(d, s1.nets["d"].params, s1.nets["d"].sn)[0]
  g_out = nets_lib.forward(d, d1, s1.nets["d"].batch_stats, x, y, train=True, rng=drop_d)[0]
  g_out_d0 = nets_lib.forward(d, d0, s1.nets["d"].batch_stats, x, y, train=True, rng=drop_d)[0]
  out = {"real_y": real_y, "fake_y": fake_y, "g_y": y}
  for name, o in (("real", real_out), ("fake", fake_out), ("g", g_out), ("g_d0", g_out_d0)):
    out[f"{name}_logits"], out[f"{name}_class"] = gan.split_d_output(o)
  return out


# Tolerance. Both sides evaluate the same float32 networks on the same inputs, in two XLA programs
# that may fuse and order the sums differently; the losses are then means of 1-Lipschitz functions
# of the logits (softplus, relu, identity; least squares: slope |logit - target| < 4 here). Each
# logit's float32 error is below Higham's gamma_K per layer, K <= 4*4*64 = 1024 terms in these tiny
# nets (K u = 6e-5), over <= 12 layers: <= 1e-3 of the pre-activation magnitudes, which are O(1)
# at this init. So |step - formula| <= 1e-3 * (1 + |loss|) on any machine; the float64 formula adds
# nothing measurable. A wiring error (real/fake swapped, G's loss through the D of before the
# update, a wrong label or dropout key) moves a loss by > 1e-2 at these params: asserted below.
TOL = 1e-3


def close(got, want):
  return abs(float(got) - float(want)) <= TOL * (1 + abs(float(want)))


@pytest.mark.parametrize("name", CONFIGS)
def test_one_step_logs_the_objectives_formula(name):
  """train/d_loss, d_real, d_fake, g_loss (and AC-GAN's d_aux, g_aux, d_total; a penalty's d_total) of
  one step of each config (n_critic and accumulation set to 1: tests/test_steps.py covers them)."""
  config = load_config(name, "tiny")
  if config.get("method", "gan") != "gan":   # other families' objectives: their own tests (tests/test_<family>.py)
    pytest.skip(f"configs/{name}.py trains the {config.method!r} family, not 'gan'")
  config.train.d_steps = 1
  config.train.grad_accum = 1
  config.nets.d.optim.lr = 1e-2   # one Adam step moves D's logits visibly (lr per weight)
  shape = config_shape(config)
  method = build(config, shape, 10 if config.model.get("conditional", False) else 0)
  s0 = method.init(jax.random.PRNGKey(0))
  batch = make_batch(config, shape, seed=1, count=1)
  s1, metrics = step_lib.make_step(method, method.plan(0), donate=False)(s0, batch)
  metrics = jax.device_get(metrics)
  ref = jax.device_get(jax.jit(functools.partial(reference_outputs, method))(s0, s1, batch))
  f64 = lambda k: np.asarray(ref[k], np.float64)
  r, f, gl, gl_d0 = f64("real_logits"), f64("fake_logits"), f64("g_logits"), f64("g_d0_logits")
  d_formula, g_formula = formulas(config.loss)
  want = {"train/d_loss": d_formula(r, f), "train/d_real": r.mean(), "train/d_fake": f.mean(),
          "train/g_loss": g_formula(gl)}
  wrong = {"train/d_loss": d_formula(f, r), "train/d_real": f.mean(), "train/d_fake": r.mean(),
           "train/g_loss": g_formula(gl_d0)}
  if ref["real_class"] is not None:   # AC-GAN: the class term on real and fake images (D), fake (G)
    want["train/d_aux"] = (cross_entropy(f64("real_class"), ref["real_y"])
                           + cross_entropy(f64("fake_class"), ref["fake_y"]))
    want["train/g_aux"] = cross_entropy(f64("g_class"), ref["g_y"])
    want["train/d_total"] = want["train/d_loss"] + config.loss.aux_weight * want["train/d_aux"]
    wrong["train/d_aux"] = (cross_entropy(f64("real_class"), ref["fake_y"])
                            + cross_entropy(f64("fake_class"), ref["real_y"]))
  for key, value in want.items():
    assert close(metrics[key], value), (key, metrics[key], value)
  for key, value in wrong.items():   # the tolerance tells each wiring error apart
    assert not close(value, want[key]), (key, value, want[key])
  for pname, p in config.get("penalties", {}).items():
    assert metrics["train/penalty"] > 0
    assert close(metrics["train/d_total"], metrics["train/d_loss"] + p.weight * metrics["train/penalty"]), pname
  assert all(np.isfinite(v) for v in metrics.values())
