"""Executes the notebooks in experiments/ with nbclient; fails if a cell raises.

  python experiments/run_notebooks.py                  # run all, report times, write nothing
  python experiments/run_notebooks.py --write          # also store the outputs in the .ipynb files
  python experiments/run_notebooks.py dirac_gan.ipynb  # only these
  GANZOO_NB_SCALE=4 python experiments/run_notebooks.py --write   # longer runs (each notebook reads it)

Each notebook runs with its own directory as the working directory and with the repository root
on PYTHONPATH, so `import ganzoo` works without installing the package.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def notebooks(names: list[str] | None = None) -> list[pathlib.Path]:
  """The notebooks to run: `names` (file names in experiments/) or every experiments/*.ipynb."""
  if not names:
    return sorted(HERE.glob("*.ipynb"))
  paths = [HERE / pathlib.Path(n).name for n in names]
  missing = [p.name for p in paths if not p.exists()]
  if missing:
    raise ValueError(f"no such notebook(s) in experiments/: {missing}")
  return paths


def run_notebook(path: pathlib.Path, write: bool = False, timeout: int = 600,
                 kernel_name: str = "python3") -> float:
  """Executes `path` top to bottom (raises `nbclient.exceptions.CellExecutionError` on error); returns seconds."""
  nb = nbformat.read(path, as_version=4)
  env_path = os.environ.get("PYTHONPATH", "")
  os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")
  try:
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.time()
    client.execute()
    seconds = time.time() - start
  finally:
    os.environ["PYTHONPATH"] = env_path
    if not env_path:
      del os.environ["PYTHONPATH"]
  if write:
    nbformat.write(nb, path)
  return seconds


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
  parser.add_argument("--write", action="store_true", help="write the executed notebooks back in place")
  parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
  args = parser.parse_args(argv)
  for path in notebooks(args.names):
    seconds = run_notebook(path, write=args.write, timeout=args.timeout)
    size = path.stat().st_size / 1e6
    print(f"{path.name}: {seconds:.1f} s" + (f", written ({size:.2f} MB)" if args.write else ""), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
