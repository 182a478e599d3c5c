"""ganzoo.export and ganzoo.load_generator on tiny trained runs.

BigGAN tiny is the spectral-norm and conditional case: SN on G (so the export must hold W / sigma),
class labels, BatchNorm statistics, and an EMA that starts at step 1 (after 2 steps the EMA and the
trained params differ). DCGAN tiny is the unconditional case without EMA (the trained params are
exported, and the JSON says so).

Equality is bitwise, against the jitted samplers ganzoo uses (`sample.make_g_fn`, a jitted
`Method.sample`): the exported forward pass is the same computation (the same
`nets.inference_variables` under jit, then the same jitted `module.apply`) on the same XLA:CPU
backend, so no float bound is needed. (Eager, op-by-op `Method.sample` is not the reference: XLA
fuses the jitted graph differently and the images differ from it in the last bits, ~2e-6.) The
margins below show that a missing SN or a non-EMA export would be far outside the 0 allowed.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import ganzoo
from ganzoo import export as export_lib
from ganzoo import nets as nets_lib
from ganzoo import sample as sample_lib
from ganzoo import sampling
from ganzoo import train
from tests.test_steps import ROOT, load_config
from tests.test_train import one_device, write_npz

# Subprocesses see the 8 CPU devices of this process (tests/conftest.py): XLA:CPU splits its threads
# by the device count, which changes the last bits of a convolution (measured ~2e-6 between 1 and 8
# devices), and the cross-process comparison below is bitwise.
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "8"}


def _train(tmp_path, name, shape, num_classes):
  config = load_config(name, "tiny")
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "data.npz", n=32, shape=shape, num_classes=num_classes)
  # Only what the export reads is kept: no sample sheets, one micro-batch (fewer compilations).
  config.eval.every, config.train.sample_every, config.train.grad_accum = 0, 0, 1
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert summary["step"] == 2
  return tmp_path / "run"


@pytest.fixture(scope="module")
def biggan_run(tmp_path_factory):
  return _train(tmp_path_factory.mktemp("biggan"), "biggan", (32, 32, 3), 5)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
  return _train(tmp_path_factory.mktemp("dcgan"), "dcgan", (28, 28, 1), 10)


def _restored(run_dir):
  method = sample_lib.build_method(sample_lib.load_run_config(str(run_dir)))
  state, step = sample_lib.restore_state(method, str(run_dir))
  return method, state, step


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "ganzoo.export", *args], cwd=ROOT, env=ENV, capture_output=True,
                        text=True, timeout=300)


def test_exported_sn_conditional_generator_gives_the_ema_samples(biggan_run, tmp_path):
  method, state, step = _restored(biggan_run)
  weights, meta_path = export_lib.export(str(biggan_run), str(tmp_path / "G.msgpack"))
  assert (weights, meta_path) == (str(tmp_path / "G.msgpack"), str(tmp_path / "G.json"))
  with open(meta_path) as f:
    meta = json.load(f)
  assert {k: meta[k] for k in ("method", "net", "model", "latent_dim", "num_classes", "image_shape", "value_range",
                               "step", "ema", "spectral_norm_applied", "collections", "ganzoo_version")} == {
      "method": "gan", "net": "g", "model": "biggan", "latent_dim": method.z_dim, "num_classes": 5,
      "image_shape": [32, 32, 3], "value_range": [-1.0, 1.0], "step": 2, "ema": True, "spectral_norm_applied": True,
      "collections": ["batch_stats", "params"], "ganzoo_version": ganzoo.__version__}
  assert meta["config"]["model"]["name"] == "biggan" and meta["config"]["model"]["conditional"] is True

  g = ganzoo.load_generator(weights)
  rng, labels = jax.random.PRNGKey(11), np.array([0, 4, 2, 2, 1, 3], np.int32)
  got = g.sample(rng, 6, condition=labels, uint8=False)
  # ganzoo.sample's generator (make_g_fn: the jitted EMA `method.generate`) on the latents that
  # `method.sample` draws from the same key.
  z, _ = method.sample_latents(rng, 6)
  want = np.asarray(sample_lib.make_g_fn(method, state, use_ema=True)(z, labels))
  assert got.dtype == np.float32 and got.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(g.sample(rng, 6, condition=labels), sampling.to_uint8(want))
  # Without a condition, z and the labels are those `method.sample` draws from the key.
  for a, b in zip(g.latents(rng, 6), method.sample_latents(rng, 6)):
    np.testing.assert_array_equal(a, b)

  # What the equality rules out: the trained (non-EMA) params, and the EMA without W / sigma, give
  # images that differ by far more than the 0 allowed above.
  raw = np.asarray(sample_lib.make_g_fn(method, state, use_ema=False)(z, labels))
  assert np.abs(raw - want).max() > 1e-4
  net, spec = state.nets["g"], method.nets["g"]
  no_sn, _ = jax.jit(lambda p, bs: nets_lib.forward(spec, p, bs, z, labels, train=False))(net.ema, net.ema_batch_stats)
  assert np.abs(np.asarray(no_sn) - want).max() > 1e-4   # BN after each conv cancels most of 1 / sigma
  # The exported SN leaves are W_ema / sigma, most of them unlike the raw EMA leaf (not all: a
  # leaf still near its orthogonal init has sigma = 1 to float32 precision, and W / 1 = W).
  flat = lambda t: {"/".join(str(k.key) for k in p): x for p, x in jax.tree_util.tree_leaves_with_path(t)}
  exported, ema = flat(g.variables["params"]), flat(jax.device_get(net.ema))
  changed = [p for p in net.sn.u if not np.array_equal(exported[p], ema[p])]
  assert len(net.sn.u) > 5 and len(changed) > len(net.sn.u) / 2, (len(changed), len(net.sn.u))

  # --noema exports the trained params, which give make_g_fn(use_ema=False)'s images.
  export_lib.export(str(biggan_run), str(tmp_path / "raw.msgpack"), use_ema=False)
  g_raw = ganzoo.load_generator(tmp_path / "raw.json")
  assert g_raw.ema is False and g_raw.step == 2
  np.testing.assert_array_equal(g_raw(z, labels, uint8=False), raw)
  with pytest.raises(ValueError, match=r"classes \[7\] out of range: the generator has 5 classes"):
    g.sample(rng, 2, condition=7)


def test_load_needs_no_workdir_and_no_data(biggan_run, tmp_path):
  """Export a copy of the run with the CLI (--out=DIR), delete the copy, move the data set away, and
  load in a fresh process: `import ganzoo` imports no JAX, and the images are the run's."""
  run = tmp_path / "run"
  shutil.copytree(biggan_run, run)
  out = tmp_path / "export"
  done = _cli(f"--workdir={run}", f"--out={out}", "--jax_platforms=cpu")   # --jax_* flags are accepted
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().splitlines() == [str(out / "generator.msgpack"), str(out / "generator.json")]
  method, state, _ = _restored(run)
  rng, labels = jax.random.PRNGKey(5), np.array([1, 1, 0, 4], np.int32)
  z, _ = method.sample_latents(rng, 4)
  want = np.asarray(sample_lib.make_g_fn(method, state)(z, labels))
  shutil.rmtree(run)
  data = sample_lib.load_run_config(str(biggan_run)).data.path
  os.rename(data, data + ".away")
  script = ("import sys\nimport ganzoo\nassert 'jax' not in sys.modules, 'import ganzoo imported jax'\n"
            f"g = ganzoo.load_generator({str(out)!r})\n"
            "import jax, numpy as np\nkey, y = jax.random.PRNGKey(5), [1, 1, 0, 4]\n"
            f"np.save({str(tmp_path / 'f.npy')!r}, g.sample(key, 4, condition=y, uint8=False))\n"
            f"np.save({str(tmp_path / 'u.npy')!r}, g.sample(key, 4, condition=y))\n"
            "print(g)\n")
  try:
    loaded = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**ENV, "PYTHONPATH": ROOT},
                            capture_output=True, text=True, timeout=300)
  finally:
    os.rename(data + ".away", data)
  assert loaded.returncode == 0, loaded.stderr
  assert "Generator('biggan', step=2, ema=True" in loaded.stdout
  np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), want)
  np.testing.assert_array_equal(np.load(tmp_path / "u.npy"), sampling.to_uint8(want))


