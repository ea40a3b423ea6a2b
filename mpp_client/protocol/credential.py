"""Payment credentials: ``Authorization: Payment <base64url(JSON)>`` (protocol README §5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol.base64url import b64url_encode, decode_json_object
from mpp_client.protocol.challenge import Challenge, challenge_from_params

__all__ = ["MAX_CREDENTIAL_LENGTH", "Credential", "parse_credential"]

# A credential echoes its challenge, whose request alone may reach 16 KiB; mppx and pympp
# accept credential headers up to 64 KiB.
MAX_CREDENTIAL_LENGTH = 64 * 1024

_ECHO_FIELDS = (
    "id",
    "realm",
    "method",
    "intent",
    "request",
    "expires",
    "digest",
    "opaque",
    "description",
    "header",
)


def _plain_json(value: object) -> object:
    # Payloads may be read-only mappings (MappingProxyType, frozen dicts): write them as objects.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain_json
)


@dataclass(frozen=True, slots=True)
class Credential:
    """The proof of payment for one challenge.

    ``payload`` is the method-specific proof (a signed transaction, a preimage, a token): it is
    a bearer secret and is left out of ``repr``. ``source`` identifies the payer, usually a DID
    (``did:pkh:eip155:<chainId>:<address>``).
    """

    challenge: Challenge
    payload: Mapping[str, Any] = field(repr=False, hash=False)
    source: str | None = None

    def encode(self) -> str:
        """The base64url token: the JSON ``{"challenge": echo, "payload": ..., "source": ...}``.

        Raises :class:`~mpp_client.errors.FormatError` when the payload is not JSON-writable.
        """
        document: dict[str, Any] = {"challenge": self.challenge.echo(), "payload": self.payload}
        if self.source is not None:
            document["source"] = self.source
        try:
            raw = _ENCODER.encode(document).encode("utf-8")
        except (TypeError, ValueError):
            # The message would name payload contents; keep it generic.
            raise FormatError("credential payload cannot be written as JSON") from None
        return b64url_encode(raw)

    def to_header(self) -> str:
        """The ``Authorization`` (or ``challenge.header``) field value: ``Payment <token>``."""
        return "Payment " + self.encode()


def parse_credential(value: str) -> Credential:
    """Parse a full credential field value (``Payment <token>``), e.g. on a test server.

    Raises :class:`~mpp_client.errors.ParseError` (``EncodingError`` for bad base64url or JSON)
    for another scheme, a missing token, a non-object JSON value, a missing or malformed
    challenge echo, or a payload that is not an object. Messages never quote the token.
    """
    text = value.strip(" \t")
    scheme, _, token = text.partition(" ")
    if scheme.lower() != "payment":
        raise ParseError("not a Payment credential")
    token = token.strip(" \t")
    if not token:
        raise ParseError("Payment credential has no token")
    if len(token) > MAX_CREDENTIAL_LENGTH:
        raise ParseError("Payment credential is longer than 64 KiB")
    document = decode_json_object(token, "credential")
    echo = document.get("challenge")
    if type(echo) is not dict:
        raise ParseError("credential has no challenge object")
    params: dict[str, str] = {}
    for name in _ECHO_FIELDS:
        item = echo.get(name)
        if item is None:
            continue
        if type(item) is not str:
            raise ParseError(f"credential challenge {name} is not a string")
        params[name] = item
    challenge = challenge_from_params(params)
    payload = document.get("payload")
    if type(payload) is not dict:
        raise ParseError("credential payload is not a JSON object")
    source = document.get("source")
    if source is not None and type(source) is not str:
        raise ParseError("credential source is not a string")
    return Credential(challenge, payload, source)
