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
import uuid
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

from mpp_client.effects import Await, Effect
from mpp_client.errors import PaymentVetoed
from mpp_client.guard import PaymentOptions, Reservation
from mpp_client.methods.base import PaymentContext, PaymentMethod, Quote
from mpp_client.money import Money
from mpp_client.wallet import budget as _budget
from mpp_client.wallet.budget import BudgetScope, active_budgets
from mpp_client.wallet.journal import (
    Journal,
    NewPayment,
    PaymentRecord,
    PaymentState,
    SqliteJournal,
    default_journal_path,
    write_csv,
    write_jsonl,
)
from mpp_client.wallet.keystore import KeyStore
from mpp_client.wallet.policy import SpendPolicy, assess
from mpp_client.wallet.prices import PriceSource
from mpp_client.wallet.reconcile import Reconciled, areconcile, reconcile

if TYPE_CHECKING:
    import httpx

    from mpp_client.wallet.quote import WalletQuote

__all__ = ["Approval", "Wallet", "WalletReservation"]

log = logging.getLogger("mpp_client.wallet")

#: The approval callback: given the quote and the request context, say yes (``True``) or no.
#: It may be sync (it may block, e.g. ask a human; it then runs in a worker thread under async
#: clients) or async. Anything but ``True`` is a no.
Approval = Callable[[Quote, PaymentContext], "bool | Awaitable[bool]"]


class WalletReservation:
    """One payment's hold on the budgets and its journal entry (see ``guard.Reservation``).

    Each method writes the new state to the journal before returning.
    """

    __slots__ = ("_journal", "_scopes", "id", "quote")

    def __init__(
        self, journal: Journal, entry_id: str, quote: Quote, scopes: Sequence[BudgetScope]
    ) -> None:
        self._journal = journal
        self._scopes = tuple(scopes)
        self.id = entry_id
        self.quote = quote

    def signed(self, reference: str | None) -> None:
        self._journal.advance(self.id, "signed", reference=reference or None)

    def sent(self, fingerprint: str, reference: str | None) -> None:
        self._journal.advance(
            self.id, "sent", fingerprint=fingerprint or None, reference=reference or None
        )

    def settled(self, receipt: Any, reference: str | None) -> None:
        self._journal.advance(self.id, "settled", receipt=receipt, reference=reference or None)

    def failed(self, reason: str, *, money_moved: bool) -> None:
        applied = self._journal.advance(self.id, "failed", reason=reason, money_moved=money_moved)
        if applied and not money_moved:
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
    for a throwaway one, or ``None`` for ``default_journal_path()``. ``keystore``: where method
    secrets live (optional; methods may be given keys directly). ``approve``: a callback that
    must say yes before each payment (or only those the policy marks, see
    ``SpendPolicy.approve_above``). ``prices``: dollar prices for caps written in USD over
    currencies that are not pegged (without it those payments are refused).

    On start-up, entries left in flight by processes that died become ``unknown``; unknown
    entries are logged as a warning and listed by ``unknown_payments()`` until ``reconcile()``.
    """

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
    ) -> None:
        if isinstance(prefer, str):
            raise TypeError("prefer is a sequence of method names, not one string")
        self.methods: tuple[PaymentMethod, ...] = tuple(methods)
        self.prefer: tuple[str, ...] = tuple(prefer)
        self.policy = policy if policy is not None else SpendPolicy()
        if journal is None:
            journal = default_journal_path()
        self.journal: Journal = (
            SqliteJournal(journal) if isinstance(journal, (str, os.PathLike)) else journal
        )
        self.keystore = keystore
        self.approve = approve
        self.prices = prices
        self.journal.recover()
        for method in self.methods:
            method.use_history(self.already_paid)
        unknown = self.unknown_payments()
        if unknown:
            log.warning(
                "%d payment(s) have an unknown outcome (ids %s); their amounts stay reserved "
                "until Wallet.reconcile() resolves them",
                len(unknown),
                ", ".join(record.id for record in unknown[:10]),
            )

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.methods)
        return f"Wallet(methods=[{names}], journal={self.journal!r})"

    # --- PaymentGuard --------------------------------------------------------------------------

    def check(self, quote: Quote, context: PaymentContext, options: PaymentOptions) -> None:
        """Raise a ``PolicyViolation`` subclass if ``quote`` would be refused now (budgets as
        the journal stands, active ``budget`` scopes, allowlists, pins). Writes nothing."""
        assess(
            self.policy,
            quote,
            context,
            options,
            self.journal.ledger(),
            prices=self.prices,
            scopes=active_budgets(),
            approver=self.approve is not None,
        )

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
        if approve is not None:
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
        return self._hold(quote, context, options, scopes, approved)

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
        entry_id: str | None = None
        try:
            with self.journal.atomic() as ledger, _budget.LOCK:
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
        """Payments whose outcome is unknown (their amounts stay reserved)."""
        return self.journal.payments(state="unknown")

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
