"""HandCash Connect REST calls as ``HttpCall`` effects.

Every request carries the app's ``app-id`` and ``app-secret`` headers (HandCash enforces both);
user-scoped requests are also signed with the user's auth token (see ``_signing``). The auth
token and the app secret never appear in reprs or errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from mpp_client.effects import HttpCall, HttpReply
from mpp_client.methods.handcash.json_text import dump_json
from mpp_client.methods.handcash.signing import ConnectSigner
from mpp_client.secret import Secret, Secrets, scrub

__all__ = ["DEFAULT_BASE_URL", "PAY_PATH", "HandCashConnect", "handcash_error_text"]

DEFAULT_BASE_URL = "https://cloud.handcash.io"
PAY_PATH = "/v3/connect/wallet/pay"
#: Business wallets (``HandCashMinter.payPaymentRequest`` in the legacy SDK). UNVERIFIED against
#: the live service, in particular for another app's payment request.
PAY_PAYMENT_REQUEST_PATH = "/v3/wallet/transactions/send/paymentRequest"
PAYMENT_PATH = "/v3/connect/wallet/payment"
SPENDABLE_PATH = "/v3/connect/wallet/spendableBalances"


class HandCashConnect:
    """Builds signed HandCash Connect calls for one app and one user (auth token)."""

    __slots__ = ("_app_secret", "app_id", "base_url", "secrets", "signer", "timeout")

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str | Secret[str],
        signer: ConnectSigner,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 20.0,
    ) -> None:
        if not app_id or not app_secret:
            raise ValueError("a HandCash app id and app secret are required")
        self.app_id = app_id
        # What error details are scrubbed of: the app secret (sent as a header, so a server
        # that echoes the request echoes it) and the auth token (never sent, but cheap).
        self.secrets = Secrets()
        self._app_secret: Secret[str] = self.secrets.add(app_secret)
        self.secrets.add(signer.secret)
        self.signer = signer
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HandCashConnect(app_id={self.app_id!r}, base_url={self.base_url!r})"

    def _call(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        query: Mapping[str, str] | None,
        now: datetime | None,
        retry_safe: bool,
    ) -> HttpCall:
        url = self.base_url + path
        # @handcash/sdk signs ``new URL(request.url).pathname``: the whole path of the URL it
        # sends, so a base URL with a path (a proxy mount) is part of what is signed.
        signed_path = urlsplit(url).path or "/"
        signed = self.signer.sign(method, signed_path, body, now=now)
        headers = {
            "app-id": self.app_id,
            "app-secret": self._app_secret.reveal(),
            **signed.as_dict(),
        }
        if body:
            headers["content-type"] = "application/json"
        if query:
            url += f"?{urlencode(dict(query))}"
        return HttpCall(method, url, headers, body, self.timeout, retry_safe)

    def pay(self, body: Mapping[str, Any], *, now: datetime | None = None) -> HttpCall:
        """``POST /v3/connect/wallet/pay``. Never retried once it may have arrived: HandCash
        has no idempotency key, so a resend could pay twice."""
        return self._call("POST", PAY_PATH, dump_json(body), query=None, now=now, retry_safe=False)

    def pay_payment_request(
        self, payment_request_id: str, *, now: datetime | None = None
    ) -> HttpCall:
        """``POST /v3/wallet/transactions/send/paymentRequest {paymentRequestId}`` (business
        wallets; unverified against the live service). Never retried: it may pay."""
        body = dump_json({"paymentRequestId": payment_request_id})
        return self._call(
            "POST", PAY_PAYMENT_REQUEST_PATH, body, query=None, now=now, retry_safe=False
        )

    def payment(self, transaction_id: str, *, now: datetime | None = None) -> HttpCall:
        """``GET /v3/connect/wallet/payment?transactionId=...`` (the query is not signed)."""
        return self._call(
            "GET", PAYMENT_PATH, b"", query={"transactionId": transaction_id}, now=now,
            retry_safe=True,
        )  # fmt: skip

    def spendable_balances(self, *, now: datetime | None = None) -> HttpCall:
        """``GET /v3/connect/wallet/spendableBalances``: what this app may still spend."""
        return self._call("GET", SPENDABLE_PATH, b"", query=None, now=now, retry_safe=True)


def handcash_error_text(reply: HttpReply, secrets: Secrets | None = None) -> str:
    """A one-line description of a HandCash error reply (``{"message": ...}``): the status
    and the message, scrubbed of ``secrets`` and capped; never the body whole."""
    message = None
    try:
        body: Any = reply.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        inner = body.get("error")
        candidate = body.get("message")
        if candidate is None and isinstance(inner, Mapping):
            candidate = inner.get("message")
        if isinstance(candidate, str):
            message = scrub(candidate, secrets or ())
    return f"HTTP {reply.status}" + (f": {message}" if message else "")
