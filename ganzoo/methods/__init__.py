"""Families of generative models as implementations of one training protocol, keyed by `config.method`.

`train.py`, `evaluate.py`, `sample.py` and `dynamics.py` use only this interface, never a family's
own names (no generator/discriminator fields), so a new family runs through all of them:

    method = methods.build(config, DataSpec(image_shape=(32, 32, 3), num_classes=10))
    state = method.init(jax.random.PRNGKey(config.seed))   # a ganzoo.state.TrainState
    plan = method.plan(step)                                # host side; one compiled step per plan
    streams = method.streams(plan)                          # what the data pipeline delivers
    images = method.sample(state, rng, n, condition=None)   # inference mode, EMA networks

Adding a family touches:
  1. a methods file `ganzoo/methods/<family>.py`: a `Method` subclass registered with
     `@methods.register('<family>')` (its networks as `nets.NetSpec`s, its phases as
     `step.Phase`s: losses, repeats, intervals, streams; its sampler), imported at the bottom of
     this file;
  2. a config `configs/<name>.py` setting `config.method = '<family>'` and its networks'
     sections `config.nets.<name>`;
  3. a model file under `ganzoo/models/` if the architecture is new.
Never `train.py`. The parametrized tests (8 devices == 1 device, resumed run == unbroken run) pick
every registered family up through `Method.test_config` with no test edits.
"""

import abc
from typing import Any, Callable, NamedTuple

import jax
import ml_collections

from ganzoo import augment
from ganzoo import nets as nets_lib
from ganzoo import precision
from ganzoo import step as step_lib
from ganzoo.state import TrainState

PyTree = Any


class DataSpec(NamedTuple):
  """What a family needs to know of its data to build its networks."""
  image_shape: tuple[int, ...]
  num_classes: int = 0          # 0 = unlabelled (or labels unused)


class GeneratorSpec(NamedTuple):
  """What `ganzoo.export` writes of a family's generator and what rebuilds it without a run.

  The exported network is called as `module.apply(variables, z, y, train=False)` (the models'
  convention, `ganzoo.models`) with z [N, latent_dim] ~ N(0, I) and int32 labels y [N] (None when
  num_classes is 0), and returns NHWC images in `value_range`.
  """
  net: str                      # the key in `Method.nets` of the generating network
  config: dict[str, Any]        # JSON-able config sections that `Method.build_generator` needs
  latent_dim: int
  num_classes: int
  image_shape: tuple[int, ...]
  value_range: tuple[float, float] = (-1.0, 1.0)


class TranslationSpec(NamedTuple):
  """What `python -m ganzoo.translate` needs of an image-to-image family (pix2pix, CycleGAN, StarGAN).

  `Method.translate(state, x, target, rng)` maps x [N, *image_shape] in [-1, 1] (the size the
  translator was trained at; the CLI resizes/crops users' images to it) to images of the same
  shape in [-1, 1]. `targets` are the names `--target` accepts (CycleGAN: the output domain 'A' or
  'B'; StarGAN: its domains or attributes); empty for a family with one mapping (pix2pix), and
  `default_target` is what None means.
  """
  image_shape: tuple[int, ...]
  targets: tuple[str, ...] = ()
  default_target: str | None = None


class StreamSpec(NamedTuple):
  """One data stream a plan reads: `count` global batches of `batch_size` per step from the data
  config section `source` (a top-level config key, 'data' by default)."""
  batch_size: int
  count: int = 1
  source: str = "data"


