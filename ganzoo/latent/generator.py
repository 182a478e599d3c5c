"""A trained generator seen through its latent spaces: z for every latent-variable GAN, and W / W+ for
the style-based family (the inversion and direction tools of `ganzoo.latent` take only this).

  gen = from_run('workdirs/sg2_fm')                       # config.json + newest checkpoint
  gen = from_method(method, state)                        # a family and a TrainState in memory
  images = gen.images_z(gen.params, z)                    # [N, z_dim] -> NHWC in [-1, 1]
  w = gen.mapping(gen.params, z); images = gen.images_ws(gen.params, ws, noise)   # style family

`LatentGenerator` is a pytree (the params and w_avg are leaves; the functions are static), so a jitted
loop takes it as an argument instead of baking the weights into the program as constants.
"""

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp

from ganzoo import nets as nets_lib

PyTree = Any


@flax.struct.dataclass
class LatentGenerator:
  """A generator's latent spaces. `has_w` says whether W / W+ exist (the style-based family).

  images_z(params, z) -> NHWC images in [-1, 1] (for the style family: mapping, then synthesis with
  zero noise). mapping(params, z) -> w [N, w_dim]; images_ws(params, ws [N, num_ws, w_dim], noise)
  -> images, `noise` a list of per-layer buffers [N, H_l, W_l, 1] (shapes `noise_shapes`) or None
  (no noise). `first_layer(params)` -> the matrix A [out, in] of the first linear map of the latent
  (SeFa's A, arXiv:2007.06600 Eq. 5): the style affines of all layers stacked for the style family
  (applied to w), the first dense layer for the z family.
  """
  params: PyTree
  w_avg: jax.Array | None
  z_dim: int = flax.struct.field(pytree_node=False)
  image_shape: tuple[int, ...] = flax.struct.field(pytree_node=False)
  images_z: Callable[..., jax.Array] = flax.struct.field(pytree_node=False)
  first_layer: Callable[[PyTree], jax.Array] | None = flax.struct.field(pytree_node=False, default=None)
  w_dim: int = flax.struct.field(pytree_node=False, default=0)
  num_ws: int = flax.struct.field(pytree_node=False, default=0)
  mapping: Callable[..., jax.Array] | None = flax.struct.field(pytree_node=False, default=None)
  images_ws: Callable[..., jax.Array] | None = flax.struct.field(pytree_node=False, default=None)
  noise_shapes: tuple[tuple[int, ...], ...] = flax.struct.field(pytree_node=False, default=())
  name: str = flax.struct.field(pytree_node=False, default="")

  @property
  def has_w(self) -> bool:
    return self.mapping is not None


