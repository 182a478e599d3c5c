#!/usr/bin/env bash
# Smoke tests on the newest Python on this machine, after the full suite on 3.11.
#
# Why: CI's full suite runs on Python 3.11 (jax 0.10.2 / flax 0.12.8, the lower bounds in
# pyproject.toml), while a user on a newer Python resolves newer jax/flax/optax/orbax releases.
# This creates (once) a venv with the newest Python found, installs the project with the `test`
# extra into it (no torch: the torch wheel on this machine's disk is for 3.11 only, and tests that
# need torch skip without it), prints the versions it resolved and runs the tests marked `smoke`.
#
# The venv is cached in ${GANZOO_CACHE_DIR:-~/.cache/ganzoo}/venv-pyX.Y. Each run upgrades it eagerly
# (`--upgrade --upgrade-strategy eager`), so it tests the releases a new user would get today, not
# those of the day it was made; on a warm venv with nothing new that takes ~15 s. pip's output goes
# to $venv/pip.log and is shown only when the install fails.
# GANZOO_NEWEST_PYTHON=/path/to/python picks the interpreter instead of the search below.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
# Sorts "X.Y<TAB>path" lines by version, newest last.
newest() { sort -t. -k1,1n -k2,2n | tail -n 1; }

current=$(version_of python || version_of python3)
if [[ -n "${GANZOO_NEWEST_PYTHON:-}" ]]; then
  best="$(version_of "$GANZOO_NEWEST_PYTHON")	$GANZOO_NEWEST_PYTHON"
else
  candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    while read -r v; do
      p="$root/versions/$v/bin/python"
      if [[ "$v" =~ ^3\.[0-9]+\.[0-9]+$ && -x "$p" ]]; then candidates+=("$p"); fi
    done < <(pyenv versions --bare)
  fi
  for minor in 20 19 18 17 16 15 14 13 12; do
    p=$(command -v "python3.$minor" 2>/dev/null || true)
    if [[ -n "$p" ]]; then candidates+=("$p"); fi
  done
  best=$(for p in "${candidates[@]}"; do v=$(version_of "$p") && printf '%s\t%s\n' "$v" "$p"; done | newest || true)
fi
best_version=${best%%	*}
best_python=${best#*	}
if [[ -z "$best_version" ]] || [[ "$(printf '%s\n%s\n' "$current" "$best_version" | newest)" == "$current" ]]; then
  echo "newest-python smoke: no Python newer than $current on this machine; nothing to do"
  exit 0
fi

venv="${GANZOO_CACHE_DIR:-$HOME/.cache/ganzoo}/venv-py$best_version"
if [[ ! -x "$venv/bin/python" ]] || [[ "$(version_of "$venv/bin/python")" != "$best_version" ]]; then
  rm -rf "$venv"
  "$best_python" -m venv "$venv"
fi
echo "newest-python smoke: Python $best_version ($best_python), venv $venv"
if ! "$venv/bin/python" -m pip install --upgrade --upgrade-strategy eager -e ".[test]" >"$venv/pip.log" 2>&1; then
  tail -n 30 "$venv/pip.log"
  echo "newest-python smoke: pip install into $venv failed (log above; delete the venv to start afresh)"
  exit 1
fi
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
import sys
names = ["jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tensorflow-datasets"]
print("resolved: python " + sys.version.split()[0] + ", " + ", ".join(f"{n} {m.version(n)}" for n in names))
PY
# Same runner options as the full suite (README's test command); torch-only tests skip here.
"$venv/bin/python" -m pytest -q -m smoke -n 2 --dist loadfile -p no:cacheprovider
echo "newest-python smoke: done in $((SECONDS - start)) s"
