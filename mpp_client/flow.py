"""The payment flow: what happens after a 402, written once for every driver.

``payment_flow`` is a generator (sans I/O). A driver (``PaymentTransport``,
``AsyncPaymentTransport``, the requests session) sends the caller's request; when the answer is
a 402 it starts the flow with what it knows, performs the effects the flow yields, and returns
(or raises) what the flow decides. Besides the method effects of ``mpp_client.effects``, the flow
yields ``Send``: "send the caller's request again with these header changes", answered with a
``ResponseHead``; a transport failure of that send is thrown back in as ``SendFailed``.

The rules it enforces (protocol README §1, §8, §12; ARCHITECTURE principles 4 and 5):

- refuse before signing: cross-origin redirects, plain http to non-loopback hosts, bodies that
  cannot be replayed, bodies that do not match the challenge digest, expired challenges,
  challenges no method can pay, quotes the guard (wallet policy) refuses, vetoing hooks;
- pick by the configured preference, then server order; the first challenge that passes wins;
- one credential per logical request unless ``PaymentOptions.max_payments`` allows more, and
  never a second one after value may have moved;
- after a credential left the process: never sign again; resend the same credential at most
  once when the send failed; otherwise report the outcome as unknown;
- every step is written to the guard's reservation (the journal) before it can move value.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from mpp_client.clock import SYSTEM_CLOCK, Clock, utcnow

# The request-body and 402-body limits live with the drivers, which import without the flow.
from mpp_client.driver import DEFAULT_BODY_CAP as DEFAULT_BODY_CAP
from mpp_client.driver import MAX_402_BODY as MAX_402_BODY
from mpp_client.effects import (
    Await,
    Checkpoint,
    JournalRead,
    JournalWrite,
    Sleep,
    on_driver_thread,
)
from mpp_client.errors import (
    BudgetExceeded,
    ChallengeExpired,
    CrossOriginPayment,
    InsecureOrigin,
    MethodError,
    MppError,
    NoPayableChallenge,
    NothingSent,
    PaymentFailed,
    PaymentOutcomeUnknown,
    PaymentRefused,
    PaymentRejected,
    PaymentVetoed,
    PolicyViolation,
    UnreplayableBody,
)
from mpp_client.guard import PaymentGuard, PaymentOptions, Reservation
from mpp_client.lifecycle import Proof
from mpp_client.methods.base import PaymentContext, PaymentMethod, PaymentProof, Quote
from mpp_client.money import Money
from mpp_client.protocol import (
    AcceptPaymentEntry,
    Challenge,
    Credential,
    Problem,
    Receipt,
    digest_matches,
    format_accept_payment,
    parse_challenges,
    parse_problem,
    parse_receipt,
)

__all__ = [
    "DEFAULT_BODY_CAP",
    "FlowConfig",
    "Payment",
    "PaymentHooks",
    "RequestFacts",
    "ResponseHead",
    "Send",
    "SendFailed",
    "needs_body",
    "payment_flow",
]

logger = logging.getLogger("mpp_client")

#: Longest ``Retry-After`` (seconds) the flow waits before paying a fresh challenge.
MAX_RETRY_AFTER = 10.0

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


# --- what flows between the flow and its drivers -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Flow effect: send the caller's request again, byte-identical body, with ``set_headers``
    set (names lower-case) and ``remove_headers`` removed. Answered with a ``ResponseHead``."""

    set_headers: Mapping[str, str]
    remove_headers: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # set_headers holds the credential: names only.
        return f"Send(set={sorted(self.set_headers)}, remove={list(self.remove_headers)})"


class SendFailed(Exception):
    """Thrown into the flow by a driver when a ``Send`` failed at the transport level."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}")
        self.cause = cause


def needs_body(status: int) -> bool:
    """Whether the flow reads the body of a paid retry's answer: error answers carry the RFC
    9457 problem it reports. A success goes to the caller unread, so streams stay streams."""
    return status >= 400


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response as the flow sees it: status, headers (lower-case names, repeated fields kept
    apart), and the body for 402 responses (at most ``MAX_402_BODY`` bytes; empty otherwise)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_list(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the driver knows about the caller's request.

    ``origin`` is ``scheme://host[:port]`` of this request; ``first_origin`` that of the request
    the caller made before any redirect. ``body`` is the buffered body, or ``None`` with
    ``body_problem`` saying why it cannot be replayed. ``headers`` has lower-case names.
    """

    method: str
    url: str
    origin: str
    first_origin: str
    headers: Mapping[str, str]
    body: bytes | None
    body_problem: str | None
    options: PaymentOptions


