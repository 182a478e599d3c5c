"""Where a run's scalars and sample grids go (process 0 only): metrics.jsonl, TensorBoard and,
optionally, Weights & Biases.

- metrics.jsonl (the record the project's tools read: `ganzoo.evaluate`, the notebooks, the tests): one
  JSON object per logged step, in the workdir, local or a URL (`ganzoo.paths`).
- TensorBoard event files with tensorboardX in WORKDIR/tb (optional: skipped when tensorboardX is
  missing). A URL workdir: tensorboardX writes gs:// itself when google-cloud-storage is installed
  and s3:// when boto3 is (its `record_writer` GCS/S3 writers; other schemes it would silently
  write to a local folder named `gs:` or `az:`). Without them the event files go to a local folder,
  `<cache>/tb/<scheme>/<bucket>/<path>/tb` (`<cache>` = $GANZOO_CACHE_DIR or ~/.cache/ganzoo), and
  one line says where: TensorBoard is a view of the same scalars, so a run need not fail or pull
  cloud SDKs for it, and metrics.jsonl in the bucket stays the record.
- Weights & Biases when `config.wandb.project` is set (see `WandbWriter`).
"""

import importlib.util
import json
import os
import time
from typing import Any

import numpy as np

from ganzoo import paths

WANDB_ID_FILE = "wandb_id.txt"

# On a URL workdir metrics.jsonl is rewritten whole (an object cannot be appended to), at most this
# often and at `close()`: a preempted or crashed run loses at most this many seconds of lines, which
# the resumed run writes again (a resume drops the lines after its checkpoint and repeats those steps).
_URL_FLUSH_SECONDS = 30.0


def _tensorboardx_writes(url: str) -> bool:
  """Whether tensorboardX can write event files at `url` itself (tensorboardX/record_writer.py)."""
  module = {"gs": "google.cloud.storage", "s3": "boto3"}.get(url.split("://", 1)[0])
  try:
    return module is not None and importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:   # a missing parent package (`google`)
    return False


def local_tb_dir(url: str) -> str:
  """The local folder for the TensorBoard files of a URL workdir that tensorboardX cannot write."""
  from ganzoo.metrics import weights  # pylint: disable=g-import-not-at-top
  scheme, rest = url.split("://", 1)
  return os.path.join(weights.cache_dir(), "tb", scheme, *[p for p in rest.split("/") if p], "tb")


class MetricWriter:
  """metrics.jsonl + TensorBoard (+ Weights & Biases when `config.wandb.project` is set). On resume,
  metrics.jsonl lines after the restored step are dropped first."""

  def __init__(self, workdir: str, start_step: int, enabled: bool = True, config=None):
    self.enabled = enabled
    self.path = paths.join(workdir, "metrics.jsonl")
    self._url = paths.is_url(workdir)
    self._tb = None
    self._wandb = None
    self._lines: list[str] = []   # a URL workdir: the whole file, rewritten by `_flush`
    self._dirty, self._flushed = False, time.time()
    if not enabled:
      return
    if paths.exists(self.path):
      kept = [line if line.endswith("\n") else line + "\n" for line in paths.read_text(self.path).splitlines()
              if line.strip() and json.loads(line).get("step", 0) <= start_step]
      paths.write_text(self.path, "".join(kept))
      self._lines = kept if self._url else []
    tb_dir = paths.join(workdir, "tb")
    if self._url and not _tensorboardx_writes(workdir):
      tb_dir = local_tb_dir(workdir)
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(tb_dir, purge_step=start_step + 1)
      if tb_dir != paths.join(workdir, "tb"):
        scheme = workdir.split("://", 1)[0]
        need = {"gs": "with google-cloud-storage installed", "s3": "with boto3 installed"}.get(scheme, "never")
        print(f"TensorBoard files of {workdir} go to {tb_dir} (tensorboardX writes {scheme}:// {need})", flush=True)
    except ImportError:  # TensorBoard is optional
      self._tb = None
    wandb_config = config.get("wandb") if config is not None else None
    if wandb_config is not None and wandb_config.get("project"):
      self._wandb = WandbWriter(wandb_config, workdir, start_step, json.loads(config.to_json_best_effort()))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    line = json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n"
    if self._url:
      self._lines.append(line)
      self._dirty = True
      if time.time() - self._flushed >= _URL_FLUSH_SECONDS:
        self._flush()
    else:
      paths.append_text(self.path, line)
    if self._tb is not None:
      for name, value in metrics.items():
        self._tb.add_scalar(name, float(value), int(step))
    if self._wandb is not None:
      self._wandb.log(step, {k: float(v) for k, v in metrics.items()})

  def write_image(self, step: int, name: str, grid: np.ndarray) -> None:
    if not self.enabled:
      return
    if self._tb is not None:
      self._tb.add_image(name, grid, int(step), dataformats="HWC")
    if self._wandb is not None:
      self._wandb.log_image(step, name, grid)

  def _flush(self) -> None:
    if self._dirty:
      paths.write_text(self.path, "".join(self._lines))
      self._dirty = False
    self._flushed = time.time()

  def close(self) -> None:
    if self._url and self.enabled:
      self._flush()
    if self._tb is not None:
      self._tb.close()
    if self._wandb is not None:
      self._wandb.close()


