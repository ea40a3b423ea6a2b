"""Body digests (RFC 9530 ``Content-Digest`` syntax) for the challenge ``digest`` parameter.

A challenge may bind the request body: ``digest="sha-256=:<base64>:"``. Some servers write the
value without the colons (``sha-256=<base64>``); both are read. The client re-sends the same
body; checking the digest before paying catches middleware that rewrote the body (README §9).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Callable

from mpp_client.errors import FormatError

__all__ = ["content_digest", "digest_matches"]

_ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The RFC 9530 digest of ``body``: ``sha-256=:<standard base64>:``.

    ``algorithm`` is ``sha-256`` or ``sha-512``; others raise
    :class:`~mpp_client.errors.FormatError`.
    """
    name = algorithm.lower()
    hasher = _ALGORITHMS.get(name)
    if hasher is None:
        raise FormatError(f"unsupported digest algorithm {algorithm!r}")
    encoded = binascii.b2a_base64(hasher(body).digest(), newline=False).decode("ascii")
    return f"{name}=:{encoded}:"


def _decode(text: str) -> bytes | None:
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        return None
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except ValueError:
        return None


def digest_matches(digest: str, body: bytes) -> bool | None:
    """Whether ``body`` has the digest a challenge announced.

    ``digest`` may list several ``algorithm=value`` members separated by commas. Returns False
    when any sha-256/sha-512 member does not match (or is malformed), True when at least one
    matched and none failed, and None when no member uses an algorithm this client knows (the
    caller cannot check).
    """
    verdict: bool | None = None
    for member in digest.split(","):
        name, equals, value = member.partition("=")
        hasher = _ALGORITHMS.get(name.strip(" \t").lower())
        if hasher is None or not equals:
            continue
        # Structured-field parameters (";key=value") after the value carry nothing we check.
        value = value.partition(";")[0].strip(" \t")
        if len(value) >= 2 and value[0] == ":" and value[-1] == ":":
            value = value[1:-1]
        expected = _decode(value)
        if expected is None or not hmac.compare_digest(expected, hasher(body).digest()):
            return False
        verdict = True
    return verdict