@dataclass(frozen=True, slots=True)
class Payment:
    """What happened to the payment of one request; attached to the response the caller gets.

    ``status``: ``"paid"`` (accepted; ``receipt`` when the server sent one), ``"rejected"``
    (the paid retry got a 402 again: ``problem`` and ``error`` say why), ``"denied"`` (403 after
    paying: the payment was taken, access refused), ``"unknown"`` (the paid retry failed on the
    server side; see the journal), ``"quoted"`` (dry run: nothing was paid). ``quote`` is what
    was (or would be) paid; amounts are in ``quote.amount`` (base units). ``"unpaid"``: the
    402's challenges are for methods this client has not configured (or use a credential
    header the protocol does not allow), so the 402 came back untouched: ``quote`` is ``None``
    and ``refusal``/``error`` say why. After ``"rejected"``, ``error.money_moved`` tells
    whether the hold was released (``False``: the method proved the credential void).
    """

    status: Literal["paid", "rejected", "denied", "unknown", "quoted", "unpaid"]
    quote: Quote | None
    receipt: Receipt | None = None
    reference: str | None = None
    problem: Problem | None = None
    error: MppError | None = None
    journal_id: str | None = None
    payments: int = 1
    allowed: bool = True
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentHooks:
    """Callbacks on payment events. Notification hooks must not raise (errors are logged and
    ignored); ``before_payment`` may veto: return ``False`` (or raise) to refuse. It may be sync
    or async; it runs after the guard accepted the quote and before anything is signed."""

    on_challenges: Callable[[Sequence[Challenge], PaymentContext], None] | None = None
    on_quote: Callable[[Quote, PaymentContext], None] | None = None
    before_payment: Callable[[Quote, PaymentContext], Any] | None = None
    on_paid: Callable[[Quote, PaymentProof], None] | None = None
    on_receipt: Callable[[Quote, Receipt | None], None] | None = None
    on_failure: Callable[[Quote | None, MppError], None] | None = None


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Everything the flow needs that does not change between requests.

    ``expiry_margin`` (seconds): a challenge expiring sooner than this is not paid.
    ``allow_insecure_http``: pay over plain http to non-loopback hosts (never in production).
    ``clock``: the time every expiry is compared with (``mpp_client.clock``).
    """

    methods: tuple[PaymentMethod, ...]
    guard: PaymentGuard
    prefer: tuple[str, ...] = ()
    hooks: PaymentHooks = field(default_factory=PaymentHooks)
    expiry_margin: float = 5.0
    allow_insecure_http: bool = False
    clock: Clock = SYSTEM_CLOCK
    accept_payment: str = ""

    @classmethod
    def build(
        cls,
        methods: Iterable[PaymentMethod],
        guard: PaymentGuard,
        *,
        prefer: Iterable[str] = (),
        hooks: PaymentHooks | None = None,
        expiry_margin: float = 5.0,
        allow_insecure_http: bool = False,
        clock: Clock | None = None,
    ) -> FlowConfig:
        methods = tuple(methods)
        prefer = tuple(prefer)
        return cls(
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks or PaymentHooks(),
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
            clock=clock if clock is not None else SYSTEM_CLOCK,
            accept_payment=_accept_payment(methods, prefer),
        )


def _accept_payment(methods: Sequence[PaymentMethod], prefer: Sequence[str]) -> str:
    pairs: list[tuple[str, str]] = []
    for method in methods:
        for intent in sorted(method.intents):
            if (method.name, intent) not in pairs:
                pairs.append((method.name, intent))
    if not pairs:
        return ""

    def weight(pair: tuple[str, str]) -> int:
        rank = _rank(pair[0], pair[1], prefer)
        if not prefer:
            return 1000
        return max(100, 1000 - 100 * rank) if rank < len(prefer) else 500

    return format_accept_payment(AcceptPaymentEntry(m, i, weight((m, i))) for m, i in pairs)


def _rank(method: str, intent: str, prefer: Sequence[str]) -> int:
    for index, entry in enumerate(prefer):
        if entry in (method, f"{method}/{intent}"):
            return index
    return len(prefer)


def origin_of(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]`` with the default port left out (the RFC 6454 tuple as text)."""
    default = {"http": 80, "https": 443}.get(scheme)
    host = f"[{host}]" if ":" in host else host
    if port is None or port == default:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (payments over plain http are allowed to it)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def fingerprint(header_value: str) -> str:
    """A SHA-256 fingerprint of a credential, safe to store (the credential is not)."""
    return hashlib.sha256(header_value.encode()).hexdigest()


# --- the flow ----------------------------------------------------------------------------------


