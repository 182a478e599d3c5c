"""The `stargan` family: multi-domain image-to-image translation (Choi et al. 2018, arXiv:1711.09020).

One generator G(x, c) translates an image x into the domain given by the label vector c (tiled
over the pixels and concatenated, `ganzoo.models.stargan`); one discriminator D(x) gives a
PatchGAN real/fake map D_src and domain logits D_cls. The reference is yunjey/stargan solver.py
`train()`; its loop, one iteration at a time:

  x, label_org = next batch;  label_trg = label_org[randperm(B)]        (rand_idx)
  D:  -mean D_src(x) + mean D_src(G(x, c_trg)) + lambda_cls * cls(D_cls(x), label_org)
      + lambda_gp * mean_i (||grad_xhat sum D_src(xhat)_i||_2 - 1)^2,
      xhat = a x + (1 - a) G(x, c_trg), a ~ U[0, 1] per image               (WGAN-GP)
  G, when (i + 1) % n_critic == 0, on the same x and c_trg, after that D update:
      -mean D_src(G(x, c_trg)) + lambda_rec * mean |x - G(G(x, c_trg), c_org)|
      + lambda_cls * cls(D_cls(G(x, c_trg)), label_trg)
  cls: multi-hot attributes (CelebA): sum of the binary cross-entropies with logits over the
       attributes and the batch, / B (`F.binary_cross_entropy_with_logits(size_average=False) / B`);
       single-label domains (RaFD, class folders, the Fashion-MNIST stand-in): mean softmax cross-entropy.
  lambda_cls 1, lambda_rec 10, lambda_gp 10, n_critic 5, Adam(1e-4, 0.5, 0.999) for both, batch 16,
  200,000 iterations, the last 100,000 with a decaying rate (`lr_schedule` below).

Iteration counting: one train step here is one reference iteration: one fresh batch, one D update,
and the G update at the steps with (step + 1) % n_critic == 0 (`plan`), which reads the same batch
and the same target labels as that step's D update. So `train.num_steps` is the reference's
`num_iters` (200k), G is updated num_steps / n_critic times, first after 5 D updates as in the
reference. (A D phase with repeats=5 per step would read 5 batches per step and give G the
permutation of the fifth; the iteration form keeps the reference's counters for the schedule too.)

Randomness drawn on the host by the reference (the flip of RandomHorizontalFlip, randperm, the
GP's alpha) is drawn here on the devices from the step key: both phases fold in the same constant
(`STEP_KEY`), so the G phase draws the same flips and permutation as the D phase of its step.
With `train.grad_accum` k > 1 the permutation acts within each micro-batch.

Learning rate (`model.lr_schedule`; both networks decay on the reference's iteration counter i,
G too, though G counts its own updates: its u-th update is iteration n_critic * u + n_critic - 1):
  'paper': the paper's "linearly decay the learning rate to 0 over the next 10 epochs" (Sec. 4 /
    App. 7), on the reference's staircase: after every `lr_update_step` (1000) iterations past
    num_steps - num_iters_decay the rate drops by lr * lr_update_step / num_iters_decay, reaching
    0 at the end (the last 1000 iterations run at lr / 100).
  'reference': the released code's arithmetic exactly: the same staircase with a drop of
    lr / num_iters_decay per 1000 iterations (`g_lr -= self.g_lr / float(self.num_iters_decay)`),
    so the rate only falls to 0.999 lr over the 100k iterations (effectively constant).
  'optim': no StarGAN schedule; `nets.<g|d>.optim.decay` as in every family (a smooth 'linear'
    decay from `decay_start`, counted in steps).

Domains: single-label (int labels [B]: class subfolders, `data.name='fashion_mnist'`), c = one-hot;
or multi-hot attributes (int 0/1 labels [B, K]: `data.name='celeba'`, `data.attributes`). Target
names (`translation_spec().targets`) are the domain names (`model.domains`, else the Fashion-MNIST
class names, a folder's class folders, or '0'..'K-1'), or the attribute names; a multi-hot
`--target` is a comma-separated list of the attributes to switch ON, all others OFF.

Sample grids (`fixed_inputs`/`sample_fixed`): one row per target domain: row 0 holds w fixed input
images (the first w of stream 'fixed' of `config.data`), row k their translations to domain k
(CelebA: the reference's `create_labels`: hair colour k exclusively ON, another attribute toggled).
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ganzoo import augment
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import regularizers
from ganzoo import step as step_lib
from ganzoo.models import stargan as stargan_models
from ganzoo.state import TrainState

STEP_KEY = 0   # the phase-key constant of both phases (module docstring: shared flips and permutation)
SCHEDULES = ("paper", "reference", "optim")
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")   # solver.py create_labels
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CELEBA_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")   # main.py --selected_attrs


def parse_names(text) -> tuple[str, ...]:
  """'a, b,c' -> ('a', 'b', 'c'); None or '' -> ()."""
  return tuple(s.strip() for s in str(text or "").split(",") if s.strip())


def selected_attributes(data_cfg) -> tuple[str, ...]:
  """The multi-hot attributes of a data config: `data.attributes`, or for data.name='celeba' the
  reference's five (main.py --selected_attrs); () for single-label data."""
  names = parse_names(data_cfg.get("attributes", None))
  if not names and data_cfg.get("name", "") == "celeba":
    names = CELEBA_ATTRIBUTES
  return names


