"""`--config` that takes a config name as well as a path, from any working directory.

  python -m ganzoo.main --config=sngan:fashion_mnist --workdir=W         # a name, from anywhere
  python -m ganzoo.main --config=configs/sngan.py:fashion_mnist --workdir=W  # a path, as before
  python -m ganzoo.main --config=~/my_gan.py:tiny --config.train.num_steps=10 --workdir=W

The flag is ml_collections' ``DEFINE_config_file`` (big_vision's `--config=f.py:variant` and
`--config.a.b=v` overrides of a locked config) with one step in front: ``resolve_config_path``
turns the argument into a path before ml_collections loads it, and one step after: every
``--config.a.b`` override is checked against the loaded config, so a typo is one line that lists
the valid keys (ml_collections itself raises a KeyError traceback while defining the override).

A bad command line is one line too: ``parse_flags`` (the ``flags_parser`` of ``app.run`` in the
CLIs) turns any error raised while the flags and the config file are parsed into
``error: <what is wrong>: <what to do>`` and exit code 1; ``report_error`` does the same for the
errors a run raises. ``--verbose`` or ``GANZOO_VERBOSE=1`` re-raises instead, with the traceback.
"""

from __future__ import annotations

import difflib
import os
import pathlib
import re
import sys
from typing import Any, NoReturn, Sequence

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


def _one_line(exc: BaseException) -> str:
  """``Type: first line of the message`` of an exception raised by code that is not ganzoo's."""
  lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
  return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _walk(config: Any, path: str) -> tuple[Any, str, str] | None:
  """The first segment of the dotted ``path`` that ``config`` lacks: (its parent, parent path,
  missing key), or None when every segment exists (or the walk reaches a value that is not a dict:
  ml_collections' own parser then judges the rest, e.g. a tuple index)."""
  node, done = config, []
  for key in path.split("."):
    key = key.split("[", 1)[0]
    if not hasattr(node, "keys") or not callable(node.keys):
      return None
    if key not in node.keys():
      return node, ".".join(done), key
    node, done = node[key], done + [key]
  return None


def check_overrides(config: Any, paths: Sequence[str], name: str = "config") -> None:
  """Raises a one-line ValueError for the first ``--<name>.<path>`` whose key ``config`` lacks.

  The message names the nearest valid keys (difflib) and the keys of the section, so the fix is in
  the line: ``--config.train.num_step=5`` -> "did you mean 'train.num_steps'?".
  """
  for path in paths:
    missing = _walk(config, path)
    if missing is None:
      continue
    parent, prefix, key = missing
    keys = sorted(str(k) for k in parent.keys())
    where = f"'{prefix}'" if prefix else "the config"
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    full = lambda k: f"{prefix}.{k}" if prefix else k  # noqa: E731
    hint = f"did you mean {' or '.join(repr(full(k)) for k in close)}? " if close else ""
    listed = f"the keys of {where} are {keys}" if keys else (
        f"{where} has no keys here: add the entry in the config file")
    raise ValueError(f"--{name}.{path}: {where} has no key {key!r}; {hint}{listed}")


def override_paths(argv: Sequence[str], name: str = "config") -> list[str]:
  """The dotted paths of the ``--<name>.a.b[=v]`` / ``--no<name>.a.b`` arguments, as ml_collections
  reads them."""
  pattern = re.compile(r"-{1,2}(no)?%s\." % re.escape(name))
  return [arg.split("=", 1)[0].split(".", 1)[1] for arg in argv if pattern.match(arg)]


class ConfigNameParser(flags.ArgumentParser):
  """Wraps ml_collections' config file parser: ``resolve_config_path`` first, then load, then check
  the overrides on the command line against the loaded config.

  Every failure is a one-line ValueError (absl reports it as ``flag --config=...: <message>``):
  ml_collections re-raises a ValueError of ``get_config`` (an unknown variant) with a whole
  traceback pasted into its message, and lets other errors of the file (SyntaxError, NameError)
  escape as tracebacks; here the message is the original error's own line.
  """

  def __init__(self, inner: flags.ArgumentParser, name: str = "config",
               flag_values: flags.FlagValues | None = None, sys_argv: list[str] | None = None):
    self.inner = inner
    self.name = name
    self.flag_values = flag_values
    self.sys_argv = sys_argv

  def parse(self, argument):
    path = resolve_config_path(argument)
    try:
      config = self.inner.parse(path)
    except (TypeError, ValueError) as e:
      cause = e.__context__ if e.__context__ is not None else e  # the error get_config raised
      raise ValueError(str(cause) if isinstance(cause, ValueError) else _one_line(cause)) from cause
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"config file {path.split(':', 1)[0]} failed to load ({_one_line(e)}): fix the file "
                       "(--verbose shows the traceback)") from e
    error = getattr(type(config), "_ReportError", None) and object.__getattribute__(config, "_error")
    if error:  # ml_collections defers an IOError of loading until the config is used
      raise ValueError(f"config file {path.split(':', 1)[0]} could not be read ({_one_line(error)}): "
                       "pass a readable config .py file") from error
    if config is None:
      raise ValueError(f"get_config() of {path.split(':', 1)[0]} returned None: make it return the ConfigDict")
    argv = sys.argv if self.sys_argv is None else self.sys_argv
    if self.flag_values is not None:
      argv = self.flag_values.read_flags_from_files(argv, force_gnu=False)
    check_overrides(config, override_paths(argv, self.name), self.name)
    return config

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
  flag.parser = ConfigNameParser(flag.parser, name, flag_values, sys_argv)
  return holder