def payment_flow(
    config: FlowConfig, facts: RequestFacts, first: ResponseHead
) -> Generator[Any, Any, Payment | None]:
    """Handle a 402 (``first``) for the request ``facts``.

    Returns ``None`` when the 402 is returned to the caller untouched (not an MPP 402, or the
    caller said never to pay), a ``Payment`` with status ``"unpaid"`` when it is returned
    untouched because no configured method recognises its challenges, else the ``Payment`` to
    attach to the response from the last ``Send``. Raises a ``PaymentRefused`` subclass when it
    refused before signing, and ``PaymentOutcomeUnknown`` when a credential left and no
    usable answer came back.

    Whatever ends the flow (a return, an error, ``close()`` by a driver whose caller was
    cancelled, ``KeyboardInterrupt`` thrown in), a payment it started is left in a state that
    tells the truth: released only when nothing left the process, otherwise unknown and held.
    """
    options = facts.options
    if options.never_pay:
        return None
    call_id = uuid.uuid4().hex
    head = first
    last: _Attempt | None = None
    seen: set[str] = set()

    while True:
        challenges = [c for c in _challenges(config, facts, head) if c.id not in seen]
        if not challenges:
            # The first 402 is not an MPP one (it goes back untouched); a later one offered
            # nothing new to pay: the last attempt's outcome stands.
            return None if last is None else last.result
        context = PaymentContext(
            origin=facts.origin,
            url=facts.url,
            http_method=facts.method,
            now=utcnow(config.clock),
            call_id=call_id,
        )
        _notify(config.hooks.on_challenges, challenges, context)
        if last is None:
            unrecognised = _unrecognised(config, challenges)
            if unrecognised is not None:
                return unrecognised
        _refuse_unsafe_request(config, facts, challenges)
        if options.dry_run:
            return (yield from _dry_run(config, facts, challenges, context))
        try:
            quote, method = yield from _choose(config, facts, challenges, context, reserving=True)
            _notify(config.hooks.on_quote, quote, context)
            if config.hooks.before_payment is not None:
                yield from _before_payment(config, quote, context)
            reservation: Reservation = yield from config.guard.reserve(quote, context, options)
        except PaymentRefused:
            if last is None:
                raise
            # A fresh challenge after a void one that is refused before signing (policy, a
            # method that never pays twice for one request): the rejection stands.
            return last.result
        seen.add(quote.challenge.id)
        attempt = _Attempt(config, quote, method, reservation, payments=len(seen))
        try:
            head, again = yield from _attempt(config, facts, attempt, options, context)
        except BaseException as exc:
            replacement = attempt.abandoned(exc)
            if replacement is exc:
                raise
            raise replacement from exc
        if not again:
            return attempt.result
        last = attempt


def _attempt(
    config: FlowConfig,
    facts: RequestFacts,
    attempt: _Attempt,
    options: PaymentOptions,
    context: PaymentContext,
) -> Generator[Any, Any, tuple[ResponseHead, bool]]:
    """Pay ``attempt``, send the paid retry and record what its answer means for the money.

    Returns the last answer and whether a fresh challenge in it may be paid (only when this
    credential is proven void and ``max_payments`` allows another).
    """
    quote, method, reservation = attempt.quote, attempt.method, attempt.reservation
    proof = yield from _pay(method, quote, context, attempt)
    attempt.proof = proof
    credential_headers = _credential_headers(quote.challenge, proof)
    remove = _stale_payment_headers(facts, credential_headers)
    credential_fingerprint = fingerprint("\n".join(sorted(credential_headers.values())))
    if facts.method.upper() not in _IDEMPOTENT_METHODS and "idempotency-key" not in (facts.headers):
        credential_headers["idempotency-key"] = uuid.uuid4().hex
    attempt.left = True  # from here on the credential may be outside the process
    sent_reference, void_after = proof.reference, None
    if attempt.signed is not None:  # the method signed and returned: one write for both
        signed, attempt.signed = attempt.signed, None
        sent_reference, void_after = sent_reference or signed[0], signed[1]
    if void_after is None:
        yield from _record(
            attempt, lambda: reservation.sent(credential_fingerprint, sent_reference)
        )
    else:
        yield from _record(
            attempt,
            lambda: reservation.sent(credential_fingerprint, sent_reference, void_after=void_after),
        )
    _notify(config.hooks.on_paid, quote, proof)

    head, resent = yield from _send_paid(attempt, credential_headers, remove)

    if 200 <= head.status < 400:
        # 2xx, or a redirect the server sends once it took the payment (post/redirect/get):
        # the payment went through (after a resend too: the server took this credential).
        receipt = _receipt(head)
        reference = proof.reference
        other = receipt.reference if receipt is not None else None
        if reference is None:
            reference, other = other, None
        elif other == reference:
            other = None
        if getattr(reservation, "settles_in_background", False):
            # Returns at once (the journal's writer thread writes it): a mark lost in a crash
            # leaves the entry sent, held all the same and reconciled.
            reservation.settled(receipt, reference, receipt_reference=other)
        else:
            yield from _record(
                attempt, lambda: reservation.settled(receipt, reference, receipt_reference=other)
            )
        attempt.final = True
        method.on_receipt(quote, proof, receipt)
        _notify(config.hooks.on_receipt, quote, receipt)
        attempt.result = attempt.outcome("paid", receipt=receipt, reference=reference)
        return head, False
    problem = _problem(head)
    if head.status == 410:
        try:
            method.on_gone(quote, proof)
        except Exception:
            logger.exception("%s.on_gone raised; ignored", method.name)
    if resent:
        # The answer to a resend says nothing about the first send: a single-use server
        # answers a replay with 402 "already used" after it took the payment.
        reason = f"the resent credential was answered {head.status}; the first send may have paid"
        raise attempt.unknown(reason, problem)
    if head.status == 403:
        # The server verified the payment and still refused access: the money is gone and
        # paying again would only pay twice.
        reason = "403 after a valid payment: access denied by the server"
        yield from _record(attempt, lambda: reservation.failed(reason, money_moved=True))
        attempt.final = True
        denied = PaymentFailed(
            reason, money_moved=True, challenge_id=quote.challenge.id, reference=proof.reference
        )
        _notify(config.hooks.on_failure, quote, denied)
        attempt.result = attempt.outcome("denied", problem=problem, error=denied)
        return head, False
    refused = head.status == 402 or (head.status == 400 and _credential_refused(problem))
    if not refused:
        # Anything else leaves the settlement unclear: servers verify the payment before the
        # application answers (a 404 or 500 may follow a settled payment), and a pull-mode
        # transaction may have been broadcast before the server failed. The amount stays held
        # until the method's lookup tells (``Wallet.reconcile``).
        unknown = attempt.unknown(f"paid retry answered {head.status}", problem)
        attempt.result = attempt.outcome("unknown", problem=problem, error=unknown)
        return head, False
    reason = (
        _rejection_reason(problem) if head.status == 402 else (f"paid retry answered {head.status}")
    )
    if proof.money_moved:
        # Value left before the answer (push mode, Lightning): a refusal cannot undo it.
        yield from _record(attempt, lambda: reservation.failed(reason, money_moved=True))
        attempt.final = True
        attempt.result = attempt.rejected(head, money_moved=True, reason=reason)
        return head, False
    # The server holds an authorization it may still settle (a signed transaction it can
    # broadcast until valid_before, an unrevoked token), whatever it answered. Only the
    # method can prove it void.
    void = yield from _abandon(method, quote, proof)
    if not void:
        yield from _record(
            attempt, lambda: reservation.unknown(f"{reason}; the credential is not void")
        )
        attempt.final = True
        attempt.result = attempt.rejected(head, money_moved=None, reason=reason)
        return head, False
    yield from _record(
        attempt, lambda: reservation.failed(reason, money_moved=False, proof="credential-void")
    )
    attempt.final = True
    attempt.result = attempt.rejected(head, money_moved=False, reason=reason)
    if head.status == 402 and attempt.payments < options.max_payments:
        delay = _retry_after(head)
        if delay is not None:
            if delay:
                yield Sleep(delay)
            return head, True
    return head, False


