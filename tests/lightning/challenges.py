"""Challenges for lightning/charge tests, built the way a server encodes them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mpp_client.methods.base import PaymentContext


@dataclass(frozen=True)
class StandInChallenge:
    """Stands in for mpp_client.protocol.Challenge while the protocol package is written:
    the same fields on the wire (``request`` is the base64url JCS string, ``expires`` the
    RFC 3339 text)."""

    id: str
    realm: str
    method: str
    intent: str
    request: str
    expires: str | None = None


def encode_request(request: dict[str, Any]) -> str:
    raw = json.dumps(request, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
) -> StandInChallenge:
    if expires is None:
        expires = datetime.now(UTC) + timedelta(minutes=5)
    return StandInChallenge(
        id=challenge_id,
        realm="api.example.com",
        method="lightning",
        intent="charge",
        request=encode_request(request),
        expires=expires if isinstance(expires, str) else rfc3339(expires),
    )


def context(now: datetime | None = None) -> PaymentContext:
    return PaymentContext(
        origin="https://api.example.com",
        url="https://api.example.com/weather",
        http_method="GET",
        now=now or datetime.now(UTC),
    )
