"""The ``handcash``/``charge`` challenge request (our design; see ``docs/methods/handcash.md``).

Wire shape (amounts are integer strings in minor units of ``currency``, e.g. US cents)::

    {"amount": "5", "currency": "usd", "recipient"?: "merchant",
     "description"?: "...", "externalId"?: "...",
     "methodDetails"?: {"instrument"?: "BSV" | "MNEE",
                        "receivers"?: [{"destination": "...", "amount": "4"}, ...]}}

Exactly one of ``recipient`` and ``methodDetails.receivers`` names who is paid; receiver
amounts must add up to ``amount``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from mpp_client.errors import PaymentRefused
from mpp_client.money import Currency

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["MAX_RECEIVERS", "HandCashChargeRequest", "Receiver", "parse_charge_request"]

MAX_RECEIVERS = 50
_AMOUNT = re.compile(r"[1-9][0-9]{0,14}")
_CURRENCY = re.compile(r"[a-z]{3}")
# A HandCash handle ($alice / alice), a paymail (alice@example.com) or a base58 P2PKH address.
_DESTINATION = re.compile(r"\$?[A-Za-z0-9_.\-]{1,64}(@[A-Za-z0-9.\-]{1,253})?")
# ISO 4217 minor units where they are not 2; metals, funds and crypto are not denominations.
_ISO_ZERO = frozenset(
    {
        "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg",
        "rwf", "ugx", "uyi", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
_ISO_THREE = frozenset(["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"])
_NOT_FIAT = frozenset(["btc", "bsv", "xag", "xau", "xdr", "clf"])


@dataclass(frozen=True, slots=True)
class Receiver:
    """One payee: a HandCash handle, paymail or address, and its ``amount`` in minor units."""

    destination: str
    amount: int


@dataclass(frozen=True, slots=True)
class HandCashChargeRequest:
    """A checked ``handcash``/``charge`` request. ``amount`` is in minor units of
    ``currency`` (US cents for ``usd``); ``receivers`` add up to it."""

    amount: int
    currency: Currency
    instrument: Literal["BSV", "MNEE"]
    receivers: tuple[Receiver, ...]
    external_id: str | None = None
    description: str | None = None

    def send_amount(self, minor_units: int) -> Decimal:
        """``minor_units`` in whole units of the currency, exactly (HandCash's ``sendAmount``)."""
        return Decimal(minor_units).scaleb(-self.currency.decimals)


def iso_currency(code: str) -> Currency:
    """The fiat ``Currency`` for lower-case ISO 4217 ``code`` with its ISO minor units."""
    decimals = 0 if code in _ISO_ZERO else 3 if code in _ISO_THREE else 2
    return Currency.fiat(code, decimals)


def parse_charge_request(
    request: Mapping[str, Any], *, challenge: Challenge | None = None
) -> HandCashChargeRequest:
    """Check the decoded challenge ``request``; raise ``PaymentRefused`` saying what is wrong."""

    def refuse(reason: str) -> PaymentRefused:
        return PaymentRefused(f"handcash charge request refused: {reason}", challenge=challenge)

    amount = _amount(request.get("amount"))
    if amount is None:
        raise refuse("amount must be a positive integer string of minor units")
    code = request.get("currency")
    if not isinstance(code, str) or not _CURRENCY.fullmatch(code) or code in _NOT_FIAT:
        raise refuse("currency must be a lower-case ISO 4217 fiat code")
    details = request.get("methodDetails", {})
    if not isinstance(details, Mapping):
        raise refuse("methodDetails must be an object")
    instrument = details.get("instrument", "BSV")
    if instrument not in ("BSV", "MNEE"):
        raise refuse("methodDetails.instrument must be BSV or MNEE")
    if instrument == "MNEE" and code != "usd":
        raise refuse("MNEE payments are priced in usd")
    recipient = request.get("recipient")
    listed = details.get("receivers")
    if (recipient is None) == (listed is None):
        raise refuse("exactly one of recipient and methodDetails.receivers is required")
    receivers: list[Receiver] = []
    if recipient is not None:
        if not isinstance(recipient, str) or not _DESTINATION.fullmatch(recipient):
            raise refuse("recipient is not a HandCash handle, paymail or address")
        receivers.append(Receiver(recipient, amount))
    else:
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_RECEIVERS:
            raise refuse(f"methodDetails.receivers must list 1 to {MAX_RECEIVERS} receivers")
        for entry in listed:
            if not isinstance(entry, Mapping):
                raise refuse("each receiver must be an object")
            destination = entry.get("destination")
            share = _amount(entry.get("amount"))
            if not isinstance(destination, str) or not _DESTINATION.fullmatch(destination):
                raise refuse("a receiver destination is not a handle, paymail or address")
            if share is None:
                raise refuse("a receiver amount is not a positive integer string")
            receivers.append(Receiver(destination, share))
        if sum(r.amount for r in receivers) != amount:
            raise refuse("the receivers' amounts do not add up to amount")
    if instrument == "MNEE" and any("@" in r.destination for r in receivers):
        raise refuse("MNEE cannot be sent to a paymail")
    optional: dict[str, str | None] = {}
    for name in ("externalId", "description"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            raise refuse(f"{name} must be a string")
        optional[name] = value
    return HandCashChargeRequest(
        amount=amount,
        currency=iso_currency(code),
        instrument=instrument,
        receivers=tuple(receivers),
        external_id=optional["externalId"],
        description=optional["description"],
    )


def _amount(value: Any) -> int | None:
    if isinstance(value, str) and _AMOUNT.fullmatch(value):
        return int(value)
    return None
