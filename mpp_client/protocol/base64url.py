"""base64url without padding (RFC 4648 §5) and the JSON objects MPP carries inside it.

Decoding is strict (protocol README §4): trailing ``=`` is tolerated, anything outside
``[A-Za-z0-9_-]`` and a length of 1 mod 4 are errors, and the bytes must be UTF-8. Python's
``base64.urlsafe_b64decode`` silently drops bad characters, so it is not used.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable
from typing import Any

from mpp_client.errors import EncodingError

__all__ = ["b64url_decode", "b64url_encode", "decode_json", "decode_json_object"]

# The urlsafe alphabet is mapped onto the standard one with str.replace (C fast path; an order
# of magnitude faster than str.translate). '+' and '/' are refused before mapping, so after it
# binascii's strict mode enforces exactly [A-Za-z0-9_-].
_PADDING = (b"", b"", b"==", b"=")
_TO_STANDARD = bytes.maketrans(b"-_+/", b"+/!!")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url text without ``=`` padding."""
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return encoded.replace("+", "-").replace("/", "_").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decode base64url text (padding optional) into bytes.

    Raises :class:`~mpp_client.errors.EncodingError` for characters outside the url-safe
    alphabet, a length that cannot be base64 (1 mod 4), or misplaced padding.
    """
    stripped = text.rstrip("=")
    size = len(stripped)
    if size % 4 == 1:
        raise EncodingError("base64url text has an impossible length")
    try:
        # One C pass maps the url-safe alphabet onto the standard one, and "+" and "/" onto a
        # character strict a2b_base64 refuses; a non-ASCII character fails the encode.
        standard = stripped.encode("ascii").translate(_TO_STANDARD)
        return binascii.a2b_base64(standard + _PADDING[size % 4], strict_mode=True)
    except ValueError:
        # binascii.Error (bad character, '=' inside the text) and non-ASCII input
        # (UnicodeEncodeError) both land here.
        raise EncodingError("base64url text contains characters outside [A-Za-z0-9_-]") from None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python's decoder accepts them by default.
    raise EncodingError(f"JSON contains the non-standard constant {name}")


def _finite_float(text: str) -> float:
    # 1e309 overflows to inf, which no JSON encoder can write back (allow_nan=False) and which
    # would turn any arithmetic on it into nonsense.
    value = float(text)
    if not math.isfinite(value):
        raise EncodingError("JSON contains a number too large for a double")
    return value


# Built once: json.loads with any keyword argument builds a new decoder per call (~1 us).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# decode()'s scanner (json's stubs do not declare the attribute __init__ sets).
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
# A lone surrogate can only come from a \uD800-\uDFFF escape (the UTF-8 decoder refuses encoded
# surrogates and json joins escaped pairs), so only text holding such an escape is walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]").search
_SURROGATE = re.compile("[\ud800-\udfff]").search


def _has_lone_surrogate(value: Any) -> bool:
    # Iterative: the decoder already accepted the nesting, a recursive walk could still overflow.
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if _SURROGATE(item):
                return True
        elif kind is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def decode_json(text: str, what: str) -> Any:
    """Decode JSON text strictly. ``what`` names it in error messages.

    Raises :class:`~mpp_client.errors.EncodingError` for malformed JSON, the non-standard
    constants NaN and Infinity, numbers that overflow a double (``1e309``) and lone surrogates
    (``"\\ud800"``): none of them can be written back as JSON, so a value that decodes here can
    always be encoded again.
    """
    try:
        # The scanner alone, as decode() runs it, skips decode()'s whitespace matching; text
        # that does not end where the value does (whitespace, trailing data) or does not start
        # with one takes the full decode(), which also raises its error.
        try:
            value, end = _SCAN_ONCE(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):
            value = _DECODER.decode(text)
    except EncodingError:
        raise
    except (ValueError, RecursionError):
        # JSONDecodeError is a ValueError; absurdly deep nesting is a RecursionError inside the
        # C decoder. Neither message is echoed: it may quote the data.
        raise EncodingError(f"{what} is not valid UTF-8 JSON") from None
    if _SURROGATE_ESCAPE(text) and _has_lone_surrogate(value):
        raise EncodingError(f"{what} contains a lone surrogate")
    return value


def decode_json_object(text: str, what: str) -> dict[str, Any]:
    """Decode base64url text holding a UTF-8 JSON object. ``what`` names it in error messages.

    Raises :class:`~mpp_client.errors.EncodingError` when any layer (base64url, UTF-8, JSON)
    is malformed, the JSON is not strict (see :func:`decode_json`) or the JSON value is not an
    object.
    """
    raw = b64url_decode(text)
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError(f"{what} is not valid UTF-8 JSON") from None
    value = decode_json(decoded, what)
    if type(value) is not dict:
        raise EncodingError(f"{what} is not a JSON object")
    return value
