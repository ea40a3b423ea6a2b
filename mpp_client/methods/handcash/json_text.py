"""JSON text for HandCash request bodies, written the way JavaScript's ``JSON.stringify`` does.

HandCash takes ``sendAmount`` as a JSON number in whole currency units (``0.05`` dollars).
Amounts are kept as ``Decimal`` and written exactly, never through a float. The body is
serialised once; those bytes are both signed and sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["dump_json"]


def dump_json(value: Any) -> bytes:
    """Compact JSON bytes of ``value`` (dicts keep their order; ``Decimal`` is a number)."""
    return _text(value).encode()


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amounts must be finite")
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{_text(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("floats are not written; use Decimal")
    return json.dumps(value, ensure_ascii=False)
