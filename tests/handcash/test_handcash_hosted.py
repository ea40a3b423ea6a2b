"""handcash-mpp hosted pay with a person in the loop, the Bearer conflict, path claims as the
site compares them, and signing below a base URL with a path.

The person is simulated: the wallet's approval hook (called by the method once the payment
URL may be shown) makes the fake HandCash Cloud complete the payment request, whose webhook
makes the fake handcash-mpp server mint the receipt. Nothing waits on a clock: the receipt is
ready at the first poll, and the timeout case uses a fake clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from mpp_client.effects import Await, Checkpoint, HttpCall
from mpp_client.errors import PaymentOutcomeUnknown, PaymentRefused
from mpp_client.guard import OpenGuard
from mpp_client.methods.handcash import (
    HandCashCompatSite,
    HandCashPaymentRequired,
    HostedPay,
    HostedPayment,
)
from mpp_client.money import Currency, Money
from tests.drivers.harness import DRIVERS, Driver
from tests.handcash.challenges import context, handcash_challenge, run
from tests.handcash.conftest import PUBLIC_KEY
from tests.handcash.handcash_fake_cloud import FakeHandCashCloud
from tests.handcash.handcash_mpp_fake import FakeHandCashMppServer
from tests.loopback_server import serve

USD = Currency.fiat("usd")
MERCHANT_TOKEN = hashlib.sha256(b"token issued to the merchant's app").hexdigest()


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shop(cloud: FakeHandCashCloud) -> Iterator[tuple[FakeHandCashMppServer, str]]:
    server = FakeHandCashMppServer(merchant_token=MERCHANT_TOKEN, cloud=cloud)
    with serve(server.app()) as base:
        yield server, base


def method_for(make_handcash, origin: str, hosted: HostedPay | None = None, **site_options):
    site = HandCashCompatSite(
        origin=origin,
        max_price=Money(10, USD),
        merchant_auth_token=MERCHANT_TOKEN,
        **site_options,
    )
    return make_handcash(compat_sites=[site], hosted_pay=hosted)


def person(cloud: FakeHandCashCloud, seen: list[HostedPayment], *, pays: bool = True):
    """An approval hook: the person sees the URL and pays it on HandCash (or gives up)."""

    def approve(payment: HostedPayment) -> bool:
        seen.append(payment)
        if pays:
            cloud.complete_payment_request(payment.payment_request_id)
        return pays

    return approve


# -- hosted pay -------------------------------------------------------------------------------


def test_without_the_option_the_person_gets_the_url_qr_and_binding(
    driver_name, make_handcash, shop, cloud
):
    server, base = shop
    server.fulfillment = "hosted_pay"
    with pytest.raises(HandCashPaymentRequired) as caught:
        Driver(driver_name, [method_for(make_handcash, base)], OpenGuard()).send(
            "GET", f"{base}/paid"
        )
    error = caught.value
    [request_id] = server.hosted
    assert error.payment_request_id == request_id
    assert error.action == error.payment_url == f"https://handcash.io/payment-request/{request_id}"
    assert error.qr_url == f"https://pay.handcash.io/qr/{request_id}.png"
    assert error.challenge_binding and len(error.challenge_binding) == 64
    assert cloud.payment_requests[request_id]["paid_by"] is None


def test_a_person_pays_and_the_request_is_retried_with_the_receipt(
    driver_name, make_handcash, shop, cloud
):
    server, base = shop
    server.fulfillment = "hosted_pay"
    seen: list[HostedPayment] = []
    method = method_for(make_handcash, base, HostedPay(approve=person(cloud, seen)))
    result = Driver(driver_name, [method], OpenGuard()).send("GET", f"{base}/paid")

    assert result.status == 200, result.content
    assert result.payment is not None and result.payment.status == "paid"
    [payment] = seen
    assert payment.payment_url and payment.qr_url and payment.challenge_binding
    assert payment.amount == Money(10, USD)  # no price given: the site maximum is held
    assert server.receipt_polls == [payment.payment_request_id]  # ready at the first poll
    [retry] = server.retries
    assert retry["x-handcash-receipt"] and retry["authorization"] == (
        "Bearer " + retry["x-handcash-receipt"]
    )
    assert server.connect_calls == []  # the merchant token is never sent for hosted pay


def test_the_payment_is_held_from_before_the_url_is_handed_out(make_handcash, shop, cloud):
    server, base = shop
    server.fulfillment = "hosted_pay"
    order: list[str] = []

    def approve(payment: HostedPayment) -> bool:
        order.append("url handed out")
        cloud.complete_payment_request(payment.payment_request_id)
        return True

    method = method_for(make_handcash, base, HostedPay(approve=approve))
    answer = httpx.get(f"{base}/paid")
    [challenge] = method.synthesize_challenges(base, dict(answer.headers), answer.content)
    ctx = context(f"{base}/paid")
    proof, effects = run(method.pay(method.quote(challenge, ctx), ctx))
    [request_id] = server.hosted
    assert effects[0] == Checkpoint("broadcast", request_id)
    assert isinstance(effects[1], Await) and isinstance(effects[2], HttpCall)
    assert order == ["url handed out"]
    assert proof.money_moved is True and proof.reference == request_id


def test_a_person_who_gives_up_leaves_the_amount_held(driver_name, make_handcash, shop, cloud):
    server, base = shop
    server.fulfillment = "hosted_pay"
    method = method_for(make_handcash, base, HostedPay(approve=person(cloud, [], pays=False)))
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        Driver(driver_name, [method], OpenGuard()).send("GET", f"{base}/paid")
    [request_id] = server.hosted
    # The flow re-raises its own unknown (held) outcome; the message names the request.
    assert request_id in str(caught.value) and caught.value.money_moved is None
    assert server.retries == []


def test_no_receipt_before_the_timeout_is_unknown(driver_name, make_handcash, shop, cloud):
    server, base = shop
    server.fulfillment = "hosted_pay"
    ticks = iter([0.0, 1_000.0])  # the deadline has passed at the first check
    hosted = HostedPay(approve=lambda p: True, timeout=30, clock=lambda: next(ticks, 1e9))
    with pytest.raises(PaymentOutcomeUnknown, match="within 30 s") as caught:
        Driver(driver_name, [method_for(make_handcash, base, hosted)], OpenGuard()).send(
            "GET", f"{base}/paid"
        )
    [request_id] = server.hosted
    assert request_id in str(caught.value)
    assert server.receipt_polls == [request_id] and server.retries == []


def test_programmatic_hosted_pay_from_a_business_wallet(driver_name, make_handcash, shop, cloud):
    server, base = shop
    server.fulfillment = "hosted_pay"
    method = method_for(make_handcash, base, HostedPay(programmatic=True))
    result = Driver(driver_name, [method], OpenGuard()).send("GET", f"{base}/paid")
    assert result.status == 200, result.content
    [entry] = cloud.payment_requests.values()
    assert entry["paid_by"] == PUBLIC_KEY
    assert cloud.limits[PUBLIC_KEY] == Decimal("0.95")
    [call] = [s for s in cloud.seen if s.path.endswith("/send/paymentRequest")]
    assert call.status == 200 and call.headers["oauth-signature"]


def test_programmatic_refusal_is_unknown_not_nothing_paid(make_handcash, shop, cloud):
    # The endpoint is unverified: no answer of it is taken as proof that nothing was paid.
    server, base = shop
    server.fulfillment = "hosted_pay"
    cloud.limits[PUBLIC_KEY] = Decimal("0.01")
    method = method_for(make_handcash, base, HostedPay(programmatic=True))
    with pytest.raises(PaymentOutcomeUnknown, match="HTTP 403"):
        Driver("httpx", [method], OpenGuard()).send("GET", f"{base}/paid")


# -- the Bearer conflict and path claims ----------------------------------------------------------


def test_a_callers_bearer_header_does_not_make_the_gate_read_the_wrong_token(
    driver_name, make_handcash, shop
):
    server, base = shop
    result = Driver(driver_name, [method_for(make_handcash, base)], OpenGuard()).send(
        "GET", f"{base}/paid", headers={"authorization": "Bearer caller-own-session-token"}
    )
    assert result.status == 200, result.content
    [retry] = server.retries
    assert "caller-own-session-token" not in retry["authorization"]
    assert retry["authorization"] == "Bearer " + retry["x-handcash-receipt"]


def test_a_site_mounted_below_a_prefix_is_paid_once_and_accepted(driver_name, make_handcash):
    server = FakeHandCashMppServer(merchant_token=MERCHANT_TOKEN, mount="/shop")
    with serve(server.app()) as base:
        method = method_for(make_handcash, base, connect_pay_path="/shop/api/connect-pay")
        result = Driver(driver_name, [method], OpenGuard()).send("GET", f"{base}/shop/paid")
    assert result.status == 200, result.content
    assert len(server.pulls) == 1


def test_a_trailing_slash_is_paid_once_and_accepted(driver_name, make_handcash, shop):
    server, base = shop
    result = Driver(driver_name, [method_for(make_handcash, base)], OpenGuard()).send(
        "GET", f"{base}/paid/"
    )
    assert result.status == 200, result.content
    assert len(server.pulls) == 1


@pytest.mark.parametrize("path", ["/a%2Fpaid", "/x/../paid", "//paid"])
def test_a_path_the_site_cannot_match_is_refused_before_paying(make_handcash, shop, path):
    server, base = shop
    method = method_for(make_handcash, base)
    answer = httpx.get(f"{base}/paid")
    [challenge] = method.synthesize_challenges(base, dict(answer.headers), answer.content)
    with pytest.raises(PaymentRefused, match="cannot be matched"):
        method.quote(challenge, context(base + path))
    assert server.connect_calls == []


# -- signing below a base URL with a path ------------------------------------------------------


@pytest.mark.parametrize("mount", ["/handcash", "/proxy/handcash"])
def test_requests_are_signed_over_the_whole_url_path(mount: str):
    from mpp_client.methods.handcash import HandCashCharge
    from tests.handcash.conftest import AUTH_TOKEN
    from tests.handcash.handcash_fake_cloud import APP_ID, APP_SECRET

    cloud = FakeHandCashCloud(limits={PUBLIC_KEY: Decimal("1.00")}, mount=mount)
    with serve(cloud.app()) as url:
        method = HandCashCharge(
            app_id=APP_ID, app_secret=APP_SECRET, auth_token=AUTH_TOKEN, base_url=url + mount
        )
        ctx = context()
        proof, _ = run(method.pay(method.quote(handcash_challenge(), ctx), ctx))
    assert [s.status for s in cloud.seen] == [200, 200]
    assert [s.path for s in cloud.seen] == [
        f"{mount}/v3/connect/wallet/spendableBalances",
        f"{mount}/v3/connect/wallet/pay",
    ]
    assert proof.money_moved is True
