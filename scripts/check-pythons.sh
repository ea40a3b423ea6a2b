#!/usr/bin/env bash
# The tests that need no peer, on the other Python versions the package supports (3.12, 3.13;
# scripts/test.sh runs the whole suite on the main one). One venv per version (in ~/.cache/mpp-client),
# holding the package (editable) and its test dependencies only; the tests that start a chain,
# a reference server, a database or a browser are marked `peer` by tests/conftest.py and left
# out. Arguments replace the default test selection (below).
#
#   bash scripts/check-pythons.sh                  # 3.12 and 3.13
#   PYTHON_VERSIONS=3.13 bash scripts/check-pythons.sh tests/protocol
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON_VERSIONS="${PYTHON_VERSIONS:-3.12 3.13}"
# By default what differs between versions and is quick: the wire format (without the property
# tests, which the main run covers), the flow, all three drivers, the lifecycle, the public API,
# the extras and from_config (about 25 s of CPU per version). Arguments replace this list.
TESTS=("$@")
if [[ ${#TESTS[@]} -eq 0 ]]; then
  TESTS=(tests/protocol tests/flow tests/drivers tests/test_lifecycle.py tests/test_money.py
    tests/test_runner.py tests/package/test_public_api.py tests/package/test_missing_extras.py
    tests/package/test_from_config.py --ignore=tests/protocol/test_protocol_properties.py)
fi

find_python() {
  # PATH first, then pyenv's versions (its shims answer "command not found" for a version that
  # is installed but not selected).
  local version="$1" candidate
  for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
    $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" \
      2>/dev/null | sort -rV); do
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

for version in $PYTHON_VERSIONS; do
  python="$(find_python "$version" || true)"
  if [[ -z "$python" ]]; then
    if [[ "${MPP_ALLOW_SKIP:-0}" == 1 ]]; then
      echo "== Python $version is not installed: skipped (MPP_ALLOW_SKIP=1)"
      continue
    fi
    echo "== Python $version is not installed (pyenv install $version, or apt)" >&2
    exit 1
  fi
  # Outside the checkout, so a fresh clone (CI) reuses the machine's venv and only refreshes
  # the editable install.
  venv="${MPP_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/mpp-client}/venv-$version"
  echo "== Python $version ($python)"
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -qq --disable-pip-version-check -e '.[test]'
  # No peers here: a test that needs one and was not marked would fail, not skip.
  MPP_ALLOW_SKIP=0 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    -m "not peer and not chain and not slow" "${TESTS[@]}"
done