def _record(
    attempt: _Attempt, write: Callable[[], None], *, resume: bool = False
) -> Generator[Any, Any, None]:
    """Write a journal step as an effect: the async driver runs it (and its fsync) in a worker
    thread so it never blocks the event loop; the sync drivers run it inline. ``resume``: the
    flow may go on in that thread up to its next effect (``JournalAccess.resume_in_worker``):
    only where what follows calls no hook but through ``_notify``. A reservation whose steps
    do no I/O (``steps_block = False``: kept in memory) is written directly: a hand-off to a
    thread would cost more than the step."""
    if attempt.inline:
        write()
        return
    yield JournalWrite(write, resume_in_worker=resume)


def _abandon(method: PaymentMethod, quote: Quote, proof: PaymentProof) -> Generator[Any, Any, bool]:
    """Ask the method to make a refused credential void; ``True`` only on its proof."""
    try:
        return bool((yield from method.abandon(quote, proof)))
    except Exception:
        logger.warning("%s could not void a refused credential; it stays held", method.name)
        return False


class _Attempt:
    """One payment the flow made for a request: what it knows of the money at each step, and
    how to report its outcome."""

    __slots__ = (
        "config", "final", "inline", "left", "method", "payments", "proof", "quote",
        "reservation", "result", "signed",
    )  # fmt: skip

    def __init__(
        self,
        config: FlowConfig,
        quote: Quote,
        method: PaymentMethod,
        reservation: Reservation,
        payments: int,
    ) -> None:
        self.config = config
        self.quote = quote
        self.method = method
        self.reservation = reservation
        self.payments = payments
        #: The reservation's steps do no I/O: written directly, not as journal effects.
        self.inline = getattr(reservation, "steps_block", True) is False
        self.proof: PaymentProof | None = None
        #: Something that can move value may have left the process (a broadcast, a send).
        self.left = False
        #: A final (or deliberately unknown) state was recorded for this attempt.
        self.final = False
        self.result: Payment | None = None
        #: A ``signed`` checkpoint (reference, void_after) not written yet (see _checkpoint).
        self.signed: tuple[str | None, datetime | None] | None = None

    def write_signed(self) -> None:
        """Write a signature not written yet, before a failure is recorded (so the entry
        names what was signed); a journal error here leaves the failure's own write to tell."""
        signed, self.signed = self.signed, None
        if signed is not None:
            with contextlib.suppress(Exception):
                self.reservation.signed(signed[0], void_after=signed[1])

    @property
    def reference(self) -> str | None:
        return self.proof.reference if self.proof is not None else None

    def outcome(self, status: Any, **fields: Any) -> Payment:
        fields.setdefault("reference", self.reference)
        return Payment(
            status,
            self.quote,
            journal_id=self.reservation.id,
            payments=self.payments,
            **fields,
        )

    def rejected(
        self, head: ResponseHead, *, money_moved: bool | None, reason: str | None = None
    ) -> Payment:
        problem = _problem(head)
        error = PaymentRejected(
            reason or _rejection_reason(problem),
            problem=problem,
            money_moved=money_moved,
            challenge_id=self.quote.challenge.id,
            reference=self.reference,
        )
        _notify(self.config.hooks.on_failure, self.quote, error)
        return self.outcome("rejected", problem=problem, error=error)

    def unknown(
        self, reason: str, problem: Problem | None = None, *, reference: str | None = None
    ) -> PaymentOutcomeUnknown:
        """Record the outcome as unknown (held) and return the error that says so
        (``reference``: the method's, when it named one before its proof existed)."""
        self.reservation.unknown(reason)
        self.final = True
        error = PaymentOutcomeUnknown(
            reason, challenge_id=self.quote.challenge.id, reference=self.reference or reference
        )
        error.journal_id = self.reservation.id
        error.problem = problem
        _notify(self.config.hooks.on_failure, self.quote, error)
        return error

    def abandoned(self, exc: BaseException) -> BaseException:
        """What to raise when ``exc`` ends the attempt before it recorded an outcome.

        Nothing left the process: the hold is released and ``exc`` goes on. Something may
        have left: the entry becomes unknown at once (so ``unknown_payments()`` shows it in this
        process too); an ordinary error becomes ``PaymentOutcomeUnknown`` (its cause kept),
        while cancellation, ``KeyboardInterrupt`` and ``GeneratorExit`` go on as they are.
        """
        if self.final or isinstance(exc, PaymentRefused):
            return exc
        if isinstance(exc, PaymentOutcomeUnknown):
            if exc.journal_id is None:
                exc.journal_id = self.reservation.id
            return exc
        if not self.left:
            with contextlib.suppress(Exception):
                self.reservation.failed(
                    f"ended before anything left the process: {type(exc).__name__}",
                    money_moved=False,
                )
            self.final = True
            return exc
        reason = f"the paid request was abandoned after the credential left: {type(exc).__name__}"
        if not isinstance(exc, Exception):
            with contextlib.suppress(Exception):
                self.reservation.unknown(reason)
            self.final = True
            return exc
        unknown = self.unknown(reason)
        unknown.__cause__ = exc
        return unknown


