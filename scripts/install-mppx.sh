#!/usr/bin/env bash
# Install the mppx 0.11.0 reference server (TypeScript SDK), viem 2.55.13 and
# @modelcontextprotocol/sdk 1.32.2 from the npm registry into .tools/mppx, for the interop tests
# (tests/peers/mppx_server.mjs, tests/peers/mppx_mcp_server.mjs) and the demo.
# Idempotent. viem is pinned because newer viem declares a peer mppx version that does not exist.
# The MCP SDK is mppx's optional peer (">=1.25.0"), needed by mppx/mcp-sdk/server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/mppx"
MPPX="0.11.0"
VIEM="2.55.13"
MCP_SDK="1.32.2"

have() { [[ -f "$DEST/node_modules/$1/package.json" ]] &&
  grep -q "\"version\": \"$2\"" "$DEST/node_modules/$1/package.json"; }
if have mppx "$MPPX" && have viem "$VIEM" && have @modelcontextprotocol/sdk "$MCP_SDK"; then
  echo "mppx $MPPX, viem $VIEM and @modelcontextprotocol/sdk $MCP_SDK already installed in $DEST"
  exit 0
fi
command -v npm >/dev/null || { echo "install-mppx.sh: npm is required" >&2; exit 1; }
mkdir -p "$DEST"
# The package name must not be "mppx" (npm refuses to install a package into itself).
[[ -f "$DEST/package.json" ]] || printf '{"name":"mpp-tools-mppx","private":true,"type":"module"}\n' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "mppx@$MPPX" "viem@$VIEM" \
  "@modelcontextprotocol/sdk@$MCP_SDK"
echo "mppx $MPPX, viem $VIEM and @modelcontextprotocol/sdk $MCP_SDK installed in $DEST"
