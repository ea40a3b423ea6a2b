"""HandCash Connect request signing.

A HandCash *auth token* is a secp256k1 private key (64 hex digits) that the user issued to one
app. It is never sent: each user-scoped request carries the compressed public key and an ECDSA
signature (RFC 6979 deterministic, low-S, DER, hex) over::

    sha256(METHOD + "\\n" + PATH + "\\n" + TIMESTAMP + "\\n" + BODY + "\\n" + NONCE)

where PATH has no query string, TIMESTAMP is JavaScript's ``toISOString()`` form
(``2026-11-22T02:17:57.405Z``), BODY is the exact JSON text sent (empty for GET) and NONCE a
random base36 string. This is what ``@handcash/sdk`` 1.0.3 does; signatures are byte-identical
(see ``tests/handcash/vectors``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mpp_client.extras import require_extra
from mpp_client.secret import Secret, reveal

if TYPE_CHECKING:
    from coincurve import PrivateKey

__all__ = ["ConnectSigner", "SignedHeaders", "js_iso_timestamp", "random_nonce", "signing_payload"]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def js_iso_timestamp(moment: datetime) -> str:
    """``moment`` as JavaScript's ``Date.prototype.toISOString()`` writes it (UTC, ms, ``Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def random_nonce(length: int = 11) -> str:
    """A random base36 nonce like the official SDK's ``Math.random().toString(36)`` tail."""
    return "".join(secrets.choice(_BASE36) for _ in range(length))


def signing_payload(method: str, path: str, timestamp: str, body: bytes, nonce: str) -> bytes:
    """The exact bytes whose SHA-256 is signed. ``path`` must not contain a query string."""
    if "?" in path:
        raise ValueError("HandCash signs the path without its query string")
    return b"\n".join(
        [method.upper().encode(), path.encode(), timestamp.encode(), body, nonce.encode()]
    )


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The four ``oauth-*`` headers of one signed request (none of them is a secret)."""

    public_key: str
    timestamp: str
    nonce: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        """The headers by their wire names."""
        return {
            "oauth-publickey": self.public_key,
            "oauth-timestamp": self.timestamp,
            "oauth-nonce": self.nonce,
            "oauth-signature": self.signature,
        }


class ConnectSigner:
    """Signs HandCash Connect requests with an auth token. The token never leaves this object
    and is never shown in reprs or errors."""

    __slots__ = ("_key", "clock", "nonces", "public_key")

    def __init__(
        self,
        auth_token: str | Secret[str],
        *,
        clock: Callable[[], datetime] | None = None,
        nonces: Callable[[], str] = random_nonce,
    ) -> None:
        # coincurve is imported here, not with the package: a missing `handcash` extra is a
        # MissingExtra when the method is built, and importing the package stays cheap.
        require_extra("handcash", "HandCashCharge")
        from coincurve import PrivateKey

        token = reveal(auth_token)
        if not isinstance(token, str) or not _HEX_KEY.fullmatch(token):
            raise ValueError("a HandCash auth token is 64 hexadecimal digits")
        try:
            key = PrivateKey(bytes.fromhex(token))
        except ValueError:
            raise ValueError("the HandCash auth token is not a valid secp256k1 key") from None
        # A Secret around the key object: ``also`` names the token so ``scrub`` finds it.
        self._key: Secret[PrivateKey] = Secret(key, also=[token])
        #: Compressed SEC1 public key, 66 hex digits (sent as ``oauth-publickey``).
        self.public_key = key.public_key.format(compressed=True).hex()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.nonces = nonces

    def __repr__(self) -> str:
        return f"ConnectSigner(public_key={self.public_key!r})"

    @property
    def secret(self) -> Secret[PrivateKey]:
        """The auth token as a ``Secret`` (for scrubbing error details; never shown)."""
        return self._key

    def sign(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        now: datetime | None = None,
        nonce: str | None = None,
    ) -> SignedHeaders:
        """Sign one request; ``body`` is the exact bytes that will be sent (``b""`` for GET)."""
        timestamp = js_iso_timestamp(now or self.clock())
        nonce = nonce if nonce is not None else self.nonces()
        digest = hashlib.sha256(signing_payload(method, path, timestamp, body, nonce)).digest()
        # libsecp256k1 signs with RFC 6979 nonces and low-S, like noble-curves in the SDK.
        signature = self._key.reveal().sign(digest, hasher=None).hex()
        return SignedHeaders(self.public_key, timestamp, nonce, signature)
