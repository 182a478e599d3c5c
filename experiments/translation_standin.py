"""A stand-in ganzoo side for experiments/benchmark.py's pix2pix / CycleGAN rows, used only when the
`pix2pix` / `cyclegan` family is not registered in `ganzoo.methods` (the benchmark then says so on
its row: `"ganzoo_side": "stand-in"`).

It is the PyTorch twins' update (experiments/torch_translation.py) written in JAX with ganzoo's
networks (`ganzoo.models.translation`) and optax's Adam 2e-4 (0.5, 0.999), jitted as one step:
- pix2pix: fake_B = G(A) once (jax.vjp keeps its backward); D step on the vanilla (BCE) loss of the
  detached fake pair and the real pair; then the G step through the updated D (BatchNorm in train
  mode, as the reference's backward_G runs it) on BCE + 100 L1, G's gradient from the saved vjp.
- CycleGAN: one G step for both generators on LSGAN + 10 cycle + 0.5 * 10 identity with the Ds
  frozen, then one D step for both discriminators on the same step's fakes (no image pool, as the
  twin with pool_size=0; the pool is a copy per image and adds no FLOPs).
Nothing here is part of ganzoo.
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax

from ganzoo.models import translation

Array = jax.Array


def _bce(logits: Array, target: float) -> Array:
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)))


def _ls(pred: Array, target: float) -> Array:
  return jnp.mean(jnp.square(pred - target))


def _adam() -> optax.GradientTransformation:
  return optax.adam(2e-4, b1=0.5, b2=0.999)


def pix2pix(ngf: int = 64, ndf: int = 64, size: int = 256, lambda_l1: float = 100.0):
  """(state, step, g_count, d_count): step(state, a, b, key) -> (state, (d_loss, g_loss)), jitted."""
  G = translation.define_G("unet_256" if size == 256 else "unet_128", 3, ngf, "batch", use_dropout=True)
  D = translation.define_D("basic", ndf, norm="batch")
  x = jnp.zeros((1, size, size, 3))
  g_vars = jax.jit(G.init)(jax.random.key(0), x)
  d_vars = jax.jit(D.init)(jax.random.key(1), jnp.concatenate([x, x], -1))
  tx = _adam()
  state = {"g": g_vars["params"], "gs": g_vars["batch_stats"], "d": d_vars["params"], "ds": d_vars["batch_stats"],
           "g_opt": tx.init(g_vars["params"]), "d_opt": tx.init(d_vars["params"])}

  def d_apply(params, stats, x):
    out, new = D.apply({"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
    return out, new["batch_stats"]

  def step(state, a, b, key):
    def g_fwd(params):
      out, new = G.apply({"params": params, "batch_stats": state["gs"]}, a, train=True, rngs={"dropout": key},
                         mutable=["batch_stats"])
      return out, new["batch_stats"]
    fake, g_vjp, gs = jax.vjp(g_fwd, state["g"], has_aux=True)

    def d_loss(params):
      pred_fake, ds = d_apply(params, state["ds"], jnp.concatenate([a, jax.lax.stop_gradient(fake)], -1))
      pred_real, ds = d_apply(params, ds, jnp.concatenate([a, b], -1))
      return 0.5 * (_bce(pred_fake, 0.0) + _bce(pred_real, 1.0)), ds
    (dl, ds), d_grads = jax.value_and_grad(d_loss, has_aux=True)(state["d"])
    d_updates, d_opt = tx.update(d_grads, state["d_opt"], state["d"])
    d_params = optax.apply_updates(state["d"], d_updates)

    def g_loss(fake):
      pred, ds2 = d_apply(d_params, ds, jnp.concatenate([a, fake], -1))
      return _bce(pred, 1.0) + lambda_l1 * jnp.mean(jnp.abs(fake - b)), ds2
    (gl, ds), d_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    (g_grads,) = g_vjp(d_fake)
    g_updates, g_opt = tx.update(g_grads, state["g_opt"], state["g"])
    new = {"g": optax.apply_updates(state["g"], g_updates), "gs": gs, "d": d_params, "ds": ds,
           "g_opt": g_opt, "d_opt": d_opt}
    return new, (dl, gl)

  counts = (translation.param_count(state["g"]), translation.param_count(state["d"]))
  return state, jax.jit(step, donate_argnums=0), counts


def cyclegan(ngf: int = 64, ndf: int = 64, size: int = 256, lambda_cycle: float = 10.0, lambda_idt: float = 0.5):
  """(state, step, (g_count, d_count)) for two resnet_9blocks and two 70x70 Ds (instance norm)."""
  G = translation.define_G("resnet_9blocks" if size >= 256 else "resnet_6blocks", 3, ngf, "instance")
  D = translation.define_D("basic", ndf, norm="instance")
  x = jnp.zeros((1, size, size, 3))
  keys = jax.random.split(jax.random.key(0), 4)
  g_init, d_init = jax.jit(G.init), jax.jit(D.init)
  gs = {"a": g_init(keys[0], x)["params"], "b": g_init(keys[1], x)["params"]}
  ds = {"a": d_init(keys[2], x)["params"], "b": d_init(keys[3], x)["params"]}
  tx = _adam()
  state = {"g": gs, "d": ds, "g_opt": tx.init(gs), "d_opt": tx.init(ds)}
  g = lambda p, x: G.apply({"params": p}, x, train=True)   # noqa: E731
  d = lambda p, x: D.apply({"params": p}, x, train=True)   # noqa: E731

  def step(state, a, b, key):
    del key   # no dropout in CycleGAN's generators, no pool

    def g_loss(gp):
      fake_b = g(gp["a"], a)
      fake_a = g(gp["b"], b)
      rec_a, rec_b = g(gp["b"], fake_b), g(gp["a"], fake_a)
      idt = lambda_cycle * lambda_idt * (jnp.mean(jnp.abs(g(gp["a"], b) - b)) + jnp.mean(jnp.abs(g(gp["b"], a) - a)))
      gan = _ls(d(state["d"]["a"], fake_b), 1.0) + _ls(d(state["d"]["b"], fake_a), 1.0)
      cyc = lambda_cycle * (jnp.mean(jnp.abs(rec_a - a)) + jnp.mean(jnp.abs(rec_b - b)))
      return gan + cyc + idt, (fake_a, fake_b)
    (gl, (fake_a, fake_b)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(state["g"])
    g_updates, g_opt = tx.update(g_grads, state["g_opt"], state["g"])

    def d_loss(dp):
      l_a = 0.5 * (_ls(d(dp["a"], b), 1.0) + _ls(d(dp["a"], jax.lax.stop_gradient(fake_b)), 0.0))
      l_b = 0.5 * (_ls(d(dp["b"], a), 1.0) + _ls(d(dp["b"], jax.lax.stop_gradient(fake_a)), 0.0))
      return l_a + l_b
    dl, d_grads = jax.value_and_grad(d_loss)(state["d"])
    d_updates, d_opt = tx.update(d_grads, state["d_opt"], state["d"])
    new = {"g": optax.apply_updates(state["g"], g_updates), "d": optax.apply_updates(state["d"], d_updates),
           "g_opt": g_opt, "d_opt": d_opt}
    return new, (dl, gl)

  counts = (translation.param_count(state["g"]), translation.param_count(state["d"]))
  return state, jax.jit(step, donate_argnums=0), counts


def build(name: str, tiny: bool = False) -> tuple[Any, Any, tuple[int, int]]:
  width = 4 if tiny else 64
  if name == "pix2pix":
    return pix2pix(width, width)
  if name == "cyclegan":
    return cyclegan(width, width)
  raise ValueError(f"unknown translation model {name!r}")
