#!/usr/bin/env bash
# The library's main job on a local default, from a fresh clone: a local Tempo chain (anvil),
# a real MPP server (mppx), a new funded wallet, paid requests under a spending cap, and a
# summary of what was paid, the receipts and what is left. No real money anywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
log="$(mktemp)"
if ! python -m pip install --quiet --disable-pip-version-check -e '.[tempo]' >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
bash scripts/install-anvil.sh >/dev/null
bash scripts/install-mppx.sh >/dev/null
exec python -m mpp_client.demo "$@"
