"""ganzoo input pipeline: data sets -> deterministic numpy batches, sharded per process.

The trainer calls ``build_dataset(config.data, seed)`` and iterates
``prefetch(ds.batches(start_step, global_batch_size, steps_per_call))``; it puts batches on
devices itself. Evaluation code calls ``load_images(name, split, ...)`` for reference images.

Config fields read from ``config.data`` (missing or None fields take the default):
  name:        'fashion_mnist', 'mnist', or any tfds name ('cifar10', 'celeb_a', 'svhn_cropped',
               'stl10', ...); 'npz' or 'folder' (with ``path``); 'ring8' or 'grid25' (synthetic 2-D).
  split:       'train' (default), 'test', or any tfds split string ('train[:90%]'); IDX files have
               'train' and 'test' (t10k), with tfds-style slices ('train[:50%]', 'train[30000:]').
               Ignored by npz; for 'folder', the subfolder ``path/<split>`` when there is one
               (CycleGAN's trainA/ testB/ ..., pix2pix's train/ val/ test/), else ignored.
  source:      'auto' (default), 'idx', 'tfds', 'npz', 'folder' or 'synthetic'. 'auto' picks
               synthetic for ring8/grid25, npz/folder for those names, IDX files for
               mnist/fashion_mnist when found (else tfds), and tfds for everything else.
  data_dir:    a folder searched first for IDX files (itself and <data_dir>/<name>/), and the tfds
               ``data_dir`` (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
  download:    True (default): a tfds data set that is not prepared in ``data_dir`` is downloaded
               and prepared there first (ArrayRecord, tfds' progress bars; ``sources.prepare_tfds``);
               False never touches the network.
  path:        the .npz file or image folder (for source 'idx', a folder with the IDX files).
  image_size:  int or (H, W): resize when different from the stored size (PIL BICUBIC,
               antialiased when shrinking). Default: stored size (64 for celeb_a).
  center_crop: optional int: center crop side before resizing (default 108 for celeb_a, 0 = off).
  batch_size:  the global batch size (all processes); B_local = batch_size // process_count.
  prefetch:    host batches a background thread reads ahead (default 2).
  device_prefetch: batches the trainer copies to the devices ahead of the step: -1 (default) = 1
               on GPU/TPU (batch k + 1 is copied while step k runs), 0 on CPU; 0 = when the step
               asks; k = k ahead (``device_prefetch``).
  cache:       '' (default), 'memory' or a folder: decode a decoding source (folder, tfds, celeba)
               once into uint8 arrays, kept in memory or as .npy files reused by later runs
               (``ganzoo.data.cache``).
  workers:     0 (default) or N: decode in N grain worker processes (``pip install 'ganzoo[grain]'``),
               the same batches as in-process (``ganzoo.data.workers``).
  num_classes: optional override of the number of classes.
  max_examples: optional int: keep only the first N examples (quick runs, tests).
  attributes:  'celeba' only (``ganzoo.data.celeba``; ``path`` = a folder with img_align_celeba/ and
               list_attr_celeba.txt, split 'train'/'test' as yunjey/stargan): comma-separated
               attributes read as multi-hot labels, int32 [N, K] instead of [N].

IDX search order for mnist/fashion_mnist: ``data_dir``, ``data_dir/<name>``,
``$GANZOO_DATA_DIR/<name>``, ``~/.cache/ganzoo/<name>``, and for fashion_mnist the Debian package
folder /usr/share/datasets/fashion-mnist (``apt-get install dataset-fashion-mnist``). Files:
``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (gzip detected from the content).
tfds data sets are read without TensorFlow: an ArrayRecord copy with ``tfds.data_source``, a
TFRecord copy (what ``tfds build`` writes by default) with ``ganzoo.data.tfrecord``, in the same
example order; ``download`` prepares a missing one (process 0 first in a multi-process run). A
missing data set raises ``DatasetNotFoundError`` (a ValueError) whose one-line message says how to
get it (offline, manual downloads, TensorFlow needed to encode images).

Training reads named streams with ``Dataset.read(stream, offset, count, batch_size)``: uint8 pixels
(mapped to [-1, 1] on the devices by ``ganzoo.step``), labels int32, a batch being a pure function
of (seed, stream name, example offset); see ``Dataset``. ``Dataset.batches`` is the same stream as
float32 [-1, 1] batches for notebooks and tools. Synthetic 2-D data is float32 [.., 2], unscaled,
labelled by mode index. A non-square image resized to a square ``image_size`` is first
centre-cropped on its long edge.
"""

from ganzoo.data import synthetic
from ganzoo.data.pipeline import build_dataset
from ganzoo.data.pipeline import Dataset
from ganzoo.data.pipeline import device_prefetch
from ganzoo.data.pipeline import device_prefetch_size
from ganzoo.data.pipeline import DevicePrefetcher
from ganzoo.data.pipeline import load_images
from ganzoo.data.pipeline import prefetch
from ganzoo.data.pipeline import Prefetcher
from ganzoo.data.pipeline import stream_permutation
from ganzoo.data.pipeline import to_float
from ganzoo.data.sources import ArraySource
from ganzoo.data.sources import DatasetNotFoundError
from ganzoo.data.sources import FolderSource
from ganzoo.data.sources import open_source
from ganzoo.data.sources import read_idx
from ganzoo.data.sources import TfdsSource

__all__ = [
    'ArraySource', 'Dataset', 'DatasetNotFoundError', 'DevicePrefetcher', 'FolderSource', 'Prefetcher', 'TfdsSource',
    'build_dataset', 'device_prefetch', 'device_prefetch_size', 'stream_permutation', 'load_images', 'open_source', 'prefetch', 'read_idx',
    'synthetic', 'to_float',
]
