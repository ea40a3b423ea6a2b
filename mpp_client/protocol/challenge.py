"""Payment challenges: the ``WWW-Authenticate: Payment ...`` a server sends with a 402."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol.auth_params import has_unsafe_character, is_token, quote, scan
from mpp_client.protocol.base64url import b64url_encode, decode_json_object
from mpp_client.protocol.jcs import canonical_json
from mpp_client.protocol.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "MAX_REQUEST_LENGTH",
    "Challenge",
    "challenge_from_params",
    "compute_challenge_id",
    "parse_challenge",
    "parse_challenges",
]

# mppx refuses a request parameter longer than 16 KiB; a challenge no reference client accepts
# is not worth decoding.
MAX_REQUEST_LENGTH = 16 * 1024
# HMAC secrets shorter than this are refused (conformance vector error_weak_secret_key).
MIN_SECRET_LENGTH = 32

# mppx's method-name syntax (the spec says 1*LOWERALPHA; digits, ':', '_' and '-' are SDK drift).
_METHOD = re.compile(r"[a-z][a-z0-9:_-]*").fullmatch
_DEFAULT_CREDENTIAL_HEADER = "authorization"
# Parameters whose values are free text (the others are tokens, base64url or timestamps).
_FREE_TEXT = ("id", "realm", "digest", "description", "opaque")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``Payment`` challenge, as the server sent it.

    Every field is the text from the wire, unescaped. ``request`` is the base64url text exactly
    as received: it is echoed verbatim in the credential and never re-encoded (re-encoding would
    break the server's HMAC when its JSON was not canonical). ``request_data`` is that text
    decoded into a JSON object; amounts in it are decimal strings of base units (e.g.
    ``"1000000"`` for 1 USDC with 6 decimals). ``expires`` is the RFC 3339 text (validated when
    parsed), ``header`` names the request header the credential must travel in when it is not
    ``Authorization``.
    """

    id: str
    realm: str
    method: str
    intent: str
    request: str
    request_data: Mapping[str, Any] = field(compare=False)
    expires: str | None = None
    digest: str | None = None
    description: str | None = None
    opaque: str | None = None
    header: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        """``expires`` as a timezone-aware UTC datetime, or None when the challenge has none."""
        return None if self.expires is None else parse_timestamp(self.expires)

    def echo(self) -> dict[str, str]:
        """The challenge object a credential carries: every parameter that was present."""
        echo = {
            "id": self.id,
            "realm": self.realm,
            "method": self.method,
            "intent": self.intent,
            "request": self.request,
        }
        if self.expires is not None:
            echo["expires"] = self.expires
        if self.digest is not None:
            echo["digest"] = self.digest
        if self.opaque is not None:
            echo["opaque"] = self.opaque
        if self.description is not None:
            echo["description"] = self.description
        if self.header is not None:
            echo["header"] = self.header
        return echo

    def to_header(self) -> str:
        """Format as a ``WWW-Authenticate`` field value (``Payment id="...", ...``).

        Raises :class:`~mpp_client.errors.FormatError` for values that cannot be sent: CR, LF or
        other control characters, an empty id, a malformed method or a non-token header name.
        """
        _check_writable(self.id, self.method, self.intent, self.header)
        parts = [
            f"id={quote(self.id, 'id')}",
            f"realm={quote(self.realm, 'realm')}",
            f"method={quote(self.method, 'method')}",
            f"intent={quote(self.intent, 'intent')}",
            f"request={quote(self.request, 'request')}",
        ]
        for name, value in (
            ("description", self.description),
            ("digest", self.digest),
            ("expires", self.expires),
            ("opaque", self.opaque),
            ("header", self.header),
        ):
            if value is not None:
                parts.append(f"{name}={quote(value, name)}")
        return "Payment " + ", ".join(parts)

    @classmethod
    def create(
        cls,
        *,
        id: str,
        realm: str,
        method: str,
        intent: str,
        request: Mapping[str, Any],
        expires: str | datetime | None = None,
        digest: str | None = None,
        description: str | None = None,
        opaque: str | None = None,
        header: str | None = None,
    ) -> Challenge:
        """Build a challenge (server side, tests), encoding ``request`` as base64url(JCS).

        ``expires`` may be RFC 3339 text or an aware datetime. Raises
        :class:`~mpp_client.errors.FormatError` for values a client would refuse.
        """
        encoded = b64url_encode(canonical_json(request))
        if isinstance(expires, datetime):
            expires = format_timestamp(expires)
        elif expires is not None:
            try:
                parse_timestamp(expires)
            except ParseError:
                raise FormatError("expires is not an RFC 3339 timestamp") from None
        _check_writable(id, method, intent, header)
        return cls(
            id=id,
            realm=realm,
            method=method,
            intent=intent,
            request=encoded,
            request_data=decode_json_object(encoded, "challenge request"),
            expires=expires,
            digest=digest,
            description=description,
            opaque=opaque,
            header=header,
        )


_NEW = object.__new__
# Challenge has slots and no __post_init__: setting every field is all its __init__ does. The
# unpacking fails at import if a field is added without a setter here.
(
    _SET_ID,
    _SET_REALM,
    _SET_METHOD,
    _SET_INTENT,
    _SET_REQUEST,
    _SET_REQUEST_DATA,
    _SET_EXPIRES,
    _SET_DIGEST,
    _SET_DESCRIPTION,
    _SET_OPAQUE,
    _SET_HEADER,
) = (getattr(Challenge, f.name).__set__ for f in fields(Challenge))