def test_cli_file_form_unconditional_without_ema(dcgan_run, tmp_path):
  done = _cli(f"--workdir={dcgan_run}", f"--out={tmp_path / 'd' / 'G.msgpack'}", "--step=2")
  assert done.returncode == 0, done.stderr
  assert sorted(os.listdir(tmp_path / "d")) == ["G.json", "G.msgpack"]
  method, state, _ = _restored(dcgan_run)
  g = ganzoo.load_generator(str(tmp_path / "d" / "G.msgpack"))
  assert (g.ema, g.num_classes, g.image_shape, g.step) == (False, 0, (28, 28, 1), 2)
  assert "no EMA" in g.meta["note"]
  rng = jax.random.PRNGKey(3)
  want = sample_lib.make_g_fn(method, state)(*method.sample_latents(rng, 5))
  np.testing.assert_array_equal(g.sample(rng, 5, uint8=False), np.asarray(want))
  np.testing.assert_array_equal(g.sample(rng, 5), sampling.to_uint8(want))
  # The .json names the same export.
  same = ganzoo.load_generator(str(tmp_path / "d" / "G.json"))
  assert jax.tree.all(jax.tree.map(np.array_equal, same.variables, g.variables)) and same.meta == g.meta
  with pytest.raises(ValueError, match="unconditional"):
    g.sample(rng, 2, condition=1)


