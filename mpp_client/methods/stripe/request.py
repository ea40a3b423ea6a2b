"""The ``stripe``/``charge`` challenge request, checked before any token is created.

Wire shape (amounts in Stripe minor units of ``currency``)::

    {"amount": "2500", "currency": "usd", "externalId"?: "...", "description"?: "...",
     "recipient"?: "...", "methodDetails": {"networkId": "profile_...",
     "paymentMethodTypes": ["card", ...], "metadata"?: {"k": "v"}}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mpp_client.errors import PaymentRefused

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["StripeChargeRequest", "parse_charge_request"]

_AMOUNT = re.compile(r"[1-9][0-9]{0,17}")  # positive, no sign, no leading zeros, < 10**18
_ISO_CURRENCY = re.compile(r"[a-z]{3}")
# Stripe ids and profile names: printable, no whitespace or form/URL metacharacters.
_STRIPE_ID = re.compile(r"[A-Za-z0-9_\-.:]{1,255}")
_PAYMENT_METHOD_TYPE = re.compile(r"[a-z0-9_]{1,64}")


@dataclass(frozen=True, slots=True)
class StripeChargeRequest:
    """A checked ``stripe``/``charge`` request.

    ``amount`` is in Stripe minor units of ``currency`` (cents for ``usd``, yen for ``jpy``).
    ``network_id`` is the seller's Stripe Business Network profile the token is granted to.
    """

    amount: int
    currency: str
    network_id: str
    payment_method_types: tuple[str, ...]
    external_id: str | None = None
    description: str | None = None
    recipient: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def parse_charge_request(
    request: Mapping[str, Any], *, challenge: Challenge | None = None
) -> StripeChargeRequest:
    """Check the decoded challenge ``request``; raise ``PaymentRefused`` saying what is wrong."""

    def refuse(reason: str) -> PaymentRefused:
        return PaymentRefused(f"stripe charge request refused: {reason}", challenge=challenge)

    amount = request.get("amount")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise refuse("amount must be a positive integer string of minor units")
    currency = request.get("currency")
    if not isinstance(currency, str) or not _ISO_CURRENCY.fullmatch(currency):
        raise refuse("currency must be a lower-case ISO 4217 code")
    details = request.get("methodDetails")
    if not isinstance(details, Mapping):
        raise refuse("methodDetails is missing")
    network_id = details.get("networkId")
    if not isinstance(network_id, str) or not _STRIPE_ID.fullmatch(network_id):
        raise refuse("methodDetails.networkId is missing or malformed")
    types = details.get("paymentMethodTypes")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and _PAYMENT_METHOD_TYPE.fullmatch(t) for t in types)
    ):
        raise refuse("methodDetails.paymentMethodTypes must be a non-empty list of types")
    metadata = details.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise refuse("methodDetails.metadata must map strings to strings")
    if "externalId" in metadata:
        # Reserved: the server binds attribution through the request's own externalId.
        raise refuse("methodDetails.metadata.externalId is reserved")
    optional: dict[str, str | None] = {}
    for name in ("externalId", "description", "recipient"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            raise refuse(f"{name} must be a string")
        optional[name] = value
    return StripeChargeRequest(
        amount=int(amount),
        currency=currency,
        network_id=network_id,
        payment_method_types=tuple(types),
        external_id=optional["externalId"],
        description=optional["description"],
        recipient=optional["recipient"],
        metadata=dict(metadata),
    )
