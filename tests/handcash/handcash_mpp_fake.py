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

Like handcash-mpp's gate, the paid route reads ``Authorization: Bearer`` BEFORE
``x-handcash-receipt``, and compares the receipt's ``m``/``p`` claims with the method and the
path it sees: with ``mount`` set (e.g. ``"/shop"``) the app is mounted below that prefix and
sees (and binds) paths without it, as a mounted Express router does.

Hosted pay (``fulfillment="hosted_pay"`` with a fake HandCash ``cloud``): each 402 registers a
payment request in the cloud; when a (simulated) person pays it, the cloud's webhook callback
mints the receipt, which ``GET /api/receipt?paymentRequestId=`` then returns as ``{ready: true,
receiptJwt}`` (404 ``{ready: false}`` before).
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
from starlette.routing import Mount, Route

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
    cloud: Any = None
    mount: str = ""
    #: payment request id -> (challenge id, method, path, receipt JWT once paid)
    hosted: dict[str, list[Any]] = field(default_factory=dict)
    receipt_polls: list[str] = field(default_factory=list)
    _jti: set[str] = field(default_factory=set)
    _lock: Any = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        routes: list[Any] = [
            Route("/paid", self._paid, methods=["GET", "POST"]),
            Route("/paid/", self._paid, methods=["GET", "POST"]),
            Route("/api/connect-pay", self._connect_pay, methods=["POST"]),
            Route("/api/receipt", self._receipt, methods=["GET"]),
        ]
        if self.mount:
            return Starlette(routes=[Mount(self.mount, routes=routes)])
        return Starlette(routes=routes)

    def _path(self, request: Request) -> str:
        # What a mounted app sees: the path below its mount point.
        return request.url.path.removeprefix(self.mount) or "/"

    def _hosted_paid(self, request_id: str, txid: str) -> None:
        """The HandCash webhook: the payment request was paid; mint its receipt."""
        with self._lock:
            entry = self.hosted[request_id]
            entry[3] = self._jwt(
                {
                    "iss": "handcash-mpp",
                    "aud": "handcash-machine-payment",
                    "jti": secrets.token_hex(8),
                    "exp": int(time.time()) + 120,
                    "ch": entry[0],
                    "m": entry[1],
                    "p": entry[2],
                    "tid": txid,
                    "pr": request_id,
                }
            )

    async def _receipt(self, request: Request) -> Response:
        request_id = request.query_params.get("paymentRequestId", "")
        with self._lock:
            self.receipt_polls.append(request_id)
            entry = self.hosted.get(request_id)
            jwt = entry[3] if entry is not None else None
        if jwt is None:
            return JSONResponse({"ready": False}, status_code=404)
        return JSONResponse({"ready": True, "receiptJwt": jwt})

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
        # handcash-mpp's gate: a Bearer token first, then the receipt header.
        authorization = request.headers.get("authorization", "")
        bearer = authorization[7:] if authorization[:7].lower() == "bearer " else None
        receipt = request.headers.get("x-handcash-receipt")
        if receipt is not None and bearer is not None:
            receipt = bearer  # the conflict: the Bearer token wins over the receipt header
        elif bearer is not None and self._verify(bearer) is not None:
            receipt = bearer
        # (A Bearer that is no receipt, alone, is the caller's own: the request is unpaid.)
        path = self._path(request)
        with self._lock:
            if receipt is not None:
                self.retries.append(dict(request.headers))
                claims = self._verify(receipt)
                if claims is None:
                    return JSONResponse({"error": "invalid_token"}, status_code=401)
                if claims["m"] != request.method or claims["p"] != path:
                    return JSONResponse({"error": "wrong_resource"}, status_code=401)
                if claims["jti"] in self._jti:
                    return JSONResponse({"error": "replay"}, status_code=401)
                self._jti.add(claims["jti"])
                return JSONResponse({"data": "paid content", "tid": claims.get("tid")})
            challenge_id = secrets.token_urlsafe(12)
            self.issued[challenge_id] = (request.method, path)
            request_id = "pr_" + challenge_id
            if self.fulfillment == "hosted_pay":
                self.hosted[request_id] = [challenge_id, request.method, path, None]
        if self.fulfillment == "hosted_pay" and self.cloud is not None:
            amount = self.price_usd or self.charge_usd
            self.cloud.create_payment_request(request_id, amount, self._hosted_paid)
        binding = hmac.new(
            SECRET, f"{challenge_id}|{request.method}|{path}".encode(), "sha256"
        ).hexdigest()
        body: dict[str, Any] = {
            "type": "https://paymentauth.org/problems/payment-required",
            "title": "Payment Required",
            "status": 402,
            "detail": "Pay with HandCash to access this resource.",
            "challengeId": challenge_id,
            "handcash": {
                "fulfillment": self.fulfillment,
                "paymentRequestId": request_id,
                "paymentRequestUrl": f"https://handcash.io/payment-request/{request_id}",
                "paymentRequestQrCodeUrl": f"https://pay.handcash.io/qr/{request_id}.png",
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
