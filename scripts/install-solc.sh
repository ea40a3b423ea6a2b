#!/usr/bin/env bash
# Install solc-js (the Solidity compiler as JavaScript/wasm, npm package `solc`) into
# .tools/solc, for compiling our own clean-room session escrow contract at test time
# (tests/tempo/session/contracts/). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/solc"
SOLC="0.8.28"

if [[ -f "$DEST/node_modules/solc/package.json" ]] &&
  grep -q "\"version\": \"$SOLC\"" "$DEST/node_modules/solc/package.json"; then
  echo "solc $SOLC already installed in $DEST"
  exit 0
fi
command -v npm >/dev/null || { echo "install-solc.sh: npm is required" >&2; exit 1; }
mkdir -p "$DEST"
[[ -f "$DEST/package.json" ]] || printf '{"name":"mpp-tools-solc","private":true}\n' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "solc@$SOLC"
echo "solc $SOLC installed in $DEST"
