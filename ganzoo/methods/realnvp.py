"""The `realnvp` family: Real NVP trained by maximum likelihood (Dinh, Sohl-Dickstein & Bengio 2017,
arXiv:1605.08803; reference: tensorflow/models research/real_nvp real_nvp_multiscale_dataset.py).

One network 'flow' (ganzoo/models/realnvp.py) and one phase `nll` per step, on stream 'real':
  x = (p + u) / 256, u ~ U[0, 1)^D               uniform dequantization of the pixels p (Sec. 4.1)
  loss = mean over the batch of -log p(x) (nats) + l2 * sum over weight-norm scales g and coupling
         scales c of their squares
where log p(x) = log N(z; 0, I) + log |det dz/dx| with z = f(x) through the logit pre-processing and the
flow, in training mode (batch statistics in the couplings' normalization). The reference adds
`l2_coeff * l2_reg` (l2_coeff 5e-5) to the mean cost in nats, l2_reg summing the squares of its weight
norm magnitudes and `rescaling_scale`s; the paper: "L2 regularization on the weight scale parameters
with coefficient 5e-5", Adam with default hyperparameters, lr 1e-3 (the reference's defaults). The
reference also clips the gradient's global norm at 100; not done here (ganzoo's optimizers have no
gradient clipping, and a run of the CPU sizes here never reached it in the logged grad norms).
Metrics: `train/bpd` (bits/dim of the batch, the discrete-data figure below) and `train/loss`.

`nll(state, batch)` is the exact bits/dim of the discrete pixels through the dequantization bound
  bpd = (-log p(x) + D ln 256) / (D ln 2)      (ganzoo.metrics.likelihood.bits_per_dim's rule)
with x dequantized by a fixed key (the same noise for every call: a deterministic evaluation) and the
flow in inference mode (running averages). `sample(state, rng, n)` = f^-1(T eps), eps ~ N(0, I),
T = `config.model.temperature` (1 = the model's own distribution), mapped to [-1, 1].
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import step as step_lib
from ganzoo.models import realnvp as realnvp_models
from ganzoo.state import TrainState

NLL_KEY = 0
EVAL_NOISE = 0xDE0   # folded into PRNGKey(config.seed): the evaluation's dequantization noise


def l2_of_scales(params) -> jax.Array:
  """Sum of squares of the weight-norm scales ('g') and the couplings' tanh scales ('rescale')."""
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = getattr(path[-1], "key", None)
    if name in ("g", "rescale"):
      total = total + jnp.sum(leaf * leaf)
  return total


