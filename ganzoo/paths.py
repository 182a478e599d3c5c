"""Workdir paths: a local folder or a URL (`gs://bucket/run`, the usual TPU convention), read and written
with `etils.epath`, the path library of orbax and tfds.

epath routes gs://, s3://, az:// and hf:// to TensorFlow's gfile when TensorFlow is installed and to
fsspec otherwise (gs:// then needs gcsfs: `pip install 'ganzoo[gcs]'`); every other path is a local
one. A local workdir is made absolute (`~` expanded) once, so messages and checkpoints name the same
folder whatever the current directory is; a URL is passed on unchanged (`os.path.abspath` would
turn `gs://b/run` into the local folder `./gs:/b/run`).
"""

import os
import re

from etils import epath

# The schemes epath serves (etils/epath/gpath.py, `_URI_SCHEMES`); any other URL would silently be
# treated as a local relative path by epath, so it is refused instead.
URL_SCHEMES = ("gs", "s3", "az", "hf")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(path) -> bool:
  """Whether `path` is a URL (`scheme://...`), not a local path."""
  return bool(_URL.match(os.fspath(path)))


def resolve(path) -> str:
  """A workdir as a string: a URL unchanged, a local path absolute with `~` expanded. A URL of a
  scheme epath does not serve is a one-line ValueError."""
  path = os.fspath(path)
  match = _URL.match(path)
  if match is None:
    return os.path.abspath(os.path.expanduser(path))
  if match.group(1) not in URL_SCHEMES:
    raise ValueError(f"{path}: {match.group(1)}:// is not a supported workdir; use a local folder or a "
                     f"{', '.join(s + '://' for s in URL_SCHEMES)} URL")
  return path


def join(path, *parts: str) -> str:
  """`os.path.join` that keeps a URL a URL (`gs://b/run` + `metrics.jsonl`)."""
  return os.fspath(epath.Path(path).joinpath(*parts))


def exists(path) -> bool:
  return epath.Path(path).exists()


def makedirs(path) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def read_text(path) -> str:
  return epath.Path(path).read_text()


def write_text(path, text: str) -> None:
  epath.Path(path).write_text(text)


def write_bytes(path, data: bytes) -> None:
  epath.Path(path).write_bytes(data)


def append_text(path, text: str) -> None:
  """Appends `text` to a file (created when absent). Cloud objects cannot be appended to (GCS objects
  are immutable; gcsfs's GCSFile takes modes 'rb' and 'wb' only), so on a URL the object is read and
  written again whole; this is for small files written rarely (config_changes.jsonl, one evaluation
  line in metrics.jsonl). Locally it is a plain append."""
  p = epath.Path(path)
  if not is_url(path):
    with p.open("a") as f:
      f.write(text)
    return
  old = p.read_text() if p.exists() else ""
  p.write_text(old + text)


def remove(path) -> None:
  epath.Path(path).unlink()