def _check_writable(id_: str, method: str, intent: str, header: str | None) -> None:
    if not id_:
        raise FormatError("challenge id is empty")
    if _METHOD(method) is None:
        raise FormatError("challenge method must match ^[a-z][a-z0-9:_-]*$")
    if not is_token(intent):
        raise FormatError("challenge intent must be an HTTP token")
    if header is not None and not is_token(header):
        raise FormatError("challenge header must be an HTTP header name")


def challenge_from_params(params: Mapping[str, str]) -> Challenge:
    """Validate scanned parameters (lower-cased names, unescaped values) into a Challenge.

    Raises :class:`~mpp_client.errors.ParseError` when a required parameter is missing or a
    value breaks the rules of protocol README §2, §3 and §10.
    """
    return _from_params(params, scanned=False)


def _from_params(params: Mapping[str, str], *, scanned: bool) -> Challenge:
    # scanned: the values come from auth_params.scan, which already marked every challenge
    # holding an unsafe character defective (parse_challenges skips those), so the per-value
    # search below would only repeat it.
    try:
        id_ = params["id"]
        realm = params["realm"]
        method = params["method"]
        intent = params["intent"]
        request = params["request"]
    except KeyError as missing:
        raise ParseError(f"challenge has no {missing.args[0]} parameter") from None
    if not id_:
        raise ParseError("challenge id is empty")
    # The scanner refuses these characters in headers already; a credential's echo arrives as
    # JSON, which can carry anything, and must not yield a challenge that cannot be written.
    for name in () if scanned else _FREE_TEXT:
        value = params.get(name)
        if value is not None and has_unsafe_character(value):
            raise ParseError(
                f"challenge {name} contains a control character, a bidi control or a lone surrogate"
            )
    if _METHOD(method) is None:
        raise ParseError("challenge method must match ^[a-z][a-z0-9:_-]*$")
    if not is_token(intent):
        raise ParseError("challenge intent is not an HTTP token")
    if len(request) > MAX_REQUEST_LENGTH:
        raise ParseError("challenge request is longer than 16 KiB")
    data = decode_json_object(request, "challenge request")
    expires = params.get("expires")
    if expires is not None:
        parse_timestamp(expires)
    header = params.get("header")
    if header is not None and not is_token(header):
        raise ParseError("challenge header is not an HTTP header name")
    # The frozen dataclass's __init__ sets each field through object.__setattr__ (~0.3 us a
    # field); the slot descriptors set the same fields at a third of the cost.
    challenge = _NEW(Challenge)
    _SET_ID(challenge, id_)
    _SET_REALM(challenge, realm)
    _SET_METHOD(challenge, method)
    _SET_INTENT(challenge, intent)
    _SET_REQUEST(challenge, request)
    _SET_REQUEST_DATA(challenge, data)
    _SET_EXPIRES(challenge, expires)
    _SET_DIGEST(challenge, params.get("digest"))
    _SET_DESCRIPTION(challenge, params.get("description"))
    _SET_OPAQUE(challenge, params.get("opaque"))
    _SET_HEADER(challenge, header)
    return challenge


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every usable ``Payment`` challenge in a list of ``WWW-Authenticate`` field values.

    Pass every field (``response.headers.get_list("www-authenticate")``); each may fold several
    challenges of several schemes. Other schemes and malformed Payment challenges are skipped,
    never fatal. Server order is kept. Linear time in the total length.
    """
    if isinstance(values, str):
        values = (values,)
    challenges: list[Challenge] = []
    for value in values:
        for raw in scan(value):
            if raw.scheme != "payment" or raw.defect is not None:
                continue
            try:
                challenges.append(_from_params(raw.params, scanned=True))
            except ParseError:
                continue
    return challenges


def parse_challenge(value: str) -> Challenge:
    """Parse a field value holding exactly one ``Payment`` challenge.

    Raises :class:`~mpp_client.errors.ParseError` (or its subclass ``EncodingError`` for a bad
    ``request``) when the value is empty, holds another scheme or several challenges, or the
    challenge is malformed.
    """
    raws = scan(value)
    if not raws:
        raise ParseError("no challenge in the header value")
    if len(raws) > 1:
        raise ParseError(f"expected one challenge, found {len(raws)}")
    raw = raws[0]
    if raw.scheme != "payment":
        raise ParseError("not a Payment challenge")
    if raw.defect is not None:
        raise ParseError(f"malformed Payment challenge: {raw.defect}")
    return _from_params(raw.params, scanned=True)


def compute_challenge_id(
    secret: bytes,
    *,
    realm: str,
    method: str,
    intent: str,
    request: str,
    expires: str | None = None,
    digest: str | None = None,
    opaque: str | None = None,
    header: str | None = None,
) -> str:
    """The HMAC-bound challenge id a stateless server issues (server side, fake servers).

    ``base64url(HMAC-SHA256(secret, realm|method|intent|request|expires|digest|[header|]opaque))``
    where ``request`` is the base64url text, absent optionals are empty, and ``header`` appears
    only when it names a header other than ``Authorization``. ``description`` is not bound.
    Raises :class:`~mpp_client.errors.FormatError` for a secret shorter than 32 bytes.
    """
    if len(secret) < MIN_SECRET_LENGTH:
        raise FormatError("challenge id secret must be at least 32 bytes")
    parts = [realm, method, intent, request, expires or "", digest or ""]
    if header and header.lower() != _DEFAULT_CREDENTIAL_HEADER:
        parts.append(header)
    parts.append(opaque or "")
    mac = hmac.new(secret, "|".join(parts).encode("utf-8"), hashlib.sha256).digest()
    return b64url_encode(mac)
