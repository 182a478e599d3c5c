"""Tests for ganzoo.spectral_norm: sigma values, convergence, eval mode, gradients, selection."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ganzoo import spectral_norm as snl


def _top_sv(w):
  w = np.asarray(w, np.float64)
  return np.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]


class _Net(nn.Module):
  """Conv + Embed + Dense + BatchNorm: every kind of leaf SN must handle."""

  @nn.compact
  def __call__(self, x, y):
    h = nn.Conv(16, (3, 3))(x)
    h = nn.BatchNorm(use_running_average=True)(h)
    h = jnp.mean(h, axis=(1, 2))
    h = h + nn.Embed(10, 16)(y)
    return nn.Dense(1, name="head")(nn.Dense(16)(h))[:, 0]


def _net_params():
  x = jnp.zeros((2, 6, 6, 8))
  y = jnp.zeros((2,), jnp.int32)
  variables = _Net().init(jax.random.key(0), x, y)
  return variables


def test_sigma_of_4_identity():
  params = {"Dense_0": {"kernel": 4.0 * jnp.eye(5), "bias": jnp.ones(5)}}
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  out, state = sn.apply(params, state)
  # One power iteration on 4I: 5-term products and norms (gamma_5 = 3e-7 relative each), a handful
  # of them: W / sigma within ~1e-6 of I and sigma within 1e-6 relative of 4, on any machine.
  np.testing.assert_allclose(np.asarray(out["Dense_0"]["kernel"]), np.eye(5), atol=1e-6)
  np.testing.assert_allclose(float(sn.sigmas(params, state)["Dense_0/kernel"]), 4.0, rtol=1e-6)
  assert out["Dense_0"]["bias"] is params["Dense_0"]["bias"]


@pytest.mark.parametrize("n_iter", [1, 3])
def test_converges_to_unit_top_singular_value(n_iter):
  rs = np.random.RandomState(0)
  params = {
      "Dense_0": {"kernel": jnp.asarray(rs.normal(size=(32, 16)), jnp.float32),
                  "bias": jnp.zeros(16)},
      "Conv_0": {"kernel": jnp.asarray(rs.normal(size=(3, 3, 8, 16)), jnp.float32)},
      "Embed_0": {"embedding": jnp.asarray(rs.normal(size=(10, 16)), jnp.float32)},
  }
  sn = snl.spectral_norm(n_power_iterations=n_iter)
  state = jax.jit(sn.init)(params, jax.random.key(1))
  assert sorted(state.u) == ["Conv_0/kernel", "Dense_0/kernel", "Embed_0/embedding"]
  assert state.u["Conv_0/kernel"].shape == (16,)
  apply = jax.jit(lambda p, s: sn.apply(p, s, update=True))
  for _ in range(50):
    out, state = apply(params, state)
  # Error: the power iteration's truncation, which depends only on these fixed matrices and the
  # fixed initial u (so is the same on every machine), decays as (sigma_2 / sigma_1)^(4k) in sigma
  # (Golub & Van Loan, Sec. 8.2.1; ratios 0.95, 0.92, 0.97 here, k = 50 or 150 iterations); float32
  # rounding adds gamma_72 = 4e-6. 1e-3 fails if the iteration normalizes the wrong axis (the
  # reshape of the conv kernel) or does not carry u between calls.
  for name in ("Dense_0", "Conv_0"):
    assert out[name]["kernel"].shape == params[name]["kernel"].shape
    assert abs(_top_sv(out[name]["kernel"]) - 1.0) < 1e-3
  assert abs(_top_sv(out["Embed_0"]["embedding"]) - 1.0) < 1e-3
  sig = sn.sigmas(params, state)
  np.testing.assert_allclose(float(sig["Conv_0/kernel"]), _top_sv(params["Conv_0"]["kernel"]),
                             rtol=1e-3)


def test_first_apply_is_a_lower_bound_and_improves():
  rs = np.random.RandomState(2)
  w = jnp.asarray(rs.normal(size=(20, 12)), jnp.float32)
  params = {"kernel": w}
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  true = _top_sv(w)
  sig = []
  for _ in range(5):
    _, state = sn.apply(params, state)
    sig.append(float(sn.sigmas(params, state)["kernel"]))
  # v^T W u with unit u, v is <= sigma_1 exactly; in float32 the 20- and 12-term sums and the two
  # norms add <= gamma_20 * sum|terms| / sigma_1 (<= ~4e-6 for this 20x12 Gaussian matrix): 1e-5.
  assert all(s <= true * (1 + 1e-5) for s in sig)
  assert sig[-1] >= sig[0] * (1 - 1e-5) and sig[-1] > 0.5 * true


def test_update_false_keeps_state_and_uses_stored_u():
  params = {"kernel": jnp.asarray(np.random.RandomState(0).normal(size=(6, 4)), jnp.float32)}
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  _, state = sn.apply(params, state)
  out, state2 = sn.apply(params, state, update=False)
  assert state2 is state
  for k in state.u:
    np.testing.assert_array_equal(np.asarray(state2.u[k]), np.asarray(state.u[k]))
  # sigma with the stored u is ||W u||.
  u = np.asarray(state.u["kernel"])
  sigma = np.linalg.norm(np.asarray(params["kernel"]) @ u)
  # The same sigma by two float32 routes (numpy's norm, the module's v^T W u): 4- and 6-term sums,
  # gamma_6 = 4e-7 each, so W / sigma agrees to ~1e-6 relative; 1e-5 leaves 10x on any machine.
  np.testing.assert_allclose(np.asarray(out["kernel"]), np.asarray(params["kernel"]) / sigma,
                             rtol=1e-5)
  out_j, state_j = jax.jit(lambda p, s: sn.apply(p, s, update=False))(params, state)
  # jit may fuse the same ops differently: a few ulps (1e-6 = 8 ulps relative).
  np.testing.assert_allclose(np.asarray(out_j["kernel"]), np.asarray(out["kernel"]), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(state_j.u["kernel"]), u)


def test_gradient_matches_analytic_formula():
  # f(W) = sum(C * W / sigma), sigma = v^T W u with u, v fixed by the power iteration:
  # df/dW = C / sigma - sum(C * W) / sigma^2 * v u^T.
  rs = np.random.RandomState(3)
  w = rs.normal(size=(4, 3)).astype(np.float32)
  c = rs.normal(size=(4, 3)).astype(np.float32)
  sn = snl.spectral_norm()
  state = sn.init({"kernel": jnp.asarray(w)}, jax.random.key(0))

  def f(w_):
    out, _ = sn.apply({"kernel": w_}, state)
    return jnp.sum(jnp.asarray(c) * out["kernel"])

  grad = np.asarray(jax.grad(f)(jnp.asarray(w)), np.float64)
  w64, u = w.astype(np.float64), np.asarray(state.u["kernel"], np.float64)
  v = w64 @ u
  v /= np.linalg.norm(v)
  u = w64.T @ v
  u /= np.linalg.norm(u)
  sigma = v @ w64 @ u
  expected = c / sigma - np.sum(c * w64) / sigma ** 2 * np.outer(v, u)
  # float32 vs float64: the 12-term sum(C * W) (|terms| sum to 6.9) over sigma^2 = 7.6 carries
  # gamma_12 * 6.9 / 7.6 = 6.6e-7 absolute; c / sigma and the power iteration's 3- and 4-term sums a
  # few ulps relative of entries ~1: atol 1e-6 + rtol 1e-4 bounds both. Treating sigma as a constant
  # (below) is off by O(1e-1).
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
  # And the gradient differs from treating sigma as a constant (it does flow through sigma).
  assert np.max(np.abs(grad - c / sigma)) > 1e-3


def test_flax_tree_selection_and_passthrough():
  variables = _net_params()
  params = variables["params"]
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  assert sorted(state.u) == ["Conv_0/kernel", "Dense_0/kernel", "Embed_0/embedding",
                             "head/kernel"]
  out, state = jax.jit(lambda p, s: sn.apply(p, s))(params, state)
  assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(params)
  assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(out))
  assert all(np.all(np.isfinite(np.asarray(u))) for u in state.u.values())
  out_eager, _ = sn.apply(params, state)
  for layer in ("Conv_0", "Dense_0", "head"):
    assert out_eager[layer]["bias"] is params[layer]["bias"]
  assert out_eager["BatchNorm_0"]["scale"] is params["BatchNorm_0"]["scale"]
  assert out_eager["BatchNorm_0"]["bias"] is params["BatchNorm_0"]["bias"]
  # The normalized tree runs through the unchanged model.
  x = jnp.ones((2, 6, 6, 8))
  y = jnp.array([1, 2], jnp.int32)
  logits = _Net().apply({**variables, "params": out_eager}, x, y)
  assert logits.shape == (2,) and np.all(np.isfinite(np.asarray(logits)))


def test_include_regex_callable_and_exclude():
  params = _net_params()["params"]
  rng = jax.random.key(0)
  assert sorted(snl.spectral_norm(include="^(?!head/)").init(params, rng).u) == [
      "Conv_0/kernel", "Dense_0/kernel", "Embed_0/embedding"]
  sn = snl.spectral_norm(exclude="^head/|Embed")
  state = sn.init(params, rng)
  assert sorted(state.u) == ["Conv_0/kernel", "Dense_0/kernel"]
  out, _ = sn.apply(params, state)
  assert out["head"]["kernel"] is params["head"]["kernel"]
  assert out["Embed_0"]["embedding"] is params["Embed_0"]["embedding"]
  only_conv = snl.spectral_norm(include=lambda path, leaf: path[0] == "Conv_0" and leaf.ndim == 4)
  assert list(only_conv.init(params, rng).u) == ["Conv_0/kernel"]
  with pytest.raises(ValueError, match="regex"):
    snl.spectral_norm(include="(")


def test_full_variables_and_raw_nested_lists():
  # A whole variables dict (params + batch_stats) and list nodes both work.
  variables = _net_params()
  sn = snl.spectral_norm()
  state = sn.init(variables, jax.random.key(0))
  assert "params/Conv_0/kernel" in state.u and not any("batch_stats" in k for k in state.u)
  tree = [{"kernel": 3.0 * jnp.eye(3)}, {"kernel": 2.0 * jnp.eye(2)}]
  st = sn.init(tree, jax.random.key(1))
  assert sorted(st.u) == ["0/kernel", "1/kernel"]
  out, _ = sn.apply(tree, st)
  np.testing.assert_allclose(np.asarray(out[0]["kernel"]), np.eye(3), atol=1e-6)  # as for 4I above


def test_mismatched_state_and_bad_args():
  sn = snl.spectral_norm()
  state = sn.init({"a": {"kernel": jnp.eye(3)}}, jax.random.key(0))
  with pytest.raises(ValueError, match="sn.init"):
    sn.apply({"b": {"kernel": jnp.eye(3)}}, state)
  with pytest.raises(ValueError, match="re-run init"):
    sn.apply({"a": {"kernel": jnp.ones((3, 4))}}, state)
  with pytest.raises(ValueError, match="n_power_iterations"):
    snl.spectral_norm(n_power_iterations=0)


def test_bf16_params_keep_dtype():
  params = {"kernel": (4.0 * jnp.eye(4)).astype(jnp.bfloat16)}
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  out, state = sn.apply(params, state)
  assert out["kernel"].dtype == jnp.bfloat16 and state.u["kernel"].dtype == jnp.float32
  # The output is rounded to bfloat16 (8 significant bits: half an ulp of 1 is 2^-8 = 3.9e-3), on a
  # float32 W / sigma within 1e-6 of I: 1e-2 bounds it; an unnormalized 4I is off by 3.
  np.testing.assert_allclose(np.asarray(out["kernel"], np.float32), np.eye(4), atol=1e-2)


def test_zero_kernel_is_finite():
  params = {"kernel": jnp.zeros((3, 2))}
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  out, state = sn.apply(params, state)
  assert np.all(np.isfinite(np.asarray(out["kernel"])))
  assert np.all(np.isfinite(np.asarray(state.u["kernel"])))


def test_orbax_roundtrip(tmp_path):
  params = _net_params()["params"]
  sn = snl.spectral_norm()
  state = sn.init(params, jax.random.key(0))
  _, state = sn.apply(params, state)
  mgr = ocp.CheckpointManager(os.path.abspath(tmp_path))
  mgr.save(0, args=ocp.args.StandardSave({"sn": state}))
  mgr.wait_until_finished()
  restored = mgr.restore(0, args=ocp.args.StandardRestore({"sn": state}))["sn"]
  mgr.close()
  assert isinstance(restored, snl.SpectralNormState)
  assert sorted(restored.u) == sorted(state.u)
  for k in state.u:
    np.testing.assert_array_equal(np.asarray(restored.u[k]), np.asarray(state.u[k]))
