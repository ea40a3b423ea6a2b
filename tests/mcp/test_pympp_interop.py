"""``PaymentSession`` against a REAL pympp 0.16 MCP server (tests/peers/pympp_mcp_server.py:
``mpp.extensions.mcp.verify_or_challenge`` on the ``mcp`` 1.x server SDK), paying its tool with
a Tempo charge on the local anvil chain, over Streamable HTTP and stdio.

pympp[mcp] needs mcp < 2, so the server runs in its own virtualenv, .tools/pympp-mcp/venv.
Missing tools (that venv, anvil) FAIL these tests; run scripts/install-pympp-mcp.sh and
scripts/install-anvil.sh, or set MPP_ALLOW_SKIP=1 on a dev box.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mpp_client.mcp import PaymentSession, stdio_server
from mpp_client.mcp.challenges import CREDENTIAL_META_KEY, RECEIPT_META_KEY
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.money import Money
from mpp_client.testing.anvil import AnvilChain
from mpp_client.wallet import Wallet
from tests.mcp.chain_payer import (
    Payer,
    RecordingSession,
    path_usd,
    payer,  # noqa: F401  (fixture)
)
from tests.peers.fixtures import (
    REPO,
    PeerServer,
    anvil,  # noqa: F401  (fixture)
    free_port,
    missing,
)

pytestmark = [pytest.mark.chain, pytest.mark.peer]

SCRIPT = REPO / "tests" / "peers" / "pympp_mcp_server.py"
VENV_PYTHON = REPO / ".tools" / "pympp-mcp" / "venv" / "bin" / "python"
CHARGE = 10_000  # the `premium` tool charges 0.01
BOTH = pytest.mark.parametrize("transport", ["http", "stdio"])


@dataclass
class McpPeer:
    python: str
    args: list[str]  # the server's chain arguments
    recipient: str
    url: str  # the Streamable HTTP endpoint


@pytest.fixture(scope="module")
def pympp_mcp(anvil: AnvilChain) -> Iterator[McpPeer]:  # noqa: F811
    if not VENV_PYTHON.is_file():
        missing("pympp[mcp]==0.16.0 in .tools/pympp-mcp/venv", "scripts/install-pympp-mcp.sh")
    recipient = LocalKeySigner.generate().address  # fresh: its balance delta is exact
    args = [
        "--anvil",
        anvil.rpc_url,
        "--chain-id",
        str(anvil.chain_id),
        "--recipient",
        recipient,
    ]
    port = free_port()
    argv = [str(VENV_PYTHON), str(SCRIPT), "--port", str(port), *args]
    server = PeerServer("pympp-mcp", argv, {}, port)
    try:
        yield McpPeer(str(VENV_PYTHON), args, recipient, server.url + "/mcp")
    finally:
        server.stop()


@asynccontextmanager
async def connect(
    peer: McpPeer, transport: str, wallet: Wallet
) -> AsyncIterator[tuple[PaymentSession, RecordingSession, Any]]:
    if transport == "stdio":
        params = StdioServerParameters(
            command=peer.python,
            args=[str(SCRIPT), "--stdio", *peer.args],
            env=dict(os.environ),
            cwd=str(REPO),
        )
        opened = stdio_client(params)
        server = stdio_server("pympp")
    else:
        opened = streamable_http_client(peer.url)
        server = peer.url
    async with opened as (read, write), RecordingSession(read, write) as session:
        session.credentials = []
        paying = PaymentSession(session, server=server, wallet=wallet)
        initialized = await paying.initialize()
        async with paying:
            yield paying, session, initialized


@BOTH
async def test_a_paid_pympp_tool_settles_on_chain_and_is_journaled(
    anvil: AnvilChain,  # noqa: F811
    pympp_mcp: McpPeer,
    payer: Payer,  # noqa: F811  (the fixture)
    transport: str,
) -> None:
    before = anvil.balance_of(pympp_mcp.recipient)
    async with connect(pympp_mcp, transport, payer.wallet) as (paying, session, initialized):
        listed = await paying.list_tools()
        assert sorted(tool.name for tool in listed.tools) == ["echo", "premium"]
        free = await paying.call_tool("echo", {"text": "hi"})
        paid = await paying.call_tool("premium")

    # pympp's payment_capabilities(): the server advertises what it accepts
    experimental = initialized.capabilities.experimental or {}
    assert experimental.get("payment") == {"methods": ["tempo"], "intents": ["charge"]}
    assert free.payment is None and free.result.content[0].text == "hi"
    assert paid.error is None
    assert paid.result is not None and not paid.result.is_error
    assert paid.result.content[0].text == "premium content"
    payment = paid.payment
    assert payment is not None and payment.status == "paid"
    assert payment.quote.amount == Money(CHARGE, path_usd())
    receipt = paid.receipt
    assert receipt is not None and receipt.status == "success" and receipt.method == "tempo"
    [credential] = session.credentials
    assert receipt.challenge_id == credential["challenge"]["id"]
    # pympp's receipt in the result's _meta, as sent
    wire = paid.result.meta[RECEIPT_META_KEY]
    assert wire["reference"] == receipt.reference
    assert wire["challengeId"] == credential["challenge"]["id"]
    # the challenge object is echoed as pympp sent it: request stays a JSON object
    assert isinstance(credential["challenge"]["request"], dict)
    assert credential["challenge"]["method"] == "tempo"

    [entry] = payer.wallet.payments()
    assert entry.state == "settled" and entry.id == payment.journal_id
    assert entry.reference == receipt.reference == payment.reference
    assert entry.origin == paying.origin
    assert entry.url.endswith("/tools/premium")
    tx = anvil.receipt(entry.reference)
    assert tx is not None and tx["status"] == "0x1"  # the reference is the mined tx hash
    assert anvil.balance_of(pympp_mcp.recipient) - before == CHARGE


async def test_each_call_pays_a_new_challenge_and_pympp_refuses_a_replay(
    anvil: AnvilChain,  # noqa: F811
    pympp_mcp: McpPeer,
    payer: Payer,  # noqa: F811  (the fixture)
) -> None:
    before = anvil.balance_of(pympp_mcp.recipient)
    async with connect(pympp_mcp, "http", payer.wallet) as (paying, session, _):
        first = await paying.call_tool("premium")
        second = await paying.call_tool("premium")
        assert first.payment.status == "paid" and second.payment.status == "paid"
        one, two = session.credentials
        with pytest.raises(MCPError) as replayed:
            await session.call_tool("premium", {}, meta={CREDENTIAL_META_KEY: one})

    assert one["challenge"]["id"] != two["challenge"]["id"]
    assert first.payment.reference != second.payment.reference
    entries = payer.wallet.payments()
    assert sorted(e.state for e in entries) == ["settled", "settled"]
    assert {e.reference for e in entries} == {first.payment.reference, second.payment.reference}
    # pympp answers the replay with a JSON-RPC -32043 error (raised from the low-level
    # handler), a terminal failure: httpStatus 403 and no fresh challenge. Nothing settled again.
    assert replayed.value.code == -32043
    assert replayed.value.error.data == {
        "httpStatus": 403,
        "challenges": [],
        "failure": {
            "reason": "verification-failed",
            "detail": "Payment verification failed: Transaction hash already used.",
        },
    }
    assert anvil.balance_of(pympp_mcp.recipient) - before == 2 * CHARGE
