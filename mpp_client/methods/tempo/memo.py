"""The MPP attribution memo carried by the primary ``transferWithMemo`` of a charge.

32 bytes: ``keccak256("mpp")[0:4]`` (tag) || version ``0x01`` || ``keccak256(realm)[0:10]``
|| ``keccak256(client_id)[0:10]`` (or 10 zero bytes) || ``keccak256(challenge_id)[0:7]``.
The last field binds the transfer to one challenge, so a server can refuse a transaction that
was made for another challenge or realm.
"""

from __future__ import annotations

from mpp_client.methods.tempo.keccak import keccak256

__all__ = ["attribution_memo", "is_attribution_memo"]

_VERSION = b"\x01"
_ANONYMOUS = b"\x00" * 10


def _tag() -> bytes:
    return keccak256(b"mpp")[:4]


def attribution_memo(realm: str, challenge_id: str, client_id: str | None = None) -> bytes:
    """The 32-byte attribution memo for paying ``challenge_id`` of ``realm``."""
    client = keccak256(client_id.encode())[:10] if client_id else _ANONYMOUS
    return (
        _tag()
        + _VERSION
        + keccak256(realm.encode())[:10]
        + client
        + keccak256(challenge_id.encode())[:7]
    )


def is_attribution_memo(memo: bytes) -> bool:
    """Whether a 32-byte memo has the MPP attribution tag and version."""
    return len(memo) == 32 and memo[:5] == _tag() + _VERSION
