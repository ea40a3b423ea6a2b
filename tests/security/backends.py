"""Backends that ECHO what they were sent, and backends that are DOWN, as httpx handlers.

A careless or hostile node, proxy or API answers an error whose text repeats the request: its
headers (the macaroon, rune, API key, ``Authorization``, ``app-secret``) and its body. These
fakes do exactly that, in each backend's own error shape, so that the code under test copies
the echo into its messages if it copies error bodies at all. ``down`` raises the transport
errors of a backend that cannot be reached (connect refused) or stops answering (read timeout).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


def echo_text(request: httpx.Request) -> str:
    """Everything the request carried, as a backend echoing it would write it."""
    lines = [f"{request.method} {request.url}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    lines.append(request.content.decode("utf-8", errors="replace"))
    lines.append(json.dumps({"headers": dict(request.headers.items())}))
    return "\n".join(lines)


def down(kind: str) -> Handler:
    """A backend that is down: ``connect`` (refused) or ``read`` (timed out after sending)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if kind == "connect":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        raise httpx.ReadTimeout("The read operation timed out", request=request)

    return handler


def _ndjson(status: int, line: object) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(line).encode() + b"\n",
        headers={"content-type": "application/json"},
    )


def echo_lnd(variant: str) -> Handler:
    """LND's ``{"error": {code, message}}``: ``unknown`` (code 2: outcome unknown) or
    ``refused`` (code 3: refused before paying); the track call echoes too."""
    code = 2 if variant == "unknown" else 3

    def handler(request: httpx.Request) -> httpx.Response:
        return _ndjson(500, {"error": {"code": code, "message": echo_text(request)}})

    return handler


def echo_cln(variant: str) -> Handler:
    """clnrest's ``{"error": {code, message}}``: ``unknown`` (-1), ``refused`` (-32602) or
    ``failed`` (205, confirmed by listpays, which echoes as well)."""
    code = {"unknown": -1, "refused": -32602, "failed": 205}[variant]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"code": code, "message": echo_text(request)}})

    return handler


def echo_phoenixd(variant: str) -> Handler:
    """phoenixd: ``refused`` (a 400 whose text body is the echo) or ``failed`` (200 with a
    ``reason`` echoing the request; the lookup answers 500 with the echo)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if variant == "refused" or request.method == "GET":
            return httpx.Response(400 if request.method == "POST" else 500, text=echo_text(request))
        return httpx.Response(200, json={"reason": echo_text(request)})

    return handler


def echo_lnbits(variant: str) -> Handler:
    """LNbits: ``pending`` (520 ``{"detail", "status": "pending"}``) or ``refused`` (400
    ``{"detail"}``); the lookup echoes in ``detail``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(500, json={"detail": echo_text(request)})
        if variant == "refused":
            return httpx.Response(400, json={"detail": echo_text(request)})
        return httpx.Response(520, json={"detail": echo_text(request), "status": "pending"})

    return handler


def echo_stripe(variant: str) -> Handler:
    """Stripe's ``{"error": {type, code, message}}`` echoing the request (and a request id)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400 if variant == "refused" else 500,
            json={
                "error": {
                    "type": "invalid_request_error",
                    "code": "parameter_invalid",
                    "message": echo_text(request),
                    "param": request.headers.get("authorization", ""),
                }
            },
            headers={"request-id": "req_" + request.headers.get("authorization", "")[-20:]},
        )

    return handler


def echo_handcash(variant: str) -> Handler:
    """HandCash Cloud's ``{"message": ...}``: ``balance`` (the spendable-balance read fails),
    ``refused`` (the pay call answers 400) or ``unknown`` (500)."""

    def handler(request: httpx.Request) -> httpx.Response:
        status = {"balance": 500, "refused": 400, "unknown": 500}[variant]
        return httpx.Response(
            status, json={"message": echo_text(request), "info": echo_text(request)}
        )

    return handler
