"""A fake ``handcash-mpp`` style server (GenericCPU/handcash-mpp wire format; not MPP).

``GET|POST /paid`` answers 402 with a JSON body ``{type, title, status, detail, challengeId,
handcash: {fulfillment, paymentRequestId, paymentRequestUrl, challengeBinding}}`` (plus
``payAmountUsd`` when ``price_usd`` is set, like the demo server). ``POST /api/connect-pay``
takes ``{authToken, challengeId}``, "pulls" the price from the payer's wallet and answers
``{ok, receiptJwt, transactionId, fulfillment}``. The paid retry carries the HS256 receipt JWT
in ``x-handcash-receipt``; bad receipts get 401 ``{error: invalid_token|wrong_resource|replay}``.

Like the handcash-mpp demo, connect-pay answers 404 for an unknown challenge and 400
``{ok: false, error}`` for any ``Connect.pay`` error; ``fail_after_pull`` makes it pull the
money and then answer 400 (an upstream timeout after the debit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = b"handcash-mpp-fake-server-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeHandCashMppServer:
    merchant_token: str
    fulfillment: str = "connect"
    price_usd: str | None = None
    #: What one pull takes from the wallet (US dollars) when no price is advertised.
    charge_usd: str = "0.05"
    fail_after_pull: bool = False
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)
    connect_calls: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[str] = field(default_factory=list)
    retries: list[dict[str, str]] = field(default_factory=list)
    _jti: set[str] = field(default_factory=set)
    _lock: Any = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/paid", self._paid, methods=["GET", "POST"]),
                Route("/api/connect-pay", self._connect_pay, methods=["POST"]),
            ]
        )

    def _jwt(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        mac = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(mac)}"

    def _verify(self, token: str) -> dict[str, Any] | None:
        try:
            header, payload, signature = token.split(".")
            mac = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), mac):
                return None
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if claims.get("iss") != "handcash-mpp" or claims.get("aud") != ("handcash-machine-payment"):
            return None
        if claims.get("exp", 0) < time.time():
            return None
        return claims if isinstance(claims, dict) else None

    async def _paid(self, request: Request) -> Response:
        receipt = request.headers.get("x-handcash-receipt")
        with self._lock:
            if receipt is not None:
                self.retries.append(dict(request.headers))
                claims = self._verify(receipt)
                if claims is None:
                    return JSONResponse({"error": "invalid_token"}, status_code=401)
                if claims["m"] != request.method or claims["p"] != request.url.path:
                    return JSONResponse({"error": "wrong_resource"}, status_code=401)
                if claims["jti"] in self._jti:
                    return JSONResponse({"error": "replay"}, status_code=401)
                self._jti.add(claims["jti"])
                return JSONResponse({"data": "paid content", "tid": claims.get("tid")})
            challenge_id = secrets.token_urlsafe(12)
            self.issued[challenge_id] = (request.method, request.url.path)
        binding = hmac.new(
            SECRET, f"{challenge_id}|{request.method}|{request.url.path}".encode(), "sha256"
        ).hexdigest()
        body: dict[str, Any] = {
            "type": "https://paymentauth.org/problems/payment-required",
            "title": "Payment Required",
            "status": 402,
            "detail": "Pay with HandCash to access this resource.",
            "challengeId": challenge_id,
            "handcash": {
                "fulfillment": self.fulfillment,
                "paymentRequestId": "pr_" + challenge_id,
                "paymentRequestUrl": f"https://handcash.io/payment-request/pr_{challenge_id}",
                "challengeBinding": binding,
            },
        }
        if self.price_usd is not None:
            body["payAmountUsd"] = json.loads(self.price_usd)
            body["payAmountCurrency"] = "USD"
        return JSONResponse(body, status_code=402)

    async def _connect_pay(self, request: Request) -> Response:
        data = await request.json()
        with self._lock:
            self.connect_calls.append(data)
            issued = self.issued.pop(data.get("challengeId"), None)
            if issued is None:
                return JSONResponse({"error": "No pending challenge"}, status_code=404)
            if data.get("authToken") != self.merchant_token:
                # Connect.pay fails with a token of another app: handcash-mpp answers 400.
                return JSONResponse({"ok": False, "error": "unauthorized"}, status_code=400)
            self.pulls.append(self.price_usd or self.charge_usd)
            if self.fail_after_pull:
                return JSONResponse({"ok": False, "error": "Request timed out"}, status_code=400)
            txid = secrets.token_hex(32)
            claims = {
                "iss": "handcash-mpp",
                "aud": "handcash-machine-payment",
                "jti": secrets.token_hex(8),
                "exp": int(time.time()) + 120,
                "ch": data["challengeId"],
                "m": issued[0],
                "p": issued[1],
                "tid": txid,
            }
        return JSONResponse(
            {
                "ok": True,
                "receiptJwt": self._jwt(claims),
                "transactionId": txid,
                "fulfillment": "connect",
            }
        )
