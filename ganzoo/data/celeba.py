"""CelebA with attribute labels in the layout of the standard download (`data.name = 'celeba'`).

`data.path` is a folder holding

  img_align_celeba/000001.jpg ...     the aligned 178x218 faces
  list_attr_celeba.txt                line 1: the image count; line 2: the 40 attribute names;
                                      then one line per image: `000001.jpg  -1  1  1 -1 ...`

(yunjey/stargan's data/celeba/images is the same folder of images under another name: point
`data.path` at a folder with these two names, e.g. with a symlink). Labels are the attributes of
`data.attributes` (comma-separated; default StarGAN's Black_Hair, Blond_Hair, Brown_Hair, Male,
Young) as int32 0/1 [N, K]: 1 where the file says '1'.

Split (yunjey/stargan data_loader.py CelebA.preprocess): the lines after the two header lines are
shuffled with Python's `random.seed(1234); random.shuffle(lines)`; line i (0-based) of the
shuffled list is a test image when i + 1 < 2000, so `split='test'` has the first 1,999 and
`split='train'` the rest, each in that shuffled order.

Images (data_loader.py get_loader): CenterCrop(178) (torchvision's offset, round((H - 178) / 2)),
then Resize(image_size) with PIL's BILINEAR filter as torchvision's Resize does on PIL images; the
training flip (RandomHorizontalFlip) is drawn on the devices by the stargan family.
"""

import pathlib
import random

import numpy as np

from ganzoo.data import sources

ATTR_FILE = "list_attr_celeba.txt"
IMAGE_DIR = "img_align_celeba"
DEFAULT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
SPLITS = ("train", "test")
SHUFFLE_SEED = 1234


def split_lines(attr_path, split: str) -> tuple[list[str], list[str]]:
  """(attribute names, the data lines of `split`) in the reference's shuffled order."""
  if split not in SPLITS:
    raise ValueError(f"data.split={split!r}: CelebA's reference split has {SPLITS}")
  with open(attr_path, "r") as f:
    lines = [line.rstrip() for line in f]
  if len(lines) < 3:
    raise ValueError(f"{attr_path} is not a CelebA attribute file (a count line, a names line, then one line "
                     "per image)")
  names = lines[1].split()
  lines = lines[2:]
  random.Random(SHUFFLE_SEED).shuffle(lines)   # == random.seed(1234); random.shuffle(lines)
  test = [line for i, line in enumerate(lines) if (i + 1) < 2000]
  train = [line for i, line in enumerate(lines) if (i + 1) >= 2000]
  keep = test if split == "test" else train
  return names, [line for line in keep if line.strip()]


class CelebASource(sources.LazySource):
  """CelebA images with multi-hot attribute labels [N, K] (module docstring)."""

  def __init__(self, path: str, split: str = "train", attributes=None, size=None, center_crop=None,
               max_examples: int | None = None):
    root = pathlib.Path(path or "").expanduser()
    attr_path, image_dir = root / ATTR_FILE, root / IMAGE_DIR
    if not path or not attr_path.is_file() or not image_dir.is_dir():
      raise sources.DatasetNotFoundError(
          f"CelebA not found in {root if path else '(data.path is not set)'}: set data.path to a folder with "
          f"{IMAGE_DIR}/ and {ATTR_FILE} (the aligned images and attribute list of the CelebA download, "
          "mmlab.ie.cuhk.edu.hk/projects/CelebA.html)")
    self.name = f"celeba {root} ({split})"
    self.attributes = tuple(attributes) if attributes else DEFAULT_ATTRIBUTES
    names, lines = split_lines(attr_path, split)
    missing = [a for a in self.attributes if a not in names]
    if missing:
      raise ValueError(f"data.attributes: {missing} are not in {attr_path}; its attributes are {','.join(names)}")
    idx = [names.index(a) for a in self.attributes]
    if max_examples is not None:
      lines = lines[:int(max_examples)]
    files, labels = [], []
    for line in lines:
      parts = line.split()
      if len(parts) != len(names) + 1:
        raise ValueError(f"{attr_path}: the line {line[:40]!r} has {len(parts) - 1} values for {len(names)} attributes")
      files.append(image_dir / parts[0])
      labels.append([int(parts[1 + i] == "1") for i in idx])
    if not files:
      raise sources.DatasetNotFoundError(f"{attr_path} lists no images of split {split!r}")
    self.files = files
    self.labels = np.asarray(labels, np.int32).reshape(len(files), len(idx))
    self.num_examples = len(files)
    self.num_classes = len(idx)
    self.has_labels = True
    self._size = sources.parse_image_size(size)
    self._crop = center_crop
    self.image_shape = self._read(0)[0].shape

  def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
      with Image.open(self.files[i]) as im:
        image = np.asarray(im.convert("RGB"), np.uint8)
    except Exception as e:  # pylint: disable=broad-except
      raise sources._bad_image(self.files[i], e) from None  # pylint: disable=protected-access
    if self._crop:
      image = sources.center_crop_square(image, self._crop)
    if self._size is not None and tuple(image.shape[:2]) != tuple(self._size):
      h, w = image.shape[:2]
      th, tw = self._size
      if th == tw and h != w:   # Resize(int): the short side to the size, the aspect kept, then a centre square
        image = sources.center_crop_square(image)
      image = np.asarray(Image.fromarray(image).resize((tw, th), Image.BILINEAR), np.uint8)
    return np.ascontiguousarray(image), self.labels[i]

  def get(self, indices) -> dict[str, np.ndarray]:
    indices = np.asarray(indices, np.int64)
    images = np.empty((len(indices),) + tuple(self.image_shape), np.uint8)
    for j, i in enumerate(indices):
      if not 0 <= i < self.num_examples:
        raise IndexError(f"{self.name}: index {i} out of range [0, {self.num_examples}).")
      image, _ = self._read(int(i))
      if image.shape != tuple(self.image_shape):
        raise ValueError(f"{self.name}: example {i} has shape {image.shape}, expected {self.image_shape}; "
                         "set data.image_size")
      images[j] = image
    return {"image": images, "label": self.labels[indices]}
