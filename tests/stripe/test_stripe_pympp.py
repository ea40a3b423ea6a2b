"""End to end: each driver pays pympp 0.16's REAL stripe/charge server (127.0.0.1), which
confirms a PaymentIntent on the fake Stripe API with the token our client minted."""

from __future__ import annotations

import pytest

from mpp_client.errors import BudgetExceeded, NoPayableChallenge, PaymentRefused
from mpp_client.guard import OpenGuard, PaymentOptions
from mpp_client.money import Currency, Money
from mpp_client.testing import FakeMppServer, Offer, Route
from tests.drivers.harness import DRIVERS, Driver
from tests.stripe.stripe_fake import FakeStripe

pytestmark = pytest.mark.peer


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def driver(name: str, method: object) -> Driver:
    return Driver(name, [method], OpenGuard())  # type: ignore[list-item]


def test_pays_pympp_stripe_server(driver_name, make_stripe, fake_stripe: FakeStripe, pympp_server):
    result = driver(driver_name, make_stripe()).send("GET", f"{pympp_server}/paid")

    assert result.status == 200, result.content
    assert result.payment is not None and result.payment.status == "paid"
    receipt = result.payment.receipt
    assert receipt is not None and receipt.method == "stripe"
    assert receipt.reference.startswith("pi_")
    [creation] = fake_stripe.token_creations()
    assert creation.field("usage_limits[max_amount]") == "50"
    assert creation.field("usage_limits[currency]") == "usd"
    # The test helper grants to the calling account: it takes no seller_details at all.
    assert not [name for name, _ in creation.form if name.startswith("seller_details")]
    assert creation.status == 200 and len(fake_stripe.calls_to("/granted_tokens")) == 1
    [intent] = fake_stripe.intents.values()
    assert (intent["amount"], intent["currency"], intent["status"]) == (50, "usd", "succeeded")
    token = fake_stripe.tokens[intent["shared_payment_granted_token"]]
    assert token["deactivated_reason"] == "consumed"
    assert result.payment.quote.amount == Money(50, Currency.fiat("usd"))


def test_external_id_is_accepted_by_pympp(driver_name, make_stripe, fake_stripe, pympp_server):
    result = driver(driver_name, make_stripe()).send("GET", f"{pympp_server}/paid/order")
    assert result.status == 200, result.content
    assert result.payment is not None and result.payment.receipt is not None
    assert result.payment.receipt.reference.startswith("pi_")


def test_zero_decimal_currency_end_to_end(driver_name, make_stripe, fake_stripe, pympp_server):
    result = driver(driver_name, make_stripe()).send("GET", f"{pympp_server}/paid/yen")
    assert result.status == 200, result.content
    assert result.payment is not None
    assert str(result.payment.quote.amount) == "500 JPY"
    [intent] = fake_stripe.intents.values()
    assert (intent["amount"], intent["currency"]) == (500, "jpy")


def test_post_with_body_is_paid(driver_name, make_stripe, fake_stripe, pympp_server):
    result = driver(driver_name, make_stripe()).send(
        "POST", f"{pympp_server}/paid", content=b'{"q":1}', headers={"content-type": "x/y"}
    )
    assert result.status == 200, result.content
    assert len(fake_stripe.intents) == 1


def test_over_the_request_limit_creates_no_token(
    driver_name, make_stripe, fake_stripe, pympp_server
):
    limit = PaymentOptions(max_amount=Money(49, Currency.fiat("usd")))
    with pytest.raises(BudgetExceeded):
        driver(driver_name, make_stripe()).send("GET", f"{pympp_server}/paid", mpp=limit)
    assert fake_stripe.calls == []


def test_declined_card_is_rejected_and_the_token_revoked(
    driver_name, make_stripe, fake_stripe: FakeStripe, pympp_server
):
    method = make_stripe(payment_method="pm_card_chargeDeclined")
    result = driver(driver_name, method).send("GET", f"{pympp_server}/paid")
    assert result.status == 402
    assert result.payment is not None and result.payment.status == "rejected"
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "revoked"
    assert fake_stripe.intents == {}


MALFORMED = {
    "no-network-id": {"methodDetails": {"paymentMethodTypes": ["card"]}},
    "upper-currency": {"currency": "USD"},
    "decimal-amount": {"amount": "0.50"},
    "reserved-metadata": {
        "methodDetails": {
            "networkId": "internal",
            "paymentMethodTypes": ["card"],
            "metadata": {"externalId": "x"},
        }
    },
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_challenges_create_nothing(case, driver_name, make_stripe, fake_stripe):
    extra = {
        "methodDetails": {"networkId": "internal", "paymentMethodTypes": ["card"]},
        **MALFORMED[case],
    }
    amount = extra.pop("amount", "50")
    currency = extra.pop("currency", "usd")
    offer = Offer(method="stripe", amount=amount, currency=currency, extra=extra)
    server = FakeMppServer({"/paid": Route(offers=[offer])})
    with server.serve() as base, pytest.raises(PaymentRefused) as caught:
        driver(driver_name, make_stripe()).send("GET", f"{base}/paid")
    assert not isinstance(caught.value, NoPayableChallenge) or caught.value.refusals
    assert fake_stripe.calls == []
    assert all(r.credential() is None for r in server.requests)


def test_declined_card_is_not_charged_again_with_max_payments(
    driver_name, make_stripe, fake_stripe: FakeStripe, pympp_server
):
    # pympp answers the decline with 402 and a fresh challenge; the flow may pay it
    # (max_payments=2, the first token proven void), but the method refuses a second token.
    from mpp_client.methods.stripe import StripeRetryRefused

    method = make_stripe(payment_method="pm_card_chargeDeclined")
    options = PaymentOptions(max_payments=2)
    try:
        result = driver(driver_name, method).send("GET", f"{pympp_server}/paid", mpp=options)
    except StripeRetryRefused:
        pass
    else:
        assert result.status == 402
    assert len(fake_stripe.token_creations()) == 1
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "revoked"
    assert fake_stripe.intents == {}
