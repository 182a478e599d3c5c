"""Orbax checkpoints of the whole TrainState: save every N steps, keep the last few, resume the newest.

A checkpoint that fails to restore because it is unreadable (corrupted files, a disk error) is
reported, moved to `<dir>_failed/` and the next older one is tried, so a damaged save never loses
the run. A checkpoint that reads fine but holds another model's state (its tree of arrays or their
shapes differ from this model's: the workdir of another run) is an error (`CheckpointMismatchError`,
one line) and nothing is moved: falling back would silently discard that run.
On several processes every process tries the step, the outcomes are gathered, and all of them take
the same decision; only process 0 moves a broken checkpoint aside.
A checkpoint written before the training protocol (the one-G/one-D `GANState` layout) is read into
that layout and upgraded (`ganzoo.state.upgrade_gan_state`).
"""

import logging
import os
import time

import jax
import orbax.checkpoint as ocp
from etils import epath

from ganzoo import parallel
from ganzoo import paths
from ganzoo import state as state_lib
from ganzoo.state import TrainState

# Outcomes of trying one step, ordered so that the worst outcome over processes is their max.
_OK, _BROKEN, _MISMATCH = 0, 1, 2


class CheckpointMismatchError(ValueError):
  """A checkpoint that is readable but holds the state of a different model (another run's workdir)."""


class Checkpointer:
  """Thin wrapper around `ocp.CheckpointManager` for one TrainState directory."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    # orbax reads and writes URLs (gs://...) itself (epath, tensorstore): a URL is passed unchanged.
    self.directory = paths.resolve(directory)
    # The explicit item handler lets `item_metadata` read a step's tree before anything restores it.
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler())

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: TrainState, force: bool = False) -> bool:
    """Saves asynchronously; returns whether a save started. Call `wait()` before exiting."""
    return self._manager.save(int(step), args=ocp.args.StandardSave(state), force=force)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, step: int, target: TrainState) -> TrainState:
    """Restores `step` onto the shapes, dtypes and shardings of `target` (a state or its eval_shape);
    a pre-protocol GANState checkpoint of a {'g', 'd'} family is upgraded."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      return self._manager.restore(int(step), args=ocp.args.StandardRestore(abstract))
    except Exception:  # pylint: disable=broad-except
      if not self._is_legacy(step) or set(getattr(target, "nets", {})) != {"g", "d"}:
        raise
    legacy = state_lib.legacy_layout(abstract)
    old = self._manager.restore(int(step), args=ocp.args.StandardRestore(legacy))
    return state_lib.upgrade_gan_state(old, target)

  def _is_legacy(self, step: int) -> bool:
    """Whether checkpoint `step` holds the pre-protocol layout (top-level 'g_params')."""
    try:
      meta = self._manager.item_metadata(int(step))
    except Exception:  # pylint: disable=broad-except
      return False
    tree = getattr(meta, "tree", meta)
    try:
      return "g_params" in tree
    except TypeError:
      return False

  def _tree_metadata(self, step: int):
    """The saved tree of step `step` (leaves carry `.shape`), or None when it cannot be read."""
    try:
      meta = self._manager.item_metadata(int(step))
    except Exception:  # pylint: disable=broad-except
      return None
    tree = getattr(meta, "tree", meta)
    return tree if isinstance(tree, dict) and tree else None

  def _mismatch(self, step: int, target: TrainState) -> str | None:
    """How step `step` differs from `target` in tree paths or shapes ('' when it does not, None
    when its metadata is unreadable). Only consulted after a restore failed, so a path-naming
    difference between orbax's metadata and the target can at worst turn a broken checkpoint
    into an error, never a good one."""
    tree = self._tree_metadata(step)
    if tree is None:
      return None
    if "g_params" in tree and set(getattr(target, "nets", {})) == {"g", "d"}:
      target = state_lib.legacy_layout(target)
    saved, wanted = _shapes(tree), _shapes(target)
    diffs = [f"{k}: in the checkpoint, not in this model" for k in sorted(saved.keys() - wanted.keys())]
    diffs += [f"{k}: in this model, not in the checkpoint" for k in sorted(wanted.keys() - saved.keys())]
    diffs += [f"{k}: shape {saved[k]} in the checkpoint, {wanted[k]} in this model"
              for k in sorted(saved.keys() & wanted.keys()) if saved[k] != wanted[k]]
    if not diffs:
      return ""
    return f"{diffs[0]}" + (f" (and {len(diffs) - 1} more differences)" if len(diffs) > 1 else "")

  def restore_latest(self, target: TrainState) -> tuple[TrainState, int] | None:
    """The newest checkpoint that restores, or None when there is none.

    Raises `CheckpointMismatchError` when the newest readable checkpoint belongs to another model.
    """
    for step in reversed(self.steps()):
      restored, error, outcome = None, None, _OK
      try:
        restored = self.restore(step, target)
      except Exception as e:  # pylint: disable=broad-except
        error, mismatch = e, self._mismatch(step, target)
        outcome = _MISMATCH if mismatch else _BROKEN
      # Every process takes the same decision: the worst outcome over processes (one all-gather per
      # tried step, only while resuming).
      worst = parallel.max_over_processes(outcome)
      if worst == _OK:
        return restored, step
      if worst == _MISMATCH:
        where = mismatch if outcome == _MISMATCH else "another process found it so"
        raise CheckpointMismatchError(
            f"checkpoint {step} in {self.directory} holds another model's state ({where}); this workdir "
            "belongs to another run: use a new --workdir, or the config of that run (its config.json)")
      why = f"{type(error).__name__}" if error is not None else "failed on another process"
      aside = self._move_aside(step)
      if error is not None:
        logging.error("checkpoint at step %d in %s failed to restore (%s: %s); moved to %s; trying the previous one",
                      step, self.directory, type(error).__name__, error, aside)
      if jax.process_index() == 0:
        print(f"warning: checkpoint {step} in {self.directory} failed to restore ({why}); "
              f"moved it to {aside} and using the previous one", flush=True)
    return None

  def _move_aside(self, step: int) -> str:
    """Moves a broken step out of the manager's directory (kept for inspection, never overwritten)."""
    src = epath.Path(self.directory) / str(step)
    dst = epath.Path(self.directory + "_failed") / f"{step}_{int(time.time())}"
    if jax.process_index() == 0 and src.is_dir():
      dst.parent.mkdir(parents=True, exist_ok=True)
      src.rename(dst)
    parallel.barrier(f"ganzoo_move_aside_{step}")  # the others reload only after the move
    self._manager.reload()
    return os.fspath(dst)

  def close(self) -> None:
    self._manager.close()


def latest_state(workdir: str, target: TrainState, subdir: str = "checkpoints") -> tuple[TrainState, int] | None:
  """Restores the newest good checkpoint of a run directory, or None."""
  directory = paths.join(workdir, subdir)
  if not epath.Path(directory).is_dir():
    return None
  ckpt = Checkpointer(directory)
  try:
    return ckpt.restore_latest(target)
  finally:
    ckpt.close()


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """{'nets.d.params.conv.kernel': shape} of a state, an abstract state or orbax's metadata tree."""
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
  return {".".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ())) for path, leaf in leaves}
