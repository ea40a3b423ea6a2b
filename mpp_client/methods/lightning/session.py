"""``lightning`` / ``session``: a prepaid balance, bearer requests, top-ups on a stream and the
refund on close (protocol README §16).

The first 402 of an origin opens a session: the deposit invoice passes the charge's checks
(amount = ``depositAmount``, payment hash, network, expiry, never paid before) and the wallet
reserves the deposit like any payment; then a fresh amountless ``returnInvoice`` is issued by
the receiving wallet (BEFORE anything is paid: a backend that cannot receive is refused in
``quote``; one that fails to issue it stops the open with nothing paid), the deposit is paid
and ``{"action": "open", "preimage", "returnInvoice"}`` is sent. Later 402s of that origin are
answered with ``bearer`` (``sessionId`` + the preimage; nothing is paid). ``top_up`` pays a
fresh 402's invoice and sends ``topUpPreimage``; on a metered event stream the
``payment-need-topup`` event does the same while the stream stays open (``stream_handler``).
``close`` sends ``close``; the server refunds ``deposit + top-ups - spent`` to the return
invoice, and the refund is checked as received where the receiving wallet can tell.

Money rules:

- the deposit and each top-up are ordinary journal entries (reserved when quoted, spent when
  paid); the refund returns to the budgets only when the receiving wallet shows it arrived
  (``ChannelStore.settle_close`` lowers the deposit entries' exposure by what arrived);
- the server's reported spend (``balanceSpent``, receipts' ``spent``) is checked against what
  was deposited: a server claiming more spent than deposited gets no further top-up;
- the session (id, return invoice, deposit, top-ups, refund) is a record in the journal's
  ``ChannelStore``, written before the step it names can move value; the preimage is its
  secret (no listing, repr or log shows it), so a restarted process resumes (bearer) or closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from mpp_client.clock import SYSTEM_CLOCK, Clock, utcnow
from mpp_client.effects import Checkpoint, Effect, JournalWrite
from mpp_client.errors import (
    BudgetExceeded,
    MppError,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import (
    LookupResult,
    Payee,
    PaymentContext,
    PaymentMethod,
    PaymentProof,
    Quote,
)
from mpp_client.methods.lightning.charge import pay_invoice
from mpp_client.methods.lightning.invoice import NETWORKS, InvoiceError, decode_invoice
from mpp_client.methods.lightning.payer import CannotReceive, LightningPayer, Received
from mpp_client.methods.lightning.session_request import (
    SessionRequest,
    checked_deposit,
    parse_session_request,
)
from mpp_client.money import SAT, Money
from mpp_client.protocol import Challenge, Credential, Receipt, parse_challenges, parse_receipt
from mpp_client.session import (
    SessionStreamError,
    SideRequest,
    StreamContext,
    receipt_from_event,
)
from mpp_client.wallet.channels import ChannelRecord, ChannelStore, NewChannel

if TYPE_CHECKING:
    from mpp_client.session import SseEvent

__all__ = ["LightningSession", "RefundShort", "SessionClosed", "SessionTopUpRefused"]

log = logging.getLogger("mpp_client")

#: The shortest life of a return invoice (seconds): the spec's SHOULD of 30 days.
MIN_RETURN_EXPIRY = 30 * 24 * 3600
_METHOD = "lightning"
_CONTROL_EVENTS = frozenset({"payment-need-topup", "session-timeout", "payment-receipt"})

Action = Literal["open", "bearer", "topUp", "close"]

#: (method instance, origin, action) the current thread or task expects to send next.
_EXPECTED: ContextVar[tuple[int, str, Action] | None] = ContextVar(
    "mpp_lightning_session_action", default=None
)


class RefundShort(MppError):
    """The server refunded less than it owes (``deposit + top-ups - spent`` by its own
    reports), or less arrived than it said. Amounts in sats; ``money_moved`` is ``True``: the
    shortfall is gone unless the server makes it good."""

    def __init__(
        self, reason: str, *, expected: int, claimed: int | None, received: int | None
    ) -> None:
        super().__init__(reason)
        self.expected = expected
        self.claimed = claimed
        self.received = received
        self.money_moved = True


class SessionTopUpRefused(SessionStreamError):
    """A top-up was refused: the server claimed more spent than was deposited, or the top-up
    could not be checked or paid. ``money_moved`` says what the last step did."""


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """What a ``close`` came to (amounts in sats).

    ``expected``: ``deposited - spent`` by the server's own reports; ``claimed``: the
    ``refundSats`` the server answered (``None`` when it answered no close, e.g. it had closed
    the session on an idle timeout); ``received``: what the receiving wallet shows arrived on
    the return invoice (``None``: it cannot tell yet; the refund then stays out of the
    budgets). ``problem``: a ``RefundShort`` when less was refunded than owed."""

    session_id: str
    deposited: int
    spent: int
    expected: int
    claimed: int | None
    received: int | None
    refund_status: str | None
    problem: RefundShort | None = None


class LightningSession(PaymentMethod):
    """Pays ``lightning``/``session`` challenges through a ``LightningPayer``.

    ``receiver``: the wallet that issues the amountless return invoice and receives the refund
    (default: ``payer``; needed when the payer cannot receive, e.g. LNbits). ``network``,
    ``max_fee_sats`` (per deposit or top-up), ``expiry_margin`` (seconds) as for
    ``LightningCharge``. ``max_deposit_sats`` caps one deposit or top-up. ``store``: the
    session records (default: the wallet journal's, given through ``use_journal``).
    ``return_expiry_seconds``: the return invoice's life (at least 30 days and 2 x
    ``idleTimeout``). ``clock``: the one clock.
    """

    name = _METHOD
    intents = frozenset({"session"})

    def __init__(
        self,
        payer: LightningPayer,
        *,
        receiver: LightningPayer | None = None,
        network: str = "mainnet",
        max_fee_sats: int = 100,
        expiry_margin: float = 30.0,
        max_deposit_sats: int | None = None,
        store: ChannelStore | None = None,
        return_expiry_seconds: int = MIN_RETURN_EXPIRY,
        already_paid: Callable[[str], bool] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if network not in NETWORKS:
            raise ValueError(f"unknown Lightning network {network!r}")
        if isinstance(max_fee_sats, bool) or not isinstance(max_fee_sats, int) or max_fee_sats < 0:
            raise ValueError("max_fee_sats must be a non-negative int of satoshis")
        if max_deposit_sats is not None and max_deposit_sats <= 0:
            raise ValueError("max_deposit_sats must be positive")
        self._payer = payer
        self._receiver = receiver if receiver is not None else payer
        self.network = network
        self.max_fee_sats = max_fee_sats
        self.expiry_margin = expiry_margin
        self.max_deposit_sats = max_deposit_sats
        self.return_expiry_seconds = max(return_expiry_seconds, MIN_RETURN_EXPIRY)
        self._store = store
        self._already_paid = already_paid
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"LightningSession(payer={self._payer!r}, network={self.network!r})"

    # --- wiring --------------------------------------------------------------------------------

    def use_journal(self, journal: Any, clock: Clock | None = None) -> None:
        """Keep the session records in ``journal``'s database (called by the ``Wallet``),
        unless a store was given."""
        if self._store is None:
            self._store = ChannelStore.for_journal(journal, clock=clock or self.clock)

    def use_history(self, already_paid: Callable[[str], bool]) -> None:
        """Take the wallet's journal as the record of paid hashes, unless one was given."""
        if self._already_paid is None:
            self._already_paid = already_paid

    def payer(self, network: str | None) -> str | None:
        """``"lightning:<backend identity>"``, as for ``LightningCharge``."""
        identity = self._payer.identity
        return None if identity is None else f"lightning:{identity}"

    @property
    def store(self) -> ChannelStore:
        """The session records (``use_journal`` or ``store=`` must have given one)."""
        if self._store is None:
            raise RuntimeError(
                "LightningSession has no session records: give store= or use it in a Wallet "
                "(its journal keeps them)"
            )
        return self._store

    def session(self, origin: str) -> ChannelRecord | None:
        """The usable session recorded for ``origin`` (``scheme://host[:port]``), if any."""
        found = self.store.find(_METHOD, _key(origin), states=("open", "opening"))
        return found[0] if found else None

    def spent(self, session_id: str) -> int:
        """The most the server has reported spent on ``session_id`` (sats)."""
        record = self.store.get(session_id)
        recorded = record.highest_accepted if record is not None else 0
        return max(recorded, self._spent.get(session_id, 0))

    # --- quote ---------------------------------------------------------------------------------

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check the challenge; an ``open`` or ``topUp`` prices the deposit invoice (sats),
        ``bearer`` and ``close`` cost nothing. No I/O, nothing paid."""

        def refuse(reason: str) -> PaymentRefused:
            return PaymentRefused(reason, challenge=challenge)

        request = parse_session_request(challenge, refuse)
        origin = _origin(context.origin)
        record = self.session(origin)
        pending = self._expected(origin)
        if record is not None and self.store.secret(record.id) is not None:
            if pending == "close":
                return self._free_quote(challenge, request, record, "close")
            if pending == "topUp":
                if record.details.get("overclaimed"):
                    raise refuse(
                        f"lightning session {record.id}: the server claimed more spent than "
                        "was deposited; no more top-ups"
                    )
                return self._paid_quote(challenge, request, context, "topUp", record)
            return self._free_quote(challenge, request, record, "bearer")
        if pending is not None:
            raise refuse(f"lightning session: no open session with {origin} to {pending}")
        if not self._receiver.receives_amountless:
            raise CannotReceive(
                f"lightning session: the {self._receiver.name} wallet cannot issue the "
                "amountless return invoice a session refund needs (give receiver=)",
                challenge=challenge,
            )
        return self._paid_quote(challenge, request, context, "open", None)

    def _paid_quote(
        self,
        challenge: Challenge,
        request: SessionRequest,
        context: PaymentContext,
        action: Action,
        record: ChannelRecord | None,
    ) -> Quote:
        def refuse(reason: str) -> PaymentRefused:
            return PaymentRefused(reason, challenge=challenge)

        invoice, deadline = checked_deposit(
            challenge,
            request,
            wallet_network=self.network,
            now=context.now,
            expiry_margin=self.expiry_margin,
            refuse=refuse,
        )
        if self._already_paid is not None and self._already_paid(invoice.payment_hash):
            raise refuse(f"lightning session: invoice {invoice.payment_hash} was already paid")
        if self.max_deposit_sats is not None and request.deposit_sats > self.max_deposit_sats:
            raise BudgetExceeded(
                f"lightning session: a {request.deposit_sats} sat deposit exceeds the cap of "
                f"{self.max_deposit_sats} sat",
                rule="lightning.max_deposit_sats",
                challenge=challenge,
            )
        amount = Money(request.deposit_sats, SAT)
        return Quote(
            challenge=challenge,
            method=_METHOD,
            intent="session",
            amount=amount,
            payees=(Payee(invoice.payee, request.deposit_sats),),
            expires=deadline,
            network=self.network,
            max_fee=Money(self.max_fee_sats, SAT),
            details={
                "action": action,
                "invoice": invoice.text,
                "payment_hash": invoice.payment_hash,
                "payee": invoice.payee,
                "session_id": record.id if record is not None else invoice.payment_hash,
                "idle_timeout": request.idle_timeout,
                "unit_price": request.amount_sats,
            },
            reference=invoice.payment_hash,
        )

    def _free_quote(
        self, challenge: Challenge, request: SessionRequest, record: ChannelRecord, action: Action
    ) -> Quote:
        return Quote(
            challenge=challenge,
            method=_METHOD,
            intent="session",
            amount=Money(0, SAT),
            payees=(),
            expires=challenge.expires_at,
            network=self.network,
            details={"action": action, "session_id": record.id, "unit_price": request.amount_sats},
        )

    # --- pay -----------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Build the credential payload of the quoted action (paying the deposit or top-up
        first for ``open``/``topUp``)."""
        action: Action = quote.details["action"]
        session_id = str(quote.details["session_id"])
        if action in ("bearer", "close"):
            secret = self.store.secret(session_id)
            if secret is None:
                raise NothingSent(f"lightning session {session_id}: its preimage is not recorded")
            if action == "close":
                yield JournalWrite(lambda: self.store.set_state(session_id, "closing"))
            return PaymentProof(
                payload={"action": action, "sessionId": session_id, "preimage": secret.reveal()},
                # Its own reference: the session id names the deposit's journal entry.
                reference=f"{session_id}/{action}/{quote.challenge.id}",
                money_moved=False,
            )
        if action == "open":
            return (yield from self._open(quote, context))
        return (yield from self._top_up(quote))

    def _open(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        payment_hash = str(quote.details["payment_hash"])
        idle = int(quote.details["idle_timeout"])
        expiry = max(self.return_expiry_seconds, 2 * idle)
        # The return invoice first: a wallet that cannot issue it stops the open unpaid.
        try:
            created = yield from self._receiver.create_amountless_invoice(
                "mpp session refund", expiry
            )
        except PaymentRefused:
            raise
        except NothingSent:
            raise
        except Exception as exc:
            raise NothingSent(
                f"lightning session: the return invoice could not be issued ({type(exc).__name__})"
            ) from None
        return_hash = self._check_return_invoice(created.invoice, expiry, context)
        origin = _origin(context.origin)
        channel = NewChannel(
            id=payment_hash,
            method=_METHOD,
            origin=origin,
            payee=str(quote.details["payee"]),
            currency="sat",
            network=self.network,
            lookup_key=_key(origin),
            details={
                "realm": quote.challenge.realm,
                "returnInvoice": created.invoice,
                "returnHash": return_hash,
                "idleTimeout": idle,
                "unitPrice": quote.details["unit_price"],
            },
            deposit=quote.amount.amount,
            # The whole prepaid balance is the server's to draw: "signed" is the deposit.
            highest_signed=quote.amount.amount,
            deposit_ref=payment_hash,
        )
        yield JournalWrite(lambda: self.store.open(channel))
        yield Checkpoint("broadcast", payment_hash)
        try:
            preimage = yield from pay_invoice(
                self._payer,
                str(quote.details["invoice"]),
                payment_hash,
                self.max_fee_sats,
                challenge_id=quote.challenge.id,
            )
        except NothingSent:
            yield JournalWrite(lambda: self.store.set_state(payment_hash, "evicted"))
            raise
        # Durable before the preimage can leave: a restart resumes the session with it.
        yield JournalWrite(lambda: self.store.set_secret(payment_hash, preimage))
        return PaymentProof(
            payload={"action": "open", "preimage": preimage, "returnInvoice": created.invoice},
            reference=payment_hash,
            money_moved=True,
        )

    def _check_return_invoice(self, text: str, expiry: int, context: PaymentContext) -> str:
        try:
            invoice = decode_invoice(text)
        except InvoiceError as exc:
            raise NothingSent(f"lightning session: the return invoice is unusable: {exc}") from None
        now = context.now if context.now.tzinfo is not None else context.now.replace(tzinfo=UTC)
        problem = None
        if invoice.amount_msat is not None:
            problem = "it has an amount"
        elif invoice.network != self.network:
            problem = f"it is for {invoice.network}"
        elif invoice.expires_at - now < timedelta(seconds=expiry - 60):
            problem = "it expires too soon"
        if problem is not None:
            raise NothingSent(
                f"lightning session: the {self._receiver.name} return invoice: {problem}"
            )
        return invoice.payment_hash

    def _top_up(self, quote: Quote) -> Generator[Effect, Any, PaymentProof]:
        payment_hash = str(quote.details["payment_hash"])
        session_id = str(quote.details["session_id"])
        yield Checkpoint("broadcast", payment_hash)
        preimage = yield from pay_invoice(
            self._payer,
            str(quote.details["invoice"]),
            payment_hash,
            self.max_fee_sats,
            challenge_id=quote.challenge.id,
        )
        # The top-up is paid: it belongs to the session's deposit whatever the server answers.
        record = self.store.get(session_id)
        deposit = (record.deposit if record is not None else 0) + quote.amount.amount

        def grow() -> None:
            self.store.topped_up(session_id, deposit, payment_hash)
            self.store.record_voucher(session_id, deposit, "prepaid")

        yield JournalWrite(grow)
        return PaymentProof(
            payload={"action": "topUp", "sessionId": session_id, "topUpPreimage": preimage},
            reference=payment_hash,
            money_moved=True,
        )

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        """A bearer or close credential carries no value: refused, it is void."""
        return quote.details.get("action") in ("bearer", "close")
        yield  # pragma: no cover

    def on_receipt(self, quote: Quote, proof: PaymentProof, receipt: Receipt | None) -> None:
        """The server accepted the action: an ``open`` makes the session usable; a receipt's
        ``spent`` (the session's total, when the server reports it) is checked."""
        session_id = str(quote.details["session_id"])
        if receipt is not None and receipt.reference != session_id:
            log.warning("lightning session: a receipt names another session; ignored")
            return
        if quote.details["action"] == "open":
            self.store.accept(session_id, 0)
        if receipt is not None:
            spent = receipt.extra.get("spent")
            if isinstance(spent, int) and not isinstance(spent, bool):
                self._reported(session_id, spent)

    def _reported(self, session_id: str, spent: int) -> bool:
        """Record a spend the server reported; ``False`` (and no more top-ups) when it is
        more than was deposited."""
        record = self.store.get(session_id)
        deposited = record.deposit if record is not None else 0
        with self._lock:
            self._spent[session_id] = max(self._spent.get(session_id, 0), spent)
        if spent > deposited:
            if record is not None and not record.details.get("overclaimed"):
                # Durable: a restarted wallet must not top this session up again.
                self.store.note(session_id, overclaimed=True)
            return False
        self.store.accept(session_id, spent)
        return True

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """What became of a deposit or top-up payment (its payment hash). A bearer or close
        credential (``<session>/<action>/<challenge>``) moved no money: ``failed``."""
        if "/" in reference:
            return LookupResult("failed", reference, detail="a session credential moves no money")
        return (yield from self._payer.lookup(reference.lower()))

    # --- top-up and close outside a stream -----------------------------------------------------

    def top_up(self, client: Any, url: str, **kwargs: Any) -> Any:
        """Top the session with ``url``'s origin up: the next 402 is paid as ``topUp``
        (``client``: an ``httpx.Client`` or ``requests`` session that pays with this wallet).
        Returns the response (``{"status": "ok"}``)."""
        with self._expecting(_url_origin(url), "topUp"):
            return client.get(url, **kwargs)

    async def atop_up(self, client: Any, url: str, **kwargs: Any) -> Any:
        """``top_up`` with an ``httpx.AsyncClient``."""
        with self._expecting(_url_origin(url), "topUp"):
            return await client.get(url, **kwargs)

    def close(self, client: Any, url: str, **kwargs: Any) -> SessionClosed:
        """Close the session with ``url``'s origin and check the refund (see ``SessionClosed``).
        ``client``: an ``httpx.Client`` or ``requests`` session paying with this wallet."""
        from mpp_client.runner import run_sync

        origin = _url_origin(url)
        record = self._closable(origin)
        if record.state == "closing":
            # The close was sent before: only the refund is left to check.
            return run_sync(self._settle(record.id, None))
        with self._expecting(origin, "close"):
            response = client.get(url, **kwargs)
        body = _close_body(response.status_code, response.content)
        return run_sync(self._settle(record.id, body))

    async def aclose(self, client: Any, url: str, **kwargs: Any) -> SessionClosed:
        """``close`` with an ``httpx.AsyncClient``."""
        from mpp_client.runner import run_async

        origin = _url_origin(url)
        record = self._closable(origin)
        if record.state == "closing":
            return await run_async(self._settle(record.id, None))
        with self._expecting(origin, "close"):
            response = await client.get(url, **kwargs)
        body = _close_body(response.status_code, response.content)
        return await run_async(self._settle(record.id, body))

    def _closable(self, origin: str) -> ChannelRecord:
        found = self.store.find(_METHOD, _key(origin), states=("open", "opening", "closing"))
        if not found:
            raise PaymentRefused(f"lightning session: no session with {origin} to close")
        return found[0]

    @contextlib.contextmanager
    def _expecting(self, origin: str, action: Action) -> Iterator[None]:
        """Inside this block (this thread or task only), the next 402 of ``origin`` is answered
        with ``action`` instead of ``bearer``; concurrent requests elsewhere are unaffected."""
        token = _EXPECTED.set((id(self), origin, action))
        try:
            yield
        finally:
            _EXPECTED.reset(token)

    def _expected(self, origin: str) -> Action | None:
        found = _EXPECTED.get()
        if found is None or found[0] != id(self) or found[1] != origin:
            return None
        return found[2]

    def _settle(
        self, session_id: str, body: Mapping[str, Any] | None
    ) -> Generator[Effect, Any, SessionClosed]:
        """Compare the refund with what is owed and with what arrived; release what arrived."""
        record = self.store.get(session_id)
        if record is None:
            raise PaymentRefused(f"lightning session {session_id} is not recorded")
        spent = self.spent(session_id)
        expected = max(record.deposit - spent, 0)
        claimed = body.get("refundSats") if body is not None else None
        claimed = claimed if isinstance(claimed, int) and not isinstance(claimed, bool) else None
        status = body.get("refundStatus") if body is not None else None
        return_hash = str(record.details.get("returnHash", ""))
        received: Received = yield from self._receiver.lookup_received(return_hash)
        arrived = received.amount_sat if received.status == "received" else None
        if received.status == "received" and arrived is None:
            arrived = claimed  # the wallet shows it paid but not how much: take the claim
        nothing_owed = expected == 0 and claimed in (0, None)
        if received.status == "unpaid" and nothing_owed:
            arrived = 0
        if arrived is not None:
            refund = min(arrived, record.deposit)
            yield JournalWrite(
                lambda: self.store.settle_close(
                    session_id, paid=record.deposit - refund, refund=refund
                )
            )
        else:
            yield JournalWrite(lambda: self.store.set_state(session_id, "closing"))
        problem = None
        if received.status == "unpaid" and not nothing_owed:
            # Nothing arrived (yet): the session stays ``closing`` and out of the budgets'
            # favour; a later ``close`` looks again.
            problem = RefundShort(
                f"lightning session {session_id}: nothing has arrived on the return invoice "
                f"({expected} sat owed, the server says {claimed} sat, {status})",
                expected=expected,
                claimed=claimed,
                received=0,
            )
        elif claimed is not None and claimed < expected:
            problem = RefundShort(
                f"lightning session {session_id}: the server refunded {claimed} sat but owes "
                f"{expected} sat ({record.deposit} deposited, {spent} spent by its reports)",
                expected=expected,
                claimed=claimed,
                received=arrived,
            )
        elif arrived is not None and arrived < (claimed if claimed is not None else expected):
            problem = RefundShort(
                f"lightning session {session_id}: {arrived} sat arrived on the return invoice "
                f"but {claimed if claimed is not None else expected} sat are owed",
                expected=expected,
                claimed=claimed,
                received=arrived,
            )
        if problem is not None:
            log.warning("%s", problem)
        return SessionClosed(
            session_id=session_id,
            deposited=record.deposit,
            spent=spent,
            expected=expected,
            claimed=claimed,
            received=arrived,
            refund_status=status if isinstance(status, str) else None,
            problem=problem,
        )

    # --- metered streams -----------------------------------------------------------------------

    def stream_handler(self, context: StreamContext) -> _StreamHandler | None:
        """Meter a paid ``text/event-stream`` of a session (``mpp_client.session``)."""
        quote = context.payment.quote
        if quote is None or quote.intent != "session":
            return None
        session_id = str(quote.details["session_id"])
        return _StreamHandler(self, context, session_id, self.spent(session_id))


class _StreamHandler:
    """Answers ``payment-need-topup`` with a top-up while the stream stays open; records
    ``session-timeout`` and the final ``payment-receipt``."""

    control_events = _CONTROL_EVENTS

    def __init__(
        self, method: LightningSession, context: StreamContext, session_id: str, spent_before: int
    ) -> None:
        self._method = method
        self._context = context
        self._session_id = session_id
        self._spent_before = spent_before

    def on_event(self, event: SseEvent) -> Generator[Any, Any, None]:
        stream = self._context.stream
        stream.control_events += 1
        if event.event == "payment-receipt":
            receipt = receipt_from_event(event.data)
            if receipt.reference != self._session_id:
                raise SessionStreamError(
                    "lightning session: the stream's receipt names another session",
                    money_moved=False,
                )
            spent = receipt.extra.get("spent")
            if isinstance(spent, int) and not isinstance(spent, bool):
                stream.spent = spent
                if not self._method._reported(self._session_id, self._spent_before + spent):
                    stream.details["overclaimed"] = True
            stream.receipt = receipt
            return
        info = _event_object(event.data)
        if info.get("sessionId") != self._session_id:
            raise SessionStreamError(
                "lightning session: a control event names another session", money_moved=False
            )
        spent = info.get("balanceSpent")
        if isinstance(spent, int) and not isinstance(spent, bool) and spent >= 0:
            honest = self._method._reported(self._session_id, spent)
        else:
            honest = True
        if event.event == "session-timeout":
            stream.details["session_timeout"] = {"balanceSpent": spent}
            return
        if not honest:
            stream.details["overclaimed"] = True
            raise SessionTopUpRefused(
                f"lightning session {self._session_id}: the server reports {spent} sat spent, "
                "more than was deposited; no top-up",
                money_moved=False,
            )
        yield from self._top_up()
        stream.details["topups"] = int(stream.details.get("topups", 0)) + 1

    def on_end(self, complete: bool) -> Generator[Any, Any, None]:
        return None
        yield  # pragma: no cover

    def _top_up(self) -> Generator[Any, Any, None]:
        """Fetch a fresh 402, reserve and pay its invoice, send ``topUp`` on the side."""
        context, method = self._context, self._method
        fresh = yield SideRequest("GET", dict(context.request_headers))
        challenges = [
            c
            for c in parse_challenges(_values(fresh.headers.get("www-authenticate")))
            if c.method == _METHOD and c.intent == "session"
        ]
        if fresh.status != 402 or not challenges:
            raise SessionTopUpRefused(
                f"lightning session: asking for a top-up challenge got HTTP {fresh.status}",
                money_moved=False,
            )
        origin = _origin(context.origin)
        pay_context = PaymentContext(
            origin=origin,
            url=context.url,
            http_method=context.http_method,
            now=utcnow(context.clock),
            call_id=uuid.uuid4().hex,
        )
        with method._expecting(origin, "topUp"):
            quote = method.quote(challenges[0], pay_context)
        options = PaymentOptions()
        context.guard.check(quote, pay_context, options)
        reservation = yield from context.guard.reserve(quote, pay_context, options)
        left = False
        try:
            proof_gen = method.pay(quote, pay_context)
            reply: Any = None
            while True:
                try:
                    effect = proof_gen.send(reply)
                except StopIteration as done:
                    proof: PaymentProof = done.value
                    break
                if isinstance(effect, Checkpoint):
                    left = True
                    yield JournalWrite(partial(reservation.broadcast, effect.reference))
                    reply = None
                else:
                    reply = yield effect
            credential = Credential(challenge=quote.challenge, payload=proof.payload)
            header = credential.to_header()
            name = (quote.challenge.header or "authorization").lower()
            fingerprint = _fingerprint(header)
            yield JournalWrite(lambda: reservation.sent(fingerprint, proof.reference))
            headers = {**context.request_headers, name: header}
            answer = yield SideRequest("GET", headers)
        except NothingSent as exc:
            why = str(exc)
            yield JournalWrite(lambda: reservation.failed(why, money_moved=False))
            raise SessionTopUpRefused(f"lightning session: top-up not paid: {why}") from None
        except PaymentRefused as exc:
            why = str(exc)
            yield JournalWrite(lambda: reservation.failed(why, money_moved=False))
            raise
        except BaseException as exc:
            kind = type(exc).__name__
            if not left:
                yield JournalWrite(
                    lambda: reservation.failed("top-up abandoned", money_moved=False)
                )
                raise
            yield JournalWrite(lambda: reservation.unknown(f"top-up: {kind}"))
            if isinstance(exc, Exception):
                raise PaymentOutcomeUnknown(
                    f"lightning session: the top-up may have been paid ({kind})",
                    challenge_id=quote.challenge.id,
                    reference=quote.reference,
                ) from None
            raise
        if 200 <= answer.status < 300:
            receipt = _header_receipt(answer.headers.get("payment-receipt"))
            yield JournalWrite(
                lambda: reservation.settled(receipt, proof.reference, receipt_reference=None)
            )
            return
        # The preimage is out: the top-up is paid whatever the server answered.
        reason = f"the top-up credential was answered {answer.status}"
        yield JournalWrite(lambda: reservation.failed(reason, money_moved=True))
        raise SessionTopUpRefused(f"lightning session: {reason}", money_moved=True)


def _origin(origin: str) -> str:
    return origin.rstrip("/").lower()


def _url_origin(url: str) -> str:
    from urllib.parse import urlsplit

    from mpp_client.flow import origin_of

    parts = urlsplit(url)
    return _origin(origin_of(parts.scheme, parts.hostname or "", parts.port))


def _key(origin: str) -> str:
    return f"origin:{origin}"


def _values(value: str | None) -> list[str]:
    return [] if value is None else [value]


def _fingerprint(header: str) -> str:
    from mpp_client.flow import fingerprint

    return fingerprint(header)


def _event_object(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise SessionStreamError(
            "lightning session: a control event is not JSON", money_moved=False
        ) from None
    if not isinstance(value, dict):
        raise SessionStreamError(
            "lightning session: a control event is not a JSON object", money_moved=False
        )
    return value


def _header_receipt(value: str | None) -> Receipt | None:
    if value is None:
        return None
    try:
        return parse_receipt(value)
    except MppError:
        return None


def _close_body(status: int, content: bytes) -> Mapping[str, Any] | None:
    if not 200 <= status < 300:
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("status") == "closed" else None
