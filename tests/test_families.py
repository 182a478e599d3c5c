"""The training protocol, tested on every registered family and on a second family defined here.

`Pair` (below) is a family that is not a GAN: two networks, two data streams read by different
phases (one with 2 repeats), BatchNorm in one network, and a running value in `state.extras`. It
goes through `train.train_and_evaluate` (sample grids, checkpoints, an exact resume) with no
change to train.py. Every registered family gets the 8-device == 1-device test here and the
resumed == unbroken test in tests/test_families_resume.py (a file of its own, so that the two
heaviest parametrized tests can run on different pytest-xdist workers under `--dist loadfile`),
both through its `Method.test_config`.
"""

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import nets as nets_lib
from ganzoo import parallel
from ganzoo import step as step_lib
from ganzoo import train
from ganzoo.state import TrainState
from ganzoo.models import layers
from tests.test_steps import FLOAT64_TOL, as_float64, assert_float64_close, float64_mode
from tests.test_train import write_npz


class _Critic(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


class _Decoder(nn.Module):
  shape: tuple[int, ...]

  @nn.compact
  def __call__(self, z, train=True):
    # No bias before BatchNorm, which cancels it (DCGAN practice): its true gradient is 0 and Adam
    # would step on its rounding noise times lr / eps = 1e6, the one leaf the 8 == 1 test would see.
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(16, use_bias=False)(z))
    return jnp.tanh(nn.Dense(int(np.prod(self.shape)))(nn.relu(h))).reshape(z.shape[0], *self.shape)


@methods.register("test_pair")
class Pair(methods.Method):
  """a: a critic fitted to score stream 'x' high and b's outputs low; b: a decoder fitted (2 updates
  per step, on stream 'y') to be scored high by a and to stay near y's images; extras['loss_avg']:
  a running mean of b's loss."""

  def __init__(self, config, data):
    super().__init__(config, data)
    self.shape = tuple(data.image_shape)
    n = int(config.train.num_steps)
    self.nets = {"a": nets_lib.build_spec(_Critic(), config.nets.a, n, 1),
                 "b": nets_lib.build_spec(_Decoder(self.shape), config.nets.b, n, 2)}
    self.phases = (step_lib.Phase("a", ("a",), self._a_loss, self._a_prepare, stream="x"),
                   step_lib.Phase("b", ("b",), self._b_loss, self._b_prepare, repeats=2, stream="y",
                                  after=self._after))

  def init(self, rng):
    r_a, r_b, r_sn = jax.random.split(rng, 3)
    a = self.nets["a"].module.init(r_a, jnp.zeros((2, *self.shape)))
    b = self.nets["b"].module.init(r_b, jnp.zeros((2, 4)))
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng,
                      nets={"a": nets_lib.init_net(self.nets["a"], a, r_sn), "b": nets_lib.init_net(self.nets["b"], b, r_sn)},
                      extras={"loss_avg": jnp.zeros((), jnp.float32)})

  def _a_prepare(self, ctx, data, key):
    z = ctx.shard(jax.random.normal(key, (data["image"].shape[0], 4)))
    return {"x": data["image"], "fake": jax.lax.stop_gradient(ctx.apply("b", z, train=True))}, {}

  def _a_loss(self, ctx, inp):
    loss = jnp.mean((ctx.apply("a", inp["x"]) - 1.0) ** 2) + jnp.mean(ctx.apply("a", inp["fake"]) ** 2)
    return loss, {"a_loss": loss}

  def _b_prepare(self, ctx, data, key):
    return {"y": data["image"], "z": jax.random.normal(key, (data["image"].shape[0], 4))}, {}

  def _b_loss(self, ctx, inp):
    out = ctx.apply("b", inp["z"])
    loss = jnp.mean((ctx.apply("a", out) - 1.0) ** 2) + 0.1 * jnp.mean((out - inp["y"]) ** 2)
    return loss, {"b_loss": loss}

  def _after(self, extras, metrics, step):
    return {"loss_avg": 0.9 * extras["loss_avg"] + 0.1 * metrics["b_loss"]}

  def nll(self, state, batch):
    """Bits/dim of the images under N(0, 1) per pixel (a likelihood for the evaluation plumbing)."""
    x = batch["image"]
    return jnp.mean(0.5 * x ** 2 + 0.5 * jnp.log(2 * jnp.pi)) / jnp.log(2.0)

  def sample(self, state, rng, n, condition=None):
    spec = self.nets["b"]
    params, bs = nets_lib.inference_variables(spec, state.nets["b"])
    return nets_lib.forward(spec, params, bs, jax.random.normal(rng, (n, 4)), train=False)[0]

  @classmethod
  def test_config(cls):
    c = config_lib.get_base_config()
    config_lib.tiny(c)
    c.method = "test_pair"
    c.data.batch_size = 16
    c.nets = ml_collections.ConfigDict({"a": nets_lib.net_config(lr=1e-2, b1=0.0), "b": nets_lib.net_config(lr=1e-2)})
    return c, methods.DataSpec((28, 28, 1), 10)


