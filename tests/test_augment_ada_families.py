"""DiffAugment and ADA (ganzoo.augment; arXiv:2006.10738, arXiv:2006.06676) in the families that apply
them: the gan family's 8-device == 1-device step with each, a resumed run keeping ADA's p, StyleGAN2's
R1 through the augmentation. The ops themselves are tested in tests/test_augment_ada.py (split so
that pytest-xdist's `--dist loadfile` runs the two files on different workers)."""

import jax
import numpy as np
import pytest

from ganzoo import methods
from ganzoo import parallel
from tests.test_augment import assert_gan_devices_agree_and_transform_reaches_updates
from tests.test_families import _run
from tests.test_families_resume import assert_resumed_run_equals_unbroken_run


# -- in the families ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["diffaugment", "ada"])
def test_gan_eight_devices_equal_one_device_with_augmentation(setting):
  config, data = methods.get("gan").test_config()
  if setting == "diffaugment":
    config.augment.diffaugment.policy = "color,translation,cutout"
  else:   # adaptive p moving every step (interval 1) by 16 / 20 = 0.8, so step 2 augments
    config.augment.ada.update(dict(target=0.6, p=0.5, interval=1, kimg=0.02))
  one, m1 = assert_gan_devices_agree_and_transform_reaches_updates(config, data)
  if setting == "ada":
    p1 = float(m1["train/ada_p"])   # the p of step 1: 0.5 moved once by 0.8 (floored at 0)
    assert min(abs(p1 - 1.3), abs(p1 - 0.0)) < 1e-7
    want = max(p1 + float(np.sign(m1["train/ada_sign"] - 0.6)) * 0.8, 0.0)
    assert float(one.extras["ada_p"]) == pytest.approx(want, abs=1e-7)


def test_ada_resumed_run_keeps_p(tmp_path, monkeypatch):
  """4 steps straight, or 2 steps, a crash, and a restart, with ADA's p adapting every 2 steps: the same
  state (p and the sign statistics included), bit for bit."""
  config, data = methods.get("gan").test_config()
  config.augment.ada.update(dict(target=0.6, p=0.5, interval=2, kimg=0.05, pipeline="bgc"))
  state = assert_resumed_run_equals_unbroken_run(config, data, tmp_path, monkeypatch)
  p = float(np.asarray(state.extras["ada_p"]))
  assert min(abs(p - q) for q in (0.0, 0.5, 1.78)) < 1e-6, p   # 0.5 moved twice by +-16 * 2 / 50, floored at 0


def test_stylegan2_with_ada_augments_d_r1_and_g_and_moves_p():
  """One StyleGAN2 step (G, path length, D, R1 all run at step 0) with adaptive ADA: p moves by the rule on
  the mean sign over D's and R1's evaluations of the reals, and the D update differs from the one without.

  "Without" is the same adaptive pipeline started at p = 0, where every op is exactly the identity
  (tests/test_augment_ada.py::test_every_augmentation_is_the_identity_at_p0): p lives in the state,
  so both runs are one compiled step."""
  config, data = methods.get("stylegan2").test_config()
  mesh = parallel.make_mesh(jax.devices()[:1])
  config.augment.ada.update(dict(target=0.6, p=0.0, interval=1, kimg=0.04))
  off, _ = _run(config, data, mesh, 1)
  config.augment.ada.p = 0.5
  on, m = _run(config, data, mesh, 1)
  r_t = (float(m["train/ada_sign"]) + float(m["train/r1_ada_sign"])) / 2   # 16 reals each
  want = max(0.5 + float(np.sign(r_t - 0.6)) * 16 / 40, 0.0)
  assert float(on.extras["ada_p"]) == pytest.approx(want, abs=1e-6) and float(on.extras["ada_count"]) == 0
  moved = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
              for a, b in zip(jax.tree.leaves(on.nets["d"]), jax.tree.leaves(off.nets["d"])))
  assert moved > 1e-7
