"""torch_archive (numpy-only reader of TorchScript and torch.save files) against torch itself.

Equality is bitwise (np.array_equal on same-dtype arrays): the reader copies the stored bytes, so
there is nothing to round. Needs torch for the reference side; the Inception file is used when it
is on the search path and skipped otherwise.
"""

import collections
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from ganzoo.metrics import torch_archive, weights

torch = pytest.importorskip("torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _assert_same(ours, theirs):
  """Same keys in the same order, same dtype, shape and bits."""
  assert list(ours) == list(theirs)
  for key, value in theirs.items():
    want = value.detach().numpy() if value.dtype != torch.bfloat16 else value.view(torch.int16).numpy()
    got = ours[key] if value.dtype != torch.bfloat16 else ours[key].view(np.int16)
    assert got.dtype == want.dtype and got.shape == want.shape, key
    assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), key


def _real_torchscript_file():
  try:
    return weights.find_torchscript_file()
  except ValueError:
    pytest.skip("the Inception TorchScript file is not on the search path")


def test_real_inception_torchscript_file_bitwise():
  path = _real_torchscript_file()
  want = torch.jit.load(path, map_location="cpu").state_dict()
  got = torch_archive.torchscript_state_dict(path)
  assert len(got) == 94 * 4  # 94 conv+BN layers: weight, beta, mean, var.
  _assert_same(got, want)


class _Leaf(torch.nn.Module):
  """Parameters, a BatchNorm (int64 buffer), buffers of several dtypes, views and shared storage."""

  def __init__(self):
    super().__init__()
    self.conv = torch.nn.Conv2d(3, 4, 3, bias=False)
    self.bn = torch.nn.BatchNorm2d(4)
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6) / 7
    self.register_buffer("transposed", base.t())  # non-contiguous: stride (1, 6).
    self.register_buffer("offset_a", base[1:, 2:])  # storage offset 8, shares base's storage...
    self.register_buffer("offset_b", base[:2])  # ...with this one.
    self.register_buffer("f16", torch.linspace(-3, 3, 5, dtype=torch.float16))
    self.register_buffer("bf16", torch.tensor([1.5, -2.25, 3e38], dtype=torch.bfloat16))
    self.register_buffer("ints", torch.tensor([[-7, 2 ** 31 - 1]], dtype=torch.int32))
    self.register_buffer("mask", torch.tensor([True, False, True]))
    self.register_buffer("bytes_", torch.tensor([0, 255], dtype=torch.uint8))
    self.register_buffer("scalar", torch.tensor(float("nan")))
    self.register_buffer("empty", torch.zeros(0, 3))
    self.plain = torch.ones(2)  # A plain tensor attribute: not in the state dict.

  def forward(self, x):
    return self.bn(self.conv(x)) + self.plain.sum()


class _Net(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.body = torch.nn.Sequential(_Leaf(), torch.nn.ReLU(), _Leaf())
    self.head = torch.nn.Linear(4, 2)
    self.head.weight.data = torch.randn(2, 4).t().contiguous().t()  # Parameter with strides (1, 2).

  def forward(self, x):
    return self.head(self.body(x).mean((2, 3)))


def test_synthetic_torchscript_bitwise(tmp_path):
  torch.manual_seed(0)
  net = torch.jit.script(_Net())
  path = str(tmp_path / "net.pt")
  net.save(path)
  want = torch.jit.load(path, map_location="cpu").state_dict()
  assert "body.0.bn.num_batches_tracked" in want and "body.0.plain" not in want
  _assert_same(torch_archive.torchscript_state_dict(path), want)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_synthetic_torch_save_bitwise(tmp_path, zip_format):
  torch.manual_seed(0)
  sd = _Net().state_dict()
  base = torch.randn(5, 3)
  sd["view_t"] = base.t()
  sd["view_row"] = base[2]  # offset 6 into the same storage as view_t.
  sd["param"] = torch.nn.Parameter(torch.randn(3))
  sd["step"] = 7  # a non-tensor entry: dropped, like weights' `.numpy()` of tensors only.
  path = str(tmp_path / "sd.pth")
  torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
  assert zipfile.is_zipfile(path) == zip_format
  want = torch.load(path, map_location="cpu", weights_only=True)
  assert want["step"] == 7
  _assert_same(torch_archive.saved_state_dict(path), {k: v for k, v in want.items() if k != "step"})


def test_foreign_objects_and_files_are_one_line_errors(tmp_path):
  path = str(tmp_path / "counter.pth")
  torch.save({"c": collections.Counter("ab")}, path)
  with pytest.raises(ValueError, match="unsupported object collections.Counter"):
    torch_archive.load(path)
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"not a torch file")
  with pytest.raises(ValueError, match="neither a zip archive nor a legacy torch.save file"):
    torch_archive.load(str(junk))
  with pytest.raises(ValueError, match="not a TorchScript archive"):
    torch_archive.torchscript_state_dict(str(tmp_path / "counter.pth"))


class _Conv2dLayer(torch.nn.Module):
  """The TorchScript Inception's layer layout (weight, beta, mean, var parameters), tiny."""

  def __init__(self, c_in, c_out):
    super().__init__()
    self.weight = torch.nn.Parameter(torch.randn(c_out, c_in, 3, 3))
    self.beta = torch.nn.Parameter(torch.randn(c_out))
    self.mean = torch.nn.Parameter(torch.randn(c_out))
    self.var = torch.nn.Parameter(torch.rand(c_out) + 0.5)

  def forward(self, x):
    return torch.nn.functional.batch_norm(torch.nn.functional.conv2d(x, self.weight), self.mean,
                                          self.var, None, self.beta, False, 0.1, 1e-3)


class _Inner(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.layers = torch.nn.Sequential(collections.OrderedDict(
        conv=_Conv2dLayer(3, 4), conv_1=_Conv2dLayer(4, 5)))

  def forward(self, x):
    return self.layers(x)


class _Wrap(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.net = _Inner()

  def forward(self, x):
    return self.net(x)


def _tiny_inception_like(tmp_path) -> str:
  torch.manual_seed(0)
  path = str(tmp_path / "tiny_ts.pt")
  torch.jit.script(_Wrap()).save(path)
  return path


_CONVERT_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` now raises ImportError, as without torch installed.
from ganzoo.metrics import weights
weights.convert_file(sys.argv[1], check_hash=sys.argv[1].endswith("default_1.pt"), out=sys.argv[2])
assert sys.modules["torch"] is None
"""


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_conversion_without_torch_gives_torchs_npz(tmp_path, which):
  """The torch-free conversion (torch unimportable) writes the npz that torch's reader would."""
  path = _tiny_inception_like(tmp_path) if which == "tiny" else _real_torchscript_file()
  out = str(tmp_path / "converted.npz")
  subprocess.run([sys.executable, "-c", _CONVERT_WITHOUT_TORCH, path, out], cwd=REPO, check=True,
                 env={**os.environ, "PYTHONPATH": REPO})
  sd = torch.jit.load(path, map_location="cpu").state_dict()
  want = weights.convert_torchscript_state_dict({k: v.detach().numpy() for k, v in sd.items()})
  with np.load(out) as z:
    assert str(z["__sha256__"]) == weights.sha256_file(path)
    got = {k: z[k] for k in z.files if not k.startswith("__")}
  assert list(got) == list(want) and len(want) == (94 if which == "real" else 2) * 2
  for key, value in want.items():
    assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
