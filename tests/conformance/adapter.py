#!/usr/bin/env python3
"""mpp_client's adapter for the MPP conformance suite (protocol README §22).

Reads one JSON request on stdin, ``{"schema": 1, "op": ..., "input": ..., "context"?: ...}``,
and prints one JSON response: ``{"ok": true, "value": ...}`` or
``{"ok": false, "error": {"type": ..., "message": ...}}``. Canonical values follow the suite:
``request`` is the decoded JSON object, absent optionals are omitted, timestamps end in ``Z``.

Run from anywhere; the repository root is put on ``sys.path`` so no install is needed.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_ROOT))


def _read_request() -> Any:
    try:
        return json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        return error


def _load_protocol_only() -> None:
    """Make ``import mpp_client.protocol`` skip ``mpp_client/__init__.py``.

    The package's ``__init__`` imports the HTTP drivers (httpx), which costs ~90 ms per
    process; the codec operations need only the pure protocol layer, and the suite starts one
    process per operation. A bare package module with the right ``__path__`` loads the very
    same submodules.
    """
    if "mpp_client" not in sys.modules:
        package = types.ModuleType("mpp_client")
        package.__path__ = [str(_ROOT / "mpp_client")]
        sys.modules["mpp_client"] = package


_REQUEST: Any = _read_request() if __name__ == "__main__" else None
if isinstance(_REQUEST, dict) and _REQUEST.get("op") != "http.payment_request":
    _load_protocol_only()

from mpp_client.errors import EncodingError, FormatError, ParseError  # noqa: E402
from mpp_client.protocol import (  # noqa: E402
    Challenge,
    Credential,
    Receipt,
    b64url_decode,
    b64url_encode,
    canonical_json,
    compute_challenge_id,
    format_timestamp,
    parse_challenge,
    parse_credential,
    parse_receipt,
)


class AdapterError(Exception):
    """An error with a conformance error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_OPTIONAL_CHALLENGE_FIELDS = ("expires", "digest", "opaque", "description", "header")


def _canonical_challenge(challenge: Challenge) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": challenge.id,
        "realm": challenge.realm,
        "method": challenge.method,
        "intent": challenge.intent,
        "request": dict(challenge.request_data),
    }
    for name in _OPTIONAL_CHALLENGE_FIELDS:
        item = getattr(challenge, name)
        if item is not None:
            value[name] = item
    if challenge.expires is not None and not challenge.expires.endswith("Z"):
        expires_at = challenge.expires_at
        assert expires_at is not None
        value["expires"] = format_timestamp(expires_at)
    return value


