"""The training program: two runs end to end, checkpoint fall-back, NaN stop, one-line errors (one
step of every config logs its objective's formula: tests/test_train_objectives.py; resume == unbroken
run is tested for every family in tests/test_families_resume.py)."""

import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL.Image
import pytest

from ganzoo import checkpoint
from ganzoo import parallel
from ganzoo import sampling
from ganzoo import train
from tests.test_steps import ROOT, build, load_config


def write_npz(path, n=64, shape=(28, 28, 1), num_classes=10, seed=0):
  rng = np.random.default_rng(seed)
  np.savez(path, images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
           labels=rng.integers(0, num_classes, (n,)).astype(np.int32))
  return str(path)


def npz_config(name, tmp_path, arg="tiny", shape=(28, 28, 1)):
  config = load_config(name, arg)
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "data.npz", shape=shape)
  config.eval.every = 0
  return config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def one_device():
  return parallel.make_mesh(jax.devices()[:1])


def latest_states(config, *workdirs):
  """[(state, step)] of the newest checkpoint of each run directory, restored on one device onto the
  family `config` builds (for comparing two runs of the same config)."""
  from ganzoo import checkpoint  # pylint: disable=g-import-not-at-top
  _, method, _ = train.setup(config, one_device())
  target = method.init(jax.random.PRNGKey(0))
  out = []
  for workdir in workdirs:
    state, step = checkpoint.latest_state(str(workdir), target)
    out.append((jax.device_get(state), step))
  return out


# ---------------------------------------------------------------------------------------------
# Two runs end to end through train.train_and_evaluate.

def test_unconditional_run_with_ema_writes_metrics_samples_and_checkpoints(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 3
  config.train.sample_every = 2
  config.train.checkpoint_every = 2
  config.nets.g.ema.decay = 0.5
  config.nets.g.ema.start = 0
  config.train.profile_steps = "2,1"   # a trace of step 2 (ganzoo.profiling)
  workdir = tmp_path / "run"
  summary = train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  assert summary["step"] == 3 and summary["start_step"] == 0
  lines = read_metrics(workdir)
  assert [l["step"] for l in lines] == [0, 1, 2, 3]
  assert [l["step"] for l in lines if "perf/step_gflop" in l] == [1] and lines[1]["perf/step_gflop"] > 0
  assert glob.glob(str(workdir / "profile" / "**" / "*.xplane.pb"), recursive=True)
  assert lines[0]["params/g"] == summary["params/g"] > 0 and lines[0]["params/d"] == summary["params/d"] > 0
  train_keys = {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/d_grad_norm",
                "train/g_grad_norm"}
  for l in lines[1:]:
    assert train_keys <= set(l) and all(np.isfinite(l[k]) for k in train_keys), l
  assert [l["step"] for l in lines if "perf/sample_s" in l] == [2, 3]        # every 2 and at the end
  assert [l["step"] for l in lines if "perf/checkpoint_s" in l] == [2, 3]
  assert "perf/steps_per_sec" in lines[3]
  samples = sorted(os.listdir(workdir / "samples"))
  assert samples == ["step_00000002.png", "step_00000003.png"]
  grid = np.asarray(PIL.Image.open(workdir / "samples" / samples[-1]))
  assert grid.shape[:2] == (2 * (28 + 2) + 2,) * 2   # 4 images in a 2 x 2 grid, 2 px padding
  assert glob.glob(str(workdir / "tb" / "events.out.tfevents.*"))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "3"]
  method = build(config, (28, 28, 1))
  ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"))
  state = ckpt.restore(3, jax.eval_shape(method.init, jax.random.PRNGKey(config.seed)))
  ckpt.close()
  assert int(state.step) == 3
  g = state.nets["g"]   # EMA with decay 0.5 from step 0: between the params and the initial ones, not equal
  delta = jax.tree.map(lambda e, p: float(np.abs(np.asarray(e) - np.asarray(p)).max()), g.ema, g.params)
  assert max(jax.tree.leaves(delta)) > 0
  # The PNG is the EMA generator on the fixed latents.
  images = np.asarray(method.sample_fixed(state, method.fixed_inputs(config.seed, 4), 4))
  want = sampling.make_grid(images, nrow=2)
  np.testing.assert_array_equal(grid.reshape(want.shape), want)


