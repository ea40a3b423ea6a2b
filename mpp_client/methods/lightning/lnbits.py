"""LNbits: ``POST /api/v1/payments {"out": true, "bolt11"}`` to pay and
``GET /api/v1/payments/{hash}`` to look a payment up.

Authentication is the wallet's admin key in ``X-Api-Key``. LNbits >= 1.0 answers the pay call
with 201 and the Payment object (``payment_hash``, ``status`` ``success``/``pending``/
``failed``, ``preimage``, ``fee`` in negative msat). Payment errors are HTTP 520
``{"detail", "status"}`` where ``status`` says whether the payment ``failed`` or is ``pending``.
The routing fee is capped by the LNbits server (its reserve-fee settings), not per request.

Only a request LNbits refuses before handling it (key, validation) proves nothing was paid; a
``failed`` answer is confirmed by looking the payment up. LNbits records an outgoing payment
before it asks its funding source to pay, so "Payment does not exist." for this wallet's key
is a proof that this wallet never sent it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.errors import NothingSent
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import (
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
    Received,
    credential_fingerprint,
    endpoint_name,
)
from mpp_client.methods.lightning.rest import (
    REFUSED_BEFORE_PAYING,
    base_url,
    error_text,
    reply_object,
)
from mpp_client.secret import Secret, Secrets, reveal

__all__ = ["LnbitsPayer"]


class LnbitsPayer(LightningPayer):
    """Pays from an LNbits wallet at ``url`` with the wallet's ``admin_key`` (secret).

    ``wallet_id`` (not secret, shown in LNbits' wallet page) names the wallet in ``identity``;
    without it the identity is the URL plus a one-way fingerprint of the key. ``timeout``:
    seconds one payment call may take.
    """

    name = "lnbits"

    def __init__(
        self,
        url: str,
        admin_key: str | Secret[str],
        *,
        timeout: float = 90.0,
        wallet_id: str | None = None,
    ) -> None:
        admin_key = reveal(admin_key)
        if not isinstance(admin_key, str) or not admin_key or any(c in admin_key for c in "\r\n"):
            raise ValueError("admin_key must be a non-empty single-line string")
        if wallet_id is not None and (not wallet_id or any(c in wallet_id for c in "/\r\n ")):
            raise ValueError("wallet_id must be a non-empty id without '/' or spaces")
        if wallet_id is not None and wallet_id == admin_key:
            raise ValueError("wallet_id is the wallet's id, not its admin key")
        self._url = base_url(url)
        # Every error detail is scrubbed of the key (LNbits or a proxy may echo the header).
        self._secrets = Secrets()
        self._key: Secret[str] = self._secrets.add(admin_key)
        self._timeout = timeout
        self._wallet_id = wallet_id
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """``"lnbits:<host>/<wallet id>"``, or ``"lnbits:<key fingerprint>@<host>"``."""
        if self._identity is None:
            where = endpoint_name(self._url)
            self._identity = (
                f"lnbits:{where}/{self._wallet_id}"
                if self._wallet_id
                else f"lnbits:{credential_fingerprint(self._key.reveal())}@{where}"
            )
        return self._identity

    def __repr__(self) -> str:
        return f"LnbitsPayer(url={self._url!r}, admin_key=<redacted>)"

    def _payment(self, payment_hash: str) -> HttpCall:
        """``GET /api/v1/payments/{hash}`` (outgoing or incoming; a read, safe to retry)."""
        return HttpCall(
            "GET",
            f"{self._url}/api/v1/payments/{payment_hash}",
            headers={"x-api-key": self._key.reveal()},
            timeout=15,
            retry_safe=True,
        )

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice``; the fee cap is the LNbits server's (see module doc)."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/api/v1/payments",
            {"out": True, "bolt11": invoice},
            headers={"x-api-key": self._key.reveal()},
            timeout=self._timeout,
        )
        data = reply_object(reply)
        if reply.status == 520 and data is not None:
            detail = error_text(data.get("detail", ""), secrets=self._secrets)
            if data.get("status") == "failed":
                raise PaymentReportedFailed(f"LNbits could not pay: {detail}")
            raise PaymentPending(f"LNbits reports the payment as pending: {detail}")
        if reply.status in REFUSED_BEFORE_PAYING:
            # Bad invoice, wrong key, not an admin key: refused before any payment.
            detail = error_text(data.get("detail", ""), secrets=self._secrets) if data else ""
            raise NothingSent(f"LNbits rejected the request (HTTP {reply.status}) {detail}")
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
            raise PaymentReportedFailed("LNbits reports the payment failed")
        raise PaymentPending(
            f"LNbits reports the payment as {error_text(status, 40, secrets=self._secrets)}"
        )

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``paid: true`` -> settled; ``status: failed`` or LNbits' own "Payment does not
        exist." (for this wallet's key) -> failed; anything else (a 404 of a proxy or an
        unknown route, an error, in flight) -> pending."""
        reply: HttpReply = yield self._payment(payment_hash)
        data = reply_object(reply)
        if reply.status == 404:
            detail = data.get("detail") if data is not None else None
            if isinstance(detail, str) and "does not exist" in detail.lower():
                return LookupResult("failed", payment_hash, detail="LNbits has no such payment")
            return LookupResult("pending", payment_hash, detail="HTTP 404")
        if reply.status >= 400 or data is None:
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        if data.get("paid") is True:
            return LookupResult("settled", payment_hash)
        if data.get("status") == "failed":
            return LookupResult("failed", payment_hash, detail="LNbits reports it failed")
        return LookupResult("pending", payment_hash)

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    #: LNbits (1.6) refuses to create an invoice without an amount ("Amountless invoices not
    #: supported.") and to pay one, so it cannot take a session's refund: a session paying
    #: from LNbits needs another wallet to receive it (``LightningSession(receiver=...)``).
    receives_amountless = False

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """``GET /api/v1/payments/{hash}`` of an incoming payment: ``paid`` -> received (its
        amount in msat); not paid -> unpaid; anything else -> unknown."""
        reply: HttpReply = yield self._payment(payment_hash)
        data = reply_object(reply)
        if reply.status >= 300 or data is None:
            return Received("unknown", payment_hash, detail=f"HTTP {reply.status}")
        details = data.get("details")
        amount = details.get("amount") if isinstance(details, dict) else None
        if isinstance(amount, int) and amount < 0:
            return Received("unknown", payment_hash, detail="an outgoing payment, not ours")
        if data.get("paid") is True:
            return Received("received", payment_hash, amount if isinstance(amount, int) else None)
        if data.get("paid") is False:
            return Received("unpaid", payment_hash)
        return Received("unknown", payment_hash)
