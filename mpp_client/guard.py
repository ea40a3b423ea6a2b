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
   value, following ``mpp_client.lifecycle``: ``signed`` -> ``broadcast`` -> ``sent`` ->
   ``settled`` | ``failed`` | ``unknown``. A hold is released only with a proof.

``mpp_client.wallet.Wallet`` is the full implementation (spend policy, SQLite journal, key
store). ``OpenGuard`` below allows everything and remembers nothing; it exists for tests of the
wire flow and is never a default.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mpp_client.effects import Effect
from mpp_client.lifecycle import PaymentState, Proof, allowed_sources, holds, release_needs_proof
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
    """One payment's hold on the budgets and its journal entry, moved through the lifecycle of
    ``mpp_client.lifecycle``.

    Each call is written durably before it returns. ``reference`` is the method's payment
    reference (tx hash, payment hash, ...); ``fingerprint`` is a SHA-256 of the credential
    header value, never the credential.

    Optional: an implementation whose steps do no I/O (kept in memory) may set the class
    attribute ``steps_block = False``; the flow then writes its steps directly instead of
    handing each to an async driver's journal thread (a hand-off costs more than such a step).
    """

    @property
    def id(self) -> str:
        """The journal entry id."""
        ...

    def signed(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        """A credential or transaction now exists (nothing has left the process yet).
        ``void_after``: when it can no longer settle, if the method knows."""
        ...

    def broadcast(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        """The method is about to send value itself (push mode, a Lightning payment).
        ``void_after``: as for ``signed``, when the flow writes a signature with this step."""
        ...

    def sent(
        self, fingerprint: str, reference: str | None, *, void_after: datetime | None = None
    ) -> None:
        """The credential is about to leave the process. The flow writes a ``signed``
        checkpoint the method returned right after with this step (one write instead of
        two): ``reference`` is then what was signed, ``void_after`` when it can no longer
        settle."""
        ...

    def settled(
        self, receipt: Receipt | None, reference: str | None, *, receipt_reference: str | None
    ) -> None:
        """The server accepted the payment; the reservation becomes spending.
        ``receipt_reference`` is the receipt's own reference when it differs from
        ``reference`` (what was signed or broadcast)."""
        ...

    def failed(self, reason: str, *, money_moved: bool | None, proof: Proof | None = None) -> None:
        """The payment did not go through. ``money_moved=False`` releases the hold, which
        after ``broadcast``/``sent`` needs a ``proof`` (without one the payment is recorded as
        unknown); ``True`` keeps the amount as spent; ``None`` records it as unknown."""
        ...

    def unknown(self, reason: str) -> None:
        """The outcome cannot be known now; the amount stays held until resolved."""
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
    """An in-memory reservation that follows the same lifecycle rules as the journal, so
    tests of the wire flow can assert what became of the money (``held``, ``money_moved``,
    ``proof``) without a wallet."""

    id: str
    quote: Quote
    state: PaymentState = "reserved"
    reference: str | None = None
    fingerprint: str | None = None
    receipt: Receipt | None = None
    receipt_reference: str | None = None
    reason: str | None = None
    money_moved: bool | None = None
    proof: Proof | None = None
    void_after: datetime | None = None
    #: Every state written, in order.
    history: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """Whether the amount still counts against the budgets."""
        return holds(self.state, self.money_moved)

    @property
    def released(self) -> bool:
        """Whether the hold was released (proven: nothing moved)."""
        return not self.held

    def _move(self, state: PaymentState) -> bool:
        if self.state not in allowed_sources(state):
            return False
        self.state = state
        self.history.append(state)
        return True

    def signed(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        if self._move("signed"):
            self.reference = reference or self.reference
            self.void_after = void_after or self.void_after

    def broadcast(self, reference: str | None, *, void_after: datetime | None = None) -> None:
        if self._move("broadcast"):
            self.reference = reference or self.reference
            self.void_after = void_after or self.void_after

    def sent(
        self, fingerprint: str, reference: str | None, *, void_after: datetime | None = None
    ) -> None:
        if self._move("sent"):
            self.fingerprint = fingerprint or self.fingerprint
            self.reference = reference or self.reference
            self.void_after = void_after or self.void_after

    def settled(
        self, receipt: Receipt | None, reference: str | None, *, receipt_reference: str | None
    ) -> None:
        if self._move("settled"):
            self.receipt = receipt
            self.reference = reference or self.reference
            self.receipt_reference = receipt_reference

    def failed(self, reason: str, *, money_moved: bool | None, proof: Proof | None = None) -> None:
        if money_moved is None or (
            money_moved is False and proof is None and release_needs_proof(self.state)
        ):
            self.unknown(reason)
            return
        if self._move("failed"):
            self.reason, self.money_moved, self.proof = reason, money_moved, proof

    def unknown(self, reason: str) -> None:
        if self._move("unknown"):
            self.reason = reason


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
