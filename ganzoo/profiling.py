"""Profiling a training run: a trace of chosen steps for TensorBoard's profiler, and the step's FLOPs.

  python -m ganzoo.main --config=configs/sngan.py --workdir=RUN --config.train.profile_steps=20,5
  tensorboard --logdir=RUN/profile      # the Profile tab (pip install tensorboard-plugin-profile)

`train.profile_steps` = "START,N" traces train steps START .. START+N-1 with `jax.profiler`
(`start_trace` before step START, `stop_trace` once step START+N-1 has finished on the device) into
`<workdir>/profile`; every step runs inside `jax.profiler.StepTraceAnnotation('train', step_num=s)`,
so the profiler's step view splits the trace per train step. Skip the first steps (compilation)
when choosing START. The FLOPs of the compiled step (XLA's cost analysis of the lowered program,
the whole global batch) are logged once per run as `perf/step_gflop` (`step_flops`).
"""

import os
from typing import Any

import jax

PyTree = Any


def parse_steps(value: str | None) -> tuple[int, int] | None:
  """"START,N" -> (START, N) with START >= 1 and N >= 1; None/'' -> None; else a one-line ValueError."""
  if value is None or str(value).strip() == "":
    return None
  parts = str(value).split(",")
  try:
    start, n = (int(p) for p in parts)
  except ValueError:
    start, n = 0, 0
  if len(parts) != 2 or start < 1 or n < 1:
    raise ValueError(f"config.train.profile_steps={value!r} must be 'START,N' with START >= 1 and N >= 1 "
                     "(trace N train steps from step START): pass e.g. --config.train.profile_steps=20,5")
  return start, n


def step_flops(jitted: Any, *args: Any) -> float | None:
  """FLOPs of one call of `jitted(*args)` by XLA's cost analysis of its lowered program (None where
  the backend reports none). Tracing is cached after the first call, so this only lowers again."""
  try:
    cost = jitted.lower(*args).cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None   # a backend without cost analysis: FLOPs are a report, never a failure
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops >= 0 else None


class Tracer:
  """Starts and stops the trace of `train.profile_steps` around the loop's steps (lead process only)."""

  def __init__(self, workdir: str, steps: tuple[int, int] | None, enabled: bool = True):
    self.directory = os.path.join(workdir, "profile")
    self.steps = steps if enabled else None
    self.active = False

  def annotation(self, step: int):
    return jax.profiler.StepTraceAnnotation("train", step_num=step)

  def before(self, step: int) -> None:
    if self.steps is not None and step == self.steps[0] and not self.active:
      jax.profiler.start_trace(self.directory)
      self.active = True

  def after(self, step: int, outputs: PyTree) -> None:
    if self.active and step >= self.steps[0] + self.steps[1] - 1:
      jax.block_until_ready(outputs)
      self.stop()

  def stop(self) -> None:
    if self.active:
      jax.profiler.stop_trace()
      self.active = False
