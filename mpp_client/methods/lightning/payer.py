"""The interface every Lightning wallet backend implements, and what it returns.

A backend is two effect generators (see ``mpp_client.effects``):

``pay(invoice, max_fee_sats)``
    Pays one BOLT11 invoice and returns a ``PayResult`` with the preimage. What it raises says
    what is known about the money:

    - ``mpp_client.errors.NothingSent``: a definite refusal before any payment attempt could
      start (credentials refused, the node's own pre-checks rejected the invoice, a fee quote
      above the cap, the request never left). Nothing moved and nothing can.
    - ``PaymentReportedFailed``: the node says THIS payment failed after it tried to pay (no
      route, every part failed). That answer alone is not trusted: the charge confirms it with
      ``confirm_failed`` (a lookup on the same node) before it releases anything.
    - ``PaymentPending``: the payment may be in flight or its fate is unknown.
    - anything else thrown into it (a timeout, a reset connection, a 5xx) is treated by the
      charge as "may have left".
``lookup(payment_hash)``
    Asks the backend what became of an earlier payment. ``failed`` only with a proof: the node
    definitely reports the payment failed, or definitely has no such payment (on THIS node or
    wallet, which ``identity`` names); "not found yet", in flight or unreadable is ``pending``.
``identity``
    A stable, non-secret name of the paying node or wallet, recorded with each payment so that
    reconciliation never trusts another backend's "no such payment".
``receives_amountless`` / ``create_amountless_invoice`` / ``lookup_received``
    Receiving, for Lightning sessions (the server refunds to an invoice without an amount).
    ``receives_amountless`` says, without any I/O, whether the backend's API can issue such an
    invoice, so a session refuses BEFORE a deposit is paid; ``lookup_received`` says whether
    an invoice of ours was paid and how much arrived, where the backend can tell.

REST backends yield ``HttpCall`` only; NWC and Spark yield ``Await``.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from mpp_client.effects import Effect
from mpp_client.errors import EffectFailed, MethodError, PaymentRefused
from mpp_client.methods.base import LookupResult

__all__ = [
    "CannotReceive",
    "CreatedInvoice",
    "LightningPayer",
    "PayResult",
    "PaymentPending",
    "PaymentReportedFailed",
    "Received",
    "credential_fingerprint",
    "endpoint_name",
    "never_reached_backend",
    "preimage_matches",
]


@dataclass(frozen=True, slots=True)
class PayResult:
    """A settled payment: ``preimage`` (64 lower-case hex, a secret), ``payment_hash`` (64 hex)
    and the routing fee actually paid in millisatoshis when the backend reports it."""

    preimage: str
    payment_hash: str
    fee_msat: int | None = None

    def __repr__(self) -> str:
        # The preimage is the proof of payment, a bearer secret: never shown.
        return f"PayResult(payment_hash={self.payment_hash!r}, fee_msat={self.fee_msat})"


@dataclass(frozen=True, slots=True)
class CreatedInvoice:
    """An invoice this wallet issued: the BOLT11 text (not secret: it is meant to be handed
    out) and its payment hash (64 lower-case hex)."""

    invoice: str
    payment_hash: str


@dataclass(frozen=True, slots=True)
class Received:
    """What a backend says about an invoice it issued.

    ``status``: ``"received"`` (paid to this wallet; ``amount_msat`` is what arrived, when the
    backend says), ``"unpaid"`` (the backend definitely shows it open, expired or cancelled,
    with nothing received) or ``"unknown"`` (the backend cannot tell, or did not answer).
    """

    status: Literal["received", "unpaid", "unknown"]
    payment_hash: str
    amount_msat: int | None = None
    detail: str | None = None

    @property
    def amount_sat(self) -> int | None:
        """``amount_msat`` in whole satoshis (rounded down), or ``None``."""
        return None if self.amount_msat is None else self.amount_msat // 1000


class CannotReceive(PaymentRefused):
    """This wallet backend cannot issue the invoice a session needs (an amountless invoice for
    the refund). Raised before anything is paid."""


class PaymentPending(MethodError):
    """The payment may be in flight or its fate is unknown: never pay the invoice again;
    resolve it with ``lookup(payment_hash)``. ``money_moved`` is ``None`` (not known)."""

    def __init__(self, reason: str, *, reference: str | None = None) -> None:
        super().__init__(reason, money_moved=None, reference=reference)


class PaymentReportedFailed(MethodError):
    """The node answered that this payment failed after it attempted it (no route, all parts
    failed). Not a proof by itself: ``money_moved`` stays ``None`` until ``confirm_failed``
    (a lookup of the payment on the same node) agrees."""

    def __init__(self, reason: str, *, reference: str | None = None) -> None:
        super().__init__(reason, money_moved=None, reference=reference)


class LightningPayer(abc.ABC):
    """A Lightning wallet that can pay a BOLT11 invoice and look a payment up.

    Implementations keep their credentials private and out of ``repr``. ``name`` identifies the
    backend in messages (``"lnd"``, ``"nwc"``, ...).
    """

    name: str

    @property
    def identity(self) -> str | None:
        """A stable, non-secret name of the node or wallet that pays (``"lnd:<node id>"``,
        ``"nwc:<wallet pubkey>/<client pubkey>"``, ...). Reconciliation trusts a lookup's
        ``failed`` only from a payer with the same identity. ``None`` (the default for payers
        that do not say) records nothing: implementations should override it."""
        return None

    @abc.abstractmethod
    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice`` spending at most ``max_fee_sats`` satoshis in routing fees (where the
        backend lets a client set a cap)."""

    @abc.abstractmethod
    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """What became of the payment of ``payment_hash`` (64 lower-case hex)."""

    #: Whether this backend's API can issue an invoice without an amount (for a session's
    #: refund). A class fact, known without I/O; ``False`` by default.
    receives_amountless: bool = False

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """Issue an invoice without an amount, valid for ``expiry_seconds`` seconds, whose
        payments arrive in this wallet. Backends that cannot raise ``CannotReceive``."""
        raise CannotReceive(f"{self.name}: this wallet backend cannot issue amountless invoices")
        yield  # pragma: no cover - a generator like every implementation

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """Whether the invoice with ``payment_hash`` (issued by this wallet) was paid, and how
        much arrived. Default: ``unknown`` (the backend cannot tell)."""
        return Received("unknown", payment_hash, detail=f"{self.name} cannot look invoices up")
        yield  # pragma: no cover

    def confirm_failed(self, payment_hash: str) -> Generator[Effect, Any, bool]:
        """After ``pay`` raised ``PaymentReportedFailed``: whether the node PROVES that the
        payment failed (no part can still settle). Default: ``lookup`` says ``failed``.
        Backends override it when the end of the pay call tells more than a cold lookup."""
        result = yield from self.lookup(payment_hash)
        return result.status == "failed"


