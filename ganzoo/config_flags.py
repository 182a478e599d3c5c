"""`--config` that takes a config name as well as a path, from any working directory.

  python -m ganzoo.main --config=sngan:fashion_mnist --workdir=W         # a name, from anywhere
  python -m ganzoo.main --config=configs/sngan.py:fashion_mnist --workdir=W  # a path, as before
  python -m ganzoo.main --config=~/my_gan.py:tiny --config.train.num_steps=10 --workdir=W

The flag is ml_collections' ``DEFINE_config_file`` (big_vision's `--config=f.py:variant` and
`--config.a.b=v` overrides of a locked config) with one step in front: ``resolve_config_path``
turns the argument into a path before ml_collections loads it.
"""

from __future__ import annotations

import os
import pathlib

from absl import flags
from ml_collections import config_flags

import ganzoo

CONFIG_DIR_ENV = "GANZOO_CONFIG_DIR"


def repo_root() -> pathlib.Path:
  """The folder that holds the ganzoo package (the repository root for an editable install)."""
  return pathlib.Path(os.path.dirname(os.path.dirname(os.path.abspath(ganzoo.__file__))))


def config_dirs() -> list[pathlib.Path]:
  """Folders searched for config names, in order: <repo>/configs, then each $GANZOO_CONFIG_DIR entry.

  The repository's configs come first, so a built-in name always means the same file;
  GANZOO_CONFIG_DIR (os.pathsep-separated) adds names of your own.
  """
  dirs = [repo_root() / "configs"]
  for d in os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep):
    if d:
      dirs.append(pathlib.Path(d).expanduser())
  return [d for d in dirs if d.is_dir()]


def available_configs() -> list[str]:
  """Sorted config names (file stems) in ``config_dirs()``; files starting with '_' are skipped."""
  return sorted({p.stem for d in config_dirs() for p in d.glob("*.py") if not p.name.startswith("_")})


def resolve_config_path(spec: str) -> str:
  """``'name[.py][:variant]'`` or ``'path[:variant]'`` -> ``'existing/path.py[:variant]'``.

  A path that exists (relative to the working directory, ``~`` expanded) is kept as given. A
  relative path is then tried from the repository root (so ``configs/sngan.py`` works from any
  folder). A bare name (``sngan``, ``sngan.py``) is looked up in ``config_dirs()``. As in
  ml_collections, everything after the first ':' is the variant passed to ``get_config``.

  Raises:
    ValueError: the file is not found; the one-line message lists the available names.
  """
  path, sep, variant = spec.partition(":")
  if not path:
    raise ValueError(f"--config is empty: pass a config name or path, one of {_names_hint()}.")
  if os.path.exists(os.path.expanduser(path)):
    return spec if path == os.path.expanduser(path) else os.path.expanduser(path) + sep + variant
  candidates = []
  if not os.path.isabs(os.path.expanduser(path)):
    candidates.append(repo_root() / path)
  if os.sep not in path and "/" not in path:
    name = path if path.endswith(".py") else path + ".py"
    candidates += [d / name for d in config_dirs()]
  for c in candidates:
    if c.is_file():
      return str(c) + sep + variant
  raise ValueError(f"config {path!r} not found (working directory {os.getcwd()}): "
                   f"use a path to a config .py file or one of {_names_hint()}.")


def _names_hint() -> str:
  names = available_configs()
  dirs = ", ".join(str(d) for d in config_dirs()) or "none found"
  listed = ", ".join(names) if names else "(no configs found)"
  return f"{listed} (searched {dirs}; set {CONFIG_DIR_ENV} to add a folder)"


class ConfigNameParser(flags.ArgumentParser):
  """Wraps ml_collections' config file parser: ``resolve_config_path`` first, then load."""

  def __init__(self, inner: flags.ArgumentParser):
    self.inner = inner

  def parse(self, argument):
    return self.inner.parse(resolve_config_path(argument))

  def flag_type(self):
    return self.inner.flag_type()


def define_config_flag(name: str = "config",
                       help: str = "A config name (sngan) or path (configs/sngan.py), with :variant.",  # pylint: disable=redefined-builtin
                       lock_config: bool = True, default: str | None = None,
                       flag_values: flags.FlagValues = flags.FLAGS,
                       sys_argv: list[str] | None = None) -> flags.FlagHolder:
  """Defines ``--<name>`` as ``config_flags.DEFINE_config_file`` does, accepting config names too.

  ``--<name>.a.b=v`` overrides work as before, and an override of a field that the config does
  not have is still an error (the config is locked). ``sys_argv`` is for parsing an argv other
  than ``sys.argv`` (tests); see ``DEFINE_config_file``.

  Returns:
    The flag holder; ``.value`` is the loaded ConfigDict after flags are parsed.
  """
  holder = config_flags.DEFINE_config_file(
      name, None if default is None else resolve_config_path(default), help,
      flag_values=flag_values, lock_config=lock_config, sys_argv=sys_argv)
  flag = flag_values[name]
  flag.parser = ConfigNameParser(flag.parser)
  return holder
