"""Read the fields this method needs from a protocol ``Challenge``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mpp_client.errors import PaymentRefused

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["challenge_expires", "challenge_request"]


def challenge_request(challenge: Challenge) -> Mapping[str, Any]:
    """The decoded ``request`` object of ``challenge``."""
    raw: Any = challenge.request
    if isinstance(raw, Mapping):
        return raw
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        decoded = json.loads(data)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise PaymentRefused("the challenge request is not base64url JSON") from exc
    if not isinstance(decoded, Mapping):
        raise PaymentRefused("the challenge request is not a JSON object")
    return decoded


def challenge_expires(challenge: Challenge) -> datetime | None:
    """When ``challenge`` expires (aware datetime), or ``None`` when it does not say."""
    value: Any = challenge.expires
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PaymentRefused("the challenge expires value is not RFC 3339") from exc
    if parsed.tzinfo is None:
        raise PaymentRefused("the challenge expires value has no time zone")
    return parsed
