"""Recursive Length Prefix encoding (the Ethereum wire format Tempo transactions use).

An item is ``bytes`` or a list of items. Unsigned integers are written big-endian without leading
zeros (zero is the empty string); ``uint`` does that conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

__all__ = ["Item", "RlpError", "decode", "encode", "uint"]

Item: TypeAlias = bytes | Sequence["Item"]


class RlpError(ValueError):
    """The bytes are not one well-formed RLP item."""


def uint(value: int) -> bytes:
    """The RLP byte string of a non-negative integer (big-endian, minimal, 0 -> empty)."""
    if value < 0:
        raise ValueError("RLP integers are unsigned")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _length_prefix(length: int, short: int) -> bytes:
    if length < 56:
        return bytes((short + length,))
    size = uint(length)
    return bytes((short + 55 + len(size),)) + size


def encode(item: Item) -> bytes:
    """Encode ``item`` (bytes, or a possibly nested sequence of items)."""
    if isinstance(item, bytes | bytearray):
        if len(item) == 1 and item[0] < 0x80:
            return bytes(item)
        return _length_prefix(len(item), 0x80) + bytes(item)
    body = b"".join([encode(child) for child in item])
    return _length_prefix(len(body), 0xC0) + body


def decode(data: bytes) -> Item:
    """Decode exactly one item; trailing bytes are an error."""
    item, end = _decode_at(data, 0)
    if end != len(data):
        raise RlpError("trailing bytes after the RLP item")
    return item


def _decode_at(data: bytes, pos: int) -> tuple[Item, int]:
    if pos >= len(data):
        raise RlpError("truncated RLP item")
    first = data[pos]
    if first < 0x80:
        return data[pos : pos + 1], pos + 1
    if first < 0xB8:
        start, length = pos + 1, first - 0x80
    elif first < 0xC0:
        start, length = _long_length(data, pos, first - 0xB7)
    elif first < 0xF8:
        start, length = pos + 1, first - 0xC0
    else:
        start, length = _long_length(data, pos, first - 0xF7)
    end = start + length
    if end > len(data):
        raise RlpError("truncated RLP item")
    if first < 0xC0:
        value = data[start:end]
        if length == 1 and value[0] < 0x80:
            raise RlpError("non-canonical single byte")
        return value, end
    children: list[Item] = []
    cursor = start
    while cursor < end:
        child, cursor = _decode_at(data, cursor)
        children.append(child)
    if cursor != end:
        raise RlpError("list payload overruns its length")
    return children, end


def _long_length(data: bytes, pos: int, size_len: int) -> tuple[int, int]:
    size_bytes = data[pos + 1 : pos + 1 + size_len]
    if len(size_bytes) != size_len or size_bytes[:1] == b"\x00":
        raise RlpError("bad RLP length prefix")
    length = int.from_bytes(size_bytes, "big")
    if length < 56:
        raise RlpError("non-canonical RLP length")
    return pos + 1 + size_len, length
