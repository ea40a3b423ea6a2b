"""A throwaway freedesktop Secret Service for tests: a private D-Bus session bus and an
unlocked gnome-keyring daemon in a temporary home. Installed by scripts/install-keyring-test.sh.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = ROOT / ".tools" / "keyring-test" / "env"


def _tools() -> dict[str, str]:
    found: dict[str, str] = {}
    if MARKER.exists():
        for line in MARKER.read_text().splitlines():
            key, _, value = line.partition("=")
            found[key] = value
    missing = [
        k for k in ("GNOME_KEYRING_DAEMON", "DBUS_DAEMON") if not os.path.exists(found.get(k, ""))
    ]
    if missing:
        message = "gnome-keyring/dbus missing: run scripts/install-keyring-test.sh"
        if os.environ.get("MPP_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return found


@contextlib.contextmanager
def secret_service(home: Path, password: str = "test-login-password") -> Iterator[dict[str, str]]:
    """Yield the environment variables that point at a fresh, unlocked Secret Service."""
    tools = _tools()
    runtime = home / "run"
    runtime.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
           "XDG_DATA_HOME": str(home / "data")}  # fmt: skip
    bus = subprocess.Popen(
        [tools["DBUS_DAEMON"], "--session", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()  # printed once the bus listens
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        # --daemonize returns once the daemon serves the bus; it exits when the bus goes away.
        subprocess.run(
            [tools["GNOME_KEYRING_DAEMON"], "--unlock", "--components=secrets", "--daemonize"],
            input=password.encode(), env=env, check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        yield {
            k: env[k]
            for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME")
        }
    finally:
        bus.terminate()
        bus.wait(timeout=10)
        if bus.stdout is not None:
            bus.stdout.close()
