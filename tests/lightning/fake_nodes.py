"""Fake Lightning node REST APIs (LND, Core Lightning, phoenixd, LNbits) as httpx handlers.

Each speaks its node's documented request and response shapes, checks what the client sends
(authentication, body fields, fee cap) and records every pay call, so a test can prove that a
refused challenge never reached the node.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import bolt11
import httpx


@dataclass
class FakeNode:
    """Knows the preimages of the invoices it can route to; ``mode`` picks an outcome."""

    preimages: dict[str, str] = field(default_factory=dict)  # payment hash -> preimage
    mode: str = "succeed"
    pay_calls: list[dict[str, Any]] = field(default_factory=list)
    other_calls: list[httpx.Request] = field(default_factory=list)
    paid: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # payment hashes the node tried and failed
    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, what: str) -> None:
        # Recorded rather than raised: a raise inside the transport would look like a network
        # failure to the code under test. Tests assert `problems == []`.
        if not condition:
            self.problems.append(what)

    def knows(self, invoice: str) -> tuple[str, str | None]:
        payment_hash = bolt11.decode(invoice).payment_hash
        return payment_hash, self.preimages.get(payment_hash)

    def transport_mode(self) -> httpx.Response | None:
        """Failures of the transport or of a proxy in front of the node, common to all."""
        if self.mode == "read-timeout":
            raise httpx.ReadTimeout("timed out")
        if self.mode == "connect-error":
            raise httpx.ConnectError("connection refused")
        if self.mode.startswith("http-"):
            # e.g. "http-502": a reverse proxy's answer after it forwarded the request.
            return httpx.Response(int(self.mode[5:]), text="<html>proxy error</html>")
        return None


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


@dataclass
class FakeLnd(FakeNode):
    macaroon: str = "0201036c6e64"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.expect(request.headers.get("grpc-metadata-macaroon") == self.macaroon, "macaroon")
        if request.method == "POST" and request.url.path == "/v2/router/send":
            early = self.transport_mode()
            if early is not None:
                return early
            body = json.loads(request.content)
            self.pay_calls.append(body)
            self.expect(request.headers.get("content-type") == "application/json", "json")
            self.expect(isinstance(body.get("timeout_seconds"), int), "timeout_seconds")
            self.expect(body.get("no_inflight_updates") is True, "no_inflight_updates")
            self.expect("fee_limit_sat" in body or "fee_limit_msat" in body, "fee limit")
            if self.mode == "unauthenticated":
                return httpx.Response(401, text="verification failed: signature mismatch")
            if self.mode == "invalid-argument":
                return _ndjson(200, {"error": {"code": 3, "message": "invoice expired"}})
            if self.mode == "already-exists":
                return _ndjson(200, {"error": {"code": 6, "message": "invoice is already paid"}})
            if self.mode == "bad-macaroon":
                message = "verification failed: signature mismatch after caveat verification"
                return _ndjson(500, {"error": {"code": 2, "message": message}})
            payment_hash, preimage = self.knows(body["payment_request"])
            status = {"no-route": "FAILED", "in-flight": "IN_FLIGHT"}.get(self.mode, "SUCCEEDED")
            result = {
                "payment_hash": payment_hash,
                "value": "100",
                "value_sat": "100",
                "value_msat": "100000",
                "creation_date": "1700000000",
                "fee": "1",
                "fee_sat": "1",
                "fee_msat": "1000",
                "payment_preimage": preimage if status == "SUCCEEDED" else "00" * 32,
                "payment_request": body["payment_request"],
                "status": status,
                "creation_time_ns": "1700000000000000000",
                "htlcs": [],
                "payment_index": "7",
                "failure_reason": (
                    "FAILURE_REASON_NO_ROUTE" if status == "FAILED" else "FAILURE_REASON_NONE"
                ),
            }
            if status == "SUCCEEDED":
                self.paid.add(payment_hash)
            if status == "FAILED":
                self.failed.add(payment_hash)
            return _ndjson(200, {"result": result})
        if request.method == "GET" and request.url.path.startswith("/v2/router/track/"):
            self.other_calls.append(request)
            self.expect(request.url.params.get("no_inflight_updates") == "true", "track flag")
            encoded = request.url.path.rsplit("/", 1)[1]
            payment_hash = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
            if self.mode == "read-timeout":
                raise httpx.ReadTimeout("stream still open")
            if self.mode == "track-gateway-404":
                # grpc-gateway's answer for a route it does not serve: not LND's "no payment".
                return _json(404, {"code": 5, "message": "Not Found", "details": []})
            if self.mode == "track-in-flight":
                return _ndjson(
                    200, {"result": {"payment_hash": payment_hash, "status": "IN_FLIGHT"}}
                )
            if payment_hash in self.failed:
                return _ndjson(
                    200,
                    {
                        "result": {
                            "payment_hash": payment_hash,
                            "status": "FAILED",
                            "failure_reason": "FAILURE_REASON_NO_ROUTE",
                        }
                    },
                )
            if payment_hash not in self.paid:
                return _ndjson(200, {"error": {"code": 5, "message": "payment isn't initiated"}})
            return _ndjson(
                200,
                {
                    "result": {
                        "payment_hash": payment_hash,
                        "status": "SUCCEEDED",
                        "value_sat": "100",
                        "fee_msat": "1000",
                    }
                },
            )
        return httpx.Response(404, text="Not Found")


def _ndjson(status: int, *lines: Any) -> httpx.Response:
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    return httpx.Response(status, content=content, headers={"content-type": "application/json"})


@dataclass
class FakeCln(FakeNode):
    rune: str = "tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4"
    # mode "gave-up": the attempts (status, created_at) listpays shows afterwards
    pay_parts: list[tuple[str, float]] = field(default_factory=list)
    attempts: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("rune") != self.rune:
            return _json(
                401, {"error": {"code": 1502, "message": "Not authorized: Not derived from master"}}
            )
        body = json.loads(request.content)
        if request.url.path == "/v1/pay":
            early = self.transport_mode()
            if early is not None:
                return early
            self.pay_calls.append(body)
            self.expect(isinstance(body.get("maxfee"), int), "maxfee is msat int")
            payment_hash, preimage = self.knows(body["bolt11"])
            if self.mode == "no-route":
                return _json(500, {"error": {"code": 205, "message": "Ran out of routes to try"}})
            if self.mode == "gave-up":
                # attempts were made and failed; `pay_parts` says what listpays will show
                self.attempts[payment_hash] = list(self.pay_parts)
                return _json(500, {"error": {"code": 210, "message": "Ran out of time"}})
            if self.mode == "bad-params":
                return _json(500, {"error": {"code": -32602, "message": "bolt11: bad invoice"}})
            if self.mode == "unknown-error":
                return _json(500, {"error": {"code": -1, "message": "Catchall nonspecific error"}})
            if self.mode == "pending":
                return _json(
                    201,
                    {
                        "payment_hash": payment_hash,
                        "status": "pending",
                        "payment_preimage": "00" * 32,
                    },
                )
            self.paid.add(payment_hash)
            return _json(
                201,
                {
                    "destination": "02" + "11" * 32,
                    "payment_hash": payment_hash,
                    "created_at": 1700000000.5,
                    "parts": 1,
                    "amount_msat": 100000,
                    "amount_sent_msat": 101000,
                    "payment_preimage": preimage,
                    "status": "complete",
                },
            )
        if request.url.path == "/v1/listpays":
            self.other_calls.append(request)
            payment_hash = body.get("payment_hash")
            pays = [
                {"payment_hash": payment_hash, "status": status, "created_at": created}
                for status, created in self.attempts.get(payment_hash, [])
            ]
            if payment_hash in self.paid:
                pays = [
                    {
                        "bolt11": "lnbc...",
                        "payment_hash": payment_hash,
                        "status": "complete",
                        "created_at": 1700000000,
                        "amount_msat": 100000,
                        "amount_sent_msat": 101000,
                        "preimage": self.preimages[payment_hash],
                    }
                ]
            return _json(201, {"pays": pays})
        return _json(404, {"error": "Not found"})


@dataclass
class FakePhoenixd(FakeNode):
    password: str = "b2b0b5c5e6f3a1d4"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        expected = "Basic " + base64.b64encode(f":{self.password}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return httpx.Response(
                401,
                text="Invalid authentication (use basic auth with the http password)",
            )
        if request.method == "POST" and request.url.path == "/payinvoice":
            early = self.transport_mode()
            if early is not None:
                return early
            self.expect(
                request.headers.get("content-type") == "application/x-www-form-urlencoded",
                "form body",
            )
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.pay_calls.append(form)
            payment_hash, preimage = self.knows(form["invoice"])
            if self.mode == "no-route":
                return _json(
                    200,
                    {"paymentId": "a1b2", "paymentHash": payment_hash, "reason": "route not found"},
                )
            if self.mode == "server-error":
                return httpx.Response(500, text="internal error")
            if self.mode == "bad-invoice":
                return httpx.Response(400, text="invalid invoice")
            self.paid.add(payment_hash)
            return _json(
                200,
                {
                    "recipientAmountSat": 100,
                    "routingFeeSat": 4,
                    "paymentId": "a1b2",
                    "paymentHash": payment_hash,
                    "paymentPreimage": preimage,
                },
            )
        if request.method == "GET" and request.url.path.startswith("/payments/outgoingbyhash/"):
            self.other_calls.append(request)
            payment_hash = request.url.path.rsplit("/", 1)[1]
            if payment_hash not in self.paid:
                return httpx.Response(404, text="payment not found")
            return _json(
                200,
                {
                    "paymentHash": payment_hash,
                    "preimage": self.preimages[payment_hash],
                    "isPaid": True,
                    "sent": 100,
                    "fees": 4000,
                    "createdAt": 1700000000000,
                    "completedAt": 1700000001000,
                },
            )
        return httpx.Response(404, text="not found")


@dataclass
class FakeLnbits(FakeNode):
    admin_key: str = "0f3a8c2e9d7b4a1e6c5f8d2b9a7e3c1d"
    pending_records: set[str] = field(default_factory=set)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-api-key") != self.admin_key:
            return _json(401, {"detail": "Invalid adminkey."})
        if request.method == "POST" and request.url.path == "/api/v1/payments":
            early = self.transport_mode()
            if early is not None:
                return early
            body = json.loads(request.content)
            self.pay_calls.append(body)
            self.expect(body.get("out") is True, "out: true")
            payment_hash, preimage = self.knows(body["bolt11"])
            if self.mode == "insufficient":
                return _json(520, {"detail": "Insufficient balance.", "status": "failed"})
            if self.mode == "failed-but-pending":
                # LNbits said failed, but its record of the payment is still pending
                self.pending_records.add(payment_hash)
                return _json(520, {"detail": "Payment failed.", "status": "failed"})
            if self.mode == "bad-invoice":
                return _json(400, {"detail": "Invalid bolt11 invoice."})
            if self.mode == "pending-error":
                return _json(520, {"detail": "Payment is pending.", "status": "pending"})
            if self.mode == "pending":
                return _json(
                    201,
                    {
                        "payment_hash": payment_hash,
                        "status": "pending",
                        "preimage": None,
                        "amount": -100000,
                        "fee": 0,
                    },
                )
            self.paid.add(payment_hash)
            return _json(
                201,
                {
                    "checking_id": payment_hash,
                    "payment_hash": payment_hash,
                    "wallet_id": "w1",
                    "amount": -100000,
                    "fee": -1000,
                    "bolt11": body["bolt11"],
                    "status": "success",
                    "preimage": preimage,
                    "memo": "weather",
                },
            )
        if request.method == "GET" and request.url.path.startswith("/api/v1/payments/"):
            self.other_calls.append(request)
            payment_hash = request.url.path.rsplit("/", 1)[1]
            if self.mode == "lookup-route-404":
                return _json(404, {"detail": "Not Found"})
            if payment_hash in self.pending_records:
                return _json(200, {"paid": False, "status": "pending", "preimage": None})
            if payment_hash not in self.paid:
                return _json(404, {"detail": "Payment does not exist."})
            return _json(
                200,
                {
                    "paid": True,
                    "preimage": self.preimages[payment_hash],
                    "details": {"payment_hash": payment_hash, "status": "success"},
                },
            )
        return _json(404, {"detail": "Not Found"})


Handler = Callable[[httpx.Request], httpx.Response]
