"""The 402-on-HTTP path: a gate in front of the MCP endpoint (a proxy, or the server itself)
answers the HTTP POST of a tool call 402 + ``WWW-Authenticate: Payment`` before MCP sees it.
``paying_http_client(wallet)`` gives mcp's ``streamable_http_client`` an httpx2 client whose
requests go through ``AsyncPaymentTransport``, so that 402 is paid by the same wallet that
pays the -32042 errors through ``PaymentSession``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mpp_client.mcp import PaymentSession
from mpp_client.mcp.client import paying_http_client
from mpp_client.money import Money
from mpp_client.testing import FakeMppServer, Offer, Route
from mpp_client.testing.method import TEST_CURRENCY
from mpp_client.wallet import Wallet
from tests.mcp.conftest import serve
from tests.mcp.paid_server import PaidTools, http_app

GATED = "free"  # the tool whose HTTP POSTs the gate charges for (1000 base units)


class PaymentGate:
    """ASGI: a POST calling tool ``GATED`` is answered by ``FakeMppServer`` (402 with its
    challenges, until a valid credential comes); a paid one is passed on to the MCP app with
    the gate's ``Payment-Receipt`` added. Everything else goes straight through."""

    def __init__(self, app: Any, fake: FakeMppServer) -> None:
        self.app, self.fake = app, fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        if not _calls(body, GATED):
            await self.app(scope, replay, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        status, out, content = self.fake.handle("POST", scope["path"], headers, body)
        if status != 200:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": content})
            return
        receipt = [(k.encode(), v.encode()) for k, v in out if k == "payment-receipt"]

        async def with_receipt(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *receipt]}
            await send(message)

        await self.app(scope, replay, with_receipt)


def _calls(body: bytes, tool: str) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    params = message.get("params") if isinstance(message, dict) else None
    return (
        message.get("method") == "tools/call"
        and isinstance(params, dict)
        and params.get("name") == tool
    )


@pytest.fixture
def gated() -> Iterator[tuple[str, FakeMppServer]]:
    fake = FakeMppServer({"/mcp": Route(offers=(Offer(amount="1000"),))})
    with serve(PaymentGate(http_app(PaidTools()), fake)) as base:
        yield base + "/mcp", fake


@asynccontextmanager
async def paying(url: str, wallet: Wallet) -> AsyncIterator[PaymentSession]:
    async with (
        paying_http_client(wallet) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        paying = PaymentSession(session, server=url, wallet=wallet)
        await paying.initialize()
        async with paying:
            yield paying


async def test_a_402_on_the_http_post_is_paid_by_the_same_wallet(
    gated: tuple[str, FakeMppServer], wallets: Callable[..., Wallet]
) -> None:
    url, fake = gated
    wallet = wallets()
    async with paying(url, wallet) as session:
        listed = await session.list_tools()  # not gated: nothing paid
        assert fake.accepted == []
        free = await session.call_tool(GATED)  # the gate's 402, paid over HTTP
        paid = await session.call_tool("paid")  # the server's -32042, paid over MCP
        again = await session.call_tool(GATED)  # a new POST, a new challenge, paid again

    assert "paid" in {tool.name for tool in listed.tools}
    # the HTTP-level payment is invisible to MCP: the tool just answers
    assert free.payment is None and free.result.content[0].text == "free"
    assert again.payment is None and again.result.content[0].text == "free"
    assert paid.payment is not None and paid.payment.status == "paid"
    first, second = fake.accepted
    assert first.challenge.id != second.challenge.id
    entries = wallet.payments()
    assert sorted(e.state for e in entries) == ["settled", "settled", "settled"]
    http_level = [e for e in entries if e.url == url]
    # journaled with the gate's receipt (its reference differs from the test method's own)
    assert {e.receipt_reference for e in http_level} == {
        "ref-" + c.challenge.id[:12] for c in fake.accepted
    }
    [mcp_level] = [e for e in entries if e.url.endswith("#/tools/paid")]
    assert mcp_level.reference == paid.payment.reference
    assert {e.origin for e in entries} == {session.origin}


async def test_without_the_paying_client_the_sdk_fails_the_call(
    gated: tuple[str, FakeMppServer], wallets: Callable[..., Wallet]
) -> None:
    url, fake = gated
    wallet = wallets()
    async with (
        streamable_http_client(url) as (read, write),
        ClientSession(read, write) as session,
    ):
        paying = PaymentSession(session, server=url, wallet=wallet)
        await paying.initialize()
        with pytest.raises(MCPError) as failed:
            await paying.call_tool(GATED)
    assert failed.value.code == -32603  # the SDK's stand-in for a non-JSON-RPC 402
    assert fake.accepted == [] and wallet.payments() == []


async def test_a_refused_http_payment_is_a_json_rpc_error_and_the_session_lives(
    gated: tuple[str, FakeMppServer], wallets: Callable[..., Wallet]
) -> None:
    url, fake = gated
    wallet = wallets()
    async with paying(url, wallet) as session:
        # a budget of less than the gate's 1000 base units
        with wallet.budget(Money(500, TEST_CURRENCY)), pytest.raises(MCPError) as refused:
            await session.call_tool(GATED)
        free = await session.call_tool(GATED)  # outside the budget: paid

    assert refused.value.code == -32603
    assert refused.value.error.data == {"mppError": "BudgetExceeded", "httpStatus": 402}
    assert refused.value.error.message.startswith(
        "HTTP-level payment not completed: BudgetExceeded"
    )
    assert free.result.content[0].text == "free"
    [accepted] = fake.accepted
    [entry] = wallet.payments()
    assert entry.state == "settled"
    assert entry.receipt_reference == "ref-" + accepted.challenge.id[:12]
