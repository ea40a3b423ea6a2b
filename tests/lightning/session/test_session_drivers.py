"""End to end: a Lightning session against a spec-exact session server whose merchant wallet is
a real LNbits (FakeWallet), paid from a real LNbits wallet, through the httpx sync and async
transports and the requests session."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

import mpp_client
from mpp_client.requests_session import PaymentSession
from mpp_client.session import session_of
from mpp_client.transport import AsyncPaymentTransport, PaymentTransport

from .conftest import CHUNKS, DEPOSIT, assert_session_money, data_lines

pytestmark = pytest.mark.slow


def assert_preimage_shown_nowhere(agent, session_id: str, logs: str) -> None:
    """The preimage (a bearer secret) is in no journal listing, record listing or log."""
    secret = agent.session.store.secret(session_id)
    assert secret is not None
    preimage = secret.reveal()
    listings = [json.dumps(p.to_dict(), default=str) for p in agent.wallet.journal.payments()]
    listings += [json.dumps(r.to_dict()) + repr(r) for r in agent.session.store.channels()]
    assert all(preimage not in text for text in listings)
    assert preimage not in logs


def test_sync_transport_opens_streams_tops_up_and_closes_with_refund(lnbits, shop, agent, caplog):
    caplog.set_level(logging.DEBUG)
    before = lnbits.balance_msat(agent.lnbits)
    url = f"{shop.url}/stream?chunks={CHUNKS}"
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            lines = list(response.iter_lines())
            stream = session_of(response)
        payment = mpp_client.payment_of(response)
        assert payment is not None and payment.status == "paid"
        chunks = data_lines(lines)
        assert chunks[:-1] == [f"chunk-{i}" for i in range(CHUNKS)] and chunks[-1] == "[DONE]"
        assert not any("payment-need-topup" in line for line in lines)  # consumed, not passed on
        assert stream is not None and stream.receipt is not None
        assert stream.details["topups"] == 1
        assert stream.receipt.extra["spent"] == CHUNKS
        closed = agent.session.close(client, f"{shop.url}/data")
    assert_session_money(lnbits, agent, shop, before, closed, topups=1)
    actions = [r["action"] for r in shop.server.requests]
    assert actions == ["open", "topUp", "close"]
    assert_preimage_shown_nowhere(agent, closed.session_id, caplog.text)


async def test_async_transport_session(lnbits, shop, agent):
    before = lnbits.balance_msat(agent.lnbits)
    url = f"{shop.url}/stream?chunks={CHUNKS}"
    transport = AsyncPaymentTransport(wallet=agent.wallet)
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        async with client.stream("GET", url) as response:
            lines = [line async for line in response.aiter_lines()]
            stream = session_of(response)
        assert data_lines(lines)[-1] == "[DONE]" and len(data_lines(lines)) == CHUNKS + 1
        assert stream is not None and stream.details["topups"] == 1
        # A bearer request on the open session: nothing is paid.
        answer = await client.get(f"{shop.url}/data")
        assert answer.status_code == 200 and answer.json()["spent"] == CHUNKS + 1
        closed = await agent.session.aclose(client, f"{shop.url}/data")
    assert closed.spent == CHUNKS + 1
    assert closed.received == 2 * DEPOSIT - CHUNKS - 1 and closed.problem is None
    assert lnbits.balance_msat(agent.lnbits) == before - (CHUNKS + 1) * 1000
    actions = [r["action"] for r in shop.server.requests]
    assert actions == ["open", "topUp", "bearer", "close"]


def test_requests_session(lnbits, shop, agent):
    before = lnbits.balance_msat(agent.lnbits)
    url = f"{shop.url}/stream?chunks={CHUNKS}"
    with PaymentSession(wallet=agent.wallet) as session:
        response = session.get(url, stream=True, timeout=60)
        lines = [line.decode() for line in response.iter_lines() if line]
        stream = session_of(response)
        assert data_lines(lines)[-1] == "[DONE]" and len(data_lines(lines)) == CHUNKS + 1
        assert stream is not None and stream.details["topups"] == 1
        closed = agent.session.close(session, f"{shop.url}/data", timeout=60)
    assert_session_money(lnbits, agent, shop, before, closed, topups=1)
