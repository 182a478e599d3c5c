"""Images/s of the input pipeline alone against what a training step consumes (issue 19, item 4).

  python experiments/pipeline_speed.py --source=folder --n=2000 --size=128 --workers=2 \\
      --step_config=configs/biggan.py:tiny --set=data.image_size=128 \\
      --out=experiments/results/pipeline_speed_folder128.json
  python experiments/pipeline_speed.py --source=fashion_mnist --step_config=configs/dcgan.py:fashion_mnist \\
      --out=experiments/results/pipeline_speed_fashion_mnist.json

`--source=folder` writes `--n` JPEG (or PNG) files of `--size` x `--size` in two class folders
(smooth random images, so the files have photo-like sizes: an 8x8 random field upsampled bicubically,
plus noise), then reads them with ganzoo's pipeline; `--source=fashion_mnist` reads the IDX files
(an in-memory array source: nothing to decode per batch, so only the in-process, device and step
rows are measured). Each rate reads `--batches`
consecutive global batches of `--batch` with `Dataset.read` (one batch first, untimed):

  host_inprocess     decode + batch in this process (data.workers=0, data.cache='')
  host_workers       the same by `--workers` grain processes (data.workers=N); startup_s = their start
  cache_build_s      decoding everything once into the .npy cache (data.cache=<folder>, N workers)
  cache_reopen_s     opening that cache again (a later run: no decoding)
  host_cache_disk    batches from the memory-mapped cache; host_cache_memory: data.cache='memory'
  device_copy        `parallel.global_batch` of a host batch, waited for (on the CPU backend a copy)
  to_device_<best>   the fastest host path through the trainer's stages, the prefetch thread and
                     `device_prefetch` (data.prefetch=2, data.device_prefetch=1), on device, no step
  step               the training step of `--step_config` on a device-resident batch (compiled first)
  loop_<path>        the trainer's loop: those stages feeding the step, for each host path

Every rate is real images/s (a step's images: the examples its plan reads). All share the
machine's cores: on a 2-core CPU the workers and the XLA step compete, which the loop rates show.
Writes one JSON object (stdout, and `--out`).
"""