@methods.register("realnvp")
class RealNVPMethod(methods.Method):
  """Real NVP: network 'flow', one maximum-likelihood phase."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    self.image_shape = tuple(data.image_shape)
    unknown = set(config.nets.keys()) - {"flow"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'realnvp' family trains one network 'flow'")
    if config.loss.get("name", "realnvp") != "realnvp":
      raise ValueError(f"the 'realnvp' family has its own objective: set config.loss.name='realnvp' "
                       f"(got {config.loss.name!r})")
    scales = int(realnvp_models.SIZES.get(config.model.get("size", "cifar10"), {}).get("num_scales", 2))
    scales = int(config.model.get("num_scales", None) or scales)
    side = 2 ** (scales - 1)
    if self.image_shape[0] % side or self.image_shape[1] % side:
      raise ValueError(f"images {self.image_shape[:2]} do not halve {scales - 1} times: set data.image_size to a "
                       f"multiple of {side} or config.model.num_scales lower")
    augment.refuse_instance_noise(config, "realnvp")   # no discriminator to perturb the inputs of
    self.l2 = float(config.loss.get("l2", 5e-5))
    self.temperature = float(config.model.get("temperature", 1.0))
    self.eval_key = jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), EVAL_NOISE)
    self.flow = realnvp_models.build(config.model)
    self.num_dims = int(np.prod(self.image_shape))
    self.nets = {"flow": nets_lib.build_spec(self.flow, config.nets.flow, int(config.train.num_steps))}
    self.phases = (step_lib.Phase("nll", ("flow",), self._loss, self._prepare, stream="real", key=NLL_KEY),)

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_flow, rng_sn = jax.random.split(rng, 3)
    variables = self.flow.init(rng_flow, jnp.full((2, *self.image_shape), 0.5, jnp.float32), train=False)
    nets = {"flow": nets_lib.init_net(self.nets["flow"], variables, rng_sn)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  # -- the phase ------------------------------------------------------------------------------
  def _prepare(self, ctx: step_lib.Context, data, key):
    del ctx
    return {"x": realnvp_models.dequantize(data["image"], key)}, {}

  def _loss(self, ctx: step_lib.Context, inp):
    # In the params' dtype: a float64 state (the 8 == 1 device test) must not take the logit and its
    # log-det in float32, whose sums round differently on different shardings (seen: 1e-8 relative).
    x = inp["x"].astype(jax.tree.leaves(ctx.params("flow"))[0].dtype)
    z, logdet = ctx.apply("flow", x, train=True)
    nll = -(realnvp_models.standard_normal_logpdf(z) + logdet)
    loss = jnp.mean(nll) + self.l2 * l2_of_scales(ctx.params("flow"))
    bpd = jnp.mean(realnvp_models.bits_per_dim(nll, self.num_dims))
    return loss, {"loss": loss, "bpd": bpd}

  # -- likelihood and samples -------------------------------------------------------------------
  def _variables(self, state: TrainState):
    return nets_lib.inference_variables(self.nets["flow"], state.nets["flow"], use_ema=True)

  def log_prob(self, state: TrainState, x: jax.Array) -> jax.Array:
    """log p(x) [N] in nats for x in [0, 1]^D, inference mode."""
    params, batch_stats = self._variables(state)
    x = x.astype(jax.tree.leaves(params)[0].dtype)
    return self.flow.apply(nets_lib.variables(params, batch_stats), x, method=realnvp_models.RealNVP.log_prob)

  def nll(self, state: TrainState, batch) -> jax.Array:
    """Mean bits/dim of batch['image'] (in [-1, 1] from uint8 pixels), dequantized with the fixed key."""
    x = realnvp_models.dequantize(batch["image"], self.eval_key)
    return jnp.mean(realnvp_models.bits_per_dim(-self.log_prob(state, x), self.num_dims))

  def sample(self, state, rng, n, condition=None):
    del condition
    return self.generate(state, jax.random.normal(rng, (n, *self.image_shape), jnp.float32))

  def generate(self, state: TrainState, eps: jax.Array) -> jax.Array:
    """f^-1(T eps) in [-1, 1] (clipped: the logit's inverse covers (-alpha/(1-2alpha), ...))."""
    params, batch_stats = self._variables(state)
    x = self.flow.apply(nets_lib.variables(params, batch_stats), self.temperature * eps,
                        method=realnvp_models.RealNVP.inverse)
    return jnp.clip(2.0 * x - 1.0, -1.0, 1.0)

  def fixed_inputs(self, seed: int, n: int):
    return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), (n, *self.image_shape), jnp.float32)

  def sample_fixed(self, state, inputs, n):
    return self.generate(state, inputs)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()   # configs/realnvp.py:tiny, built here (configs/ is not a package)
    config_lib.tiny(c)
    c.method = "realnvp"
    c.data.batch_size = 16
    c.model = ml_collections.ConfigDict(dict(name="realnvp", size="tiny", norm="batch", weight_norm=True,
                                             logit_alpha=0.05, temperature=1.0))
    c.loss = ml_collections.ConfigDict(dict(name="realnvp", l2=5e-5))
    # Adam's eps 1e-4 here (1e-8 in the paper's setting): the last convs start at g = 0 (identity), so at
    # step 2 some gradients are ~1e-7 (the input BN biases), within 1e5 of the float64 rounding of the large
    # cancelling sums they come from (~1e-12); with eps 1e-8 Adam divides that noise by |g| ~ eps and the
    # 8 == 1 device comparison sees ~5e-9. With eps 1e-4 the noise moves a param by < lr 1e-12 / 1e-4 = 1e-11.
    c.nets = ml_collections.ConfigDict({"flow": nets_lib.net_config(lr=1e-3, b1=0.9, b2=0.999, eps=1e-4)})
    return c, methods.DataSpec((16, 16, 1), 10)
