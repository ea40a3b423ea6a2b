"""Fixtures for Tempo sessions on a real chain: our own escrow contract (compiled with solc-js
from tests/tempo/session/contracts, cached by source hash), deployed on the session's anvil,
and our own session server (mpp_client.testing.tempo_session_server)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.methods.tempo.transaction import (
    EXPIRING_NONCE_KEY,
    Call,
    TempoTransaction,
    address_bytes,
)
from mpp_client.testing.anvil import DEV_KEYS, AnvilChain
from mpp_client.testing.tempo_session_server import TempoSessionServer
from tests.peers.fixtures import anvil, missing  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[3]
CONTRACT = Path(__file__).parent / "contracts" / "StreamChannelEscrow.sol"
COMPILER = Path(__file__).parent / "contracts" / "compile.mjs"
SOLC = REPO / ".tools" / "solc"


def compile_escrow() -> dict[str, object]:
    """ABI and bytecode of the test escrow, compiled by solc-js (cached per source hash)."""
    source = CONTRACT.read_bytes() + COMPILER.read_bytes()
    key = hashlib.sha256(source).hexdigest()[:16]
    cache = SOLC / "build" / f"escrow-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())  # type: ignore[no-any-return]
    if not (SOLC / "node_modules" / "solc" / "package.json").exists() or not shutil.which("node"):
        missing("solc-js", "scripts/install-solc.sh")
    out = subprocess.run(
        ["node", str(COMPILER), str(SOLC), str(CONTRACT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    artifact = json.loads(out.stdout)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(artifact))
    return artifact  # type: ignore[no-any-return]


def deploy(chain: AnvilChain, bytecode: str) -> str:
    """Deploy ``bytecode`` from dev account #1 in a 0x76 CREATE call; the contract address."""
    dev = LocalKeySigner(DEV_KEYS[1])
    tx = TempoTransaction(
        chain_id=chain.chain_id,
        calls=(Call(b"", 0, bytes.fromhex(bytecode.removeprefix("0x"))),),
        gas_limit=25_000_000,
        max_fee_per_gas=2 * chain.gas_price(),
        nonce_key=EXPIRING_NONCE_KEY,
        valid_before=max(int(time.time()), chain.chain_time()) + 20,
        fee_token=address_bytes(PATH_USD.address),
    )
    raw = tx.encode(dev.sign_hash(tx.signing_hash()))
    receipt = chain.rpc("eth_sendRawTransactionSync", "0x" + raw.hex())
    assert receipt["status"] == "0x1", receipt
    return str(receipt["contractAddress"]).lower()


@pytest.fixture(scope="session")
def escrow(anvil: AnvilChain) -> str:  # noqa: F811
    return deploy(anvil, str(compile_escrow()["bytecode"]))


@dataclass
class Session:
    """A funded payer, a fresh payee, a running server and its URL."""

    chain: AnvilChain
    escrow: str
    payer: LocalKeySigner
    payee: LocalKeySigner
    server: TempoSessionServer
    url: str


@pytest.fixture
def session_server(
    anvil: AnvilChain,  # noqa: F811
    escrow: str,
    tmp_path: Path,
) -> Iterator[Session]:
    payer, payee = LocalKeySigner.generate(), LocalKeySigner.generate()
    anvil.fund(payer.address, 50_000_000)
    anvil.fund(payee.address, 1_000_000)  # the payee pays the close transaction's fee
    server = TempoSessionServer(
        chain=anvil, escrow=escrow, token=PATH_USD.address, payee=payee,
        state_path=str(tmp_path / "server.json"),
    )  # fmt: skip
    with server.serve() as url:
        yield Session(anvil, escrow, payer, payee, server, url)