FAMILIES = methods.names()
# The newest-Python smoke run (.ci/newest_python.sh, `-m smoke`) takes the gan family's row only.
FAMILY_PARAMS = [pytest.param(f, marks=[pytest.mark.smoke] if f == "gan" else []) for f in FAMILIES]


def _batch(method, plan, seed, num_classes):
  return methods.random_batch(method, plan, seed, num_classes)


def _run(config, data, mesh, n, float64=False, min_size=parallel.FSDP_MIN_SIZE):
  """n steps; `float64`: the initial state cast to float64 and every step computed in float64. On a
  mesh with an 'fsdp' axis the state is placed at `parallel.state_shardings` (leaves of at least
  `min_size` elements sharded) and the step keeps it there."""
  method = methods.build(config, data)
  state = method.init(jax.random.PRNGKey(0))
  with float64_mode(float64):
    state = as_float64(state) if float64 else state
    sharding = parallel.state_shardings(state, mesh, min_size) if parallel.fsdp_size(mesh) > 1 else None
    state = jax.device_put(state, sharding) if sharding is not None else parallel.replicate(state, mesh)
    cache = step_lib.StepCache(method, mesh, donate=False, state_sharding=sharding)
    for i in range(n):
      plan = method.plan(i)
      state, metrics = cache(plan)(state, parallel.global_batch(_batch(method, plan, i, data.num_classes), mesh))
    return jax.device_get(state), jax.device_get(metrics)


def _family_config(family):
  """The family's test config; 'gan+sn': the gan family's (DCGAN: BatchNorm in G) with spectral
  norm in D and an EMA of G, so that SN vectors and EMA weights are state leaves too."""
  if family != "gan+sn":
    return methods.get(family).test_config()
  config, data = methods.get("gan").test_config()
  config.nets.d.sn.enabled = True
  config.nets.g.ema.decay = 0.9
  return config, data


