"""The config schema: defaults shared by every config in configs/, which start from `get_base_config()`.

Every field a run can read exists here, so `--config.a.b=v` of an unknown key is an error.
"""

import ml_collections

from ganzoo import augment
from ganzoo.data import cache as cache_lib
from ganzoo.data import workers as workers_lib
from ganzoo import nets as nets_lib
from ganzoo import precision
from ganzoo import profiling


def get_base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = "gan"                  # the family: see ganzoo.methods.names()

  c.data = data_config()

  c.model = ml_collections.ConfigDict()
  c.model.name = "dcgan"
  c.model.size = "paper"
  c.model.z_dim = 128
  c.model.conditional = False
  # Compute dtype of training (ganzoo.precision): float32 | bfloat16 | float16 (float32 params and
  # optimizer state either way; float16 adds dynamic loss scaling, train.loss_scale).
  c.model.dtype = "float32"

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "non_saturating"    # see ganzoo.objectives.names()

  # Penalties by name ({name: {weight, every, **kwargs}}): a dict rather than a list so that
  # `--config.penalties.gradient_penalty.weight=5` works from the command line. `every` > 1 makes
  # it lazy (a separate phase every k steps, loss times k). R1/R2: weight = gamma / 2.
  c.penalties = ml_collections.ConfigDict()

  # One section per network (ganzoo.nets): optimizer, spectral norm, EMA, ortho. reg., clipping.
  c.nets = ml_collections.ConfigDict()
  c.nets.g = nets_lib.net_config()
  c.nets.d = nets_lib.net_config()
  # G's class embeddings (BigGAN's shared embedding, conditional-BN tables) are not normalized, as
  # in BigGAN-PyTorch; D's projection embedding is (Miyato & Koyama 2018).
  c.nets.g.sn.exclude = "embedding"

  # Transforms of every image D sees (ganzoo.augment): instance noise.
  c.augment = augment.augment_config()

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 10_000        # train steps (GAN: generator updates)
  c.train.d_steps = 1               # gan family: D updates per step (n_critic)
  c.train.g_steps = 1               # gan family: G updates per step
  # gan family: latents per G update (None = data.batch_size; WGAN-GP's reference: 2x D's batch).
  c.train.g_batch_size = ml_collections.FieldReference(None, field_type=int)
  # gan family: d_steps D updates (instead of train.d_steps) at steps s < `steps` and, when every > 0,
  # at s % every == 0 (WGAN's reference: 100 for the first 25 and every 500th step); d_steps 0 = off.
  c.train.d_steps_warmup = ml_collections.ConfigDict(dict(steps=0, d_steps=0, every=0))
  # gan family: G's update uses the latents (so the fakes) of D's last update in the step, as the
  # PyTorch DCGAN example does (one G forward fewer per step; the updates are correlated).
  c.train.reuse_fakes = False
  c.train.grad_accum = 1            # micro-batches per update
  # model.dtype = float16: the initial loss scale and the finite updates after which it doubles
  # (torch.cuda.amp.GradScaler's defaults; ganzoo.precision).
  c.train.loss_scale = ml_collections.ConfigDict(dict(init=65536.0, growth_interval=2000))
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  c.train.keep_checkpoints = 3
  c.train.num_sample_images = 64   # fixed inputs for the PNG grids
  # "START,N": trace N train steps from step START for TensorBoard's profiler (ganzoo.profiling).
  c.train.profile_steps = ml_collections.FieldReference(None, field_type=str)

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 0                  # 0 = no in-training evaluation
  c.eval.num_samples = 10_000
  c.eval.metrics = "fid,kid"
  c.eval.real_split = "test"
  c.eval.batch_size = 100
  c.eval.inception_weights = ml_collections.FieldReference(None, field_type=str)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.distributed = False    # call jax.distributed.initialize()
  c.parallel.coordinator_address = ml_collections.FieldReference(None, field_type=str)
  c.parallel.num_processes = ml_collections.FieldReference(None, field_type=int)
  c.parallel.process_id = ml_collections.FieldReference(None, field_type=int)
  # FSDP (ganzoo.parallel): shard the state over groups of `fsdp` devices (a (n/fsdp, fsdp) mesh);
  # 1 = every device holds the whole state. Leaves under `fsdp_min_size` elements stay replicated.
  c.parallel.fsdp = 1
  c.parallel.fsdp_min_size = 2 ** 14   # = parallel.FSDP_MIN_SIZE (64 KiB in float32)

  # An optional Weights & Biases mirror of metrics.jsonl and the sample grids (ganzoo.writers.WandbWriter;
  # `pip install 'ganzoo[wandb]'`): off while `project` is empty. Empty fields are left to wandb.
  c.wandb = ml_collections.ConfigDict()
  c.wandb.project = ""
  c.wandb.entity = ""
  c.wandb.name = ""                 # the run's display name ('' = wandb's)
  c.wandb.group = ""
  c.wandb.mode = ""                 # online | offline | disabled | shared; '' = $WANDB_MODE, else online
  return c