# ---------------------------------------------------------------------------------------------
# One-line errors for the command-line programs.

VERBOSE_ENV = "GANZOO_VERBOSE"
_VERBOSE_ARG = re.compile(r"^--?verbose(=(1|true|yes|t|y))?$", re.IGNORECASE)
# What a user can fix: a bad value (ValueError; DatasetNotFoundError is one), a diverged run
# (FloatingPointError), a file or folder that cannot be read or written (OSError). Anything else
# is a bug of ganzoo and keeps its traceback.
USER_ERRORS = (ValueError, FloatingPointError, OSError)


def verbose(argv: Sequence[str] | None = None) -> bool:
  """Whether ``--verbose`` (or ``--verbose=true``) is in ``argv`` (default sys.argv) or
  $GANZOO_VERBOSE is set to anything but '', '0' or 'false': then errors show their traceback.

  Read from argv rather than the parsed flag because flag parsing itself may be what failed.
  """
  argv = sys.argv if argv is None else argv
  if os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
    return True
  return any(_VERBOSE_ARG.match(a) for a in argv[1:])


def error_message(exc: BaseException, flag_values: flags.FlagValues = flags.FLAGS) -> str:
  """The one line ``error: ...`` for an exception (a flag error, a user error of a run)."""
  text = str(exc).strip()
  if isinstance(exc, flags.Error):
    required = re.search(r"Flag --(\w+) must have a value other than None", text)
    if required:
      return f"--{required.group(1)} is required: pass --{required.group(1)}=..."
    override = re.match(r"flag --(\w+)\.([\w.\[\]]+)=(.*?): (.*)", text, re.DOTALL)
    if override and override.group(1) in flag_values:
      name, path, value, why = override.groups()
      expected = _override_type(flag_values[name].value, path)
      if expected:
        return (f"--{name}.{path}={value}: not a valid {expected} ({_first(why)}); pass "
                f"--{name}.{path}=<{expected}>")
    if isinstance(exc, flags.UnrecognizedFlagError):
      return f"{_first(text)}; see --helpfull for the flags"
    # absl's "flag --config=x: <message>": the override checks name their own flag.
    own = re.match(r"flag --\w+=.*?: (--\w+\..*)", text, re.DOTALL)
    return _first(own.group(1) if own else re.sub(r"^flag ", "", text))
  if isinstance(exc, OSError) and not isinstance(exc, ValueError):
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return (f"{exc.strerror or _one_line(exc)}{where}: check that the path exists and can be written "
            "(--verbose shows the traceback)")
  return _first(text) if text else type(exc).__name__


def _first(text: str) -> str:
  """One line of a message: the first, with a pointer to the rest when there is more."""
  lines = [line for line in text.strip().splitlines() if line.strip()]
  if len(lines) <= 1:
    return lines[0].strip() if lines else ""
  return f"{lines[0].strip()} [...] (--verbose shows the whole message and the traceback)"


def _override_type(config: Any, path: str) -> str | None:
  """The type name of the config field ``path`` ('int', 'float', ...), or None."""
  try:
    holder, key = config, path.split(".")
    for k in key[:-1]:
      holder = holder[k]
    kind = holder.get_type(key[-1])
  except Exception:  # pylint: disable=broad-except
    return None
  return getattr(kind, "__name__", None)


def report_error(exc: BaseException, flag_values: flags.FlagValues = flags.FLAGS) -> NoReturn:
  """Prints ``error: <one line>`` to stderr and exits with status 1."""
  print(f"error: {error_message(exc, flag_values)}", file=sys.stderr, flush=True)
  sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
  """``app.run``'s ``flags_parser``: parses ``flags.FLAGS``; any error (a bad flag value, an
  unknown override key, a config file that is missing or fails to load) is one ``error:`` line
  and exit code 1 -- absl's own parser prints tracebacks for the errors ml_collections raises
  and ends with a line about --helpfull. With ``verbose(argv)`` the error is re-raised."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    if verbose(argv):
      raise
    report_error(e)
