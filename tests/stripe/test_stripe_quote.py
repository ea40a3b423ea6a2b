"""StripeCharge.quote: every check made before a token could be created (no I/O at all)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mpp_client.errors import ChallengeExpired, PaymentRefused
from mpp_client.methods.base import Payee
from mpp_client.methods.stripe import StripeCharge
from mpp_client.money import Currency, Money
from tests.stripe.challenges import FAKE_LIVE_KEY, context, stripe_challenge

# The api base is unreachable on purpose: quote must never do I/O.
STRIPE = StripeCharge("sk_test_x", payment_method="pm_card_visa", api_base="http://0.0.0.0:9")


def test_quote_prices_in_cents_for_usd() -> None:
    quote = STRIPE.quote(stripe_challenge(amount="2500"), context())
    assert quote.amount == Money(2500, Currency.fiat("usd"))
    assert str(quote.amount) == "25.00 USD"
    assert quote.payees == (Payee("profile_seller_123", 2500),)
    assert quote.network == "stripe:test"
    assert quote.method == "stripe" and quote.intent == "charge"


def test_quote_uses_zero_decimals_for_yen() -> None:
    quote = STRIPE.quote(stripe_challenge(amount="500", currency="jpy"), context())
    assert quote.amount.currency.decimals == 0
    assert str(quote.amount) == "500 JPY"


def test_quote_uses_three_decimals_for_kuwaiti_dinar() -> None:
    quote = STRIPE.quote(stripe_challenge(amount="1500", currency="kwd"), context())
    assert str(quote.amount) == "1.500 KWD"


def test_quote_expiry_is_the_challenge_expiry() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    quote = STRIPE.quote(stripe_challenge(now=now, expires_in=120), context(now))
    assert quote.expires == now + timedelta(seconds=120)


def test_live_key_quotes_live_network() -> None:
    live = StripeCharge(FAKE_LIVE_KEY, payment_method="pm_1", api_base="http://0.0.0.0:9")
    assert live.quote(stripe_challenge(), context()).network == "stripe:live"


@pytest.mark.parametrize(
    "amount", ["0", "-5", "12.50", "1e3", " 100", "0100", "1" * 19, "", "\uff12\uff15"]
)
def test_malformed_amounts_are_refused(amount: str) -> None:
    with pytest.raises(PaymentRefused, match="amount"):
        STRIPE.quote(stripe_challenge(amount=amount), context())


def test_numeric_json_amount_is_refused() -> None:
    with pytest.raises(PaymentRefused, match="amount"):
        STRIPE.quote(stripe_challenge(amount=2500), context())  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["USD", "us", "usdc", "", "u$d"])
def test_non_iso_lowercase_currency_is_refused(currency: str) -> None:
    with pytest.raises(PaymentRefused, match="currency"):
        STRIPE.quote(stripe_challenge(currency=currency), context())


def test_missing_network_id_is_refused() -> None:
    challenge = stripe_challenge(methodDetails={"paymentMethodTypes": ["card"]})
    with pytest.raises(PaymentRefused, match="networkId"):
        STRIPE.quote(challenge, context())


def test_network_id_with_form_metacharacters_is_refused() -> None:
    with pytest.raises(PaymentRefused, match="networkId"):
        STRIPE.quote(stripe_challenge(network_id="p&usage_limits[max_amount]=999"), context())


def test_missing_method_details_is_refused() -> None:
    with pytest.raises(PaymentRefused, match="methodDetails"):
        STRIPE.quote(stripe_challenge(methodDetails=None), context())


@pytest.mark.parametrize("types", [[], "card", [1], None])
def test_payment_method_types_must_be_a_non_empty_list(types: object) -> None:
    challenge = stripe_challenge(methodDetails={"networkId": "p", "paymentMethodTypes": types})
    with pytest.raises(PaymentRefused, match="paymentMethodTypes"):
        STRIPE.quote(challenge, context())


def test_seller_not_accepting_cards_is_refused() -> None:
    with pytest.raises(PaymentRefused, match="card"):
        STRIPE.quote(stripe_challenge(types=["link"]), context())


def test_payment_method_type_check_can_be_turned_off() -> None:
    method = StripeCharge(
        "sk_test_x", payment_method="pm_1", payment_method_type=None, api_base="http://0.0.0.0:9"
    )
    assert method.quote(stripe_challenge(types=["link"]), context()).amount.amount == 2500


def test_reserved_metadata_external_id_is_refused() -> None:
    details = {
        "networkId": "p",
        "paymentMethodTypes": ["card"],
        "metadata": {"externalId": "forged"},
    }
    with pytest.raises(PaymentRefused, match="reserved"):
        STRIPE.quote(stripe_challenge(methodDetails=details), context())


def test_non_string_external_id_is_refused() -> None:
    with pytest.raises(PaymentRefused, match="externalId"):
        STRIPE.quote(stripe_challenge(externalId=123), context())


def test_expired_challenge_is_refused() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ChallengeExpired):
        STRIPE.quote(stripe_challenge(now=now, expires_in=-1), context(now))


def test_challenge_expiring_within_the_margin_is_refused() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ChallengeExpired):
        STRIPE.quote(stripe_challenge(now=now, expires_in=5), context(now))


def test_other_methods_are_refused() -> None:
    other = replace(stripe_challenge(), method="tempo")
    assert not STRIPE.can_pay(other)
    with pytest.raises(PaymentRefused):
        STRIPE.quote(other, context())


def test_repr_hides_the_secret_key() -> None:
    method = StripeCharge("sk_test_SUPERSECRET", payment_method="pm_1")
    assert "SUPERSECRET" not in repr(method)
    assert "SUPERSECRET" not in repr(method._api)


@pytest.mark.parametrize("key", ["", "sk test with spaces"])
def test_unusable_secret_keys_are_rejected_at_construction(key: str) -> None:
    with pytest.raises(ValueError):
        StripeCharge(key, payment_method="pm_1")
