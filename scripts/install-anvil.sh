#!/usr/bin/env bash
# Install the anvil 1.7.1 binary (with Tempo support: `anvil --network tempo`) from the npm
# registry into .tools/anvil. Idempotent: does nothing when the pinned version is present.
# Tests and the demo find it at .tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
# (or at $ANVIL_BIN).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/anvil"
PKG="@foundry-rs/anvil-linux-amd64"
VERSION="1.7.1"
BIN="$DEST/node_modules/$PKG/bin/anvil"

if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "anvil $VERSION already installed at $BIN"
  exit 0
fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "install-anvil.sh: the prebuilt package is linux x86_64 only;" \
       "on other machines install @foundry-rs/anvil@$VERSION and set ANVIL_BIN" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "install-anvil.sh: npm is required" >&2; exit 1; }
mkdir -p "$DEST"
[[ -f "$DEST/package.json" ]] || printf '{"name":"mpp-tools-anvil","private":true}\n' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "$PKG@$VERSION"
chmod +x "$BIN"
"$BIN" --version