def test_conditional_run_with_a_lazy_penalty(tmp_path):
  """cGAN (labels from the data) with R1 every 2 steps: the d_reg phase runs at steps 0, 2, ...
  (lazy regularization rescales Adam's betas, so D trains with Adam instead of the paper's SGD)."""
  config = npz_config("cgan", tmp_path)
  config.nets.d.optim.update(dict(name="adam", lr=2e-4, b1=0.5, b2=0.999, momentum_final=None))   # no SGD ramp
  config.unlock()
  config.penalties = ml_collections.ConfigDict({"r1": {"weight": 1.0, "every": 2}})
  config.lock()
  config.train.num_steps = 3
  config.train.checkpoint_every = 3
  config.train.sample_every = 3
  workdir = tmp_path / "run"
  summary = train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  assert summary["step"] == 3
  lines = read_metrics(workdir)
  assert [l["step"] for l in lines] == [0, 1, 2, 3]
  # metrics line k is the step that follows k - 1 completed steps: d_reg at completed 0 and 2.
  assert [l["step"] for l in lines if "train/reg_penalty" in l] == [1, 3]
  reg_lines = [l for l in lines if "train/reg_penalty" in l]
  assert all(l["train/reg_penalty"] > 0 and np.isfinite(l["train/reg_penalty"]) for l in reg_lines)
  assert all("train/d_reg_grad_norm" in l for l in reg_lines)
  assert all(set(l) >= {"train/d_loss", "train/g_loss"} for l in lines[1:])
  assert os.listdir(workdir / "samples") == ["step_00000003.png"]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3"]


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path, capsys):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  for f in glob.glob(str(workdir / "checkpoints" / "4" / "**" / "*"), recursive=True):
    if os.path.isfile(f):
      with open(f, "wb") as fh:
        fh.write(b"garbage")
  config.train.num_steps = 5
  summary = train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  assert summary["start_step"] == 2
  assert "failed to restore" in capsys.readouterr().out
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "5"]  # 4 re-written after the fall-back
  assert len(os.listdir(workdir / "checkpoints_failed")) == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.train.checkpoint_every = 1
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False)
  config.train.num_steps = 4
  config.nets.d.optim.lr = float("nan")       # step 3's D update makes D NaN; G's loss at step 3 is NaN
  with pytest.raises(train.NonFiniteLossError, match=r"step 3: train/\w+ is nan.*last good checkpoint \(step 2\)"):
    # A changed learning rate alters the run's results: resuming with it needs the override.
    train.train_and_evaluate(config, str(workdir), mesh=one_device(), progress=False, allow_config_change=True)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1", "2"]


def test_nan_params_are_never_checkpointed(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.train.num_steps = 2
  config.train.checkpoint_every = 1
  config.nets.g.optim.lr = float("nan")       # step 1's losses are finite, but its G update is NaN
  with pytest.raises(train.NonFiniteLossError, match="step 1: the parameters .* became NaN"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)
  assert os.listdir(tmp_path / "run" / "checkpoints") == []


def test_unknown_config_key_is_an_error(tmp_path):
  config = npz_config("dcgan", tmp_path)
  config.unlock()
  config.train.lerning_rate = 1.0
  with pytest.raises(ValueError, match="unknown config key 'train.lerning_rate'"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)


def test_image_shape_the_model_cannot_take(tmp_path):
  config = npz_config("dcgan", tmp_path, shape=(30, 30, 1))
  with pytest.raises(ValueError, match=r"dcgan supports .* got \(30, 30, 1\)"):
    train.train_and_evaluate(config, str(tmp_path / "run"), mesh=one_device(), progress=False)


@pytest.mark.smoke
def test_cli_prints_one_line_errors(tmp_path):
  """The CLI turns user errors into one line on stderr and exit code 1."""
  data = write_npz(tmp_path / "d.npz")
  base = [sys.executable, "-m", "ganzoo.main", "--config=configs/dcgan.py:tiny", f"--workdir={tmp_path / 'w'}",
          "--config.data.name=npz", f"--config.data.path={data}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  bad_batch = subprocess.run(base + ["--config.data.batch_size=6"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert bad_batch.returncode == 1
  err = bad_batch.stderr.strip().splitlines()
  assert err[-1].startswith("error: data.batch_size=6 must be divisible by the number of devices (4)"), err
  unknown = subprocess.run(base + ["--config.train.lerning_rate=1"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert unknown.returncode != 0 and "lerning_rate" in unknown.stderr
  missing = subprocess.run(base[:5] + ["--config.data.name=cifar10", "--config.data.source=tfds",
                                       f"--config.data.data_dir={tmp_path / 'none'}", "--config.data.download=False"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
  errors = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
  assert missing.returncode == 1 and len(errors) == 1 and "Traceback" not in missing.stderr, missing.stderr
  assert "cifar10 not found" in errors[0] and "TFDS_DATA_DIR" in errors[0]


def test_step_flops_of_a_matrix_product_and_bad_profile_steps():
  """XLA's count for [64, 128] @ [128, 32] is 2 * 64 * 128 * 32 multiply-adds' FLOPs; a malformed
  `train.profile_steps` gets one line that says what to pass."""
  from ganzoo import profiling  # pylint: disable=g-import-not-at-top
  f = jax.jit(lambda a, b: a @ b)
  assert profiling.step_flops(f, jnp.ones((64, 128)), jnp.ones((128, 32))) == 2 * 64 * 128 * 32
  assert profiling.parse_steps("20,5") == (20, 5) and profiling.parse_steps(None) is None
  for bad in ("20", "0,5", "a,b", "3,0,1"):
    with pytest.raises(ValueError, match=r"must be 'START,N'.*--config.train.profile_steps=20,5"):
      profiling.parse_steps(bad)