def _problem(head: ResponseHead) -> Problem | None:
    return parse_problem(head.body, head.get("content-type"))


def _challenges(config: FlowConfig, facts: RequestFacts, head: ResponseHead) -> list[Challenge]:
    values = head.get_list("www-authenticate")
    challenges = parse_challenges(values) if values else []
    if challenges:
        return challenges
    # No MPP challenge: a method may recognise a non-MPP 402 it was told to handle for this
    # site (an opt-in compatibility mode).
    lowered = dict(head.headers)
    for method in config.methods:
        found = method.synthesize_challenges(facts.origin, lowered, head.body)
        if found:
            return found
    return []


#: The only credential header draft-httpauth-payment-01 allows a challenge to name (besides the
#: default ``Authorization``).
_ALLOWED_HEADER = "payment-authorization"


def _header_refusal(challenge: Challenge) -> str | None:
    if challenge.header is None or challenge.header.lower() == _ALLOWED_HEADER:
        return None
    return (
        f"the challenge asks for the credential in {challenge.header[:40]!r}; only "
        "Payment-Authorization is allowed (draft-httpauth-payment-01), so none is sent"
    )


def _unrecognised(config: FlowConfig, challenges: Sequence[Challenge]) -> Payment | None:
    """A ``Payment("unpaid")`` when no configured method recognises any challenge (the 402
    goes back untouched, like a non-MPP one), else ``None``."""
    refusals: dict[str, str] = {}
    for challenge in challenges:
        why = _header_refusal(challenge)
        if why is None and not any(m.can_pay(challenge) for m in config.methods):
            why = f"no configured method pays {challenge.method}/{challenge.intent}"
        if why is None:
            return None
        refusals[challenge.id] = why
    reason = "no challenge could be paid: " + "; ".join(
        f"{cid}: {why}" for cid, why in refusals.items()
    )
    error = NoPayableChallenge(reason, refusals=refusals, challenges=challenges)
    return Payment("unpaid", None, allowed=False, refusal=reason, error=error, payments=0)


def _within(limit: Money, exposure: Money) -> bool:
    """Whether ``exposure`` is at most ``limit``: same currency, or a dollar limit over a
    USD-pegged currency (compared exactly across decimals)."""
    if limit.currency == exposure.currency:
        return exposure.amount <= limit.amount
    # Imported here: the wallet package (and sqlite3) stays out of ``import mpp_client``.
    from mpp_client.wallet.prices import is_usd_cap

    if is_usd_cap(limit.currency) and exposure.currency.usd_pegged:
        scale = limit.currency.decimals, exposure.currency.decimals
        return bool(exposure.amount * 10 ** scale[0] <= limit.amount * 10 ** scale[1])
    return False


