"""Mixed precision (`ganzoo.precision`, `config.model.dtype`): what is cast, what stays float32, and
float16's dynamic loss scaling."""

import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import precision
from ganzoo import step as step_lib
from tests.test_families import FAMILIES, _batch
from tests.test_families_resume import assert_resumed_run_equals_unbroken_run

BF16_U = 2.0 ** -8    # unit roundoff of bfloat16 (8 significant bits)
F32_U = 2.0 ** -24


def _gan(dtype, **loss_scale):
  config, data = methods.get("gan").test_config()
  config.model.dtype = dtype
  for k, v in loss_scale.items():
    config.train.loss_scale[k] = v
  return config, data, methods.build(config, data)


def _conv_dtypes(method, state, batch):
  """Counter of (primitive, operand dtype) over the step's convolutions and matrix products."""
  counts = collections.Counter()

  def walk(jaxpr):
    for e in jaxpr.eqns:
      if e.primitive.name in ("conv_general_dilated", "dot_general"):
        counts[(e.primitive.name, str(e.invars[0].aval.dtype))] += 1
      for p in e.params.values():
        inner = getattr(p, "jaxpr", None)
        if inner is not None:
          walk(inner if hasattr(inner, "eqns") else inner.jaxpr)

  plan = method.plan(0)
  walk(jax.make_jaxpr(step_lib.make_step(method, plan, jit=False))(state, batch).jaxpr)
  return counts


class _Dense(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    return nn.Dense(64)(x)


def test_dense_forward_error_is_within_the_rounding_bound():
  """y = x W + b with x, W, b rounded to bfloat16 and the result rounded once more: per element
  |y_bf16 - y| <= (2u + n 2^-24) sum_i |x_i W_ij| + u (|b_j| + |y_j|) + O(u^2), u = 2^-8 (first
  order; the products are exact in float32 and summed in float32). A forward that kept float32
  would be exact (and is checked not to be); one that rounded to 7 bits would break the bound."""
  module = _Dense()
  x = jax.random.normal(jax.random.PRNGKey(1), (32, 256))
  kernel = module.init(jax.random.PRNGKey(0), x)["params"]["Dense_0"]["kernel"]
  bias = jax.random.normal(jax.random.PRNGKey(2), (64,))
  params = {"Dense_0": {"kernel": kernel, "bias": bias}}
  spec = nets_lib.NetSpec(module=module, tx=None, sn=None)
  y32, _ = nets_lib.forward(spec, params, {}, x, train=False)
  y16, _ = nets_lib.forward(spec, params, {}, x, train=False, dtype=jnp.bfloat16)
  assert y16.dtype == jnp.float32 and y32.dtype == jnp.float32
  x64, w64, b64 = (np.asarray(a, np.float64) for a in (x, kernel, bias))
  exact = x64 @ w64 + b64
  bound = (2 * BF16_U + 256 * F32_U) * (np.abs(x64) @ np.abs(w64)) + BF16_U * (np.abs(b64) + np.abs(exact))
  err = np.abs(np.asarray(y16, np.float64) - exact)
  assert np.all(err <= 1.01 * bound), float((err / bound).max())
  assert np.abs(np.asarray(y32, np.float64) - exact).max() < 1e-3 * np.abs(np.asarray(y16, np.float64) - exact).max()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_traces_in_bfloat16_with_float32_state(family):
  """The step of every family under `model.dtype=bfloat16` (traced, not compiled): the state it returns
  has exactly the dtypes of the float32 state (params, optimizer state, statistics, EMA, extras)
  and its metrics are float32."""
  config, data = methods.get(family).test_config()
  method32 = methods.build(config, data)
  config.model.dtype = "bfloat16"
  method = methods.build(config, data)
  state = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  plan = method.plan(0)
  new_state, metrics = jax.eval_shape(step_lib.make_step(method, plan, jit=False), state,
                                      _batch(method, plan, 0, data.num_classes))
  ref = jax.eval_shape(method32.init, jax.random.PRNGKey(0))
  assert jax.tree.map(lambda a: str(a.dtype), new_state) == jax.tree.map(lambda a: str(a.dtype), ref)
  assert {str(v.dtype) for v in metrics.values()} == {"float32"}
  assert all(n.dtype == jnp.bfloat16 for n in method.nets.values())
  assert all(n.dtype is None for n in method32.nets.values())


def test_bfloat16_step_computes_in_bfloat16_and_stays_near_the_float32_step():
  """One DCGAN (tiny) step from the same state on the same batch at float32 and bfloat16.

  Structure: under bfloat16 every convolution of the step takes bfloat16 operands (none does at
  float32), and the state stays float32. Values: each of the L = 8 weight layers between the
  latent and the logit (G 4, D 4) rounds its input, weights and output (3u relative, first order,
  u = 2^-8), so with unit-gain layers the logits carry relative error <= 3uL = 0.094; the losses
  (softplus, 1-Lipschitz in the logit) move by at most that times the mean |logit| plus the
  rounding of the images fed to D (u), bounded here by 3uL * (1 + max|logit|). Adam's first
  update is lr * g / (|g| + eps), at most lr per element whatever the precision, so the two steps'
  params differ by at most 2 lr (one step each way), a check that the update stays an update.
  """
  config, data, m32 = _gan("float32")
  _, _, m16 = _gan("bfloat16")
  state = m32.init(jax.random.PRNGKey(0))
  plan = m32.plan(0)
  batch = _batch(m32, plan, 0, data.num_classes)
  count32 = _conv_dtypes(m32, state, batch)
  count16 = _conv_dtypes(m16, state, batch)
  assert count16[("conv_general_dilated", "float32")] == 0 and count16[("conv_general_dilated", "bfloat16")] > 0
  assert count32[("conv_general_dilated", "bfloat16")] == 0
  s32, met32 = step_lib.make_step(m32, plan, donate=False)(state, batch)
  s16, met16 = step_lib.make_step(m16, plan, donate=False)(state, batch)
  assert jax.tree.map(lambda a: a.dtype, s16) == jax.tree.map(lambda a: a.dtype, s32)
  tol = 3 * BF16_U * 8 * (1 + max(abs(float(met32["train/d_real"])), abs(float(met32["train/d_fake"]))))
  for key in ("train/d_loss", "train/g_loss"):
    assert abs(float(met16[key]) - float(met32[key])) <= tol, (key, float(met16[key]), float(met32[key]), tol)
  lr = max(float(config.nets.g.optim.lr), float(config.nets.d.optim.lr))
  for name in ("g", "d"):
    for a, b in zip(jax.tree.leaves(s16.nets[name].params), jax.tree.leaves(s32.nets[name].params)):
      assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 2 * lr * (1 + 1e-5)


def test_loss_scale_rule_on_a_fixed_sequence():
  """torch GradScaler's rule: halve on a non-finite update (floor 1), double after `growth_interval`
  finite updates in a row (the count restarts after a growth or a skip)."""
  rule = precision.LossScale(init=8.0, growth_interval=2)
  extras = precision.init_extras(rule)
  scale, good = extras[precision.LOSS_SCALE], extras[precision.LOSS_SCALE_GOOD]
  seen = []
  for finite in (True, True, False, True, True, True, False, False, False, False):
    out = precision.update_scale(scale, good, jnp.asarray(finite), rule)
    scale, good = out[precision.LOSS_SCALE], out[precision.LOSS_SCALE_GOOD]
    seen.append((float(scale), int(good)))
  assert seen == [(8, 1), (16, 0), (8, 0), (8, 1), (16, 0), (16, 1), (8, 0), (4, 0), (2, 0), (1, 0)]
  out = precision.update_scale(scale, good, jnp.asarray(False), rule)
  assert float(out[precision.LOSS_SCALE]) == 1.0


def test_float16_overflow_skips_the_update_and_lowers_the_scale():
  """A loss scale of 2^40 overflows float16's backward (max 65504): both updates of the step (D, then
  G) are skipped, the networks are exactly as they were, the scale halves twice and the metrics
  stay finite (a skip is not a NaN stop). From a scale of 2^10 with growth_interval 2, the same
  step updates both networks and the two finite updates double the scale."""
  _, data, method = _gan("float16", init=2.0 ** 40, growth_interval=2)
  state = method.init(jax.random.PRNGKey(0))
  assert float(state.extras[precision.LOSS_SCALE]) == 2.0 ** 40
  plan = method.plan(0)
  batch = _batch(method, plan, 0, data.num_classes)
  step = step_lib.make_step(method, plan, donate=False)
  out, metrics = step(state, batch)
  for a, b in zip(jax.tree.leaves(out.nets), jax.tree.leaves(state.nets)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert float(out.extras[precision.LOSS_SCALE]) == 2.0 ** 38
  assert int(out.step) == 1
  assert float(metrics["train/d_skipped"]) == 1.0 and float(metrics["train/g_skipped"]) == 1.0
  assert all(np.isfinite(float(v)) for v in metrics.values())

  low = state.replace(extras={**state.extras, precision.LOSS_SCALE: jnp.asarray(2.0 ** 10, jnp.float32)})
  out, metrics = step(low, batch)
  assert float(metrics["train/d_skipped"]) == 0.0 and float(metrics["train/g_skipped"]) == 0.0
  assert float(out.extras[precision.LOSS_SCALE]) == 2.0 ** 11 and int(out.extras[precision.LOSS_SCALE_GOOD]) == 0
  for name in ("g", "d"):
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree.leaves(out.nets[name].params), jax.tree.leaves(state.nets[name].params)))
    assert moved > 0.5 * float(method.config.nets[name].optim.lr), name