def data_config() -> ml_collections.ConfigDict:
  """One data source (`config.data`; a family with more streams adds sections of this shape)."""
  d = ml_collections.ConfigDict()
  d.name = "fashion_mnist"     # tfds name, 'npz', 'folder', 'ring8', 'grid25'
  d.split = "train"
  d.source = "auto"            # auto | idx | tfds | npz | folder | synthetic
  d.data_dir = ml_collections.FieldReference(None, field_type=str)
  # A tfds data set that is not prepared in data_dir ($TFDS_DATA_DIR, ~/tensorflow_datasets) is
  # downloaded and prepared there first, as tfds.load does by default; False never uses the network
  # (a missing set is then the one-line 'not found'). ganzoo.data.sources.prepare_tfds.
  d.download = True
  d.path = ml_collections.FieldReference(None, field_type=str)
  d.image_size = ml_collections.FieldReference(None, field_type=int)  # resize to this (square)
  d.center_crop = ml_collections.FieldReference(None, field_type=int)  # celeb_a: 108 by default
  d.max_examples = ml_collections.FieldReference(None, field_type=int)  # keep the first N
  d.num_classes = ml_collections.FieldReference(None, field_type=int)   # override
  # celeba: comma-separated attributes of list_attr_celeba.txt read as multi-hot labels [N, K]
  # (None = StarGAN's Black_Hair,Blond_Hair,Brown_Hair,Male,Young; ganzoo.data.celeba).
  d.attributes = ml_collections.FieldReference(None, field_type=str)
  d.seed = ml_collections.FieldReference(None, field_type=int)  # data order (default: config.seed)
  d.batch_size = 64            # global, over all devices and processes
  d.prefetch = 2               # host batches read ahead by a background thread
  # Batches copied to the devices ahead of the step: -1 = auto (1 on GPU/TPU, 0 on CPU, where the
  # "copy" stays in host memory), 0 = when the step asks, k = k steps ahead.
  d.device_prefetch = -1
  # Decode once (image folders, tfds, celeba): '' = off, 'memory', or a folder of .npy caches
  # (ganzoo.data.cache). Arrays already (IDX, npz, synthetic) are unaffected.
  d.cache = ""
  d.workers = 0                # > 0: decode in that many grain processes (ganzoo.data.workers)
  return d


