"""Keccak-256 and Ethereum addresses.

The backend is chosen on first use, not at import: ``import mpp_client.methods.tempo`` must stay
cheap for programs that never pay with Tempo. ``tiny-keccak`` (a Rust extension, ~1.4 µs per
digest here) is preferred; pycryptodome (~12 µs, and ~20 ms to import through cffi) is the
fallback when it is not installed. A payment takes several digests (memo fields, the signing
hash, the transaction hash), so the backend matters next to a ~45 µs signature.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["checksum_address", "is_address", "keccak256", "normalize_address"]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _pycryptodome(payload: bytes) -> bytes:
    from Crypto.Hash import keccak

    return bytes(keccak.new(data=payload, digest_bits=256).digest())


def _load() -> Callable[[bytes], bytes]:
    try:
        from tiny_keccak import keccak256 as fast
    except ImportError:
        return _pycryptodome
    # Guard against a package of that name that is not Ethereum's Keccak (e.g. NIST SHA3-256
    # gives a7ffc6f8... for b""): a wrong hash would sign transactions nobody can verify.
    if fast(b"").hex()[:16] != "c5d2460186f7233c":
        return _pycryptodome
    return fast


_backend: Callable[[bytes], bytes] | None = None


def keccak256(data: bytes) -> bytes:
    """The 32-byte Keccak-256 digest of ``data`` (Ethereum's hash, not NIST SHA3-256)."""
    global _backend
    backend = _backend
    if backend is None:
        backend = _backend = _load()
    # tiny-keccak only takes ``bytes``; callers sometimes pass bytearray or memoryview.
    return backend(data if type(data) is bytes else bytes(data))


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
