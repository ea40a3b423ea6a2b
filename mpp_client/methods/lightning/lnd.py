"""LND over its REST gateway: ``POST /v2/router/send`` (router.SendPaymentV2) to pay and
``GET /v2/router/track/{hash}`` (router.TrackPaymentV2) to look a payment up.

Both answer with a stream of JSON lines ``{"result": Payment}`` or ``{"error": {code,
message}}``. ``no_inflight_updates`` makes LND send only the final state, so the whole body is
read at once. int64 fields such as ``fee_msat`` arrive as strings; ``payment_preimage`` is hex.
Authentication is the ``Grpc-Metadata-macaroon`` header with a hex macaroon (an admin or a
custom macaroon with ``offchain:write``).

Only errors LND gives before it dispatches any HTLC (bad arguments, an expired or wrong-network
invoice, a refused macaroon) prove nothing was paid. A final ``FAILED`` state is confirmed by
tracking the payment; an error after the request reached LND (a 5xx without a payment state,
``ALREADY_EXISTS``, a timeout) leaves the outcome unknown.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Generator
from typing import Any

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
    never_reached_backend,
)
from mpp_client.methods.lightning.rest import base_url, error_text
from mpp_client.secret import Secret, Secrets, reveal

__all__ = ["LndRestPayer"]

# gRPC status codes that LND returns before it dispatches any HTLC: INVALID_ARGUMENT (3),
# PERMISSION_DENIED (7), UNAUTHENTICATED (16). Anything else (UNKNOWN, ALREADY_EXISTS for an
# invoice it is already paying, ...) may mean a payment exists.
_PRE_DISPATCH_CODES = frozenset({3, 7, 16})
# Messages of errors LND returns before dispatching: its invoice pre-checks, and its macaroon
# interceptor (which runs before any RPC handler and often answers with code 2, UNKNOWN).
_PRE_DISPATCH_MESSAGES = (
    "invoice not for current active network",
    "invoice expired",
    "verification failed",
    "cannot get macaroon",
    "expected 1 macaroon",
    "permission denied",
)
# TrackPaymentV2 answers NOT_FOUND with this message when LND's control tower never recorded
# the payment (it records it before it sends any HTLC).
_NOT_INITIATED = ("isn't initiated", "not initiated")


class LndRestPayer(LightningPayer):
    """Pays through LND's REST API at ``url`` (e.g. ``https://127.0.0.1:8080``).

    ``macaroon_hex`` is the macaroon in hex (secret). ``timeout`` is how many seconds LND may
    try to route one payment (sent to LND rounded up to whole seconds); the HTTP call waits a
    little longer than that. ``node_id`` (the node's 66-hex public key, ``lncli getinfo``)
    names the node in ``identity``; without it the identity is the URL plus a one-way
    fingerprint of the macaroon.
    """

    name = "lnd"

    def __init__(
        self,
        url: str,
        macaroon_hex: str | Secret[str],
        *,
        timeout: float = 60.0,
        node_id: str | None = None,
    ) -> None:
        try:
            bytes.fromhex(reveal(macaroon_hex))
        except (ValueError, TypeError):
            raise ValueError("macaroon_hex must be the macaroon in hex") from None
        self._url = base_url(url)
        # Every error detail is scrubbed of these (LND or a proxy may echo the header).
        self._secrets = Secrets()
        self._macaroon: Secret[str] = self._secrets.add(macaroon_hex)
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        self._timeout = math.ceil(timeout)
        self._node_id = _node_id(node_id)
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """``"lnd:<node id>"``, or ``"lnd:<macaroon fingerprint>@<host:port>"``."""
        if self._identity is None:
            fingerprint = credential_fingerprint(self._macaroon.reveal())
            self._identity = (
                f"lnd:{self._node_id}"
                if self._node_id
                else f"lnd:{fingerprint}@{endpoint_name(self._url)}"
            )
        return self._identity

    def __repr__(self) -> str:
        return f"LndRestPayer(url={self._url!r}, macaroon=<redacted>)"

    def _detail(self, value: object, limit: int = 200) -> str:
        # The one way LND's words enter a message: short, and without our secrets.
        return error_text(value, limit, secrets=self._secrets)

    def _headers(self) -> dict[str, str]:
        return {"grpc-metadata-macaroon": self._macaroon.reveal()}

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
            raise NothingSent(f"LND refused the macaroon (HTTP {reply.status})")
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
                raise NothingSent(f"LND refused the payment: {self._detail(message)}")
            raise PaymentPending(f"LND error {self._detail(code, 20)}: {self._detail(message)}")
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
            # Terminal in LND (no HTLC in flight), but confirmed by tracking before release.
            reason = payment.get("failure_reason", "FAILURE_REASON_UNKNOWN")
            raise PaymentReportedFailed(f"LND could not pay: {self._detail(reason)}")
        raise PaymentPending(f"LND reports the payment as {self._detail(status, 40)}")

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
            # Only LND's own "payment isn't initiated" (NOT_FOUND inside the stream envelope)
            # proves it never sent this payment; a gateway's 404 for an unknown route, a
            # refused macaroon or any other error proves nothing.
            if error.get("code") == 5 and any(m in message.lower() for m in _NOT_INITIATED):
                return LookupResult("failed", payment_hash, detail="LND has no such payment")
            return LookupResult("pending", payment_hash, detail=self._detail(message))
        payment = last.get("result")
        if not isinstance(payment, dict):
            return LookupResult("pending", payment_hash, detail=f"HTTP {reply.status}")
        status = payment.get("status")
        amount = _int_or_none(payment.get("value_sat"))
        if status == "SUCCEEDED":
            return LookupResult("settled", payment_hash, amount=amount)
        if status == "FAILED":
            return LookupResult(
                "failed",
                payment_hash,
                amount=amount,
                detail=self._detail(payment.get("failure_reason")),
            )
        return LookupResult("pending", payment_hash, amount=amount, detail=self._detail(status, 40))

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    receives_amountless = True

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """``POST /v1/invoices`` with ``value`` 0 (AddInvoice: any amount may be paid); needs a
        macaroon with ``invoices:write``."""
        reply: HttpReply = yield HttpCall.json_post(
            f"{self._url}/v1/invoices",
            {"memo": memo, "value": "0", "expiry": str(expiry_seconds)},
            headers=self._headers(),
            timeout=30,
        )
        data = _json_object(reply.content)
        invoice = data.get("payment_request") if data else None
        r_hash = data.get("r_hash") if data else None
        if reply.status >= 300 or not isinstance(invoice, str) or not isinstance(r_hash, str):
            message = data.get("message", "") if data else ""
            raise NothingSent(
                f"LND did not create an invoice (HTTP {reply.status}) {self._detail(message)}"
            )
        try:
            payment_hash = base64.b64decode(r_hash, altchars=b"-_", validate=False).hex()
        except ValueError:
            payment_hash = ""
        return CreatedInvoice(invoice, payment_hash)

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """``GET /v1/invoice/{hash}``: ``SETTLED`` -> received (``amt_paid_msat``); ``OPEN`` or
        ``CANCELED`` -> unpaid; anything else -> unknown."""
        reply: HttpReply = yield HttpCall(
            "GET",
            f"{self._url}/v1/invoice/{payment_hash}",
            headers=self._headers(),
            timeout=15,
            retry_safe=True,
        )
        data = _json_object(reply.content)
        if reply.status >= 300 or data is None:
            return Received("unknown", payment_hash, detail=f"HTTP {reply.status}")
        state = data.get("state")
        if state == "SETTLED":
            return Received("received", payment_hash, _int_or_none(data.get("amt_paid_msat")))
        if state in ("OPEN", "CANCELED"):
            return Received("unpaid", payment_hash, detail=str(state))
        return Received("unknown", payment_hash, detail=self._detail(state, 40))


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _node_id(node_id: str | None) -> str | None:
    if node_id is None:
        return None
    text = node_id.lower()
    if len(text) != 66 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("node_id must be the node's 66-hex public key")
    return text


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
