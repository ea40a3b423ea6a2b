"""What the HTTP wallet backends (LND, Core Lightning, phoenixd, LNbits) share: the base URL,
and reading a node's JSON answer without trusting its shape."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from mpp_client.effects import HttpReply
from mpp_client.secret import Secret, Secrets, scrub

__all__ = ["REFUSED_BEFORE_PAYING", "base_url", "error_text", "reply_detail", "reply_object"]

#: HTTP statuses with which an HTTP wallet backend (or a proxy in front of it) refuses a pay
#: request before handling it: bad request, refused credentials, no such route or verb, a body
#: that fails validation. Any other status once the request was delivered (408, 409, 429,
#: 5xx, ...) proves nothing about the payment.
REFUSED_BEFORE_PAYING = frozenset({400, 401, 403, 404, 405, 422})


def base_url(url: str) -> str:
    """``url`` without a trailing slash; only ``http`` and ``https`` are accepted.

    Plain ``http`` is allowed because nodes are often reached over a local socket or a tunnel;
    the caller decides.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("a backend URL must be http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        # Credentials in URLs end up in logs; they belong in the dedicated arguments.
        raise ValueError("a backend URL must not carry a query, fragment or credentials")
    return url.rstrip("/")


def reply_object(reply: HttpReply) -> dict[str, Any] | None:
    """The reply body as a JSON object, or ``None`` when it is not one."""
    try:
        value = json.loads(reply.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def error_text(
    value: object, limit: int = 200, *, secrets: Secrets | Iterable[Secret[Any]] = ()
) -> str:
    """A node's error message as a short, safe detail for an exception message, a lookup
    detail and so the journal: ``scrub`` removes every form of the backend's ``secrets`` (a
    node that echoes the request echoes its auth header) and any secret-bearing field value,
    and caps it at ``limit`` characters."""
    return scrub(value, secrets, limit=limit)


def reply_detail(
    reply: HttpReply, secrets: Secrets | Iterable[Secret[Any]] = (), limit: int = 120
) -> str:
    """``HTTP <status>`` and a short, scrubbed excerpt of the body: never the body whole."""
    excerpt = scrub(reply.content, secrets, limit=limit)
    return f"HTTP {reply.status}" + (f": {excerpt}" if excerpt else "")
