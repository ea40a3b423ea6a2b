"""What the interop tests against real MCP servers (mppx, pympp) share: a funded Tempo payer
on the local chain with its own journal, and a session that records the credentials sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession

from mpp_client.mcp.challenges import CREDENTIAL_META_KEY
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoCharge
from mpp_client.money import Currency
from mpp_client.testing.anvil import AnvilChain
from mpp_client.wallet import Wallet

FUNDING = 1_000_000  # 1.00 pathUSD


class RecordingSession(ClientSession):
    """The SDK's session, remembering the credentials sent in ``params._meta``."""

    credentials: list[dict[str, Any]]

    async def call_tool(self, *args: Any, **kwargs: Any) -> Any:
        meta = kwargs.get("meta") or {}
        if CREDENTIAL_META_KEY in meta:
            self.credentials.append(meta[CREDENTIAL_META_KEY])
        return await super().call_tool(*args, **kwargs)


@dataclass
class Payer:
    signer: LocalKeySigner
    wallet: Wallet


@pytest.fixture
def payer(anvil: AnvilChain, tmp_path: Path) -> Iterator[Payer]:
    signer = LocalKeySigner.generate()
    anvil.fund(signer.address, FUNDING)
    method = TempoCharge(signer, chain_id=anvil.chain_id, rpc_url=anvil.rpc_url)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    try:
        yield Payer(signer, wallet)
    finally:
        wallet.close()


def path_usd() -> Currency:
    return Currency(PATH_USD.address, 6, network="eip155:31337", symbol="pathUSD", usd_pegged=True)
