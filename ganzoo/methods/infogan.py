"""The `infogan` family (Chen et al. 2016, arXiv:1606.03657): a GAN whose generator input holds
structured codes beside the noise, and a head Q on D's body that recovers them
(`config.method = 'infogan'`; reference: openai/InfoGAN infogan/algos/infogan_trainer.py with
launchers/run_mnist_exp.py).

Latents (the MNIST launcher's `latent_spec`, concatenated in this order into G's input):
  z       `model.z_dim` (62) dims, U(-1, 1) (the launcher's `Uniform(62)`; `model.z_prior='normal'`
          draws N(0, 1) instead), not regularized;
  c_cat   one-hot of c ~ Cat(`model.num_categories` = 10), uniform;
  c_cont  `model.num_continuous` (2) codes, U(-1, 1).

Mutual-information lower bound (paper Sec. 5, Eq. 5): L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)}[log Q(c | x)]
+ H(c) <= I(c; G(z, c)). Its c-dependent part is trained, with the sign that maximizes it:

  info = lambda_cat * CE(c_cat, Q_cat(x)) + lambda_cont * NLL_Gaussian(c_cont; mu(x), sigma(x)),

  CE = -mean_n log softmax(Q_cat(x_n))[c_n],
  NLL = mean_n sum_j [ log(2 pi) / 2 + log sigma_nj + (c_nj - mu_nj)^2 / (2 sigma_nj^2) ],

sigma = 1 in the launcher (`Uniform(1, fix_std=True)`: Q's continuous head is a factored Gaussian
with fixed unit std; `model.learn_std` learns it). The reference subtracts lambda * (H(c) - CE)
from both losses; H(c) does not depend on any parameter, so the gradients are the same.

Phases per step (the reference's trainer runs one D update then one G update, each on fresh z):
  d   trains D and Q (the reference's `d_vars` hold D's body, D's output and Q's layers; one Adam,
      lr `nets.d` = 2e-4, beta1 0.5; Q's own section `nets.q` carries the same values):
      the non-saturating D loss on a real batch and G's fakes, plus `info` on those fakes.
  g   trains G (lr 1e-3, beta1 0.5): -log D(G(z, c)) + `info` on fresh latents.
lambda_cat = lambda_cont = 1 (`loss.info_weight`, `loss.info_cont_weight`): the launcher's
info_reg_coeff = 1.0 multiplies both the discrete and the continuous term.

D sees the real and the fake batch in two calls (BatchNorm statistics per batch, as the reference's
two `discriminate` calls); Q runs on the fakes' features only (the reference's Q on the real batch
feeds no loss). D and Q are in training mode (batch statistics) in both phases, as in the
reference's single `Phase.train` graph; their running statistics advance in D updates only.

Sample grids: `fixed_inputs` gives one row per categorical value and columns sweeping the first
continuous code from -1 to 1 (the other codes at 0, one z for the whole sheet, so rows differ
only in c_cat and columns only in the swept code); `code_sheet_inputs` does this for any code.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import objectives
from ganzoo import step as step_lib
from ganzoo.models import infogan as infogan_models
from ganzoo.state import TrainState

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# The mutual-information terms (pure functions of Q's outputs).

def categorical_nll(logits: jax.Array, codes: jax.Array) -> jax.Array:
  """-mean_n log softmax(logits_n)[codes_n]: the cross-entropy of the categorical code under Q."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, codes).mean()


