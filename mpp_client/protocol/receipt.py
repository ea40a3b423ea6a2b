"""Payment receipts: ``Payment-Receipt: <base64url(JSON)>`` on 2xx answers (README §6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol.base64url import b64url_encode, decode_json_object
from mpp_client.protocol.timestamps import parse_timestamp

__all__ = ["MAX_RECEIPT_LENGTH", "Receipt", "parse_receipt"]

MAX_RECEIPT_LENGTH = 64 * 1024

_CORE = ("status", "method", "timestamp", "reference", "challengeId")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the server says it settled.

    ``status`` is ``"success"`` in every receipt the protocol defines; ``reference`` is the
    method's settlement reference (a transaction hash, a Stripe PaymentIntent id, a Lightning
    payment hash); ``timestamp`` is the RFC 3339 text; ``challenge_id`` is set by methods and
    transports that bind receipts to challenges (Lightning, MCP). ``extra`` keeps every other
    field unchanged (e.g. ``externalId``).
    """

    status: str
    method: str
    timestamp: str
    reference: str
    challenge_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def timestamp_at(self) -> datetime:
        """``timestamp`` as a timezone-aware UTC datetime."""
        return parse_timestamp(self.timestamp)

    def encode(self) -> str:
        """The ``Payment-Receipt`` field value (base64url JSON, no padding).

        Raises :class:`~mpp_client.errors.FormatError` when ``extra`` repeats a core field or is
        not JSON-writable.
        """
        document: dict[str, Any] = {
            "status": self.status,
            "method": self.method,
            "timestamp": self.timestamp,
            "reference": self.reference,
        }
        if self.challenge_id is not None:
            document["challengeId"] = self.challenge_id
        for key, item in self.extra.items():
            if key in _CORE:
                raise FormatError(f"receipt extra repeats the core field {key}")
            document[key] = item
        try:
            return b64url_encode(_ENCODER.encode(document).encode("utf-8"))
        except (TypeError, ValueError):
            raise FormatError("receipt cannot be written as JSON") from None


def _required_text(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if type(value) is not str or not value:
        raise ParseError(f"receipt {name} is missing or not a non-empty string")
    return value


def parse_receipt(value: str) -> Receipt:
    """Parse a ``Payment-Receipt`` field value.

    Raises :class:`~mpp_client.errors.ParseError` (``EncodingError`` for bad base64url or JSON)
    when ``status``, ``method``, ``reference`` or ``timestamp`` is missing or not a string, or
    the timestamp is not RFC 3339. Unknown fields are kept in ``extra``.
    """
    text = value.strip(" \t")
    if len(text) > MAX_RECEIPT_LENGTH:
        raise ParseError("receipt is longer than 64 KiB")
    document = decode_json_object(text, "receipt")
    status = _required_text(document, "status")
    method = _required_text(document, "method")
    reference = _required_text(document, "reference")
    timestamp = _required_text(document, "timestamp")
    parse_timestamp(timestamp)
    challenge_id = document.get("challengeId")
    if challenge_id is not None and type(challenge_id) is not str:
        raise ParseError("receipt challengeId is not a string")
    extra = {key: item for key, item in document.items() if key not in _CORE}
    return Receipt(status, method, timestamp, reference, challenge_id, extra)
