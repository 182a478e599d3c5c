"""Command line: `python -m ganzoo.main --config=configs/sngan.py[:variant] --workdir=DIR`.

Overrides: `--config.train.num_steps=2000 --config.data.name=mnist`. The same workdir resumes.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from ganzoo import compile_cache
from ganzoo import config_flags
from ganzoo import train

_CONFIG = config_flags.define_config_flag("config", "A config name (sngan) or path (configs/sngan.py), with :variant.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples (resumes).")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Disable the progress bar.")
_CACHE = flags.DEFINE_string("compilation_cache", None,
                             "JAX's persistent compilation cache folder (default $GANZOO_COMPILATION_CACHE or "
                             "~/.cache/ganzoo/jax_cache); 'off' disables it.")
_ALLOW_CHANGE = flags.DEFINE_bool("allow_config_change", False,
                                  "Resume even when the config changes fields that alter the run's results "
                                  "(recorded in WORKDIR/config_changes.jsonl).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  compile_cache.enable(_CACHE.value)
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, progress=not _NO_PROGRESS.value,
                                       allow_config_change=_ALLOW_CHANGE.value)
  except train.Preempted as e:
    print(str(e), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
  except (ValueError, FloatingPointError) as e:
    # User-fixable problems (bad config, missing data, NaN loss) get one line, not a traceback.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"done: step {summary['step']} in {summary['seconds']:.1f}s; workdir {summary['workdir']}")


if __name__ == "__main__":
  app.run(main)