def gaussian_nll(codes: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """mean_n sum_j [log(2 pi)/2 + log sigma + (c - mu)^2 / (2 sigma^2)]: -log Q(c_cont | x) under a
  factored Gaussian (the reference's `Gaussian.logli`, without its 1e-8 on sigma)."""
  z = (codes - mean) * jnp.exp(-log_std)
  return jnp.sum(0.5 * LOG_2PI + log_std + 0.5 * z * z, axis=-1).mean()


def info_terms(q_out: dict[str, jax.Array], cat: jax.Array, cont: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(categorical NLL, continuous NLL) of the codes (cat [N] int, cont [N, M]) under Q's outputs."""
  ce = categorical_nll(q_out["cat_logits"], cat)
  nll = gaussian_nll(cont, q_out["cont_mean"], q_out["cont_log_std"]) if cont.shape[-1] else jnp.zeros((), ce.dtype)
  return ce, nll


@methods.register("infogan")
class InfoGAN(methods.Method):
  """InfoGAN: networks g, d (body + GAN output) and q (the code head on d's features)."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    m = config.model
    self.image_shape = tuple(data.image_shape)
    self.z_dim = int(m.z_dim)
    self.num_categories = int(m.num_categories)
    self.num_continuous = int(m.num_continuous)
    self.z_prior = str(m.get("z_prior", "uniform"))
    if self.z_prior not in ("uniform", "normal"):
      raise ValueError(f"config.model.z_prior={self.z_prior!r}: use 'uniform' (the reference's U(-1, 1)) or 'normal'")
    if self.num_categories < 1 or self.num_continuous < 0:
      raise ValueError(f"config.model.num_categories must be >= 1 and num_continuous >= 0; got "
                       f"{self.num_categories}, {self.num_continuous}")
    self.generator, self.discriminator, self.q_head = infogan_models.build(m, self.image_shape)
    loss_cfg = config.loss
    self.info_weight = float(loss_cfg.get("info_weight", 1.0))
    self.info_cont_weight = float(loss_cfg.get("info_cont_weight", 1.0))
    self.objective = objectives.get_objective(loss_cfg.name)
    # Instance noise (ganzoo.augment) on every image D sees; Q reads D's features of the noisy fakes.
    self.instance_noise = augment.instance_noise(config)
    unknown = set(config.nets.keys()) - {"g", "d", "q"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'infogan' family trains networks 'g', 'd' and 'q'")
    if "q" not in config.nets:
      raise ValueError("the 'infogan' family needs config.nets.q (Q's optimizer); start from configs/infogan.py")
    n = int(config.train.num_steps)
    self.nets = {"g": nets_lib.build_spec(self.generator, config.nets.g, n),
                 "d": nets_lib.build_spec(self.discriminator, config.nets.d, n),
                 "q": nets_lib.build_spec(self.q_head, config.nets.q, n)}
    self.phases = (step_lib.Phase("d", ("d", "q"), self._d_loss, self._d_prepare, stream="real", key=0),
                   step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, key=1))

  # -- latents ---------------------------------------------------------------------------------
  @property
  def latent_size(self) -> int:
    return self.z_dim + self.num_categories + self.num_continuous

  def sample_codes(self, rng: jax.Array, n: int) -> dict[str, jax.Array]:
    """{'z': [n, z_dim], 'cat': int32 [n], 'cont': [n, M]} from the priors."""
    rz, rc, ru = jax.random.split(rng, 3)
    if self.z_prior == "uniform":
      z = jax.random.uniform(rz, (n, self.z_dim), jnp.float32, -1.0, 1.0)
    else:
      z = jax.random.normal(rz, (n, self.z_dim), jnp.float32)
    cat = jax.random.randint(rc, (n,), 0, self.num_categories)
    cont = jax.random.uniform(ru, (n, self.num_continuous), jnp.float32, -1.0, 1.0)
    return {"z": z, "cat": cat, "cont": cont}

  def latent(self, codes: dict[str, jax.Array]) -> jax.Array:
    """G's input: concat(z, one_hot(c_cat), c_cont)."""
    z = codes["z"]
    one_hot = jax.nn.one_hot(codes["cat"], self.num_categories, dtype=z.dtype)
    return jnp.concatenate([z, one_hot, codes["cont"].astype(z.dtype)], axis=-1)

  # -- state -----------------------------------------------------------------------------------
  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_q, rng_sn = jax.random.split(rng, 5)
    g_vars = self.generator.init(rng_g, jnp.zeros((2, self.latent_size), jnp.float32), train=False)
    d_vars = self.discriminator.init(rng_d, jnp.zeros((2, *self.image_shape), jnp.float32), train=False)
    fc = d_vars["params"]["fc"]["kernel"].shape[-1]
    q_vars = self.q_head.init(rng_q, jnp.zeros((2, fc), jnp.float32), train=False)
    sn = jax.random.split(rng_sn, 3)
    nets = {"g": nets_lib.init_net(self.nets["g"], g_vars, sn[0]),
            "d": nets_lib.init_net(self.nets["d"], d_vars, sn[1]),
            "q": nets_lib.init_net(self.nets["q"], q_vars, sn[2])}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  # -- phases ----------------------------------------------------------------------------------
  def _info(self, ctx: step_lib.Context, features: jax.Array, codes: dict[str, jax.Array], metrics, prefix: str):
    ce, nll = info_terms(ctx.apply("q", features), codes["cat"], codes["cont"])
    metrics[f"{prefix}_info_cat"] = ce
    metrics[f"{prefix}_info_cont"] = nll
    # The categorical MI lower bound H(c) - CE (the reference's MI_disc; at most log K).
    metrics[f"{prefix}_mi_cat"] = math.log(self.num_categories) - ce
    return self.info_weight * ce + self.info_cont_weight * nll

  def _d_prepare(self, ctx: step_lib.Context, data, key):
    codes = self.sample_codes(key, data["image"].shape[0])
    codes = {k: ctx.shard(v) for k, v in codes.items()}
    fake = jax.lax.stop_gradient(ctx.apply("g", self.latent(codes), train=True))
    noisy = lambda x, tag: augment.perturb(self.instance_noise, x, key, ctx.step, tag, ctx.shard)
    return {"real": noisy(data["image"], augment.REAL_NOISE_KEY), "fake": noisy(fake, augment.FAKE_NOISE_KEY),
            **codes}, {}

  def _d_loss(self, ctx: step_lib.Context, inp):
    real = ctx.apply("d", inp["real"])
    fake = ctx.apply("d", inp["fake"])
    adv = self.objective.d_loss(real["logits"], fake["logits"])
    metrics = {"d_loss": adv, "d_real": real["logits"].mean(), "d_fake": fake["logits"].mean()}
    loss = adv + self._info(ctx, fake["features"], inp, metrics, "d")
    metrics["d_total"] = loss
    return loss, metrics

  def _g_prepare(self, ctx: step_lib.Context, data, key):
    del data
    inputs = self.sample_codes(key, ctx.batch_size)
    if self.instance_noise:   # G's fakes reach D with noise too
      zeros = jnp.zeros((ctx.batch_size, *self.image_shape), jnp.float32)
      inputs["noise"] = augment.perturb(self.instance_noise, zeros, key, ctx.step, augment.FAKE_NOISE_KEY, ctx.shard)
    return inputs, {}

  def _g_loss(self, ctx: step_lib.Context, inp):
    fake = ctx.apply("g", self.latent(inp))
    if "noise" in inp:
      fake = fake + inp["noise"]
    out = ctx.apply("d", fake)
    adv = self.objective.g_loss(out["logits"], None)
    metrics = {"g_loss": adv}
    loss = adv + self._info(ctx, out["features"], inp, metrics, "g")
    metrics["g_total"] = loss
    return loss, metrics

  # -- inference -------------------------------------------------------------------------------
  def _infer(self, state: TrainState, name: str, x: jax.Array, use_ema: bool = True) -> Any:
    spec = self.nets[name]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets[name], use_ema)
    return nets_lib.forward(spec, params, batch_stats, x, train=False)[0]

  def generate_codes(self, state: TrainState, codes: dict[str, jax.Array], use_ema: bool = True) -> jax.Array:
    """G(z, c) in inference mode (running BN statistics)."""
    return self._infer(state, "g", self.latent(codes), use_ema)

  def q_outputs(self, state: TrainState, images: jax.Array) -> dict[str, jax.Array]:
    """Q's posterior parameters for images in [-1, 1], D and Q in inference mode."""
    return self._infer(state, "q", self._infer(state, "d", images)["features"])

  def predict_category(self, state: TrainState, images: jax.Array) -> jax.Array:
    """argmax_k Q(c_cat = k | x): the categorical code as a clusterer (int32 [N])."""
    return jnp.argmax(self.q_outputs(state, images)["cat_logits"], axis=-1).astype(jnp.int32)

  def sample(self, state, rng, n, condition=None):
    codes = self.sample_codes(rng, n)
    if condition is not None:   # a categorical value per image
      codes["cat"] = jnp.asarray(condition, jnp.int32)
    return self.generate_codes(state, codes)

  def code_sheet_inputs(self, seed: int, code: int = 0, cols: int = 10,
                        rows: int | None = None) -> dict[str, jax.Array]:
    """Codes of a sheet of `rows` x `cols` images (row-major): row r has c_cat = r mod K, column j
    sets continuous code `code` to -1 + 2 j / (cols - 1) (the reference's visualize_all_factors
    grid of values), the other continuous codes to 0, and every image the same z."""
    if not 0 <= code < max(self.num_continuous, 1):
      raise ValueError(f"code={code} out of range: the model has {self.num_continuous} continuous codes")
    rows = self.num_categories if rows is None else int(rows)
    n = rows * cols
    z = self.sample_codes(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A3), 1)["z"]
    values = jnp.linspace(-1.0, 1.0, cols) if cols > 1 else jnp.zeros((1,))
    cont = jnp.zeros((n, self.num_continuous), jnp.float32)
    if self.num_continuous:
      cont = cont.at[:, code].set(jnp.tile(values, rows))
    cat = (jnp.arange(n) // cols % self.num_categories).astype(jnp.int32)
    return {"z": jnp.repeat(z, n, axis=0), "cat": cat, "cont": cont}

  def fixed_inputs(self, seed: int, n: int):
    """The training sample grid: `code_sheet_inputs` for code 0 laid out as train.py tiles n images
    (ceil(sqrt(n)) per row; n = 100 gives the 10 x 10 sheet), cut to n."""
    cols = int(math.ceil(math.sqrt(n)))
    codes = self.code_sheet_inputs(seed, 0, cols, -(-n // cols))
    return {k: v[:n] for k, v in codes.items()}

  def sample_fixed(self, state, inputs, n):
    return self.generate_codes(state, inputs)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    add_config_fields(c)
    config_lib.tiny(c)
    c.data.batch_size = 16
    for net in ("g", "d", "q"):   # a schedule over num_steps: a resume must not re-slope it
      c.nets[net].optim.decay = "linear"
    return c, methods.DataSpec((28, 28, 1), 10)


def add_config_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the family's fields to a base config (`configs/infogan.py` sets the paper's values):
  model.{z_dim, num_categories, num_continuous, z_prior, learn_std, leak}, loss.{info_weight,
  info_cont_weight} and the network section nets.q."""
  c.method = "infogan"
  c.model.name = "infogan"
  c.model.z_dim = 62
  c.model.num_categories = 10
  c.model.num_continuous = 2
  c.model.z_prior = "uniform"
  c.model.learn_std = False
  c.model.leak = infogan_models.REFERENCE_LEAK
  c.loss.name = "non_saturating"
  c.loss.info_weight = 1.0
  c.loss.info_cont_weight = 1.0
  c.nets.q = nets_lib.net_config()
  return c


def code_sheet(method: InfoGAN, state: TrainState, code: int, seed: int = 0, cols: int = 10) -> np.ndarray:
  """uint8 sheet [H', W', C]: one row per categorical value, columns sweeping continuous code
  `code` from -1 to 1 (`InfoGAN.code_sheet_inputs`), from G in inference mode."""
  from ganzoo import sampling  # pylint: disable=g-import-not-at-top
  images = jax.jit(method.generate_codes)(state, method.code_sheet_inputs(seed, code, cols))
  return sampling.make_grid(np.asarray(images), nrow=cols)
