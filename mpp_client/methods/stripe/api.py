"""The few Stripe API calls a payer makes, as ``HttpCall`` effects.

Stripe's wire details: form-encoded bodies (``a[b]=c`` for nested fields), HTTP Basic auth
with the secret key as user name, a ``Stripe-Version`` header (shared payment tokens are a
private preview, so the preview version is required), an ``Idempotency-Key`` on every POST,
and errors as ``{"error": {"type", "code", "message", "param"}}``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from mpp_client.effects import HttpCall, HttpReply
from mpp_client.secret import Secret, Secrets, reveal, scrub

__all__ = [
    "DEFAULT_API_BASE",
    "STRIPE_PREVIEW_VERSION",
    "StripeApi",
    "object_path",
    "stripe_error_text",
]

#: The preview API version mppx and pympp 0.16 send for shared payment tokens.
STRIPE_PREVIEW_VERSION = "2026-07-29.preview"
DEFAULT_API_BASE = "https://api.stripe.com"

_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+")


class StripeApi:
    """Builds authenticated Stripe API calls. The secret key never appears in a repr.

    ``secrets`` holds the key and the Basic-auth token it travels as (base64 of ``key:``):
    masking ``sk_...`` alone would let an echoed ``Authorization`` header through."""

    __slots__ = ("_authorization", "api_base", "secrets", "stripe_version", "timeout")

    def __init__(
        self, secret_key: str | Secret[str], *, api_base: str, stripe_version: str, timeout: float
    ) -> None:
        key: str = reveal(secret_key)
        token = base64.b64encode(f"{key}:".encode()).decode()
        self.secrets = Secrets()
        self.secrets.add(key)
        self._authorization: Secret[str] = self.secrets.add(f"Basic {token}", also=[token])
        self.api_base = api_base.rstrip("/")
        self.stripe_version = stripe_version
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"StripeApi({self.api_base!r}, version={self.stripe_version!r})"

    def _headers(self) -> dict[str, str]:
        return {
            "authorization": self._authorization.reveal(),
            "stripe-version": self.stripe_version,
            "accept": "application/json",
        }

    def post(
        self, path: str, fields: Sequence[tuple[str, str]], *, idempotency_key: str
    ) -> HttpCall:
        """A form POST to ``path`` (e.g. ``/v1/shared_payment/issued_tokens``).

        The idempotency key makes a resend return the first answer instead of acting twice,
        so the driver may retry it even after the request may have been received.
        """
        headers = {
            **self._headers(),
            "content-type": "application/x-www-form-urlencoded",
            "idempotency-key": idempotency_key,
        }
        body = urlencode(list(fields)).encode()
        return HttpCall("POST", self.url(path), headers, body, self.timeout, retry_safe=True)

    def get(self, path: str) -> HttpCall:
        """A GET of ``path`` (a read, safe to retry)."""
        return HttpCall("GET", self.url(path), self._headers(), b"", self.timeout, True)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on the configured API base."""
        return f"{self.api_base}{path}"


def object_path(prefix: str, object_id: str, suffix: str = "") -> str:
    """``prefix/<id>suffix`` with the id percent-encoded (ids come from a server reply)."""
    return f"{prefix}/{quote(object_id, safe='')}{suffix}"


def stripe_error_text(reply: HttpReply, secrets: Secrets | None = None) -> str:
    """A one-line description of a Stripe error reply: the status, Stripe's error type and
    code, and a short detail scrubbed of ``secrets`` (the key and its Basic-auth form) and of
    anything key-like. Never the body whole."""
    detail = ""
    try:
        body: Any = reply.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        parts = [
            str(error[k]) for k in ("type", "code", "decline_code") if isinstance(error.get(k), str)
        ]
        message = error.get("message")
        detail = "/".join(parts)
        if isinstance(message, str):
            detail = f"{detail}: {message}" if detail else message
    request_id = reply.headers.get("request-id")
    text = f"HTTP {reply.status}" + (f" {detail}" if detail else "")
    if request_id:
        text += f" (request {request_id[:64]})"
    return scrub(_KEY_LIKE.sub("[redacted key]", text), secrets or ())