def classification_loss(logits: jax.Array, labels: jax.Array, multi_hot: bool) -> jax.Array:
  """solver.py classification_loss: multi-hot [B, K] labels: sum_{i,k} BCE-with-logits / B; int
  labels [B]: mean softmax cross-entropy (F.cross_entropy)."""
  if multi_hot:
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype))) / logits.shape[0]
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def staircase_lr(lr: float, num_iters: int, num_iters_decay: int, update_step: int, drop: float):
  """The learning rate at reference iteration i (0-based): lr - drop * n(i), n(i) = the number of
  multiples m of `update_step` with num_iters - num_iters_decay < m <= i (solver.py: after iteration
  j the rate drops when (j + 1) % lr_update_step == 0 and j + 1 > num_iters - num_iters_decay)."""
  start = int(num_iters) - int(num_iters_decay)

  def at(i):
    i = jnp.asarray(i, jnp.int32)
    n = jnp.maximum(i // update_step - start // update_step, 0)
    return jnp.float32(lr) - jnp.float32(drop) * n.astype(jnp.float32)

  return at


def create_labels(c_org: np.ndarray, attributes: tuple[str, ...]) -> list[np.ndarray]:
  """solver.py create_labels for CelebA: for each attribute k, a copy of c_org [N, K] with hair colour k
  set ON and the other hair colours OFF, or attribute k toggled."""
  hair = [i for i, a in enumerate(attributes) if a in HAIR_COLOURS]
  out = []
  for k in range(len(attributes)):
    c = np.array(c_org, np.float32, copy=True)
    if k in hair:
      c[:, hair] = 0.0
      c[:, k] = 1.0
    else:
      c[:, k] = 1.0 - (c[:, k] != 0)
    out.append(c)
  return out


@methods.register("stargan")
class StarGAN(methods.Method):
  """G(x, c) and D(x) -> (src map, domain logits) over one labelled stream 'real'."""

  def __init__(self, config: ml_collections.ConfigDict, data: methods.DataSpec):
    super().__init__(config, data)
    augment.refuse_instance_noise(config, 'stargan')
    m = config.model
    self.image_shape = tuple(int(s) for s in data.image_shape)
    self.attributes = selected_attributes(config.data)
    self.multi_hot = bool(self.attributes)
    self.c_dim = len(self.attributes) if self.multi_hot else int(data.num_classes)
    if self.c_dim < 2:
      raise ValueError(f"stargan needs labelled data with >= 2 domains (got {self.c_dim}): use class subfolders, "
                       "data.name='fashion_mnist', or data.name='celeba' with data.attributes")
    if self.multi_hot and data.num_classes and int(data.num_classes) != self.c_dim:
      raise ValueError(f"data.attributes names {self.c_dim} attributes but the data has {data.num_classes} labels")
    self.lambda_cls, self.lambda_rec, self.lambda_gp = float(m.lambda_cls), float(m.lambda_rec), float(m.lambda_gp)
    self.n_critic = int(m.n_critic)
    self.flip = bool(m.flip)
    if self.n_critic < 1:
      raise ValueError(f"model.n_critic={self.n_critic} must be >= 1 (D updates per G update)")
    unknown = set(config.nets.keys()) - {"g", "d"}
    if unknown:
      raise ValueError(f"config.nets has {sorted(unknown)}; the 'stargan' family trains networks 'g' and 'd'")
    self.generator = stargan_models.Generator(int(m.g_conv_dim), self.c_dim, int(m.g_repeat_num))
    self.discriminator = stargan_models.Discriminator(self.image_shape[0], int(m.d_conv_dim), self.c_dim,
                                                      int(m.d_repeat_num))
    n = int(config.train.num_steps)
    self.nets = {"g": self._spec(self.generator, config.nets.g, n, lambda s: int(s) // self.n_critic,
                                 lambda u: self.n_critic * u + self.n_critic - 1),
                 "d": self._spec(self.discriminator, config.nets.d, n, lambda s: int(s), lambda u: u)}
    self._d_phase = step_lib.Phase("d", ("d",), self._d_loss, self._d_prepare, stream="real", key=STEP_KEY)
    self._g_phase = step_lib.Phase("g", ("g",), self._g_loss, self._g_prepare, stream="real", key=STEP_KEY)
    self.phases = (self._d_phase, self._g_phase)
    self._sample_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

  def _spec(self, module, cfg, num_steps, updates_until, iteration_of_update) -> nets_lib.NetSpec:
    """The network's NetSpec; with a StarGAN schedule, Adam on `staircase_lr` of the reference iteration."""
    schedule = str(self.config.model.lr_schedule)
    if schedule not in SCHEDULES:
      raise ValueError(f"model.lr_schedule={schedule!r}; choose from {SCHEDULES}")
    if schedule == "optim":
      return nets_lib.build_spec(module, cfg, num_steps, updates_until=updates_until)
    if cfg.optim.name != "adam" or cfg.optim.get("decay", "none") != "none":
      raise ValueError(f"model.lr_schedule={schedule!r} is StarGAN's Adam schedule: set nets.<g|d>.optim.name='adam' "
                       "and optim.decay='none', or model.lr_schedule='optim' to use optim.decay")
    m = self.config.model
    decay, every = int(m.num_iters_decay), int(m.lr_update_step)
    if num_steps == 0:   # train.num_steps=0 only builds the model (parameter counts): no schedule runs
      decay = max(decay, 1)
    if not 0 < decay <= (num_steps or decay) or every < 1:
      raise ValueError(f"model.num_iters_decay={decay} must lie in [1, train.num_steps={num_steps}] and "
                       f"model.lr_update_step={every} be >= 1")
    lr = float(cfg.optim.lr)
    drop = lr * every / decay if schedule == "paper" else lr / decay
    at_iteration = staircase_lr(lr, num_steps, decay, every, drop)
    tx = optax.adam(lambda count: at_iteration(iteration_of_update(count)), b1=float(cfg.optim.b1),
                    b2=float(cfg.optim.b2), eps=float(cfg.optim.eps))
    return nets_lib.NetSpec(module=module, tx=tx, sn=nets_lib.build_sn(cfg.sn), ema_decay=float(cfg.ema.decay),
                            ema_start=int(cfg.ema.start), ortho=float(cfg.ortho), clip=float(cfg.clip))

  # -- plan and state --------------------------------------------------------------------------
  def plan(self, step: int) -> step_lib.StepPlan:
    """D at every step; G after it at the steps with (step + 1) % n_critic == 0 (solver.py)."""
    g_due = (int(step) + 1) % self.n_critic == 0
    return step_lib.StepPlan((self._d_phase, self._g_phase) if g_due else (self._d_phase,))

  def init(self, rng: jax.Array) -> TrainState:
    rng_run, rng_g, rng_d, rng_sn = jax.random.split(rng, 4)
    x = jnp.zeros((2, *self.image_shape), jnp.float32)
    c = jnp.zeros((2, self.c_dim), jnp.float32)
    nets = {"g": nets_lib.init_net(self.nets["g"], self.generator.init(rng_g, x, c), rng_sn),
            "d": nets_lib.init_net(self.nets["d"], self.discriminator.init(rng_d, x), rng_sn)}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng_run, nets=nets, extras={})

  def to_c(self, labels: jax.Array) -> jax.Array:
    """Data labels -> G's condition c [B, c_dim] float32: multi-hot as they are, class ids one-hot."""
    if self.multi_hot:
      return labels.astype(jnp.float32)
    return jax.nn.one_hot(labels, self.c_dim, dtype=jnp.float32)

  # -- phases ----------------------------------------------------------------------------------
  def _inputs(self, ctx, data, key):
    """The step's images (randomly flipped), labels, target labels (a permutation of the batch's) and GP key."""
    if "label" not in data:
      raise ValueError("stargan needs labels: class subfolders, a labelled data set, or data.name='celeba'")
    rng_perm, rng_flip, rng_gp = jax.random.split(key, 3)
    x, label_org = data["image"], data["label"]
    b = x.shape[0]
    if self.flip:   # T.RandomHorizontalFlip(): each image with probability 1/2
      flip = jax.random.bernoulli(rng_flip, 0.5, (b,))
      x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
    label_trg = label_org[jax.random.permutation(rng_perm, b)]
    inputs = {"x": x, "label_org": label_org, "label_trg": label_trg,
              "c_org": self.to_c(label_org), "c_trg": self.to_c(label_trg)}
    return inputs, {"gp": rng_gp}

  def _d_prepare(self, ctx, data, key):
    inputs, keys = self._inputs(ctx, data, key)
    inputs["fake"] = jax.lax.stop_gradient(ctx.apply("g", inputs["x"], inputs["c_trg"], train=True))
    return inputs, keys

  def _g_prepare(self, ctx, data, key):
    inputs, _ = self._inputs(ctx, data, key)
    return inputs, {}

  def _d_loss(self, ctx, inp):
    src_real, cls_real = ctx.apply("d", inp["x"])
    src_fake, _ = ctx.apply("d", inp["fake"])
    loss_real = -jnp.mean(src_real)
    loss_fake = jnp.mean(src_fake)
    loss_cls = classification_loss(cls_real, inp["label_org"], self.multi_hot)
    # solver.py gradient_penalty: grad of D_src's sum over the patch map (grad_outputs = ones) per image.
    d_src = lambda z: jnp.sum(ctx.apply("d", z)[0], axis=(1, 2, 3))
    gp = regularizers.gradient_penalty(d_src, inp["x"], inp["fake"], inp["gp"])
    loss = loss_real + loss_fake + self.lambda_cls * loss_cls + self.lambda_gp * gp
    return loss, {"d_loss": loss, "d_loss_real": loss_real, "d_loss_fake": loss_fake, "d_loss_cls": loss_cls,
                  "d_loss_gp": gp}

  def _g_loss(self, ctx, inp):
    fake = ctx.apply("g", inp["x"], inp["c_trg"])
    src, cls = ctx.apply("d", fake)
    rec = ctx.apply("g", fake, inp["c_org"])
    loss_fake = -jnp.mean(src)
    loss_cls = classification_loss(cls, inp["label_trg"], self.multi_hot)
    loss_rec = jnp.mean(jnp.abs(inp["x"] - rec))
    loss = loss_fake + self.lambda_rec * loss_rec + self.lambda_cls * loss_cls
    return loss, {"g_loss": loss, "g_loss_fake": loss_fake, "g_loss_rec": loss_rec, "g_loss_cls": loss_cls}

  # -- inference -------------------------------------------------------------------------------
  def generate(self, state: TrainState, x: jax.Array, c: jax.Array) -> jax.Array:
    """G(x, c) in inference mode (the EMA when G has one; instance statistics either way)."""
    spec = self.nets["g"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["g"])
    return nets_lib.forward(spec, params, batch_stats, x, c, train=False)[0]

  def classify(self, state: TrainState, x: jax.Array) -> jax.Array:
    """D's domain logits [N, c_dim]."""
    spec = self.nets["d"]
    params, batch_stats = nets_lib.inference_variables(spec, state.nets["d"], use_ema=False)
    return nets_lib.forward(spec, params, batch_stats, x, train=False)[0][1]

  def domain_names(self) -> tuple[str, ...]:
    """The target names: attributes (multi-hot), `model.domains`, or the data's class names."""
    if self.multi_hot:
      return self.attributes
    names = parse_names(self.config.model.get("domains", ""))
    if not names:
      d = self.config.data
      if d.name == "fashion_mnist" and self.c_dim == len(FASHION_MNIST_CLASSES):
        names = FASHION_MNIST_CLASSES
      elif (d.name == "folder" or d.get("source", "auto") == "folder") and d.get("path", None):
        from ganzoo.data import sources  # pylint: disable=g-import-not-at-top
        names = tuple(sources.FolderSource(d.path, size=d.get("image_size", None)).class_names)
      else:
        names = tuple(str(i) for i in range(self.c_dim))
    if len(names) != self.c_dim:
      raise ValueError(f"model.domains names {len(names)} domains but the data has {self.c_dim} classes")
    return names

  def translation_spec(self) -> methods.TranslationSpec:
    names = self.domain_names()
    return methods.TranslationSpec(image_shape=self.image_shape, targets=names, default_target=names[0])

  def target_labels(self, target: str | None) -> np.ndarray:
    """The condition c [c_dim] of a `--target`: a domain name (one-hot), or for multi-hot attributes a
    comma-separated list of attributes to switch ON (the others OFF; '' = all OFF)."""
    names = self.domain_names()
    target = names[0] if target is None else str(target)
    c = np.zeros((self.c_dim,), np.float32)
    if self.multi_hot:
      for a in parse_names(target):
        if a not in names:
          raise ValueError(f"unknown attribute {a!r} in --target={target!r}; the attributes are {','.join(names)}")
        c[names.index(a)] = 1.0
      return c
    if target not in names:
      raise ValueError(f"unknown target domain {target!r}; choose from {list(names)}")
    c[names.index(target)] = 1.0
    return c

  def translate(self, state, x, target=None, rng=None):
    """x [N, *image_shape] in [-1, 1] -> G(x, c(target)) (`target_labels`); no randomness at test time."""
    del rng
    c = jnp.broadcast_to(jnp.asarray(self.target_labels(target)), (x.shape[0], self.c_dim))
    if not hasattr(self, "_generate_jit"):
      self._generate_jit = jax.jit(self.generate)
    return self._generate_jit(state, x, c)

  def _real_examples(self, n: int, split: str | None = None, stream: str = "fixed") -> tuple[np.ndarray, np.ndarray]:
    """The first n examples (float images in [-1, 1], labels) of stream `stream` of `config.data`
    (at `split` when given), read on the host, for all processes alike."""
    from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
    cfg = self.config.data
    if split is not None:
      cfg = ml_collections.ConfigDict(cfg.to_dict())
      cfg.split = split
    ds = data_lib.build_dataset(cfg, int(self.config.seed), 0, 1)
    n_read = min(int(n), int(ds.num_examples or n))
    out = ds.read(stream, 0, 1, n_read)
    x = data_lib.to_float(out["image"][0])
    y = out["label"][0]
    reps = int(math.ceil(n / n_read))
    return np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]

  def sample(self, state, rng, n, condition=None):
    """n translations of the first n images of `config.data` at split `eval.real_split` (read on the
    host when traced) into random targets: a uniform domain (single-label) or the labels of a random
    permutation of the images (multi-hot, as in training); `condition` = a domain index for all."""
    if n not in self._sample_cache:
      self._sample_cache[n] = self._real_examples(n, str(self.config.eval.real_split), stream="sample")
    x, labels = self._sample_cache[n]
    x = jnp.asarray(x)
    if condition is not None:
      c = jax.nn.one_hot(jnp.full((n,), condition, jnp.int32), self.c_dim, dtype=jnp.float32)
    elif self.multi_hot:
      c = jnp.asarray(labels, jnp.float32)[jax.random.permutation(rng, n)]
    else:
      c = jax.nn.one_hot(jax.random.randint(rng, (n,), 0, self.c_dim), self.c_dim, dtype=jnp.float32)
    return self.generate(state, x, c)

  def sheet_targets(self, labels: np.ndarray) -> list[np.ndarray]:
    """The conditions of the sheet's rows 1..c_dim for inputs with `labels`: one-hot k (single-label),
    or create_labels (CelebA)."""
    if self.multi_hot:
      return create_labels(np.asarray(labels), self.attributes)
    return [np.tile(np.eye(self.c_dim, dtype=np.float32)[k], (len(labels), 1)) for k in range(self.c_dim)]

  def fixed_inputs(self, seed: int, n: int):
    """w = ceil(sqrt(n)) fixed real images and the conditions of the sheet's rows."""
    del seed   # the images are the first of stream 'fixed' of config.data (its order: data.seed / seed)
    w = int(math.ceil(math.sqrt(n)))
    x, labels = self._real_examples(w)
    return {"x": jnp.asarray(x), "c": jnp.asarray(np.stack(self.sheet_targets(labels)))}

  def sample_fixed(self, state, inputs, n):
    """n cells of a grid with w = ceil(sqrt(n)) columns: row 0 the inputs, row r its translations to
    domain (r - 1) mod c_dim + 1 ... i.e. one row per target domain, rows cycling when n is larger."""
    x, cs = inputs["x"], inputs["c"]
    rows = [x] + [self.generate(state, x, cs[k]) for k in range(self.c_dim)]
    w = x.shape[0]
    cells = [rows[(i // w) % (self.c_dim + 1)][i % w] for i in range(n)]
    return jnp.stack(cells)

  @classmethod
  def test_config(cls):
    from ganzoo import config as config_lib  # pylint: disable=g-import-not-at-top
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.method = "stargan"
    add_config_fields(c)
    c.model.update(dict(g_conv_dim=4, d_conv_dim=4, g_repeat_num=1, d_repeat_num=2, n_critic=2,
                        num_iters_decay=2, lr_update_step=1))
    c.data.batch_size = 16
    c.eval.metrics = ""
    return c, methods.DataSpec((16, 16, 3), 4)


def add_config_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The family's `model.*` fields at the reference's values (main.py defaults), and both optimizers
  at Adam(1e-4, 0.5, 0.999)."""
  c.model.name = "stargan"
  c.model.g_conv_dim = 64
  c.model.d_conv_dim = 64
  c.model.g_repeat_num = 6
  c.model.d_repeat_num = 6
  c.model.lambda_cls = 1.0
  c.model.lambda_rec = 10.0
  c.model.lambda_gp = 10.0
  c.model.n_critic = 5
  c.model.flip = True
  c.model.domains = ""             # single-label domain names (comma list); '' = from the data
  c.model.lr_schedule = "paper"    # 'paper' | 'reference' | 'optim' (module docstring)
  c.model.num_iters_decay = 100_000
  c.model.lr_update_step = 1_000
  for net in ("g", "d"):
    c.nets[net].optim.update(dict(name="adam", lr=1e-4, b1=0.5, b2=0.999, eps=1e-8, decay="none"))
  return c
