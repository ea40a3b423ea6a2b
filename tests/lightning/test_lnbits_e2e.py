"""End to end: a real LNbits server (FakeWallet funding source) on 127.0.0.1, an MPP server
selling a resource for sats with LNbits invoices, and mpp_client paying it through the httpx
sync and async transports and the requests session, with the LNbits payer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import mpp_client
from mpp_client.errors import BudgetExceeded, PaymentRefused
from mpp_client.methods.lightning import LightningCharge, LnbitsPayer
from mpp_client.money import SAT, Money
from mpp_client.requests_session import PaymentSession
from mpp_client.runner import run_sync
from mpp_client.transport import AsyncPaymentTransport, PaymentTransport
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, Wallet

from .lnbits_server import LnbitsServer, free_port, running_lnbits
from .mpp_server import PRICE_SATS, LightningShop, ServerThread

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lnbits() -> Iterator[LnbitsServer]:
    with running_lnbits() as server:
        yield server


@pytest.fixture(scope="module")
def merchant(lnbits):
    return lnbits.create_wallet("merchant")


@pytest.fixture(scope="module")
def shop(lnbits, merchant) -> Iterator[tuple[LightningShop, str]]:
    shop = LightningShop(lnbits.url, merchant.inkey)
    with ServerThread(shop.app(), free_port()) as server:
        yield shop, server.url


@pytest.fixture
def payer_wallet(lnbits):
    wallet = lnbits.create_wallet("agent")
    lnbits.fund(wallet, 1_000)
    return wallet


def make_wallet(lnbits: LnbitsServer, payer_wallet, policy: SpendPolicy | None = None) -> Wallet:
    """A wallet with the default spend policy (1,000 sat per payment), an in-memory journal, and
    the Lightning method paying from the LNbits wallet; the journal tells the method which
    payment hashes were paid before."""
    journal = SqliteJournal(":memory:")
    charge = LightningCharge(
        LnbitsPayer(lnbits.url, payer_wallet.adminkey),
        network="mainnet",
        max_fee_sats=0,
        already_paid=journal.already_paid,
    )
    return Wallet([charge], journal=journal, policy=policy)


def assert_paid_once(lnbits, payer_wallet, shop, response, balance_before):
    assert response.status_code == 200
    payment = mpp_client.payment_of(response)
    assert payment is not None and payment.status == "paid"
    assert payment.receipt is not None
    assert payment.receipt.method == "lightning"
    assert payment.receipt.reference == shop.accepted[-1] == payment.reference
    assert lnbits.balance_msat(payer_wallet) == balance_before - PRICE_SATS * 1000
    outgoing = lnbits.outgoing_payments(payer_wallet)
    assert [p["payment_hash"] for p in outgoing] == [payment.reference]


def test_sync_transport_pays_lnbits_invoice_and_gets_receipt(lnbits, shop, payer_wallet):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    before = lnbits.balance_msat(payer_wallet)
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        response = client.get(f"{url}/weather")
    assert response.json() == {"forecast": "sunny"}
    assert_paid_once(lnbits, payer_wallet, shop, response, before)
    (record,) = wallet.journal.payments()
    assert record.state == "settled"
    assert record.reference == shop.accepted[-1]


async def test_async_transport_pays_lnbits_invoice(lnbits, shop, payer_wallet):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    before = lnbits.balance_msat(payer_wallet)
    async with httpx.AsyncClient(transport=AsyncPaymentTransport(wallet=wallet)) as client:
        response = await client.get(f"{url}/weather")
    assert_paid_once(lnbits, payer_wallet, shop, response, before)


def test_requests_session_pays_lnbits_invoice(lnbits, shop, payer_wallet):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    before = lnbits.balance_msat(payer_wallet)
    with PaymentSession(wallet=wallet) as session:
        response = session.get(f"{url}/weather", timeout=60)
    assert response.status_code == 200
    payment = mpp_client.payment_of(response)
    assert payment is not None and payment.status == "paid"
    assert lnbits.balance_msat(payer_wallet) == before - PRICE_SATS * 1000


@pytest.mark.parametrize("route", ["/overpriced", "/wrong-hash"])
def test_hostile_challenge_is_refused_and_lnbits_shows_no_payment(
    lnbits, shop, payer_wallet, route
):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    before = lnbits.balance_msat(payer_wallet)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        pytest.raises(PaymentRefused),
    ):
        client.get(f"{url}{route}")
    assert lnbits.balance_msat(payer_wallet) == before
    assert lnbits.outgoing_payments(payer_wallet) == []


def test_lnbits_payer_lookup_finds_the_settled_payment(lnbits, shop, payer_wallet):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        client.get(f"{url}/weather")
    payer = LnbitsPayer(lnbits.url, payer_wallet.adminkey)
    with httpx.Client() as io:
        result = run_sync(payer.lookup(shop.accepted[-1]), io)
        assert result.status == "settled"
        assert run_sync(payer.lookup("cd" * 32), io).status == "failed"


def test_lnbits_refuses_to_pay_the_same_invoice_twice_and_we_do_not_trust_it_alone(
    lnbits, merchant, payer_wallet
):
    # The second attempt of an already paid internal invoice: LNbits answers 520 "failed". The
    # payer reports it, but not as a proof: the lookup of that hash shows the first payment.
    reply = httpx.post(
        f"{lnbits.url}/api/v1/payments",
        json={"out": False, "amount": 5, "unit": "sat", "memo": "twice"},
        headers={"X-Api-Key": merchant.inkey},
        timeout=30,
    )
    bolt11 = reply.json()["bolt11"]
    payer = LnbitsPayer(lnbits.url, payer_wallet.adminkey)
    with httpx.Client() as io:
        first = run_sync(payer.pay(bolt11, 0), io)
        assert first.payment_hash == reply.json()["payment_hash"]
        from mpp_client.methods.lightning import PaymentReportedFailed

        with pytest.raises(PaymentReportedFailed) as info:
            run_sync(payer.pay(bolt11, 0), io)
        assert info.value.money_moved is None
        assert not run_sync(payer.confirm_failed(first.payment_hash), io)


def test_spend_policy_below_price_refuses_and_lnbits_shows_no_payment(lnbits, shop, payer_wallet):
    shop, url = shop
    policy = SpendPolicy(limits=(Limit(Money(50, SAT), "payment"),))
    wallet = make_wallet(lnbits, payer_wallet, policy)
    before = lnbits.balance_msat(payer_wallet)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        pytest.raises(BudgetExceeded),
    ):
        client.get(f"{url}/weather")
    assert lnbits.balance_msat(payer_wallet) == before
    assert lnbits.outgoing_payments(payer_wallet) == []


def test_invoice_paid_before_is_refused_by_the_journal(lnbits, shop, payer_wallet):
    shop, url = shop
    wallet = make_wallet(lnbits, payer_wallet)
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(f"{url}/reused").status_code == 200
        before = lnbits.balance_msat(payer_wallet)
        # The server offers the same invoice (same payment hash) again: never pay it twice.
        with pytest.raises(PaymentRefused, match="already paid"):
            client.get(f"{url}/reused")
    assert lnbits.balance_msat(payer_wallet) == before
    assert len(lnbits.outgoing_payments(payer_wallet)) == 1
