"""`python -m ganzoo.translate` on a run of a tiny translation family (tests/translate_family.py),
trained 2 steps through `train.train_and_evaluate`: the outputs are the family's `translate` of the
inputs prepared as documented, at the model's size, with the documented keys; the sheet's layout;
targets; and every bad input is one `error:` line."""

import json
import os
import re
import subprocess
import sys

from absl import flags
import jax
import numpy as np
import pytest
from PIL import Image

from ganzoo import runs
from ganzoo import sampling
from ganzoo import train
from ganzoo import translate as translate_lib
from ganzoo.data.pipeline import to_float
from tests import translate_family
from tests.test_steps import ROOT
from tests.test_train import one_device, write_npz

SHAPE = (16, 16, 3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("translate")
  config, _ = translate_family.Invert.test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp / "d.npz", n=16, shape=SHAPE, num_classes=1)
  summary = train.train_and_evaluate(config, str(tmp / "run"), mesh=one_device(), progress=False)
  assert summary["step"] == 2
  return tmp / "run"


def _inputs(folder):
  """Four images of other sizes and modes: RGB 16x16 (the model's), RGB 40x24 JPEG, grey 20x20,
  RGBA 30x16; and a text file that is not an image (skipped: not an image extension)."""
  rng = np.random.default_rng(0)
  os.makedirs(folder, exist_ok=True)
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "a.png")
  Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(folder / "b.jpg", quality=95)
  Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), mode="L").save(folder / "c.png")
  Image.fromarray(rng.integers(0, 256, (16, 30, 4), dtype=np.uint8), mode="RGBA").save(folder / "d.png")
  (folder / "notes.txt").write_text("not an image")
  return [folder / n for n in ("a.png", "b.jpg", "c.png", "d.png")]


_RESTORED = {}


def _translator(run_dir, target):
  """(the run's restored state, the family's translate for `target` jitted), once per run and target."""
  if run_dir not in _RESTORED:
    method = runs.build_method(runs.load_run_config(str(run_dir)))
    _RESTORED[run_dir] = (method, runs.restore_state(method, str(run_dir))[0], {})
  method, state, fns = _RESTORED[run_dir]
  if target not in fns:
    fns[target] = jax.jit(lambda s, x, r: method.translate(s, x, target, r))
  return state, fns[target]


def _expected(run_dir, prepared, target, batch_size, seed=0):
  """The family's translate of uint8 inputs [n, H, W, C] in batches of `batch_size` padded with zeros,
  the batch at image i keyed by fold_in(PRNGKey(seed), i): what the module docstring promises."""
  state, fn = _translator(run_dir, target)
  out = []
  for start in range(0, len(prepared), batch_size):
    x = to_float(prepared[start:start + batch_size])
    x = np.concatenate([x, np.zeros((batch_size - len(x), *SHAPE), np.float32)])
    key = jax.random.fold_in(jax.random.PRNGKey(seed), start)
    out.append(sampling.to_uint8(fn(state, x, key))[:len(prepared[start:start + batch_size])])
  return np.concatenate(out)


def _fit(path):
  """The reference's test transform, written with PIL: RGB, bicubic resize to exactly 16x16."""
  with Image.open(path) as im:
    return np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))


def _main(argv, capsys):
  """Runs translate.main in-process on flags of its own; returns (exit code, stdout, stderr)."""
  fv = flags.FlagValues()
  translate_lib.define_flags(fv)
  code = 0
  try:
    translate_lib.main(fv(["translate", *argv]))
  except SystemExit as e:
    code = e.code
  out = capsys.readouterr()
  return code, out.out, out.err


def _read(path):
  return np.asarray(Image.open(path))


