"""``Wallet``: payment methods, spend policy, journal and key store in one object.

It is the ``PaymentGuard`` the flow asks before and while paying (``mpp_client.guard``), and
what the drivers take as ``wallet=``::

    wallet = Wallet([TempoCharge(...)], policy=SpendPolicy(), journal="payments.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client, \
         wallet.budget(usd("0.50"), label="research"):
        client.get("https://api.example.com/paid")
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import datetime
from functools import partial
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

from mpp_client.clock import SYSTEM_CLOCK, Clock, utcnow
from mpp_client.effects import Await, Effect, JournalRead, JournalWrite
from mpp_client.errors import PaymentVetoed, UnresolvedPayments
from mpp_client.guard import PaymentOptions, Reservation
from mpp_client.lifecycle import Proof
from mpp_client.methods.base import PaymentContext, PaymentMethod, Quote
from mpp_client.money import Money
from mpp_client.wallet import budget as _budget
from mpp_client.wallet.budget import BudgetScope, active_budgets
from mpp_client.wallet.journal import (
    Journal,
    NewPayment,
    PaymentRecord,
    PaymentState,
    default_journal_path,
    open_journal,
    write_csv,
    write_jsonl,
)
from mpp_client.wallet.keystore import KeyStore
from mpp_client.wallet.policy import SpendPolicy, assess
from mpp_client.wallet.prices import PriceSource
from mpp_client.wallet.reconcile import (
    Reconciled,
    apply_lookup,
    areconcile,
    combine,
    lookups_of,
    method_of,
    reconcile,
    skip_reason,
)

if TYPE_CHECKING:
    import httpx

    from mpp_client.wallet.quote import WalletQuote

__all__ = ["DEFAULT_MAX_UNKNOWN", "Approval", "Wallet", "WalletReservation"]

log = logging.getLogger("mpp_client.wallet")

#: Default of ``Wallet(max_unknown=...)``: unresolved unknown outcomes before new payments are
#: refused.
DEFAULT_MAX_UNKNOWN = 3
#: Expired unknown payments looked up, at most, when the breaker would refuse a payment.
_LAZY_LOOKUPS = 8

#: The approval callback: given the quote and the request context, say yes (``True``) or no.
#: It may be sync (it may block, e.g. ask a human; it then runs in a worker thread under async
#: clients) or async. Anything but ``True`` is a no.
Approval = Callable[[Quote, PaymentContext], "bool | Awaitable[bool]"]


class _PendingHold:
    """A hold whose caller may go away while it runs in another thread (an async driver's
    journal worker): whichever of the two ends last releases a committed hold nothing was
    signed against, as ``failed`` with no money moved (proven: no credential exists). Without
    this, a task cancelled mid-hold left a ``reserved`` entry held with no one to release it.
    """

    __slots__ = ("_ended", "_held", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended: str | None = None
        self._held: WalletReservation | None = None

    def run(self, hold: Callable[[], WalletReservation]) -> WalletReservation:
        """Hold (in whatever thread performs the step), unless the caller already went away."""
        with self._lock:
            ended = self._ended
        if ended is not None:
            raise _HoldWithdrawn(ended)
        held = hold()
        with self._lock:
            ended = self._ended
            if ended is None:
                self._held = held
                return held
        _release_unsigned(held, ended)
        raise _HoldWithdrawn(ended)

    def abandon(self, exc: BaseException) -> None:
        """The caller goes away with ``exc``: release the hold if it committed (a hold still
        running releases itself when it ends; one not begun never holds)."""
        if isinstance(exc, _HoldWithdrawn):
            return
        with self._lock:
            if self._ended is not None:
                return
            self._ended = type(exc).__name__
            held, self._held = self._held, None
        if held is not None:
            _release_unsigned(held, self._ended)


class _HoldWithdrawn(Exception):
    """A hold performed after its caller went away (nobody receives it)."""


def _release_unsigned(held: WalletReservation, why: str) -> None:
    try:
        held.failed(f"ended before anything was signed: {why}", money_moved=False)
    except Exception:  # the journal failed: the entry stays held for reconciliation
        log.warning("payment %s: could not release a hold its caller left", held.id)


class WalletReservation:
    """One payment's hold on the budgets and its journal entry (see ``guard.Reservation``).

    Each method writes the new state to the journal before returning, except ``settled`` on
    a journal that writes it in the background (``settles_in_background``).
    """

    __slots__ = ("_journal", "_later", "_scopes", "id", "quote")

    def __init__(
        self, journal: Journal, entry_id: str, quote: Quote, scopes: Sequence[BudgetScope]
    ) -> None:
        self._journal = journal
        self._scopes = tuple(scopes)
        self.id = entry_id
        self.quote = quote
        # The SQLite journal's background write (``SqliteJournal.advance_later``), if it has one.
        self._later: Callable[..., None] | None = getattr(journal, "advance_later", None)

    @property
    def settles_in_background(self) -> bool:
        """Whether ``settled`` returns at once, its write left to the journal's writer thread
        (it never blocks: the flow may call it on an event loop). Safe because a lost mark
        leaves the entry ``sent``, held as much as ``settled`` and reconciled after a crash."""
        return self._later is not None

    def signed(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        self._journal.advance(self.id, "signed", reference=reference or None, void_after=void_after)

    def broadcast(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        self._journal.advance(
            self.id, "broadcast", reference=reference or None, void_after=void_after
        )

    def sent(
        self, fingerprint: str, reference: str | None, *, void_after: datetime | None = None
    ) -> None:
        self._journal.advance(
            self.id,
            "sent",
            fingerprint=fingerprint or None,
            reference=reference or None,
            void_after=void_after,
        )

    def settled(
        self, receipt: Any, reference: str | None, *, receipt_reference: str | None = None
    ) -> None:
        if self._later is not None:
            self._later(
                self.id,
                "settled",
                receipt=receipt,
                reference=reference or None,
                receipt_reference=receipt_reference,
            )
            return
        self._journal.advance(
            self.id,
            "settled",
            receipt=receipt,
            reference=reference or None,
            receipt_reference=receipt_reference,
        )

    def failed(self, reason: str, *, money_moved: bool | None, proof: Proof | None = None) -> None:
        applied = self._journal.advance(
            self.id, "failed", reason=reason, money_moved=money_moved, proof=proof
        )
        if applied and money_moved is False:
            # The journal decides whether the release was proven; scopes follow it.
            record = self._journal.get(self.id)
            if record is not None and not record.held:
                for scope in self._scopes:
                    scope.release(self.id)

    def unknown(self, reason: str) -> None:
        self._journal.advance(self.id, "unknown", reason=reason)

    def __repr__(self) -> str:
        return f"WalletReservation({self.id!r}, {self.quote.exposure})"


class Wallet:
    """Pays within the owner's limits and remembers every payment.

    ``methods``: payment methods, tried in ``prefer`` order (``"tempo"`` or ``"tempo/charge"``)
    then the server's order. ``policy``: the ``SpendPolicy`` (default: ``SpendPolicy()``, whose
    safe limits are in ``DEFAULT_LIMITS``). ``journal``: a ``Journal``, a file path, ``":memory:"``
    for a throwaway one, a ``postgresql://`` URL for a journal a fleet shares
    (``PostgresJournal``), or ``None`` for ``$MPP_JOURNAL_URL``, else
    ``default_journal_path()``. ``keystore``: where method secrets live (optional; methods may
    be given keys directly). ``approve``: a callback that must say yes before each payment (or
    only those the policy marks, see ``SpendPolicy.approve_above``). ``prices``: dollar prices
    for caps written in USD over currencies that are not pegged (without it those payments are
    refused). ``max_unknown``:
    the circuit breaker: while this many payments have an unknown outcome, new payments are
    refused with ``UnresolvedPayments`` until ``reconcile()`` or ``resolve()`` settles them
    (default 3: a server or backend that keeps losing answers costs at most three held
    amounts; ``None`` turns the breaker off). ``clock``: where every time the wallet and its
    journal compare comes from (default: the system clock).

    On start-up, entries left in flight by processes that died become ``unknown``; unknown
    entries are logged as a warning and listed by ``unknown_payments()`` until ``reconcile()``.
    """

    #: ``check`` reads the journal (running totals, pins): the flow runs it as a
    #: ``JournalRead`` effect, so async drivers do it in their journal worker thread.
    check_blocks: ClassVar[bool] = True
    #: ``reserve`` re-assesses every rule ``check`` does inside its atomic hold, so the flow
    #: may leave the check to it when the check could not change which challenge is paid.
    reserve_checks: ClassVar[bool] = True

    def __init__(
        self,
        methods: Sequence[PaymentMethod] = (),
        *,
        policy: SpendPolicy | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        keystore: KeyStore | None = None,
        prefer: Sequence[str] = (),
        approve: Approval | None = None,
        prices: PriceSource | None = None,
        max_unknown: int | None = DEFAULT_MAX_UNKNOWN,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(prefer, str):
            raise TypeError("prefer is a sequence of method names, not one string")
        self.methods: tuple[PaymentMethod, ...] = tuple(methods)
        self.prefer: tuple[str, ...] = tuple(prefer)
        self.policy = policy if policy is not None else SpendPolicy()
        if max_unknown is not None and max_unknown < 1:
            raise ValueError("max_unknown must be at least 1 (or None to turn the breaker off)")
        self.max_unknown = max_unknown
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        if journal is None:
            # A fleet's shared database ($MPP_JOURNAL_URL) wins over the local file.
            journal = os.environ.get("MPP_JOURNAL_URL") or default_journal_path()
        self.journal: Journal = (
            open_journal(journal, clock=self.clock)
            if isinstance(journal, (str, os.PathLike))
            else journal
        )
        self.keystore = keystore
        self.approve = approve
        # (quote, origin, options, approval reasons) of the last ``check``, for ``reserve``.
        self._looked: tuple[Quote, str, PaymentOptions, list[str]] | None = None
        self.prices = prices
        self.journal.recover()
        for method in self.methods:
            method.use_history(self.already_paid)
            # Session methods keep their channel records in this journal's database.
            use_journal = getattr(method, "use_journal", None)
            if callable(use_journal):
                use_journal(self.journal, self.clock)
        unknown = self.unknown_payments()
        if unknown:
            log.warning(
                "%d payment(s) have an unknown outcome (ids %s); their amounts stay held "
                "until `mpp journal reconcile` (Wallet.reconcile) or `mpp journal resolve` "
                "(Wallet.resolve) settles them",
                len(unknown),
                ", ".join(record.id for record in unknown[:10]),
                # The CLI shows its own note instead (once, on the commands that pay or count).
                extra={"mpp_unknown_payments": len(unknown)},
            )

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.methods)
        return f"Wallet(methods=[{names}], journal={self.journal!r})"

    # --- PaymentGuard --------------------------------------------------------------------------

    def check(self, quote: Quote, context: PaymentContext, options: PaymentOptions) -> None:
        """Raise a ``PolicyViolation`` subclass if ``quote`` would be refused now (budgets as
        the journal stands, active ``budget`` scopes, allowlists, pins). Writes nothing."""
        result = assess(
            self.policy,
            quote,
            context,
            options,
            self.journal.ledger(call_id=context.call_id),
            prices=self.prices,
            scopes=active_budgets(),
            approver=self.approve is not None,
        )
        if self.approve is not None:
            # The flow checks the quote it chose just before reserving it: remember what this
            # look said about approval, so reserve need not assess (and read the running
            # totals) a second time before the hold's own atomic assessment. Advisory only:
            # the hold re-assesses everything and refuses an unapproved payment itself.
            self._looked = (quote, context.origin, options, result.approval)

    def reserve(
        self, quote: Quote, context: PaymentContext, options: PaymentOptions
    ) -> Generator[Effect, Any, Reservation]:
        """Ask for approval when needed (an ``Await`` effect), then atomically re-check every
        rule against what is held in the journal and write a ``reserved`` entry."""
        scopes = active_budgets()
        approved = False
        approve = self.approve
        # Without an approval callback the atomic check below is the only one needed; with
        # one, a first look refuses early (before bothering anyone) and says whether to ask.
        needs_approval = False
        looked, self._looked = self._looked, None
        if (
            approve is not None
            and looked is not None
            and looked[0] is quote
            and looked[1] == context.origin
            and looked[2] is options
        ):
            needs_approval = self.policy.approve_above is None or bool(looked[3])
        elif approve is not None:
            first = assess(
                self.policy,
                quote,
                context,
                options,
                self.journal.ledger(),
                prices=self.prices,
                scopes=scopes,
                approver=True,
            )
            needs_approval = self.policy.approve_above is None or bool(first.approval)
        if approve is not None and needs_approval:
            asynchronous = inspect.iscoroutinefunction(approve)
            answer = yield Await(lambda: approve(quote, context), blocking=not asynchronous)
            if answer is not True:
                raise PaymentVetoed(
                    f"the approval callback declined paying {quote.exposure} to {context.origin}",
                    challenge=quote.challenge,
                )
            approved = True

        # The hold (the breaker, a write transaction and its commit) runs as an effect: async
        # drivers run it in a worker thread, off the event loop. What follows it up to the
        # next effect (the flow signing, its next journal step) calls no hook and may run
        # there too (``resume_in_worker``): one hand-off for the hold and the sent step.
        pending = _PendingHold()

        def hold() -> WalletReservation:
            return pending.run(lambda: self._hold(quote, context, options, scopes, approved))

        try:
            try:
                held: WalletReservation = yield JournalWrite(hold, resume_in_worker=True)
            except UnresolvedPayments as tripped:
                # Rare: before refusing, see whether expired credentials can now be proven void.
                if not (yield from self._settle_expired(tripped.entry_ids)):
                    raise
                held = yield JournalWrite(hold, resume_in_worker=True)
        except BaseException as exc:
            # The caller went away (cancelled, interrupted, a deadline) while the hold ran or
            # before it was delivered: nothing was signed against it, so release it.
            pending.abandon(exc)
            raise
        return held

    def _settle_expired(self, unresolved: Sequence[str]) -> Generator[Effect, Any, bool]:
        """Look up the unknown payments whose authorization has expired (a Tempo transaction
        past ``valid_before``): the method can now prove them settled or void, so a wallet is
        not blocked by credentials a server refused and can no longer use. Returns whether any
        was resolved."""
        resolved = False
        now = utcnow(self.clock)
        journal = self.journal
        for entry_id in unresolved[:_LAZY_LOOKUPS]:
            # Journal reads and writes are effects: async drivers do them off the event loop.
            record: PaymentRecord | None = yield JournalRead(partial(journal.get, entry_id))
            if record is None or record.void_after is None or record.void_after > now:
                continue
            method = method_of(record, self.methods)
            if method is None or skip_reason(record, method) is not None:
                continue
            results = []
            try:
                for lookup in lookups_of(record, method):
                    results.append((yield from lookup))
            except Exception:
                log.info("payment %s: lookup failed; it stays unknown", entry_id)
                continue
            found = combine(results)
            outcome = yield JournalWrite(partial(apply_lookup, journal, record, found))
            resolved = resolved or outcome.outcome in ("settled", "failed")
        return resolved

    def _hold(
        self,
        quote: Quote,
        context: PaymentContext,
        options: PaymentOptions,
        scopes: tuple[BudgetScope, ...],
        approved: bool,
    ) -> WalletReservation:
        labels = [scope.label for scope in scopes]
        if options.label:
            labels.append(options.label)
        # Without a call id every payment is its own call (the flow always sets one).
        call_id = context.call_id or uuid.uuid4().hex
        if call_id != context.call_id:
            context = PaymentContext(
                context.origin, context.url, context.http_method, context.now, call_id
            )
        challenge = quote.challenge
        # A journal whose transaction can list unresolved entries counts them inside the hold's
        # own transaction (one read fewer); others are asked first.
        in_hold = getattr(self.journal, "breaker_in_transaction", False)
        if not in_hold:
            self._check_breaker(self.journal.unresolved)
        method = next((m for m in self.methods if m.name == quote.method), None)
        payer = method.payer(quote.network) if method is not None else None
        entry_id: str | None = None
        try:
            with self.journal.atomic() as ledger, _budget.LOCK:
                if in_hold:
                    self._check_breaker(ledger.unresolved)  # type: ignore[attr-defined]
                result = assess(
                    self.policy,
                    quote,
                    context,
                    options,
                    ledger,
                    prices=self.prices,
                    scopes=scopes,
                    approver=self.approve is not None,
                    approved=approved,
                )
                if result.approval and not approved:
                    raise PaymentVetoed(
                        "this payment needs approval: " + "; ".join(result.approval),
                        challenge=challenge,
                    )
                entry_id = ledger.insert(
                    NewPayment(
                        call_id=call_id,
                        challenge_id=challenge.id,
                        realm=challenge.realm,
                        origin=context.origin.rstrip("/").lower(),
                        url=context.url,
                        http_method=context.http_method,
                        method=quote.method,
                        intent=quote.intent,
                        amount=quote.amount,
                        exposure=quote.exposure.amount,
                        max_fee=quote.max_fee,
                        network=quote.network,
                        payees=quote.payees,
                        expires=quote.expires,
                        label="/".join(labels) or None,
                        payer=payer,
                        reference=quote.reference,
                    )
                )
                if result.pin is not None:
                    ledger.set_pin(context.origin.rstrip("/").lower(), quote.method, result.pin)
                for scope in scopes:
                    scope.hold(entry_id, quote.exposure)
        except BaseException:
            if entry_id is not None:
                for scope in scopes:
                    scope.release(entry_id)
            raise
        return WalletReservation(self.journal, entry_id, quote, scopes)

    def _check_breaker(self, unresolved_ids: Callable[[], list[str]]) -> None:
        if self.max_unknown is None:
            return
        unresolved = unresolved_ids()
        if len(unresolved) >= self.max_unknown:
            shown = ", ".join(unresolved[:5])
            raise UnresolvedPayments(
                f"{len(unresolved)} payment(s) have an unknown outcome ({shown}); nothing more "
                "is paid until they are resolved: run `mpp journal reconcile`, or settle them "
                "by hand with `mpp journal resolve ID settled|failed --note TEXT`",
                entry_ids=unresolved,
            )

    # --- budgets -------------------------------------------------------------------------------

    def budget(self, limit: Money, *, label: str | None = None) -> BudgetScope:
        """A scoped budget: ``with wallet.budget(usd("0.50"), label="task-7"):`` caps what is
        paid inside the block (every wallet, every client; nested budgets all apply). ``limit``
        is dollars or a native currency, base units."""
        return BudgetScope(limit, label=label)

    # --- journal -------------------------------------------------------------------------------

    def payments(
        self,
        *,
        state: PaymentState | Sequence[PaymentState] | None = None,
        origin: str | None = None,
        method: str | None = None,
        reference: str | None = None,
        label: str | None = None,
        limit: int | None = None,
    ) -> list[PaymentRecord]:
        """Journal entries matching every filter, oldest first."""
        return self.journal.payments(
            state=state, origin=origin, method=method, reference=reference, label=label,
            limit=limit,
        )  # fmt: skip

    def unknown_payments(self) -> list[PaymentRecord]:
        """Payments whose outcome is unknown (their amounts stay held), this process's own
        included: a flow that was abandoned after its credential left is recorded as unknown
        at once."""
        return self.journal.payments(state="unknown")

    def resolve(
        self, entry_id: str, outcome: Literal["settled", "failed"], note: str
    ) -> PaymentRecord:
        """Settle or fail an unknown payment by hand, recorded as the owner's decision
        (``proof="owner"``, ``note`` as the reason). ``failed`` releases the hold: say so only
        when you know no value moved (e.g. the merchant confirmed it). Raises ``ValueError``
        when the entry does not exist or is not unknown."""
        if outcome not in ("settled", "failed"):
            raise ValueError("outcome must be 'settled' or 'failed'")
        if not note or not note.strip():
            raise ValueError("say why in a note: it is stored with the entry")
        record = self.journal.get(entry_id)
        if record is None:
            raise ValueError(f"no journal entry {entry_id!r}")
        if record.state != "unknown":
            raise ValueError(
                f"journal entry {entry_id} is {record.state}; only unknown payments are resolved"
            )
        reason = f"resolved by the owner: {note.strip()}"
        if outcome == "settled":
            applied = self.journal.advance(entry_id, "settled", reason=reason, proof="owner")
        else:
            applied = self.journal.advance(
                entry_id, "failed", reason=reason, money_moved=False, proof="owner"
            )
        resolved = self.journal.get(entry_id)
        if not applied or resolved is None:
            raise ValueError(f"journal entry {entry_id} changed meanwhile; look again")
        return resolved

    def already_paid(self, reference: str) -> bool:
        """Whether value has or may have moved for ``reference`` (a payment hash, a tx hash):
        an entry with it was sent, settled, is unknown, or failed after money moved. A method
        asks this BEFORE its own checkpoint for the reference."""
        return self.journal.already_paid(reference)

    def export(
        self,
        out: str | os.PathLike[str] | IO[str],
        *,
        format: Literal["jsonl", "csv"] = "jsonl",
        state: PaymentState | Sequence[PaymentState] | None = None,
    ) -> int:
        """Write journal entries (with receipts) as JSON lines or CSV; return how many."""
        if format not in ("jsonl", "csv"):
            raise ValueError("format must be 'jsonl' or 'csv'")
        records = self.journal.payments(state=state)
        writer = write_jsonl if format == "jsonl" else write_csv
        if isinstance(out, (str, os.PathLike)):
            with open(out, "w", encoding="utf-8", newline="") as handle:
                return writer(records, handle)
        return writer(records, out)

    def reconcile(self, client: httpx.Client | None = None) -> list[Reconciled]:
        """Resolve unknown payments through each method's ``lookup``: settled ones stay spent,
        failed ones are released, pending ones stay unknown. ``client`` is used for the
        methods' HTTP calls (one is made and closed otherwise)."""
        return reconcile(self.journal, self.methods, client)

    async def areconcile(self, client: httpx.AsyncClient | None = None) -> list[Reconciled]:
        """``reconcile`` for async code."""
        return await areconcile(self.journal, self.methods, client)

    # --- dry run -------------------------------------------------------------------------------

    def quote(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Any = None,
        content: bytes | str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> WalletQuote:
        """What paying for this request would cost, without paying: the chosen challenge,
        price, payees, expiry, method, and whether the policy allows it (with the refusal).
        Sends the request once; ``transport`` is the inner httpx transport (default: network).
        """
        from mpp_client.wallet.quote import dry_run

        return dry_run(self, url, method=method, headers=headers, content=content,
                       transport=transport)  # fmt: skip

    def close(self) -> None:
        """Close the journal."""
        self.journal.close()

    def __enter__(self) -> Wallet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