@functools.cache
def _one_device(family):
  """Two float64 steps of the family on one device: the reference of the multi-device tests (run once)."""
  config, data = _family_config(family)
  return _run(config, data, parallel.make_mesh(jax.devices()[:1]), 2, float64=True)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_eight_devices_equal_one_device(family):
  """Two steps on 8 devices == on 1 device, every leaf of the state and every metric, in float64
  with the family's own optimizers: the runs differ only by reordered float64 sums, so the
  tolerance is `FLOAT64_TOL` (1e-9; tests/test_steps.py gives the bound). In float32 the
  reordering noise of near-zero gradients made Adam step by +-lr, so this test used SGD."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config, data = _family_config(family)
  one, m1 = _one_device(family)
  eight, m8 = _run(config, data, parallel.make_mesh(jax.devices()), 2, float64=True)
  assert_float64_close(one, eight)
  assert_float64_close(m1, m8)
  init = methods.build(config, data).init(jax.random.PRNGKey(0))
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(one.nets), jax.tree.leaves(init.nets)))
  assert moved > 1e-4, "two steps changed the state"


@pytest.mark.parametrize("fsdp", [2, 8])
@pytest.mark.parametrize("family", ["gan+sn", "cyclegan"])
def test_sharded_state_equals_one_device(family, fsdp):
  """Two steps with the state sharded (`parallel.fsdp`) on the (4, 2) and (1, 8) data x fsdp meshes ==
  on 1 device, as `test_eight_devices_equal_one_device`, in float64 within `FLOAT64_TOL`: the
  all-gathers of the weights are exact and the reduce-scatters of the gradients only reorder float64
  sums. `min_size=0` shards every floating leaf with an axis that `fsdp` divides (params, Adam
  moments, SN vectors, BatchNorm statistics, EMA, CycleGAN's image pools), not only the large ones.
  Families: DCGAN (BatchNorm in G) with SN in D and an EMA of G; CycleGAN (four networks, two streams)."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config, data = _family_config(family)
  one, m1 = _one_device(family)
  mesh = parallel.make_mesh(jax.devices(), fsdp=fsdp)
  sharded, ms = _run(config, data, mesh, 2, float64=True, min_size=0)
  assert_float64_close(one, sharded)
  assert_float64_close(m1, ms)
  shapes = jax.eval_shape(methods.build(config, data).init, jax.random.PRNGKey(0))
  specs = [s.spec for s in jax.tree.leaves(parallel.state_shardings(shapes, mesh, 0))]
  assert sum(spec != P() for spec in specs) > len(specs) // 2, "most leaves were sharded"


def test_device_comparison_catches_per_device_batch_statistics(monkeypatch):
  """The 8 == 1 comparison fails when the data-parallel step is wrong: here BatchNorm normalizes
  each device's rows with that device's statistics (the all-reduce of the batch moments left out),
  on the `gan` family's DCGAN (BatchNorm in G and D). A global batch of 16 on 8 devices puts rows
  2d, 2d + 1 on device d; the patched layer normalizes exactly those groups of 2."""
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  config, data = methods.get("gan").test_config()
  one, _ = _run(config, data, parallel.make_mesh(jax.devices()[:1]), 1, float64=True)
  global_stats = layers._normalize_train  # pylint: disable=protected-access

  def per_device_stats(x, scale, bias, epsilon):
    groups = x.reshape(8, x.shape[0] // 8, *x.shape[1:])
    y, mean, var = jax.vmap(lambda g: global_stats(g, scale, bias, epsilon))(groups)
    return y.reshape(x.shape), mean.mean(0), var.mean(0)

  monkeypatch.setattr(layers, "_normalize_train", per_device_stats)
  wrong, _ = _run(config, data, parallel.make_mesh(jax.devices()), 1, float64=True)
  with pytest.raises(AssertionError):
    assert_float64_close(one, wrong)
  # Not a near miss: the wrong statistics move the params by orders of magnitude more than the tolerance.
  diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
             for a, b in zip(jax.tree.leaves(one.nets["g"].params), jax.tree.leaves(wrong.nets["g"].params)))
  assert diff > 1e3 * FLOAT64_TOL, diff


def test_second_family_runs_through_the_training_program(tmp_path):
  """The Pair family: two streams, a phase with 2 repeats, extras, sample grids, through train.py."""
  config, data = Pair.test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=48, shape=data.image_shape)
  config.train.num_steps = 3
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=parallel.make_mesh(jax.devices()[:1]),
                                     progress=False)
  assert summary["step"] == 3 and summary["params/a"] == 28 * 28 + 1
  lines = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert {"train/a_loss", "train/b_loss", "train/a_grad_norm", "train/b_grad_norm"} <= set(lines[1])
  assert os.path.exists(tmp_path / "run" / "samples" / "step_00000002.png")
  from ganzoo import checkpoint  # pylint: disable=g-import-not-at-top
  _, method, _ = train.setup(config, parallel.make_mesh(jax.devices()[:1]))
  state, _ = checkpoint.latest_state(str(tmp_path / "run"), method.init(jax.random.PRNGKey(0)))
  # b trained twice per step, a once; the running value moved.
  count = lambda t: [int(x) for x in jax.tree.leaves(t) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
  assert set(count(state.nets["a"].opt_state)) == {3} and set(count(state.nets["b"].opt_state)) == {6}
  assert float(state.extras["loss_avg"]) > 0


def test_streams_are_independent_and_offsets_follow_the_plans():
  """Two streams of one source are different orders; a stream's batch depends only on (seed,
  stream, examples before it), also when the batch size changes."""
  from ganzoo import data as data_lib  # pylint: disable=g-import-not-at-top
  src = data_lib.ArraySource(np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8))
  reader = data_lib.Dataset(src, seed=3)
  x = reader.read("x", 0, 3, 4)["image"][..., 0, 0, 0]       # 12 examples: crosses an epoch
  y = reader.read("y", 0, 3, 4)["image"][..., 0, 0, 0]
  assert not np.array_equal(x, y)
  assert sorted(x.ravel()[:10]) == list(range(10))          # one epoch: every example once
  # The same examples read with another batch size.
  x2 = reader.read("x", 0, 2, 6)["image"][..., 0, 0, 0]
  np.testing.assert_array_equal(x.ravel(), x2.ravel())
  np.testing.assert_array_equal(reader.read("x", 5, 1, 3)["image"][0, :, 0, 0, 0], x.ravel()[5:8])


