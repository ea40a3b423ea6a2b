"""The wallet behind all three drivers: budgets opened around caller code apply to httpx sync,
httpx async and requests alike; the journal records what the flow did; dry-run quotes."""

from __future__ import annotations

import httpx
import pytest

from mpp_client import payment_of
from mpp_client.errors import BudgetExceeded, PayeeChanged, PaymentRefused
from mpp_client.guard import PaymentOptions
from mpp_client.money import Money
from mpp_client.requests_session import PaymentSession
from mpp_client.testing import TEST_CURRENCY, FakeMppServer, Offer, Route, TestMethod, test_proof
from mpp_client.transport import AsyncPaymentTransport, PaymentTransport
from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd

URL = "https://fake.test/paid"


@pytest.fixture
def server():
    return FakeMppServer({"/paid": Route(offers=(Offer(amount="300000"),)),
                          "/other": Route(offers=(Offer(amount="1000", recipient="mallory"),)),
                          "/free": Route(offers=())})  # fmt: skip


@pytest.fixture
def wallet(tmp_path):
    wallet = Wallet([TestMethod()], journal=tmp_path / "j.sqlite3")
    yield wallet
    wallet.close()


def test_httpx_sync_pays_within_a_budget(server, wallet):
    transport = PaymentTransport(server.mock_transport(), wallet=wallet)
    with (
        httpx.Client(transport=transport) as client,
        wallet.budget(usd("0.70"), label="t") as budget,
    ):
        assert client.get(URL).status_code == 200
        assert client.get(URL).status_code == 200
        with pytest.raises(BudgetExceeded) as refused:
            client.get(URL)
        assert refused.value.rule == "budget:t"
        assert budget.spent == usd("0.60")
    assert len(server.accepted) == 2  # nothing was signed for the refused request
    entries = wallet.payments()
    assert [(e.state, e.label, e.amount) for e in entries] == [
        ("settled", "t", Money(300_000, TEST_CURRENCY))
    ] * 2
    assert entries[0].receipt["reference"].startswith("ref-")
    assert entries[0].fingerprint and entries[0].reference


async def test_httpx_async_pays_within_a_budget(server, wallet):
    transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        wallet.budget(usd("0.30"), label="async-task"),
    ):
        response = await client.get(URL)
        assert payment_of(response).journal_id == wallet.payments()[0].id
        with pytest.raises(BudgetExceeded):
            await client.get(URL)
    assert len(server.accepted) == 1
    assert [e.label for e in wallet.payments()] == ["async-task"]


def test_requests_session_pays_within_a_budget(server, wallet):
    with (
        server.serve() as base,
        PaymentSession(wallet=wallet) as session,
        wallet.budget(usd("0.50"), label="req"),
    ):
        assert session.get(base + "/paid").status_code == 200
        with pytest.raises(BudgetExceeded):
            session.get(base + "/paid")
    assert len(server.accepted) == 1
    assert [(e.state, e.label) for e in wallet.payments()] == [("settled", "req")]


def test_per_request_options_label_and_cap(server, wallet):
    with httpx.Client(transport=PaymentTransport(server.mock_transport(), wallet=wallet)) as client:
        small = PaymentOptions(max_amount=Money(100_000, TEST_CURRENCY))
        with pytest.raises(BudgetExceeded):
            client.get(URL, extensions={"mpp": small})
        client.get(URL, extensions={"mpp": PaymentOptions(label="tagged")})
    assert [e.label for e in wallet.payments()] == ["tagged"]


def test_pinned_payee_blocks_a_changed_recipient_through_the_flow(wallet):
    server = FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})
    with httpx.Client(transport=PaymentTransport(server.mock_transport(), wallet=wallet)) as client:
        client.get(URL)
        server.routes["/paid"] = Route(offers=(Offer(amount="1000", recipient="mallory"),))
        with pytest.raises(PayeeChanged):
            client.get(URL)
    assert len(server.accepted) == 1


def test_the_journal_never_holds_the_credential(server, tmp_path):
    path = tmp_path / "secret-check.sqlite3"
    wallet = Wallet([TestMethod()], journal=path)
    with httpx.Client(transport=PaymentTransport(server.mock_transport(), wallet=wallet)) as client:
        client.get(URL)
    wallet.close()
    [credential] = server.accepted
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert test_proof(credential.challenge.id).encode() not in raw
    assert b"Payment eyJ" not in raw


def test_quote_shows_what_would_be_paid_without_paying(server, wallet):
    result = wallet.quote(URL, transport=server.mock_transport())
    assert result.payment_required and result.allowed and result.refusal is None
    assert result.price == Money(300_000, TEST_CURRENCY)
    assert result.method == "test" and result.payees[0].address == "merchant"
    assert result.expires is not None and result.challenge_id
    assert server.accepted == [] and wallet.payments() == []


def test_quote_reports_a_policy_refusal(server, tmp_path):
    wallet = Wallet([TestMethod()], journal=tmp_path / "q.sqlite3",
                    policy=SpendPolicy(limits=(Limit(usd("0.10")),)))  # fmt: skip
    result = wallet.quote(URL, transport=server.mock_transport())
    assert not result.allowed
    assert result.rule == "limit.payment" and "$0.1" in result.refusal
    assert result.price == Money(300_000, TEST_CURRENCY)  # still shows what it would cost
    assert server.accepted == [] and wallet.payments() == []
    wallet.close()


def test_quote_of_a_free_resource(server, wallet):
    result = wallet.quote("https://fake.test/free", transport=server.mock_transport())
    assert (result.status, result.payment_required, result.quote) == (200, False, None)


def test_quote_without_a_method_for_the_challenge(server, tmp_path):
    wallet = Wallet([TestMethod("other")], journal=tmp_path / "q.sqlite3")
    result = wallet.quote(URL, transport=server.mock_transport())
    assert not result.allowed and result.quote is None and result.refusal
    wallet.close()


def test_default_wallet_refuses_big_payments_through_the_transport(tmp_path):
    server = FakeMppServer({"/paid": Route(offers=(Offer(amount="5000000"),))})  # $5
    wallet = Wallet([TestMethod()], journal=tmp_path / "d.sqlite3")
    transport = PaymentTransport(server.mock_transport(), wallet=wallet)
    with httpx.Client(transport=transport) as client, pytest.raises(PaymentRefused):
        client.get(URL)
    assert server.accepted == [] and wallet.payments() == []
    wallet.close()