def check_wandb(config) -> None:
  """A one-line ValueError when `config.wandb.project` is set and wandb is not installed (before
  anything is built or written)."""
  section = config.get("wandb") if config is not None else None
  if section is None or not section.get("project"):
    return
  if importlib.util.find_spec("wandb") is None:
    raise ValueError(f"config.wandb.project={section.project!r} logs to Weights & Biases, which is not installed: "
                     "pip install 'ganzoo[wandb]' (or drop --config.wandb.project)")


class WandbWriter:
  """A Weights & Biases mirror of metrics.jsonl and the sample grids, with the run's config.

  wandb is imported here only, so a run without `wandb.project` never imports it. `wandb.mode`
  ('online', 'offline', 'disabled', 'shared'; '' = wandb's own choice: $WANDB_MODE, else online) and
  the other `config.wandb` fields go to `wandb.init`; $WANDB_DIR, $WANDB_API_KEY etc. work as usual.
  One workdir is one wandb run: its id is kept in WORKDIR/wandb_id.txt at the first start, and a
  resume continues that run (`resume='allow'`), so the curve goes on. A restart from step 0 (no
  checkpoint yet) is a new run with a new id. Scalars are logged at the training step
  (`step=`), which wandb requires to increase: the steps between the resumed checkpoint and the
  interruption were logged already and are skipped (their values are the same, since a resumed run
  repeats those steps exactly; only perf/* timings differ).
  """

  def __init__(self, section, workdir: str, start_step: int, config: dict[str, Any]):
    try:
      import wandb  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ValueError("config.wandb.project is set but wandb is not installed: pip install 'ganzoo[wandb]'") from None
    self._wandb = wandb
    id_path = paths.join(workdir, WANDB_ID_FILE)
    run_id = paths.read_text(id_path).strip() if start_step > 0 and paths.exists(id_path) else None
    kwargs = {k: section.get(k) or None for k in ("entity", "name", "group", "mode")}
    try:
      self._run = wandb.init(project=section.project, id=run_id, resume="allow" if run_id else None, **kwargs)
    except getattr(getattr(wandb, "errors", None), "Error", RuntimeError) as e:   # no API key, bad entity, ...
      text = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"Weights & Biases did not start ({type(e).__name__}: {text}); log in (`wandb login` or "
                       "WANDB_API_KEY), pass --config.wandb.mode=offline, or drop --config.wandb.project") from e
    self._run.config.update(config, allow_val_change=True)
    if run_id is None:
      paths.write_text(id_path, self._run.id + "\n")
    # The first step this run may log: 0 for a new run, the one after the last logged step for a run
    # resumed from the server (wandb's RunRecord.starting_step; offline, where nothing is read from the
    # server, 0). `run.step` would say the same but raises in mode='shared'.
    self._floor = int(getattr(self._run, "starting_step", 0) or 0)

  def log(self, step: int, values: dict[str, Any]) -> None:
    if step >= self._floor:
      self._run.log(values, step=int(step))

  def log_image(self, step: int, name: str, grid: np.ndarray) -> None:
    grid = np.asarray(grid)
    self.log(step, {name: self._wandb.Image(grid[..., 0] if grid.shape[-1] == 1 else grid)})

  def close(self) -> None:
    self._run.finish()
