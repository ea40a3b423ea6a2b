"""A fake HandCash Cloud (Connect v3) that checks what a client sends the way HandCash does.

It verifies the ``app-id``/``app-secret`` headers, the ``oauth-*`` request signature with the
``cryptography`` package (not the coincurve code under test) over
``METHOD\\nPATH\\nTIMESTAMP\\nBODY\\nNONCE``, the timestamp's skew, nonce reuse, and the pay
body (instrument, denomination, positive receivers), and it enforces each user's per-app
spending limit. Answers use the documented shapes (``WalletTransactionRecordSchema``,
``WalletSpendableBalancesSchema``); errors are ``{"message": ...}``.

Failure knobs: ``fail_pay_with`` refuses a pay request before debiting (``fail_pay_text``:
with a non-JSON body, as a proxy in between would); ``debit_then_fail_with`` debits the wallet
and then answers that status (an upstream timeout after the payment); ``drop_transaction_id``
debits and answers 200 without the id; ``pay_delay`` debits, then stalls the answer.

Hosted payment requests: a merchant (the handcash-mpp fake) registers one with
``create_payment_request``; a simulated person pays it with ``complete_payment_request``
(called by the test, e.g. from the wallet's approval hook), or a business wallet pays it with
the signed ``POST /v3/wallet/transactions/send/paymentRequest {paymentRequestId}`` (the shape
of the legacy SDK's ``payPaymentRequest``; the live service's behaviour is unverified). Either
way the merchant's ``on_paid`` callback stands in for HandCash's webhook. ``mount`` serves the
whole API below a path prefix (a proxy), which the signature then covers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

APP_ID = "fake-app-id"
APP_SECRET = "fake-app-secret-value"


@dataclass
class Payment:
    transaction_id: str
    public_key: str
    body: dict[str, Any]
    total: Decimal


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class FakeHandCashCloud:
    """``limits`` maps a user's public key (hex) to what its app may still spend, in USD."""

    limits: dict[str, Decimal] = field(default_factory=dict)
    skew: timedelta = timedelta(minutes=5)
    fail_pay_with: int | None = None
    fail_pay_text: bool = False
    debit_then_fail_with: int | None = None
    #: Extra fields of the error answer of ``debit_then_fail_with`` (not a documented shape).
    debit_then_fail_body: dict[str, Any] = field(default_factory=dict)
    drop_transaction_id: bool = False
    pay_delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    payments: dict[str, Payment] = field(default_factory=dict)
    #: payment request id -> {"amount_usd", "paid_by", "transaction_id", "on_paid"}
    payment_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Serve the API below this prefix (e.g. ``"/handcash"``); ``""`` at the root.
    mount: str = ""
    _nonces: set[tuple[str, str]] = field(default_factory=set)
    _lock: Any = field(default_factory=threading.Lock)

    def pay_calls(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v3/connect/wallet/pay"]

    def create_payment_request(
        self, request_id: str, amount_usd: str, on_paid: Any
    ) -> dict[str, Any]:
        """A merchant's ``POST /v3/paymentRequests`` (called in-process by the merchant fake)."""
        with self._lock:
            entry = {"amount_usd": amount_usd, "paid_by": None, "transaction_id": None}
            entry["on_paid"] = on_paid
            self.payment_requests[request_id] = entry
        return entry

    def complete_payment_request(self, request_id: str, payer: str = "person") -> str:
        """A person pays the hosted request on HandCash's page: the webhook fires."""
        with self._lock:
            entry = self.payment_requests[request_id]
            if entry["paid_by"] is not None:
                raise ValueError("payment request already paid")
            entry["paid_by"] = payer
            entry["transaction_id"] = secrets.token_hex(32)
        entry["on_paid"](request_id, entry["transaction_id"])
        return str(entry["transaction_id"])

    def app(self) -> Starlette:
        routes: list[Any] = [
            Route("/v3/connect/wallet/pay", self._endpoint, methods=["POST"]),
            Route("/v3/connect/wallet/payment", self._endpoint, methods=["GET"]),
            Route("/v3/connect/wallet/spendableBalances", self._endpoint, methods=["GET"]),
            Route("/v3/wallet/transactions/send/paymentRequest", self._endpoint, methods=["POST"]),
        ]
        if self.mount:
            return Starlette(routes=[Mount(self.mount, routes=routes)])
        return Starlette(routes=routes)

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        seen = Seen(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self.seen.append(seen)
            response = self._handle(request, seen)
        seen.status = response.status_code
        if self.pay_delay and seen.path.endswith("/pay"):
            await asyncio.sleep(self.pay_delay)
        return response

    @staticmethod
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"message": message}, status_code=status)

    def _handle(self, request: Request, seen: Seen) -> Response:
        h = seen.headers
        if h.get("app-id") != APP_ID or h.get("app-secret") != APP_SECRET:
            return self._error(401, "Invalid app credentials")
        problem = self._check_signature(seen)
        if problem is not None:
            return self._error(401, problem)
        public_key = h["oauth-publickey"]
        if seen.path.endswith("/send/paymentRequest"):
            return self._pay_payment_request(seen, public_key)
        if seen.path.endswith("/spendableBalances"):
            left = self.limits.get(public_key, Decimal(0))
            return _json({"items": [{"spendableBalance": left, "currencyCode": "USD"}]})
        if seen.path.endswith("/payment"):
            payment = self.payments.get(request.query_params.get("transactionId", ""))
            if payment is None or payment.public_key != public_key:
                return self._error(404, "Payment not found")
            return _json(self._record(payment))
        return self._pay(seen, public_key)

    def _check_signature(self, seen: Seen) -> str | None:
        h = seen.headers
        try:
            key_bytes = bytes.fromhex(h["oauth-publickey"])
            signature = bytes.fromhex(h["oauth-signature"])
            timestamp, nonce = h["oauth-timestamp"], h["oauth-nonce"]
        except (KeyError, ValueError):
            return "Missing or malformed oauth headers"
        if len(key_bytes) != 33:
            return "oauth-publickey must be a compressed key"
        try:
            when = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            return "oauth-timestamp is not an ISO timestamp"
        if abs(datetime.now(UTC) - when) > self.skew:
            return "Request timestamp is too old or in the future"
        payload = b"\n".join(
            [
                seen.method.encode(),
                seen.path.encode(),
                timestamp.encode(),
                seen.body,
                nonce.encode(),
            ]
        )
        digest = hashlib.sha256(payload).digest()
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key_bytes)
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return "Invalid request signature"
        _, s = utils.decode_dss_signature(signature)
        if s > _N // 2:
            return "Signature is not low-S"
        if (h["oauth-publickey"], nonce) in self._nonces:
            return "Nonce already used"
        self._nonces.add((h["oauth-publickey"], nonce))
        return None

    def _pay_payment_request(self, seen: Seen, public_key: str) -> Response:
        try:
            request_id = json.loads(seen.body)["paymentRequestId"]
        except (ValueError, KeyError, TypeError):
            return self._error(400, "paymentRequestId is required")
        entry = self.payment_requests.get(request_id)
        if entry is None:
            return self._error(404, "Payment request not found")
        if entry["paid_by"] is not None:
            return self._error(409, "Payment request already paid")
        left = self.limits.get(public_key, Decimal(0))
        amount = Decimal(entry["amount_usd"])
        if amount > left:
            return self._error(403, "Spending limit exceeded")
        self.limits[public_key] = left - amount
        entry["paid_by"] = public_key
        entry["transaction_id"] = secrets.token_hex(32)
        # The webhook fires outside the lock would be nicer; the merchant fake takes its own.
        entry["on_paid"](request_id, entry["transaction_id"])
        return _json({"transactionId": entry["transaction_id"]})

    def _pay(self, seen: Seen, public_key: str) -> Response:
        if seen.headers.get("content-type") != "application/json":
            return self._error(400, "Expected application/json")
        try:
            body = json.loads(seen.body, parse_float=Decimal)
        except ValueError:
            return self._error(400, "Invalid JSON")
        instrument = body.get("instrumentCurrencyCode")
        denomination = body.get("denominationCurrencyCode")
        if instrument not in ("BSV", "MNEE"):
            return self._error(400, "instrumentCurrencyCode must be BSV or MNEE")
        if instrument == "MNEE" and denomination is not None:
            return self._error(400, "denominationCurrencyCode is not allowed for MNEE")
        if instrument == "BSV" and denomination != "USD":
            return self._error(400, "this fake only prices BSV in USD")
        receivers = body.get("receivers")
        if not isinstance(receivers, list) or not receivers:
            return self._error(400, "receivers are required")
        total = Decimal(0)
        for receiver in receivers:
            amount = receiver.get("sendAmount")
            if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount <= 0:
                return self._error(400, "sendAmount must be a positive number")
            if not isinstance(receiver.get("destination"), str):
                return self._error(400, "destination is required")
            total += Decimal(amount)
        if self.fail_pay_with is not None:
            if self.fail_pay_text:
                return Response("<html>Bad Request</html>", self.fail_pay_with)
            return self._error(self.fail_pay_with, "Injected failure")
        left = self.limits.get(public_key, Decimal(0))
        if total > left:
            return self._error(400, "Spending limit exceeded for this app")
        self.limits[public_key] = left - total
        txid = secrets.token_hex(32)
        self.payments[txid] = Payment(txid, public_key, body, total)
        if self.debit_then_fail_with is not None:
            answer = {"message": "Upstream timeout", **self.debit_then_fail_body}
            answer = {k: (txid if v == "$txid" else v) for k, v in answer.items()}
            return JSONResponse(answer, status_code=self.debit_then_fail_with)
        record = self._record(self.payments[txid])
        if self.drop_transaction_id:
            del record["transactionId"]
        return _json(record)

    @staticmethod
    def _record(payment: Payment) -> dict[str, Any]:
        body = payment.body
        return {
            "transactionId": payment.transaction_id,
            "type": "send",
            "time": 1_700_000_000,
            "note": body.get("note", ""),
            "currency": {"code": body["instrumentCurrencyCode"], "logoUrl": "", "symbol": ""},
            "units": payment.total / 50,
            "satoshiFees": 12,
            "fiatEquivalent": {"currencyCode": "USD", "units": payment.total},
            "participants": [
                {
                    "id": r["destination"],
                    "type": "user",
                    "alias": r["destination"],
                    "displayName": r["destination"],
                    "profilePictureUrl": "",
                    "responseNote": "",
                }
                for r in body["receivers"]
            ],
            "attachments": [body["attachment"]] if "attachment" in body else [],
            "app": {"name": "fake", "iconUrl": ""},
        }


_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class _DecimalEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)
        return super().default(o)


def _json(data: Any) -> Response:
    return Response(json.dumps(data, cls=_DecimalEncoder), media_type="application/json")
