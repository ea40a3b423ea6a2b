#!/usr/bin/env bash
# Install pympp 0.16's MCP server (mpp.extensions.mcp, with its Tempo server) into its own
# virtualenv .tools/pympp-mcp/venv, for the interop test tests/mcp/test_pympp_interop.py
# (tests/peers/pympp_mcp_server.py runs in it). Its own venv because pympp[mcp] needs
# mcp < 2 while mpp_client uses mcp 2.x. The MCP SDK is pinned to the newest 1.x. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/pympp-mcp/venv"
PYMPP="0.16.0"
MCP_SDK="1.30.0"
PY="${PYTHON:-python3}"

if [[ -x "$DEST/bin/python" ]] && PYMPP="$PYMPP" MCP_SDK="$MCP_SDK" "$DEST/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, os, sys
ok = m.version("pympp") == os.environ["PYMPP"] and m.version("mcp") == os.environ["MCP_SDK"]
import mpp.extensions.mcp.verify  # noqa: F401  (needs the [mcp] extra)
import mpp.methods.tempo.server  # noqa: F401  (needs the [tempo,server] extras)
sys.exit(0 if ok else 1)
PY
then
  echo "pympp $PYMPP [mcp,tempo,server] with mcp $MCP_SDK already installed in $DEST"
  exit 0
fi
[[ -x "$DEST/bin/python" ]] || "$PY" -m venv "$DEST"
"$DEST/bin/python" -m pip install --quiet --disable-pip-version-check \
  "pympp[mcp,tempo,server]==$PYMPP" "mcp==$MCP_SDK"
echo "pympp $PYMPP [mcp,tempo,server] with mcp $MCP_SDK installed in $DEST"
