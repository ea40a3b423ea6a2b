"""A small MPP server that sells a resource for sats: it issues ``lightning``/``charge``
challenges with invoices from a real LNbits wallet and accepts the preimage as proof.

Routes:
  GET /weather      100 sat, honest challenge
  GET /overpriced   the challenge says 100 sat but the invoice asks 200 (a hostile server)
  GET /wrong-hash   the challenge's paymentHash is not the invoice's
  GET /reused       every challenge carries the same invoice (paid once, then offered again)
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mpp_client.errors import MppError
from mpp_client.protocol import Challenge, Receipt, parse_credential
from mpp_client.protocol.timestamps import format_timestamp

PRICE_SATS = 100


@dataclass
class Issued:
    payment_hash: str
    consumed: bool = False


@dataclass
class LightningShop:
    lnbits_url: str
    merchant_inkey: str
    realm: str = "127.0.0.1"
    issued: dict[str, Issued] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)  # payment hashes paid for
    reused_invoice: tuple[str, str] | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/weather", self.weather),
                Route("/overpriced", self.overpriced),
                Route("/wrong-hash", self.wrong_hash),
                Route("/reused", self.reused),
            ]
        )

    async def _invoice(self, sats: int) -> tuple[str, str]:
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                f"{self.lnbits_url}/api/v1/payments",
                json={
                    "out": False,
                    "amount": sats,
                    "unit": "sat",
                    "memo": "weather",
                    "expiry": 600,
                },
                headers={"X-Api-Key": self.merchant_inkey},
                timeout=30,
            )
        reply.raise_for_status()
        data = reply.json()
        return data["bolt11"], data["payment_hash"]

    async def _challenge(
        self,
        *,
        invoice_sats: int,
        hash_override: str | None = None,
        problem: str | None = None,
        reuse: bool = False,
    ) -> Response:
        if reuse and self.reused_invoice is None:
            self.reused_invoice = await self._invoice(invoice_sats)
        bolt11, payment_hash = (
            self.reused_invoice
            if reuse and self.reused_invoice
            else await self._invoice(invoice_sats)
        )
        challenge = Challenge.create(
            id=secrets.token_urlsafe(16),
            realm=self.realm,
            method="lightning",
            intent="charge",
            request={
                "amount": str(PRICE_SATS),
                "currency": "sat",
                "description": "Weather report",
                "methodDetails": {
                    "invoice": bolt11,
                    "paymentHash": hash_override or payment_hash,
                    "network": "mainnet",
                },
            },
            expires=datetime.now(UTC) + timedelta(minutes=5),
        )
        self.issued[challenge.id] = Issued(payment_hash)
        kind = problem or "payment-required"
        return JSONResponse(
            {
                "type": f"https://paymentauth.org/problems/{kind}",
                "title": "Payment required",
                "status": 402,
            },
            status_code=402,
            headers={"WWW-Authenticate": challenge.to_header(), "Cache-Control": "no-store"},
            media_type="application/problem+json",
        )

    async def _paid_or_challenge(self, request: Request, **challenge_args: object) -> Response:
        header = request.headers.get("authorization")
        if header is None or not header.startswith("Payment "):
            return await self._challenge(**challenge_args)  # type: ignore[arg-type]
        try:
            credential = parse_credential(header)
        except MppError:
            return await self._challenge(problem="lightning/malformed-credential", **challenge_args)  # type: ignore[arg-type]
        issued = self.issued.get(credential.challenge.id)
        if issued is None or issued.consumed:
            return await self._challenge(problem="lightning/unknown-challenge", **challenge_args)  # type: ignore[arg-type]
        preimage = credential.payload.get("preimage")
        if (
            not isinstance(preimage, str)
            or len(preimage) != 64
            or hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != issued.payment_hash
            or not await self._settled(issued.payment_hash)
        ):
            return await self._challenge(problem="lightning/invalid-preimage", **challenge_args)  # type: ignore[arg-type]
        issued.consumed = True
        self.accepted.append(issued.payment_hash)
        receipt = Receipt(
            status="success",
            method="lightning",
            timestamp=format_timestamp(datetime.now(UTC)),
            reference=issued.payment_hash,
            challenge_id=credential.challenge.id,
        )
        return JSONResponse(
            {"forecast": "sunny"},
            headers={"Payment-Receipt": receipt.encode(), "Cache-Control": "private"},
        )

    async def _settled(self, payment_hash: str) -> bool:
        async with httpx.AsyncClient() as client:
            reply = await client.get(
                f"{self.lnbits_url}/api/v1/payments/{payment_hash}",
                headers={"X-Api-Key": self.merchant_inkey},
                timeout=30,
            )
        return reply.status_code == 200 and reply.json().get("paid") is True

    async def weather(self, request: Request) -> Response:
        return await self._paid_or_challenge(request, invoice_sats=PRICE_SATS)

    async def overpriced(self, request: Request) -> Response:
        return await self._paid_or_challenge(request, invoice_sats=2 * PRICE_SATS)

    async def reused(self, request: Request) -> Response:
        return await self._paid_or_challenge(request, invoice_sats=PRICE_SATS, reuse=True)

    async def wrong_hash(self, request: Request) -> Response:
        return await self._paid_or_challenge(
            request, invoice_sats=PRICE_SATS, hash_override="ab" * 32
        )


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread (started and stopped by the test)."""

    def __init__(self, app: Starlette, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the MPP test server did not start")
            time.sleep(0.02)  # bounded readiness poll
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
