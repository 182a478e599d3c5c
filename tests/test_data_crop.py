"""Non-square images resized to a square are centre-cropped first (BigGAN-PyTorch CenterCropLongEdge)."""

import numpy as np
import pytest
from PIL import Image

from ganzoo import data
from ganzoo.data import sources

BORDER = (255, 0, 0)  # the colour of the columns/rows that the long-edge crop must remove


def _framed(h, w, margin, axis):
  """uint8 [h, w, 3]: a random centre square whose long-edge margins are pure BORDER."""
  rng = np.random.default_rng(0)
  image = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
  image[..., 0] = np.minimum(image[..., 0], 100)  # no centre pixel is near BORDER
  if axis == 1:
    image[:, :margin] = image[:, w - margin:] = BORDER
  else:
    image[:margin] = image[h - margin:] = BORDER
  return image


def _bicubic(image, side):
  return np.asarray(Image.fromarray(image, 'RGB').resize((side, side), Image.BICUBIC))


@pytest.mark.parametrize('h,w,axis', [(40, 60, 1), (60, 40, 0)])
def test_folder_source_crops_long_edge_before_resize(tmp_path, h, w, axis):
  image = _framed(h, w, 10, axis)
  (tmp_path / 'imgs').mkdir()
  for i in range(2):
    Image.fromarray(image).save(tmp_path / 'imgs' / f'{i}.png')
  out = data.load_images('folder', path=str(tmp_path / 'imgs'), image_size=20)['image']
  assert out.shape == (2, 20, 20, 3)
  square = image[:, 10:50] if axis == 1 else image[10:50]
  np.testing.assert_array_equal(out[0], _bicubic(np.ascontiguousarray(square), 20))
  np.testing.assert_array_equal(out[1], out[0])
  assert not np.any(np.all(out == BORDER, -1))
  squashed = _bicubic(image, 20)  # the old behaviour: the red margins survive the resize
  assert np.sum(squashed[..., 0] > 200) > 0 and np.sum(out[..., 0] > 200) == 0


def test_odd_margin_rounds_like_torchvision():
  """torchvision center_crop: top = int(round((H - side) / 2)); 7 -> 4 rows: top = round(1.5) = 2."""
  image = np.arange(7 * 4, dtype=np.uint8).reshape(7, 4, 1)
  np.testing.assert_array_equal(sources.center_crop_square(image), image[2:6])
  np.testing.assert_array_equal(sources.center_crop_square(image[:6]), image[1:5])


def test_explicit_center_crop_and_non_square_size_keep_their_meaning():
  image = _framed(40, 60, 10, 1)
  # An explicit crop side wins over the long-edge crop.
  np.testing.assert_array_equal(sources.transform_image(image, (10, 10), center_crop=20),
                                _bicubic(np.ascontiguousarray(image[10:30, 20:40]), 10))
  # A non-square target resizes the whole frame; same-size images are untouched.
  whole = sources.transform_image(image, (20, 30))
  assert whole.shape == (20, 30, 3) and np.sum(whole[..., 0] > 200) > 0
  np.testing.assert_array_equal(sources.transform_image(image), image)
  square = image[:, 10:50]
  np.testing.assert_array_equal(sources.transform_image(np.ascontiguousarray(square), (40, 40)), square)