class Method(abc.ABC):
  """Base class of a family. Subclasses set `nets` and `phases` and implement `init`, `sample` and
  `test_config`; the defaults below cover families whose plan is their phases at the due intervals."""

  name: str = ""
  # Whether the family applies DiffAugment / ADA (`config.augment.diffaugment`, `.ada`) to every image
  # its D sees; `build` refuses them for the others with a one-line error (ganzoo.augment.refuse_augment).
  augments: bool = False
  nets: dict[str, nets_lib.NetSpec]
  phases: tuple[step_lib.Phase, ...]
  # float16 runs: dynamic loss scaling, set by `build` (`ganzoo.precision.apply_policy`); None otherwise.
  loss_scale: precision.LossScale | None = None

  def __init__(self, config: ml_collections.ConfigDict, data: DataSpec):
    self.config = config
    self.data = data
    self.grad_accum = int(config.train.get("grad_accum", 1))
    self.batch_size = int(config.data.batch_size)

  # -- training --------------------------------------------------------------------------------
  @abc.abstractmethod
  def init(self, rng: jax.Array) -> TrainState:
    """The initial TrainState (jittable: the loop jits it with replicated out_shardings)."""

  def plan(self, step: int) -> step_lib.StepPlan:
    """The plan of the step that follows `step` completed steps (host side, cheap, cached by value)."""
    return step_lib.plan_for_step(self.phases, int(step))

  def streams(self, plan: step_lib.StepPlan) -> dict[str, StreamSpec]:
    """{stream: StreamSpec} the pipeline must deliver for `plan`."""
    return {name: StreamSpec(self.batch_size, n) for name, n in step_lib.stream_counts(plan).items()}

  # -- inference -------------------------------------------------------------------------------
  @abc.abstractmethod
  def sample(self, state: TrainState, rng: jax.Array, n: int, condition: Any = None) -> jax.Array:
    """n images NHWC in [-1, 1] in inference mode (jittable; `condition`: e.g. class labels [n])."""

  def fixed_inputs(self, seed: int, n: int) -> PyTree:
    """The fixed inputs of the sample grids (latents and classes, or validation images)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3)

  def sample_fixed(self, state: TrainState, inputs: PyTree, n: int) -> jax.Array:
    """Images of the sample grids from `fixed_inputs` (jittable)."""
    return self.sample(state, inputs, n)

  def nll(self, state: TrainState, batch: PyTree) -> jax.Array | None:
    """Negative log-likelihood in bits per dimension on a batch, for likelihood models; else None."""
    return None

  # -- image-to-image translation (ganzoo.translate) ------------------------------------------
  def translation_spec(self) -> TranslationSpec | None:
    """The family's image-to-image mapping; None (the default) for families that generate from noise."""
    return None

  def translate(self, state: TrainState, x: jax.Array, target: str | None = None,
                rng: jax.Array | None = None) -> jax.Array:
    """x [N, *translation_spec().image_shape] in [-1, 1] -> translated images of that shape in [-1, 1],
    in inference mode (`rng` for what stays random at test time, e.g. pix2pix's dropout)."""
    raise ValueError(f"family {self.name!r} does not translate images; train pix2pix, cyclegan or stargan")

  # -- export (ganzoo.export) -----------------------------------------------------------------
  def generator_spec(self) -> GeneratorSpec | None:
    """The family's latent-variable generator, for `python -m ganzoo.export`; None (the default)
    when the family has none (an image-to-image or likelihood family exports nothing yet)."""
    return None

  @classmethod
  def build_generator(cls, config: dict[str, Any], data: DataSpec) -> Any:
    """The generator module from `GeneratorSpec.config` alone (no data set, no workdir)."""
    raise ValueError(f"family {cls.name!r} has no generator to rebuild from an export")

  # -- reporting -------------------------------------------------------------------------------
  def param_counts(self, state: TrainState) -> dict[str, int]:
    from ganzoo.state import param_count  # pylint: disable=g-import-not-at-top
    # In the family's own order (self.nets): a state's dict comes back from jit and orbax sorted.
    return {f"params/{n}": param_count(state.nets[n].params) for n in self.nets}

  @classmethod
  @abc.abstractmethod
  def test_config(cls) -> tuple[ml_collections.ConfigDict, DataSpec]:
    """A tiny config and data spec on which the family runs in seconds (parametrized tests)."""


def random_batch(method: Method, plan: step_lib.StepPlan, rng: Any, num_classes: int | None = None) -> dict[str, Any]:
  """Random uint8 pixels (and int32 labels when the data have classes) in the layout the data pipeline
  delivers for `plan`: {stream: {'image': [count, batch, *image_shape], 'label': [count, batch]}}.
  For tests and benchmarks that run a family's real step without a data set; `rng` is a
  np.random.Generator or a seed, `num_classes` defaults to `method.data.num_classes`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
  num_classes = method.data.num_classes if num_classes is None else num_classes
  out = {}
  for name, spec in method.streams(plan).items():
    out[name] = {"image": rng.integers(0, 256, (spec.count, spec.batch_size, *method.data.image_shape), dtype=np.uint8)}
    if num_classes:
      out[name]["label"] = rng.integers(0, num_classes, (spec.count, spec.batch_size)).astype(np.int32)
  return out


_REGISTRY: dict[str, Callable[..., Method]] = {}


def register(name: str) -> Callable[[type], type]:
  """Class decorator registering a `Method` subclass under `config.method = name`."""

  def wrap(cls):
    if name in _REGISTRY:
      raise ValueError(f"family {name!r} is registered twice")
    cls.name = name
    _REGISTRY[name] = cls
    return cls

  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> type:
  if name not in _REGISTRY:
    raise ValueError(f"unknown config.method {name!r}; choose from {names()}")
  return _REGISTRY[name]


def build(config: ml_collections.ConfigDict, data: DataSpec) -> Method:
  """The family `config.method` (default 'gan') built for data described by `data`."""
  cls = get(config.get("method", "gan"))
  if not cls.augments:
    augment.refuse_augment(config, cls.name)
  method = cls(config, data)
  precision.apply_policy(method, config)   # config.model.dtype: the compute dtype of every network
  return method


# Families register themselves on import (one line each).
from ganzoo.methods import gan  # noqa: E402,F401
from ganzoo.methods import began  # noqa: E402,F401
from ganzoo.methods import lapgan  # noqa: E402,F401
from ganzoo.methods import cogan  # noqa: E402,F401
from ganzoo.methods import infogan  # noqa: E402,F401
from ganzoo.methods import stargan  # noqa: E402,F401
from ganzoo.methods import pix2pix  # noqa: E402,F401
from ganzoo.methods import cyclegan  # noqa: E402,F401
from ganzoo.methods import stylegan2  # noqa: E402,F401
from ganzoo.methods import stylegan  # noqa: E402,F401
from ganzoo.methods import vae  # noqa: E402,F401
from ganzoo.methods import realnvp  # noqa: E402,F401
from ganzoo.methods import progan  # noqa: E402,F401
