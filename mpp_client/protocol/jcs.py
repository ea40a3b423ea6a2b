"""JSON Canonicalization Scheme (RFC 8785) for the data MPP canonicalises.

``request`` and ``opaque`` are JCS: object keys sorted by UTF-16 code units, no whitespace,
non-ASCII written literally, no HTML escaping. For strings, integers, booleans, null, objects
and arrays Python's encoder already writes JCS once keys are in UTF-16 order; MPP carries
amounts as decimal strings, so floats are refused unless they are integral (then written as
integers, as RFC 8785's number serialisation does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mpp_client.errors import FormatError

__all__ = ["canonical_json"]

# I-JSON / RFC 8785: integers beyond 2**53 - 1 cannot round-trip through an IEEE double.
_MAX_SAFE_INTEGER = 2**53 - 1

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _normalise(value: Any, depth: int) -> Any:
    if depth > 256:
        raise FormatError("JSON value is nested too deeply to canonicalise")
    if value is None or value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return int(value)
        raise FormatError("integer is outside the I-JSON range; send amounts as strings")
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
            return int(value)
        raise FormatError("non-integral numbers are not supported in canonical JSON")
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError("JSON object keys must be strings")
            items.append((key, _normalise(item, depth + 1)))
        items.sort(key=lambda pair: _utf16_key(pair[0]))
        return dict(items)
    if isinstance(value, list | tuple):
        return [_normalise(item, depth + 1) for item in value]
    raise FormatError(f"{type(value).__name__} cannot be written as JSON")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON, UTF-8 encoded.

    Raises :class:`~mpp_client.errors.FormatError` for values JSON cannot carry, non-integral
    floats, integers beyond 2**53 - 1, non-string keys and lone surrogates.
    """
    try:
        return _ENCODER.encode(_normalise(value, 0)).encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("JSON text contains a lone surrogate") from None
