"""A real LNbits server (FakeWallet funding source) on 127.0.0.1 for end-to-end tests.

Installed by scripts/install-lnbits.sh into .tools/lnbits (its own virtualenv). When it is
missing the tests FAIL, unless MPP_ALLOW_SKIP=1, so CI cannot silently skip them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
LNBITS_DIR = ROOT / ".tools" / "lnbits"
READY_TIMEOUT = 90.0


def require_lnbits() -> Path:
    executable = LNBITS_DIR / "bin" / "lnbits"
    site = LNBITS_DIR / "site-packages-path"
    if not executable.exists() or not site.exists():
        message = f"LNbits is not installed in {LNBITS_DIR}: run scripts/install-lnbits.sh"
        if os.environ.get("MPP_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Wallet:
    id: str
    adminkey: str
    inkey: str


@dataclass
class LnbitsServer:
    url: str
    access_token: str

    def create_wallet(self, name: str) -> Wallet:
        reply = httpx.post(f"{self.url}/api/v1/account", json={"name": name}, timeout=30)
        reply.raise_for_status()
        data = reply.json()
        return Wallet(data["id"], data["adminkey"], data["inkey"])

    def fund(self, wallet: Wallet, sats: int) -> None:
        reply = httpx.put(
            f"{self.url}/users/api/v1/balance",
            json={"id": wallet.id, "amount": sats},
            headers={"Authorization": f"Bearer {self.access_token}"},
            timeout=30,
        )
        reply.raise_for_status()

    def balance_msat(self, wallet: Wallet) -> int:
        reply = httpx.get(
            f"{self.url}/api/v1/wallet", headers={"X-Api-Key": wallet.inkey}, timeout=30
        )
        reply.raise_for_status()
        return int(reply.json()["balance"])

    def outgoing_payments(self, wallet: Wallet) -> list[dict[str, object]]:
        reply = httpx.get(
            f"{self.url}/api/v1/payments", headers={"X-Api-Key": wallet.inkey}, timeout=30
        )
        reply.raise_for_status()
        return [p for p in reply.json() if int(p["amount"]) < 0]


@contextmanager
def running_lnbits() -> Iterator[LnbitsServer]:
    executable = require_lnbits()
    site = (LNBITS_DIR / "site-packages-path").read_text().strip()
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="lnbits-") as data,
        open(Path(data) / "server.log", "wb") as log,
    ):
        env = {
            **os.environ,
            "LNBITS_DATA_FOLDER": data,
            "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
            "LNBITS_ADMIN_UI": "true",
            "LNBITS_RESERVE_FEE_MIN": "0",
            "LNBITS_RESERVE_FEE_PERCENT": "0",
            "LNBITS_EXTENSIONS_MANIFESTS": "",
        }
        # LNbits finds lnbits/static relative to its working directory, and it starts a child
        # server process: give it its own session so the whole group can be stopped.
        process = subprocess.Popen(
            [str(executable), "--host", "127.0.0.1", "--port", str(port)],
            cwd=site,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, Path(data) / "server.log")
            token = _first_install(url)
            yield LnbitsServer(url, token)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LNbits exited early:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(f"{url}/api/v1/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)  # readiness poll of an external process, bounded by the deadline
    raise RuntimeError(f"LNbits not ready after {READY_TIMEOUT} s")


def _first_install(url: str) -> str:
    password = "mpp-test-password-1"
    reply = httpx.put(
        f"{url}/api/v1/auth/first_install",
        json={"username": "admin", "password": password, "password_repeat": password},
        timeout=30,
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])
