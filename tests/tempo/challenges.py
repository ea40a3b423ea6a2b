"""Tempo charge challenges and payment contexts for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mpp_client.methods.base import PaymentContext
from mpp_client.protocol.challenge import Challenge

PATH_USD = "0x20c0000000000000000000000000000000000000"
MERCHANT = "0x742d35Cc6634c0532925a3b844bC9e7595F8fE00"
PARTNER = "0xa1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def charge_request(
    amount: str = "1000000",
    *,
    currency: str = PATH_USD,
    recipient: str = MERCHANT,
    chain_id: int | None = 42431,
    **details: Any,
) -> dict[str, Any]:
    method_details = {k: v for k, v in details.items() if v is not None}
    if chain_id is not None:
        method_details["chainId"] = chain_id
    request: dict[str, Any] = {"amount": amount, "currency": currency, "recipient": recipient}
    if method_details:
        request["methodDetails"] = method_details
    return request


def make_challenge(
    request: dict[str, Any] | None = None,
    *,
    id: str = "challenge-123",
    realm: str = "api.example.com",
    expires: datetime | None = NOW + timedelta(minutes=5),
) -> Challenge:
    return Challenge.create(
        id=id,
        realm=realm,
        method="tempo",
        intent="charge",
        request=request if request is not None else charge_request(),
        expires=expires,
    )


def context(now: datetime = NOW, origin: str = "https://api.example.com") -> PaymentContext:
    return PaymentContext(origin=origin, url=origin + "/report", http_method="GET", now=now)
