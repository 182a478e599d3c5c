"""The Inception weights convert without torch on any Python: the real TorchScript file, read by
`torch_archive`, gives the npz that the cache holds (written by `--fetch`, on CI by Python 3.11).

Part of the newest-Python smoke set, where torch is not installed: there it checks that a newer
Python and numpy read the archive to the same bits. tests/test_torch_archive.py checks the reader
against torch itself.
"""

import os

import numpy as np
import pytest

from ganzoo.metrics import weights


@pytest.mark.smoke
def test_real_file_converts_to_the_cached_npz(tmp_path):
  try:
    path = weights.find_torchscript_file()
  except ValueError:
    pytest.skip("the Inception TorchScript file is not on the search path")
  cached = os.path.join(weights.cache_dir(), weights.CONVERTED["torchscript"])
  if not os.path.isfile(cached):
    pytest.skip(f"no converted {cached} to compare with")
  out = weights.convert_file(path, out=str(tmp_path / "converted.npz"))  # Checks the sha256 too.
  with np.load(out) as got, np.load(cached) as want:
    assert str(got["__sha256__"]) == str(want["__sha256__"]) == weights.TORCHSCRIPT_SHA256
    assert sorted(got.files) == sorted(want.files) and len(want.files) == 94 * 2 + 2
    for key in want.files:
      assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
