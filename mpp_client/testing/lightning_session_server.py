"""A spec-exact MPP ``lightning``/``session`` server for tests (protocol README §16), backed by
a real LNbits merchant wallet, as an ASGI application.

No released Lightning session server runs offline, so this one is written from the spec (and
the reference server's observable behaviour): every unauthenticated request gets a 402 with a
fresh deposit invoice issued by the merchant's LNbits wallet; ``open`` checks the preimage
against the challenge's payment hash, that LNbits shows the invoice paid, that the invoice
was never consumed before and that the return invoice has no amount and lives at least
2 x ``idleTimeout``; ``bearer`` serves the resource against the prepaid balance; ``topUp``
adds a freshly paid invoice to it (and wakes a stream waiting for it); ``close`` refunds
``deposit + top-ups - spent`` to the return invoice. Retries of a consumed challenge get the
original answer (idempotent by challenge id).

Routes (any path is priced; these two meter):

``GET /stream?chunks=N``
    A metered ``text/event-stream``: each ``data:`` chunk costs ``amount`` sats. When the
    balance runs out: ``event: payment-need-topup`` ``{sessionId, balanceSpent,
    balanceRequired}``, then the stream waits up to ``topup_wait`` seconds for a top-up, else
    ``event: session-timeout`` and the stream ends. At the end ``event: payment-receipt``
    ``{method, reference, status, timestamp, spent, units}`` and ``data: [DONE]``.
``GET /data``
    One JSON answer costing ``amount`` sats (402 ``lightning/insufficient-balance`` with a
    fresh challenge when the balance is short).

LNbits (1.6) neither creates nor pays invoices without an amount, so the refund goes through
``RefundSender``: ``AmountlessBridge`` stands in for the Lightning hop LNbits cannot make (see
its docstring). Misbehaviours for tests: ``refund_short_by`` (refund less than owed),
``invoice_sats_delta`` (the deposit invoice asks more than ``depositAmount``),
``wrong_hash`` (``paymentHash`` is not the invoice's), ``claim_extra_spent`` (report more
spent than was metered), ``refund_fails`` (the refund payment is never made; the close answers
``refundStatus: "failed"``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs

import httpx

from mpp_client.clock import SYSTEM_CLOCK, Clock
from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.errors import MppError, NothingSent
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.invoice import InvoiceError, decode_invoice
from mpp_client.methods.lightning.payer import CreatedInvoice, LightningPayer, PayResult, Received
from mpp_client.protocol import Challenge, Receipt, parse_credential
from mpp_client.protocol.timestamps import format_timestamp

__all__ = [
    "AmountlessBridge",
    "BridgeReceiver",
    "LightningSessionServer",
    "RefundSender",
    "SessionState",
]

PROBLEMS = "https://paymentauth.org/problems/"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RefundSender(Protocol):
    """Pays ``sats`` to an amountless ``invoice`` from the merchant; ``True`` when it went
    through."""

    async def pay(self, invoice: str, sats: int) -> bool: ...


@dataclass
class SessionState:
    """The server's record of one session (all amounts in sats)."""

    session_id: str
    deposit: int
    spent: int
    return_invoice: str
    idle_timeout: int
    last_active: float
    status: str = "open"
    refund_sats: int | None = None
    refund_status: str | None = None
    topups: list[int] = field(default_factory=list)


@dataclass
class _Issued:
    challenge: Challenge
    payment_hash: str
    invoice_sats: int | None
    answer: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None


