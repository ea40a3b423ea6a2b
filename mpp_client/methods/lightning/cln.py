"""Core Lightning over its REST plugin (clnrest, CLN >= 23.08): ``POST /v1/pay`` to pay and
``POST /v1/listpays`` to look a payment up.

Authentication is a ``Rune`` header (a rune restricted to ``pay`` and ``listpays`` is enough).
Amounts are millisatoshi integers (``maxfee`` too). ``pay`` answers ``{payment_preimage,
payment_hash, status: "complete"|"pending"|"failed", amount_msat, amount_sent_msat, ...}``;
errors are ``{"error": {"code", "message"}}`` (older clnrest: top-level ``code``/``message``).
"""

from __future__ import annotations

import secrets
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

__all__ = ["ClnRestPayer"]

# `pay` error codes that mean no HTLC is outstanding (see CLN's lightning-pay(7)):
# -32602 bad parameters, 203 permanent failure at destination, 205 no route, 206 fee or
# cltv limit exceeded, 207 invoice expired, 210 gave up after all attempts failed;
# 401 is the REST plugin rejecting the rune.
_DEFINITIVE_CODES = frozenset({-32602, 203, 205, 206, 207, 210, 401})


class ClnRestPayer(LightningPayer):
    """Pays through Core Lightning's clnrest plugin at ``url`` with ``rune`` (secret).

    ``node_id`` is sent as the ``nodeid`` header that clnrest versions before 24.08 require.
    ``retry_for_seconds`` bounds how long CLN keeps trying routes.
    """

    name = "cln"

    def __init__(
        self,
        url: str,
        rune: str,
        *,
        node_id: str | None = None,
        retry_for_seconds: int = 60,
    ) -> None:
        if not rune or any(c in rune for c in "\r\n"):
            raise ValueError("rune must be a non-empty single-line string")
        self._url = base_url(url)
        self._rune = rune
        self._node_id = node_id
        self._retry_for = retry_for_seconds

    def __repr__(self) -> str:
        return f"ClnRestPayer(url={self._url!r}, rune=<redacted>)"

    def _headers(self) -> dict[str, str]:
        headers = {"rune": self._rune}
        if self._node_id:
            headers["nodeid"] = self._node_id
        return headers

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice`` with ``maxfee = max_fee_sats * 1000`` msat."""
        body = {
            "bolt11": invoice,
            "maxfee": max_fee_sats * 1000,
            "retry_for": self._retry_for,
            # A label makes the attempt findable in CLN's own listings.
            "label": f"mpp-{secrets.token_hex(8)}",
        }
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/pay",
            body,
            headers=self._headers(),
            timeout=self._retry_for + 30,
        )
        data = reply_object(reply)
        if reply.status in (401, 403):
            raise PaymentNotSent(f"Core Lightning refused the rune (HTTP {reply.status})")
        if data is None:
            raise PaymentPending(f"Core Lightning answered HTTP {reply.status} without JSON")
        error = data.get("error") if isinstance(data.get("error"), dict) else None
        if error is None and reply.status >= 400 and "code" in data:
            error = data
        if error is not None:
            code = error.get("code")
            message = error_text(error.get("message", ""))
            if code in _DEFINITIVE_CODES:
                raise PaymentNotSent(f"Core Lightning could not pay ({code}): {message}")
            raise PaymentPending(f"Core Lightning error {code}: {message}")
        if reply.status >= 400:
            raise PaymentPending(f"Core Lightning answered HTTP {reply.status}")
        status = data.get("status")
        preimage = data.get("payment_preimage")
        if status == "complete" and isinstance(preimage, str):
            fee = _fee_msat(data)
            return PayResult(preimage.lower(), str(data.get("payment_hash", "")).lower(), fee)
        if status == "failed":
            raise PaymentNotSent("Core Lightning reports the payment failed")
        raise PaymentPending(f"Core Lightning reports the payment as {error_text(status)}")

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``listpays`` for ``payment_hash``: complete -> settled, failed -> failed."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/listpays",
            {"payment_hash": payment_hash},
            headers=self._headers(),
            timeout=15,
            retry_safe=True,
        )
        data = reply_object(reply)
        if reply.status >= 400 or data is None or "error" in data:
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        pays = data.get("pays")
        if not isinstance(pays, list) or not pays:
            return LookupResult("failed", payment_hash, detail="Core Lightning has no such payment")
        statuses = {p.get("status") for p in pays if isinstance(p, dict)}
        # A hash may have several attempts; one complete attempt means it was paid.
        if "complete" in statuses:
            return LookupResult("settled", payment_hash)
        if statuses == {"failed"}:
            return LookupResult("failed", payment_hash)
        return LookupResult("pending", payment_hash)


def _fee_msat(data: dict[str, Any]) -> int | None:
    sent, amount = data.get("amount_sent_msat"), data.get("amount_msat")
    if isinstance(sent, int) and isinstance(amount, int):
        return sent - amount
    return None