def _text(document: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise AdapterError("format_error", f"{name} must be a string")
    return value


def _challenge_from_object(document: Any) -> Challenge:
    if not isinstance(document, dict):
        raise AdapterError("format_error", "challenge must be an object")
    request = document.get("request")
    if not isinstance(request, dict):
        raise AdapterError("format_error", "challenge request must be an object")
    return Challenge.create(
        id=_text(document, "id") or "",
        realm=_text(document, "realm") or "",
        method=_text(document, "method") or "",
        intent=_text(document, "intent") or "",
        request=request,
        expires=_text(document, "expires", required=False),
        digest=_text(document, "digest", required=False),
        description=_text(document, "description", required=False),
        opaque=_text(document, "opaque", required=False),
        header=_text(document, "header", required=False),
    )


def _header(document: Any) -> str:
    if not isinstance(document, dict) or not isinstance(document.get("header"), str):
        raise AdapterError("parse_error", "input must be {header: string}")
    return str(document["header"])


def _text_input(document: Any) -> str:
    if not isinstance(document, dict) or not isinstance(document.get("text"), str):
        raise AdapterError("encoding_error", "input must be {text: string}")
    return str(document["text"])


# --- operations ---------------------------------------------------------------------------------


def _challenge_parse(document: Any) -> Any:
    return _canonical_challenge(parse_challenge(_header(document)))


def _challenge_format(document: Any) -> Any:
    return {"header": _challenge_from_object(document).to_header()}


def _credential_parse(document: Any) -> Any:
    credential = parse_credential(_header(document))
    value: dict[str, Any] = {
        "challenge": _canonical_challenge(credential.challenge),
        "payload": dict(credential.payload),
    }
    if credential.source is not None:
        value["source"] = credential.source
    return value


def _credential_format(document: Any) -> Any:
    if not isinstance(document, dict):
        raise AdapterError("format_error", "credential must be an object")
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise AdapterError("format_error", "credential payload must be an object")
    source = document.get("source")
    if source is not None and not isinstance(source, str):
        raise AdapterError("format_error", "mpp_client writes string sources only")
    challenge = _challenge_from_object(document.get("challenge"))
    return {"header": Credential(challenge, payload, source).to_header()}


def _receipt_parse(document: Any) -> Any:
    receipt = parse_receipt(_header(document))
    value: dict[str, Any] = {
        "status": receipt.status,
        "method": receipt.method,
        "timestamp": receipt.timestamp,
        "reference": receipt.reference,
    }
    if not receipt.timestamp.endswith("Z"):
        value["timestamp"] = format_timestamp(receipt.timestamp_at)
    extra = dict(receipt.extra)
    if isinstance(extra.get("externalId"), str):
        value["externalId"] = extra.pop("externalId")
    if receipt.challenge_id is not None:
        extra["challengeId"] = receipt.challenge_id
    if extra:
        value["extra"] = extra
    return value


def _receipt_format(document: Any) -> Any:
    if not isinstance(document, dict):
        raise AdapterError("format_error", "receipt must be an object")
    extra = dict(document.get("extra") or {})
    if "externalId" in document:
        extra["externalId"] = document["externalId"]
    challenge_id = extra.pop("challengeId", None)
    receipt = Receipt(
        status=_text(document, "status") or "",
        method=_text(document, "method") or "",
        timestamp=_text(document, "timestamp") or "",
        reference=_text(document, "reference") or "",
        challenge_id=challenge_id if isinstance(challenge_id, str) else None,
        extra=extra,
    )
    return {"header": receipt.encode()}


def _base64url_encode(document: Any) -> Any:
    return {"text": b64url_encode(_text_input(document).encode("utf-8"))}


def _base64url_decode(document: Any) -> Any:
    raw = b64url_decode(_text_input(document))
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        raise AdapterError("encoding_error", "decoded bytes are not UTF-8") from None


def _challenge_id(document: Any) -> Any:
    if not isinstance(document, dict) or not isinstance(document.get("request"), dict):
        raise AdapterError("generation_error", "input must carry a request object")
    secret = _text(document, "secretKey") or ""
    try:
        request = b64url_encode(canonical_json(document["request"]))
        value = compute_challenge_id(
            secret.encode("utf-8"),
            realm=_text(document, "realm") or "",
            method=_text(document, "method") or "",
            intent=_text(document, "intent") or "",
            request=request,
            expires=_text(document, "expires", required=False),
            digest=_text(document, "digest", required=False),
            opaque=_text(document, "opaque", required=False),
            header=_text(document, "header", required=False),
        )
    except (FormatError, AdapterError) as error:
        raise AdapterError("generation_error", str(error)) from None
    return {"id": value}


def _http_payment_request(document: Any) -> Any:
    """``http.payment_request``: one request through the real ``PaymentTransport``.

    ``mode: "payment"`` pays the first challenge with the fixed payload the case gives (a
    method that accepts any ``method``/``intent``); ``"plain"`` never pays. The other modes
    tamper with credentials to test servers, which a client never does.
    """
    import httpx

    from mpp_client import MppError, PaymentOptions, PaymentTransport
    from mpp_client.guard import OpenGuard
    from mpp_client.methods.base import PaymentContext, Quote
    from mpp_client.testing import TestMethod

    if not isinstance(document, dict):
        raise AdapterError("unknown_error", "input must be an object")
    mode = document.get("mode")
    if mode not in ("payment", "plain"):
        raise AdapterError("unsupported_operation", f"mode {mode!r} tampers with credentials")
    payment = document.get("payment") or {}

    class AnyChallenge(TestMethod):
        def can_pay(self, challenge: Any) -> bool:
            return True

        def quote(self, challenge: Any, context: PaymentContext) -> Quote:
            self.name = challenge.method
            return super().quote(challenge, context)

    method = AnyChallenge(payload=payment.get("payload") or {})
    transport = PaymentTransport(methods=[method], guard=OpenGuard())
    options = PaymentOptions(never_pay=mode == "plain")
    body = document.get("body")
    with httpx.Client(transport=transport, follow_redirects=True, timeout=30) as client:
        try:
            response = client.request(
                document.get("method", "GET"),
                document["url"],
                headers=document.get("headers") or {},
                content=body.encode() if isinstance(body, str) else None,
                extensions={"mpp": options},
            )
        except MppError as error:
            raise AdapterError("http_error", str(error)) from error
        except httpx.HTTPError as error:
            raise AdapterError("http_error", f"{type(error).__name__}: {error}") from error
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return {"status": response.status_code, "headers": headers, "body": response.text}


OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "challenge.parse": _challenge_parse,
    "challenge.format": _challenge_format,
    "credential.parse": _credential_parse,
    "credential.format": _credential_format,
    "receipt.parse": _receipt_parse,
    "receipt.format": _receipt_format,
    "base64url.encode": _base64url_encode,
    "base64url.decode": _base64url_decode,
    "challenge.id": _challenge_id,
    "http.payment_request": _http_payment_request,
}


def handle(request: Any) -> dict[str, Any]:
    """Answer one adapter request (a decoded JSON value) with a response object."""
    if not isinstance(request, dict) or request.get("schema") != 1 or "input" not in request:
        return _error("unknown_error", "request must be {schema: 1, op, input}")
    operation = OPERATIONS.get(str(request.get("op")))
    if operation is None:
        return _error("unsupported_operation", f"operation {request.get('op')!r} is not supported")
    try:
        return {"ok": True, "value": operation(request["input"])}
    except AdapterError as error:
        return _error(error.kind, str(error))
    except EncodingError as error:
        # Inside a header, bad base64url/JSON is a parse failure of that header.
        kind = "encoding_error" if request["op"].startswith("base64url.") else "parse_error"
        return _error(kind, str(error))
    except ParseError as error:
        return _error("parse_error", str(error))
    except FormatError as error:
        return _error("format_error", str(error))
    except Exception as error:  # the suite wants a typed answer, never a traceback
        return _error("unknown_error", f"{type(error).__name__}: {error}")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": message}}


def main() -> int:
    if isinstance(_REQUEST, Exception):
        response = _error("unknown_error", f"request is not JSON: {_REQUEST}")
    else:
        response = handle(_REQUEST)
    sys.stdout.write(json.dumps(response) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
