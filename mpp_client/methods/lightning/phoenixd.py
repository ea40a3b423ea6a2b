"""phoenixd (ACINQ's headless Phoenix): ``POST /payinvoice`` (form body) to pay and
``GET /payments/outgoingbyhash/{hash}`` to look a payment up.

Authentication is HTTP Basic with an empty user name and the ``http-password`` from
``phoenix.conf``. phoenixd's API has no fee cap: its own fee policy applies (the quote still
counts ``max_fee_sats`` so the budget is conservative). A success answers
``{recipientAmountSat, routingFeeSat, paymentId, paymentHash, paymentPreimage}``; a failure
answers ``{paymentId?, paymentHash?, reason}``.

Only a request phoenixd refuses before handling it (password, parameters, invoice) proves
nothing was paid. A failure answer is reported but not trusted on its own, and phoenixd's
lookup cannot prove a failure (see ``lookup``): such payments stay unknown until resolved.
"""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import Any
from urllib.parse import urlencode

from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.errors import NothingSent
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import (
    CreatedInvoice,
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
    Received,
    credential_fingerprint,
    endpoint_name,
    preimage_matches,
)
from mpp_client.methods.lightning.rest import (
    REFUSED_BEFORE_PAYING,
    base_url,
    error_text,
    reply_detail,
    reply_object,
)
from mpp_client.secret import Secret, Secrets, reveal

__all__ = ["PhoenixdPayer"]


class PhoenixdPayer(LightningPayer):
    """Pays through phoenixd at ``url`` (default port 9740) with its ``http-password``
    (secret). ``timeout``: seconds one payment call may take."""

    name = "phoenixd"

    def __init__(self, url: str, password: str | Secret[str], *, timeout: float = 90.0) -> None:
        text: str = reveal(password)
        if not text:
            raise ValueError("password must not be empty")
        self._url = base_url(url)
        token = base64.b64encode(f":{text}".encode()).decode()
        # The password and the Basic token it travels as: error details are scrubbed of both.
        self._secrets = Secrets()
        self._secrets.add(text)
        self._authorization: Secret[str] = self._secrets.add(f"Basic {token}", also=[token])
        self._timeout = timeout
        # phoenixd is one wallet per instance: the URL plus a fingerprint of its password (a
        # reinstalled phoenixd at the same URL has a new password, and a new wallet).
        self._identity = f"phoenixd:{credential_fingerprint(text)}@{endpoint_name(self._url)}"

    @property
    def identity(self) -> str:
        """``"phoenixd:<password fingerprint>@<host:port>"``."""
        return self._identity

    def __repr__(self) -> str:
        return f"PhoenixdPayer(url={self._url!r}, password=<redacted>)"

    def _get(self, path: str) -> HttpCall:
        """``GET path`` (a read, safe to retry)."""
        return HttpCall(
            "GET",
            f"{self._url}{path}",
            headers={"authorization": self._authorization.reveal()},
            timeout=15,
            retry_safe=True,
        )

    def _post(self, path: str, fields: dict[str, Any], *, timeout: float) -> HttpCall:
        """``POST path`` with ``fields`` as a form (phoenixd takes no JSON)."""
        return HttpCall(
            "POST",
            f"{self._url}{path}",
            headers={
                "authorization": self._authorization.reveal(),
                "content-type": "application/x-www-form-urlencoded",
            },
            content=urlencode(fields).encode(),
            timeout=timeout,
        )

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice``; ``max_fee_sats`` cannot be passed to phoenixd (see module doc)."""
        reply: HttpReply = yield self._post(
            "/payinvoice", {"invoice": invoice}, timeout=self._timeout
        )
        if reply.status in REFUSED_BEFORE_PAYING:
            # phoenixd checks the password and validates the request (invoice, amount) before
            # it starts a payment; after that it answers 200 (sent or failed) or 5xx.
            # Never the body whole: the status and a short excerpt without our secrets.
            raise NothingSent(
                f"phoenixd refused the request ({reply_detail(reply, self._secrets)})"
            )
        data = reply_object(reply)
        if reply.status >= 300 or data is None:
            raise PaymentPending(f"phoenixd answered HTTP {reply.status}")
        preimage = data.get("paymentPreimage")
        if isinstance(preimage, str):
            fee_sat = data.get("routingFeeSat")
            return PayResult(
                preimage.lower(),
                str(data.get("paymentHash", "")).lower(),
                fee_sat * 1000 if isinstance(fee_sat, int) else None,
            )
        if "reason" in data:
            # A PaymentFailed answer from lightning-kmp: reported, confirmed only by a lookup.
            raise PaymentReportedFailed(
                f"phoenixd could not pay: {error_text(data['reason'], secrets=self._secrets)}"
            )
        raise PaymentPending("phoenixd answered without a preimage or a failure reason")

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``isPaid: true`` -> settled; everything else -> pending.

        Never ``failed``: a 404 does not tell "no such payment" from a phoenixd without this
        route, and the answer has no explicit failed state (``isPaid: false`` is also what a
        payment in flight shows). A failed phoenixd payment is resolved by hand.
        """
        reply: HttpReply = yield self._get(f"/payments/outgoingbyhash/{payment_hash}")
        data = reply_object(reply)
        if reply.status >= 400 or data is None:
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        preimage = data.get("preimage")
        if data.get("isPaid") is True or (
            isinstance(preimage, str) and preimage_matches(preimage, payment_hash)
        ):
            sent = data.get("sent")
            return LookupResult(
                "settled", payment_hash, amount=sent if isinstance(sent, int) else None
            )
        return LookupResult("pending", payment_hash)

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    receives_amountless = True

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """``POST /createinvoice`` without ``amountSat`` (any amount may be paid)."""
        reply: HttpReply = yield self._post(
            "/createinvoice", {"description": memo, "expirySeconds": expiry_seconds}, timeout=30
        )
        data = reply_object(reply)
        invoice = data.get("serialized") if data else None
        payment_hash = data.get("paymentHash") if data else None
        if reply.status >= 300 or not isinstance(invoice, str) or not isinstance(payment_hash, str):
            raise NothingSent(
                f"phoenixd did not create an invoice ({reply_detail(reply, self._secrets)})"
            )
        return CreatedInvoice(invoice, payment_hash.lower())

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """``GET /payments/incoming/{hash}``: ``isPaid`` -> received (``receivedSat``); a
        readable answer that is not paid -> unpaid; anything else -> unknown."""
        reply: HttpReply = yield self._get(f"/payments/incoming/{payment_hash}")
        data = reply_object(reply)
        if reply.status >= 300 or data is None:
            return Received("unknown", payment_hash, detail=f"HTTP {reply.status}")
        if data.get("isPaid") is True:
            sats = data.get("receivedSat")
            return Received(
                "received", payment_hash, sats * 1000 if isinstance(sats, int) else None
            )
        if data.get("isPaid") is False:
            return Received("unpaid", payment_hash)
        return Received("unknown", payment_hash)
