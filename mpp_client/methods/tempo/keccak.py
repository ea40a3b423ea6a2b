"""Keccak-256 and Ethereum addresses.

pycryptodome's keccak is loaded on first use: importing it costs ~20 ms (cffi), and
``import mpp_client.methods.tempo`` must stay cheap for programs that never pay with Tempo.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["checksum_address", "is_address", "keccak256", "normalize_address"]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_keccak: Callable[[bytes], bytes] | None = None


def keccak256(data: bytes) -> bytes:
    """The 32-byte Keccak-256 digest of ``data`` (Ethereum's hash, not NIST SHA3-256)."""
    global _keccak
    if _keccak is None:
        from Crypto.Hash import keccak

        def _digest(payload: bytes) -> bytes:
            return bytes(keccak.new(data=payload, digest_bits=256).digest())

        _keccak = _digest
    return _keccak(data)


def is_address(value: object) -> bool:
    """Whether ``value`` is a ``0x``-prefixed 20-byte hex address (any letter case).

    Mixed-case addresses must carry a valid EIP-55 checksum, so a mistyped address is refused.
    """
    if not isinstance(value, str) or not _ADDRESS.match(value):
        return False
    body = value[2:]
    if body == body.lower() or body == body.upper():
        return True
    return checksum_address(value) == value


def normalize_address(value: str) -> str:
    """``value`` lower-cased after checking it is an address; raises ``ValueError`` otherwise."""
    if not is_address(value):
        raise ValueError(f"not a valid address: {value!r}")
    return value.lower()


def checksum_address(value: str | bytes) -> str:
    """The EIP-55 mixed-case form of a 20-byte address (hex string or raw bytes)."""
    raw = value.hex() if isinstance(value, bytes) else value.lower().removeprefix("0x")
    if len(raw) != 40:
        raise ValueError("an address has 20 bytes")
    digest = keccak256(raw.encode()).hex()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(raw)
    )
