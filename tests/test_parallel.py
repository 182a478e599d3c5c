"""ganzoo.parallel: the FSDP mesh, the sharding rule of state leaves, batches over both mesh axes, and
the training program's state really sharded (tests/test_families.py: FSDP steps == 1 device;
tests/test_families_resume.py: a checkpoint written with one fsdp size resumes with another)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from ganzoo import config as config_lib
from ganzoo import methods
from ganzoo import parallel
from ganzoo import step as step_lib
from ganzoo import train
from tests.test_families import _batch


@pytest.mark.parametrize("shape, dtype, fsdp, min_size, spec", [
    ((3, 3, 64, 128), jnp.float32, 2, 0, P(None, None, None, "fsdp")),   # the largest axis
    ((3, 3, 96, 64), jnp.float32, 4, 0, P(None, None, "fsdp")),
    ((128, 128), jnp.float32, 8, 0, P("fsdp")),                          # the first among equals
    ((6, 100), jnp.float32, 4, 0, P(None, "fsdp")),
    ((6, 10), jnp.float32, 4, 0, P()),                                   # no axis divides
    ((2, 3), jnp.float32, 4, 0, P()),                                    # axes smaller than fsdp
    ((64, 64), jnp.bfloat16, 2, 0, P("fsdp")),                           # any floating dtype
    ((64, 64), jnp.float32, 2, 64 * 64 + 1, P()),                        # below the size threshold
    ((64, 64), jnp.float32, 2, 64 * 64, P("fsdp")),
    ((64, 64), jnp.int32, 2, 0, P()),                                    # counters, keys: replicated
    ((), jnp.float32, 2, 0, P()),
    ((3, 3, 64, 128), jnp.float32, 1, 0, P()),                           # fsdp 1: replicated
])
def test_fsdp_spec(shape, dtype, fsdp, min_size, spec):
  assert parallel.fsdp_spec(shape, dtype, fsdp, min_size) == spec


def test_default_threshold_is_the_config_default():
  assert config_lib.get_base_config().parallel.fsdp_min_size == parallel.FSDP_MIN_SIZE == 2 ** 14
  assert config_lib.get_base_config().parallel.fsdp == 1


def test_make_mesh_shapes_and_errors():
  devices = jax.devices()
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  plain = parallel.make_mesh(devices)
  assert plain.axis_names == ("data",) and plain.devices.shape == (8,) and parallel.fsdp_size(plain) == 1
  assert parallel.make_mesh(devices, fsdp=1).axis_names == ("data",)   # fsdp 1 is the plain mesh itself
  for fsdp, shape in ((2, (4, 2)), (4, (2, 4)), (8, (1, 8))):
    mesh = parallel.make_mesh(devices, fsdp=fsdp)
    assert mesh.axis_names == ("data", "fsdp") and mesh.devices.shape == shape and parallel.fsdp_size(mesh) == fsdp
    assert list(mesh.devices.ravel()) == devices   # consecutive devices share a state shard
  for bad in (3, 0, -2, 16):
    with pytest.raises(ValueError, match=rf"parallel\.fsdp={bad} must be an int >= 1 that divides the number of "
                                         r"devices \(8\): pass --config\.parallel\.fsdp=<one of \[1, 2, 4, 8\]>"):
      parallel.make_mesh(devices, fsdp=bad)


def test_fsdp_values_are_validated():
  config = config_lib.get_base_config()
  config.parallel.fsdp = 0
  with pytest.raises(ValueError, match=r"config\.parallel\.fsdp=0 must be an int >= 1 .*--config\.parallel\.fsdp=<N >= 1>"):
    config_lib.validate_values(config)
  config.parallel.fsdp = 3   # not a divisor of 8: setup's mesh says so
  config.data.batch_size = 24
  with pytest.raises(ValueError, match=r"parallel\.fsdp=3 must be .* divides the number of devices \(8\)"):
    train.setup(config, need_data=False)


def test_batch_is_sharded_over_both_axes():
  """On the (4, 2) mesh device (i, j) holds batch slice 2 i + j: each device its own examples, in order."""
  mesh = parallel.make_mesh(jax.devices(), fsdp=2)
  assert parallel.batch_sharding(mesh, 1).spec == P(None, ("data", "fsdp"))
  assert parallel.batch_sharding(parallel.make_mesh(), 1).spec == P(None, "data")   # as before FSDP
  x = parallel.global_batch({"image": np.arange(32, dtype=np.int32).reshape(1, 16, 2)}, mesh)["image"]
  rows = {}
  for shard in x.addressable_shards:
    assert shard.data.shape == (1, 2, 2)
    rows[shard.device] = int(np.asarray(shard.data)[0, 0, 0]) // 4   # the shard's first example
  assert [rows[d] for d in jax.devices()] == list(range(8))


def test_the_run_state_is_sharded_and_stays_sharded():
  """parallel.fsdp=4: the training program's init places every leaf of >= fsdp_min_size elements as 1/4 per
  device on its largest divisible axis, the rest replicated; a step returns the state sharded the
  same way, and its compiled program gathers the weights (all-gather)."""
  config, data = methods.get("gan").test_config()
  config.parallel.fsdp = 4
  config.parallel.fsdp_min_size = 1024
  mesh = parallel.make_mesh(fsdp=4)
  method = methods.build(config, data)
  sharding = train.state_sharding(method, config, mesh)
  state = train._init_state(method, config, mesh, sharding)  # pylint: disable=protected-access
  sharded = 0
  for leaf, want in zip(jax.tree.leaves(state), jax.tree.leaves(sharding)):
    spec = parallel.fsdp_spec(leaf.shape, leaf.dtype, 4, 1024)
    assert leaf.sharding.spec == want.spec == spec
    local = leaf.addressable_shards[0].data.shape
    if spec == P():
      assert local == leaf.shape
    else:
      axis = list(spec).index("fsdp")
      assert local[axis] * 4 == leaf.shape[axis] and leaf.size >= 1024
      assert sum(s.data.size for s in leaf.addressable_shards) == 2 * leaf.size   # 8 devices, 4 shards
      sharded += 1
  big = max(jax.tree.leaves(state.nets), key=lambda a: a.size)
  assert big.addressable_shards[0].data.size * 4 == big.size
  # DCGAN tiny's kernels of >= 1024 elements: G's project (128, 784) and up_0 (4, 4, 16, 8), D's conv_1
  # (4, 4, 8, 16); each as params and two Adam moments. D's out (784, 1) is below the threshold.
  assert sharded == 9
  assert state.nets["g"].params["project"]["kernel"].sharding.spec == P(None, "fsdp")
  assert state.nets["d"].params["out"]["kernel"].sharding.spec == P()
  plan = method.plan(0)
  step = step_lib.make_step(method, plan, mesh, donate=False, state_sharding=sharding)
  batch = parallel.global_batch(_batch(method, plan, 0, data.num_classes), mesh)
  compiled = step.lower(state, batch).compile()
  assert "all-gather" in compiled.as_text()
  new, _ = compiled(state, batch)
  assert int(new.step) == 1
  for leaf, want in zip(jax.tree.leaves(new), jax.tree.leaves(sharding)):
    assert leaf.sharding.is_equivalent_to(want, leaf.ndim)


def test_without_fsdp_the_step_is_the_replicated_program():
  """fsdp = 1: the step lowers to the program of the replicated state and the 'data'-sharded batch,
  the jit written out as it was before FSDP existed (the same StableHLO text)."""
  config, data = methods.get("gan").test_config()
  method = methods.build(config, data)
  mesh = parallel.make_mesh(jax.devices(), fsdp=1)
  plan = method.plan(0)
  state = jax.eval_shape(method.init, jax.random.PRNGKey(0))
  batch = jax.eval_shape(lambda: parallel.global_batch(_batch(method, plan, 0, data.num_classes), mesh))
  now = step_lib.make_step(method, plan, mesh, donate=False).lower(state, batch).as_text()
  rep = NamedSharding(mesh, P())
  before = jax.jit(step_lib.make_step(method, plan, mesh, jit=False),
                   in_shardings=(rep, NamedSharding(mesh, P(None, "data"))), out_shardings=(rep, rep))
  assert now == before.lower(state, batch).as_text()
  sharding = train.state_sharding(method, config, mesh)
  assert sharding == rep
  assert str(jax.jit(method.init, out_shardings=sharding).lower(jax.random.PRNGKey(0)).as_text()) == str(
      jax.jit(method.init, out_shardings=rep).lower(jax.random.PRNGKey(0)).as_text())
