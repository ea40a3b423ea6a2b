"""End to end through the three drivers: the handcash MPP method against an MPP server that
verifies payments in the fake HandCash Cloud, and the opt-in handcash-mpp compatibility mode
against a fake handcash-mpp server. Refusals are proven to pay nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal

import pytest

from mpp_client.errors import BudgetExceeded, HumanActionRequired, PaymentRefused
from mpp_client.guard import OpenGuard, PaymentOptions
from mpp_client.money import Currency, Money
from mpp_client.protocol import Credential
from mpp_client.testing import FakeMppServer, Offer, Route
from tests.drivers.harness import DRIVERS, Driver
from tests.handcash.handcash_fake_cloud import FakeHandCashCloud
from tests.handcash.handcash_mpp_fake import FakeHandCashMppServer
from tests.loopback_server import serve

USD = Currency.fiat("usd")
MERCHANT_TOKEN = hashlib.sha256(b"token issued to the merchant's app").hexdigest()


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def verifier(cloud: FakeHandCashCloud, used: set[str]):
    """What a handcash MPP server checks: the transaction exists, pays the challenge's amount
    to its recipient, carries the challenge binding, and was not used before."""

    def verify(credential: Credential) -> bool:
        txid = credential.payload.get("transactionId")
        payment = cloud.payments.get(txid) if isinstance(txid, str) else None
        if payment is None or txid in used:
            return False
        request = credential.challenge.request_data
        binding = payment.body["attachment"]["value"]["mpp"]
        receivers = payment.body["receivers"]
        ok = (
            binding == {"id": credential.challenge.id, "realm": credential.challenge.realm}
            and sum(Decimal(r["sendAmount"]) for r in receivers)
            == Decimal(request["amount"]).scaleb(-2)
            and [r["destination"] for r in receivers] == [request["recipient"]]
        )
        used.add(txid)
        return ok

    return verify


@pytest.fixture
def mpp_server(cloud: FakeHandCashCloud) -> FakeMppServer:
    offer = Offer(method="handcash", amount="5", currency="usd", verify=verifier(cloud, set()))
    return FakeMppServer({"/paid": Route(offers=[offer])})


def test_pays_a_handcash_challenge(driver_name, make_handcash, cloud, mpp_server):
    with mpp_server.serve() as base:
        result = Driver(driver_name, [make_handcash()], OpenGuard()).send("GET", f"{base}/paid")
    assert result.status == 200, result.content
    assert result.payment is not None and result.payment.status == "paid"
    assert result.payment.quote.amount == Money(5, USD)
    [paid] = cloud.payments.values()
    assert paid.total == Decimal("0.05")
    [accepted] = mpp_server.accepted
    assert accepted.payload == {"transactionId": paid.transaction_id}


def test_over_the_request_limit_pays_nothing(driver_name, make_handcash, cloud, mpp_server):
    limit = PaymentOptions(max_amount=Money(4, USD))
    with mpp_server.serve() as base, pytest.raises(BudgetExceeded):
        Driver(driver_name, [make_handcash()], OpenGuard()).send("GET", f"{base}/paid", mpp=limit)
    assert cloud.seen == []


@pytest.mark.parametrize(
    "offer",
    [
        Offer(method="handcash", amount="0.05", currency="usd"),
        Offer(method="handcash", amount="5", currency="USD"),
        Offer(method="handcash", amount="5", currency="usd", recipient="bad handle!"),
        Offer(
            method="handcash",
            amount="5",
            currency="usd",
            extra={"methodDetails": {"receivers": [{"destination": "x", "amount": "9"}]}},
        ),
    ],
    ids=["decimal-amount", "upper-currency", "bad-recipient", "recipient-and-receivers"],
)
def test_malformed_challenges_pay_nothing(driver_name, make_handcash, cloud, offer):
    server = FakeMppServer({"/paid": Route(offers=[offer])})
    with server.serve() as base, pytest.raises(PaymentRefused):
        Driver(driver_name, [make_handcash()], OpenGuard()).send("GET", f"{base}/paid")
    assert cloud.seen == []


# -- handcash-mpp compatibility mode ---------------------------------------------------------


@pytest.fixture
def compat_server() -> Iterator[tuple[FakeHandCashMppServer, str]]:
    server = FakeHandCashMppServer(merchant_token=MERCHANT_TOKEN)
    with serve(server.app()) as base:
        yield server, base


def compat_method(make_handcash, base: str, max_cents: int = 10):
    from mpp_client.methods.handcash import HandCashCompatSite

    site = HandCashCompatSite(
        origin=base, max_price=Money(max_cents, USD), merchant_auth_token=MERCHANT_TOKEN
    )
    return make_handcash(compat_sites=[site])


def test_compat_mode_pays_a_configured_site(driver_name, make_handcash, compat_server):
    server, base = compat_server
    method = compat_method(make_handcash, base)
    result = Driver(driver_name, [method], OpenGuard()).send("GET", f"{base}/paid")

    assert result.status == 200, result.content
    assert result.payment is not None and result.payment.status == "paid"
    assert result.payment.quote.intent == "compat-charge"
    assert result.payment.quote.amount == Money(10, USD)  # no price given: the site maximum
    [call] = server.connect_calls
    assert call["authToken"] == MERCHANT_TOKEN
    [retry] = server.retries
    # The gate reads a Bearer token first: the retry carries the same receipt in both.
    assert retry["authorization"] == "Bearer " + retry["x-handcash-receipt"]
    assert len(server.pulls) == 1


def test_compat_mode_prices_an_advertised_amount(driver_name, make_handcash, compat_server):
    server, base = compat_server
    server.price_usd = "0.03"
    result = Driver(driver_name, [compat_method(make_handcash, base)], OpenGuard()).send(
        "GET", f"{base}/paid"
    )
    assert result.status == 200
    assert result.payment is not None and result.payment.quote.amount == Money(3, USD)


def test_compat_price_above_the_site_maximum_pays_nothing(
    driver_name, make_handcash, compat_server
):
    server, base = compat_server
    server.price_usd = "0.25"
    with pytest.raises(PaymentRefused, match="maximum"):
        Driver(driver_name, [compat_method(make_handcash, base)], OpenGuard()).send(
            "GET", f"{base}/paid"
        )
    assert server.connect_calls == [] and server.pulls == []


def test_compat_site_maximum_counts_against_the_budget(driver_name, make_handcash, compat_server):
    server, base = compat_server
    limit = PaymentOptions(max_amount=Money(9, USD))
    with pytest.raises(BudgetExceeded):
        Driver(driver_name, [compat_method(make_handcash, base)], OpenGuard()).send(
            "GET", f"{base}/paid", mpp=limit
        )
    assert server.connect_calls == []


def test_unlisted_site_gets_its_402_back_untouched(driver_name, make_handcash, compat_server):
    server, base = compat_server
    result = Driver(driver_name, [make_handcash()], OpenGuard()).send("GET", f"{base}/paid")
    assert result.status == 402 and result.payment is None
    assert server.connect_calls == []


def test_hosted_pay_needs_a_person(driver_name, make_handcash, compat_server):
    server, base = compat_server
    server.fulfillment = "hosted_pay"
    with pytest.raises(HumanActionRequired) as caught:
        Driver(driver_name, [compat_method(make_handcash, base)], OpenGuard()).send(
            "GET", f"{base}/paid"
        )
    assert caught.value.action is not None
    assert caught.value.action.startswith("https://handcash.io/payment-request/")
    assert server.connect_calls == []


def test_server_error_after_the_debit_is_unknown_and_not_paid_again(
    driver_name, make_handcash, cloud, mpp_server
):
    from mpp_client.errors import PaymentOutcomeUnknown

    cloud.debit_then_fail_with = 504
    with mpp_server.serve() as base, pytest.raises(PaymentOutcomeUnknown) as caught:
        Driver(driver_name, [make_handcash()], OpenGuard()).send(
            "GET", f"{base}/paid", mpp=PaymentOptions(max_payments=3)
        )
    assert caught.value.money_moved is None
    assert len(cloud.pay_calls()) == 1 and len(cloud.payments) == 1
    assert mpp_server.accepted == []


def test_compat_400_after_the_pull_is_unknown(driver_name, make_handcash, compat_server):
    from mpp_client.errors import PaymentOutcomeUnknown

    server, base = compat_server
    server.fail_after_pull = True
    with pytest.raises(PaymentOutcomeUnknown):
        Driver(driver_name, [compat_method(make_handcash, base)], OpenGuard()).send(
            "GET", f"{base}/paid"
        )
    assert len(server.pulls) == 1 and server.retries == []
