#!/usr/bin/env bash
# Builds the sdist and the wheel (the wheel from the sdist, so a file missing from the sdist
# fails here), then installs the wheel into a clean venv per extra set and runs a smoke payment
# against the fake server in each (tests/package/wheel_smoke.py): the package as users get it,
# not the checkout. Needs PyPI (build's isolated setuptools, the extras' dependencies) and
# nothing else.
#
#   bash scripts/check-wheels.sh                    # none, tempo, requests, lightning, all
#   EXTRA_SETS="tempo all" bash scripts/check-wheels.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
EXTRA_SETS="${EXTRA_SETS:-none tempo requests lightning all}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mpp-wheels.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== building the sdist and the wheel"
"$PYTHON" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || {
  tail -40 "$WORK/build.log"
  exit 1
}
SDIST="$(ls "$WORK"/dist/*.tar.gz)"
WHEEL="$(ls "$WORK"/dist/*.whl)"
tar -tzf "$SDIST" >"$WORK/sdist.txt"
for wanted in LICENSE README.md pyproject.toml mpp_client/py.typed; do
  grep -q "/$wanted\$" "$WORK/sdist.txt" || { echo "the sdist lacks $wanted"; exit 1; }
done
echo "   $(basename "$SDIST"), $(basename "$WHEEL")"

for extras in $EXTRA_SETS; do
  echo "== the wheel with extras: $extras"
  venv="$WORK/venv-$extras"
  # No pip inside (the checkout's pip installs into it) and no .pyc compiling: half the time.
  "$PYTHON" -m venv --without-pip "$venv"
  spec="$WHEEL"
  [[ "$extras" == none ]] || spec="$WHEEL[$extras]"
  "$PYTHON" -m pip --python "$venv/bin/python" install -qq --no-compile \
    --disable-pip-version-check "$spec"
  # Run from an empty directory with the venv's bin first on PATH (for `mpp`), so neither the
  # checkout nor the developer's environment can stand in for the installed package.
  (
    cd "$WORK"
    unset PYTHONPATH VIRTUAL_ENV
    export XDG_DATA_HOME="$WORK/data-$extras" XDG_CONFIG_HOME="$WORK/config-$extras"
    PATH="$venv/bin:/usr/bin:/bin" "$venv/bin/python" "$ROOT/tests/package/wheel_smoke.py" \
      "${extras/none/}"
  )
done
echo "== every extra set installs from the wheel and pays"
