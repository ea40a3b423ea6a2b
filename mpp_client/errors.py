"""One exception tree for everything mpp_client raises.

Every error says what happened to the money. The tree::

    MppError
    ├── ProtocolError                 bad bytes on the wire (nothing is paid because of them)
    │   ├── ParseError                a header or object does not follow the grammar
    │   ├── EncodingError             base64url / UTF-8 / JSON decoding failed
    │   └── FormatError               a value cannot be written (CR/LF, non-token header name, ...)
    ├── PaymentRefused                refused BEFORE anything was signed: no money moved
    │   ├── NoPayableChallenge        no challenge passed the method checks (reasons per challenge)
    │   ├── ChallengeExpired          the chosen challenge expires too soon
    │   ├── UnreplayableBody          the request body cannot be re-sent byte-identically
    │   ├── CrossOriginPayment        the 402 came from another origin than the caller asked
    │   ├── InsecureOrigin            plain http to a non-loopback host
    │   ├── PaymentVetoed             a before-payment hook or the approval callback said no
    │   ├── AlreadyPaid               this payment reference (an invoice) was paid or is being paid
    │   └── PolicyViolation           the wallet's spend policy said no
    │       ├── BudgetExceeded        a cap or window total would be exceeded
    │       ├── NotAllowed            origin / payee / chain / token / method not on an allowlist
    │       ├── PayeeChanged          a pinned (trust-on-first-use) payee, token or chain changed
    │       ├── PriceUnavailable      a USD cap could not be evaluated for this currency
    │       └── UnresolvedPayments    too many payments have an unknown outcome (circuit breaker)
    ├── PaymentFailed                 the attempt failed; ``money_moved`` says if value may be gone
    │   ├── NothingSent               the method PROVES no value moved or can move (released)
    │   ├── MethodError               the payment backend (RPC, LND, Stripe, ...) failed
    │   │   └── EffectFailed          an HTTP call of the method failed (``delivered`` says if it
    │   │                             may have reached the server)
    │   ├── PaymentRejected           the server answered the paid retry with 402 again
    │   └── HumanActionRequired       the payer must act (e.g. a card needs 3-D Secure)
    ├── PaymentOutcomeUnknown         a credential left the process and no answer came back
    ├── KeyStoreError                 key storage is unavailable, locked or unsafe
    ├── JournalError                  the payment journal cannot be written or read
    │   └── JournalUnavailable        its database is unreachable (a hold: nothing was paid)
    └── MissingExtra                  an install extra is missing (also an ``ImportError``)

``money_moved`` is on every error and has three values: ``False`` (proven: no value moved and
none can, the hold on the budgets is released), ``True`` (value left: the amount counts as
spent) and ``None`` (not known: the amount stays held until a receipt, a lookup or a proof that
the authorization can no longer settle decides). ``None`` is the default of every error that
is not a refusal; only ``PaymentRefused`` (nothing was signed) and ``NothingSent`` (the method
proves it) say ``False``.

Messages never contain secrets: credentials, preimages, tokens and keys are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge, Problem

__all__ = [
    "AlreadyPaid",
    "BudgetExceeded",
    "ChallengeExpired",
    "CrossOriginPayment",
    "EffectFailed",
    "EncodingError",
    "FormatError",
    "HumanActionRequired",
    "InsecureOrigin",
    "JournalError",
    "JournalUnavailable",
    "KeyStoreError",
    "MethodError",
    "MissingExtra",
    "MppError",
    "NoPayableChallenge",
    "NotAllowed",
    "NothingSent",
    "ParseError",
    "PayeeChanged",
    "PaymentFailed",
    "PaymentOutcomeUnknown",
    "PaymentRefused",
    "PaymentRejected",
    "PaymentVetoed",
    "PolicyViolation",
    "PriceUnavailable",
    "ProtocolError",
    "UnreplayableBody",
    "UnresolvedPayments",
]


class MppError(Exception):
    """Base of every error raised by mpp_client.

    Errors raised by a driver carry the caller's ``request`` and, when there was one, the last
    ``response`` (already read and closed), like httpx errors do.
    """

    request: Any = None
    response: Any = None
    #: ``False``: proven that no value moved or can move; ``True``: value left; ``None``: not
    #: known (the amount stays held until the journal entry is resolved).
    money_moved: bool | None = None


# --- wire format -------------------------------------------------------------------------------


class ProtocolError(MppError, ValueError):
    """Bytes on the wire do not follow the MPP protocol."""


class ParseError(ProtocolError):
    """A header value or decoded object does not follow the grammar."""


class EncodingError(ParseError):
    """base64url, UTF-8 or JSON decoding failed."""


class FormatError(ProtocolError):
    """A value cannot be written to the wire (e.g. it contains CR or LF)."""


# --- refused before paying ---------------------------------------------------------------------


class PaymentRefused(MppError):
    """The payment was refused before anything was signed. No money moved.

    ``challenge`` is the challenge that was being considered, when there was one.
    """

    money_moved = False

    def __init__(self, reason: str, *, challenge: Challenge | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge


class NoPayableChallenge(PaymentRefused):
    """None of the server's challenges could be paid.

    ``refusals`` maps each considered challenge id to why it was refused; ``errors`` holds the
    typed refusal of each challenge a configured method could have paid.
    """

    def __init__(
        self,
        reason: str,
        *,
        refusals: Mapping[str, str] | None = None,
        challenges: Sequence[Challenge] = (),
        errors: Sequence[PaymentRefused] = (),
    ) -> None:
        super().__init__(reason)
        self.refusals: dict[str, str] = dict(refusals or {})
        self.challenges = tuple(challenges)
        self.errors = tuple(errors)


class ChallengeExpired(PaymentRefused):
    """The challenge has expired or expires within the safety margin."""


class UnreplayableBody(PaymentRefused):
    """The request body cannot be sent again byte-identically, so it cannot be paid for."""


class CrossOriginPayment(PaymentRefused):
    """The 402 was reached through a redirect to another origin."""


class InsecureOrigin(PaymentRefused):
    """Paying over plain http is refused except for loopback hosts."""


class PaymentVetoed(PaymentRefused):
    """A before-payment hook or the approval callback declined the payment."""


class AlreadyPaid(PaymentRefused):
    """The payment reference (e.g. a Lightning invoice's payment hash) was paid before, or a
    payment for it is in flight or unknown: it is never paid twice."""


class PolicyViolation(PaymentRefused):
    """The spend policy refused the payment. ``rule`` names the rule that refused."""

    def __init__(
        self, reason: str, *, rule: str = "policy", challenge: Challenge | None = None
    ) -> None:
        super().__init__(reason, challenge=challenge)
        self.rule = rule


class BudgetExceeded(PolicyViolation):
    """A per-payment cap, scoped budget, rolling window or lifetime total would be exceeded."""


class NotAllowed(PolicyViolation):
    """The origin, payee, chain, token or method is not on the configured allowlist."""


class PayeeChanged(PolicyViolation):
    """The payee, token or chain pinned on first use for this origin has changed."""


class PriceUnavailable(PolicyViolation):
    """A cap in USD could not be evaluated because no price was available (fail closed)."""


class UnresolvedPayments(PolicyViolation):
    """Too many payments have an unknown outcome: the wallet pays nothing more until they are
    resolved (``mpp journal reconcile``, or by hand with ``mpp journal resolve``).

    ``entry_ids`` are the unresolved journal entries.
    """

    def __init__(self, reason: str, *, entry_ids: Sequence[str] = ()) -> None:
        super().__init__(reason, rule="wallet.max_unknown")
        self.entry_ids = tuple(entry_ids)


# --- failed after trying -----------------------------------------------------------------------


class PaymentFailed(MppError):
    """The payment attempt failed.

    ``money_moved`` is ``None`` (not known: the amount stays held) unless the raiser knows:
    ``True`` when value left, ``False`` only with proof that none moved or can (raise
    ``NothingSent`` for that).
    """

    def __init__(
        self,
        reason: str,
        *,
        money_moved: bool | None = None,
        challenge_id: str | None = None,
        reference: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.money_moved = money_moved
        self.challenge_id = challenge_id
        self.reference = reference


class NothingSent(PaymentFailed):
    """The method proves that no value moved and none can: nothing left the process, the
    backend gave a definite refusal before paying, or what left can no longer settle (an
    expired, never-mined transaction; a revoked, unused token). The hold is released.

    Raise it only with such a proof: any other error after something left the process keeps
    the amount held as an unknown outcome.
    """

    def __init__(
        self, reason: str, *, challenge_id: str | None = None, reference: str | None = None
    ) -> None:
        super().__init__(reason, money_moved=False, challenge_id=challenge_id, reference=reference)


class MethodError(PaymentFailed):
    """The payment backend (chain RPC, Lightning node, Stripe, HandCash) failed."""


class EffectFailed(MethodError):
    """An HTTP call a method needed failed after the allowed retries, or an ``Await`` (an
    async backend such as NWC or Spark) did not finish within its timeout.

    ``delivered`` is false when the request certainly never reached the server (a connect
    failure), true when it may have (a read timeout): a method that was broadcasting value must
    then treat the outcome as unknown.
    """

    def __init__(self, reason: str, *, delivered: bool) -> None:
        super().__init__(reason)
        self.delivered = delivered


class PaymentRejected(PaymentFailed):
    """The server answered the paid retry with another 402.

    ``problem`` is the RFC 9457 problem the server sent, when it sent one. ``money_moved`` is
    ``False`` only when the method proved the credential void (then a fresh challenge may be
    paid under ``PaymentOptions.max_payments``), ``True`` when value had left before the
    answer (push mode, Lightning), ``None`` while the server may still settle what it holds.
    """

    def __init__(
        self,
        reason: str,
        *,
        problem: Problem | None = None,
        money_moved: bool | None = None,
        challenge_id: str | None = None,
        reference: str | None = None,
    ) -> None:
        super().__init__(
            reason, money_moved=money_moved, challenge_id=challenge_id, reference=reference
        )
        self.problem = problem


class HumanActionRequired(PaymentFailed):
    """The payer must act before this payment can go through (``action`` says what)."""

    def __init__(self, reason: str, *, action: str | None = None) -> None:
        super().__init__(reason)
        self.action = action


class PaymentOutcomeUnknown(MppError):
    """A credential left the process and no answer came back.

    The payment may or may not have settled. mpp_client never signs again on its own; the
    journal keeps the entry as ``unknown`` (its amount held) until it is reconciled with the
    method's lookup or resolved by hand. ``reference`` is the method's payment reference (a
    transaction hash, a payment hash, ...); ``journal_id`` the journal entry, when known.
    """

    money_moved: bool | None = None
    journal_id: str | None = None
    #: The RFC 9457 problem of the last answer, when the server sent one.
    problem: Problem | None = None

    def __init__(self, reason: str, *, challenge_id: str, reference: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge_id = challenge_id
        self.reference = reference


class KeyStoreError(MppError):
    """Key storage is unavailable, locked, or would store secrets unsafely."""


class JournalError(MppError):
    """The payment journal cannot be written or read."""


class JournalUnavailable(JournalError):
    """The journal's database could not be reached, or went away before a write was confirmed
    (``PostgresJournal``). Raised by a hold: the payment was refused and nothing was signed.
    Raised by a later step: that step did not happen, and an entry whose credential may have
    left stays held until it is reconciled."""


class MissingExtra(MppError, ImportError):
    """A feature needs an install extra that is not installed; raised when the object that needs
    it is built (or its module imported), never in the middle of a payment: nothing was signed.

    ``extra`` is the extra to install (``"tempo"``), ``name`` the missing module, ``feature``
    what needed it. The message says how to install it from a checkout and from a wheel (see
    ``mpp_client.extras``).
    """

    money_moved: bool | None = False

    def __init__(self, extra: str, module: str, feature: str) -> None:
        from mpp_client import __version__

        super().__init__(
            f"{feature} needs the {extra!r} extra (module {module!r} is not installed): "
            f"run  pip install -e '.[{extra}]'  in a checkout of mpp_client, or  pip install "
            f"'dist/mpp_client-{__version__}-py3-none-any.whl[{extra}]'  with a built wheel",
            name=module,
        )
        self.extra = extra
        self.feature = feature
