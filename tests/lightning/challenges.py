"""Challenges for lightning/charge tests, built the way a server encodes them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from mpp_client.methods.base import PaymentContext
from mpp_client.protocol import Challenge


def charge_request(
    invoice: str,
    *,
    amount: Any = "100",
    currency: Any = "sat",
    network: Any = "mainnet",
    payment_hash: Any = None,
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    details: dict[str, Any] = {"invoice": invoice}
    if network is not None:
        details["network"] = network
    if payment_hash is not None:
        details["paymentHash"] = payment_hash
    request: dict[str, Any] = {"amount": amount, "currency": currency, "methodDetails": details}
    for key in drop:
        request.pop(key, None)
    return request


def make_challenge(
    request: dict[str, Any],
    *,
    expires: datetime | str | None = None,
    challenge_id: str = "ch_test_1",
) -> Challenge:
    if expires is None:
        expires = datetime.now(UTC) + timedelta(minutes=5)
    if isinstance(expires, str):
        # Challenge.create refuses unreadable timestamps; a hostile server can still send one.
        valid = Challenge.create(
            id=challenge_id,
            realm="api.example.com",
            method="lightning",
            intent="charge",
            request=request,
        )
        return dataclasses.replace(valid, expires=expires)
    return Challenge.create(
        id=challenge_id,
        realm="api.example.com",
        method="lightning",
        intent="charge",
        request=request,
        expires=expires,
    )


def context(now: datetime | None = None) -> PaymentContext:
    return PaymentContext(
        origin="https://api.example.com",
        url="https://api.example.com/weather",
        http_method="GET",
        now=now or datetime.now(UTC),
    )
