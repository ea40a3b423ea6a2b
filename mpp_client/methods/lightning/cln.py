"""Core Lightning over its REST plugin (clnrest, CLN >= 23.08): ``POST /v1/pay`` to pay and
``POST /v1/listpays`` to look a payment up.

Authentication is a ``Rune`` header (a rune restricted to ``pay`` and ``listpays`` is enough).
Amounts are millisatoshi integers (``maxfee`` too). ``pay`` answers ``{payment_preimage,
payment_hash, status: "complete"|"pending"|"failed", amount_msat, amount_sent_msat, ...}``;
errors are ``{"error": {"code", "message"}}`` (older clnrest: top-level ``code``/``message``).

Only a refused rune or CLN's own pre-checks (bad parameters, an expired invoice) prove nothing
was paid. A route failure answered by ``pay`` is confirmed with ``listpays`` (no part may still
be pending) before anything is released; any other error leaves the outcome unknown.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator
from typing import Any

from mpp_client.clock import SYSTEM_CLOCK, Clock
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
)
from mpp_client.methods.lightning.rest import base_url, error_text, reply_object
from mpp_client.secret import Secret, Secrets, reveal

__all__ = ["ClnRestPayer"]

# `pay` error codes of a refusal before any attempt (see CLN's lightning-pay(7)): -32602 bad
# parameters, 207 invoice expired; 401 is the REST plugin rejecting the rune.
_REFUSED_CODES = frozenset({-32602, 207, 401})
# `pay` error codes after attempts that all failed: 203 permanent failure at the destination,
# 205 no route, 206 fee or cltv limit exceeded, 210 gave up retrying. Confirmed with listpays.
_FAILED_CODES = frozenset({203, 205, 206, 210})
# How long after its newest attempt a payment whose attempts all failed may still get a new one
# from a `pay` command that is retrying (on top of retry_for).
_RETRY_SLACK_SECONDS = 60


class ClnRestPayer(LightningPayer):
    """Pays through Core Lightning's clnrest plugin at ``url`` with ``rune`` (secret).

    ``node_id`` is sent as the ``nodeid`` header that clnrest versions before 24.08 require,
    and names the node in ``identity`` (without it: the URL plus a one-way fingerprint of the
    rune). ``retry_for_seconds`` bounds how long CLN keeps trying routes. ``clock``: the time
    a lookup compares attempt times with (``mpp_client.clock``; default the system clock).
    """

    name = "cln"

    def __init__(
        self,
        url: str,
        rune: str | Secret[str],
        *,
        node_id: str | None = None,
        retry_for_seconds: int = 60,
        clock: Clock | None = None,
    ) -> None:
        text = reveal(rune)
        if not isinstance(text, str) or not text or any(c in text for c in "\r\n"):
            raise ValueError("rune must be a non-empty single-line string")
        self._url = base_url(url)
        # Every error detail is scrubbed of these (clnrest or a proxy may echo the header).
        self._secrets = Secrets()
        self._rune: Secret[str] = self._secrets.add(text)
        self._node_id = node_id
        self._retry_for = retry_for_seconds
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """``"cln:<node id>"``, or ``"cln:<rune fingerprint>@<host:port>"``."""
        if self._identity is None:
            self._identity = (
                f"cln:{self._node_id.lower()}"
                if self._node_id
                else f"cln:{credential_fingerprint(self._rune.reveal())}@{endpoint_name(self._url)}"
            )
        return self._identity

    def __repr__(self) -> str:
        return f"ClnRestPayer(url={self._url!r}, rune=<redacted>)"

    def _detail(self, value: object, limit: int = 200) -> str:
        # The one way CLN's words enter a message: short, and without our secrets.
        return error_text(value, limit, secrets=self._secrets)

    def _headers(self) -> dict[str, str]:
        headers = {"rune": self._rune.reveal()}
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
            raise NothingSent(f"Core Lightning refused the rune (HTTP {reply.status})")
        if data is None:
            raise PaymentPending(f"Core Lightning answered HTTP {reply.status} without JSON")
        error = data.get("error") if isinstance(data.get("error"), dict) else None
        if error is None and reply.status >= 400 and "code" in data:
            error = data
        if error is not None:
            code = error.get("code")
            message = self._detail(error.get("message", ""))
            code = self._detail(code, 20) if not isinstance(code, int) else code
            if code in _REFUSED_CODES:
                raise NothingSent(f"Core Lightning refused the payment ({code}): {message}")
            if code in _FAILED_CODES:
                raise PaymentReportedFailed(f"Core Lightning could not pay ({code}): {message}")
            raise PaymentPending(f"Core Lightning error {code}: {message}")
        if reply.status >= 400:
            raise PaymentPending(f"Core Lightning answered HTTP {reply.status}")
        status = data.get("status")
        preimage = data.get("payment_preimage")
        if status == "complete" and isinstance(preimage, str):
            fee = _fee_msat(data)
            return PayResult(preimage.lower(), str(data.get("payment_hash", "")).lower(), fee)
        if status == "failed":
            raise PaymentReportedFailed("Core Lightning reports the payment failed")
        raise PaymentPending(f"Core Lightning reports the payment as {self._detail(status, 40)}")

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """``listpays`` for ``payment_hash``: a complete attempt -> settled; no attempt at all
        (this node never sent it) or only failed attempts that a retrying ``pay`` can no longer
        follow up -> failed; anything else -> pending."""
        pays = yield from self._listpays(payment_hash)
        return _verdict(
            payment_hash,
            pays,
            retrying_until=self._retry_for + _RETRY_SLACK_SECONDS,
            now=self._clock.time(),
        )

    def confirm_failed(self, payment_hash: str) -> Generator[Effect, Any, bool]:
        """After ``pay`` itself answered a failure, that command has ended: no new attempt can
        follow, so failed attempts (or none) with none pending are the proof."""
        pays = yield from self._listpays(payment_hash)
        return _verdict(payment_hash, pays, retrying_until=None, now=0.0).status == "failed"

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    receives_amountless = True

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """``POST /v1/invoice`` with ``amount_msat: "any"``; the rune must allow ``invoice``."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/invoice",
            {
                "amount_msat": "any",
                "label": f"mpp-refund-{secrets.token_hex(8)}",
                "description": memo,
                "expiry": expiry_seconds,
            },
            headers=self._headers(),
            timeout=30,
        )
        data = reply_object(reply)
        invoice = data.get("bolt11") if data else None
        payment_hash = data.get("payment_hash") if data else None
        if reply.status >= 300 or not isinstance(invoice, str) or not isinstance(payment_hash, str):
            error = data.get("error", data) if data else {}
            message = error.get("message", "") if isinstance(error, dict) else ""
            raise NothingSent(
                f"Core Lightning did not create an invoice (HTTP {reply.status}) "
                f"{self._detail(message)}"
            )
        return CreatedInvoice(invoice, payment_hash.lower())

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """``POST /v1/listinvoices``: ``paid`` -> received (``amount_received_msat``);
        ``unpaid``/``expired`` -> unpaid; anything else -> unknown."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/listinvoices",
            {"payment_hash": payment_hash},
            headers=self._headers(),
            timeout=15,
            retry_safe=True,
        )
        data = reply_object(reply)
        invoices = data.get("invoices") if data else None
        if reply.status >= 300 or not isinstance(invoices, list) or len(invoices) != 1:
            return Received("unknown", payment_hash, detail=f"HTTP {reply.status}")
        found = invoices[0] if isinstance(invoices[0], dict) else {}
        status = found.get("status")
        if status == "paid":
            amount = found.get("amount_received_msat")
            return Received("received", payment_hash, amount if isinstance(amount, int) else None)
        if status in ("unpaid", "expired"):
            return Received("unpaid", payment_hash, detail=str(status))
        return Received("unknown", payment_hash, detail=self._detail(status, 40))

    def _listpays(self, payment_hash: str) -> Generator[Effect, Any, list[dict[str, Any]] | None]:
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/listpays",
            {"payment_hash": payment_hash},
            headers=self._headers(),
            timeout=15,
            retry_safe=True,
        )
        data = reply_object(reply)
        if reply.status >= 400 or data is None or "error" in data:
            return None
        pays = data.get("pays")
        if not isinstance(pays, list) or not all(isinstance(p, dict) for p in pays):
            return None
        return pays


def _verdict(
    payment_hash: str,
    pays: list[dict[str, Any]] | None,
    *,
    retrying_until: int | None,
    now: float,
) -> LookupResult:
    if pays is None:
        return LookupResult("pending", payment_hash, detail="listpays gave no readable answer")
    if not pays:
        return LookupResult("failed", payment_hash, detail="Core Lightning has no such payment")
    statuses = {p.get("status") for p in pays}
    # A hash may have several attempts; one complete attempt means it was paid.
    if "complete" in statuses:
        return LookupResult("settled", payment_hash)
    if statuses != {"failed"}:
        return LookupResult("pending", payment_hash, detail="an attempt is still pending")
    if retrying_until is not None:
        created = [_seconds(p.get("created_at")) for p in pays]
        times = [t for t in created if t is not None]
        if len(times) != len(created) or now - max(times) < retrying_until:
            # A `pay` command may be between two attempts: "all failed" is not final yet.
            return LookupResult("pending", payment_hash, detail="pay may still be retrying")
    return LookupResult("failed", payment_hash, detail="every attempt failed")


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fee_msat(data: dict[str, Any]) -> int | None:
    sent, amount = data.get("amount_sent_msat"), data.get("amount_msat")
    if isinstance(sent, int) and isinstance(amount, int):
        return sent - amount
    return None