def _dense_kernels(params: PyTree) -> list[tuple[str, jax.Array]]:
  """(path, kernel) of every 2-D 'kernel' leaf of a param tree (dense layers), in tree order."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return [(jax.tree_util.keystr(p), v) for p, v in leaves
          if getattr(v, "ndim", 0) == 2 and jax.tree_util.keystr(p).endswith("['kernel']")]


# The families whose generator has a mapping network and a synthesis network taking one w per layer
# (`mapping(z)`, `synthesis(ws, noise)`, `num_ws`, `noise_shapes`, extras['w_avg']): W and W+ exist.
STYLE_FAMILIES = ("stylegan2", "stylegan")
# The name of a synthesis layer's style affine (w -> styles): StyleGAN2's modulated convolutions
# ('affine', arXiv:1912.04958 Fig. 2) and StyleGAN's AdaIN epilogues ('style', [y_s, y_b], 2C outputs).
_STYLE_AFFINES = ("affine", "style")


def style_affines(params: PyTree, torgb: bool = False) -> jax.Array:
  """The style affines of the synthesis layers (and of the toRGB layers with `torgb`) stacked,
  [sum of their outputs, w_dim]: the matrix A whose A^T A SeFa decomposes for StyleGAN
  (arXiv:2007.06600 Sec. 3.2; its reference, genforce/sefa utils.py, stacks the style weights of
  the chosen synthesis layers, all of them by default, without the toRGB outputs; for StyleGAN
  v1 those are the epilogues' style_mod dense layers, scale and bias rows together)."""
  synth = params["synthesis"]
  mats = [synth[k][a]["kernel"].T for k in sorted(synth) if isinstance(synth[k], dict)
          for a in _STYLE_AFFINES if a in synth[k] and (torgb or not k.endswith("torgb"))]
  return jnp.concatenate(mats, axis=0)


def from_method(method: Any, state: Any, use_ema: bool = True, label: int | None = None) -> LatentGenerator:
  """The latent spaces of a family's generator in `state` (inference mode, EMA weights by default).

  The style-based families (STYLE_FAMILIES: 'stylegan2', 'stylegan') get z, W and W+; any other
  family with `latent_dim` and `generate(state, z, y)` (the 'gan' family: DCGAN, SNGAN, BigGAN, ...)
  gets z. A class-conditional
  model is inverted within one class, `label` (default 0). Other families: a one-line ValueError.
  """
  shape = tuple(getattr(method, "image_shape", None) or method.data.image_shape)
  if getattr(method, "name", "") in STYLE_FAMILIES:
    spec = method.nets["g"]
    params, bs = nets_lib.inference_variables(spec, state.nets["g"], use_ema)

    def mapping(p, z):
      return nets_lib.forward(spec, p, bs, z, train=False, method="mapping")[0]

    def images_ws(p, ws, noise=None):
      img, _ = nets_lib.forward(spec, p, bs, ws, list(noise) if noise is not None else None, train=False,
                                method="synthesis")
      return jnp.clip(img, -1.0, 1.0)

    def images_z(p, z):
      w = mapping(p, z)
      return images_ws(p, jnp.broadcast_to(w[:, None], (w.shape[0], method.num_ws, w.shape[-1])))

    # One buffer per noise input in the order the synthesis network consumes them (the model's own list).
    shapes = method.generator.noise_shapes
    return LatentGenerator(params=params, w_avg=jnp.asarray(state.extras["w_avg"], jnp.float32),
                           z_dim=int(method.z_dim), image_shape=shape, images_z=images_z,
                           first_layer=style_affines, w_dim=int(method.w_dim), num_ws=int(method.num_ws),
                           mapping=mapping, images_ws=images_ws, noise_shapes=tuple(shapes), name=method.name)
  if not hasattr(method, "generate") or not hasattr(method, "latent_dim"):
    raise ValueError(f"family {getattr(method, 'name', '?')!r} has no latent-variable generator to invert "
                     "(config.method='gan', 'stylegan' or 'stylegan2')")
  num_classes = int(getattr(method, "num_classes", 0) or 0)
  if label is not None and not 0 <= int(label) < max(num_classes, 1):
    raise ValueError(f"--label={label} out of range: the model has {num_classes} classes")
  spec = method.nets["g"]
  params, bs = nets_lib.inference_variables(spec, state.nets["g"], use_ema)
  z_dim = int(method.latent_dim)

  def images_z(p, z):
    y = jnp.full((z.shape[0],), int(label or 0), jnp.int32) if num_classes else None
    return nets_lib.forward(spec, p, bs, z, y, train=False)[0]

  def first_layer(p):
    kernels = [v for _, v in _dense_kernels(p) if v.shape[0] == z_dim]
    if not kernels:
      raise ValueError(f"no dense layer takes the {z_dim}-d latent in this generator; SeFa needs one "
                       "(use --method=ganspace)")
    return kernels[0].T

  return LatentGenerator(params=params, w_avg=None, z_dim=z_dim, image_shape=shape, images_z=images_z,
                         first_layer=first_layer, name=getattr(method, "name", ""))


def from_run(workdir: str, use_ema: bool = True, label: int | None = None):
  """(LatentGenerator, method, step) of the newest checkpoint of a trained run (`ganzoo.runs`, as
  `python -m ganzoo.sample` loads it)."""
  from ganzoo import paths  # pylint: disable=g-import-not-at-top
  from ganzoo import runs  # pylint: disable=g-import-not-at-top
  workdir = paths.resolve(workdir)
  if not paths.is_url(workdir) and not paths.exists(workdir):
    raise ValueError(f"--workdir={workdir} does not exist: pass the folder of a trained run")
  config = runs.load_run_config(workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, workdir)
  return from_method(method, state, use_ema, label), method, step


def w_stats(gen: LatentGenerator, rng: jax.Array, n: int = 10_000) -> tuple[jax.Array, jax.Array]:
  """(w mean [w_dim], w_std scalar) of n mapped z ~ N(0, I): the projector's w_avg and
  w_std = sqrt(sum ||w - w_avg||^2 / n) (stylegan2-ada-pytorch projector.py). The mean of the
  samples is used rather than the run's tracked w_avg, which lags the last steps' mapping."""
  w = jax.jit(gen.mapping)(gen.params, jax.random.normal(rng, (n, gen.z_dim), jnp.float32))
  mean = jnp.mean(w, axis=0)
  return mean, jnp.sqrt(jnp.sum(jnp.square(w - mean[None])) / n)
