"""experiments/benchmark.py and experiments/torch_models.py: equal models, valid JSON (needs torch)."""

import json
import os
import subprocess
import sys

import jax
from jaxlib import version as jaxlib_version
import pytest

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import benchmark  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import machine  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import torch_models  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from ganzoo import methods  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from ganzoo.state import param_count  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize("name,tiny", [("dcgan", False), ("sngan", False), ("dcgan", True), ("sngan", True)])
def test_param_counts_match(name, tiny):
  config = benchmark.load_config(name, 64, tiny)
  gan = methods.build(config, methods.DataSpec((32, 32, 3)))
  state = jax.eval_shape(gan.init, jax.random.PRNGKey(0))
  trainer, d_steps = torch_models.build(name, 64, 3, tiny)
  assert d_steps == config.train.d_steps
  assert param_count(state.nets["g"].params) == torch_models.param_count(trainer.G)
  assert param_count(state.nets["d"].params) == torch_models.param_count(trainer.D)


def test_torch_spectral_norm_sigma_is_one():
  # After enough power iterations the normalized weights have spectral norm 1.
  torch.manual_seed(0)
  d = torch_models.SNGANResNetDiscriminator(d_ch=8)
  sn = torch_models.SpectralNorm(d)
  for _ in range(50):
    params = sn.params(update=True)
  w = params["blocks.1.conv1.weight"].detach()
  sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()
  # The power iteration's truncation error after 50 updates, deterministic for this seed (float32
  # rounding adds ~1e-6): an unnormalized conv kernel is off by far more than 1e-3.
  assert abs(sigma - 1.0) < 1e-3


@pytest.mark.parametrize("reuse_fakes", [False, True])
def test_torch_step_updates_both_networks(reuse_fakes):
  torch.manual_seed(0)
  trainer, d_steps = torch_models.build("sngan", batch_size=4, tiny=True, reuse_fakes=reuse_fakes)
  g0 = [p.detach().clone() for p in trainer.G.parameters()]
  d0 = [p.detach().clone() for p in trainer.D.parameters()]
  forwards = []
  trainer.G.register_forward_hook(lambda *_: forwards.append(1))
  d_loss, g_loss = trainer.step(torch.rand(d_steps, 4, 3, 32, 32) * 2 - 1)
  # One G forward per D update, and one more for G's update unless it reuses D's last fakes.
  assert len(forwards) == d_steps + (0 if reuse_fakes else 1)
  assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
  assert all(not torch.equal(a, b) for a, b in zip(d0, trainer.D.parameters()))
  assert any(not torch.equal(a, b) for a, b in zip(g0, trainer.G.parameters()))
  assert all(p.requires_grad for p in trainer.D.parameters())


def test_benchmark_tiny_json():
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "benchmark.py"), "--models=dcgan", "--tiny",
         "--batch=8", "--reps=1", "--steps=1", "--warmup=1", "--torch_threads=1", "--json"]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  r = result["models"]["dcgan"]
  for key in ("ganzoo_ms", "torch_ms", "ratio", "flops", "flop_per_s", "fraction_of_peak",
              "matmul_peak_flop_per_s", "peak_rss_mb"):
    assert key in r, key
  assert r["ganzoo_ms"] > 0 and r["torch_ms"] > 0
  # The JSON rounds the ms to 0.01 and the ratio to 0.001: recomputing it from the rounded ms is off
  # by <= ratio * (0.005 / torch_ms + 0.005 / ganzoo_ms) + 0.0005, under 1e-2 * ratio + 1e-3 for
  # steps >= 1 ms; an inverted ratio is off by far more.
  assert abs(r["ratio"] - r["torch_ms"] / r["ganzoo_ms"]) < 1e-2 * r["ratio"] + 1e-3
  assert r["flops"] > 1e6
  assert r["g_params"] == 61936 and r["d_params"] == 11241
  assert result["run"]["torch_threads"] == 1
  assert result["run"]["peak_rss_mb"] > 0
  # The machine is named, so rows from different machines are never mixed (issue: DCGAN on 2 vCPUs).
  run = result["run"]
  assert run["cpu"] and run["cores"] >= 1 and run["jaxlib"] == jaxlib_version.__version__
  assert set(run["cpu_extensions"]) <= set(machine.EXTENSIONS)


