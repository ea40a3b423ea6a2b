"""The contract between the payment flow and whatever guards the money (the wallet).

The flow never decides on its own whether money may be spent. For each payment it asks a
``PaymentGuard``:

1. ``check(quote, context, options)``: would this quote be allowed? No side effects. The flow
   uses it to choose among challenges (a refused challenge makes the flow try the next one).
2. ``reserve(quote, context, options)``: a generator (it may yield ``Await`` effects for an
   approval callback) that atomically re-checks the policy, reserves the amount against every
   budget, writes a ``reserved`` journal entry, and returns a ``Reservation``. It raises a
   ``PolicyViolation`` or ``PaymentVetoed`` to refuse.
3. The flow then reports progress on the reservation, always before the step it names can move
   value: ``signed`` -> ``sent`` -> ``settled`` | ``failed`` | ``unknown``.

``mpp_client.wallet.Wallet`` is the full implementation (spend policy, SQLite journal, key
store). ``OpenGuard`` below allows everything and remembers nothing; it exists for tests of the
wire flow and is never a default.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from mpp_client.effects import Effect
from mpp_client.money import Money

if TYPE_CHECKING:
    from mpp_client.methods.base import PaymentContext, Quote
    from mpp_client.protocol import Receipt

__all__ = [
    "OpenGuard",
    "PaymentGuard",
    "PaymentOptions",
    "Reservation",
]


@dataclass(frozen=True, slots=True)
class PaymentOptions:
    """Per-request payment options, passed as ``request.extensions["mpp"]`` (httpx) or the
    ``mpp=`` keyword (requests session).

    ``max_amount``: refuse any payment above this for this request (base units of its currency;
    a payment in another currency is refused). ``never_pay``: return 402s untouched.
    ``dry_run``: stop after choosing a challenge; the 402 comes back with the quote attached.
    ``max_payments``: credentials allowed for this logical request (default 1: one signature per
    request; more lets the flow pay a fresh challenge when a paid retry is answered with 402 and
    no money moved). ``label``: free text stored in the journal.
    """

    max_amount: Money | None = None
    never_pay: bool = False
    dry_run: bool = False
    max_payments: int = 1
    label: str | None = None

    def __post_init__(self) -> None:
        if self.max_payments < 1:
            raise ValueError("max_payments must be >= 1")


@runtime_checkable
class Reservation(Protocol):
    """One payment's hold on the budgets and its journal entry.

    Each call is written durably before it returns. ``reference`` is the method's payment
    reference (tx hash, payment hash, ...); ``fingerprint`` is a SHA-256 of the credential
    header value, never the credential.
    """

    @property
    def id(self) -> str:
        """The journal entry id."""
        ...

    def signed(self, reference: str | None) -> None:
        """A credential or transaction now exists (nothing has left the process yet)."""
        ...

    def sent(self, fingerprint: str, reference: str | None) -> None:
        """The credential is about to leave the process, or the method is about to broadcast
        value itself (then ``fingerprint`` is ``""``). May be called twice for one payment (a
        broadcast, then the credential): the later call fills in the fingerprint."""
        ...

    def settled(self, receipt: Receipt | None, reference: str | None) -> None:
        """The server accepted the payment; the reservation becomes spending."""
        ...

    def failed(self, reason: str, *, money_moved: bool) -> None:
        """The payment did not go through. When ``money_moved`` is false the reservation is
        released; otherwise it is kept as spent (value may be gone)."""
        ...

    def unknown(self, reason: str) -> None:
        """The outcome cannot be known now; the reservation is kept until reconciled."""
        ...


class PaymentGuard(Protocol):
    """What the flow asks before and while paying. See the module docstring."""

    def check(self, quote: Quote, context: PaymentContext, options: PaymentOptions) -> None:
        """Raise ``PolicyViolation`` if ``quote`` would be refused. No side effects."""
        ...

    def reserve(
        self, quote: Quote, context: PaymentContext, options: PaymentOptions
    ) -> Generator[Effect, Any, Reservation]:
        """Atomically check and reserve ``quote``; may yield ``Await`` for approval."""
        ...


@dataclass(slots=True)
class _OpenReservation:
    id: str
    quote: Quote
    state: Literal["reserved", "signed", "sent", "settled", "failed", "unknown"] = "reserved"
    reference: str | None = None
    fingerprint: str | None = None
    receipt: Receipt | None = None
    reason: str | None = None

    def signed(self, reference: str | None) -> None:
        self.state, self.reference = "signed", reference or self.reference

    def sent(self, fingerprint: str, reference: str | None) -> None:
        self.state, self.fingerprint = "sent", fingerprint
        self.reference = reference or self.reference

    def settled(self, receipt: Receipt | None, reference: str | None) -> None:
        self.state, self.receipt = "settled", receipt
        self.reference = reference or self.reference

    def failed(self, reason: str, *, money_moved: bool) -> None:
        self.state, self.reason = "failed", reason

    def unknown(self, reason: str) -> None:
        self.state, self.reason = "unknown", reason


@dataclass(slots=True)
class OpenGuard:
    """Allows every payment and keeps its reservations in memory (``entries``).

    For tests of the wire flow only: it enforces nothing (the flow itself enforces
    ``PaymentOptions.max_amount`` whatever the guard).
    """

    entries: list[_OpenReservation] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def check(self, quote: Quote, context: PaymentContext, options: PaymentOptions) -> None:
        return None

    def reserve(
        self, quote: Quote, context: PaymentContext, options: PaymentOptions
    ) -> Generator[Effect, Any, Reservation]:
        self.check(quote, context, options)
        entry = _OpenReservation(f"open-{next(self._ids)}", quote)
        self.entries.append(entry)
        return entry
        yield  # pragma: no cover - a generator like every guard's reserve