def test_cli_translates_images_of_any_size(run_dir, tmp_path, capsys):
  """In-process main, default --resize=fit, --batch_size=3 over 4 images (a full batch, then a batch
  of one padded to 3): each <name>.png is 16x16x3 and equals the family's translate of the
  PIL-prepared input exactly; the sheet holds the 4 (input | output) pairs in one row."""
  files = _inputs(tmp_path / "in")
  code, out, err = _main([f"--workdir={run_dir}", f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}",
                          "--batch_size=3"], capsys)
  assert code == 0, err
  assert out.strip().splitlines()[-1] == str(tmp_path / "out" / "sheet.png")
  assert "4 images translated by the step-2 checkpoint (target B)" in out
  prepared = np.stack([_fit(f) for f in files])
  want = _expected(run_dir, prepared, "B", 3)
  got = np.stack([_read(tmp_path / "out" / f"{n}.png") for n in "abcd"])
  assert got.shape == (4, *SHAPE)
  np.testing.assert_array_equal(got, want)
  # The grey image became RGB (3 equal channels) before the model saw it.
  assert (prepared[2, ..., 0] == prepared[2, ..., 1]).all()
  sheet = _read(tmp_path / "out" / "sheet.png")
  assert sheet.shape == (16 + 4, 8 * (16 + 2) + 2, 3)
  pairs = np.stack([v for k in range(4) for v in (prepared[k], want[k])])
  np.testing.assert_array_equal(sheet, sampling.make_grid(pairs, nrow=8))
  assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "c.png", "d.png", "sheet.png"]


def test_targets_seeds_and_crop(run_dir, tmp_path):
  """--target=A is the family's A mapping (here the negation), another seed other noise, and
  --resize=crop keeps the aspect ratio: 40x24 -> bicubic 27x16 -> the centre 16x16 (left 6)."""
  files = _inputs(tmp_path / "in")
  result = translate_lib.translate(str(run_dir), str(files[1]), str(tmp_path / "a"), target="A", resize="crop",
                                   seed=3)
  assert result["target"] == "A" and result["images"] == [str(tmp_path / "a" / "b.png")]
  with Image.open(files[1]) as im:
    cropped = np.asarray(im.convert("RGB").resize((27, 16), Image.Resampling.BICUBIC))[:, 6:22]
  want = _expected(run_dir, cropped[None], "A", 1, seed=3)
  np.testing.assert_array_equal(_read(tmp_path / "a" / "b.png"), want[0])
  assert not np.array_equal(want, _expected(run_dir, cropped[None], "B", 1, seed=3))
  assert not np.array_equal(want, _expected(run_dir, cropped[None], "A", 1, seed=0))
  # The sheet of one pair: input | output.
  assert _read(result["sheet"]).shape == (16 + 4, 2 * 18 + 2, 3)


def test_prepare_image_modes():
  """fit squashes, crop covers then centre-crops (torchvision's rounding), none refuses another size;
  a colour image for a 1-channel model is PIL's 'L' luma, a grey one for 3 channels is replicated."""
  rng = np.random.default_rng(1)
  rgb = Image.fromarray(rng.integers(0, 256, (10, 30, 3), dtype=np.uint8))
  assert translate_lib.prepare_image(rgb, (8, 12, 3), "fit").shape == (8, 12, 3)
  want = np.asarray(rgb.resize((24, 8), Image.Resampling.BICUBIC))[:, 6:18]
  np.testing.assert_array_equal(translate_lib.prepare_image(rgb, (8, 12, 3), "crop"), want)
  grey_of_rgb = translate_lib.prepare_image(rgb, (10, 30, 1), "none")
  np.testing.assert_array_equal(grey_of_rgb[..., 0], np.asarray(rgb.convert("L")))
  with pytest.raises(ValueError, match=r"is 30x10 \(WxH\); the model takes 12x8: pass --resize=fit"):
    translate_lib.prepare_image(rgb, (8, 12, 3), "none")
  grey = Image.fromarray(rng.integers(0, 256, (8, 12), dtype=np.uint8), mode="L")
  x = translate_lib.prepare_image(grey, (8, 12, 3), "fit")
  assert x.shape == (8, 12, 3) and (x == np.asarray(grey)[..., None]).all()
  assert translate_lib.output_names(["x/a.png", "x/a.jpg", "x/b.jpeg"]) == ["a_png.png", "a_jpg.png", "b.png"]


def test_check_target():
  spec = translate_family.methods.TranslationSpec(SHAPE, ("Black_Hair", "Young"), None)
  assert translate_lib.check_target(spec, "Young, Black_Hair") == "Young, Black_Hair"
  assert translate_lib.check_target(spec, None) is None
  with pytest.raises(ValueError, match=r"unknown --target 'Old'; choose from Black_Hair, Young"):
    translate_lib.check_target(spec, "Young,Old")
  one = translate_family.methods.TranslationSpec(SHAPE)
  with pytest.raises(ValueError, match=r"family 'pix2pix' has one mapping and takes no --target; drop --target=B"):
    translate_lib.check_target(one, "B", "pix2pix")