def _refuse_unsafe_request(
    config: FlowConfig, facts: RequestFacts, challenges: Sequence[Challenge]
) -> None:
    first = challenges[0] if challenges else None
    if facts.origin != facts.first_origin:
        raise CrossOriginPayment(
            "Refusing to send payment credential across redirect: the 402 came from "
            f"{facts.origin} after a redirect from {facts.first_origin}",
            challenge=first,
        )
    scheme, _, rest = facts.origin.partition("://")
    host = rest.rsplit(":", 1)[0] if not rest.startswith("[") else rest.split("]")[0] + "]"
    # ``mcp-stdio``: an MCP server this process started and talks to over a pipe, never a
    # network (``mpp_client.mcp``).
    local = scheme == "mcp-stdio" or is_loopback(host)
    if scheme != "https" and not config.allow_insecure_http and not local:
        raise InsecureOrigin(
            f"refusing to pay over {scheme} to {facts.origin}; use https", challenge=first
        )
    if facts.body is None:
        raise UnreplayableBody(
            facts.body_problem or "the request body cannot be replayed", challenge=first
        )


def _in_preference_order(config: FlowConfig, challenges: Sequence[Challenge]) -> list[Challenge]:
    """Configured preference first, then the server's order."""
    ranked = sorted(
        enumerate(challenges),
        key=lambda item: (_rank(item[1].method, item[1].intent, config.prefer), item[0]),
    )
    return [challenge for _, challenge in ranked]


def _choose(
    config: FlowConfig,
    facts: RequestFacts,
    challenges: Sequence[Challenge],
    context: PaymentContext,
    *,
    reserving: bool = False,
) -> Generator[Any, Any, tuple[Quote, PaymentMethod]]:
    """The first challenge, in preference order, that passes every check before signing.

    ``reserving``: the chosen quote goes straight to ``guard.reserve``. When the guard's
    reserve re-checks everything its check does, inside its own atomic hold
    (``reserve_checks``), and nothing else could be chosen or told in between (one
    challenge, no ``on_quote`` or ``before_payment`` hook), the check is left to the hold: it
    refuses the same quote with the same error, one journal step earlier.
    """
    ordered = _in_preference_order(config, challenges)
    refusals: dict[str, str] = {}
    errors: list[PaymentRefused] = []
    margin = timedelta(seconds=config.expiry_margin)
    hooks = config.hooks
    left_to_hold = (
        reserving
        and len(ordered) == 1
        and getattr(config.guard, "reserve_checks", False)
        and hooks.on_quote is None
        and hooks.before_payment is None
    )
    for challenge in ordered:
        header_refusal = _header_refusal(challenge)
        if header_refusal is not None:
            refusals[challenge.id] = header_refusal
            continue
        method = next((m for m in config.methods if m.can_pay(challenge)), None)
        if method is None:
            refusals[challenge.id] = (
                f"no configured method pays {challenge.method}/{challenge.intent}"
            )
            continue
        try:
            expires_at = challenge.expires_at
            if expires_at is not None and context.now >= expires_at - margin:
                raise ChallengeExpired(
                    f"challenge expires at {challenge.expires}, too soon to pay",
                    challenge=challenge,
                )
            if challenge.digest is not None and facts.body is not None:
                if digest_matches(challenge.digest, facts.body) is False:
                    raise PaymentRefused(
                        "the challenge's body digest does not match the request body",
                        challenge=challenge,
                    )
            quote = method.quote(challenge, context)
            if quote.expires is not None and context.now >= quote.expires - margin:
                raise ChallengeExpired(
                    f"the offer expires at {quote.expires.isoformat()}, too soon to pay",
                    challenge=challenge,
                )
            limit = facts.options.max_amount
            if limit is not None and not _within(limit, quote.exposure):
                raise BudgetExceeded(
                    f"{quote.exposure} is above this request's maximum of {limit}",
                    rule="request.max_amount",
                    challenge=challenge,
                )
            if not left_to_hold:
                yield from _check(config, quote, context, facts.options)
        except PaymentRefused as refused:
            if refused.challenge is None:
                refused.challenge = challenge
            refusals[challenge.id] = refused.reason
            errors.append(refused)
            continue
        return quote, method
    if len(errors) == 1 and len(refusals) == 1:
        raise errors[0]
    if (
        errors
        and len(errors) == len(refusals)
        and all(isinstance(error, PolicyViolation) for error in errors)
    ):
        # Every challenge was payable but the owner's policy refused each: say so, typed.
        raise errors[0]
    raise NoPayableChallenge(
        "no challenge could be paid: "
        + "; ".join(f"{cid}: {why}" for cid, why in refusals.items()),
        refusals=refusals,
        challenges=challenges,
        errors=errors,
    )


