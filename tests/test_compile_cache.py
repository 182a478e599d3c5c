"""ganzoo.compile_cache: JAX's persistent compilation cache, checked in fresh subprocesses."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ganzoo import compile_cache

# Enables the cache (argument from argv[1], 'None' for the default), compiles one small program,
# and prints what JAX ended up with.
_CHILD = textwrap.dedent('''
  import json, sys
  import jax, jax.numpy as jnp
  from ganzoo import compile_cache
  arg = None if sys.argv[1] == 'None' else sys.argv[1]
  path = compile_cache.enable(arg)
  f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() + jnp.sin(x).mean())
  jax.block_until_ready(f(jnp.ones((64, 64))))
  print(json.dumps(dict(path=path, jax_dir=jax.config.jax_compilation_cache_dir,
      min_secs=jax.config.jax_persistent_cache_min_compile_time_secs)))
''')


def _run(arg, tmp_path, **env):
  """Runs _CHILD in a fresh Python with HOME in tmp_path and no cache variables but ``env``."""
  full = {k: v for k, v in os.environ.items()
          if k not in (compile_cache.CACHE_ENV, 'JAX_COMPILATION_CACHE_DIR')
          and not k.startswith('JAX_PERSISTENT_CACHE')}
  full.update(HOME=str(tmp_path / 'home'), JAX_PLATFORMS='cpu', **env)
  out = subprocess.run([sys.executable, '-c', _CHILD, str(arg)], env=full, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(folder):
  return [f for f in os.listdir(folder) if not f.startswith('.')] if os.path.isdir(folder) else []


def test_enable_writes_entries(tmp_path):
  cache = tmp_path / 'cache'
  out = _run(cache, tmp_path)
  assert out['path'] == out['jax_dir'] == str(cache)
  assert out['min_secs'] == compile_cache.MIN_COMPILE_SECS == 0.0
  assert _entries(cache), 'no cache entries written'


def test_default_folder_and_env(tmp_path):
  out = _run(None, tmp_path)
  default = tmp_path / 'home' / '.cache' / 'ganzoo' / 'jax_cache'
  assert out['path'] == str(default) and _entries(default)
  env_dir = tmp_path / 'from_env'
  out = _run(None, tmp_path, GANZOO_COMPILATION_CACHE=str(env_dir))
  assert out['path'] == str(env_dir) and _entries(env_dir)


@pytest.mark.parametrize('arg,env', [('off', {}), ('0', {}), ('None', {'GANZOO_COMPILATION_CACHE': 'off'}),
                                     ('None', {'GANZOO_COMPILATION_CACHE': 'OFF'})])
def test_off_leaves_jax_unset(tmp_path, arg, env):
  out = _run(arg, tmp_path, **env)
  assert out['path'] is None and out['jax_dir'] is None
  assert not (tmp_path / 'home' / '.cache').exists()


def test_users_jax_folder_is_kept(tmp_path):
  theirs, ours = tmp_path / 'theirs', tmp_path / 'ours'
  out = _run(ours, tmp_path, JAX_COMPILATION_CACHE_DIR=str(theirs),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='5')
  assert out['path'] == out['jax_dir'] == str(theirs) and out['min_secs'] == 5.0
  assert not ours.exists()


def test_resolve_dir(monkeypatch, tmp_path):
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.delenv(compile_cache.CACHE_ENV, raising=False)
  assert compile_cache.resolve_dir() == str(tmp_path / '.cache' / 'ganzoo' / 'jax_cache')
  assert compile_cache.resolve_dir('~/c') == str(tmp_path / 'c')
  monkeypatch.setenv(compile_cache.CACHE_ENV, ' Off ')
  assert compile_cache.resolve_dir() is None and compile_cache.resolve_dir('0') is None
  assert compile_cache.resolve_dir(str(tmp_path / 'x')) == str(tmp_path / 'x')  # the argument wins