def preimage_matches(preimage: str, payment_hash: str) -> bool:
    """Whether ``sha256(preimage) == payment_hash`` (both hex; the preimage must be 32 bytes)."""
    try:
        raw = bytes.fromhex(preimage)
    except (ValueError, TypeError):
        return False
    if len(raw) != 32:
        return False
    return hashlib.sha256(raw).hexdigest() == payment_hash.lower()


def credential_fingerprint(secret: str | bytes) -> str:
    """A short, one-way fingerprint (16 hex) of a credential, so that an identity can tell two
    accounts behind one URL apart without ever recording the credential.

    Salted with a fixed label and stretched (PBKDF2) so that a weak, human-chosen password
    (phoenixd's is configurable) cannot be found by hashing guesses cheaply.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    digest = hashlib.pbkdf2_hmac("sha256", raw, b"mpp-client lightning payer identity", 20_000)
    return digest[:8].hex()


def endpoint_name(url: str) -> str:
    """``host[:port][/path]`` of a backend URL (the scheme dropped), for an identity."""
    parts = urlsplit(url)
    return f"{parts.netloc.lower()}{parts.path.rstrip('/')}"


# Exception class names (httpx, websockets, OS) that mean the request never reached the
# backend. Matched by name so payment methods need not import any HTTP library.
_NOT_SENT_ERRORS = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "ConnectionRefusedError",
        "InvalidURI",
        "UnsupportedProtocol",
    }
)


def never_reached_backend(exc: BaseException) -> bool:
    """Whether a transport error proves the request was never delivered to the backend.

    The drivers report HTTP failures as ``EffectFailed`` with ``delivered``; failures inside an
    ``Await`` (websockets, SDKs) arrive as the library's own exception.
    """
    if isinstance(exc, EffectFailed):
        return not exc.delivered
    return type(exc).__name__ in _NOT_SENT_ERRORS