# Sections whose keys are fixed here (model.* and loss.* carry family fields; penalties carry
# each penalty's own arguments, checked by the family).
_STRICT_SECTIONS = ("data", "train", "eval", "parallel")
# Fixed-key sections a config may lack: config.json of a run started before the section existed.
_OPTIONAL_SECTIONS = ("augment", "wandb")
_WANDB_MODES = ("", "online", "offline", "disabled", "shared")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects keys that this schema does not define (a typo would otherwise be silently ignored),
  values of the wrong type and sizes out of range (`validate_values`), each in one line."""
  _validate_keys(config)
  validate_values(config)


def _validate_keys(config: ml_collections.ConfigDict) -> None:
  ref = get_base_config()
  extra_data = [k for k in config.keys() if k.startswith("data_")]
  unknown = set(config.keys()) - set(ref.keys()) - set(extra_data)
  if unknown:
    legacy = unknown & {"optim", "sn", "penalty"}
    hint = (f"; {sorted(legacy)} moved to config.nets.<g|d>.optim/sn and config.penalties"
            if legacy else f"; the top-level keys are {sorted(ref.keys())}")
    raise ValueError(f"unknown config key(s) {sorted(unknown)}{hint}")
  for section in _STRICT_SECTIONS:
    if section not in config:
      raise ValueError(f"config has no '{section}' section; start configs from ganzoo.config.get_base_config()")
    _check_keys(config[section], ref[section], section)
  for section in _OPTIONAL_SECTIONS:
    if section in config:
      _check_keys(config[section], ref[section], section)
  for key in extra_data:   # more data sources for families with several streams (CycleGAN's B)
    _check_keys(config[key], data_config(), key)
  for name in config.get("nets", {}).keys():
    _check_keys(config.nets[name], nets_lib.net_config(), f"nets.{name}")
  for name, p in config.get("penalties", {}).items():
    if not isinstance(p, (dict, ml_collections.ConfigDict)):
      raise ValueError(f"config.penalties.{name} must be a dict {{weight, every, ...}}; got {p!r}")


# The smallest valid value of each integer field, and what its edge means. A zero batch size or
# interval otherwise ends in a ZeroDivisionError (`step % log_every`, `batch % devices`) or an
# empty array deep in a jitted step, and a negative one slices data from the end.
_MINIMUM = {
    "data.batch_size": (1, ""), "data.prefetch": (1, ""), "data.device_prefetch": (-1, " (-1 = 1 on GPU/TPU, 0 on CPU; 0 = copy when the step asks)"),
    "data.workers": (0, " (0 = decode in the training process)"), "data.image_size": (1, " (None keeps the stored size)"),
    "data.center_crop": (0, " (0 = no crop)"), "data.max_examples": (1, " (None = all)"),
    "data.num_classes": (0, " (None or 0 = from the data)"),
    "train.num_steps": (0, " (0 builds the model and logs its parameter counts)"), "train.d_steps": (1, ""),
    "train.g_steps": (1, ""), "train.grad_accum": (1, ""), "train.log_every": (1, ""),
    "train.sample_every": (0, " (0 = no sample grids)"), "train.checkpoint_every": (1, ""),
    "train.keep_checkpoints": (1, ""), "train.num_sample_images": (1, ""),
    "eval.every": (0, " (0 = no evaluation during training)"), "eval.num_samples": (1, ""), "eval.batch_size": (1, ""),
    "parallel.num_processes": (1, ""), "parallel.process_id": (0, ""),
    "parallel.fsdp": (1, " (1 = the state replicated on every device)"),
    "parallel.fsdp_min_size": (0, " (0 = shard every leaf an axis of which divides)"),
}
_NET_MINIMUM = {"optim.lr": (0.0, ""), "ema.decay": (0.0, " (0 = no EMA)"), "ema.start": (0, ""),
                "sn.n_power_iterations": (1, ""), "ortho": (0.0, ""), "clip": (0.0, " (0 = no clipping)")}


def validate_values(config: ml_collections.ConfigDict) -> None:
  """Each field of the fixed sections (and `nets.<name>`) has the type of its default in
  `get_base_config()` (an int field takes no float or bool; a float field takes an int), and sizes,
  counts and intervals are in range (`_MINIMUM`). The message names the field and the fix:
  `config.data.batch_size=0 must be an int >= 1: pass --config.data.batch_size=N`.
  Values set from the command line were type-checked by ml_collections already; these checks
  catch config files and config.json files, which assign freely."""
  ref = get_base_config()
  sections = [(s, ref[s]) for s in (*_STRICT_SECTIONS, *_OPTIONAL_SECTIONS) if s in config]
  sections += [(k, data_config()) for k in config.keys() if k.startswith("data_")]
  sections += [(f"nets.{n}", nets_lib.net_config()) for n in config.get("nets", {}).keys()]
  for prefix, ref_section in sections:
    section = config
    for key in prefix.split("."):
      section = section[key]
    _check_types(section, ref_section, prefix)
  for prefix, _ in sections:
    base = "data" if prefix.startswith("data_") else prefix   # data_<name>: more sources, data's fields
    table = _NET_MINIMUM if prefix.startswith("nets.") else {
        k.split(".", 1)[1]: v for k, v in _MINIMUM.items() if k.split(".", 1)[0] == base}
    section = config
    for key in prefix.split("."):
      section = section[key]
    for path, (lo, meaning) in table.items():
      value = _get_path(section, path)
      if value is None:
        continue
      if value < lo:
        kind = "a number" if isinstance(lo, float) else "an int"
        raise ValueError(f"config.{prefix}.{path}={value!r} must be {kind} >= {lo}{meaning}: "
                         f"pass --config.{prefix}.{path}=<{'x' if isinstance(lo, float) else 'N'} >= {lo}>")
  for prefix, _ in sections:
    if prefix == "data" or prefix.startswith("data_"):
      cache_lib.check_cache(_get_path(config[prefix], "cache"))
      if _get_path(config[prefix], "workers"):   # grain importable
        workers_lib.check_workers(_get_path(config[prefix], "workers"))
  precision.compute_dtype(config)   # model.dtype names a compute dtype
  precision.loss_scale(config)
  profiling.parse_steps(_get_path(config, "train.profile_steps"))
  z_dim = _get_path(config, "model.z_dim")   # the model section is the family's; z_dim is read by every latent model
  if z_dim is not None and (isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1):
    raise ValueError(f"config.model.z_dim={z_dim!r} must be an int >= 1 (the latent size): pass --config.model.z_dim=<N >= 1>")
  mode = _get_path(config, "wandb.mode")
  if mode is not None and mode not in _WANDB_MODES:
    raise ValueError(f"config.wandb.mode={mode!r} is not a wandb mode: pass --config.wandb.mode=<"
                     f"{'|'.join(m for m in _WANDB_MODES if m)}> or leave it empty ($WANDB_MODE, else online)")
  decay = [(n, _get_path(config.nets[n], "ema.decay")) for n in config.get("nets", {}).keys()]
  for name, value in decay:
    if value is not None and value >= 1:
      raise ValueError(f"config.nets.{name}.ema.decay={value!r} must be < 1 (0.999 is typical, 0 = no EMA): "
                       f"pass --config.nets.{name}.ema.decay=<x in [0, 1)>")


def _get_path(section, path):
  for key in path.split("."):
    if not hasattr(section, "keys") or key not in section.keys():
      return None
    section = section[key]
  return section


def _type_of(ref, key):
  """The type a field accepts: a FieldReference's declared type, else its default's type."""
  try:
    kind = ref.get_type(key)
  except (AttributeError, KeyError):
    kind = type(ref[key])
  return None if kind is type(None) else kind


def _check_types(cfg, ref, prefix):
  for key in cfg.keys():
    if key not in ref.keys():
      continue  # _validate_keys reported it
    if isinstance(ref[key], ml_collections.ConfigDict):
      if hasattr(cfg[key], "keys"):
        _check_types(cfg[key], ref[key], f"{prefix}.{key}")
      else:
        raise ValueError(f"config.{prefix}.{key} must be a section (a dict of {sorted(ref[key].keys())}), "
                         f"got {cfg[key]!r}: set its fields, e.g. --config.{prefix}.{key}.{sorted(ref[key].keys())[0]}=...")
      continue
    kind, value = _type_of(ref, key), cfg[key]
    if kind is None or value is None:
      continue
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
          isinstance(value, kind))
    if not ok:
      raise ValueError(f"config.{prefix}.{key}={value!r} is a {type(value).__name__}, not a {kind.__name__}: "
                       f"set it to a {kind.__name__} (--config.{prefix}.{key}=<{kind.__name__}>)")


def _check_keys(cfg, ref, prefix):
  for key in cfg.keys():
    if key not in ref:
      raise ValueError(f"unknown config key '{prefix}.{key}'; valid keys of '{prefix}' are {sorted(ref.keys())}")
    if isinstance(ref[key], ml_collections.ConfigDict):
      _check_keys(cfg[key], ref[key], f"{prefix}.{key}")


def upgrade_legacy_config(d: dict) -> dict:
  """A config dict written before per-network sections (config.json of an older run) in today's
  layout: optim.g/d, sn.*, penalty, train.{ema_*, g_ortho, d_ortho, clip_value} -> nets.*, penalties."""
  if "nets" in d or "optim" not in d:
    return d
  d = {k: v for k, v in d.items()}
  optim, sn, penalty = d.pop("optim"), d.pop("sn", {}), d.pop("penalty", {"name": "none"})
  train = dict(d.get("train", {}))
  nets = {}
  for net in ("g", "d"):
    base = nets_lib.net_config().to_dict()
    base["optim"].update(optim.get(net, {}))
    base["sn"].update(enabled=bool(sn.get(net, False)), n_power_iterations=sn.get("n_power_iterations", 1),
                      include=sn.get("include"), exclude=sn.get(f"{net}_exclude"))
    base["ortho"] = train.pop(f"{net}_ortho", 0.0)
    nets[net] = base
  nets["g"]["ema"] = {"decay": train.pop("ema_decay", 0.0), "start": train.pop("ema_start", 0)}
  nets["d"]["clip"] = train.pop("clip_value", 0.0)
  d["nets"], d["train"] = nets, train
  d["penalties"] = ({} if penalty.get("name", "none") == "none" else
                    {penalty["name"]: {"weight": penalty.get("weight", 0.0),
                                       **{k: v for k, v in penalty.items() if k not in ("name", "weight")}}})
  d.setdefault("method", "gan")
  return d


DATASETS = {
    # name: (image_size for the paper-size models, channels)
    "mnist": 28, "fashion_mnist": 28, "cifar10": 32, "celeb_a": 64,
}


def set_data(c: ml_collections.ConfigDict, name: str) -> None:
  """Points a config at a data set by its standard name."""
  c.data.name = name


def tiny(c: ml_collections.ConfigDict) -> None:
  """Test size: a tiny model, a small batch, a couple of steps."""
  c.model.size = "tiny"
  c.data.batch_size = 8
  c.train.num_steps = 2
  c.train.log_every = 1
  c.train.sample_every = 2
  c.train.checkpoint_every = 2
  c.train.num_sample_images = 4
  c.eval.num_samples = 16


# The data variants of the sized configs: they set only data.name, the preset keeps its resolution
# (images are resized to it), unlike `set_data`, which sets the data set's own image size.
SIZED_DATA_VARIANTS = ("fashion_mnist", "mnist", "cifar10")


def sized_config(arg: str | None, presets, apply_preset, kimg: dict[str, int],
                 default_data: dict[str, str]) -> ml_collections.ConfigDict:
  """`--config=<file>:<size>[,<data>][,tiny]` for configs whose networks come in sizes (StyleGAN,
  StyleGAN2): the size (a key of `presets`, default 'small') set by `apply_preset(c, size)`, the data
  set `default_data.get(size, 'ffhq')` or a SIZED_DATA_VARIANTS name, `kimg[size]` thousand images of
  training, FID in evaluation; the size 'tiny' also applies the 'tiny' variant."""
  variants = [v for v in (arg or "").split(",") if v]
  size = next((v for v in variants if v in presets), "small")
  variants = [v for v in variants if v not in presets]
  c = get_base_config()
  apply_preset(c, size)
  c.data.name = default_data.get(size, "ffhq")
  c.train.num_steps = kimg[size] * 1000 // c.data.batch_size
  c.train.log_every = 100
  c.eval.metrics = "fid"
  for name in SIZED_DATA_VARIANTS:
    if name in variants:
      c.data.name = name
      variants.remove(name)
  if size == "tiny":
    variants.append("tiny")
  return apply_variants(c, ",".join(variants), ())


def apply_variants(c: ml_collections.ConfigDict, arg: str | None, datasets: tuple[str, ...]) -> ml_collections.ConfigDict:
  """Applies a `--config=f.py:variant[,variant...]` argument: data set names and 'tiny'."""
  for variant in (arg or "").split(","):
    variant = variant.strip()
    if not variant:
      continue
    if variant == "tiny":
      tiny(c)
    elif variant in datasets:
      set_data(c, variant)
    else:
      raise ValueError(f"unknown variant {variant!r}; choose from {sorted({'tiny', *datasets})}")
  return c
