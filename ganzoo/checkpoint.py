"""Orbax checkpoints of the whole TrainState: save every N steps, keep the last few, resume the newest.

A checkpoint that fails to restore (a half-written or corrupted directory) is reported and the next
older one is tried, so a crash mid-save never loses the run. A checkpoint written before the
training protocol (the one-G/one-D `GANState` layout) is read into that layout and upgraded
(`ganzoo.state.upgrade_gan_state`).
"""

import logging
import os
import shutil
import time

import jax
import orbax.checkpoint as ocp

from ganzoo import state as state_lib
from ganzoo.state import TrainState


class Checkpointer:
  """Thin wrapper around `ocp.CheckpointManager` for one TrainState directory."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

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

  def restore_latest(self, target: TrainState) -> tuple[TrainState, int] | None:
    """The newest checkpoint that restores, or None when there is none."""
    for step in reversed(self.steps()):
      try:
        return self.restore(step, target), step
      except Exception as e:  # pylint: disable=broad-except
        aside = self._move_aside(step)
        logging.error("checkpoint at step %d in %s failed to restore (%s: %s); moved to %s; trying the previous one",
                      step, self.directory, type(e).__name__, e, aside)
        print(f"warning: checkpoint {step} in {self.directory} failed to restore ({type(e).__name__}); "
              f"moved it to {aside} and using the previous one", flush=True)
    return None

  def _move_aside(self, step: int) -> str:
    """Moves a broken step out of the manager's directory (kept for inspection, never overwritten)."""
    src = os.path.join(self.directory, str(step))
    dst = os.path.join(self.directory + "_failed", f"{step}_{int(time.time())}")
    if jax.process_index() == 0 and os.path.isdir(src):
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.move(src, dst)
    self._manager.reload()
    return dst

  def close(self) -> None:
    self._manager.close()


def latest_state(workdir: str, target: TrainState, subdir: str = "checkpoints") -> tuple[TrainState, int] | None:
  """Restores the newest good checkpoint of a run directory, or None."""
  directory = os.path.join(workdir, subdir)
  if not os.path.isdir(directory):
    return None
  ckpt = Checkpointer(directory)
  try:
    return ckpt.restore_latest(target)
  finally:
    ckpt.close()