def test_phase_keys_do_not_depend_on_the_other_phases():
  """Adding a phase leaves the others' randomness unchanged: a phase's key is fold_in(step key,
  its constant), whatever else is in the plan."""
  a = step_lib.Phase("x", (), None)
  b = step_lib.Phase("y", (), None)
  assert a.key_constant != b.key_constant
  assert step_lib.Phase("x", (), None, key=0).key_constant == 0
  assert step_lib.plan_for_step((a, b._replace(every=3)), 1).phases == (a,)


def test_a_family_likelihood_is_logged_by_evaluation(tmp_path):
  """A family with `nll` gets eval/bpd: the mean over the first eval.num_samples examples."""
  config, data = Pair.test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=48, shape=data.image_shape)
  config.train.num_steps = 2
  config.eval.every = 2
  config.eval.metrics = ""            # no sample metrics: only the likelihood
  config.eval.num_samples = 10
  config.eval.batch_size = 4
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=parallel.make_mesh(jax.devices()[:1]),
                                     progress=False)
  x = np.load(tmp_path / "d.npz")["images"][:10].astype(np.float64) / 127.5 - 1.0
  expected = np.mean(0.5 * x ** 2 + 0.5 * np.log(2 * np.pi)) / np.log(2.0)
  # float32 per-batch means of <= 4 * 784 terms, then a float64 average: relative error < 1e-5.
  np.testing.assert_allclose(summary["metrics"]["eval/bpd"], expected, rtol=1e-5)


def test_a_failed_evaluation_is_logged_and_training_goes_on(tmp_path, monkeypatch, capsys):
  """An evaluation that raises costs neither the run nor the step's checkpoint (written first):
  eval/error = 1 in metrics.jsonl, one console line; without a terminal, one plain line per log step."""
  config, data = Pair.test_config()
  config.data.name = "npz"
  config.data.path = write_npz(tmp_path / "d.npz", n=48, shape=data.image_shape)
  config.train.num_steps = 2
  config.train.checkpoint_every = 1
  config.eval.every = 1
  config.eval.metrics = ""

  def broken(self, state, batch):
    raise RuntimeError("no likelihood today")

  monkeypatch.setattr(Pair, "nll", broken)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"), mesh=parallel.make_mesh(jax.devices()[:1]),
                                     progress=True)
  assert summary["step"] == 2
  lines = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert [l.get("eval/error") for l in lines[1:]] == [1.0, 1.0]
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["1", "2"]
  out = capsys.readouterr().out
  assert out.count("warning: evaluation at step") == 2 and "no likelihood today" in out
  assert "step 1: {" in out and "step 2: {" in out   # pytest's stderr is not a terminal: no tqdm bar
