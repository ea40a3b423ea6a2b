"""``PaymentSession`` against a REAL mppx 0.11 MCP server (tests/peers/mppx_mcp_server.mjs:
``@modelcontextprotocol/sdk`` 1.32 with mppx's ``Transport.mcpSdk()``), paying its tool with a
Tempo charge on the local anvil chain, over Streamable HTTP and stdio.

Missing tools (node, mppx + the MCP SDK in .tools/mppx, anvil) FAIL these tests; run
scripts/install-mppx.sh and scripts/install-anvil.sh, or set MPP_ALLOW_SKIP=1 on a dev box.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

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
    MPPX_MODULES,
    REPO,
    PeerServer,
    anvil,  # noqa: F401  (fixture)
    free_port,
    missing,
)

pytestmark = [pytest.mark.chain, pytest.mark.peer]

SCRIPT = REPO / "tests" / "peers" / "mppx_mcp_server.mjs"
CHARGE = 10_000  # the `premium` tool charges 0.01
BOTH = pytest.mark.parametrize("transport", ["http", "stdio"])


@dataclass
class McpPeer:
    node: str
    env: dict[str, str]
    recipient: str
    url: str  # the Streamable HTTP endpoint


@pytest.fixture(scope="module")
def mppx_mcp(anvil: AnvilChain) -> Iterator[McpPeer]:  # noqa: F811
    node = shutil.which("node")
    for package in ("mppx", "@modelcontextprotocol/sdk"):
        if node is None or not (MPPX_MODULES / package / "package.json").is_file():
            missing(f"node + {package} (for the mppx MCP server)", "scripts/install-mppx.sh")
    assert node is not None
    recipient = LocalKeySigner.generate().address  # fresh: its balance delta is exact
    env = {
        "NODE_PATH": str(MPPX_MODULES),
        "RPC_URL": anvil.rpc_url,
        "CHAIN_ID": str(anvil.chain_id),
        "RECIPIENT": recipient,
    }
    port = free_port()
    server = PeerServer("mppx-mcp", [node, str(SCRIPT)], {**env, "PORT": str(port)}, port)
    try:
        yield McpPeer(node, env, recipient, server.url + "/mcp")
    finally:
        server.stop()


@asynccontextmanager
async def connect(
    peer: McpPeer, transport: str, wallet: Wallet
) -> AsyncIterator[tuple[PaymentSession, RecordingSession]]:
    if transport == "stdio":
        params = StdioServerParameters(
            command=peer.node,
            args=[str(SCRIPT), "--stdio"],
            env={**os.environ, **peer.env},
            cwd=str(REPO),
        )
        opened = stdio_client(params)
        server = stdio_server("mppx")
    else:
        opened = streamable_http_client(peer.url)
        server = peer.url
    async with opened as (read, write), RecordingSession(read, write) as session:
        session.credentials = []
        paying = PaymentSession(session, server=server, wallet=wallet)
        await paying.initialize()
        async with paying:
            yield paying, session


@BOTH
async def test_a_paid_mppx_tool_settles_on_chain_and_is_journaled(
    anvil: AnvilChain,  # noqa: F811
    mppx_mcp: McpPeer,
    payer: Payer,  # noqa: F811  (the fixture)
    transport: str,
) -> None:
    before = anvil.balance_of(mppx_mcp.recipient)
    async with connect(mppx_mcp, transport, payer.wallet) as (paying, session):
        listed = await paying.list_tools()
        assert sorted(tool.name for tool in listed.tools) == ["echo", "premium"]
        free = await paying.call_tool("echo", {"text": "hi"})
        paid = await paying.call_tool("premium")

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
    # mppx's receipt in the result's _meta, as sent
    wire = paid.result.meta[RECEIPT_META_KEY]
    assert wire["reference"] == receipt.reference
    assert wire["challengeId"] == credential["challenge"]["id"]
    # the challenge object is echoed as mppx sent it: request stays a JSON object
    assert isinstance(credential["challenge"]["request"], dict)
    assert credential["challenge"]["method"] == "tempo"

    [entry] = payer.wallet.payments()
    assert entry.state == "settled" and entry.id == payment.journal_id
    assert entry.reference == receipt.reference == payment.reference
    assert entry.origin == paying.origin
    assert entry.url.endswith("/tools/premium")
    tx = anvil.receipt(entry.reference)
    assert tx is not None and tx["status"] == "0x1"  # the reference is the mined tx hash
    assert anvil.balance_of(mppx_mcp.recipient) - before == CHARGE


async def test_each_call_pays_a_new_challenge_and_mppx_refuses_a_replay(
    anvil: AnvilChain,  # noqa: F811
    mppx_mcp: McpPeer,
    payer: Payer,  # noqa: F811  (the fixture)
) -> None:
    before = anvil.balance_of(mppx_mcp.recipient)
    async with connect(mppx_mcp, "http", payer.wallet) as (paying, session):
        first = await paying.call_tool("premium")
        second = await paying.call_tool("premium")
        assert first.payment.status == "paid" and second.payment.status == "paid"
        one, two = session.credentials
        replayed = await session.call_tool("premium", {}, meta={CREDENTIAL_META_KEY: one})

    assert one["challenge"]["id"] != two["challenge"]["id"]
    assert first.payment.reference != second.payment.reference
    entries = payer.wallet.payments()
    assert sorted(e.state for e in entries) == ["settled", "settled"]
    assert {e.reference for e in entries} == {first.payment.reference, second.payment.reference}
    # mppx (through the MCP SDK's McpServer) answers the replay -32043 as an isError text
    # result without _meta: no receipt, nothing settled again.
    assert replayed.is_error
    assert not (replayed.meta or {}).get(RECEIPT_META_KEY)
    [text] = replayed.content
    assert text.text == (
        "MCP error -32043: Payment verification failed: Transaction hash has already been used."
    )
    assert anvil.balance_of(mppx_mcp.recipient) - before == 2 * CHARGE
