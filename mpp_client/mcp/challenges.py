"""MPP over MCP on the wire (protocol README §18): challenges, credentials and receipts as
JSON-RPC carries them, and their HTTP forms for the payment flow.

An MCP challenge is a JSON object whose ``request`` is a native JSON object (not base64url).
The flow reads ``WWW-Authenticate`` challenges, so each MCP challenge is turned into a
``Challenge`` whose ``request`` is ``base64url(JCS(request))`` (what a server hashes), and the
ORIGINAL object is kept: the credential echoes it unchanged. Nothing here imports ``mcp``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol import Challenge, Credential, b64url_encode, canonical_json
from mpp_client.protocol.challenge import challenge_from_params
from mpp_client.protocol.problem import PROBLEM_TYPE_BASE

__all__ = [
    "CREDENTIAL_META_KEY",
    "PAYMENT_REQUIRED_CODE",
    "PAYMENT_REQUIRED_META_KEY",
    "RECEIPT_META_KEY",
    "VERIFICATION_FAILED_CODE",
    "McpChallenges",
    "challenge_header",
    "credential_meta",
    "payment_required_data",
    "problem_body",
    "receipt_header",
]

#: JSON-RPC error code: payment required (``data.challenges`` holds the challenges). MCP also
#: uses -32042 for URL elicitation: only an error whose data carries challenges is a payment.
PAYMENT_REQUIRED_CODE = -32042
#: JSON-RPC error code: the credential was refused; ``data.challenges`` holds fresh ones.
VERIFICATION_FAILED_CODE = -32043
#: JSON-RPC error code for a malformed credential.
INVALID_PARAMS_CODE = -32602
#: JSON-RPC error code for a processor failure (the outcome of the payment is unknown).
INTERNAL_ERROR_CODE = -32603

CREDENTIAL_META_KEY = "org.paymentauth/credential"
RECEIPT_META_KEY = "org.paymentauth/receipt"
PAYMENT_REQUIRED_META_KEY = "org.paymentauth/payment-required"

_TEXT_FIELDS = ("id", "realm", "method", "intent")
_OPTIONAL_TEXT = ("expires", "digest", "description", "header")


def payment_required_data(data: Any) -> Mapping[str, Any] | None:
    """``data`` when it is MPP payment-required data (an object with a non-empty
    ``challenges`` list), else ``None``."""
    if not isinstance(data, Mapping):
        return None
    challenges = data.get("challenges")
    if not isinstance(challenges, list) or not challenges:
        return None
    return data


def challenge_header(obj: Any) -> Challenge | None:
    """The ``Challenge`` (header form) of one MCP challenge object, or ``None`` when it cannot
    be one (missing or mistyped fields, values no header can carry): skipped, never fatal.

    ``request`` may be a native object (the MCP form) or, from lenient servers, the base64url
    text of the header form. A non-string ``opaque`` (pympp sends an object) becomes its JCS
    text: the flow never reads it, and the credential echoes the original object anyway.
    """
    if not isinstance(obj, Mapping):
        return None
    params: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        value = obj.get(name)
        if not isinstance(value, str):
            return None
        params[name] = value
    for name in _OPTIONAL_TEXT:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        params[name] = value
    opaque = obj.get("opaque")
    try:
        if opaque is not None:
            params["opaque"] = opaque if isinstance(opaque, str) else _jcs_text(opaque)
        request = obj.get("request")
        if isinstance(request, Mapping):
            params["request"] = b64url_encode(canonical_json(dict(request)))
        elif isinstance(request, str):
            params["request"] = request
        else:
            return None
        challenge = challenge_from_params(params)
        challenge.to_header()  # values a header cannot carry: skip here, not in the flow
    except (FormatError, ParseError, TypeError, ValueError):
        return None
    return challenge


def _jcs_text(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


@dataclass
class McpChallenges:
    """Every MCP challenge seen during one tool call, by id, as the server sent it."""

    originals: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def headers(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``www-authenticate`` header fields for the challenges in payment-required ``data``
        (remembering each original). Challenges that cannot be read are skipped."""
        fields: list[tuple[str, str]] = []
        raw = data.get("challenges")
        for obj in raw if isinstance(raw, list) else ():
            challenge = challenge_header(obj)
            if challenge is None:
                continue
            self.originals.setdefault(challenge.id, obj)
            fields.append(("www-authenticate", challenge.to_header()))
        return fields

    def original(self, challenge_id: str) -> Mapping[str, Any] | None:
        return self.originals.get(challenge_id)


def credential_meta(original: Mapping[str, Any], credential: Credential) -> dict[str, Any]:
    """The value of ``params._meta["org.paymentauth/credential"]``: the original challenge
    object echoed unchanged, the method's payload, and the payer when known."""
    value: dict[str, Any] = {"challenge": original, "payload": dict(credential.payload)}
    if credential.source is not None:
        value["source"] = credential.source
    return value


def receipt_header(receipt: Any) -> str | None:
    """A ``Payment-Receipt`` field value carrying an MCP receipt object unchanged (the flow
    parses and checks it like an HTTP one), or ``None`` when there is no receipt object."""
    if not isinstance(receipt, Mapping):
        return None
    try:
        text = json.dumps(dict(receipt), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return b64url_encode(text.encode("utf-8"))


def problem_body(
    kind: str,
    status: int,
    *,
    detail: str | None = None,
    problem: Any = None,
    challenge_ids: Sequence[str] | Iterable[str] = (),
) -> bytes:
    """An RFC 9457 body for the flow: the server's own ``problem`` when it sent one, else one
    of type ``kind`` (a core type name such as ``verification-failed``)."""
    if isinstance(problem, Mapping) and isinstance(problem.get("type"), str):
        document: dict[str, Any] = dict(problem)
    else:
        document = {"type": PROBLEM_TYPE_BASE + kind, "title": kind, "status": status}
        if detail:
            document["detail"] = detail
        ids = list(challenge_ids)
        if ids:
            document["challengeId"] = ids[0]
    try:
        return json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    except (TypeError, ValueError):
        return b""