import argparse
import ast
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def write_folder(root: str, n: int, size: int, fmt: str, seed: int = 0) -> float:
  """`n` images in root/a and root/b; returns the mean file size in KiB."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  total = 0
  for i in range(n):
    folder = os.path.join(root, 'ab'[i % 2])
    os.makedirs(folder, exist_ok=True)
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    pixels = np.clip(np.asarray(coarse, np.int16) + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(np.uint8)
    path = os.path.join(folder, f'{i:05d}.{"jpg" if fmt == "jpeg" else "png"}')
    Image.fromarray(pixels).save(path, **({'quality': 90} if fmt == 'jpeg' else {}))
    total += os.path.getsize(path)
  return total / n / 1024


def load_config(spec: str, sets: list[str]):
  """configs/<file>.py[:variant] with `key.path=value` overrides (Python literals, else strings)."""
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('pipeline_speed_cfg', os.path.join(_ROOT, path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  for item in sets:
    key, _, text = item.partition('=')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    section = config
    *parents, leaf = key.split('.')
    for p in parents:
      section = section[p]
    section[leaf] = value
  return config


def read_rate(ds, batch: int, batches: int) -> tuple[float, float]:
  """(seconds to the first batch, images/s over `batches` batches after it)."""
  t0 = time.perf_counter()
  ds.read('real', 0, 1, batch)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  for k in range(1, batches + 1):
    ds.read('real', k * batch, 1, batch)
  return first, batches * batch / (time.perf_counter() - t0)


def host_paths(build, args, out: dict, rates: dict, tmp: str) -> dict:
  """Rates of a decoding source with workers and with the caches; the data settings of each path."""
  paths = {}
  if args.workers:
    ds = build(workers=args.workers)
    out['workers_startup_s'], rates['host_workers'] = read_rate(ds, args.batch, args.batches)
    ds.close()
    paths['workers'] = {'workers': args.workers}
  cache_dir = os.path.join(tmp, 'cache')
  shutil.rmtree(cache_dir, ignore_errors=True)
  t0 = time.perf_counter()
  build(cache=cache_dir, workers=args.workers)
  out['cache_build_s'] = round(time.perf_counter() - t0, 3)
  t0 = time.perf_counter()
  ds = build(cache=cache_dir)
  out['cache_reopen_s'] = round(time.perf_counter() - t0, 3)
  _, rates['host_cache_disk'] = read_rate(ds, args.batch, args.batches)
  _, rates['host_cache_memory'] = read_rate(build(cache='memory'), args.batch, args.batches)
  paths['cache_disk'] = {'cache': cache_dir}
  return paths


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser()
  parser.add_argument('--source', default='folder', choices=('folder', 'fashion_mnist'))
  parser.add_argument('--n', type=int, default=2000, help='images written for --source=folder')
  parser.add_argument('--size', type=int, default=128)
  parser.add_argument('--format', default='jpeg', choices=('jpeg', 'png'))
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--batches', type=int, default=20, help='timed batches per rate')
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--step_config', default='configs/biggan.py:tiny')
  parser.add_argument('--set', action='append', default=[], help='config override key.path=value')
  parser.add_argument('--steps', type=int, default=10, help='timed training steps (step and loop rates)')
  parser.add_argument('--workdir', default=None)
  parser.add_argument('--out', default=None)
  args = parser.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
  from ganzoo import parallel  # pylint: disable=g-import-not-at-top
  from ganzoo import step as step_lib  # pylint: disable=g-import-not-at-top
  from ganzoo import train  # pylint: disable=g-import-not-at-top
  from ganzoo.data import cache as cache_lib  # pylint: disable=g-import-not-at-top
  import machine  # pylint: disable=g-import-not-at-top

  tmp = args.workdir or tempfile.mkdtemp(prefix='ganzoo_pipe_')
  out: dict = {'source': args.source, 'batch': args.batch, 'batches': args.batches, 'workers': args.workers,
               'cpu': machine.cpu_name(), 'cores': os.cpu_count(), 'load_start': round(os.getloadavg()[0], 2)}
  if args.source == 'folder':
    folder = os.path.join(tmp, 'images')
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    out['file_kib'] = round(write_folder(folder, args.n, args.size, args.format), 2)
    out.update(n=args.n, size=args.size, format=args.format, write_s=round(time.perf_counter() - t0, 2))
    data_cfg = {'name': 'folder', 'path': folder}
  else:
    data_cfg = {'name': 'fashion_mnist'}
  data_cfg['batch_size'] = args.batch
  build = lambda **kw: data_lib.build_dataset({**data_cfg, **kw}, 0, 0, 1)
  rates: dict = {}
  ds = build()
  _, rates['host_inprocess'] = read_rate(ds, args.batch, args.batches)
  paths = {'inprocess': {}}
  # Workers and caches apply to decoding sources; an array source (IDX, npz) has nothing to decode.
  out['decoding_source'] = cache_lib.is_decoding(ds.source)
  if out['decoding_source']:
    paths.update(host_paths(build, args, out, rates, tmp))
  mesh = parallel.make_mesh()
  host = ds.read('real', 0, 1, args.batch)
  jax.block_until_ready(parallel.global_batch(host, mesh, batch_axis=1))
  t0 = time.perf_counter()
  for _ in range(args.batches):
    jax.block_until_ready(parallel.global_batch(host, mesh, batch_axis=1))
  rates['device_copy'] = args.batches * args.batch / (time.perf_counter() - t0)

  # The step, then the trainer's stages feeding it (train.stream_batches -> prefetch -> device_prefetch).
  config = load_config(args.step_config, args.set)
  config.data.update({k: v for k, v in data_cfg.items()})
  config.data.batch_size = args.batch
  dataset, method, mesh = train.setup(config, mesh)
  out['step_config'] = args.step_config + ''.join(f' {s}' for s in args.set)
  out['image_shape'] = list(dataset.image_shape)
  steps_for = step_lib.StepCache(method, mesh)
  state = train._init_state(method, config, mesh)  # pylint: disable=protected-access
  plan, host = next(train.stream_batches(method, {'data': dataset}, 0))
  per_step = sum(s.count * s.batch_size for s in method.streams(plan).values())
  out['images_per_step'] = per_step
  fn = steps_for(plan)
  batch = parallel.global_batch(host, mesh, batch_axis=1)
  t0 = time.perf_counter()
  state, metrics = fn(state, batch)
  jax.block_until_ready(metrics)
  out['compile_s'] = round(time.perf_counter() - t0, 2)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = fn(state, batch)
  jax.block_until_ready((state, metrics))
  rates['step'] = args.steps * per_step / (time.perf_counter() - t0)

  put = lambda item: (item[0], parallel.global_batch(item[1], mesh, batch_axis=1))

  def stages(**kw):
    ds = data_lib.build_dataset({**config.data.to_dict(), **kw}, 0, 0, 1)
    return ds, data_lib.device_prefetch(data_lib.prefetch(train.stream_batches(method, {'data': ds}, 0), 2), put, 1)

  best = max((p for p in paths if f'host_{p}' in rates), key=lambda p: rates[f'host_{p}'])
  ds, it = stages(**paths[best])
  jax.block_until_ready(next(it)[1])
  t0 = time.perf_counter()
  for _ in range(args.steps):
    jax.block_until_ready(next(it)[1])
  rates[f'to_device_{best}'] = args.steps * per_step / (time.perf_counter() - t0)
  it.close()
  ds.close()
  for name, kw in paths.items():
    ds, it = stages(**kw)
    state, metrics = fn(state, next(it)[1])   # the readers start (workers) and warm up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(args.steps):
      state, metrics = fn(state, next(it)[1])
    jax.block_until_ready((state, metrics))
    rates[f'loop_{name}'] = args.steps * per_step / (time.perf_counter() - t0)
    it.close()
    ds.close()
  out['images_per_s'] = {k: round(v, 1) for k, v in rates.items()}
  out['load_end'] = round(os.getloadavg()[0], 2)
  out['versions'] = {p: machine.version(p) for p in ('jax', 'grain', 'pillow', 'numpy')}
  text = json.dumps(out, indent=1)
  print(text)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  if not args.workdir:
    shutil.rmtree(tmp, ignore_errors=True)
  return out


if __name__ == '__main__':
  main()
