"""The request of a ``lightning``/``session`` challenge (protocol README §16) and the checks
its deposit invoice must pass before it is paid.

Unlike ``lightning``/``charge``, the session's fields are top-level (not in ``methodDetails``):
``amount`` (sats per unit), ``currency`` (``"sat"``), ``description?``, ``unitType?``,
``depositInvoice`` (open and top-up challenges), ``paymentHash`` (required), ``depositAmount?``
(must equal the invoice's amount; servers default to 20 x ``amount``) and ``idleTimeout?``
(seconds, a string; default 300). A ``network`` (top-level or ``methodDetails.network``) is
honoured when present; mainnet otherwise.

The invoice checks are the charge's (``mpp_client.methods.lightning.invoice`` and
``charge.check_expiry``): amount, network, payment hash, expiry; the journal's "never paid
before" check is the caller's (it owns the history).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mpp_client.errors import PaymentRefused
from mpp_client.methods.lightning.charge import check_expiry
from mpp_client.methods.lightning.invoice import (
    Invoice,
    InvoiceError,
    check_amount,
    check_network,
    check_payment_hash,
    decode_invoice,
    short_value,
)

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = [
    "DEFAULT_DEPOSIT_UNITS",
    "DEFAULT_IDLE_TIMEOUT",
    "SessionRequest",
    "checked_deposit",
    "parse_session_request",
]

#: A server's default ``idleTimeout`` (seconds) when the challenge names none.
DEFAULT_IDLE_TIMEOUT = 300
#: A server's default deposit, in units of ``amount``, when the challenge names no
#: ``depositAmount`` (the reference server's 20 x amount).
DEFAULT_DEPOSIT_UNITS = 20

_AMOUNT = re.compile(r"[1-9][0-9]{0,17}")
_SECONDS = re.compile(r"(0|[1-9][0-9]{0,9})")
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A parsed session request. Amounts are whole satoshis; ``idle_timeout`` is seconds.

    ``deposit_invoice`` is ``None`` in a bearer/close challenge; ``deposit_sats`` is
    ``depositAmount`` when given, else ``DEFAULT_DEPOSIT_UNITS x amount``.
    """

    amount_sats: int
    payment_hash: str
    deposit_invoice: str | None
    deposit_sats: int
    deposit_amount_given: bool
    idle_timeout: int
    network: str
    unit_type: str | None
    description: str | None


def parse_session_request(
    challenge: Challenge, refuse: Callable[[str], PaymentRefused]
) -> SessionRequest:
    """Read ``challenge.request_data`` exactly (integers as strings, no floats) or refuse."""
    request = challenge.request_data
    currency = request.get("currency")
    if not isinstance(currency, str) or currency.lower() != "sat":
        raise refuse(f"lightning session: currency must be 'sat', got {short_value(currency)}")
    amount = request.get("amount")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise refuse("lightning session: amount must be a positive whole number of sats")
    payment_hash = request.get("paymentHash")
    if not isinstance(payment_hash, str) or not _HASH.fullmatch(payment_hash.lower()):
        raise refuse("lightning session: paymentHash is not 64 hex characters")
    invoice = request.get("depositInvoice")
    if invoice is not None and (not isinstance(invoice, str) or not invoice):
        raise refuse("lightning session: depositInvoice is not a string")
    deposit = request.get("depositAmount")
    if deposit is not None and (not isinstance(deposit, str) or not _AMOUNT.fullmatch(deposit)):
        raise refuse("lightning session: depositAmount must be a positive whole number of sats")
    idle = request.get("idleTimeout")
    if idle is not None and (not isinstance(idle, str) or not _SECONDS.fullmatch(idle)):
        raise refuse("lightning session: idleTimeout must be whole seconds (a string)")
    details = request.get("methodDetails")
    network = request.get("network")
    if network is None and isinstance(details, Mapping):
        network = details.get("network")
    if network is not None and not isinstance(network, str):
        raise refuse("lightning session: network is not a string")
    unit_type = request.get("unitType")
    description = request.get("description")
    return SessionRequest(
        amount_sats=int(amount),
        payment_hash=payment_hash.lower(),
        deposit_invoice=invoice,
        deposit_sats=int(deposit) if deposit is not None else DEFAULT_DEPOSIT_UNITS * int(amount),
        deposit_amount_given=deposit is not None,
        idle_timeout=int(idle) if idle is not None else DEFAULT_IDLE_TIMEOUT,
        network=network if network is not None else "mainnet",
        unit_type=unit_type if isinstance(unit_type, str) else None,
        description=description if isinstance(description, str) else None,
    )


def checked_deposit(
    challenge: Challenge,
    request: SessionRequest,
    *,
    wallet_network: str,
    now: datetime,
    expiry_margin: float,
    refuse: Callable[[str], PaymentRefused],
) -> tuple[Invoice, datetime]:
    """Decode the deposit invoice and run the charge's checks on it: its amount is
    ``depositAmount`` (or the default deposit), its hash is ``paymentHash``, its network the
    challenge's and this wallet's, and it (and the challenge) stay valid for
    ``expiry_margin`` seconds. Returns the invoice and the deadline."""
    if request.deposit_invoice is None:
        raise refuse("lightning session: the challenge has no depositInvoice to pay")
    try:
        invoice = decode_invoice(request.deposit_invoice)
    except InvoiceError as exc:
        raise refuse(f"lightning session: {exc}") from None
    field = "depositAmount" if request.deposit_amount_given else "default deposit"
    check_amount(invoice, request.deposit_sats, refuse, field=field)
    check_payment_hash(invoice, request.payment_hash, refuse, field="paymentHash", required=True)
    check_network(invoice, request.network, wallet_network, refuse, field="network")
    deadline = check_expiry(invoice, challenge, now, expiry_margin)
    return invoice, deadline
