"""A tiny image-to-image family for the `ganzoo.translate` tests, registered as 'test_translate'.

A module of its own (not a test file) so that the CLI's subprocess test can import it before it runs
`python -m ganzoo.translate`: a run's family must be registered in the process that restores it.

`Invert`: one 3x3 conv + tanh fitted to map x to -x (a learned 'invert colours'), with the
translation interface of a two-domain family: targets ('A', 'B'), default 'B' = the network's
output, 'A' = its negation; the test-time rng adds noise of std 0.05, so the keys the CLI passes
show in the outputs (as pix2pix's test-time dropout would).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.state import TrainState

NAME = "test_translate"


class _Conv(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, x, train=True):
    return jnp.tanh(nn.Conv(self.channels, (3, 3))(x))


class Invert(methods.Method):
  """g: one conv trained on stream 'real' with loss mean((g(x) + x)^2)."""

  def __init__(self, config, data):
    super().__init__(config, data)
    self.shape = tuple(data.image_shape)
    self.nets = {"g": nets_lib.build_spec(_Conv(self.shape[-1]), config.nets.g, int(config.train.num_steps), 1)}
    self.phases = (step_lib.Phase("g", ("g",), self._loss, self._prepare, stream="real"),)

  def init(self, rng):
    r_g, r_sn = jax.random.split(rng)
    variables = self.nets["g"].module.init(r_g, jnp.zeros((1, *self.shape)))
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng,
                      nets={"g": nets_lib.init_net(self.nets["g"], variables, r_sn)}, extras={})

  def _prepare(self, ctx, data, key):
    return {"x": data["image"]}, {}

  def _loss(self, ctx, inp):
    loss = jnp.mean((ctx.apply("g", inp["x"]) + inp["x"]) ** 2)
    return loss, {"g_loss": loss}

  def translation_spec(self):
    return methods.TranslationSpec(self.shape, ("A", "B"), "B")

  def translate(self, state, x, target=None, rng=None):
    if target not in (None, "A", "B"):
      raise ValueError(f"target {target!r}: one of 'A', 'B'")
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"])
    y = nets_lib.forward(spec, params, batch_stats, x, train=False)[0]
    if rng is not None:
      y = jnp.clip(y + 0.05 * jax.random.normal(rng, y.shape, y.dtype), -1.0, 1.0)
    return -y if target == "A" else y

  def sample(self, state, rng, n, condition=None):
    return self.translate(state, jax.random.uniform(rng, (n, *self.shape), minval=-1.0, maxval=1.0))

  @classmethod
  def test_config(cls):
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.method = NAME
    c.data.batch_size = 8
    c.eval.every = 0
    c.nets = ml_collections.ConfigDict({"g": nets_lib.net_config(lr=1e-2)})
    return c, methods.DataSpec((16, 16, 3), 0)


if NAME not in methods.names():
  methods.register(NAME)(Invert)


class NoTranslation(Invert):
  """The same networks, but a family that generates from noise (no translation spec)."""

  def translation_spec(self):
    return None


if NAME + "_none" not in methods.names():
  methods.register(NAME + "_none")(NoTranslation)
