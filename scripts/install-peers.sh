#!/usr/bin/env bash
# Install the Python reference peer (pympp 0.16 with its Tempo server) into the active Python
# environment. Test-only: pympp is never a runtime dependency of mpp_client. Idempotent.
set -euo pipefail
PY="${PYTHON:-python}"
if "$PY" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("pympp") == "0.16.0"
import mpp.methods.tempo.server  # noqa: F401  (needs the [tempo,server] extras)
sys.exit(0 if ok else 1)
PY
then
  echo "pympp 0.16.0 with the tempo server already installed"
  exit 0
fi
"$PY" -m pip install --quiet 'pympp[tempo,server]==0.16.0'
echo "pympp 0.16.0 [tempo,server] installed"