def _check(
    config: FlowConfig, quote: Quote, context: PaymentContext, options: PaymentOptions
) -> Generator[Any, Any, None]:
    """The guard's read-only check. A guard whose check reads its journal (the wallet says so
    with ``check_blocks``) gets it run as a ``JournalRead`` effect, so the async drivers do the
    reads in their journal worker, never on the event loop."""
    guard = config.guard
    if getattr(guard, "check_blocks", False):
        yield JournalRead(lambda: guard.check(quote, context, options))
    else:
        guard.check(quote, context, options)


def _dry_run(
    config: FlowConfig,
    facts: RequestFacts,
    challenges: Sequence[Challenge],
    context: PaymentContext,
) -> Generator[Any, Any, Payment]:
    """What would be paid, and whether the policy allows it, without paying.

    The verdict comes from the same checks as a real payment; when the guard refuses every
    candidate, the quote of the first one a method could price is returned with the refusal.
    """
    try:
        quote, _ = yield from _choose(config, facts, challenges, context)
    except PaymentRefused as refused:
        priced = _first_priceable(config, challenges, context)
        if priced is None:
            raise
        return Payment("quoted", priced, allowed=False, refusal=refused.reason, error=refused)
    _notify(config.hooks.on_quote, quote, context)
    return Payment("quoted", quote)


def _first_priceable(
    config: FlowConfig, challenges: Sequence[Challenge], context: PaymentContext
) -> Quote | None:
    for challenge in _in_preference_order(config, challenges):
        method = next((m for m in config.methods if m.can_pay(challenge)), None)
        if method is None:
            continue
        try:
            return method.quote(challenge, context)
        except PaymentRefused:
            continue
    return None


def _before_payment(
    config: FlowConfig, quote: Quote, context: PaymentContext
) -> Generator[Any, Any, None]:
    hook = config.hooks.before_payment
    assert hook is not None
    try:
        allowed = yield Await(lambda: hook(quote, context), blocking=True)
    except Exception as exc:  # a failing hook refuses: fail closed
        raise PaymentVetoed(
            f"before_payment hook failed: {type(exc).__name__}", challenge=quote.challenge
        ) from exc
    if allowed is False:
        raise PaymentVetoed("before_payment hook declined the payment", challenge=quote.challenge)


def _pay(
    method: PaymentMethod,
    quote: Quote,
    context: PaymentContext,
    attempt: _Attempt,
) -> Generator[Any, Any, PaymentProof]:
    """Run ``method.pay``, writing its checkpoints to the reservation before value can move.

    Before the method's ``broadcast`` checkpoint nothing it made has left the process, so any
    failure releases the hold. After it, only ``NothingSent`` (the method's proof) releases;
    a failure that says value left keeps it as spent; anything else is an unknown outcome.
    """
    reservation = attempt.reservation
    config = attempt.config
    gen = method.pay(quote, context)
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = gen.throw(error) if error is not None else gen.send(reply)
            except StopIteration as stop:
                proof: PaymentProof = stop.value
                return proof
            except PaymentOutcomeUnknown as unknown:
                reply = error = None  # keep backend answers out of tracebacks' locals
                attempt.write_signed()
                raise attempt.unknown(unknown.reason, reference=unknown.reference) from unknown
            except NothingSent as nothing:
                attempt.write_signed()
                proof_kind: Proof | None = "nothing-sent" if attempt.left else None
                reservation.failed(nothing.reason, money_moved=False, proof=proof_kind)
                attempt.final = True
                _notify(config.hooks.on_failure, quote, nothing)
                raise
            except Exception as failure:
                reply = error = None
                attempt.write_signed()
                reported = _failed_paying(method, quote, attempt, failure)
                if reported is failure:
                    raise
                raise reported from failure
            reply, error = None, None
            if isinstance(effect, Checkpoint):
                yield from _checkpoint(attempt, effect)
                continue
            if attempt.signed is not None:
                # The method goes on after signing (a call, a write of its own): what it
                # signed is written first, as a step of its own.
                yield from _record(
                    attempt, partial(_write_signed, reservation, attempt.signed), resume=True
                )
                attempt.signed = None
            try:
                reply = yield effect
            except Exception as exc:
                error = exc
    finally:
        gen.close()


def _checkpoint(attempt: _Attempt, checkpoint: Checkpoint) -> Generator[Any, Any, None]:
    """A method's checkpoint. ``signed`` is kept and written with the next step: the
    ``sent`` (or ``broadcast``) step when that comes next, one journal write instead of two
    (nothing leaves the process in between, and a crash before it leaves the entry reserved,
    which is the truth: nothing left), else before the method's next effect."""
    reservation = attempt.reservation
    if checkpoint.stage == "signed":
        if attempt.signed is not None:  # a second signature before any other step
            yield from _record(
                attempt, partial(_write_signed, reservation, attempt.signed), resume=True
            )
        attempt.signed = (checkpoint.reference, checkpoint.void_after)
        return
    attempt.left = True  # from here on the method may move value; written before it does
    reference, void_after = checkpoint.reference, checkpoint.void_after
    if attempt.signed is not None:
        signed, attempt.signed = attempt.signed, None
        reference, void_after = reference or signed[0], void_after or signed[1]
    # The method's code runs next, up to its next effect (the call that moves value): no hook.
    if void_after is None:
        yield from _record(attempt, lambda: reservation.broadcast(reference), resume=True)
    else:
        yield from _record(
            attempt, lambda: reservation.broadcast(reference, void_after=void_after), resume=True
        )


