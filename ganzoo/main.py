"""Command line: `python -m ganzoo.main --config=configs/sngan.py[:variant] --workdir=DIR`.

Overrides: `--config.train.num_steps=2000 --config.data.name=mnist`. The same workdir resumes.

JAX's own options are flags too (`jax.config.config_with_absl()`): `--jax_platforms=cpu`,
`--jax_debug_nans`, `--jax_log_compiles`, `--jax_compilation_cache_dir=DIR`, ... (`--helpfull` lists
them); they are set before anything is built, as the same JAX_* environment variables would be.

A bad input (a typo in an override, a value of the wrong type, a missing config file, data set or
weights file, a workdir that cannot be written) ends in one line `error: <what>: <what to do>` and
exit code 1; `--verbose` (or GANZOO_VERBOSE=1) shows the traceback instead.
"""

import sys

from absl import app
from absl import flags
from absl import logging
import jax

from ganzoo import compile_cache
from ganzoo import config as config_lib
from ganzoo import config_flags
from ganzoo import runs
from ganzoo import train

_CONFIG = config_flags.define_config_flag("config", "A config name (sngan) or path (configs/sngan.py), with :variant.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples (resumes).")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Disable the progress bar.")
_CACHE = flags.DEFINE_string("compilation_cache", None,
                             "JAX's persistent compilation cache folder (default $GANZOO_COMPILATION_CACHE or "
                             "~/.cache/ganzoo/jax_cache); 'off' disables it. A folder given to JAX itself "
                             "(--jax_compilation_cache_dir or $JAX_COMPILATION_CACHE_DIR) wins over this flag.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the traceback of an error instead of one line "
                             f"(also ${config_flags.VERBOSE_ENV}=1).")
_ALLOW_CHANGE = flags.DEFINE_bool("allow_config_change", False,
                                  "Resume even when the config changes fields that alter the run's results "
                                  "(recorded in WORKDIR/config_changes.jsonl).")
flags.mark_flags_as_required(["config", "workdir"])


def preflight(config, workdir: str) -> None:
  """The checks that need no JAX computation, before anything is built or written: the config's
  keys and values, a workdir that can be written, the Inception weights when evaluation is on."""
  config_lib.validate_config(config)
  runs.check_workdir(workdir)
  runs.check_eval_weights(config)


def main(argv):
  if len(argv) > 1:
    config_flags.report_error(ValueError(f"unexpected arguments {argv[1:]}: pass flags as --name=value "
                                         "(quote values with spaces)"))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  try:
    compile_cache.enable(_CACHE.value)
    preflight(_CONFIG.value, _WORKDIR.value)
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, progress=not _NO_PROGRESS.value,
                                       allow_config_change=_ALLOW_CHANGE.value)
  except train.Preempted as e:
    print(str(e), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
  except config_flags.USER_ERRORS as e:
    # User-fixable problems (bad config, missing data, NaN loss) get one line, not a traceback.
    if _VERBOSE.value or config_flags.verbose():
      raise
    config_flags.report_error(e)
  print(f"done: step {summary['step']} in {summary['seconds']:.1f}s; workdir {summary['workdir']}")


if __name__ == "__main__":
  jax.config.config_with_absl()   # --jax_platforms, --jax_debug_nans, ...: JAX's options as flags
  app.run(main, flags_parser=config_flags.parse_flags)
