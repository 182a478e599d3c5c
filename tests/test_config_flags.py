"""`--config` takes a config name or a path, from any working directory (ganzoo.config_flags)."""

import pathlib

from absl import flags
import pytest

import ganzoo
from ganzoo import config_flags

# ml_collections loads config files with importlib's load_module (deprecated in 3.11).
pytestmark = pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')

REPO_CONFIGS = pathlib.Path(ganzoo.__file__).resolve().parent.parent / 'configs'


@pytest.fixture(autouse=True)
def _elsewhere(monkeypatch, tmp_path):
  """Every test runs outside the repository, with no GANZOO_CONFIG_DIR."""
  monkeypatch.delenv(config_flags.CONFIG_DIR_ENV, raising=False)
  monkeypatch.chdir(tmp_path)


def _parse(argv):
  """Defines --config on fresh FlagValues and parses ``argv``; returns (flag values, holder)."""
  fv = flags.FlagValues()
  argv = ['prog'] + argv
  holder = config_flags.define_config_flag(flag_values=fv, sys_argv=argv)
  fv(argv)
  return fv, holder


def test_resolve_names_and_paths():
  sngan = str(REPO_CONFIGS / 'sngan.py')
  assert config_flags.resolve_config_path('sngan') == sngan
  assert config_flags.resolve_config_path('sngan.py:fashion_mnist') == sngan + ':fashion_mnist'
  assert config_flags.resolve_config_path('configs/sngan.py:tiny') == sngan + ':tiny'
  assert config_flags.resolve_config_path(sngan + ':a:b') == sngan + ':a:b'  # kept as given


def test_existing_path_is_kept_and_wins_over_names(tmp_path):
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'sngan.py').write_text('def get_config(arg=None):\n  return {"mine": arg}\n')
  assert config_flags.resolve_config_path('configs/sngan.py:x') == 'configs/sngan.py:x'
  _, holder = _parse(['--config=configs/sngan.py:x'])
  assert holder.value == {'mine': 'x'}


def test_env_dir_adds_names_after_the_repository(tmp_path, monkeypatch):
  own = tmp_path / 'own'
  own.mkdir()
  (own / 'mygan.py').write_text('def get_config(arg=None):\n  return {"arg": arg}\n')
  (own / 'sngan.py').write_text('def get_config(arg=None):\n  return {}\n')
  monkeypatch.setenv(config_flags.CONFIG_DIR_ENV, str(own))
  assert config_flags.resolve_config_path('mygan:v') == str(own / 'mygan.py') + ':v'
  assert config_flags.resolve_config_path('sngan') == str(REPO_CONFIGS / 'sngan.py')
  assert 'mygan' in config_flags.available_configs()


@pytest.mark.parametrize('spec', ['nosuchgan', 'nosuchgan.py:tiny', 'configs/nosuchgan.py'])
def test_unknown_name_is_one_line_listing_names(spec):
  with pytest.raises(ValueError) as e:
    config_flags.resolve_config_path(spec)
  msg = str(e.value)
  assert '\n' not in msg and 'nosuchgan' in msg
  for name in ('dcgan', 'sngan', 'biggan', 'wgan_gp'):
    assert name in msg
  with pytest.raises(flags.IllegalFlagValueError, match='one of acgan, (.+, )?biggan'):
    _parse([f'--config={spec}'])


@pytest.mark.parametrize('spec', ['dcgan:tiny', 'dcgan.py:tiny', 'configs/dcgan.py:tiny'])
def test_flag_loads_from_another_directory(spec):
  assert not (pathlib.Path.cwd() / 'configs').exists()
  fv, holder = _parse([f'--config={spec}', '--config.train.num_steps=0',
                       '--config.data.name=npz', '--config.data.path=x.npz'])
  config = holder.value
  assert config.model.name == 'dcgan'
  assert config.train.num_steps == 0 and config.data.name == 'npz' and config.data.path == 'x.npz'
  assert fv['config'].config_filename == spec
  assert config_flags.resolve_config_path(spec).startswith(str(REPO_CONFIGS / 'dcgan.py'))


def test_variant_and_locking_behave_as_ml_collections():
  _, tiny = _parse(['--config=sngan:fashion_mnist'])
  assert tiny.value.data.name == 'fashion_mnist'
  # Locked as with DEFINE_config_file, but a one-line flag error naming the valid keys (ml_collections
  # raises an AttributeError traceback).
  with pytest.raises(flags.IllegalFlagValueError, match="'train' has no key 'no_such_field'; the keys of 'train'"):
    _parse(['--config=sngan', '--config.train.no_such_field=1'])