def _write_signed(reservation: Reservation, signed: tuple[str | None, datetime | None]) -> None:
    reservation.signed(signed[0], void_after=signed[1])


def _failed_paying(
    method: PaymentMethod, quote: Quote, attempt: _Attempt, failure: Exception
) -> MppError:
    """Record a failure of ``method.pay`` (other than the two it states itself) and return the
    error for the caller."""
    reservation, config = attempt.reservation, attempt.config
    if attempt.left:
        if isinstance(failure, PaymentFailed) and failure.money_moved is True:
            reservation.failed(str(failure), money_moved=True)
            attempt.final = True
            _notify(config.hooks.on_failure, quote, failure)
            return failure
        # An error is not a proof: once the method started moving value, only NothingSent
        # releases the hold.
        return attempt.unknown(f"{method.name} failed after it started paying: {failure}")
    if isinstance(failure, MppError):
        # Nothing the method made has left the process: the hold is released.
        moved = failure.money_moved is True
        reservation.failed(str(failure), money_moved=moved)
        attempt.final = True
        _notify(config.hooks.on_failure, quote, failure)
        return failure
    # A bug or an unexpected backend error, before anything left the process.
    reservation.failed(f"{type(failure).__name__} in {method.name}", money_moved=False)
    attempt.final = True
    wrapped = MethodError(
        f"{method.name} failed before paying: {type(failure).__name__}: {failure}",
        money_moved=False,
    )
    _notify(config.hooks.on_failure, quote, wrapped)
    return wrapped


def _credential_headers(challenge: Challenge, proof: PaymentProof) -> dict[str, str]:
    if proof.retry_headers is not None:
        return {name.lower(): value for name, value in proof.retry_headers.items()}
    credential = Credential(challenge=challenge, payload=proof.payload, source=proof.source)
    name = (challenge.header or "authorization").lower()
    return {name: credential.to_header()}


def _stale_payment_headers(facts: RequestFacts, setting: Mapping[str, str]) -> tuple[str, ...]:
    """Headers to drop: an old ``Authorization: Payment`` credential is never sent next to a new
    one (an ordinary ``Authorization: Bearer`` stays when the credential uses another header)."""
    stale = []
    current = facts.headers.get("authorization", "")
    if "authorization" not in setting and current[:8].lower() == "payment ":
        stale.append("authorization")
    if "payment-authorization" not in setting and "payment-authorization" in facts.headers:
        stale.append("payment-authorization")
    return tuple(stale)


def _send_paid(
    attempt: _Attempt, headers: Mapping[str, str], remove: tuple[str, ...]
) -> Generator[Any, Any, tuple[ResponseHead, bool]]:
    """Send the paid retry; on a transport failure resend the SAME credential once. Returns
    the answer and whether it answers the resend."""
    last: BaseException | None = None
    for resend in (False, True):
        try:
            head: ResponseHead = yield Send(dict(headers), remove)
            return head, resend
        except SendFailed as failed:
            last = failed.cause
    unknown = attempt.unknown(f"paid retry failed twice: {type(last).__name__}")
    raise unknown from last


def _receipt(head: ResponseHead) -> Receipt | None:
    value = head.get("payment-receipt")
    if value is None:
        return None
    try:
        return parse_receipt(value)
    except MppError:
        logger.warning("server sent a malformed Payment-Receipt; payment counted as settled")
        return None


#: Problem types (last path segment) with which a server says it could not use a credential.
_CREDENTIAL_REFUSED = frozenset(
    {"malformed-credential", "method-unsupported", "bad-request", "invalid-payload"}
)


def _credential_refused(problem: Problem | None) -> bool:
    return problem is not None and problem.type.rsplit("/", 1)[-1] in _CREDENTIAL_REFUSED


def _rejection_reason(problem: Problem | None) -> str:
    if problem is None:
        return "the server answered the paid request with 402 again"
    detail = f": {problem.detail}" if problem.detail else ""
    return f"payment rejected ({problem.type}){detail}"


def _retry_after(head: ResponseHead) -> float | None:
    """Seconds to wait before paying a fresh challenge: 0 without ``Retry-After``, ``None`` when
    the server asks for longer than we wait."""
    value = head.get("retry-after")
    if value is None:
        return 0.0
    try:
        seconds = float(int(value.strip()))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER else None


def _notify(hook: Callable[..., None] | None, *args: Any) -> None:
    """Call a notification hook where the caller's code runs: on the event loop under the
    async driver, also when the flow reaches it in the journal worker (``on_driver_thread``)."""
    if hook is not None:
        on_driver_thread(partial(_call_hook, hook, args))


def _call_hook(hook: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        hook(*args)
    except Exception:
        logger.exception("payment hook %s raised; ignored", getattr(hook, "__name__", hook))