def test_float16_run_resumes_with_its_loss_scale(tmp_path, monkeypatch):
  """A float16 run (scale and finite-update count in the checkpointed extras) resumed after a crash
  equals the unbroken run bit for bit, loss scale included (8 updates with growth_interval 3: the
  scale changes across the checkpoint at step 2)."""
  config, data = methods.get("gan").test_config()
  config.model.dtype = "float16"
  config.train.loss_scale.growth_interval = 3   # the scale grows inside the 4 steps
  state = assert_resumed_run_equals_unbroken_run(config, data, tmp_path, monkeypatch)
  scale, good = float(state.extras[precision.LOSS_SCALE]), int(state.extras[precision.LOSS_SCALE_GOOD])
  assert np.log2(scale) == int(np.log2(scale)) and 0 <= good < 3   # a power of 2 (halved or doubled from 2^16)


@pytest.mark.parametrize("field, value, message", [
    ("model.dtype", "float8", "config.model.dtype='float8' is not a compute dtype: pass --config.model.dtype=<float32|bfloat16|float16>"),
    ("train.loss_scale.init", 0.5, "config.train.loss_scale needs init >= 1"),
])
def test_bad_precision_settings_get_one_line(field, value, message):
  config, _ = methods.get("gan").test_config()
  config.model.dtype = "float16"
  section, key = field.rsplit(".", 1)
  target = config
  for part in section.split("."):
    target = target[part]
  target[key] = value
  with pytest.raises(ValueError) as err:
    config_lib.validate_config(config)
  assert message in str(err.value) and "\n" not in str(err.value)
