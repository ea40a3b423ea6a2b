"""The MPP attribution memo carried by the primary ``transferWithMemo`` of a charge.

32 bytes: ``keccak256("mpp")[0:4]`` (tag) || version ``0x01`` || ``keccak256(realm)[0:10]``
|| ``keccak256(client_id)[0:10]`` (or 10 zero bytes) || ``keccak256(challenge_id)[0:7]``.
The last field binds the transfer to one challenge, so a server can refuse a transaction that
was made for another challenge or realm.
"""

from __future__ import annotations

from functools import lru_cache

from mpp_client.methods.tempo.keccak import keccak256

__all__ = ["attribution_memo", "is_attribution_memo"]

_VERSION = b"\x01"
_ANONYMOUS = b"\x00" * 10


@lru_cache(maxsize=1)
def _head() -> bytes:
    # Tag and version never change: hash once (lazily, so importing this module stays free).
    return keccak256(b"mpp")[:4] + _VERSION


# A payer talks to few realms and has one client id, but pays many challenges: the realm and
# client fingerprints are cached (bounded, so a hostile stream of realms cannot grow memory);
# only the challenge id is hashed per payment.
@lru_cache(maxsize=256)
def _fingerprint(value: str) -> bytes:
    return keccak256(value.encode())[:10]


@lru_cache(maxsize=256)
def _fixed(realm: str, client_id: str | None) -> bytes:
    # The first 25 bytes: tag, version and the realm and client fingerprints.
    client = _fingerprint(client_id) if client_id else _ANONYMOUS
    return _head() + _fingerprint(realm) + client


def attribution_memo(realm: str, challenge_id: str, client_id: str | None = None) -> bytes:
    """The 32-byte attribution memo for paying ``challenge_id`` of ``realm``."""
    return _fixed(realm, client_id) + keccak256(challenge_id.encode())[:7]


def is_attribution_memo(memo: bytes) -> bool:
    """Whether a 32-byte memo has the MPP attribution tag and version."""
    return len(memo) == 32 and memo[:5] == _head()
