#!/usr/bin/env bash
# Install a real LNbits server (FakeWallet funding source) for the Lightning end-to-end tests.
#
# LNbits pins pydantic 1.x, an older httpx, fastapi and grpcio, which would clash with
# mpp_client's own dependencies, so it lives in its own virtualenv under .tools/lnbits.
# bitstring 5 breaks `import bolt11` (which LNbits uses), hence the pin.
# Idempotent: a marker file records the installed version; rerunning is a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/lnbits"
VERSION="1.6.2"
MARKER="$DEST/.installed-$VERSION"

if [[ -f "$MARKER" ]]; then
    echo "lnbits $VERSION already installed in $DEST"
    exit 0
fi

PYTHON="${LNBITS_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    for candidate in python3.11 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi

rm -rf "$DEST"
"$PYTHON" -m venv "$DEST"
"$DEST/bin/pip" install --quiet --disable-pip-version-check "lnbits==$VERSION" "bitstring>=4.2,<5"
# LNbits resolves lnbits/static relative to its working directory; check it is where the tests
# will look for it (the site-packages directory of this venv).
SITE="$("$DEST/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
test -d "$SITE/lnbits/static"
echo "$SITE" > "$DEST/site-packages-path"
touch "$MARKER"
echo "lnbits $VERSION installed in $DEST"
