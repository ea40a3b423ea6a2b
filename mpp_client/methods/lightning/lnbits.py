"""LNbits: ``POST /api/v1/payments {"out": true, "bolt11"}`` to pay and
``GET /api/v1/payments/{hash}`` to look a payment up.

Authentication is the wallet's admin key in ``X-Api-Key``. LNbits >= 1.0 answers the pay call
with 201 and the Payment object (``payment_hash``, ``status`` ``success``/``pending``/
``failed``, ``preimage``, ``fee`` in negative msat). Payment errors are HTTP 520
``{"detail", "status"}`` where ``status`` says whether the payment ``failed`` or is ``pending``.
The routing fee is capped by the LNbits server (its reserve-fee settings), not per request.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import (
    LightningPayer,
    PaymentNotSent,
    PaymentPending,
    PayResult,
)
from mpp_client.methods.lightning.rest import base_url, error_text, reply_object

__all__ = ["LnbitsPayer"]


class LnbitsPayer(LightningPayer):
    """Pays from an LNbits wallet at ``url`` with the wallet's ``admin_key`` (secret)."""

    name = "lnbits"

    def __init__(self, url: str, admin_key: str, *, timeout_seconds: float = 90) -> None:
        if not admin_key or any(c in admin_key for c in "\r\n"):
            raise ValueError("admin_key must be a non-empty single-line string")
        self._url = base_url(url)
        self._key = admin_key
        self._timeout = timeout_seconds

    def __repr__(self) -> str:
        return f"LnbitsPayer(url={self._url!r}, admin_key=<redacted>)"

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice``; the fee cap is the LNbits server's (see module doc)."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/api/v1/payments",
            {"out": True, "bolt11": invoice},
            headers={"x-api-key": self._key},
            timeout=self._timeout,
        )
        data = reply_object(reply)
        if reply.status == 520 and data is not None:
            detail = error_text(data.get("detail", ""))
            if data.get("status") == "failed":
                raise PaymentNotSent(f"LNbits could not pay: {detail}")
            raise PaymentPending(f"LNbits reports the payment as pending: {detail}")
        if 400 <= reply.status < 500:
            # Bad invoice, wrong key, not an admin key: refused before any payment.
            detail = error_text(data.get("detail", "")) if data else ""
            raise PaymentNotSent(f"LNbits rejected the request (HTTP {reply.status}) {detail}")
        if reply.status >= 300 or data is None:
            raise PaymentPending(f"LNbits answered HTTP {reply.status}")
        status = data.get("status")
        preimage = data.get("preimage")
        if status == "success" and isinstance(preimage, str):
            fee = data.get("fee")
            return PayResult(
                preimage.lower(),
                str(data.get("payment_hash", "")).lower(),
                abs(fee) if isinstance(fee, int) else None,
            )
        if status == "failed":
            raise PaymentNotSent("LNbits reports the payment failed")
        raise PaymentPending(f"LNbits reports the payment as {error_text(status)}")

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``paid: true`` -> settled; ``status: failed`` or 404 -> failed; else pending."""
        reply: HttpReply = yield HttpCall(
            "GET",
            f"{self._url}/api/v1/payments/{payment_hash}",
            headers={"x-api-key": self._key},
            timeout=15,
            retry_safe=True,
        )
        if reply.status == 404:
            return LookupResult("failed", payment_hash, detail="LNbits has no such payment")
        data = reply_object(reply)
        if reply.status >= 400 or data is None:
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        if data.get("paid") is True:
            return LookupResult("settled", payment_hash)
        if data.get("status") == "failed":
            return LookupResult("failed", payment_hash)
        return LookupResult("pending", payment_hash)
