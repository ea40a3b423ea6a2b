#!/usr/bin/env bash
# The whole test suite from a fresh clone: creates .venv, installs the package with every extra
# and the test peers, installs the non-Python test tools (anvil, mppx, LNbits, ...) through
# scripts/install-*.sh, then runs pytest. Extra arguments go to pytest.
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
