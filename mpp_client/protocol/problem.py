"""RFC 9457 problem details, as MPP servers send them with 402/400/403 answers (README §7).

Behaviour keys on the status code; the problem ``type`` is for diagnostics only and unknown
types (including legacy ``urn:payment:error:*``) are tolerated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpp_client.protocol.base64url import decode_json

__all__ = ["MAX_PROBLEM_LENGTH", "PROBLEM_TYPE_BASE", "Problem", "parse_problem"]

PROBLEM_TYPE_BASE = "https://paymentauth.org/problems/"
# Bodies larger than this are not read as problems: a problem document is a few hundred bytes.
MAX_PROBLEM_LENGTH = 64 * 1024

_CORE = ("type", "title", "status", "detail", "challengeId")


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem document. ``type`` is a URI (``about:blank`` when the server gave none),
    ``status`` the HTTP status the server wrote into the body, ``challenge_id`` the challenge the
    problem refers to; every other member is kept in ``extra``."""

    type: str
    title: str | None
    status: int | None
    detail: str | None
    challenge_id: str | None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


def _text(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    return value if type(value) is str else None


def parse_problem(content: bytes, content_type: str | None) -> Problem | None:
    """Read a response body as a problem document; None when it is not one. Never raises.

    ``application/problem+json`` bodies are problems; ``application/json`` bodies count only
    when they carry a string ``type``. Bodies over 64 KiB, invalid UTF-8 or JSON, and non-object
    JSON (including NaN, Infinity, numbers that overflow a double and lone surrogates) give None.
    Members of the wrong JSON type are treated as absent (RFC 9457 §3.1).
    """
    media = (content_type or "").partition(";")[0].strip(" \t").lower()
    if media not in ("application/problem+json", "application/json"):
        return None
    if not content or len(content) > MAX_PROBLEM_LENGTH:
        return None
    try:
        # The same strict decoder as the other MPP JSON: NaN, Infinity, 1e309 and lone
        # surrogates make the body "not a problem" (EncodingError and UnicodeDecodeError are
        # ValueErrors).
        document = decode_json(bytes(content).decode("utf-8"), "problem")
    except (ValueError, TypeError):
        return None
    if type(document) is not dict:
        return None
    kind = _text(document, "type")
    if kind is None:
        if media == "application/json":
            return None
        kind = "about:blank"
    status = document.get("status")
    return Problem(
        type=kind,
        title=_text(document, "title"),
        status=status if type(status) is int else None,
        detail=_text(document, "detail"),
        challenge_id=_text(document, "challengeId"),
        extra={key: item for key, item in document.items() if key not in _CORE},
    )