def test_bad_input_is_one_line(dcgan_run, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  shutil.copy(dcgan_run / "config.json", empty / "config.json")
  for args, fix in (([f"--workdir={empty}", f"--out={tmp_path / 'G.msgpack'}"], "error: no checkpoint in "),
                    ([f"--workdir={dcgan_run}", f"--out={tmp_path / 'G.msgpack'}", "--step=7"],
                     "error: no checkpoint at --step=7 in "),
                    ([f"--workdir={dcgan_run}"], "error: --out is required")):
    done = _cli(*args)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(fix), done.stderr
  assert not (tmp_path / "G.msgpack").exists()
  not_json = tmp_path / "not_export.json"
  not_json.write_text('{"a": 1}')
  for path, what in ((tmp_path / "run.png", "is not a ganzoo generator export"),
                     (tmp_path, "is not a ganzoo generator export"),            # a folder without an export
                     (not_json, "is not a ganzoo generator export"),
                     (dcgan_run / "config.json", "is not a ganzoo generator export")):
    with pytest.raises(ValueError, match=what) as e:
      ganzoo.load_generator(str(path))
    assert "\n" not in str(e.value)
  # An export whose weights are damaged, or do not go with its JSON.
  weights, meta_path = export_lib.export(str(dcgan_run), str(tmp_path / "ok.msgpack"))
  good = open(weights, "rb").read()
  for data, what in ((b"\x00not msgpack", "is not a flax msgpack of variables"),
                     (good[:len(good) // 2], "is not a flax msgpack of variables")):
    with open(weights, "wb") as f:
      f.write(data)
    with pytest.raises(ValueError, match=what):
      ganzoo.load_generator(weights)
  meta = json.load(open(meta_path))
  meta["config"]["model"]["size"] = "paper"      # another width: the weights no longer fit
  with open(weights, "wb") as f:
    f.write(good)
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  with pytest.raises(ValueError, match="does not match the model its JSON describes"):
    ganzoo.load_generator(weights)
  del meta["latent_dim"]
  with open(meta_path, "w") as f:
    json.dump(meta, f)
  with pytest.raises(ValueError, match=r"lacks \['latent_dim'\]"):
    ganzoo.load_generator(meta_path)
  with pytest.raises(ValueError, match="out=.*G.msgpack"):
    export_lib.output_paths(str(tmp_path / "G.json"))
