#!/usr/bin/env bash
# Install nostr-sdk (its in-process LocalRelay, event signing and NIP-04/NIP-44 encryption) into
# .tools/nostr for the NWC tests: a real relay, and a fake wallet service written with an
# independent Nostr implementation, so our own NWC client is checked against another one.
# nostr-sdk's API changes between minor versions, hence the exact pin.
# Idempotent: a marker file records the installed version; rerunning is a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/nostr"
VERSION="0.44.8"
MARKER="$DEST/.installed-$VERSION"

if [[ -f "$MARKER" ]]; then
    echo "nostr-sdk $VERSION already installed in $DEST"
    exit 0
fi

PYTHON="${NOSTR_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    for candidate in python3.11 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi

rm -rf "$DEST"
"$PYTHON" -m venv "$DEST"
"$DEST/bin/pip" install --quiet --disable-pip-version-check "nostr-sdk==$VERSION" "websockets>=12,<16"
"$DEST/bin/python" -c "import nostr_sdk; nostr_sdk.LocalRelay"
touch "$MARKER"
echo "nostr-sdk $VERSION installed in $DEST"