class LightningSessionServer:
    """The server. ``lnbits_url`` and the merchant wallet's ``inkey`` (invoices, lookups);
    ``refunds`` pays refunds. ``amount`` is sats per unit; ``deposit`` the deposit (and
    top-up) size in sats; ``idle_timeout`` seconds; ``topup_wait`` seconds a stream waits
    for a top-up; ``clock`` the time idle sessions are judged by (``sweep``)."""

    def __init__(
        self,
        lnbits_url: str,
        merchant_inkey: str,
        refunds: RefundSender,
        *,
        amount: int = 1,
        deposit: int = 300,
        idle_timeout: int = 300,
        topup_wait: float = 30.0,
        realm: str = "127.0.0.1",
        clock: Clock | None = None,
    ) -> None:
        self.lnbits_url = lnbits_url.rstrip("/")
        self._inkey = merchant_inkey
        self.refunds = refunds
        self.amount = amount
        self.deposit = deposit
        self.idle_timeout = idle_timeout
        self.topup_wait = topup_wait
        self.realm = realm
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self.issued: dict[str, _Issued] = {}
        self.sessions: dict[str, SessionState] = {}
        self.consumed: set[str] = set()
        self.requests: list[dict[str, Any]] = []  # (action, path) of each credential received
        self._waiters: dict[str, list[asyncio.Event]] = {}
        self._lock = threading.Lock()
        # Misbehaviours (see the module docstring).
        self.refund_short_by = 0
        self.invoice_sats_delta = 0
        self.wrong_hash = False
        self.claim_extra_spent = 0
        self.refund_fails = False

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode())
        header = headers.get("authorization", "")
        if not header.lower().startswith("payment "):
            await self._respond(send, *(await self._challenge()))
            return
        try:
            credential = parse_credential(header)
        except MppError:
            await self._respond(send, *(await self._challenge("lightning/malformed-credential")))
            return
        with self._lock:
            issued = self.issued.get(credential.challenge.id)
        if issued is None or issued.challenge.echo() != credential.challenge.echo():
            await self._respond(send, *(await self._challenge("lightning/unknown-challenge")))
            return
        if issued.answer is not None:
            # A retry of a consumed challenge: the original answer, nothing done again.
            await self._respond(send, *issued.answer)
            return
        payload = credential.payload
        action = payload.get("action")
        self.requests.append({"action": action, "path": path})
        if action == "open":
            outcome = await self._open(issued, payload)
        elif action == "bearer":
            outcome = self._bearer(payload)
        elif action == "topUp":
            outcome = await self._top_up(issued, payload)
        elif action == "close":
            outcome = await self._close(issued, payload)
        else:
            outcome = "lightning/malformed-credential"
        if isinstance(outcome, str):
            await self._respond(send, *(await self._challenge(outcome)))
            return
        session = outcome
        receipt = self._receipt(issued, session, action)
        if action in ("topUp", "close"):
            body: dict[str, Any] = {"status": "ok"}
            if action == "close":
                body = {
                    "status": "closed",
                    "refundSats": session.refund_sats,
                    "refundStatus": session.refund_status,
                }
            answer = _json_answer(200, body, receipt)
            issued.answer = answer
            await self._respond(send, *answer)
            return
        issued.answer = (409, [], b"")  # the challenge is used; a replay gets no second serving
        if path == "/stream":
            chunks = int((query.get("chunks") or ["10"])[0])
            await self._stream(receive, send, session, chunks, receipt)
            return
        if not self._charge(session, self.amount):
            await self._respond(send, *(await self._challenge("lightning/insufficient-balance")))
            return
        receipt = self._receipt(issued, session, action)
        await self._respond(
            send, *_json_answer(200, {"data": "ok", "spent": session.spent}, receipt)
        )

    async def _respond(
        self, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- challenges ---------------------------------------------------------------------------

    async def _challenge(
        self, problem: str = "payment-required"
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        invoice_sats = self.deposit + self.invoice_sats_delta
        bolt11, payment_hash = await self._invoice(invoice_sats)
        request = {
            "amount": str(self.amount),
            "currency": "sat",
            "description": "metered test stream",
            "unitType": "chunk",
            "depositInvoice": bolt11,
            "paymentHash": ("ab" * 32) if self.wrong_hash else payment_hash,
            "depositAmount": str(self.deposit),
            "idleTimeout": str(self.idle_timeout),
        }
        now = datetime.fromtimestamp(self.clock.time(), UTC)
        challenge = Challenge.create(
            id=secrets.token_urlsafe(16),
            realm=self.realm,
            method="lightning",
            intent="session",
            request=request,
            expires=now + timedelta(minutes=5),
        )
        with self._lock:
            self.issued[challenge.id] = _Issued(challenge, payment_hash, invoice_sats)
        body = json.dumps(
            {"type": PROBLEMS + problem, "title": "Payment required", "status": 402}
        ).encode()
        headers = [
            (b"www-authenticate", challenge.to_header().encode("latin-1")),
            (b"cache-control", b"no-store"),
            (b"content-type", b"application/problem+json"),
        ]
        return 402, headers, body

    async def _invoice(self, sats: int) -> tuple[str, str]:
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                f"{self.lnbits_url}/api/v1/payments",
                json={"out": False, "amount": sats, "unit": "sat", "memo": "session deposit"},
                headers={"X-Api-Key": self._inkey},
                timeout=30,
            )
        reply.raise_for_status()
        data = reply.json()
        return str(data["bolt11"]), str(data["payment_hash"])

    async def _settled(self, payment_hash: str) -> bool:
        async with httpx.AsyncClient() as client:
            reply = await client.get(
                f"{self.lnbits_url}/api/v1/payments/{payment_hash}",
                headers={"X-Api-Key": self._inkey},
                timeout=30,
            )
        return reply.status_code == 200 and reply.json().get("paid") is True

    # --- actions ------------------------------------------------------------------------------

    async def _open(self, issued: _Issued, payload: Any) -> SessionState | str:
        preimage, return_invoice = payload.get("preimage"), payload.get("returnInvoice")
        if not _hashes_to(preimage, issued.payment_hash) or issued.invoice_sats is None:
            return "lightning/invalid-preimage"
        if not isinstance(return_invoice, str):
            return "lightning/invalid-return-invoice"
        try:
            refund_to = decode_invoice(return_invoice)
        except InvoiceError:
            return "lightning/invalid-return-invoice"
        lifetime = (refund_to.expires_at - refund_to.created_at).total_seconds()
        if refund_to.amount_msat is not None or lifetime < 2 * self.idle_timeout:
            return "lightning/invalid-return-invoice"
        if not await self._settled(issued.payment_hash):
            return "lightning/invalid-preimage"
        with self._lock:
            if issued.payment_hash in self.consumed:
                return "lightning/invalid-preimage"
            self.consumed.add(issued.payment_hash)
            session = SessionState(
                session_id=issued.payment_hash,
                deposit=issued.invoice_sats,
                spent=0,
                return_invoice=return_invoice,
                idle_timeout=self.idle_timeout,
                last_active=self.clock.time(),
            )
            self.sessions[session.session_id] = session
        return session

    def _session(self, payload: Any) -> SessionState | str:
        session = self.sessions.get(str(payload.get("sessionId")))
        if session is None:
            return "lightning/session-not-found"
        if session.status != "open":
            return "lightning/session-closed"
        return session

    def _bearer(self, payload: Any) -> SessionState | str:
        session = self._session(payload)
        if isinstance(session, str):
            return session
        if not _hashes_to(payload.get("preimage"), session.session_id):
            return "lightning/invalid-preimage"
        session.last_active = self.clock.time()
        return session

    async def _top_up(self, issued: _Issued, payload: Any) -> SessionState | str:
        session = self._session(payload)
        if isinstance(session, str):
            return session
        if not _hashes_to(payload.get("topUpPreimage"), issued.payment_hash):
            return "lightning/invalid-preimage"
        if issued.invoice_sats is None or not await self._settled(issued.payment_hash):
            return "lightning/invalid-preimage"
        with self._lock:
            if issued.payment_hash in self.consumed:
                return "lightning/invalid-preimage"
            self.consumed.add(issued.payment_hash)
            session.deposit += issued.invoice_sats
            session.topups.append(issued.invoice_sats)
            session.last_active = self.clock.time()
        for waiter in self._waiters.pop(session.session_id, []):
            waiter.set()
        return session

    async def _close(self, issued: _Issued, payload: Any) -> SessionState | str:
        session = self._session(payload)
        if isinstance(session, str):
            return session
        if not _hashes_to(payload.get("preimage"), session.session_id):
            return "lightning/invalid-preimage"
        await self.close_session(session)
        return session

    async def close_session(self, session: SessionState) -> None:
        """Mark ``session`` closed (before paying, so concurrent requests are refused) and
        refund ``deposit - spent`` (less ``refund_short_by``) to its return invoice."""
        if session.status != "open":
            return
        session.status = "closed"
        owed = max(session.deposit - session.spent, 0)
        refund = max(owed - self.refund_short_by, 0)
        session.refund_sats = refund
        if refund == 0:
            session.refund_status = "skipped"
            return
        if self.refund_fails:
            session.refund_status = "failed"
            return
        paid = await self.refunds.pay(session.return_invoice, refund)
        session.refund_status = "succeeded" if paid else "failed"

    async def sweep(self) -> list[str]:
        """Close (and refund) every session idle longer than its ``idleTimeout`` by the
        server's clock; returns their ids. The reference server does this on a timer."""
        now = self.clock.time()
        idle = [
            s
            for s in list(self.sessions.values())
            if s.status == "open" and now - s.last_active >= s.idle_timeout
        ]
        for session in idle:
            await self.close_session(session)
        return [s.session_id for s in idle]

    def _charge(self, session: SessionState, sats: int) -> bool:
        with self._lock:
            if session.deposit - session.spent < sats:
                return False
            session.spent += sats
            session.last_active = self.clock.time()
            return True

    def _receipt(self, issued: _Issued, session: SessionState, action: Any) -> Receipt:
        # The session's total spend so far (the client checks it against its deposits).
        extra: dict[str, Any] = {"spent": session.spent + self.claim_extra_spent}
        if action == "close":
            extra.update(refundSats=session.refund_sats, refundStatus=session.refund_status)
        return Receipt(
            status="success",
            method="lightning",
            timestamp=format_timestamp(datetime.fromtimestamp(self.clock.time(), UTC)),
            reference=session.session_id,
            challenge_id=issued.challenge.id,
            extra=extra,
        )

    # --- the metered stream -------------------------------------------------------------------

    async def _stream(
        self, receive: Receive, send: Send, session: SessionState, chunks: int, receipt: Receipt
    ) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            # The client hung up: stop waiting for a top-up that will never come.
            while (await receive())["type"] != "http.disconnect":
                continue
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await self._meter(send, session, chunks, receipt, gone)
        finally:
            watcher.cancel()

    async def _meter(
        self,
        send: Send,
        session: SessionState,
        chunks: int,
        receipt: Receipt,
        gone: asyncio.Event,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"payment-receipt", receipt.encode().encode()),
                ],
            }
        )

        async def emit(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        spent_here = 0
        for unit in range(chunks):
            while not self._charge(session, self.amount):
                info = {
                    "sessionId": session.session_id,
                    "balanceSpent": session.spent + self.claim_extra_spent,
                    "balanceRequired": self.amount,
                }
                waiter = asyncio.Event()
                self._waiters.setdefault(session.session_id, []).append(waiter)
                await emit(f"event: payment-need-topup\ndata: {json.dumps(info)}\n\n")
                waits = [asyncio.ensure_future(waiter.wait()), asyncio.ensure_future(gone.wait())]
                done, pending = await asyncio.wait(
                    waits, timeout=self.topup_wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if gone.is_set():
                    return
                if not done:
                    await emit(f"event: session-timeout\ndata: {json.dumps(info)}\n\n")
                    await send({"type": "http.response.body", "body": b""})
                    return
            spent_here += self.amount
            await emit(f"data: chunk-{unit}\n\n")
        final = {
            "method": "lightning",
            "reference": session.session_id,
            "status": "success",
            "timestamp": format_timestamp(datetime.fromtimestamp(self.clock.time(), UTC)),
            "spent": spent_here + self.claim_extra_spent,
            "units": chunks,
        }
        await emit(f"event: payment-receipt\ndata: {json.dumps(final)}\n\n")
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _hashes_to(preimage: object, payment_hash: str) -> bool:
    if not isinstance(preimage, str) or len(preimage) != 64:
        return False
    try:
        return hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
    except ValueError:
        return False


def _json_answer(
    status: int, body: Any, receipt: Receipt
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"private"),
        (b"payment-receipt", receipt.encode().encode()),
    ]
    return status, headers, json.dumps(body).encode()


# --- the hop LNbits cannot make -------------------------------------------------------------


class AmountlessBridge:
    """Stands in for the Lightning hop that LNbits (1.6) cannot make: an invoice WITHOUT an
    amount, paid with an amount the payer chooses.

    ``receiver(inkey)`` gives a receive-only payer for one LNbits wallet: its amountless
    invoices are real, signed BOLT11 (by the bridge's node key) whose payment lands in that
    wallet. ``pay(invoice, sats, admin_key=...)`` (the merchant's refund) turns it into what a
    node would do: a fresh ``sats`` invoice of the receiving wallet, paid by the merchant's
    LNbits wallet, so the balances move for real. ``lookup_received`` of the receiver reads
    that LNbits payment back.
    """

    def __init__(self, lnbits_url: str, *, clock: Clock | None = None) -> None:
        self.lnbits_url = lnbits_url.rstrip("/")
        self._key = os.urandom(32).hex()
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._lock = threading.Lock()
        # amountless payment hash -> (receiving wallet's inkey, LNbits payment hash or None)
        self._routes: dict[str, list[str | None]] = {}

    def receiver(self, inkey: str) -> BridgeReceiver:
        """A receive-only payer whose amountless invoices land in the wallet of ``inkey``."""
        return BridgeReceiver(self, inkey)

    def issue(self, inkey: str, memo: str, expiry_seconds: int) -> CreatedInvoice:
        """Sign an amountless invoice routed to the wallet of ``inkey``."""
        from mpp_client.testing.bolt11_invoices import sign_invoice

        text, _, payment_hash = sign_invoice(
            self._key, currency="bc", created=int(self._clock.time()), description=memo,
            expiry=expiry_seconds,
        )  # fmt: skip
        with self._lock:
            self._routes[payment_hash] = [inkey, None]
        return CreatedInvoice(text, payment_hash)

    def delivered(self, payment_hash: str) -> tuple[str, str | None] | None:
        """(receiving inkey, LNbits payment hash of the delivery or ``None``)."""
        with self._lock:
            route = self._routes.get(payment_hash)
        return None if route is None else (str(route[0]), route[1])

    async def pay(self, invoice: str, sats: int, *, admin_key: str) -> bool:
        """Deliver ``sats`` for the amountless ``invoice`` from the LNbits wallet of
        ``admin_key``: a real internal LNbits payment. ``False`` when it did not go through."""
        try:
            payment_hash = decode_invoice(invoice).payment_hash
        except InvoiceError:
            return False
        route = self.delivered(payment_hash)
        if route is None or route[1] is not None:
            return False  # not ours, or paid already
        async with httpx.AsyncClient() as client:
            made = await client.post(
                f"{self.lnbits_url}/api/v1/payments",
                json={
                    "out": False,
                    "amount": sats,
                    "unit": "sat",
                    "memo": f"refund {payment_hash}",
                },
                headers={"X-Api-Key": route[0]},
                timeout=30,
            )
            if made.status_code >= 300:
                return False
            fixed = made.json()
            paid = await client.post(
                f"{self.lnbits_url}/api/v1/payments",
                json={"out": True, "bolt11": fixed["bolt11"]},
                headers={"X-Api-Key": admin_key},
                timeout=30,
            )
        if paid.status_code >= 300 or paid.json().get("status") != "success":
            return False
        with self._lock:
            self._routes[payment_hash][1] = str(fixed["payment_hash"])
        return True

    def refunds(self, admin_key: str) -> RefundSender:
        """A ``RefundSender`` paying from the merchant wallet of ``admin_key``."""
        bridge = self

        class _Refunds:
            async def pay(self, invoice: str, sats: int) -> bool:
                return await bridge.pay(invoice, sats, admin_key=admin_key)

        return _Refunds()


class BridgeReceiver(LightningPayer):
    """Receive-only: amountless invoices through an ``AmountlessBridge`` into one LNbits
    wallet. It pays nothing (pair it with an ``LnbitsPayer`` as a session's ``receiver``)."""

    name = "lnbits-bridge"
    receives_amountless = True

    def __init__(self, bridge: AmountlessBridge, inkey: str) -> None:
        self._bridge = bridge
        self._inkey = inkey

    def __repr__(self) -> str:
        return "BridgeReceiver(inkey=<redacted>)"

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        raise NothingSent("a bridge receiver does not pay")
        yield  # pragma: no cover

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        return LookupResult("pending", payment_hash, detail="a bridge receiver pays nothing")
        yield  # pragma: no cover

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        return self._bridge.issue(self._inkey, memo, expiry_seconds)
        yield  # pragma: no cover

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        route = self._bridge.delivered(payment_hash)
        if route is None:
            return Received("unknown", payment_hash, detail="not an invoice of this bridge")
        if route[1] is None:
            return Received("unpaid", payment_hash)
        reply: HttpReply = yield HttpCall(
            "GET",
            f"{self._bridge.lnbits_url}/api/v1/payments/{route[1]}",
            headers={"x-api-key": self._inkey},
            timeout=15,
            retry_safe=True,
        )
        data = json.loads(reply.content) if reply.status == 200 else {}
        details = data.get("details") if isinstance(data, dict) else None
        amount = details.get("amount") if isinstance(details, dict) else None
        if isinstance(data, dict) and data.get("paid") is True and isinstance(amount, int):
            return Received("received", payment_hash, amount)
        return Received("unknown", payment_hash, detail=f"HTTP {reply.status}")
