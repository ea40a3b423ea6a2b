"""Headless Chromium (Debian's ``chromium``, scripts/install-chromium.sh) driven with its own
command-line flags: ``--screenshot`` and ``--dump-dom``. The page's filter is set through the
address's fragment, which the page reads on load, so no DevTools client is needed."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.peers.fixtures import missing

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")


def chromium() -> str:
    """The browser's path, or a failure (a skip with MPP_ALLOW_SKIP=1) naming the script."""
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not found:
        missing("chromium", "scripts/install-chromium.sh")
    assert found is not None
    return found


def _run(profile: Path, *flags: str, url: str) -> subprocess.CompletedProcess[bytes]:
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        *flags,
        url,
    ]
    result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


def dump_dom(page: Path, profile: Path, fragment: str = "") -> str:
    """The DOM after the page's scripts ran, serialised (``--dump-dom``)."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    return _run(profile, "--dump-dom", url=url).stdout.decode("utf-8")


def screenshot(page: Path, profile: Path, out: Path, *, width: int, height: int) -> Path:
    """A PNG of the page in a ``width`` x ``height`` window (``--screenshot``)."""
    _run(
        profile,
        f"--screenshot={out}",
        f"--window-size={width},{height}",
        url=page.resolve().as_uri(),
    )
    return out


@dataclass(frozen=True)
class Png:
    """What a test checks of a screenshot: its size and how varied its pixels are."""

    width: int
    height: int
    distinct_rows: int
    distinct_bytes: int


def read_png(path: Path) -> Png:
    """Decode enough of a PNG (IHDR, IDAT) to tell a blank image from a drawn one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, width, height, bpp = 8, b"", 0, 0, 4
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, depth
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[color]
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    # Rows are compared after their filter byte: a blank page's rows are all identical.
    rows = {raw[i * stride + 1 : (i + 1) * stride] for i in range(height)}
    return Png(width, height, len(rows), len(set(raw)))
