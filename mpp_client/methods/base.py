"""The payment method interface: what a method must do to take part in the 402 flow.

A method answers three questions, in this order, for each challenge it may pay:

1. ``quote(challenge, context)``: what would paying cost? Pure and fast, no I/O. Every check the
   method can make before signing happens here (chain, token, amount shape, splits, expiry,
   invoice fields). It returns a ``Quote`` or raises ``PaymentRefused`` with the reason.
2. ``pay(quote, context)``: a generator of effects (see ``mpp_client.effects``) that signs or
   pays and returns a ``PaymentProof`` (the credential payload). It yields ``Checkpoint`` before
   anything it produced can move value, so the journal knows the reference first.
3. ``lookup(reference, void_after=...)``: a generator that finds out what became of an earlier
   payment whose outcome was unknown.
4. ``abandon(quote, proof)``: when the server did not accept a credential, a generator that
   tries to make it void (revoke a token) and returns ``True`` only with PROOF that it can no
   longer settle; otherwise the amount stays held (see ``mpp_client.lifecycle``).

``payer(network)`` names the account that pays (recorded in the journal, so reconciliation
never reads "not found" from another backend as "failed").

The flow runs the wallet's policy between 1 and 2: nothing is signed unless the quote passed.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from mpp_client.effects import Effect
from mpp_client.errors import ChallengeExpired
from mpp_client.methods.config import MethodConfigError
from mpp_client.money import Money

if TYPE_CHECKING:
    from mpp_client.methods.config import SecretField, SecretLoader
    from mpp_client.protocol import Challenge, Receipt

__all__ = [
    "LookupResult",
    "Payee",
    "PaymentContext",
    "PaymentMethod",
    "PaymentProof",
    "Quote",
    "refuse_if_expiring",
]


@dataclass(frozen=True, slots=True)
class Payee:
    """Who receives money and how much of the quoted total (base units of the quote currency)."""

    address: str
    amount: int


@dataclass(frozen=True, slots=True)
class PaymentContext:
    """What the flow knows about the request being paid for.

    ``origin`` is ``scheme://host[:port]`` of the request the caller made (after any same-origin
    redirects); ``now`` is the flow's clock so checks and signatures agree on time.
    ``url`` is the full request URL and ``http_method`` its verb (``"GET"``, ``"POST"``, ...).
    """

    origin: str
    url: str
    http_method: str
    now: datetime
    #: The same for every payment attempt of one logical request (re-challenges included), so
    #: a guard can cap what one call spends in total.
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    """What paying one challenge would cost, before anything is signed.

    ``amount`` is the total in base units of its currency (the sum of ``payees`` amounts).
    ``network`` is the chain or network (``"eip155:42431"``, ``"mainnet"``, ...). ``expires`` is
    when the offer stops being payable (the earliest of the challenge's and the method's own
    limits, e.g. an invoice expiry). ``details`` carries method facts the method's ``pay`` needs
    (mode, fee payer, invoice); it never carries secrets.
    """

    challenge: Challenge
    method: str
    intent: str
    amount: Money
    payees: tuple[Payee, ...]
    expires: datetime | None
    network: str | None = None
    max_fee: Money | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None

    @property
    def exposure(self) -> Money:
        """The most this payment can take: amount plus the maximum fee when it is in the same
        currency (Lightning routing fees)."""
        if self.max_fee is not None and self.max_fee.currency == self.amount.currency:
            return self.amount + self.max_fee
        return self.amount


@dataclass(frozen=True, slots=True)
class PaymentProof:
    """The result of ``pay``: the credential payload and what it means for the money.

    ``payload`` goes into the credential as is. ``source`` is the payer identity (a DID) when the
    method sends one. ``reference`` is the method's payment reference (tx hash, payment hash,
    token id). ``money_moved`` says whether value already left (push mode, Lightning, a used
    token) rather than only being authorised (a signed transaction the server broadcasts).
    """

    payload: Mapping[str, Any]
    source: str | None = None
    reference: str | None = None
    money_moved: bool = False
    #: For non-MPP compatibility modes only: headers to send on the paid retry INSTEAD of an
    #: ``Authorization: Payment`` credential (e.g. ``x-handcash-receipt``). ``None`` for MPP.
    retry_headers: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        # The payload is a bearer secret (signed transaction, preimage, token): never shown.
        return (
            f"PaymentProof(reference={self.reference!r}, source={self.source!r}, "
            f"money_moved={self.money_moved})"
        )


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What a method found out about an earlier payment: ``settled``, ``failed`` or ``pending``.

    ``failed`` is a proof, never a guess: the method knows that no value moved and none can
    (a reverted transaction, one past its ``valid_before`` and not on chain, a payment the
    paying backend reports as failed). "Not found yet" is ``pending``. ``amount`` is in base
    units when the method could read it.
    """

    status: Literal["settled", "failed", "pending"]
    reference: str
    amount: int | None = None
    detail: str | None = None