def test_bad_input_is_one_line(run_dir, tmp_path, capsys):
  """Each case: exit code 1, nothing on stdout, stderr one line `error: ...` naming the fix."""
  files = _inputs(tmp_path / "in")
  (tmp_path / "empty").mkdir()
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  (tmp_path / "named").mkdir()
  (tmp_path / "named" / "sheet.jpg").write_bytes((tmp_path / "in" / "b.jpg").read_bytes())
  (tmp_path / "truncated").mkdir()
  png = (tmp_path / "in" / "a.png").read_bytes()
  (tmp_path / "truncated" / "t.png").write_bytes(png[:len(png) // 2])    # a good header, half the pixels
  other = tmp_path / "other_run"
  other.mkdir()
  config = json.loads((run_dir / "config.json").read_text())
  config["method"] = translate_family.NAME + "_none"
  (other / "config.json").write_text(json.dumps(config))
  good = [f"--workdir={run_dir}", f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}"]
  run, inp, out = good
  cases = {
      "no_workdir": ([inp, out], r"--workdir is required"),
      "missing_workdir": ([f"--workdir={tmp_path / 'nope'}", inp, out], r"nope does not exist: pass the folder"),
      "no_output": ([run, inp], r"--output is required: pass the folder"),
      "missing_input": ([run, f"--input={tmp_path / 'nope.png'}", out], r"nope\.png does not exist: pass an image"),
      "no_images": ([run, f"--input={tmp_path / 'empty'}", out], r"no images \(\.png.*\) in .*empty: put the images"),
      "unreadable": ([run, f"--input={tmp_path / 'broken'}", out], r"cannot read the image .*x\.png \(.*\): pass PNG"),
      "unknown_target": ([*good, "--target=C"], r"unknown --target 'C'; choose from A, B$"),
      "not_a_translator": ([f"--workdir={other}", inp, out], r"family 'test_translate_none' does not translate images"),
      "wrong_size": ([*good, "--resize=none"], r"b\.jpg is 40x24 \(WxH\); the model takes 16x16: pass --resize=fit"),
      "overwrite": ([run, f"--input={files[0]}", f"--output={tmp_path / 'in'}"], r"would overwrite the input .*a\.png"),
      "stray": ([*good, "stray"], r"unexpected arguments \['stray'\]"),
      "sheet_name": ([run, f"--input={tmp_path / 'named'}", out], r"an input named sheet\.\* would give sheet\.png"),
      # Found when its batch is read, after the checkpoint is restored (into another --output).
      "truncated": ([run, f"--input={tmp_path / 'truncated'}", f"--output={tmp_path / 'out2'}"],
                    r"cannot read the image .*t\.png \(image file is truncated\)"),
  }
  for name, (argv, fix) in cases.items():
    code, out, err = _main(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 1 and not out and len(lines) == 1 and "Traceback" not in err, (name, out, err)
    assert lines[0].startswith("error: ") and re.search(fix, lines[0]), (name, lines[0])
  assert not (tmp_path / "out").exists()     # every case failed before writing anything


def test_subprocess_cli(run_dir, tmp_path):
  """The real program (`python -m ganzoo.translate`: its absl flags, JAX's flags), with the test family
  registered first, on one image file (the errors are the in-process cases above: one process start
  costs seconds). JAX_PLATFORMS=tpu in the environment (no TPU here) is overridden by
  --jax_platforms=cpu, so JAX's flags reach jax.config before main (as tests/test_jax_flags.py
  checks for the other programs)."""
  files = _inputs(tmp_path / "in")
  script = ("import runpy, sys; import tests.translate_family; sys.argv[0] = 'ganzoo.translate'; "
            "runpy.run_module('ganzoo.translate', run_name='__main__', alter_sys=True)")
  base = [sys.executable, "-c", script, f"--workdir={run_dir}", f"--output={tmp_path / 'out'}", "--jax_platforms=cpu"]
  env = {**{k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_FLAGS"))}, "JAX_PLATFORMS": "tpu"}
  done = subprocess.run(base + [f"--input={files[3]}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "out" / "sheet.png")
  np.testing.assert_array_equal(_read(tmp_path / "out" / "d.png"), _expected(run_dir, _fit(files[3])[None], "B", 1)[0])
