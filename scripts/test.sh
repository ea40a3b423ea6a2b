#!/usr/bin/env bash
# The whole test suite from a fresh clone: creates .venv, installs the package with every extra
# and the test peers, installs the non-Python test tools (anvil, mppx, LNbits, ...) through
# scripts/install-*.sh, then runs pytest; a whole run then checks the wheel per extra set
# (scripts/check-wheels.sh) and Python 3.12 and 3.13 (scripts/check-pythons.sh). Extra arguments
# go to pytest (and skip those two checks).
#
#   bash scripts/test.sh            # everything (what CI runs)
#   bash scripts/test.sh -k tempo   # a subset
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip
# Test peers (pympp's real servers, the benchmark's reference client) come from the `peers`
# extra: they are never runtime dependencies.
python -m pip install --quiet --disable-pip-version-check -e '.[test,peers]'

for installer in scripts/install-*.sh; do
  echo "== $installer"
  bash "$installer"
done

# In CI a missing tool or peer is a failure, never a silent skip.
export MPP_ALLOW_SKIP="${MPP_ALLOW_SKIP:-0}"
python -m pytest -q "$@"

# The package as users install it (the wheel, per extra set) and the other Python versions it
# supports (the tests that need no peer); only on a whole run, not for a subset of the tests.
if [[ $# -eq 0 ]]; then
  bash scripts/check-wheels.sh
  bash scripts/check-pythons.sh
fi