@pytest.mark.parametrize("name,tiny", [("pix2pix", False), ("cyclegan", False), ("pix2pix", True)])
def test_translation_twins_match_param_counts(name, tiny):
  # The twins of experiments/torch_translation.py against ganzoo's networks at the benchmark's sizes
  # (the published ones: unet_256 + 70x70 D on 6 channels; 2 x resnet_9blocks + 2 x 70x70 D).
  from ganzoo.models import translation  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  import torch_translation  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  width = 4 if tiny else 64
  x = jax.numpy.zeros((1, 256, 256, 3))
  count = lambda m, x: param_count(jax.eval_shape(m.init, jax.random.key(0), x)["params"])  # noqa: E731
  trainer = torch_translation.build(name, tiny)
  if name == "pix2pix":
    g = count(translation.define_G("unet_256", 3, width, "batch", use_dropout=True), x)
    d = count(translation.define_D("basic", width, norm="batch"), jax.numpy.zeros((1, 256, 256, 6)))
  else:
    g = 2 * count(translation.define_G("resnet_9blocks", 3, width, "instance"), x)
    d = 2 * count(translation.define_D("basic", width, norm="instance"), x)
  assert (torch_translation.param_count(trainer.G), torch_translation.param_count(trainer.D)) == (g, d)
  if not tiny:
    assert (g, d) == ((54_413_955, 2_768_705) if name == "pix2pix" else (2 * 11_378_179, 2 * 2_764_737))


def test_translation_torch_steps_update_every_network():
  import torch_translation  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  torch.manual_seed(0)
  threads = torch.get_num_threads()
  torch.set_num_threads(1)   # tiny steps: OpenMP threads only wait on a busy machine (10x slower measured)
  try:
    for name, size in (("pix2pix", 256), ("cyclegan", 32)):   # unet_256 needs 256 px; the ResNet G any multiple of 4
      a, b = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 3, size, size) * 2 - 1
      trainer = torch_translation.build(name, tiny=True, pool_size=2)
      before = [p.detach().clone() for p in list(trainer.G.parameters()) + list(trainer.D.parameters())]
      d_loss, g_loss = trainer.step(a, b)
      assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
      after = list(trainer.G.parameters()) + list(trainer.D.parameters())
      # Adam's first step moves every parameter with a nonzero gradient by ~lr; each tensor gets one.
      assert all(not torch.equal(p0, p) for p0, p in zip(before, after)), name
  finally:
    torch.set_num_threads(threads)


def test_torch_image_pool_semantics():
  # util/image_pool.py: the first `size` images are stored and returned; after that each query returns a
  # stored image (and stores the new one) with probability 1/2, else the new image itself.
  import torch_translation  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  pool = torch_translation.ImagePool(3, seed=0)
  imgs = [torch.full((1, 1, 2, 2), float(i)) for i in range(200)]
  outs = [pool.query(x) for x in imgs]
  assert [o.item() if o.numel() == 1 else o[0, 0, 0, 0].item() for o in outs[:3]] == [0.0, 1.0, 2.0]
  later = [o[0, 0, 0, 0].item() for o in outs[3:]]
  swapped = [v != i + 3 for i, v in enumerate(later)]
  # 197 fair coin flips: the swapped fraction lies in 0.5 +- 0.18 (5 standard deviations, 0.036 each).
  assert abs(sum(swapped) / len(swapped) - 0.5) < 0.18
  # A swapped-out image is an earlier one, never a later one.
  assert all(v < i + 3 for i, v in enumerate(later) if v != i + 3)
  assert torch_translation.ImagePool(0).query(imgs[5]) is imgs[5]
