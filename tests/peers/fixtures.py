"""pytest fixtures for the real Tempo stack: anvil, a pympp 0.16 server and an mppx 0.11 server.

All on 127.0.0.1, all started (and stopped) by the fixtures. Missing tools FAIL the tests (CI
must have run the install scripts); set MPP_ALLOW_SKIP=1 to skip them instead on a dev box.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.testing.anvil import DEV_KEYS, AnvilChain, AnvilNotFound, find_anvil

REPO = Path(__file__).resolve().parents[2]
MPPX_MODULES = REPO / ".tools" / "mppx" / "node_modules"


def missing(what: str, fix: str) -> NoReturn:
    message = f"{what} is not installed: run {fix}"
    if os.environ.get("MPP_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Merchant:
    """Fresh addresses a peer server is paid to (so balance deltas are exact)."""

    recipient: str
    split_recipient: str


class PeerServer:
    """A peer MPP server process on 127.0.0.1."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                if self.process.stderr:
                    self.process.stderr.close()
                raise RuntimeError(f"{name} server exited: {err[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{name} server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilChain]:
    try:
        find_anvil()
    except AnvilNotFound:
        missing("anvil", "scripts/install-anvil.sh")
    chain = AnvilChain.start(chain_id=31337)
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture(scope="session")
def pympp_merchant() -> Merchant:
    return Merchant(LocalKeySigner.generate().address, LocalKeySigner.generate().address)


@pytest.fixture(scope="session")
def mppx_merchant() -> Merchant:
    return Merchant(LocalKeySigner.generate().address, LocalKeySigner.generate().address)


@pytest.fixture(scope="session")
def pympp_server(anvil: AnvilChain, pympp_merchant: Merchant) -> Iterator[PeerServer]:
    try:
        import mpp.methods.tempo.server  # noqa: F401
    except ImportError:
        missing("pympp[tempo,server]==0.16.0", "scripts/install-peers.sh")
    port = free_port()
    argv = [
        sys.executable,
        str(REPO / "tests" / "peers" / "pympp_server.py"),
        "--port",
        str(port),
        "--anvil",
        anvil.rpc_url,
        "--chain-id",
        str(anvil.chain_id),
        "--recipient",
        pympp_merchant.recipient,
        "--split-recipient",
        pympp_merchant.split_recipient,
        "--fee-payer-key",
        DEV_KEYS[1],
    ]
    server = PeerServer("pympp", argv, {}, port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mppx_server(anvil: AnvilChain, mppx_merchant: Merchant) -> Iterator[PeerServer]:
    node = shutil.which("node")
    if node is None or not (MPPX_MODULES / "mppx" / "package.json").is_file():
        missing("node + mppx 0.11", "scripts/install-mppx.sh")
    port = free_port()
    env = {
        "NODE_PATH": str(MPPX_MODULES),
        "PORT": str(port),
        "RPC_URL": anvil.rpc_url,
        "CHAIN_ID": str(anvil.chain_id),
        "RECIPIENT": mppx_merchant.recipient,
        "SPLIT_RECIPIENT": mppx_merchant.split_recipient,
        "FEE_PAYER_KEY": DEV_KEYS[2],
    }
    server = PeerServer(
        "mppx", [node, str(REPO / "tests" / "peers" / "mppx_server.mjs")], env, port
    )
    try:
        yield server
    finally:
        server.stop()