class PaymentMethod(abc.ABC):
    """A way to pay challenges of one ``name`` (``"tempo"``, ``"lightning"``, ...)."""

    #: The challenge ``method`` this pays (lower case).
    name: str
    #: The challenge intents this pays, e.g. ``frozenset({"charge"})``.
    intents: frozenset[str]
    #: One line saying what a configured wallet of this method pays with (``mpp wallet``).
    config_summary: ClassVar[str] = ""

    @classmethod
    def config_secrets(cls, settings: Mapping[str, object]) -> tuple[SecretField, ...]:
        """The secrets ``from_config`` reads for a wallet with these ``settings`` (see
        ``mpp_client.methods.config``). Default: none."""
        return ()

    @classmethod
    def from_config(cls, settings: Mapping[str, object], secrets: SecretLoader) -> Self:
        """Build the method from a configured wallet's ``settings`` (plain values) and its
        ``secrets`` (read only when needed); ``MethodConfigError`` names a bad setting. Methods
        that can be configured override this (see ``mpp_client.methods.config``)."""
        raise MethodConfigError(f"{cls.__name__} cannot be built from configuration")

    def synthesize_challenges(
        self, origin: str, headers: Mapping[str, str], body: bytes
    ) -> list[Challenge]:
        """Turn a non-MPP 402 (no ``WWW-Authenticate: Payment``) into challenges this method
        can pay, for opt-in per-site compatibility modes. ``headers`` are lower-cased; ``body``
        is the whole 402 body (bounded). Default: none, so non-MPP 402s are returned untouched.
        """
        return []

    def use_history(self, already_paid: Callable[[str], bool]) -> None:
        """Called by the wallet that holds this method with its journal's answer to "was value
        already sent for this payment reference?", so a method whose payments are keyed by a
        reference the server chooses (a Lightning payment hash) never pays one twice. Default:
        not needed."""
        return None

    def payer(self, network: str | None) -> str | None:
        """A stable, non-secret identity of the account that pays on ``network`` (e.g.
        ``"tempo:eip155:4217:0xabc..."``, ``"lightning:lnd:<node pubkey>"``), recorded with
        each payment. Reconciliation looks a payment up only with a method that pays as the
        same identity. Default: ``None`` (not recorded, not compared)."""
        return None

    def can_pay(self, challenge: Challenge) -> bool:
        """Whether ``challenge`` is for this method and one of its intents."""
        return challenge.method == self.name and challenge.intent in self.intents

    @abc.abstractmethod
    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check ``challenge`` and price it without I/O; raise ``PaymentRefused`` to decline."""

    @abc.abstractmethod
    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Sign or pay ``quote``; yield effects; return the proof for the credential."""

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """Find out what became of the payment with ``reference``. ``void_after`` is the time
        after which its authorization can no longer settle, when the method reported one at its
        ``signed`` checkpoint (a Tempo ``valid_before``). Default: cannot tell (``pending``)."""
        return _pending(reference)
        yield  # pragma: no cover - makes this a generator for subclasses that do not override

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        """Called when a credential left but the server did not accept it. Try to make it void
        (e.g. revoke an unused Stripe token) and return ``True`` only when it is PROVEN that it
        can no longer settle; ``False`` keeps the amount held as unknown until ``lookup``
        decides. Default: ``False`` (a server that holds a credential may still use it)."""
        return False
        yield  # pragma: no cover

    def on_receipt(self, quote: Quote, proof: PaymentProof, receipt: Receipt | None) -> None:
        """Called after the server accepted the payment (optional hook for methods)."""
        return None

    def on_gone(self, quote: Quote, proof: PaymentProof) -> None:
        """Called when the server answered the paid request 410 Gone: what the credential
        named (a session's channel) no longer exists there, so a method that keeps sessions
        stops reusing it. The payment's outcome is recorded by the flow as usual."""
        return None


def refuse_if_expiring(
    expires: datetime | None, now: datetime, margin: float, challenge: Challenge
) -> None:
    """Raise ``ChallengeExpired`` when ``expires`` is within ``margin`` seconds of ``now``
    (methods that need more time than the flow's own margin, e.g. to create a token, call
    this with their ``expiry_margin``)."""
    if expires is not None and now >= expires - timedelta(seconds=margin):
        raise ChallengeExpired(
            f"the challenge expires at {expires.isoformat()}, too soon to pay",
            challenge=challenge,
        )


def _pending(reference: str) -> LookupResult:
    return LookupResult("pending", reference, detail="this method cannot look payments up")
