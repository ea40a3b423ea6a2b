"""The interface every Lightning wallet backend implements, and what it returns.

A backend is two effect generators (see ``mpp_client.effects``):

``pay(invoice, max_fee_sats)``
    Pays one BOLT11 invoice and returns a ``PayResult`` with the preimage. It raises
    ``PaymentNotSent`` when the backend proves no money left (the node refused before routing,
    bad credentials, insufficient balance, a definitive route failure) and ``PaymentPending``
    when the payment may be in flight or its fate is unknown. Any other exception thrown into
    it (a timeout, a reset connection) is treated by the charge as "may have left".
``lookup(payment_hash)``
    Asks the backend what became of an earlier payment (``settled``, ``failed`` or ``pending``).

REST backends yield ``HttpCall`` only; NWC and Spark yield ``Await``.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from mpp_client.effects import Effect
from mpp_client.errors import EffectFailed, MethodError
from mpp_client.methods.base import LookupResult

__all__ = [
    "LightningPayer",
    "PayResult",
    "PaymentNotSent",
    "PaymentPending",
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


class PaymentNotSent(MethodError):
    """The backend proved that no money left: the invoice may be paid again later."""

    def __init__(self, reason: str, *, reference: str | None = None) -> None:
        super().__init__(reason, money_moved=False, reference=reference)


class PaymentPending(MethodError):
    """The payment may be in flight or its fate is unknown: never pay the invoice again;
    resolve it with ``lookup(payment_hash)``."""

    def __init__(self, reason: str, *, reference: str | None = None) -> None:
        super().__init__(reason, money_moved=True, reference=reference)


class LightningPayer(abc.ABC):
    """A Lightning wallet that can pay a BOLT11 invoice and look a payment up.

    Implementations keep their credentials private and out of ``repr``. ``name`` identifies the
    backend in messages (``"lnd"``, ``"nwc"``, ...).
    """

    name: str

    @abc.abstractmethod
    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Pay ``invoice`` spending at most ``max_fee_sats`` satoshis in routing fees (where the
        backend lets a client set a cap)."""

    @abc.abstractmethod
    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """What became of the payment of ``payment_hash`` (64 lower-case hex)."""


def preimage_matches(preimage: str, payment_hash: str) -> bool:
    """Whether ``sha256(preimage) == payment_hash`` (both hex; the preimage must be 32 bytes)."""
    try:
        raw = bytes.fromhex(preimage)
    except (ValueError, TypeError):
        return False
    if len(raw) != 32:
        return False
    return hashlib.sha256(raw).hexdigest() == payment_hash.lower()


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
