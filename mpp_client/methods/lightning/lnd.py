"""LND over its REST gateway: ``POST /v2/router/send`` (router.SendPaymentV2) to pay and
``GET /v2/router/track/{hash}`` (router.TrackPaymentV2) to look a payment up.

Both answer with a stream of JSON lines ``{"result": Payment}`` or ``{"error": {code,
message}}``. ``no_inflight_updates`` makes LND send only the final state, so the whole body is
read at once. int64 fields such as ``fee_msat`` arrive as strings; ``payment_preimage`` is hex.
Authentication is the ``Grpc-Metadata-macaroon`` header with a hex macaroon (an admin or a
custom macaroon with ``offchain:write``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator
from typing import Any

from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import (
    LightningPayer,
    PaymentNotSent,
    PaymentPending,
    PayResult,
    never_reached_backend,
)
from mpp_client.methods.lightning.rest import base_url, error_text

__all__ = ["LndRestPayer"]

# gRPC status codes that LND returns before it dispatches any HTLC: INVALID_ARGUMENT (3),
# PERMISSION_DENIED (7), UNAUTHENTICATED (16). Anything else (UNKNOWN, ALREADY_EXISTS for an
# invoice it is already paying, ...) may mean a payment exists.
_PRE_DISPATCH_CODES = frozenset({3, 7, 16})
_PRE_DISPATCH_MESSAGES = ("invoice not for current active network", "invoice expired")


class LndRestPayer(LightningPayer):
    """Pays through LND's REST API at ``url`` (e.g. ``https://127.0.0.1:8080``).

    ``macaroon_hex`` is the macaroon in hex (secret). ``timeout_seconds`` is how long LND may
    try to route one payment; the HTTP call waits a little longer than that.
    """

    name = "lnd"

    def __init__(self, url: str, macaroon_hex: str, *, timeout_seconds: int = 60) -> None:
        try:
            bytes.fromhex(macaroon_hex)
        except ValueError:
            raise ValueError("macaroon_hex must be the macaroon in hex") from None
        self._url = base_url(url)
        self._macaroon = macaroon_hex
        self._timeout = timeout_seconds

    def __repr__(self) -> str:
        return f"LndRestPayer(url={self._url!r}, macaroon=<redacted>)"

    def _headers(self) -> dict[str, str]:
        return {"grpc-metadata-macaroon": self._macaroon}

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice`` with ``fee_limit_sat = max_fee_sats``."""
        body = {
            "payment_request": invoice,
            "timeout_seconds": self._timeout,
            "fee_limit_sat": str(max_fee_sats),
            "no_inflight_updates": True,
        }
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v2/router/send",
            body,
            headers=self._headers(),
            timeout=self._timeout + 15,
        )
        if reply.status in (401, 403):
            raise PaymentNotSent(f"LND refused the macaroon (HTTP {reply.status})")
        lines = _json_lines(reply.content)
        if not lines:
            raise PaymentPending(f"LND answered HTTP {reply.status} without a payment state")
        last = lines[-1]
        error = last.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message", ""))
            if code in _PRE_DISPATCH_CODES or any(
                m in message.lower() for m in _PRE_DISPATCH_MESSAGES
            ):
                raise PaymentNotSent(f"LND refused the payment: {error_text(message)}")
            raise PaymentPending(f"LND error {code}: {error_text(message)}")
        payment = last.get("result")
        if not isinstance(payment, dict):
            raise PaymentPending(f"LND answered HTTP {reply.status} without a payment state")
        status = payment.get("status")
        if status == "SUCCEEDED":
            preimage = payment.get("payment_preimage")
            if not isinstance(preimage, str):
                raise PaymentPending("LND reported success without a preimage")
            return PayResult(
                preimage=preimage.lower(),
                payment_hash=str(payment.get("payment_hash", "")).lower(),
                fee_msat=_int_or_none(payment.get("fee_msat")),
            )
        if status == "FAILED":
            reason = payment.get("failure_reason", "FAILURE_REASON_UNKNOWN")
            raise PaymentNotSent(f"LND could not pay: {error_text(reason)}")
        raise PaymentPending(f"LND reports the payment as {error_text(status)}")

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """Track the payment; a payment still in flight keeps the stream open, so a timeout is
        reported as ``pending``."""
        path_hash = base64.urlsafe_b64encode(bytes.fromhex(payment_hash)).decode("ascii")
        try:
            reply: HttpReply = yield HttpCall(
                "GET",
                f"{self._url}/v2/router/track/{path_hash}?no_inflight_updates=true",
                headers=self._headers(),
                timeout=15,
                retry_safe=True,
            )
        except Exception as exc:
            if never_reached_backend(exc):
                raise
            return LookupResult("pending", payment_hash, detail="LND did not answer in time")
        lines = _json_lines(reply.content)
        last = lines[-1] if lines else {}
        error = last.get("error")
        if isinstance(error, dict):
            message = str(error.get("message", ""))
            if error.get("code") == 5 or "not found" in message.lower():
                return LookupResult("failed", payment_hash, detail="LND has no such payment")
            return LookupResult("pending", payment_hash, detail=error_text(message))
        payment = last.get("result")
        if not isinstance(payment, dict):
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        status = payment.get("status")
        amount = _int_or_none(payment.get("value_sat"))
        if status == "SUCCEEDED":
            return LookupResult("settled", payment_hash, amount=amount)
        if status == "FAILED":
            return LookupResult(
                "failed", payment_hash, amount=amount, detail=str(payment.get("failure_reason"))
            )
        return LookupResult("pending", payment_hash, amount=amount, detail=str(status))


def _json_lines(content: bytes) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None
