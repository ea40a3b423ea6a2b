"""Fixtures for Tempo sessions on a real chain: our own escrow contract (compiled with solc-js
from tests/tempo/session/contracts, cached by source hash), deployed on the session's anvil,
and our own session server (mpp_client.testing.tempo_session_server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.testing.anvil import AnvilChain
from mpp_client.testing.tempo_session_server import (
    EscrowToolsMissing,
    TempoSessionServer,
    deploy,
    escrow_artifact,
)
from tests.peers.fixtures import anvil, missing  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[3]


def compile_escrow() -> dict[str, object]:
    """The test escrow's ABI and bytecode (solc-js; missing tools fail or skip the test)."""
    try:
        return escrow_artifact()
    except EscrowToolsMissing:
        missing("solc-js", "scripts/install-solc.sh")
        raise


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
