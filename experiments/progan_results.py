"""The results json and sample sheet of a ProGAN run: the stages it went through (from the run's own
schedule), the logged losses per stage, and its newest sample grid (the EMA generator at the run's lod).

  python experiments/progan_results.py --workdir=workdirs/progan_fm --out=experiments/results/progan_fashion_mnist \
      --command="..." --command="..." --wall_s=1234 [--fid=...]

Writes OUT.json ({command, config, steps, wall_s, stages: [{resolution, fading, batch, start_step,
end_step, start_kimg, logged losses}], resumed_at, ...}) and OUT.png (the newest sample grid).
"""

import json
import os
import shutil
import sys

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, ".")   # run from the repository root: this checkout's ganzoo

from ganzoo import runs  # noqa: E402
from ganzoo import train  # noqa: E402
from ganzoo.methods import progan  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A progan run directory.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output prefix (OUT.json, OUT.png).", required=True)
_COMMAND = flags.DEFINE_multi_string("command", [], "The command(s) that produced the run, in order.")
_WALL = flags.DEFINE_float("wall_s", None, "Wall time of the training commands together, seconds.")
_RESUMED = flags.DEFINE_multi_integer("resumed_at", [], "Steps the run was resumed from.")
_NOTE = flags.DEFINE_string("note", "", "A line on how the run was stopped and restarted.")

LOSSES = ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/gp", "train/drift", "train/lod",
          "train/kimg", "perf/steps_per_sec")


def main(argv):
  del argv
  config = runs.load_run_config(_WORKDIR.value)
  _, method, _ = train.setup(config, need_data=False)
  if not isinstance(method, progan.ProGAN):
    raise ValueError(f"{_WORKDIR.value} is a {config.method!r} run; this summary is for config.method='progan'")
  lines = [json.loads(l) for l in open(os.path.join(_WORKDIR.value, "metrics.jsonl"))]
  last_step = max(l["step"] for l in lines)
  seen = []
  for st in method.stages:
    if st.start_step >= last_step:
      break
    end = last_step if st.end_step is None else min(st.end_step, last_step)
    # A metrics line at step s covers the steps since the previous line: those ending inside the stage.
    logged = [l for l in lines if st.start_step < l["step"] <= end and "train/d_loss" in l]
    summary = {k: round(float(np.mean([l[k] for l in logged if k in l])), 5) for k in LOSSES
               if any(k in l for l in logged)}
    seen.append({"resolution": st.resolution, "fading": st.fading, "batch": st.batch, "start_step": st.start_step,
                 "end_step": end, "start_kimg": st.start_nimg / 1000.0, "logged_means": summary,
                 "last_logged": {k: round(float(v), 5) for k, v in logged[-1].items() if k in LOSSES} if logged else {}})
  samples = sorted(os.listdir(os.path.join(_WORKDIR.value, "samples")))
  shutil.copyfile(os.path.join(_WORKDIR.value, "samples", samples[-1]), _OUT.value + ".png")
  out = {"command": _COMMAND.value, "config": "configs/progan.py:small,fashion_mnist (see the command for overrides)",
         "steps": last_step, "wall_s": _WALL.value, "resumed_at": _RESUMED.value, "note": _NOTE.value,
         "params": {k: v for l in lines for k, v in l.items() if k.startswith("params/")},
         "stages": seen, "sample_sheet": os.path.basename(_OUT.value) + ".png",
         "sample_sheet_from": f"samples/{samples[-1]} (EMA G at the run's lod)"}
  with open(_OUT.value + ".json", "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps({k: out[k] for k in ("steps", "wall_s", "resumed_at")}), [(s["resolution"], s["fading"]) for s in seen])


if __name__ == "__main__":
  app.run(main)
