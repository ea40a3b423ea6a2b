"""Through the drivers: a seller (``FakeMppServer``) that confirms a PaymentIntent with the
token on the fake Stripe API, and then refuses the request. What the flow does with each
refusal depends on ``StripeCharge.abandon``'s proof and on the one-token-per-request rule."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest

from mpp_client.guard import OpenGuard, PaymentOptions
from mpp_client.methods.stripe import StripeRetryRefused
from mpp_client.protocol import Credential
from mpp_client.testing import FakeMppServer, Offer, Route
from tests.drivers.harness import DRIVERS, Driver
from tests.stripe.challenges import SELLER_KEY
from tests.stripe.stripe_fake import PREVIEW_VERSION, FakeStripe

pytestmark = pytest.mark.peer

_KEYS = itertools.count()
DETAILS = {"methodDetails": {"networkId": "internal", "paymentMethodTypes": ["card"]}}


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seller(stripe_url: str, *, accept: bool) -> Callable[[Credential], bool]:
    """Charge the token like a seller does; then accept (if the charge worked and ``accept``)."""

    def verify(credential: Credential) -> bool:
        answer = httpx.post(
            f"{stripe_url}/v1/payment_intents",
            data={
                "amount": credential.challenge.request_data["amount"],
                "currency": "usd",
                "confirm": "true",
                "shared_payment_granted_token": credential.payload["spt"],
            },
            headers={"stripe-version": PREVIEW_VERSION, "idempotency-key": f"s{next(_KEYS)}"},
            auth=(SELLER_KEY, ""),
        )
        return accept and answer.status_code == 200

    return verify


def server(stripe_url: str, *, accept: bool) -> FakeMppServer:
    offer = Offer(
        method="stripe", amount="50", currency="usd", extra=DETAILS,
        verify=seller(stripe_url, accept=accept),
    )  # fmt: skip
    return FakeMppServer({"/paid": Route(offers=[offer])})


def test_declined_card_gets_one_token_even_with_max_payments(
    driver_name, make_stripe, fake_stripe: FakeStripe, stripe_url
):
    method = make_stripe(payment_method="pm_card_chargeDeclined")
    # The first token is proven void, so the flow may pay the fresh challenge; the method
    # refuses: a second token would charge the declined card again.
    with server(stripe_url, accept=True).serve() as base, pytest.raises(StripeRetryRefused):
        Driver(driver_name, [method], OpenGuard()).send(
            "GET", f"{base}/paid", mpp=PaymentOptions(max_payments=3)
        )
    assert len(fake_stripe.token_creations()) == 1
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "revoked" and fake_stripe.intents == {}


def test_charged_then_refused_stays_held_and_is_not_paid_again(
    driver_name, make_stripe, fake_stripe: FakeStripe, stripe_url
):
    method = make_stripe()
    with server(stripe_url, accept=False).serve() as base:
        result = Driver(driver_name, [method], OpenGuard()).send(
            "GET", f"{base}/paid", mpp=PaymentOptions(max_payments=3)
        )
    assert result.status == 402
    assert result.payment is not None and result.payment.status == "rejected"
    assert result.payment.error is not None and result.payment.error.money_moved is None
    # The seller charged: the token was consumed, not revoked, and no second one was made.
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "consumed"
    assert token["usage_details"]["amount_captured"] == {"currency": "usd", "value": 50}
    assert len(fake_stripe.token_creations()) == 1
